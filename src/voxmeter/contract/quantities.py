"""Exact quantities: decimals in the API, scaled integers in storage."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

# The largest scaled quantity a single event may carry; keeps month sums far
# inside a signed 64-bit column even at millions of events.
MAX_SCALED = 10**12

# Bounds checked on a quantity's text (or its Decimal's digits and exponent)
# before any arithmetic: Decimal and int conversions cost time that grows
# faster than the exponent, so "1e600000" would otherwise hold a worker for
# seconds. Every quantity within MAX_SCALED at any meter's scale fits them.
MAX_QUANTITY_DIGITS = 40
MAX_QUANTITY_EXPONENT = 40
MAX_QUANTITY_TEXT = 64
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,6})?")
_NOT_FINITE = frozenset({"inf", "infinity", "nan", "snan"})


class QuantityError(ValueError):
    """A quantity that cannot be represented exactly at the meter's scale."""


def to_scaled(value: object, scale: int) -> int:
    """``value`` (int, decimal string or Decimal) as an integer of 10**-scale units.

    Floats are refused when they are not whole: binary floating point cannot
    carry "12.3" exactly, and a billing figure must be exact to the unit.
    """
    if isinstance(value, bool):
        raise QuantityError("quantity must be a number")
    if isinstance(value, int):
        # Compared before any conversion: a huge int costs nothing to compare.
        if abs(value) > MAX_SCALED:
            raise QuantityError("quantity is too large")
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError("quantity must be finite")
        if not value.is_integer():
            raise QuantityError("fractional quantities must be sent as decimal strings")
        number = Decimal(int(value))
    elif isinstance(value, str):
        number = _parse(value)
    elif isinstance(value, Decimal):
        number = value
    else:
        raise QuantityError("quantity must be a number")
    if not number.is_finite():
        raise QuantityError("quantity must be finite")
    _check_bounds(number)
    scaled = number.scaleb(scale)
    if scaled != scaled.to_integral_value():
        raise QuantityError(
            "quantity must be a whole number"
            if scale == 0
            else f"quantity has more than {scale} decimal places"
        )
    result = int(scaled)
    if abs(result) > MAX_SCALED:
        raise QuantityError("quantity is too large")
    return result


def _parse(text: str) -> Decimal:
    """A decimal string, its shape and length checked before Decimal reads it."""
    stripped = text.strip()
    if stripped.lstrip("+-").lower() in _NOT_FINITE:
        raise QuantityError("quantity must be finite")
    if len(stripped) > MAX_QUANTITY_TEXT:
        raise QuantityError(f"quantity is longer than {MAX_QUANTITY_TEXT} characters")
    if not _DECIMAL_TEXT.fullmatch(stripped):
        raise QuantityError("quantity is not a decimal number")
    try:
        return Decimal(stripped)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise QuantityError("quantity is not a decimal number") from None


def _check_bounds(number: Decimal) -> None:
    """Digits and exponent within bounds, so the arithmetic after is cheap."""
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)  # finite, checked before
    if len(digits) > MAX_QUANTITY_DIGITS or exponent > MAX_QUANTITY_EXPONENT:
        raise QuantityError("quantity is too large")
    if exponent < -MAX_QUANTITY_EXPONENT:
        raise QuantityError("quantity has too many decimal places")


def from_scaled(scaled: int, scale: int) -> Decimal:
    return Decimal(scaled).scaleb(-scale)


def format_items(scaled: int, scale: int) -> str:
    """The ``items`` string: plain digits, no exponent, no trailing zeros."""
    if scale == 0:
        return str(scaled)
    number = from_scaled(scaled, scale)
    text = format(number, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
