"""The admission rule in Python (``decide``, SQLite's) and in PL/pgSQL agree.

Random histories of admission batches, releases, revocations and operation
changes, over several tokens of two operations with random limits and
concurrency, go both to :func:`voxmeter.domain.admission.decide` (over a
model of counters and held slots) and to PostgreSQL's ``voxmeter_admit_all``
on a real database: every verdict, count and slot, and every stored
counter after each step, must be the same.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voxmeter.domain.admission import Admission, Quota, Usage, Verdict, decide

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
LEASE_UNTIL = NOW + timedelta(seconds=65)
DAYS = (date(2026, 11, 24), date(2026, 11, 25))
TOKENS_OF = {0: (0, 1), 1: (2,)}  # operation -> its tokens
OPERATION_OF = {token: operation for operation, ts in TOKENS_OF.items() for token in ts}
names = itertools.count()

asks = st.tuples(
    st.sampled_from(sorted(OPERATION_OF)),  # token
    st.sampled_from(range(len(DAYS))),  # day
    st.integers(0, 4),  # token limit
    st.integers(0, 5),  # operation limit
    st.integers(1, 3),  # concurrency
    st.booleans(),  # presents the operation's previous revision
)
batch = st.lists(asks, min_size=1, max_size=6).map(lambda a: ("batch", a))
release = st.integers(0, 10).map(lambda i: ("release", i))
revoke = st.sampled_from(sorted(OPERATION_OF)).map(lambda t: ("revoke", t))
change = st.sampled_from(sorted(TOKENS_OF)).map(lambda o: ("change", o))
steps = st.lists(st.one_of(batch, batch, batch, release, revoke, change), min_size=1, max_size=10)


@dataclass
class Model:
    """What the database holds, as Python values; ``decide`` is applied to it."""

    revisions: dict[int, int] = field(default_factory=lambda: dict.fromkeys(TOKENS_OF, 0))
    revoked: set[int] = field(default_factory=set)
    token_used: dict[tuple[int, int], int] = field(default_factory=dict)
    operation_used: dict[tuple[int, int], int] = field(default_factory=dict)
    held: dict[int, set[int]] = field(default_factory=dict)

    def admit(
        self, token: int, day: int, quota: Quota, concurrency: int, revision: int
    ) -> Admission:
        operation = OPERATION_OF[token]
        current = token not in self.revoked and revision == self.revisions[operation]
        usage = Usage(
            self.token_used.get((token, day), 0), self.operation_used.get((operation, day), 0)
        )
        held = self.held.setdefault(token, set())

        def take_slot() -> int | None:
            slot = next((s for s in range(concurrency) if s not in held), None)
            if slot is not None:
                held.add(slot)
            return slot

        admission = decide(current, usage, quota, take_slot)
        if admission.verdict is Verdict.ADMITTED:
            self.token_used[(token, day)] = admission.usage.token_used
            self.operation_used[(operation, day)] = admission.usage.operation_used
        return admission


def _quota(day: date, token_limit: int, operation_limit: int) -> Quota:
    return Quota(day, token_limit, operation_limit, NOW, NOW, str(token_limit), "0")


class Database:
    """The same history, on PostgreSQL: fresh operations and tokens for each example."""

    def __init__(self, conn: psycopg.Connection[tuple]) -> None:
        self.conn = conn
        self.operation_ids: dict[int, int] = {}
        self.token_ids: dict[int, str] = {}
        for operation, tokens in TOKENS_OF.items():
            row = conn.execute(
                "INSERT INTO operations (name, server_id, timezone, licenses, created_at)"
                " VALUES (%s, 's1', 'UTC', 1, %s) RETURNING id",
                (f"agreement-{next(names)}", NOW),
            ).fetchone()
            assert row is not None
            self.operation_ids[operation] = row[0]
            for token in tokens:
                self.token_ids[token] = f"tok_{secrets.token_hex(6)}"
                conn.execute(
                    "INSERT INTO tokens (id, operation_id, secret_hash, scope, created_at)"
                    " VALUES (%s, %s, %s, 'report', %s)",
                    (
                        self.token_ids[token],
                        self.operation_ids[operation],
                        secrets.token_bytes(32),
                        NOW,
                    ),
                )

    def admit_all(self, batch: list[tuple[int, int, Quota, int, int]]) -> list[Admission]:
        rows = self.conn.execute(
            "SELECT verdict, token_used, operation_used, slot FROM voxmeter_admit_all("
            "%s::text[], %s::bigint[], %s::bigint[], %s::date[], %s::bigint[], %s::bigint[],"
            " %s::integer[], %s::timestamptz[], %s::timestamptz[])",
            (
                [self.token_ids[token] for token, *_ in batch],
                [self.operation_ids[OPERATION_OF[token]] for token, *_ in batch],
                [revision for *_, revision in batch],
                [DAYS[day] for _, day, *_ in batch],
                [quota.token_limit for _, _, quota, *_ in batch],
                [quota.operation_limit for _, _, quota, *_ in batch],
                [concurrency for _, _, _, concurrency, _ in batch],
                [LEASE_UNTIL] * len(batch),
                [NOW] * len(batch),
            ),
        ).fetchall()
        return [
            Admission(Verdict(verdict), Usage(token_used, operation_used), slot=slot)
            for verdict, token_used, operation_used, slot in rows
        ]

    def release(self, token: int, slot: int) -> None:
        self.conn.execute(
            "SELECT voxmeter_release_all(%s::text[], %s::integer[], %s::timestamptz[])",
            ([self.token_ids[token]], [slot], [LEASE_UNTIL]),
        )

    def revoke(self, token: int) -> None:
        self.conn.execute(
            "UPDATE tokens SET revoked_at = %s WHERE id = %s", (NOW, self.token_ids[token])
        )

    def change(self, operation: int) -> None:
        self.conn.execute(
            "UPDATE operations SET revision = revision + 1 WHERE id = %s",
            (self.operation_ids[operation],),
        )

    def counters(self) -> tuple[dict[tuple[int, int], int], dict[tuple[int, int], int]]:
        token_of = {token_id: token for token, token_id in self.token_ids.items()}
        operation_of = {op_id: operation for operation, op_id in self.operation_ids.items()}
        token_used = {
            (token_of[token_id], DAYS.index(day)): used
            for token_id, day, used in self.conn.execute(
                "SELECT token_id, day, used FROM token_calls WHERE token_id = ANY(%s)",
                (list(token_of),),
            )
        }
        operation_used = {
            (operation_of[op_id], DAYS.index(day)): used
            for op_id, day, used in self.conn.execute(
                "SELECT operation_id, day, used FROM operation_calls WHERE operation_id = ANY(%s)",
                (list(operation_of),),
            )
        }
        return token_used, operation_used


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=steps)
def test_decide_and_the_postgres_function_agree(postgres_url: str, history: list[tuple]) -> None:
    model = Model()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        database = Database(conn)
        for step in history:
            if step[0] == "batch":
                asked = [
                    (
                        token,
                        day,
                        _quota(DAYS[day], token_limit, operation_limit),
                        concurrency,
                        max(0, model.revisions[OPERATION_OF[token]] - stale),
                    )
                    for token, day, token_limit, operation_limit, concurrency, stale in step[1]
                ]
                expected = [
                    model.admit(token, day, quota, concurrency, revision)
                    for token, day, quota, concurrency, revision in asked
                ]
                assert database.admit_all(asked) == expected
            elif step[0] == "release":
                held = sorted((t, s) for t, slots in model.held.items() for s in slots)
                if held:
                    token, slot = held[step[1] % len(held)]
                    model.held[token].discard(slot)
                    database.release(token, slot)
            elif step[0] == "revoke":
                model.revoked.add(step[1])
                database.revoke(step[1])
            else:
                model.revisions[step[1]] += 1
                database.change(step[1])
            assert database.counters() == (model.token_used, model.operation_used)
