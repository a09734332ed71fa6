"""Cached credentials and figures, batched admissions: faster, and exactly as strict.

The server keeps the principals it has read (server/credentials.py), the
SQLite store keeps the figures it has summed and admits the calls of one
event-loop turn in one transaction. None of it may let a revoked token
through, serve an operation's old settings or an old figure, or count a call
twice or not at all.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conftest import FakeClock, RunningServer, add_operation, add_token
from ledger_helpers import record
from voxmeter.config import Settings
from voxmeter.domain import tokens
from voxmeter.domain.admission import Admission, Quota, Verdict
from voxmeter.domain.models import (
    Action,
    Correction,
    Operation,
    OperationChanges,
    Principal,
    TokenScope,
)
from voxmeter.services.credentials import CredentialCache
from voxmeter.storage import open_store, schema
from voxmeter.storage.base import Store

BILLING = "/api/v2/billing.php"
SERVICES = {"api": "services"}
IVR = {"api": "ivr_calls"}
QUOTA_3 = {"calls_per_license": 3}
LEASE = timedelta(seconds=65)
DAY = timedelta(days=1)


async def principal_of(store: Store, secret: str) -> Principal:
    credential = await store.find_credential(tokens.token_id_of(secret) or "")
    assert credential is not None
    return credential.principal


async def stale_and_fresh(
    store: Store, clock: FakeClock, changes: OperationChanges
) -> tuple[Principal, Principal]:
    """A token's principal read before ``changes`` to its operation, and one read after."""
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    stale = await principal_of(store, secret)
    await store.update_operation(operation.name, changes)
    return stale, await principal_of(store, secret)


async def admit(
    store: Store, principal: Principal, clock: FakeClock, concurrency: int = 2, per_license: int = 3
) -> Admission:
    quota = Quota.for_call(principal.operation, clock(), per_license)
    return await store.admit(principal, quota, concurrency, clock() + LEASE, clock())


async def test_a_revoked_token_is_refused_on_its_next_call(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        assert http.get(BILLING, params=IVR).status_code == 200  # now cached by the server
        assert await store.revoke_token(tokens.token_id_of(secret) or "", clock())
        refused = http.get(BILLING, params=IVR)
        again = http.get(BILLING, params=IVR)
    assert (refused.status_code, refused.json()["msg"]) == (403, "PLEASE VALIDATE TOKEN")
    assert again.status_code == 403
    token = await store.get_token(tokens.token_id_of(secret) or "")
    assert token is not None
    usage = await store.calls_today(token.id, operation.id, operation.local_date(clock()))
    assert (usage.token_used, usage.operation_used) == (1, 1)  # the refusals counted nothing


@pytest.mark.parametrize("settings_overrides", [QUOTA_3])
async def test_changes_to_an_operation_apply_from_its_next_call(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=1, timezone="America/Bogota")
    secret = await add_token(store, clock, operation)
    with server.client(secret) as http:
        before = http.get(BILLING, params=IVR)
        await store.update_operation(
            operation.name,
            OperationChanges(
                licenses=2, timezone="Pacific/Kiritimati", services=frozenset({"rsync"})
            ),
        )
        after = http.get(BILLING, params=IVR)
        services = http.get("/api/v2/information.php", params=SERVICES).json()["data"][0]
    assert before.headers["x-ratelimit-limit"] == "3"
    assert after.headers["x-ratelimit-limit"] == "6"
    # 15:00 UTC on the 24th is already the 25th at UTC+14.
    assert before.json()["data"][0]["date"] == "2026-11-24"
    assert after.json()["data"][0]["date"] == "2026-11-25"
    assert services["rsync"] == "yes"


async def test_admission_refuses_a_stale_or_revoked_credential_and_counts_nothing(
    store: Store, clock: FakeClock
):
    stale, fresh = await stale_and_fresh(store, clock, OperationChanges(pbx=4))
    operation = fresh.operation
    changed = await admit(store, stale, clock)
    assert changed.verdict is Verdict.CREDENTIAL_CHANGED
    assert fresh.operation.revision > stale.operation.revision
    assert (await admit(store, fresh, clock)).verdict is Verdict.ADMITTED
    await store.revoke_token(fresh.token.id, clock())
    assert (await admit(store, fresh, clock)).verdict is Verdict.CREDENTIAL_CHANGED
    usage = await store.calls_today(fresh.token.id, operation.id, operation.local_date(clock()))
    assert (usage.token_used, usage.operation_used) == (1, 1)


async def test_calls_asking_together_are_admitted_exactly_up_to_each_limit(
    store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock, licenses=2)  # 6 calls a day at 3 a license
    first = await principal_of(store, await add_token(store, clock, operation))
    second = await principal_of(store, await add_token(store, clock, operation))
    asks = [first] * 5 + [second] * 5
    answers = await asyncio.gather(*(admit(store, p, clock, concurrency=4) for p in asks))
    verdicts = [a.verdict for a in answers]
    admitted = [a for a in answers if a.verdict is Verdict.ADMITTED]
    # The operation's 6 calls go first come, first served; each token holds 4 slots at most.
    assert len(admitted) == 6
    assert verdicts[:5].count(Verdict.ADMITTED) == 4
    assert Verdict.TOO_MANY_IN_FLIGHT in verdicts[:5]
    assert Verdict.QUOTA_EXCEEDED in verdicts[5:]
    assert sorted(a.usage.operation_used for a in admitted) == [1, 2, 3, 4, 5, 6]
    day = operation.local_date(clock())
    assert (await store.calls_today(first.token.id, operation.id, day)).operation_used == 6
    for principal, answer in zip(asks, answers, strict=True):
        if answer.slot is not None:
            await store.release(principal.token.id, answer.slot, answer.lease)
    # All slots are free again; the quota is spent.
    assert (await admit(store, first, clock, concurrency=4)).verdict is Verdict.QUOTA_EXCEEDED


@pytest.fixture
async def sqlite_store(tmp_path):
    url = f"sqlite:///{tmp_path / 'batched.db'}"
    schema.upgrade(url)
    opened = await open_store(url)
    yield opened
    await opened.close()


async def test_a_call_cancelled_while_its_batch_runs_gives_its_slot_back(
    sqlite_store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    operation = await add_operation(sqlite_store, clock)
    principal = await principal_of(sqlite_store, await add_token(sqlite_store, clock, operation))
    batcher = sqlite_store._admissions  # type: ignore[attr-defined]
    admit_all = batcher._serve

    async def cancelling_its_caller(asks):
        admissions = await admit_all(asks)
        waiting.cancel()  # the caller goes while its admission is on its way
        return admissions

    monkeypatch.setattr(batcher, "_serve", cancelling_its_caller)
    waiting = asyncio.create_task(admit(sqlite_store, principal, clock, concurrency=1))
    with pytest.raises(asyncio.CancelledError):
        await waiting
    monkeypatch.undo()
    later = await admit(sqlite_store, principal, clock, concurrency=1)
    assert later.verdict is Verdict.ADMITTED
    assert later.usage.token_used == 2  # the cancelled call had been counted


async def test_a_failed_batch_fails_all_its_calls_and_holds_no_slot(
    sqlite_store: Store, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
):
    operation = await add_operation(sqlite_store, clock)
    principal = await principal_of(sqlite_store, await add_token(sqlite_store, clock, operation))
    calls_read = type(sqlite_store)._calls  # type: ignore[attr-defined]

    def failing_after_the_slot(self, *args):  # the first ask already holds a slot by then
        if self._slots._held:
            raise OSError("disk I/O error")
        return calls_read(self, *args)

    monkeypatch.setattr(type(sqlite_store), "_calls", failing_after_the_slot)
    other = await principal_of(sqlite_store, await add_token(sqlite_store, clock, operation))
    outcomes = await asyncio.gather(
        admit(sqlite_store, principal, clock, concurrency=1),
        admit(sqlite_store, other, clock, concurrency=1),
        return_exceptions=True,
    )
    assert all(isinstance(outcome, OSError) for outcome in outcomes)
    monkeypatch.undo()
    for each in (principal, other):
        admitted = await admit(sqlite_store, each, clock, concurrency=1)
        assert (admitted.verdict, admitted.usage.token_used) == (Verdict.ADMITTED, 1)


def test_the_cache_keeps_at_most_its_capacity():
    cache = CredentialCache(capacity=2)
    credential = object()
    for token_id in ("tok_a", "tok_b", "tok_c"):
        cache.put(token_id, credential)  # type: ignore[arg-type]
    assert len(cache) == 2
    assert cache.get("tok_a") is None
    assert cache.get("tok_c") is credential


def test_the_day_quota_is_recomputed_when_the_day_changes():
    settings = Settings(calls_per_license=3)
    now = datetime(2026, 11, 24, 15, tzinfo=UTC)
    operation = Operation(1, "Acme", "0001", "UTC", 1, 0, frozenset(), now)
    today = Quota.for_call(operation, now, settings.calls_per_license)
    assert Quota.for_call(operation, now + timedelta(hours=8), settings.calls_per_license) is today
    assert (
        Quota.for_call(operation, now + timedelta(hours=9), settings.calls_per_license).day
        == today.day + DAY
    )
    assert (
        Quota.for_call(operation, now - timedelta(hours=16), settings.calls_per_license).day
        == today.day - DAY
    )


async def test_figures_read_again_see_events_written_by_any_connection(
    store: Store, clock: FakeClock, database_url: str
):
    operation = await add_operation(store, clock, timezone="UTC")
    day = clock().date()
    first = day.replace(day=1)
    assert await store.summed_total(operation.id, "ivr_calls", first, day) == 0
    await record(store, operation, clock(), ("ivr_calls", 2, clock(), "own"))
    assert await store.summed_total(operation.id, "ivr_calls", first, day) == 2
    other = await open_store(database_url)  # another worker, say
    try:
        await record(other, operation, clock(), ("ivr_calls", 3, clock(), "other"))
        await record(other, operation, clock(), ("chat_licenses", 7, clock(), "gauge"))
    finally:
        await other.close()
    assert await store.summed_total(operation.id, "ivr_calls", first, day) == 5
    assert await store.gauge_value(operation.id, "chat_licenses", day) == 7


async def test_a_report_counts_what_was_recorded_or_corrected_since_the_last_one(
    server: RunningServer, store: Store, clock: FakeClock
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation)
    feeder = await add_token(store, clock, operation, TokenScope.INGEST)
    own = {"id": "own", "meter": "ivr_calls", "quantity": 2, "time": clock().isoformat()}

    def items(http: httpx.Client) -> str:
        return str(http.get(BILLING, params=IVR).json()["data"][0]["items"])

    with server.client(secret) as http, server.client(feeder) as feed:
        seen = [items(http), items(http)]  # the second from the worker's cache
        # Written by another connection, then through the server's own.
        await record(store, operation, clock(), ("ivr_calls", 4, clock(), "late"))
        seen.append(items(http))
        assert feed.post("/api/v2/events", json={"events": [own]}).status_code == 200
        seen.append(items(http))
        await store.correct_events(operation.id, [Correction("late", Action.VOID)], clock())
        seen.append(items(http))
    assert seen == ["0", "0", "4", "6", "2"]


async def test_a_stale_principal_is_caught_beside_a_fresh_one_in_one_batch(
    store: Store, clock: FakeClock
):
    stale, fresh = await stale_and_fresh(store, clock, OperationChanges(licenses=5))
    answers = await asyncio.gather(admit(store, fresh, clock), admit(store, stale, clock))
    assert [a.verdict for a in answers] == [Verdict.ADMITTED, Verdict.CREDENTIAL_CHANGED]
