"""Counters of what the use cases did, whichever entry point asked.

They live here, not in the HTTP layer, so that usage recorded from the CLI
counts exactly as usage posted over HTTP; ``/metrics`` exposes them.
"""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter("voxmeter_events_total", "Usage events received", ["outcome"])
REFUSALS = Counter("voxmeter_limit_refusals_total", "Calls refused by a limit", ["limit"])
