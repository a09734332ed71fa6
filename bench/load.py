"""Load generation: wrk when installed, else a bounded Python generator."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import httpx


@dataclass
class LoadResult:
    tool: str
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, token: str, connections: int, seconds: float) -> LoadResult:
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", "--latency", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
         "-H", f"wolkvox-token: {token}", url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return LoadResult("wrk", connections, rps, p50, p99, int(bad.group(1)) if bad else 0)


def run_python(url: str, token: str, connections: int, seconds: float) -> LoadResult:
    """``connections`` keep-alive clients calling in a loop for ``seconds``."""
    latencies: list[float] = []
    bad = 0

    async def worker(client: httpx.AsyncClient, deadline: float) -> None:
        nonlocal bad
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            response = await client.get(url, headers={"wolkvox-token": token})
            latencies.append((time.perf_counter() - start) * 1000)
            bad += response.status_code >= 300

    async def main() -> float:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            start = time.perf_counter()
            deadline = start + seconds
            await asyncio.gather(*(worker(client, deadline) for _ in range(connections)))
            return time.perf_counter() - start

    elapsed = asyncio.run(main())
    latencies.sort()
    return LoadResult(
        "python",
        connections,
        len(latencies) / elapsed,
        latencies[len(latencies) // 2],
        latencies[int(len(latencies) * 0.99)],
        bad,
    )


def load(url: str, token: str, connections: int, seconds: float) -> LoadResult:
    runner = run_wrk if wrk_available() else run_python
    return runner(url, token, connections, seconds)
