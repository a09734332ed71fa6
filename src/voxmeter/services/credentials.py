"""Credentials already read, kept per worker to spare a lookup per call.

Safe because a cached principal is only ever used by a call that is then
admitted, and admission checks in its own transaction that the token is
still active and its operation unchanged (``Verdict.CREDENTIAL_CHANGED``
otherwise): a revocation or a change bites on the very next call, in every
worker, exactly as without the cache.
"""

from __future__ import annotations

from voxmeter.domain.models import Credential

DEFAULT_CAPACITY = 10_000


class CredentialCache:
    """Credentials by token id, at most ``capacity`` of them (the oldest go first)."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._entries: dict[str, Credential] = {}

    def get(self, token_id: str) -> Credential | None:
        return self._entries.get(token_id)

    def put(self, token_id: str, credential: Credential) -> None:
        if token_id not in self._entries and len(self._entries) >= self.capacity:
            del self._entries[next(iter(self._entries))]
        self._entries[token_id] = credential

    def forget(self, token_id: str) -> None:
        self._entries.pop(token_id, None)

    def __len__(self) -> int:
        return len(self._entries)
