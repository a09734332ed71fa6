"""``voxmeter pricebook``, ``subscribe`` and ``statement`` on the command line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from voxmeter.cli import main

Run = Callable[..., Result]


@pytest.fixture
def run(tmp_path: Path) -> Run:
    runner = CliRunner()
    env = {
        "VOXMETER_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "VOXMETER_STATEMENT_GRACE_HOURS": "0",
        "VOXMETER_STATEMENT_ISSUER_NAME": "Acme Billing SAS",
    }

    def invoke(*args: str) -> Result:
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    return invoke


def test_price_a_book_preview_close_and_export(run: Run, tmp_path: Path) -> None:
    created = run("operation", "create", "Acme BPO", "--licenses", "4", "--timezone", "UTC")
    assert created.exit_code == 0
    assert run("pricebook", "create", "Standard", "--currency", "cop").exit_code == 0
    tiers = run(
        "pricebook", "set-price", "Standard", "ivr_calls", "--from", "2000-01",
        "--tier", "100:10", "--tier", "*:5",
    )  # fmt: skip
    assert tiers.exit_code == 0, tiers.output
    book = orjson.loads(tiers.stdout)
    assert book["currency"] == "COP"
    assert book["versions"][0]["prices"]["ivr_calls"]["model"] == "graduated"
    terms = run("pricebook", "set-terms", "Standard", "--from", "2000-01", "--tax-rate", "0.19")
    assert terms.exit_code == 0, terms.output
    assert run("subscribe", "Acme BPO", "Standard").exit_code == 0

    now = datetime.now(UTC)
    recorded = run(
        "usage", "record", "Acme BPO", "ivr_calls", "150", "--time", now.isoformat(), "--id", "x"
    )
    assert recorded.exit_code == 0, recorded.output
    preview = run("statement", "preview", "Acme BPO", "--format", "csv")
    assert preview.exit_code == 0, preview.output
    # 100 x 10 + 50 x 5 = 1250; tax 237.50
    assert preview.stdout.splitlines()[-1].split(",")[4:9] == ["total", "", "", "", ""]
    assert preview.stdout.splitlines()[-1].split(",")[10] == "1487.50"

    month = f"{(now.replace(day=1) - timedelta(days=1)):%Y-%m}"
    closed = run("statement", "close", "--month", month)
    assert closed.exit_code == 0, closed.output
    assert "closed 1 statement(s)" in closed.stderr
    assert run("statement", "close", "--month", month).stderr.startswith("closed 0")
    listed = run("statement", "list").stdout.splitlines()
    assert listed[1].split() == ["1", "Acme", "BPO", month, "0.00", "COP"]
    shown = run("statement", "show", "1")
    assert orjson.loads(shown.stdout)["issuer"]["name"] == "Acme Billing SAS"
    lines = orjson.loads(run("statement", "lines", "1").stdout)
    assert [(line["meter"], line["events"]) for line in lines] == [("ivr_calls", [])]
    pdf = tmp_path / "s.pdf"
    exported = run("statement", "export", "1", "--format", "pdf", "-o", str(pdf))
    assert exported.exit_code == 0, exported.output
    assert pdf.read_bytes().startswith(b"%PDF")


SET_PRICE = ["pricebook", "set-price", "Standard", "ivr_calls", "--from"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pricebook", "create", "X", "--currency", "XYZ"], "unknown currency"),
        ([*SET_PRICE, "2026-01"], "either"),
        ([*SET_PRICE, "2026-01", "--tier", "100"], "UP_TO:UNIT_PRICE"),
        ([*SET_PRICE, "2026-01", "--tier", "100:1"], "unbounded"),
        ([*SET_PRICE, "26-01", "--unit-price", "1"], "YYYY-MM"),
        (["statement", "close", "--month", "2026-1"], "YYYY-MM"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(run: Run, args: list[str], message: str) -> None:
    assert run("pricebook", "create", "Standard", "--currency", "USD").exit_code == 0
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert orjson.loads(run("pricebook", "show", "Standard").stdout)["versions"] == []


def test_unknown_things_exit_1(run: Run) -> None:
    for args in (("statement", "show", "7"), ("pricebook", "show", "Nope")):
        result = run(*args)
        assert result.exit_code == 1
        assert "NO " in result.stderr
