"""Bitcoin-style serialization helpers: compact sizes, script pushes, byte orders."""
from __future__ import annotations


def varint(number: int) -> bytes:
    """Compact size: the length prefix of vectors in transactions and blocks."""
    if number < 0:
        raise ValueError("compact size cannot be negative")
    if number < 0xFD:
        return bytes([number])
    if number <= 0xFFFF:
        return b"\xfd" + number.to_bytes(2, "little")
    if number <= 0xFFFFFFFF:
        return b"\xfe" + number.to_bytes(4, "little")
    return b"\xff" + number.to_bytes(8, "little")


def push_data(data: bytes) -> bytes:
    """The shortest script push of ``data`` (up to 75 bytes direct, then PUSHDATA1/2)."""
    length = len(data)
    if length <= 75:
        return bytes([length]) + data
    if length <= 0xFF:
        return b"\x4c" + bytes([length]) + data
    if length <= 0xFFFF:
        return b"\x4d" + length.to_bytes(2, "little") + data
    raise ValueError("push too large for a coinbase")


def script_number(number: int) -> bytes:
    """CScriptNum serialization: minimal little-endian with a sign bit."""
    if number == 0:
        return b""
    negative = number < 0
    magnitude = abs(number)
    out = bytearray()
    while magnitude:
        out.append(magnitude & 0xFF)
        magnitude >>= 8
    if out[-1] & 0x80:
        out.append(0x80 if negative else 0x00)
    elif negative:
        out[-1] |= 0x80
    return bytes(out)


def push_int(number: int) -> bytes:
    """``CScript() << number`` as Bitcoin Core writes it (BIP34 compares with this)."""
    if number == 0:
        return b"\x00"  # OP_0
    if number == -1 or 1 <= number <= 16:
        return bytes([0x50 + number])  # OP_1NEGATE, OP_1 .. OP_16
    return push_data(script_number(number))


def swap_words(data: bytes) -> bytes:
    """Reverse the bytes of each 4-byte word (Stratum's prevhash spelling)."""
    return b"".join(data[i : i + 4][::-1] for i in range(0, len(data), 4))


def tx_output(value: int, script: bytes) -> bytes:
    if not 0 <= value < 1 << 63:
        raise ValueError(f"output value {value} out of range")
    return value.to_bytes(8, "little") + varint(len(script)) + script
