"""The admin CLI: values on stdout, messages on stderr, non-zero exit on error."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from voxmeter.cli import main


@pytest.fixture
def run(tmp_path: Path):
    runner = CliRunner()
    env = {"VOXMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}"}

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_operation_lifecycle(run):
    created = run(
        "operation", "create", "Acme BPO", "--licenses", "40", "--pbx", "2",
        "--service", "rsync", "--service", "video_call", "--timezone", "America/Lima",
        "--server-id", "0024",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "created operation 'Acme BPO'" in created.stderr
    assert "America/Lima" in created.stdout

    listed = run("operation", "list")
    assert listed.stdout.splitlines()[1].split()[:3] == ["Acme", "BPO", "0024"]

    updated = run("operation", "update", "Acme BPO", "--licenses", "45", "--no-services")
    assert updated.exit_code == 0
    shown = run("operation", "show", "Acme BPO").stdout
    assert "licenses    45" in shown
    assert "services    -" in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--licenses", "-1"], "licenses must not be negative"),
        (["--licenses", "1", "--timezone", "Mars/Base"], "unknown IANA time zone"),
        (["--licenses", "1", "--server-id", "99"], "server id must be four digits"),
        (["--licenses", "1", "--service", "teleport"], "Invalid value for '--service'"),
    ],
)
def test_operation_create_refuses_bad_fields(run, args, message):
    result = run("operation", "create", "Bad", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert run("operation", "list").stdout.splitlines()[1:] == []


def test_duplicate_operation_and_unknown_operation_fail(run):
    assert run("operation", "create", "Acme", "--licenses", "1").exit_code == 0
    again = run("operation", "create", "Acme", "--licenses", "1")
    assert again.exit_code == 1
    assert "Acme" in again.stderr
    missing = run("operation", "show", "Nobody")
    assert missing.exit_code == 1
    assert "NO OPERATION NAMED 'Nobody'" in missing.stderr


def test_token_create_prints_only_the_secret_and_list_never_shows_it(run):
    run("operation", "create", "Acme", "--licenses", "2")
    created = run("token", "create", "Acme", "--description", "billing export")
    assert created.exit_code == 0
    secret = created.stdout.strip()
    assert secret.startswith("vxm_")
    assert "\n" not in secret
    listed = run("token", "list", "Acme")
    assert secret not in listed.output
    row = listed.stdout.splitlines()[1].split()
    assert row[1:7] == ["report", "active", "2000", "0", "0", "2000"]
    token_id = row[0]
    assert run("token", "revoke", token_id).exit_code == 0
    assert "revoked" in run("token", "list", "Acme").stdout
    assert run("token", "revoke", token_id).exit_code == 1


def test_usage_record_is_idempotent_by_id(run):
    run("operation", "create", "Acme", "--licenses", "2", "--timezone", "UTC")
    moment = datetime.now(UTC).replace(microsecond=0).isoformat()
    args = ("usage", "record", "Acme", "ivr_calls", "5", "--id", "cdr-1", "--time", moment)
    first = run(*args)
    assert first.exit_code == 0
    assert first.stdout.strip() == "cdr-1"
    assert "recorded" in first.stderr
    assert "duplicate" in run(*args).stderr
    conflict = run("usage", "record", "Acme", "ivr_calls", "6", "--id", "cdr-1", "--time", moment)
    assert conflict.exit_code == 1
    assert "already used for a different event" in conflict.stderr
    bad = run("usage", "record", "Acme", "ivr_calls", "1.5")
    assert bad.exit_code == 2
    assert "whole number" in bad.stderr


def test_demo_builds_a_database_and_prints_a_working_token(run, tmp_path: Path):
    result = run("demo", "--database", str(tmp_path / "demo.db"), "--no-serve")
    assert result.exit_code == 0
    report, ingest = result.stdout.split()
    assert report.startswith("vxm_") and ingest.startswith("vxm_")
    assert f"curl -s -H 'wolkvox-token: {report}'" in result.stderr
    assert f"curl -s -H 'wolkvox-token: {ingest}'" in result.stderr
    assert (tmp_path / "demo.db").exists()
