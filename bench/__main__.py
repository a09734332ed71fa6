"""``python -m bench``: voxmeter's speed as ratios to a bare app, in one run.

Everything runs on loopback, is bounded in count and time, and stops by
itself. Figures go to bench/results.json and bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg

from bench import alerts, ingest_reports, overview
from bench.load import load, wrk_available
from bench.report import markdown
from bench.statements import statements_bench
from voxmeter.domain import tokens
from voxmeter.domain.models import LedgerEvent, NewOperation, TokenScope
from voxmeter.domain.usage import fingerprint
from voxmeter.storage import open_store, schema

HERE = Path(__file__).resolve().parent
REPORT_PATH = "/api/v2/billing.php?api=ivr_calls"
POSTGRES_ADMIN = os.environ.get(
    "VOXMETER_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
# Limits stay enforced (every call is counted and takes a slot) but high
# enough that the load generator's connections are never refused.
GENEROUS = {"VOXMETER_CALLS_PER_LICENSE": str(10**9), "VOXMETER_CONCURRENCY_PER_TOKEN": "64"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(
            int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS")
        )
        stack.extend(int(child) for child in children)
    return total / 1024


@contextmanager
def serving(
    command: list[str], env: dict[str, str]
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(
        [*command, "--port", str(port)], env={**os.environ, **env},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {command}") from None
                time.sleep(0.1)
        yield base, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def bare_server() -> list[str]:
    return [sys.executable, "-m", "uvicorn", "bench.bare:app", "--log-level", "warning",
            "--no-access-log"]  # fmt: skip


def voxmeter_server() -> list[str]:
    return [sys.executable, "-m", "voxmeter", "serve", "--workers", "1"]


async def prepare(url: str, licenses: int = 1000) -> dict[str, Any]:
    """An operation with a report and an ingest token."""
    schema.upgrade(url)
    store = await open_store(url)
    now = datetime.now(UTC)
    try:
        operation = await store.create_operation(
            NewOperation(name="Bench", licenses=licenses, timezone="UTC"), now
        )
        secrets = {}
        for scope in TokenScope:
            token_id, secret = tokens.mint()
            await store.create_token(
                token_id, operation.id, tokens.secret_hash(secret), scope, "bench", now
            )
            secrets[scope.value] = secret
        return {"operation": operation, **secrets}
    finally:
        await store.close()


async def fill(url: str, operation: Any, total: int, already: int = 0) -> float:
    """``total`` ivr_calls events spread over the month so far, through the bulk path."""
    store = await open_store(url)
    now = datetime.now(UTC)
    month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    span = max(1.0, (now - month_start).total_seconds() - 60)
    started = time.perf_counter()
    try:
        for offset in range(already, already + total, 50_000):
            batch = []
            for i in range(offset, min(offset + 50_000, already + total)):
                moment = month_start + timedelta(seconds=(i * 7919) % span)
                batch.append(
                    LedgerEvent(
                        event_id=f"fill-{i}",
                        meter="ivr_calls",
                        quantity=1,
                        occurred_at=moment,
                        day=moment.date(),
                        attributes=None,
                        fingerprint=fingerprint("ivr_calls", 1, moment, None),
                    )
                )
            await store.record_events(operation.id, batch, now)
    finally:
        await store.close()
    return time.perf_counter() - started


@contextmanager
def postgres_database() -> Iterator[str]:
    name = f"voxmeter_bench_{os.getpid()}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_ADMIN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def report_runs(url: str, secret: str, seconds: float, extra: dict[str, str]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    env = {"VOXMETER_DATABASE_URL": url, **GENEROUS, **extra}
    with serving(voxmeter_server(), env) as (base, process):
        for connections in (16, 64):
            result = load(base + REPORT_PATH, secret, connections, seconds)
            runs[f"c{connections}"] = {**asdict(result), "rss_mb": round(rss_mb(process.pid), 1)}
    return runs


def ingest_rate(url: str, secret: str, batches: int) -> dict[str, Any]:
    """Events/s through POST /api/v2/events, 10,000-event NDJSON batches, 2 clients."""
    now = datetime.now(UTC) - timedelta(minutes=1)
    bodies = [
        b"\n".join(
            orjson.dumps({"id": f"ing-{b}-{i}", "meter": "ivr_calls", "quantity": 1,
                          "time": now.isoformat()})
            for i in range(10_000)
        )
        for b in range(batches)
    ]  # fmt: skip
    env = {"VOXMETER_DATABASE_URL": url, **GENEROUS}
    with serving(voxmeter_server(), env) as (base, process):

        async def send() -> float:
            headers = {"wolkvox-token": secret, "content-type": "application/x-ndjson"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
                queue = list(bodies)
                started = time.perf_counter()

                async def client() -> None:
                    while queue:
                        response = await http.post("/api/v2/events", content=queue.pop())
                        assert response.status_code == 200, response.text[:300]

                await asyncio.gather(client(), client())
                return time.perf_counter() - started

        elapsed = asyncio.run(send())
        return {
            "events": batches * 10_000,
            "seconds": round(elapsed, 2),
            "events_per_second": round(batches * 10_000 / elapsed),
            "rss_mb": round(rss_mb(process.pid), 1),
        }


def import_run(url: str, secret: str, lines: int, workdir: Path) -> dict[str, Any]:
    """``voxmeter usage import`` of a JSONL file: wall time and the importer's peak memory."""
    path = workdir / f"import-{lines}.jsonl"
    moment = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with path.open("wb") as out:
        for i in range(lines):
            out.write(orjson.dumps({"id": f"imp-{lines}-{i}", "meter": "ivr_calls",
                                    "quantity": 1, "time": moment}) + b"\n")  # fmt: skip
    env = {"VOXMETER_DATABASE_URL": url, **GENEROUS}
    with serving(voxmeter_server(), env) as (base, _):
        started = time.perf_counter()
        importer = subprocess.Popen(
            [sys.executable, "-m", "voxmeter", "usage", "import", str(path),
             "--base-url", base, "--token", secret],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _, status, usage = os.wait4(importer.pid, 0)
        elapsed = time.perf_counter() - started
    if status != 0:
        raise RuntimeError("usage import failed")
    return {
        "lines": lines,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "seconds": round(elapsed, 2),
        "events_per_second": round(lines / elapsed),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def latency_at(url: str, secret: str, seconds: float) -> float:
    env = {"VOXMETER_DATABASE_URL": url, **GENEROUS}
    with serving(voxmeter_server(), env) as (base, _):
        return load(base + REPORT_PATH, secret, 1, seconds).p50_ms


PARTS = [
    "report", "volume", "ingest", "ingest_reports", "import", "postgres", "overview",
    "statements", "alerts",
]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small volumes and short runs")
    parser.add_argument(
        "--only",
        choices=PARTS,
        action="append",
    )
    args = parser.parse_args()
    parts = set(args.only or PARTS)
    seconds = 2.0 if args.quick else 6.0
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_generator": "wrk" if wrk_available() else "python",
        "quick": args.quick,
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        sqlite_url = f"sqlite:///{workdir / 'bench.db'}"
        world = asyncio.run(prepare(sqlite_url))
        asyncio.run(fill(sqlite_url, world["operation"], 1000))
        if "report" in parts:
            print("report: bare app", file=sys.stderr)
            with serving(bare_server(), {}) as (base, _):
                results["bare"] = {
                    f"c{c}": asdict(load(base + REPORT_PATH, "x", c, seconds)) for c in (16, 64)
                }
            print("report: voxmeter on SQLite, limits on and off", file=sys.stderr)
            results["sqlite_limits_on"] = report_runs(sqlite_url, world["report"], seconds, {})
            results["sqlite_limits_off"] = report_runs(
                sqlite_url, world["report"], seconds, {"VOXMETER_ENFORCE_LIMITS": "false"}
            )
        if "ingest" in parts:
            print("ingest: SQLite", file=sys.stderr)
            results["sqlite_ingest"] = ingest_rate(
                sqlite_url, world["ingest"], 5 if args.quick else 20
            )
        if "ingest_reports" in parts:
            print(
                "ingest_reports: SQLite, reports during ingestion, maximal bodies", file=sys.stderr
            )

            def generous_serving(env: dict[str, str]) -> Any:
                return serving(voxmeter_server(), {**GENEROUS, **env})

            results["ingest_reports"] = ingest_reports.run(
                generous_serving, rss_mb, sqlite_url, world, REPORT_PATH,
                3 if args.quick else 10, seconds,
            )  # fmt: skip
        if "import" in parts:
            print("import: SQLite", file=sys.stderr)
            sizes = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
            results["import"] = [import_run(sqlite_url, world["ingest"], n, workdir) for n in sizes]
        if "postgres" in parts:
            print("report and ingest: PostgreSQL", file=sys.stderr)
            with postgres_database() as pg_url:
                pg = asyncio.run(prepare(pg_url))
                asyncio.run(fill(pg_url, pg["operation"], 1000))
                results["postgres_limits_on"] = report_runs(pg_url, pg["report"], seconds, {})
                results["postgres_ingest"] = ingest_rate(
                    pg_url, pg["ingest"], 3 if args.quick else 10
                )
        if "volume" in parts:
            large = 100_000 if args.quick else 10_000_000
            volume_url = f"sqlite:///{workdir / 'volume.db'}"
            vol = asyncio.run(prepare(volume_url))
            asyncio.run(fill(volume_url, vol["operation"], 1000))
            small_ms = latency_at(volume_url, vol["report"], seconds)
            print(f"volume: filling to {large:,} events", file=sys.stderr)
            fill_seconds = asyncio.run(fill(volume_url, vol["operation"], large - 1000, 1000))
            large_ms = latency_at(volume_url, vol["report"], seconds)
            results["volume"] = {
                "small_events": 1000,
                "large_events": large,
                "small_p50_ms": small_ms,
                "large_p50_ms": large_ms,
                "ratio": round(large_ms / small_ms, 3),
                "fill_seconds": round(fill_seconds, 1),
                "fill_events_per_second": round((large - 1000) / fill_seconds),
            }
        if "overview" in parts:
            operations, events = (100, 100_000) if args.quick else (1000, 10_000_000)
            print(f"overview: {operations:,} operations over {events:,} events", file=sys.stderr)
            results["overview"] = overview.run(
                f"sqlite:///{workdir / 'overview.db'}", operations, events,
                20 if args.quick else 100, serving, voxmeter_server,
            )  # fmt: skip
        if "statements" in parts:
            events = 100_000 if args.quick else 10_000_000

            def voxmeter_serving(env: dict[str, str]) -> Any:
                return serving(voxmeter_server(), {**GENEROUS, **env})

            print(f"statements: SQLite, 1,000 operations, {events:,} events", file=sys.stderr)
            close_url = f"sqlite:///{workdir / 'statements.db'}"
            close_world = asyncio.run(prepare(close_url))
            results["sqlite_statements"] = statements_bench(
                close_url, close_world["report"], 1000, events, seconds, voxmeter_serving,
                REPORT_PATH,
            )  # fmt: skip
            print(f"statements: PostgreSQL, 1,000 operations, {events:,} events", file=sys.stderr)
            with postgres_database() as pg_url:
                close_world = asyncio.run(prepare(pg_url))
                results["postgres_statements"] = statements_bench(
                    pg_url, close_world["report"], 1000, events, seconds, voxmeter_serving,
                    REPORT_PATH,
                )  # fmt: skip
        if "alerts" in parts:
            batches = 5 if args.quick else 20
            print(f"alerts: SQLite ingestion with 0 and {alerts.RULES} rules", file=sys.stderr)
            results["alerts_ingest"] = alerts.ingestion(
                lambda url: asyncio.run(prepare(url)), ingest_rate,
                (f"sqlite:///{workdir / 'rules-0.db'}", f"sqlite:///{workdir / 'rules-100.db'}"),
                batches,
            )  # fmt: skip
            print("alerts: delivery latency, SQLite", file=sys.stderr)
            latency_url = f"sqlite:///{workdir / 'deliveries.db'}"
            results["alerts_delivery"] = alerts.delivery_latency(
                latency_url, asyncio.run(prepare(latency_url))["ingest"],
                20 if args.quick else 100,
                lambda env: serving(voxmeter_server(), {**GENEROUS, **env}),
            )  # fmt: skip
    # Only a full run replaces the figures the README quotes.
    out = HERE if not (args.quick or args.only) else HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "RESULTS.md").write_text(markdown(results))
    print((out / "RESULTS.md").read_text())
    print(f"written to {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
