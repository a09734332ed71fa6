"""Pushing usage files to a voxmeter server: streamed, batched, safe to re-run.

Events carry their own ids and the server keeps every id forever, so an
interrupted import is finished by running it again: what was stored before
comes back as duplicates, what was not is stored now.
"""

from __future__ import annotations

import csv
import io
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from voxmeter.contract import wire

NDJSON = "application/x-ndjson"
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
SIMULTANEOUS_PREFIX = "EXCEEDS THE LIMIT OF SIMULTANEOUS REQUESTS"


class ImportRefused(Exception):
    """The server refused a batch for good (invalid events, conflicts, token, quota)."""

    def __init__(self, first_line: int, status: int, body: dict[str, Any]) -> None:
        self.first_line = first_line
        self.status = status
        self.body = body
        super().__init__(f"batch starting at line {first_line}: {status} {body.get('msg')}")

    def problems(self) -> list[str]:
        """Each refused event as 'line N: reason'."""
        lines = []
        for item in self.body.get("data") or []:
            if isinstance(item, dict) and "index" in item:
                reason = item.get("reason", "refused")
                lines.append(f"line {self.first_line + item['index']}: {reason}")
        return lines


@dataclass
class ImportTotals:
    lines: int = 0
    accepted: int = 0
    duplicates: int = 0
    batches: int = 0
    retries: int = 0


def _csv_rows(stream: IO[str]) -> Iterator[bytes]:
    for row in csv.DictReader(stream):
        event: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        if "attributes" in event:
            event["attributes"] = orjson.loads(event["attributes"])
        yield orjson.dumps(event)


def event_lines(path: Path, stream: IO[bytes]) -> Iterator[bytes]:
    """One JSON event per item, read lazily: JSONL passes through, CSV is converted.

    CSV files have a header naming the event fields (id, meter, quantity,
    time, and optionally attributes as a JSON object).
    """
    if path.suffix.lower() == ".csv":
        yield from _csv_rows(io.TextIOWrapper(stream, encoding="utf-8", newline=""))
        return
    for raw in stream:
        line = raw.strip()
        if line:
            yield line


def batches(lines: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Uploader:
    """Posts NDJSON batches, retrying what may succeed later with backoff and jitter."""

    http: httpx.Client
    retries: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def _delay(self, attempt: int, response: httpx.Response | None) -> float:
        if response is not None:
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                return min(float(retry_after), self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)

    def post(self, batch: list[bytes], first_line: int, totals: ImportTotals) -> None:
        body = b"\n".join(batch)
        for attempt in range(self.retries + 1):
            response: httpx.Response | None = None
            try:
                response = self.http.post(
                    wire.EVENTS_PATH, content=body, headers={"content-type": NDJSON}
                )
            except httpx.TransportError:
                if attempt == self.retries:
                    raise
            else:
                envelope = response.json()
                if response.status_code == 200:
                    summary = envelope["data"][0]
                    totals.accepted += summary["accepted"]
                    totals.duplicates += summary["duplicates"]
                    totals.batches += 1
                    return
                retryable = response.status_code in RETRYABLE_STATUSES or (
                    response.status_code == 403
                    and str(envelope.get("msg", "")).startswith(SIMULTANEOUS_PREFIX)
                )
                if not retryable or attempt == self.retries:
                    raise ImportRefused(first_line, response.status_code, envelope)
            totals.retries += 1
            self.sleep(self._delay(attempt, response))


def import_file(
    path: Path,
    uploader: Uploader,
    batch_size: int,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportTotals:
    """Stream ``path`` to the server in batches; ``progress`` gets lines done per batch."""
    totals = ImportTotals()
    with path.open("rb") as stream:
        for batch in batches(event_lines(path, stream), batch_size):
            uploader.post(batch, totals.lines + 1, totals)
            totals.lines += len(batch)
            progress(len(batch))
    return totals
