"""Rating rules, against amounts worked out by hand, and their properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voxmeter.domain.pricing import (
    LineKind,
    MeterPrice,
    Model,
    Month,
    PriceSheet,
    PricingError,
    currency,
    rate_meter,
    rate_month,
    sheet_for,
)
from voxmeter.domain.statements import Billed, adjustment_lines, closable

USD = currency("USD")
D = Decimal
TIERS = [("100", "0.10"), ("1000", "0.05"), (None, "0.01")]


def sheet(prices: dict[str, MeterPrice], **fields: object) -> PriceSheet:
    return PriceSheet(
        currency=fields.pop("money", USD),  # type: ignore[arg-type]
        effective=Month(2026, 10),
        prices=prices,
        **fields,  # type: ignore[arg-type]
    )


def test_flat_price_with_included_units() -> None:
    assert rate_meter("ivr_calls", D(1234), MeterPrice.flat("0.015"), USD).amount == D("18.51")
    line = rate_meter("ivr_calls", D(1234), MeterPrice.flat("0.015", included=234), USD)
    assert (line.billable, line.amount) == (D(1000), D("15.00"))
    assert rate_meter("ivr_calls", D(100), MeterPrice.flat("1", included=234), USD).amount == 0


def test_rounding_is_half_even_to_minor_units() -> None:
    assert rate_meter("ivr_calls", D(1), MeterPrice.flat("0.125"), USD).amount == D("0.12")
    assert rate_meter("ivr_calls", D(1), MeterPrice.flat("0.135"), USD).amount == D("0.14")
    # CLP has no minor unit: 333 x 1.5 = 499.5, the even neighbour is 500.
    assert rate_meter("ivr_calls", D(333), MeterPrice.flat("1.5"), currency("CLP")).amount == D(500)
    assert rate_meter("ivr_minutes", D("12.345"), MeterPrice.flat("0.10"), USD).amount == D("1.23")


def test_graduated_tiers_price_each_unit_in_its_tier() -> None:
    line = rate_meter("ivr_calls", D(1500), MeterPrice.tiered(Model.GRADUATED, TIERS), USD)
    # 100 x 0.10 + 900 x 0.05 + 500 x 0.01
    assert [(t.quantity, t.unit_price) for t in line.tiers] == [
        (D(100), D("0.10")),
        (D(900), D("0.05")),
        (D(500), D("0.01")),
    ]
    assert line.amount == D("60.00")
    with_included = MeterPrice.tiered(Model.GRADUATED, TIERS, included=50)
    # 1450 billable: 10 + 45 + 450 x 0.01
    assert rate_meter("ivr_calls", D(1500), with_included, USD).amount == D("59.50")


def test_volume_tiers_price_every_unit_at_the_tier_reached() -> None:
    price = MeterPrice.tiered(Model.VOLUME, TIERS)
    assert rate_meter("ivr_calls", D(1500), price, USD).amount == D("15.00")
    assert rate_meter("ivr_calls", D(500), price, USD).amount == D("25.00")
    assert rate_meter("ivr_calls", D(100), price, USD).amount == D("10.00")  # bounds inclusive


def test_minimum_cap_and_tax() -> None:
    prices = {"ivr_calls": MeterPrice.flat("0.015")}
    lifted = rate_month({"ivr_calls": D(1000)}, sheet(prices, minimum=D(50), tax_rate=D("0.19")))
    assert [(line.kind, line.amount) for line in lifted.lines] == [
        (LineKind.USAGE, D("15.00")),
        (LineKind.MINIMUM, D("35.00")),
    ]
    assert (lifted.subtotal, lifted.tax, lifted.total) == (D("50.00"), D("9.50"), D("59.50"))
    capped = rate_month({"ivr_calls": D(4000)}, sheet(prices, cap=D(40)))
    assert [line.amount for line in capped.lines] == [D("60.00"), D("-20.00")]
    assert capped.total == D("40.00")


def test_bad_prices_are_refused() -> None:
    with pytest.raises(PricingError, match="unbounded"):
        MeterPrice.tiered(Model.GRADUATED, [("100", "1")])
    with pytest.raises(PricingError, match="grow"):
        MeterPrice.tiered(Model.GRADUATED, [("100", "1"), ("50", "1"), (None, "1")])
    with pytest.raises(PricingError, match="decimal string"):
        MeterPrice.flat(0.1)
    with pytest.raises(PricingError, match="negative"):
        MeterPrice.flat("-1")
    with pytest.raises(PricingError, match="unknown currency"):
        currency("XXX")
    with pytest.raises(PricingError, match="no billing meter"):
        sheet({"nope": MeterPrice.flat("1")})
    with pytest.raises(PricingError, match="YYYY-MM"):
        Month.parse("2026-13")


def test_the_version_in_force_is_the_latest_effective_one() -> None:
    october = sheet({})
    december = PriceSheet(USD, Month(2026, 12), {})
    assert sheet_for([december, october], Month(2026, 9)) is None
    assert sheet_for([december, october], Month(2026, 11)) is october
    assert sheet_for([december, october], Month(2027, 1)) is december


def test_a_month_closes_after_its_local_end_and_the_grace() -> None:
    bogota = ZoneInfo("America/Bogota")  # UTC-5: November ends at 05:00 UTC on Dec 1
    end = datetime(2026, 12, 1, 5, tzinfo=UTC)
    grace = timedelta(hours=48)
    assert not closable(Month(2026, 11), bogota, end + grace - timedelta(seconds=1), grace)
    assert closable(Month(2026, 11), bogota, end + grace, grace)


def test_adjustments_bill_the_difference_and_name_what_they_adjust() -> None:
    prices = {"ivr_calls": MeterPrice.tiered(Model.GRADUATED, TIERS)}
    month_sheet = sheet(prices, minimum=D(20))
    billed = {"ivr_calls": Billed(D(200), D("15.00")), "minimum": Billed(D(0), D("5.00"))}
    lines = adjustment_lines(7, Month(2026, 10), billed, {"ivr_calls": D(1500)}, month_sheet)
    assert [(line.meter, line.quantity, line.amount, line.adjusts) for line in lines] == [
        (
            "ivr_calls",
            D(1300),
            D("45.00"),
            {"statement": 7, "month": "2026-10", "item": "ivr_calls"},
        ),
        (None, D(0), D("-5.00"), {"statement": 7, "month": "2026-10", "item": "minimum"}),
    ]
    assert adjustment_lines(7, Month(2026, 10), billed, {"ivr_calls": D(200)}, month_sheet) == []


quantities = st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False)
prices = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


@st.composite
def tier_prices(draw: st.DrawFn) -> list[tuple[str | None, str]]:
    bounds = sorted(set(draw(st.lists(st.integers(1, 10**6), min_size=0, max_size=4))))
    return [(str(b), str(draw(prices))) for b in bounds] + [(None, str(draw(prices)))]


@given(
    usage=st.dictionaries(st.sampled_from(["ivr_calls", "ivr_minutes", "asr_calls"]), quantities),
    tiers=tier_prices(),
    model=st.sampled_from(list(Model)),
    flat=prices,
    tax_rate=st.decimals(min_value=0, max_value=1, places=4, allow_nan=False),
    minimum=st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False),
    money=st.sampled_from(["USD", "CLP", "JPY", "COP"]),
)
def test_a_total_is_the_sum_of_its_lines_plus_tax(
    usage: dict[str, Decimal],
    tiers: list[tuple[str | None, str]],
    model: Model,
    flat: Decimal,
    tax_rate: Decimal,
    minimum: Decimal,
    money: str,
) -> None:
    price = MeterPrice.flat(flat) if model is Model.FLAT else MeterPrice.tiered(model, tiers)
    rated = rate_month(
        usage,
        sheet(
            {"ivr_calls": price, "ivr_minutes": price, "asr_calls": MeterPrice.flat(flat)},
            money=currency(money),
            tax_rate=tax_rate,
            minimum=minimum,
        ),
    )
    quantum = currency(money).quantum
    assert rated.subtotal == sum(line.amount for line in rated.lines)
    assert rated.total == rated.subtotal + rated.tax
    assert all(line.amount == line.amount.quantize(quantum) for line in rated.lines)
    assert rated.tax == rated.tax.quantize(quantum)


@given(tiers=tier_prices(), low=quantities, extra=quantities, included=quantities)
def test_graduated_rating_is_monotone_in_usage(
    tiers: list[tuple[str | None, str]], low: Decimal, extra: Decimal, included: Decimal
) -> None:
    price = MeterPrice.tiered(Model.GRADUATED, tiers, included=included)
    less = rate_meter("ivr_calls", low, price, USD).amount
    more = rate_meter("ivr_calls", low + extra, price, USD).amount
    assert less <= more
