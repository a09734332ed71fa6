"""A plausible month of contact-center usage, for ``voxmeter demo``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import Any

from voxmeter.contract.meters import BILLING_METERS, Kind
from voxmeter.domain.models import NewOperation

DEMO_OPERATION = NewOperation(
    name="Demo Contact Center",
    licenses=50,
    pbx=2,
    timezone="America/Bogota",
    server_id="9901",
    services=frozenset({"screen_recording", "stereo_recording", "speech_analytics", "rsync"}),
)

# Meters that measure an optional service: the demo has usage of them only
# when its services record says the service is enabled ("yes").
METER_SERVICE = {
    "rec_screen": "screen_recording",
    "rec_screen_on_demand": "screen_recording",
    "video_call": "video_call",
    "stereo_rec": "stereo_recording",
    "gamification": "gamification",
    "sentiment_analysis": "text_analytics",
    "speech_analytics": "speech_analytics",
    "rsync": "rsync",
    "rsync_s3_mp3": "rsync",
}

# Typical daily volume per counter meter for a 50-seat operation.
_DAILY_VOLUME = {
    "interactions": 900,
    "ivr_calls": 1400,
    "rsync_s3_mp3": 1100,
    "sentiment_analysis": 300,
    "asr_calls": 450,
    "vision": 20,
    "tts_chars": 60000,
    "amd_ai": 700,
    "nlp_ai": 250,
}
_DAILY_MINUTES = {
    "ivr_minutes": 3200,
    "rec_minutes": 5100,
    "rec_screen": 2400,
    "rec_screen_on_demand": 90,
    "speech_analytics": 1200,
    "stereo_rec": 4800,
}
_GAUGE_START = {
    "agent_script": 20,
    "intelligent_dial": 10,
    "gamification": 0,
    "amazon_s3": 0,
    "rsync": 50,
    "wp_connectors": 2,
    "chat_licenses": 12,
    "interaction_licenses": 15,
    "video_call": 0,
    "pbx_licenses": 2,
    "wp_connectors_official": 1,
    "contact_center_licenses": 50,
}


def month_of_usage(
    zone_name: str, now: datetime, services: frozenset[str], seed: int = 7
) -> Iterator[dict[str, Any]]:
    """Events from the 1st of ``now``'s local month up to ``now``, one per meter and day.

    Gauges are set on the 1st, and chat licenses grow mid-month so the demo
    shows a gauge that changed during the month. Meters of services not in
    ``services`` get no usage.
    """
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(zone_name)
    rng = random.Random(seed)
    local_now = now.astimezone(zone)
    day = local_now.date().replace(day=1)
    while day <= local_now.date():
        noon = datetime.combine(day, time(12), zone)
        moment = min(noon, local_now - timedelta(seconds=1))
        for meter in BILLING_METERS:
            needed = METER_SERVICE.get(meter.api)
            if needed is not None and needed not in services:
                continue
            quantity = _quantity(meter.api, meter.kind, day.day, rng)
            if quantity is None:
                continue
            yield {
                "id": f"demo-{meter.api}-{day.isoformat()}",
                "meter": meter.api,
                "quantity": quantity,
                "time": moment.isoformat(),
            }
        day += timedelta(days=1)


def _quantity(api: str, kind: Kind, day_of_month: int, rng: random.Random) -> str | None:
    if kind is Kind.GAUGE:
        if api == "chat_licenses" and day_of_month == 15:
            return "18"
        return str(_GAUGE_START[api]) if day_of_month == 1 else None
    if kind is Kind.MINUTES:
        minutes = Decimal(_DAILY_MINUTES[api]) * Decimal(rng.uniform(0.7, 1.3))
        return str(minutes.quantize(Decimal("0.001")))
    return str(round(_DAILY_VOLUME[api] * rng.uniform(0.7, 1.3)))
