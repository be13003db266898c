"""Addresses to output scripts: base58check (P2PKH, P2SH) and bech32/bech32m (BIP173, BIP350).

``address_to_script(coin, address)`` accepts only the coin's own address forms and
raises ``InvalidAddress`` otherwise, with a message that names the network and the forms
expected, derived from the coin data (``coins.json``): "not a Litecoin mainnet address: bech32
prefix ltc1 or base58 L/M/3 expected", then what was wrong -- the address of another known
network ("this is a Bitcoin mainnet address") or the decoding error ("character 'l' is not
base58").  MWEB addresses (``ltcmweb1...``) cannot receive a coinbase output and are refused.
"""
from __future__ import annotations

from functools import cache

from share_validator.bitcoin.coins import Coin, all_coins
from share_validator.hashing import sha256d

_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_INDEX = {char: index for index, char in enumerate(_BECH32_CHARSET)}
_BECH32_CONST = 1
_BECH32M_CONST = 0x2BC830A3
MAX_ADDRESS_LENGTH = 90


class InvalidAddress(ValueError):
    """Not an address of this coin; the message says why (``detail``: the decoding error alone)."""

    def __init__(self, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail if detail is not None else message


# -- base58check ---------------------------------------------------------------------

def b58encode_check(payload: bytes) -> str:
    data = payload + sha256d(payload)[:4]
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, remainder = divmod(number, 58)
        chars.append(_B58_ALPHABET[remainder])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(chars))


def b58decode_check(text: str) -> bytes:
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise InvalidAddress(f"character {char!r} is not base58")
        number = number * 58 + digit
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    data = b"\0" * leading_zeros + body
    if len(data) < 5:
        raise InvalidAddress("base58 data too short")
    payload, checksum = data[:-4], data[-4:]
    if sha256d(payload)[:4] != checksum:
        raise InvalidAddress("base58 checksum mismatch")
    return payload


# -- bech32 / bech32m ----------------------------------------------------------------

def _polymod(values: list[int]) -> int:
    generator = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    checksum = 1
    for value in values:
        top = checksum >> 25
        checksum = (checksum & 0x1FFFFFF) << 5 ^ value
        for bit in range(5):
            if (top >> bit) & 1:
                checksum ^= generator[bit]
    return checksum


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(char) >> 5 for char in hrp] + [0] + [ord(char) & 31 for char in hrp]


def _convert_bits(data, from_bits: int, to_bits: int, pad: bool) -> list[int]:
    accumulator = bits = 0
    result = []
    max_value = (1 << to_bits) - 1
    for value in data:
        accumulator = (accumulator << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            result.append((accumulator >> bits) & max_value)
    if pad:
        if bits:
            result.append((accumulator << (to_bits - bits)) & max_value)
    elif bits >= from_bits or (accumulator << (to_bits - bits)) & max_value:
        raise InvalidAddress("bech32 padding is not canonical")
    return result


def bech32_encode_segwit(hrp: str, witness_version: int, program: bytes) -> str:
    const = _BECH32_CONST if witness_version == 0 else _BECH32M_CONST
    data = [witness_version] + _convert_bits(program, 8, 5, True)
    polymod = _polymod(_hrp_expand(hrp) + data + [0] * 6) ^ const
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_BECH32_CHARSET[d] for d in data + checksum)


def bech32_decode_segwit(expected_hrp: str, address: str) -> tuple[int, bytes]:
    """(witness version, program) of a segwit address, checked as BIP173/BIP350 say."""
    if address.lower() != address and address.upper() != address:
        raise InvalidAddress("bech32 address mixes upper and lower case")
    address = address.lower()
    position = address.rfind("1")
    if position < 1 or position + 7 > len(address) or len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidAddress("bech32 address has a bad separator position or length")
    hrp, rest = address[:position], address[position + 1 :]
    if hrp != expected_hrp:
        raise InvalidAddress(f"bech32 prefix {hrp!r} is not this coin's {expected_hrp!r}")
    try:
        data = [_BECH32_INDEX[char] for char in rest]
    except KeyError as exc:
        raise InvalidAddress(f"character {exc.args[0]!r} is not bech32") from None
    const = _polymod(_hrp_expand(hrp) + data)
    if const not in (_BECH32_CONST, _BECH32M_CONST):
        raise InvalidAddress("bech32 checksum mismatch")
    witness_version = data[0]
    if witness_version > 16:
        raise InvalidAddress("witness version above 16")
    program = bytes(_convert_bits(data[1:-6], 5, 8, False))
    if not 2 <= len(program) <= 40:
        raise InvalidAddress("witness program length out of range")
    if witness_version == 0 and len(program) not in (20, 32):
        raise InvalidAddress("version 0 witness program must be 20 or 32 bytes")
    if (witness_version == 0) != (const == _BECH32_CONST):
        raise InvalidAddress("wrong checksum variant for the witness version (BIP350)")
    return witness_version, program


# -- scripts ---------------------------------------------------------------------------

def p2pkh_script(pubkey_hash: bytes) -> bytes:
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def p2sh_script(script_hash: bytes) -> bytes:
    return b"\xa9\x14" + script_hash + b"\x87"


def witness_script(witness_version: int, program: bytes) -> bytes:
    opcode = 0 if witness_version == 0 else 0x50 + witness_version
    return bytes([opcode, len(program)]) + program


# -- what a coin's addresses look like ----------------------------------------------------

def network_name(coin: Coin) -> str:
    """"Litecoin mainnet", "Litecoin testnet4", "Bitcoin regtest": from the coin's name."""
    base, _, network = coin.name.partition("-")
    return f"{base.capitalize()} {network or 'mainnet'}"


def base58_leading_characters(version: int, payload_size: int = 20) -> list[str]:
    """The first characters a base58check address of version byte ``version`` can have (a
    ``payload_size``-byte hash after the version byte, 4 bytes of checksum): ['L'] for 48."""
    if version == 0:
        return ["1"]  # a leading zero byte is spelt "1"
    shift = 8 * (payload_size + 4)
    low, high = version << shift, ((version + 1) << shift) - 1
    leads: set[int] = set()
    digits = 1
    while 58 ** (digits - 1) <= high:
        first, last = max(low, 58 ** (digits - 1)), min(high, 58**digits - 1)
        if first <= last:
            leads.update(range(first // 58 ** (digits - 1), last // 58 ** (digits - 1) + 1))
        digits += 1
    return [_B58_ALPHABET[lead] for lead in sorted(leads)]


@cache
def expected_forms(coin: Coin) -> str:
    """"bech32 prefix ltc1 or base58 L/M/3 expected": the coin's address forms, from its data."""
    leads: list[str] = []
    for version in (coin.p2pkh_prefix, *coin.p2sh_prefixes):
        leads += [lead for lead in base58_leading_characters(version) if lead not in leads]
    forms = [f"bech32 prefix {coin.bech32_hrp}1"] if coin.bech32_hrp else []
    forms.append("base58 " + "/".join(leads))
    return " or ".join(forms) + " expected"


def _other_networks(coin: Coin, address: str) -> str | None:
    """What ``address`` is when it is not ``coin``'s: "this is a Bitcoin mainnet address" (the
    form of other known networks, checksum good), or None."""
    others = [other for other in all_coins().values() if other.name != coin.name]
    lowered = address.lower()
    for other in others:
        if other.bech32_hrp and lowered.startswith(other.bech32_hrp + "1"):
            try:
                bech32_decode_segwit(other.bech32_hrp, address)
            except InvalidAddress as error:
                return f"bech32 prefix {other.bech32_hrp}1 is {network_name(other)}'s, and {error.detail}"
            return f"this is a {network_name(other)} address"
    try:
        payload = b58decode_check(address)
    except InvalidAddress:
        return None
    names = [network_name(other) for other in others
             if len(payload) == 21 and payload[0] in (other.p2pkh_prefix, *other.p2sh_prefixes)]
    if not names:
        return None
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
    return f"this is a {listed} address"


def address_to_script(coin: Coin, address: str) -> bytes:
    """The output script paying ``address`` on ``coin``; InvalidAddress says why not (see the
    module docstring)."""
    try:
        return _script(coin, address)
    except InvalidAddress as error:
        detail = error.detail
    heading = f"not a {network_name(coin)} address: {expected_forms(coin)}"
    if coin.mweb and coin.bech32_hrp and isinstance(address, str) \
            and address.lower().startswith(f"{coin.bech32_hrp}mweb1"):
        raise InvalidAddress(f"{heading} (an MWEB address cannot receive a coinbase output or a payout)",
                             "an MWEB address")
    other = None
    if isinstance(address, str) and 1 <= len(address) <= MAX_ADDRESS_LENGTH and address.isascii():
        other = _other_networks(coin, address)
    raise InvalidAddress(f"{heading} ({other or detail})", detail)


def _script(coin: Coin, address: str) -> bytes:
    if not isinstance(address, str):
        raise InvalidAddress("address must be a string")
    if not 1 <= len(address) <= MAX_ADDRESS_LENGTH or not address.isascii():
        raise InvalidAddress("address length or characters out of range")
    hrp = coin.bech32_hrp
    if hrp and address.lower().startswith(hrp + "1"):
        return witness_script(*bech32_decode_segwit(hrp, address))
    payload = b58decode_check(address)
    if len(payload) != 21:
        raise InvalidAddress("base58 address payload must be 21 bytes")
    prefix, body = payload[0], payload[1:]
    if prefix == coin.p2pkh_prefix:
        return p2pkh_script(body)
    if prefix in coin.p2sh_prefixes:
        return p2sh_script(body)
    raise InvalidAddress(f"address version byte {prefix} is not one of {coin.name}'s")
