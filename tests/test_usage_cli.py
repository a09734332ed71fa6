"""Usage verbs of the CLI: import over HTTP, events, corrections, ledger verify."""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result

from conftest import FakeClock, RunningServer, add_operation, add_token, execute_sql
from voxmeter.cli import main
from voxmeter.domain.models import Rejection, TokenScope
from voxmeter.storage import open_store
from voxmeter.storage.base import Store


@pytest.fixture
def cli(database_url: str):
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        env = {"VOXMETER_DATABASE_URL": database_url}
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def write_jsonl(path: Path, count: int, start: int = 0, time: str = "2026-11-20T10:00:00Z") -> Path:
    with path.open("wb") as out:
        for i in range(start, start + count):
            out.write(
                orjson.dumps(
                    {"id": f"cdr-{i}", "meter": "ivr_calls", "quantity": 1 + i % 3, "time": time}
                )
                + b"\n"
            )
    return path


def expected_total(count: int) -> int:
    return sum(1 + i % 3 for i in range(count))


async def ivr_total(store: Store, operation) -> int:
    from datetime import date

    return await store.summed_total(
        operation.id, "ivr_calls", date(2026, 11, 1), date(2026, 11, 30)
    )


async def test_import_streams_batches_and_is_safe_to_rerun(
    server: RunningServer, store: Store, clock: FakeClock, cli, tmp_path: Path
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    data = write_jsonl(tmp_path / "events.jsonl", 2500)
    args = ("usage", "import", str(data), "--base-url", server.base_url, "--token", secret)
    first = cli(*args, "--batch-size", "1000")
    assert first.exit_code == 0, first.output
    summary = orjson.loads(first.stdout)
    assert (summary["accepted"], summary["duplicates"], summary["batches"]) == (2500, 0, 3)
    assert summary["complete"] is True
    again = orjson.loads(cli(*args).stdout)
    assert (again["events"], again["accepted"], again["duplicates"]) == (2500, 0, 2500)
    assert await ivr_total(store, operation) == expected_total(2500)


async def test_import_reads_csv(
    server: RunningServer, store: Store, clock: FakeClock, cli, tmp_path: Path
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    data = tmp_path / "events.csv"
    data.write_text(
        "id,meter,quantity,time,attributes\n"
        'a,stereo_rec,1.5,2026-11-20T10:00:00Z,"{""agent"": 7}"\n'
        "b,stereo_rec,0.25,2026-11-21T10:00:00Z,\n"
    )
    result = cli("usage", "import", str(data), "--base-url", server.base_url, "--token", secret)
    assert result.exit_code == 0, result.output
    with server.client(await add_token(store, clock, operation)) as http:
        items = http.get("/api/v2/billing.php", params={"api": "stereo_rec"}).json()["data"][0][
            "items"
        ]
    assert items == "1.75"


async def test_import_stops_at_a_refused_batch_and_names_the_lines(
    server: RunningServer, store: Store, clock: FakeClock, cli, tmp_path: Path
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    data = write_jsonl(tmp_path / "events.jsonl", 5)
    with data.open("ab") as out:
        out.write(b'{"id": "x", "meter": "fax", "quantity": 1, "time": "2026-11-20T10:00:00Z"}\n')
    result = cli("usage", "import", str(data), "--base-url", server.base_url, "--token", secret,
                 "--batch-size", "3")  # fmt: skip
    assert result.exit_code == 1
    assert "line 6: unknown meter 'fax'" in result.stderr
    assert await ivr_total(store, operation) == expected_total(3)  # the first batch only


def test_events_corrections_and_verify_from_the_cli(cli, database_url: str):
    """Sync on purpose: the CLI runs its own event loop."""
    assert cli("operation", "create", "Acme BPO", "--licenses", "1").exit_code == 0
    moment = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    for event_id, quantity in (("a", "5"), ("b", "7")):
        args = ("usage", "record", "Acme BPO", "ivr_calls", quantity, "--id", event_id)
        assert cli(*args, "--time", moment).exit_code == 0
    assert cli("usage", "correct", "Acme BPO", "a", "--void", "--reason", "test").exit_code == 0
    assert cli("usage", "correct", "Acme BPO", "b", "--amend", "3").exit_code == 0
    assert cli("usage", "correct", "Acme BPO", "ghost", "--void").exit_code == 1
    assert cli("usage", "correct", "Acme BPO", "b", "--void", "--amend", "1").exit_code == 2
    rows = {
        line.split()[0]: line.split()[2:5]
        for line in cli("usage", "events", "Acme BPO").stdout.splitlines()[1:]
    }
    assert rows == {"a": ["5", "-", "voided"], "b": ["7", "3", "amended"]}

    verified = cli("ledger", "verify")
    assert verified.exit_code == 0
    assert "agrees" in verified.stderr

    execute_sql(database_url, "UPDATE rollups SET total = total + 1 WHERE meter = 'ivr_calls'")
    broken = cli("ledger", "verify", "Acme BPO")
    assert broken.exit_code == 1
    assert "ivr_calls" in broken.stdout
    assert "disagree" in broken.stderr


def test_an_import_interrupted_by_a_server_crash_finishes_exactly_when_rerun(
    database_url: str, serve_process, tmp_path: Path
):
    """Kill the server mid-import, restart it, re-run the import: totals are exact."""
    import asyncio

    from voxmeter.storage import open_store

    async def prepare() -> tuple[str, object]:
        store = await open_store(database_url)
        clock = FakeClock()
        operation = await add_operation(store, clock, licenses=5, timezone="UTC")
        secret = await add_token(store, clock, operation, TokenScope.INGEST)
        await store.close()
        return secret, operation

    secret, operation = asyncio.run(prepare())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60))
    data = write_jsonl(tmp_path / "big.jsonl", 40_000, time=now)
    server = serve_process(workers=1)
    command = [sys.executable, "-m", "voxmeter", "usage", "import", str(data),
               "--base-url", server.base_url, "--token", secret,
               "--batch-size", "500", "--retries", "0"]  # fmt: skip
    importer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    async def stored() -> int:
        store = await open_store(database_url)
        try:
            return await ivr_total_any(store, operation)
        finally:
            await store.close()

    deadline = time.monotonic() + 60
    while asyncio.run(stored()) == 0:
        assert time.monotonic() < deadline, "the import never started"
        time.sleep(0.05)
    server.process.send_signal(signal.SIGKILL)  # a crash, not a graceful stop
    server.process.wait()
    assert importer.wait(timeout=60) != 0  # it saw the server go away
    partial = asyncio.run(stored())
    assert 0 < partial < expected_total(40_000)

    server = serve_process(workers=1)
    rerun = subprocess.run(
        [*command[:7], server.base_url, *command[8:]],
        capture_output=True,
        timeout=120,
        env=os.environ,
    )
    assert rerun.returncode == 0, rerun.stderr
    summary = orjson.loads(rerun.stdout)
    accepted, duplicates = summary["accepted"], summary["duplicates"]
    assert duplicates > 0
    assert accepted + duplicates == 40_000
    assert asyncio.run(stored()) == expected_total(40_000)


async def ivr_total_any(store: Store, operation) -> int:
    from datetime import date

    return await store.summed_total(operation.id, "ivr_calls", date(2000, 1, 1), date(2100, 1, 1))


async def test_import_reads_spreadsheet_csv_and_names_the_files_own_lines(
    server: RunningServer, store: Store, clock: FakeClock, cli, tmp_path: Path
):
    operation = await add_operation(store, clock)
    secret = await add_token(store, clock, operation, TokenScope.INGEST)
    where = ("--base-url", server.base_url, "--token", secret)
    semicolons = tmp_path / "excel.csv"
    semicolons.write_bytes(
        b"\xef\xbb\xbfid;meter;quantity;time\r\n"
        b"a;ivr_calls;2;2026-11-20T10:00:00Z\r\n"
        b"b;ivr_calls;3;2026-11-20T10:00:00Z\r\n"
    )
    imported = cli("usage", "import", str(semicolons), *where)
    assert imported.exit_code == 0, imported.output
    assert orjson.loads(imported.stdout)["accepted"] == 2
    assert "2 events sent in 1 batches: 2 accepted" in imported.stderr

    tabs = tmp_path / "tabs.csv"
    tabs.write_text(
        "id\tmeter\tquantity\ttime\tattributes\n"
        "c\tivr_calls\t1\t2026-11-20T10:00:00Z\t{not json}\n"
        "d\tfax\t1\t2026-11-20T10:00:00Z\t\n"
    )
    checked = cli("usage", "import", str(tabs), "--dry-run")
    assert checked.exit_code == 1
    summary = orjson.loads(checked.stdout)
    assert summary["dry_run"] is True
    assert [(p["line"], p["reason"][:26]) for p in summary["problems"]] == [
        (2, "attributes are not valid J"),
        (3, "unknown meter 'fax'"),
    ]
    assert "Traceback" not in checked.stderr
    sent = cli("usage", "import", str(tabs), *where)
    assert sent.exit_code == 1
    assert "line 2: attributes are not valid JSON" in sent.stderr
    assert await ivr_total(store, operation) == 5  # the dry run and the unreadable batch: nothing

    refused = tmp_path / "refused.csv"
    refused.write_text("id,meter,quantity,time\ne,ivr_calls,1,2026-11-20T10:00:00Z\nf,fax,1,x\n")
    stopped = cli("usage", "import", str(refused), *where)
    assert stopped.exit_code == 1
    assert "line 3: unknown meter 'fax'" in stopped.stderr
    assert orjson.loads(stopped.stdout)["retries"] == 0  # a 400 is never retried


async def test_import_never_retries_a_bad_token(
    server: RunningServer, store: Store, clock: FakeClock, cli, tmp_path: Path
):
    data = write_jsonl(tmp_path / "events.jsonl", 3)
    result = cli("usage", "import", str(data), "--base-url", server.base_url, "--token", "nope")
    assert result.exit_code == 1
    assert "PLEASE VALIDATE TOKEN" in result.stderr
    assert orjson.loads(result.stdout)["retries"] == 0


def test_the_uploader_retries_what_may_pass_and_honours_retry_after(tmp_path: Path):
    """429 and 503 come from proxies in front of voxmeter, which the tests cannot start."""
    from voxmeter.client.ingest import ImportRefused, ImportTotals, Uploader, import_file
    from voxmeter.client.retry import RetryPolicy

    accepted = {"code": 200, "msg": "EVENTS RECORDED", "data": [{"accepted": 3, "duplicates": 0}]}
    answers = [
        httpx.Response(429, headers={"Retry-After": "4"}, json={"msg": "slow down"}),
        httpx.Response(503, json={"msg": "unavailable"}),
        httpx.Response(200, json=accepted),
        httpx.Response(409, json={"code": 409, "msg": "SOME EVENT IDS WERE ALREADY USED"}),
    ]
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answers.pop(0)

    pauses: list[float] = []
    data = write_jsonl(tmp_path / "events.jsonl", 3)
    with httpx.Client(base_url="http://proxy", transport=httpx.MockTransport(answer)) as http:
        uploader = Uploader(http, RetryPolicy(max_retries=5), sleep=pauses.append)
        totals = ImportTotals()
        import_file(data, uploader, 10, totals)
        assert (totals.accepted, totals.retries, len(sent)) == (3, 2, 3)
        assert pauses[0] == 4.0
        with pytest.raises(ImportRefused, match="409"):
            import_file(data, uploader, 10, ImportTotals())
    assert len(sent) == 4  # the 409 once


def test_events_in_the_operations_zone_with_filters(cli):
    assert cli("operation", "create", "Acme BPO", "--licenses", "1").exit_code == 0  # Bogota
    now = time.time()
    moments = {
        name: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - age))
        for name, age in (("old", 600), ("new", 60))
    }
    for event_id, meter, moment in (("a", "ivr_calls", "old"), ("b", "ivr_calls", "new"),
                                    ("c", "asr_calls", "new")):  # fmt: skip
        recorded = cli("usage", "record", "Acme BPO", meter, "1", "--id", event_id,
                       "--time", moments[moment])  # fmt: skip
        assert recorded.exit_code == 0, recorded.output

    def ids(*filters: str) -> list[str]:
        listed = cli("usage", "events", "Acme BPO", "--format", "json", *filters)
        assert listed.exit_code == 0, listed.output
        return sorted(e["id"] for e in orjson.loads(listed.stdout))

    everything = orjson.loads(cli("usage", "events", "Acme BPO", "--format", "json").stdout)
    assert all(e["time"].endswith("-05:00") for e in everything)
    middle = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 300))
    assert ids("--meter", "ivr_calls") == ["a", "b"]
    assert ids("--since", middle) == ["b", "c"]
    assert ids("--until", middle) == ["a"]
    assert ids("--id", "c") == ["c"]
    misspelt = cli("usage", "record", "Acme BPO", "ivr_cals", "1")
    assert misspelt.exit_code == 2
    assert "did you mean 'ivr_calls'?" in misspelt.stderr


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("postgresql://postgres@127.0.0.1:1/nowhere", "cannot reach the database"),
        ("mysql://root@127.0.0.1/voxmeter", "unsupported database URL"),
    ],
)
@pytest.mark.parametrize(
    "command", [("operation", "list"), ("db", "upgrade"), ("ledger", "verify")]
)
def test_an_unusable_database_is_one_line_and_exit_2(url: str, says: str, command: tuple[str, ...]):
    result = CliRunner().invoke(main, list(command), env={"VOXMETER_DATABASE_URL": url})
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert says in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)


# The demo builds a SQLite database: one store only.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_demo_gives_an_ingest_token_whose_curl_line_posts_an_event(
    database_url: str, serve_process
):
    from voxmeter.domain.demo import METER_SERVICE

    path = database_url.removeprefix("sqlite:///")
    built = CliRunner().invoke(main, ["demo", "--no-serve", "--database", path])
    assert built.exit_code == 0, built.output
    report, ingest = built.stdout.split()
    server = serve_process(workers=1)
    curls = [line.strip() for line in built.stderr.splitlines() if line.strip().startswith("curl")]
    posting = next(line for line in curls if ingest in line)
    posting = posting.replace("http://127.0.0.1:8000", server.base_url)
    answer = subprocess.run(shlex.split(posting), capture_output=True, timeout=30, check=True)
    assert orjson.loads(answer.stdout)["msg"] == "EVENTS RECORDED"

    with httpx.Client(base_url=server.base_url, headers={"wolkvox-token": report}) as http:
        flags = http.get("/api/v2/information.php", params={"api": "services"}).json()["data"][0]
        for meter, service in METER_SERVICE.items():
            items = http.get("/api/v2/billing.php", params={"api": meter}).json()["data"][0]
            if flags[service] == "no":
                assert items["items"] == "0", meter


def test_the_rejected_listing_says_how_many_were_dropped(
    database_url: str, clock: FakeClock, cli
) -> None:
    async def refuse_five() -> None:
        store = await open_store(database_url)
        try:
            operation = await add_operation(store, clock)
            refused = [Rejection(i, f"r-{i}", "bad") for i in range(5)]
            await store.log_rejections(
                operation.id, refused, clock(), keep_per_operation=2, keep=100
            )
        finally:
            await store.close()

    asyncio.run(refuse_five())
    listed = cli("usage", "events", "Acme BPO", "--rejected", "--format", "csv")
    assert listed.exit_code == 0
    assert [line.split(",")[2] for line in listed.stdout.splitlines()[1:]] == ["r-4", "r-3"]
    assert listed.stderr == "3 older refused events were dropped from the log\n"
