"""Minor units of ISO 4217 currencies (from CLDR via babel)."""

from __future__ import annotations

from functools import cache

from babel.numbers import get_currency_precision, list_currencies


@cache
def minor_digits(currency: str) -> int:
    """Decimal places of the currency's minor unit: 2 for USD, 0 for JPY."""
    if currency not in list_currencies():
        raise ValueError(f"unknown ISO 4217 currency code {currency!r}")
    return int(get_currency_precision(currency))


def to_major(amount_minor: int, currency: str) -> float:
    """Minor units -> a JSON number in major units (exact for sums below 2**53)."""
    digits = minor_digits(currency)
    return amount_minor / 10**digits if digits else float(amount_minor)
