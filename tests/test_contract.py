"""The contract as data: catalogue, quantities, envelope."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from voxmeter.contract import envelope
from voxmeter.contract.errors import ApiError
from voxmeter.contract.meters import BILLING_METERS, METERS, CodeType, Family, Kind, lookup
from voxmeter.contract.quantities import QuantityError, format_items, to_scaled

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_catalogue_holds_the_27_billing_entries_in_documentation_order():
    assert [m.number for m in BILLING_METERS] == list(range(1, 28))
    assert len({m.api for m in BILLING_METERS}) == 27
    seeds = {m.api for m in METERS if m.seed}
    assert seeds == {"chat_licenses", "interactions", "ivr_calls", "stereo_rec", "services"}


@pytest.mark.parametrize(
    ("api", "kind", "code_type"),
    [
        ("chat_licenses", Kind.GAUGE, CodeType.NUMBER),
        ("interactions", Kind.COUNTER, CodeType.NUMBER),
        ("ivr_calls", Kind.COUNTER, CodeType.NUMBER),
        ("stereo_rec", Kind.MINUTES, CodeType.STRING),
        ("nlp_ai", Kind.COUNTER, CodeType.STRING),
    ],
)
def test_seed_and_spec_kinds_and_code_types(api, kind, code_type):
    meter = lookup(Family.BILLING, api)
    assert meter is not None
    assert (meter.kind, meter.code_type) == (kind, code_type)


def test_families_do_not_share_names_by_accident():
    assert lookup(Family.BILLING, "services") is None
    assert lookup(Family.INFORMATION, "ivr_calls") is None
    assert lookup(Family.INFORMATION, "token_info") is not None


def test_the_api_reference_lists_every_meter():
    reference = (DOCS / "api.md").read_text()
    for meter in METERS:
        assert f"| `{meter.api}` |" in reference, meter.api


@pytest.mark.parametrize(
    ("value", "scale", "scaled"),
    [
        (5, 0, 5),
        ("5", 0, 5),
        (5.0, 0, 5),
        ("12.5", 3, 12500),
        ("0.001", 3, 1),
        (Decimal("1e3"), 0, 1000),
        ("-2", 0, -2),
    ],
)
def test_quantities_scale_exactly(value, scale, scaled):
    assert to_scaled(value, scale) == scaled


@pytest.mark.parametrize(
    ("value", "scale", "reason"),
    [
        ("1.5", 0, "whole number"),
        ("0.0001", 3, "more than 3 decimal places"),
        (1.5, 3, "decimal strings"),
        (float("nan"), 0, "finite"),
        ("Infinity", 0, "finite"),
        ("abc", 0, "not a decimal"),
        (True, 0, "must be a number"),
        (None, 0, "must be a number"),
        ("1e13", 0, "too large"),
    ],
)
def test_quantities_refuse_what_is_not_exact(value, scale, reason):
    with pytest.raises(QuantityError, match=reason):
        to_scaled(value, scale)


@pytest.mark.parametrize(
    ("scaled", "scale", "text"),
    [
        (0, 0, "0"),
        (17, 0, "17"),
        (12500, 3, "12.5"),
        (12000, 3, "12"),
        (1, 3, "0.001"),
        (0, 3, "0"),
    ],
)
def test_items_are_plain_numeric_strings(scaled, scale, text):
    assert format_items(scaled, scale) == text


def test_envelopes_keep_key_order_and_code_types():
    ok = orjson.loads(envelope.success(CodeType.STRING, "m", []))
    assert list(ok) == ["code", "error", "msg", "data"]
    assert ok["code"] == "200"
    refused = orjson.loads(envelope.failure(ApiError(403, "TOKEN LIMIT EXCEEDED")))
    assert refused == {"code": 403, "error": "FORBIDDEN", "msg": "TOKEN LIMIT EXCEEDED", "data": []}
