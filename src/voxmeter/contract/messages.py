"""The ``msg`` of successful answers: part of the contract, as the refusals are.

The platform's own texts (``BILLING``, ``SERVICES``) are copied from its
documentation, lower case and all; voxmeter's own endpoints answer in the
platform's upper-case style. Refusals are in :mod:`voxmeter.contract.errors`.
"""

from __future__ import annotations

BILLING = "Information found for the current month"
SERVICES = "1 records were found"
EVENTS_RECORDED = "EVENTS RECORDED"
CORRECTIONS_APPLIED = "CORRECTIONS APPLIED"
RECORDS_FOUND = "{count} records were found"
