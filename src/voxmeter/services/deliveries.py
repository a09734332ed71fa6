"""Alert delivery: outbox rows sent as webhooks signed per the Standard Webhooks specification.

Each server worker runs a :class:`DeliveryWorker`. It claims due deliveries
with a lease (so workers take different rows, and a worker killed mid-way
leaves its rows to be claimed again when the lease runs out), posts each,
and records the outcome: delivered on a 2xx answer, otherwise retried after
an exponentially growing delay with jitter, and marked failed after the
configured number of attempts. Delivery is at least once: a receiver
should deduplicate on ``webhook-id``.

Delivery runs on the wall clock, whatever clock the rest of the server
reads: signatures carry real timestamps, which receivers check.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import httpx
import orjson

from voxmeter.config import Settings
from voxmeter.contract.meters import billing_meter
from voxmeter.contract.quantities import format_items
from voxmeter.domain.alerts import AlertEvent, Delivery, Level
from voxmeter.services.alerts import SECRET_PREFIX
from voxmeter.storage.base import Store

log = logging.getLogger("voxmeter.deliveries")

# Claimed per round; each round's deliveries are sent concurrently.
CLAIM_BATCH = 20


def body(event: AlertEvent) -> bytes:
    """The JSON an alert is delivered as (the same bytes on every attempt)."""
    meter = billing_meter(event.meter)
    scale = meter.kind.scale if meter else 0
    level = Level.parse(event.level)
    return orjson.dumps(
        {
            "type": f"usage.threshold.{event.kind.value}",
            "timestamp": event.created_at.astimezone(UTC).isoformat(),
            "data": {
                "alert": event.id,
                "rule": event.rule_id,
                "operation": event.operation,
                "meter": event.meter,
                "period": event.period,
                "level": str(level) if level.percent else format_items(level.value, scale),
                "threshold": format_items(event.threshold, scale),
                "quantity": format_items(event.quantity, scale),
            },
        }
    )


def signature(secrets: Sequence[str], msg_id: str, timestamp: int, payload: bytes) -> str:
    """``webhook-signature``: ``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``, per secret."""
    signed = f"{msg_id}.{timestamp}.".encode() + payload
    return " ".join(
        "v1,"
        + base64.b64encode(
            hmac.new(
                base64.b64decode(secret.removeprefix(SECRET_PREFIX)), signed, hashlib.sha256
            ).digest()
        ).decode()
        for secret in secrets
    )


def signed_headers(delivery: Delivery, payload: bytes, now: datetime) -> dict[str, str]:
    timestamp = int(now.timestamp())
    return {
        "content-type": "application/json",
        "webhook-id": delivery.event.id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(
            delivery.endpoint.secrets, delivery.event.id, timestamp, payload
        ),
    }


def backoff(settings: Settings, attempts: int) -> timedelta:
    """The delay before the next attempt after ``attempts`` failed ones: doubling, jittered."""
    ceiling = min(
        settings.webhook_backoff_seconds * 2 ** (attempts - 1),
        settings.webhook_backoff_max_seconds,
    )
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


class DeliveryWorker:
    def __init__(self, store: Store, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        """Claim the deliveries due now and attempt each once; how many were attempted."""
        now = datetime.now(UTC)
        lease = now + timedelta(seconds=self._settings.webhook_lease_seconds)
        claimed = await self._store.claim_deliveries(now, lease, CLAIM_BATCH)
        await asyncio.gather(*(self._attempt(client, delivery) for delivery in claimed))
        return len(claimed)

    async def _attempt(self, client: httpx.AsyncClient, delivery: Delivery) -> None:
        payload = body(delivery.event)
        error: str | None = None
        try:
            answer = await client.post(
                delivery.endpoint.url,
                content=payload,
                headers=signed_headers(delivery, payload, datetime.now(UTC)),
            )
            if not answer.is_success:
                error = f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        now = datetime.now(UTC)
        attempts = delivery.attempts + 1
        if error is None:
            status, due = "delivered", now
        elif attempts >= self._settings.webhook_attempts:
            status, due = "failed", now
        else:
            status, due = "pending", now + backoff(self._settings, attempts)
        log.info(
            "delivery %s of %s to endpoint %s: %s",
            delivery.id,
            delivery.event.id,
            delivery.endpoint.id,
            error or status,
        )
        await self._store.finish_delivery(
            delivery.id, status=status, error=error, next_attempt_at=due, now=now
        )

    async def run(self) -> None:
        """Deliver until cancelled: at once while work is due, else every poll interval."""
        async with httpx.AsyncClient(timeout=self._settings.webhook_timeout_seconds) as client:
            while True:
                try:
                    attempted = await self.deliver_due(client)
                except Exception:
                    log.exception("webhook delivery round failed")
                    attempted = 0
                if not attempted:
                    await asyncio.sleep(self._settings.webhook_poll_seconds)
