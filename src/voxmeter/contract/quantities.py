"""Exact quantities: decimals in the API, scaled integers in storage."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

# The largest scaled quantity a single event may carry; keeps month sums far
# inside a signed 64-bit column even at millions of events.
MAX_SCALED = 10**12


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
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError("quantity must be finite")
        if not value.is_integer():
            raise QuantityError("fractional quantities must be sent as decimal strings")
        number = Decimal(int(value))
    elif isinstance(value, str | Decimal):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise QuantityError("quantity is not a decimal number") from None
    else:
        raise QuantityError("quantity must be a number")
    if not number.is_finite():
        raise QuantityError("quantity must be finite")
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
