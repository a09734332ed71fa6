"""Token secrets: minted once, shown once, kept only as a hash.

A secret reads ``vxm_<id>_<random>``. The id part names the token's row, so
the server fetches one stored hash and compares it in constant time, instead
of searching by the secret (whose timing would depend on the secret).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

_PREFIX = "vxm_"
_ID_HEX = 12
_SEPARATOR_AT = len(_PREFIX) + _ID_HEX


def mint() -> tuple[str, str]:
    """A new (token id, secret) pair. The id is public; the secret is the credential."""
    id_hex = secrets.token_hex(_ID_HEX // 2)
    return f"tok_{id_hex}", f"{_PREFIX}{id_hex}_{secrets.token_urlsafe(30)}"


def token_id_of(secret: str) -> str | None:
    """The id a well-formed secret names, or None for anything else."""
    if (
        len(secret) > _SEPARATOR_AT + 1
        and secret.startswith(_PREFIX)
        and secret[_SEPARATOR_AT] == "_"
    ):
        id_hex = secret[len(_PREFIX) : _SEPARATOR_AT]
        if all(c in "0123456789abcdef" for c in id_hex):
            return f"tok_{id_hex}"
    return None


def secret_hash(secret: str) -> bytes:
    """SHA-256 of the secret: the only form stored.

    A fast hash is right here (unlike for passwords): the random part carries
    240 bits, so there is nothing to brute-force, and every call hashes.
    """
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def matches(secret: str, stored_hash: bytes) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(secret_hash(secret), stored_hash)
