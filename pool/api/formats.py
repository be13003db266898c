"""How the API writes values: JSON that is safe inside HTML, amounts as coins, finders' addresses
shortened, times as Unix seconds.

Money is integer satoshis; ``*_coins`` fields repeat an amount as a decimal string of coins.
"""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import orjson

SATOSHIS_PER_COIN = 100_000_000


_ESCAPES = ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"))


def dump_json(data: Any) -> bytes:
    """JSON with <, > and & escaped: safe inside HTML, never sniffed as markup."""
    body = orjson.dumps(data)
    for raw, escaped in _ESCAPES:
        if raw in body:
            body = body.replace(raw, escaped)
    return body


def coins(satoshis: int) -> str:
    """Satoshis as a decimal string of coins with 8 places: 150000000 -> "1.50000000"."""
    sign = "-" if satoshis < 0 else ""
    whole, part = divmod(abs(int(satoshis)), SATOSHIS_PER_COIN)
    return f"{sign}{whole}.{part:08d}"


def shorten(address: str) -> str:
    """A finder's address as shown publicly: its first 6 and last 4 characters."""
    return address if len(address) <= 12 else f"{address[:6]}...{address[-4:]}"


def unix(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def finite(value: Any) -> float:
    """A stored number as a finite float (0.0 for none, NaN or infinity)."""
    try:
        number = float(value or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0
