"""Pushing usage files to a voxmeter server: streamed, batched, safe to re-run.

Events carry their own ids and the server keeps every id forever, so an
interrupted import is finished by running it again: what was stored before
comes back as duplicates, what was not is stored now.

Every event keeps the number of the file's line it starts on (a CSV header is
line 1), so each problem, found here or by the server, names the line to fix.
"""

from __future__ import annotations

import csv
import io
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx
import orjson

from voxmeter.client._base import transport_error
from voxmeter.client.errors import APIError, VoxmeterError, error_for
from voxmeter.client.retry import OnRetry, RetryPolicy, quiet
from voxmeter.contract import wire
from voxmeter.domain.models import Operation
from voxmeter.domain.usage import EventError, EventValidator, Window

NDJSON = "application/x-ndjson"
DELIMITERS = (",", ";", "\t")
BOM = b"\xef\xbb\xbf"
MAX_PROBLEMS_KEPT = 100  # a summary names the first ones; the count covers them all


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FileEvent:
    """One event of the file, encoded for the wire, or why it could not be read."""

    line: int
    body: bytes = b""
    error: str | None = None


@dataclass
class ImportTotals:
    """What an import did; ``summary()`` is the documented machine-readable form."""

    dry_run: bool = False
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    batches: int = 0
    retries: int = 0
    invalid: int = 0
    problems: list[Problem] = field(default_factory=list)
    complete: bool = False

    def found(self, problems: list[Problem]) -> None:
        self.invalid += len(problems)
        room = MAX_PROBLEMS_KEPT - len(self.problems)
        self.problems += problems[: max(room, 0)]

    def summary(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "complete": self.complete,
            "events": self.events,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "batches": self.batches,
            "retries": self.retries,
            "invalid": self.invalid,
            "problems": [{"line": p.line, "reason": p.reason} for p in self.problems],
        }


class ImportRefused(VoxmeterError):
    """A batch cannot be stored: the file has bad events, or the server refused it for good."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__(message)


def _csv_events(stream: IO[str]) -> Iterator[FileEvent]:
    header = stream.readline()
    # Spreadsheets save with the list separator of their locale: ',' or ';' (or tab).
    delimiter = max(DELIMITERS, key=header.count)
    reader = csv.reader(itertools.chain([header], stream), delimiter=delimiter)
    fields = [name.strip() for name in next(reader, [])]
    last_line = reader.line_num
    for row in reader:
        first_line, last_line = last_line + 1, reader.line_num
        if not any(value.strip() for value in row):
            continue
        if len(row) > len(fields):
            yield FileEvent(first_line, error=f"{len(row)} values for {len(fields)} header fields")
            continue
        event: dict[str, Any] = {k: v for k, v in zip(fields, row, strict=False) if k and v != ""}
        if "attributes" in event:
            try:
                event["attributes"] = orjson.loads(event["attributes"])
            except orjson.JSONDecodeError as exc:
                yield FileEvent(first_line, error=f"attributes are not valid JSON ({exc})")
                continue
        yield FileEvent(first_line, orjson.dumps(event))


def _json_lines(stream: IO[bytes]) -> Iterator[FileEvent]:
    for number, raw in enumerate(stream, start=1):
        line = (raw.removeprefix(BOM) if number == 1 else raw).strip()
        if not line:
            continue
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            yield FileEvent(number, error=f"not valid JSON ({exc})")
        else:
            yield FileEvent(number, line)


def file_events(path: Path, stream: IO[bytes]) -> Iterator[FileEvent]:
    """The events of a file, read lazily: JSON lines, or CSV with a header.

    CSV files have a header naming the event fields (id, meter, quantity,
    time, and optionally attributes as a JSON object), separated by commas,
    semicolons or tabs; a UTF-8 byte order mark is skipped.
    """
    if path.suffix.lower() == ".csv":
        return _csv_events(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
    return _json_lines(stream)


def batches(events: Iterator[FileEvent], size: int) -> Iterator[list[FileEvent]]:
    batch: list[FileEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _local_validator() -> EventValidator:
    """Checks an event as the server does, except its time window.

    The window depends on the operation's month and zone, which only the
    server knows; everything else (fields, id, meter, quantity, time format,
    attributes) is judged here the same way.
    """
    anywhere = Operation(
        id=0,
        name="",
        server_id="0000",
        timezone="UTC",
        licenses=0,
        pbx=0,
        services=frozenset(),
        created_at=datetime.min.replace(tzinfo=UTC),
    )
    always = Window(datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
    return EventValidator(anywhere, always)


def check(batch: list[FileEvent], validator: EventValidator) -> list[Problem]:
    """The problems of a batch found without the server."""
    problems = []
    for event in batch:
        if event.error is not None:
            problems.append(Problem(event.line, event.error))
            continue
        try:
            validator(orjson.loads(event.body))
        except EventError as exc:
            problems.append(Problem(event.line, str(exc)))
    return problems


@dataclass
class Uploader:
    """Posts NDJSON batches under the clients' retry policy."""

    http: httpx.Client
    policy: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_retries=8))
    sleep: Callable[[float], None] = time.sleep
    on_retry: OnRetry = quiet

    def post(self, batch: list[FileEvent], totals: ImportTotals) -> None:
        body = b"\n".join(event.body for event in batch)

        def send() -> dict[str, Any]:
            try:
                response = self.http.post(
                    wire.EVENTS_PATH, content=body, headers={"content-type": NDJSON}
                )
            except httpx.TransportError as exc:
                raise transport_error(exc, str(self.http.base_url).rstrip("/")) from None
            headers = {k.lower(): v for k, v in response.headers.items()}
            try:
                envelope = response.json()
            except ValueError:
                envelope = {"msg": response.text[:200]}
            if response.status_code != 200 or not isinstance(envelope, dict):
                raise error_for(response.status_code, envelope, headers)
            summary: dict[str, Any] = envelope["data"][0]
            return summary

        def count_retry(error: VoxmeterError, retry: int, pause: float) -> None:
            totals.retries += 1
            self.on_retry(error, retry, pause)

        try:
            summary = self.policy.retrying(self.sleep, count_retry)(send)
        except APIError as refused:
            problems = _problems(refused, batch)
            totals.found(problems)
            raise ImportRefused(
                f"the batch from line {batch[0].line} was refused: {refused}", problems
            ) from None
        totals.accepted += summary["accepted"]
        totals.duplicates += summary["duplicates"]
        totals.batches += 1


def _problems(refused: APIError, batch: list[FileEvent]) -> list[Problem]:
    """Each event the server named, at its line of the file."""
    problems = []
    for item in refused.envelope.get("data") or []:
        index = item.get("index") if isinstance(item, dict) else None
        if isinstance(index, int) and 0 <= index < len(batch):
            problems.append(Problem(batch[index].line, str(item.get("reason", "refused"))))
    return problems


def import_file(
    path: Path,
    uploader: Uploader | None,
    batch_size: int,
    totals: ImportTotals,
    progress: Callable[[int], None] = lambda _: None,
) -> None:
    """Stream ``path`` to the server in batches; ``progress`` gets events done per batch.

    Without an uploader it is a dry run: every event is checked here and
    nothing is sent. Otherwise a batch with an unreadable event is not sent,
    and the import stops there (:class:`ImportRefused`), as it does when the
    server refuses a batch; ``totals`` tells what was done until then.
    """
    validator = _local_validator()
    with path.open("rb") as stream:
        for batch in batches(file_events(path, stream), batch_size):
            if uploader is None:
                totals.found(check(batch, validator))
            else:
                unreadable = [Problem(e.line, e.error) for e in batch if e.error is not None]
                if unreadable:
                    totals.found(unreadable)
                    raise ImportRefused(
                        f"the batch from line {batch[0].line} has events that cannot be read;"
                        " nothing of it was sent",
                        unreadable,
                    )
                uploader.post(batch, totals)
            totals.events += len(batch)
            progress(len(batch))
    totals.complete = totals.invalid == 0
