"""Price books and rating: a month's quantities per meter into money, exactly.

Money is :class:`~decimal.Decimal`, never float. Rounding is stated once,
here, and applied everywhere: every line amount (and the tax) is rounded
half-even to the currency's minor units (:func:`round_money`); subtotals and
totals are sums of already-rounded amounts, so they need no rounding of
their own and always add up.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from voxmeter.contract.meters import billing_meter

ROUNDING = ROUND_HALF_EVEN
ZERO = Decimal(0)


class PricingError(ValueError):
    """A price, tier, currency or month that breaks a rule; the message says which."""


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency and the decimal places of its minor unit."""

    code: str
    minor_units: int

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.minor_units)


# The currencies operators in the region bill in; ISO 4217 minor units.
CURRENCIES: dict[str, Currency] = {
    c.code: c
    for c in (
        Currency("USD", 2),
        Currency("EUR", 2),
        Currency("GBP", 2),
        Currency("CAD", 2),
        Currency("COP", 2),
        Currency("MXN", 2),
        Currency("BRL", 2),
        Currency("ARS", 2),
        Currency("PEN", 2),
        Currency("DOP", 2),
        Currency("GTQ", 2),
        Currency("CRC", 2),
        Currency("UYU", 2),
        Currency("CLP", 0),
        Currency("PYG", 0),
        Currency("JPY", 0),
    )
}


def currency(code: str) -> Currency:
    found = CURRENCIES.get(code.upper())
    if found is None:
        raise PricingError(f"unknown currency {code!r}; known: {', '.join(sorted(CURRENCIES))}")
    return found


def round_money(amount: Decimal, money: Currency) -> Decimal:
    """The one rounding rule: half-even to the currency's minor units."""
    return amount.quantize(money.quantum, rounding=ROUNDING)


def decimal(value: object, what: str) -> Decimal:
    """``value`` (int, Decimal or decimal string) as a finite Decimal; never a float."""
    if isinstance(value, bool | float):
        raise PricingError(f"{what} must be given as a decimal string, not {value!r}")
    try:
        number = Decimal(value) if isinstance(value, int | str | Decimal) else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise PricingError(f"{what} is not a decimal number: {value!r}")
    return number


def _non_negative(value: object, what: str) -> Decimal:
    number = decimal(value, what)
    if number < 0:
        raise PricingError(f"{what} must not be negative")
    return number


# -- months ------------------------------------------------------------------

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, slots=True, order=True)
class Month:
    """A calendar month, written ``YYYY-MM``."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH.match(text)
        if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) < 1:
            raise PricingError(f"month must be YYYY-MM, not {text!r}")
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first_day(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last_day(self) -> date:
        return self.next().first_day - timedelta(days=1)

    def next(self) -> Month:
        return Month(self.year + self.month // 12, self.month % 12 + 1)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


# -- price models ------------------------------------------------------------


class Model(enum.StrEnum):
    FLAT = "flat"  # every billable unit at one price
    GRADUATED = "graduated"  # each unit at the price of the tier it falls in
    VOLUME = "volume"  # every unit at the price of the tier the whole quantity reaches


@dataclass(frozen=True, slots=True)
class Tier:
    """Units up to ``up_to`` (inclusive; None: no upper bound) at ``unit_price``."""

    up_to: Decimal | None
    unit_price: Decimal


@dataclass(frozen=True, slots=True)
class MeterPrice:
    """How one meter is priced. ``included`` units a month are free, before any tier."""

    model: Model
    unit_price: Decimal = ZERO
    tiers: tuple[Tier, ...] = ()
    included: Decimal = ZERO

    @classmethod
    def flat(cls, unit_price: object, included: object = 0) -> MeterPrice:
        return cls.build(Model.FLAT, unit_price=unit_price, included=included)

    @classmethod
    def tiered(
        cls, model: Model, tiers: Sequence[tuple[object | None, object]], included: object = 0
    ) -> MeterPrice:
        return cls.build(model, tiers=tiers, included=included)

    @classmethod
    def build(
        cls,
        model: Model | str,
        *,
        unit_price: object = 0,
        tiers: Sequence[tuple[object | None, object]] = (),
        included: object = 0,
    ) -> MeterPrice:
        """A checked price: tiers ascending, the last one unbounded, no negative figure."""
        try:
            kind = Model(model)
        except ValueError:
            raise PricingError(
                f"price model must be one of {', '.join(Model)}, not {model!r}"
            ) from None
        built: list[Tier] = []
        if kind is Model.FLAT:
            if tiers:
                raise PricingError("a flat price has no tiers")
        else:
            if not tiers:
                raise PricingError(f"a {kind} price needs at least one tier")
            previous = ZERO
            for position, (up_to, price) in enumerate(tiers, start=1):
                bound = None if up_to is None else _non_negative(up_to, f"tier {position} bound")
                last = position == len(tiers)
                if (bound is None) != last:
                    raise PricingError("only the last tier is unbounded, and it must be")
                if bound is not None and bound <= previous:
                    raise PricingError("tier bounds must grow")
                built.append(Tier(bound, _non_negative(price, f"tier {position} price")))
                previous = bound if bound is not None else previous
        return cls(
            model=kind,
            unit_price=_non_negative(unit_price, "unit price") if kind is Model.FLAT else ZERO,
            tiers=tuple(built),
            included=_non_negative(included, "included units"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model.value,
            "unit_price": str(self.unit_price),
            "tiers": [
                {
                    "up_to": None if t.up_to is None else str(t.up_to),
                    "unit_price": str(t.unit_price),
                }
                for t in self.tiers
            ],
            "included": str(self.included),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeterPrice:
        return cls.build(
            data["model"],
            unit_price=data.get("unit_price", "0"),
            tiers=[(t["up_to"], t["unit_price"]) for t in data.get("tiers", ())],
            included=data.get("included", "0"),
        )


@dataclass(frozen=True, slots=True)
class PriceSheet:
    """One version of a price book: what applies from ``effective`` on."""

    currency: Currency
    effective: Month
    prices: Mapping[str, MeterPrice]
    tax_rate: Decimal = ZERO  # 0.19 is 19 %
    minimum: Decimal = ZERO  # the least a month's usage is billed, before tax
    cap: Decimal | None = None  # the most a month's usage is billed, before tax

    def __post_init__(self) -> None:
        for meter in self.prices:
            if billing_meter(meter) is None:
                raise PricingError(f"no billing meter named {meter!r}")
        if self.tax_rate < 0 or self.minimum < 0 or (self.cap is not None and self.cap < 0):
            raise PricingError("tax rate, minimum and cap must not be negative")
        if self.cap is not None and self.cap < self.minimum:
            raise PricingError("the cap must not be below the minimum")

    def to_json(self) -> dict[str, Any]:
        return {
            "currency": self.currency.code,
            "effective": str(self.effective),
            "prices": {meter: price.to_json() for meter, price in sorted(self.prices.items())},
            "tax_rate": str(self.tax_rate),
            "minimum": str(self.minimum),
            "cap": None if self.cap is None else str(self.cap),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PriceSheet:
        return cls(
            currency=currency(data["currency"]),
            effective=Month.parse(data["effective"]),
            prices={m: MeterPrice.from_json(p) for m, p in data["prices"].items()},
            tax_rate=decimal(data["tax_rate"], "tax rate"),
            minimum=decimal(data["minimum"], "minimum"),
            cap=None if data["cap"] is None else decimal(data["cap"], "cap"),
        )


def sheet_for(sheets: Sequence[PriceSheet], month: Month) -> PriceSheet | None:
    """The version in force in ``month``: the latest one effective on or before it."""
    applicable = [s for s in sheets if s.effective <= month]
    return max(applicable, key=lambda s: s.effective) if applicable else None


# -- rating ------------------------------------------------------------------


class LineKind(enum.StrEnum):
    USAGE = "usage"
    MINIMUM = "minimum"  # lifts the month to the price book's minimum
    CAP = "cap"  # brings the month down to the price book's cap
    ADJUSTMENT = "adjustment"  # a change to a month already closed


@dataclass(frozen=True, slots=True)
class AppliedTier:
    """The units billed at one price, and what they cost (unrounded)."""

    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True, slots=True)
class Line:
    kind: LineKind
    meter: str | None
    quantity: Decimal  # the meter's month quantity, included units counted
    billable: Decimal  # after included units
    model: Model | None
    tiers: tuple[AppliedTier, ...]
    amount: Decimal  # rounded to the currency's minor units
    description: str = ""
    # For an adjustment: what it adjusts (statement number, month, meter).
    adjusts: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Rated:
    currency: Currency
    lines: tuple[Line, ...]
    subtotal: Decimal
    tax_rate: Decimal
    tax: Decimal
    total: Decimal


def applied_tiers(price: MeterPrice, billable: Decimal) -> tuple[AppliedTier, ...]:
    """The units of ``billable`` at each price, per the meter's model."""
    if billable <= 0:
        return ()
    if price.model is Model.FLAT:
        return (AppliedTier(billable, price.unit_price, billable * price.unit_price),)
    if price.model is Model.VOLUME:
        tier = next(t for t in price.tiers if t.up_to is None or billable <= t.up_to)
        return (AppliedTier(billable, tier.unit_price, billable * tier.unit_price),)
    applied = []
    floor = ZERO
    for tier in price.tiers:
        top = billable if tier.up_to is None else min(billable, tier.up_to)
        if top > floor:
            units = top - floor
            applied.append(AppliedTier(units, tier.unit_price, units * tier.unit_price))
        if tier.up_to is None or billable <= tier.up_to:
            break
        floor = tier.up_to
    return tuple(applied)


def rate_meter(meter: str, quantity: Decimal, price: MeterPrice, money: Currency) -> Line:
    billable = max(ZERO, quantity - price.included)
    tiers = applied_tiers(price, billable)
    return Line(
        kind=LineKind.USAGE,
        meter=meter,
        quantity=quantity,
        billable=billable,
        model=price.model,
        tiers=tiers,
        amount=round_money(sum((t.amount for t in tiers), ZERO), money),
    )


def _money_line(kind: LineKind, amount: Decimal, description: str) -> Line:
    return Line(kind, None, ZERO, ZERO, None, (), amount, description)


def usage_lines(quantities: Mapping[str, Decimal], sheet: PriceSheet) -> list[Line]:
    """A month's lines: one per priced meter, then the minimum or cap line if one applies.

    Meters without a price in the sheet are not billed; priced meters
    without usage get a zero line, so a statement shows every price.
    """
    lines = [
        rate_meter(meter, quantities.get(meter, ZERO), price, sheet.currency)
        for meter, price in sorted(sheet.prices.items())
    ]
    usage = sum((line.amount for line in lines), ZERO)
    minimum = round_money(sheet.minimum, sheet.currency)
    if usage < minimum:
        lines.append(_money_line(LineKind.MINIMUM, minimum - usage, f"monthly minimum {minimum}"))
    elif sheet.cap is not None and usage > round_money(sheet.cap, sheet.currency):
        cap = round_money(sheet.cap, sheet.currency)
        lines.append(_money_line(LineKind.CAP, cap - usage, f"monthly cap {cap}"))
    return lines


def total(lines: Sequence[Line], sheet: PriceSheet) -> Rated:
    """Subtotal (sum of the lines), tax on it (rounded once), total."""
    subtotal = sum((line.amount for line in lines), ZERO)
    tax = round_money(subtotal * sheet.tax_rate, sheet.currency)
    return Rated(sheet.currency, tuple(lines), subtotal, sheet.tax_rate, tax, subtotal + tax)


def rate_month(
    quantities: Mapping[str, Decimal], sheet: PriceSheet, extra: Sequence[Line] = ()
) -> Rated:
    """A month's statement: its usage lines, any ``extra`` (adjustment) lines, tax, total."""
    return total([*usage_lines(quantities, sheet), *extra], sheet)
