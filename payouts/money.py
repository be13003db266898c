"""Checks shared by the payout code: satoshi amounts, account names, exact difficulties, ratios.

Money is an ``int`` of satoshis everywhere; ``bool`` is refused even though it is an ``int``.
Difficulties arrive as floats (Stratum units, as stored in the share ledger) and are turned into
the exact rational value of the float with ``Fraction(float)``; nothing that decides a payment
is ever computed in floating point.
"""
from __future__ import annotations

import math
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from fractions import Fraction

#: Largest amount the payout code accepts: a bigint column and the 8-byte Merkle leaf both hold it.
#: 21e6 coins * 1e8 satoshis * 4 (a Litecoin-sized supply) is 8.4e15, far below.
MAX_AMOUNT = 2**63 - 1

#: Base units per coin of the Bitcoin family (satoshis): 10**8.
COIN_DECIMALS = 8


class PayoutError(ValueError):
    """Input the payout code refuses, or an amount that would go negative."""


def check_amount(value: object, what: str) -> int:
    """``value`` as satoshis: an int (not bool) in 0 ..= MAX_AMOUNT."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise PayoutError(f"{what} must be an int of satoshis, not {type(value).__name__}")
    if value < 0:
        raise PayoutError(f"{what} must not be negative, got {value}")
    if value > MAX_AMOUNT:
        raise PayoutError(f"{what} {value} exceeds the largest amount {MAX_AMOUNT}")
    return value


def check_account(value: object, what: str) -> str:
    """An address or account name: a non-empty str without NUL (the Merkle leaf separator)."""
    if not isinstance(value, str):
        raise PayoutError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise PayoutError(f"{what} must not be empty")
    if "\x00" in value:
        raise PayoutError(f"{what} {value!r} must not contain NUL")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PayoutError(f"{what} {value!r} is not valid Unicode: {error.reason}") from None
    return value


def exact_difficulty(value: object, what: str) -> Fraction:
    """The exact rational value of a difficulty: finite and > 0, else PayoutError (a ValueError)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Fraction)):
        raise PayoutError(f"{what} must be a number, not {type(value).__name__}")
    if isinstance(value, float) and not math.isfinite(value):
        raise PayoutError(f"{what} must be finite, got {value!r}")
    if value <= 0:
        raise PayoutError(f"{what} must be positive, got {value!r}")
    return Fraction(value)


#: Percents and the PPLNS factor are written with at most this many decimal places, so that their
#: canonical text (in the payout report) is short and the same for "1.5", Decimal("1.50") and "1.500".
MAX_DECIMAL_PLACES = 8


def parse_decimal(value: object, what: str) -> Fraction:
    """A config number given as str, int, Decimal or Fraction, exactly; floats are refused.

    A float such as 0.1 is not the decimal the operator wrote (it is
    0.1000000000000000055511151231257827...), so payout settings never come as floats: write them
    as strings, or load TOML with ``tomllib.load(f, parse_float=decimal.Decimal)``.
    """
    if isinstance(value, float):
        raise PayoutError(
            f"{what} {value!r} is a float: give it as a string ('{value!r}'), int or Decimal "
            "(load TOML with parse_float=decimal.Decimal)")
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal, Fraction)):
        raise PayoutError(f"{what} must be a str, int or Decimal, not {type(value).__name__}")
    if isinstance(value, str):
        try:
            value = Decimal(value.strip())
        except InvalidOperation:
            raise PayoutError(f"{what} {value!r} is not a decimal number") from None
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise PayoutError(f"{what} must be finite, got {value}")
        digits, exponent = value.as_tuple()[1:]
        if len(digits) > 40 or not -40 <= exponent <= 40:
            # Refused before it becomes a Fraction: "1e-999999999" would build a billion-digit int.
            raise PayoutError(f"{what} {value} is out of range")
    exact = Fraction(value)
    if (10**MAX_DECIMAL_PLACES) % exact.denominator:
        raise PayoutError(f"{what} {value} has more than {MAX_DECIMAL_PLACES} decimal places")
    return exact


def decimal_text(value: Fraction) -> str:
    """Canonical text of a number with at most MAX_DECIMAL_PLACES places: '1.5', '100', '0.005'."""
    scaled = value * 10**MAX_DECIMAL_PLACES
    if scaled.denominator != 1:
        raise PayoutError(f"{value} has more than {MAX_DECIMAL_PLACES} decimal places")
    sign = "-" if scaled < 0 else ""
    whole, part = divmod(abs(scaled.numerator), 10**MAX_DECIMAL_PLACES)
    if not part:
        return f"{sign}{whole}"
    return f"{sign}{whole}." + f"{part:0{MAX_DECIMAL_PLACES}d}".rstrip("0")


def fraction_text(value: Fraction) -> str:
    """Canonical text of an exact ratio: 'n' or 'n/d' in lowest terms (what ``str(Fraction)`` gives)."""
    return str(Fraction(value))


def coins_to_satoshis(amount: Decimal | int, decimals: int = COIN_DECIMALS) -> int:
    """Convert an amount in coins to integer satoshis (base units: 10**decimals per coin), exactly.

    Raises TypeError for floats (and bools) and ValueError for non-finite amounts or fractions of
    a satoshi.
    """
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise TypeError(f"amount must be a Decimal or int, not {type(amount).__name__}")
    if isinstance(amount, int):
        return amount * 10**decimals
    if not amount.is_finite():
        raise ValueError(f"amount is not a finite number: {amount}")
    with localcontext() as context:
        context.prec = 60
        context.traps[Inexact] = True
        satoshis = amount.scaleb(decimals)
        if satoshis != satoshis.to_integral_value():
            raise ValueError(f"{amount} is not a whole number of satoshis")
        return int(satoshis)


def satoshis_to_coins(satoshis: int, decimals: int = COIN_DECIMALS) -> Decimal:
    """Convert integer satoshis (base units) to a Decimal amount in coins (eight decimal places by default)."""
    if isinstance(satoshis, bool) or not isinstance(satoshis, int):
        raise TypeError(f"satoshis must be an int, not {type(satoshis).__name__}")
    return Decimal(satoshis).scaleb(-decimals)
