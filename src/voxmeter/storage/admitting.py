"""Admission as both backends serve it: the calls of one event-loop turn together.

:class:`BatchedAdmission` implements :meth:`~voxmeter.storage.ports.AdmissionStore.admit`
once, through a :class:`~voxmeter.storage.batching.TurnBatcher`; a backend
supplies how a batch is decided (``_admit_all``, one transaction or one
round trip) and how the slot of a call gone before its answer is given back.
"""

from __future__ import annotations

import abc
from datetime import datetime

from voxmeter.domain.admission import Admission, Quota
from voxmeter.domain.models import Principal
from voxmeter.storage.batching import TurnBatcher
from voxmeter.storage.ports import AdmissionRequest, AdmissionStore


class BatchedAdmission(AdmissionStore):
    _admissions: TurnBatcher[AdmissionRequest, Admission]

    def _start_admissions(self) -> None:
        self._admissions = TurnBatcher(self._admit_all, self._give_back)

    async def admit(
        self,
        principal: Principal,
        quota: Quota,
        concurrency: int,
        lease_until: datetime,
        now: datetime,
    ) -> Admission:
        # Under load most of a call's admission cost was its own commit or
        # round trip: the calls that ask in one turn share one.
        return await self._admissions.submit(
            AdmissionRequest(principal, quota, concurrency, lease_until, now)
        )

    @abc.abstractmethod
    async def _admit_all(self, asks: list[AdmissionRequest]) -> list[Admission]:
        """Each ask in the order made, as if one after the other, in one transaction."""

    @abc.abstractmethod
    async def _give_back(self, ask: AdmissionRequest, admission: Admission) -> None:
        """The slot of a call admitted but gone (cancelled) before it could run."""
