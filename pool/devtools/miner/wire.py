"""Stratum v1 on the wire, as the demo miner reads it: line framing, the spelling of values, errors.

Framing
    One JSON object per line, ``\\n`` terminated (cpuminer ``stratum_send_line`` appends ``\\n``;
    ``stratum_recv_line`` splits on ``\\n``). Lines longer than ``MAX_LINE_BYTES`` are dropped.

Values
    Hashes, coinbase halves and extranonces are raw bytes in hex; 32-bit header fields (version,
    nbits, ntime, masks) are 8 hex digits, the big-endian spelling of the integer. An error in an
    answer comes as ``[code, message, ...]`` or ``{"code": ..., "message": ...}`` (`response_error`
    reads both, and a bare value).
"""

from __future__ import annotations

import math
import string
from typing import Any

MAX_LINE_BYTES = 1 << 20
MAX_EXTRANONCE_BYTES = 100  # cpuminer stratum_subscribe: "Invalid value of extranonce2_size" above 100

_HEX_DIGITS = frozenset(string.hexdigits)


class StratumProtocolError(ValueError):
    """The server sent something that does not follow Stratum v1."""


def hex_bytes(value: Any, name: str, *, length: int | None = None, max_length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise StratumProtocolError(f"{name} must be a hex string, not {type(value).__name__}")
    if len(value) % 2 or not _HEX_DIGITS.issuperset(value):
        raise StratumProtocolError(f"{name} is not an even-length hex string: {value[:80]!r}")
    if length is not None and len(value) != 2 * length:
        raise StratumProtocolError(
            f"{name} must be {length} bytes ({2 * length} hex digits), got {len(value)}"
        )
    if max_length is not None and len(value) > 2 * max_length:
        raise StratumProtocolError(f"{name} longer than {max_length} bytes")
    return bytes.fromhex(value)


def hex_u32(value: Any, name: str) -> int:
    """An 8-hex-digit big-endian spelling of a 32-bit integer (version, nbits, ntime, masks)."""
    return int.from_bytes(hex_bytes(value, name, length=4), "big")


def finite_number(value: Any, name: str) -> float:
    """A finite number given as a JSON number or a numeric string."""
    if isinstance(value, str) and len(value) <= 32:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StratumProtocolError(f"{name} must be a number: {value!r:.50}")
    try:
        number = float(value)
    except OverflowError:
        raise StratumProtocolError(f"{name} out of range") from None
    if not math.isfinite(number):
        raise StratumProtocolError(f"{name} must be finite")
    return number


def checked_extranonce2_size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_EXTRANONCE_BYTES:
        raise StratumProtocolError(
            f"extranonce2_size must be an integer in 1..{MAX_EXTRANONCE_BYTES}: {value!r:.50}"
        )
    return value


def response_error(message: dict[str, Any]) -> tuple[int | None, str] | None:
    """``(code, text)`` of a JSON-RPC error, in any of the shapes pools use, or None."""
    error = message.get("error")
    if error is None:
        return None
    code: Any = None
    text: Any = None
    if isinstance(error, list):
        code = error[0] if error else None
        text = error[1] if len(error) > 1 else None
    elif isinstance(error, dict):
        code = error.get("code")
        text = error.get("message")
    else:
        text = error
    if isinstance(code, bool) or not isinstance(code, int):
        code = None
    return code, str(text) if text is not None else ""


class LineFramer:
    """Newline framing. A line longer than ``max_line_bytes`` is dropped whole and counted."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.overlong_lines = 0
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            piece = data[start:end]
            start = end + 1
            if self._discarding:  # the end of a line already counted as overlong
                self._discarding = False
                continue
            if len(self._buffer) + len(piece) > self.max_line_bytes:
                self.overlong_lines += 1
                self._buffer.clear()
                continue
            self._buffer += piece
            line = bytes(self._buffer).strip()
            self._buffer.clear()
            if line:
                lines.append(line)
        rest = data[start:]
        if rest and not self._discarding:
            if len(self._buffer) + len(rest) > self.max_line_bytes:
                self.overlong_lines += 1
                self._buffer.clear()
                self._discarding = True
            else:
                self._buffer += rest
        return lines
