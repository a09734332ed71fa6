"""What a new user or an existing wolkvox client meets first: get, watch and the client's errors.

Through the real CLI against a real voxmeter server on loopback; a fake
transport only for a body voxmeter never sends (the seed's empty sample).
"""

from __future__ import annotations

import csv
import io
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest
from click.testing import CliRunner, Result

from conftest import FakeClock, RunningServer, add_operation, add_token, free_port
from ledger_helpers import record
from voxmeter.cli import main
from voxmeter.client import Client, VoxmeterError, errors
from voxmeter.contract.meters import BILLING_METERS
from voxmeter.storage.base import Store


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False, env=env)


@pytest.fixture
async def secret(store: Store, clock: FakeClock) -> str:
    operation = await add_operation(
        store, clock, licenses=2, services=frozenset({"rsync", "text_analytics"})
    )
    await record(
        store, operation, clock(),
        ("ivr_calls", 12, "2026-11-03T10:00:00Z"),
        ("nlp_ai", 3, "2026-11-05T10:00:00Z"),
    )  # fmt: skip
    return await add_token(store, clock, operation)


@pytest.mark.parametrize("settings_overrides", [{"calls_per_license": 2}])
def test_get_all_prints_what_it_got_before_the_quota_ran_out(server: RunningServer, secret: str):
    result = run(
        "get", "--all", "--base-url", server.base_url, "--token", secret, "--format", "csv"
    )
    assert result.exit_code == 1
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["api"] for r in rows] == [m.api for m in BILLING_METERS[:4]]  # 2 licenses x 2
    assert "TOKEN LIMIT EXCEEDED" in result.stderr
    assert "after 4 of 27 meters" in result.stderr


def test_get_prints_the_values_as_the_server_sent_them(server: RunningServer, secret: str):
    where = ("--base-url", server.base_url, "--token", secret)
    nlp = orjson.loads(run("get", "nlp_ai", *where, "--format", "json").stdout)
    assert nlp[0]["date"] == "2026-11"
    assert nlp[0]["items"] == "3"
    services = orjson.loads(run("get", "services", *where, "--format", "json").stdout)[0]
    assert (services["licenses"], services["rsync"], services["video_call"]) == ("2", "yes", "no")
    info = list(
        csv.DictReader(io.StringIO(run("get", "token_info", *where, "--format", "csv").stdout))
    )
    assert info[0]["available_consumption_options"].isdigit()
    assert info[0]["token_limit"] == "2000"
    typed = run("get", "services", *where).stdout.splitlines()
    assert "True" in typed[1].split()  # the table shows typed values


def test_cli_errors_name_flags_and_suggest_meters(server: RunningServer):
    missing = run("get", "ivr_calls", "--token", "x")
    assert missing.exit_code == 2
    assert "--server" in missing.stderr and "--base-url" in missing.stderr
    assert "server=" not in missing.stderr
    misspelt = run("get", "ivr_call", "--base-url", server.base_url, "--token", "x")
    assert misspelt.exit_code == 2
    assert "did you mean 'ivr_calls'?" in misspelt.stderr


def test_a_refused_connection_names_the_url_and_shows_each_retry():
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = run("get", "ivr_calls", "--base-url", url, "--token", "x")
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    retries = [line for line in lines if line.startswith(f"cannot reach {url}: ")]
    assert [line.split("; retry ")[1].split()[0] for line in retries] == ["1", "2", "3"]
    assert "refused" in lines[-1].lower() and url in lines[-1]
    assert time.monotonic() - started < 10


def test_a_seed_shaped_body_and_an_empty_token_are_voxmeter_errors(
    monkeypatch: pytest.MonkeyPatch,
):
    seed = {"code": 200, "error": None, "msg": "Information found for the current month",
            "data": [{"operation": "", "description": "", "items": "", "date": ""}]}  # fmt: skip
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=seed))
    with Client("t", server="9901", transport=transport) as client:
        with pytest.raises(errors.UnexpectedAnswerError, match="items '' is not a number"):
            client.ivr_calls()
    monkeypatch.setenv("WOLKVOX_TOKEN", "from-the-environment")
    with pytest.raises(errors.ConfigurationError, match="empty"):
        Client("", server="9901")
    assert issubclass(errors.ConfigurationError, VoxmeterError)


def test_watch_refuses_a_plan_beyond_its_share_of_the_quota(
    server: RunningServer, secret: str, tmp_path: Path
):
    where = ("--history", str(tmp_path / "h.db"), "--base-url", server.base_url, "--token", secret)
    everything = run("watch", *where)  # 27 meters every 5m against 2,000 calls a day
    assert everything.exit_code == 2
    assert "7776 calls a day" in everything.stderr
    assert "--max-share" in everything.stderr
    assert run("watch", "ivr_calls", "--max-share", "10", *where).exit_code == 2  # 288 > 200
    for too_often in ("1", "0", "4m"):
        refused = run("watch", "ivr_calls", "--every", too_often, *where)
        assert refused.exit_code == 2
        assert "--every" in refused.stderr
    assert not (tmp_path / "h.db").exists()  # nothing polled


def test_watch_prints_each_poll_and_stops_cleanly_on_ctrl_c(
    server: RunningServer, secret: str, tmp_path: Path
):
    history = str(tmp_path / "h.db")
    command = [sys.executable, "-m", "voxmeter", "watch", "ivr_calls", "--history", history,
               "--base-url", server.base_url, "--token", secret]  # fmt: skip
    watcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ, text=True
    )
    assert watcher.stdout is not None
    ready, _, _ = select.select([watcher.stdout], [], [], 30)
    if not ready:
        watcher.kill()
        watcher.wait()
        pytest.fail("no figures printed after the first poll")
    first = watcher.stdout.readline()  # the first poll's figures; the next is 5 minutes away
    assert first.split()[1:] == ["ivr_calls", "12", "2026-11-24"]
    watcher.send_signal(signal.SIGINT)
    rest, errors = watcher.communicate(timeout=30)
    assert watcher.returncode == 0
    assert rest == ""
    assert "Traceback" not in errors and "Aborted" not in errors
    assert "288 calls a day" in errors


def test_every_listing_command_speaks_json_and_csv(
    server: RunningServer, secret: str, tmp_path: Path
):
    path = tmp_path / "h.db"
    watched = run("watch", "ivr_calls", "--count", "1", "--history", str(path),
                  "--base-url", server.base_url, "--token", secret)  # fmt: skip
    assert watched.exit_code == 0, watched.output
    exported = orjson.loads(
        run("history", "export", "--history", str(path), "--format", "json").stdout
    )
    assert [(r["api"], r["items"]) for r in exported] == [("ivr_calls", "12")]
    environment = {"VOXMETER_DATABASE_URL": server.settings.database_url}
    operations = orjson.loads(run("operation", "list", "--format", "json", **environment).stdout)
    assert [o["name"] for o in operations] == ["Acme BPO"]
    tokens = run("token", "list", "Acme BPO", "--format", "csv", **environment).stdout
    assert next(csv.DictReader(io.StringIO(tokens)))["token_limit"] == "2000"
