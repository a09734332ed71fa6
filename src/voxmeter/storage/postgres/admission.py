"""Admission in PostgreSQL: one call of ``voxmeter_admit_all`` per batch.

The rule is applied server-side (the function's SQL is
``storage/migrations/sql/admit_all.sql``), equal to
:func:`voxmeter.domain.admission.decide`. A slot is a lease row valid until
``lease_until``; releases are batched too, and start at once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from voxmeter.domain.admission import Admission, Usage, Verdict
from voxmeter.storage.admitting import BatchedAdmission
from voxmeter.storage.batching import TurnBatcher
from voxmeter.storage.figures import FigureCache
from voxmeter.storage.ports import AdmissionRequest
from voxmeter.storage.postgres.connection import PostgresPart

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class PostgresAdmission(PostgresPart, BatchedAdmission):
    figures: FigureCache
    _releases: TurnBatcher[tuple[str, int, datetime], None]

    def _start_releases(self) -> None:
        # Slots are given back even when nobody waits any more for the answer,
        # and at once: releases of distinct slots do not contend.
        self._releases = TurnBatcher(self._release_all, serve_abandoned=True, one_at_a_time=False)

    async def _admit_all(self, asks: list[AdmissionRequest]) -> list[Admission]:
        rows = await self._all(
            "SELECT * FROM voxmeter_admit_all(%s::text[], %s::bigint[], %s::bigint[],"
            " %s::date[], %s::bigint[], %s::bigint[], %s::integer[], %s::timestamptz[],"
            " %s::timestamptz[])",
            (
                [ask.principal.token.id for ask in asks],
                [ask.principal.operation.id for ask in asks],
                [ask.principal.operation.revision for ask in asks],
                [ask.quota.day for ask in asks],
                [ask.quota.token_limit for ask in asks],
                [ask.quota.operation_limit for ask in asks],
                [ask.concurrency for ask in asks],
                [ask.lease_until for ask in asks],
                [ask.now for ask in asks],
            ),
        )
        admissions = []
        for ask, (verdict, token_used, operation_used, slot, ledger_version) in zip(
            asks, rows, strict=True
        ):
            if ledger_version is not None:
                self.figures.seen(ask.principal.operation.id, ledger_version)
            usage = Usage(token_used=token_used, operation_used=operation_used)
            if slot is None:
                admissions.append(Admission(Verdict(verdict), usage))
            else:
                lease = (ask.lease_until - _EPOCH) // _MICROSECOND
                admissions.append(Admission(Verdict(verdict), usage, slot=slot, lease=lease))
        return admissions

    async def _give_back(self, ask: AdmissionRequest, admission: Admission) -> None:
        if admission.slot is not None:
            await self.release(ask.principal.token.id, admission.slot, admission.lease)

    async def release(self, token_id: str, slot: int, lease: int | None) -> None:
        assert lease is not None, "every PostgreSQL slot has a lease"
        await self._releases.submit((token_id, slot, _EPOCH + timedelta(microseconds=lease)))

    async def _release_all(self, slots: list[tuple[str, int, datetime]]) -> list[None]:
        tokens, numbers, leases = zip(*slots, strict=True)
        await self._one(
            "SELECT voxmeter_release_all(%s::text[], %s::integer[], %s::timestamptz[])",
            (list(tokens), list(numbers), list(leases)),
        )
        return [None] * len(slots)

    async def calls_today(self, token_id: str, operation_id: int, day: date) -> Usage:
        token_used, operation_used = await self._one(
            "SELECT (SELECT used FROM token_calls WHERE token_id = %s AND day = %s),"
            " (SELECT used FROM operation_calls WHERE operation_id = %s AND day = %s)",
            (token_id, day, operation_id, day),
        )
        return Usage(token_used=token_used or 0, operation_used=operation_used or 0)
