"""Addresses to scripts. Vectors: BIP173 and BIP350 test vectors; Bitcoin's genesis address."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from share_validator.bitcoin.address import (
    InvalidAddress,
    address_to_script,
    b58decode_check,
    b58encode_check,
    base58_leading_characters,
    bech32_encode_segwit,
    expected_forms,
    network_name,
    p2pkh_script,
)
from share_validator.bitcoin.coins import all_coins, get_coin

BTC = get_coin("bitcoin")
BTC_TEST = get_coin("bitcoin-testnet3")
LTC = get_coin("litecoin")

# BIP350 "Test vectors for v0-v16 native segregated witness addresses" (valid), with BIP173's.
VALID_SEGWIT = [
    (BTC, "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (BTC_TEST, "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
     "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262"),
    (BTC, "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
     "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6"),
    (BTC, "BC1SW50QGDZ25J", "6002751e"),
    (BTC, "bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (BTC_TEST, "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
     "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433"),
]

# BIP350 invalid addresses (each for its stated reason), plus hostile strings.
INVALID = [
    (BTC, "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd"),  # bech32 for v1
    (BTC, "BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL"),  # bech32 for v16
    (BTC, "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh"),  # bech32m for v0
    (BTC, "bc1gmk9yu"),  # empty data
    (BTC, "bc1zw508d6qejxtdg4y5r3zarvaryvqyzf3du"),  # padding over 4 bits
    (BTC_TEST, "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3pjxtptv"),  # non-zero padding
    (BTC, "bc1rw5uspcuh"),  # invalid program length
    (BTC, "bc10w508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kw5rljs90"),
    (BTC, "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7"),  # other network
    (BTC, "Bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),  # mixed case
    (BTC, ""), (BTC, "1"), (BTC, "0" * 1_000_000), (BTC, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb"),
    (BTC, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNä"), (BTC, "l" * 40), (BTC, None), (BTC, 12),
    (LTC, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"),  # Bitcoin address on Litecoin
    (LTC, "ltcmweb1qq0yq03ewm830ugmkkvrvjmyyeslcpwk8ayd7k27qx63sryy6kx3ksqm3k6jd24ld3r5dp5lzx7rm7uyxfujf8sn7v4nlxeqwrcq6k33xxwd"),
]


@pytest.mark.parametrize("coin, address, script", VALID_SEGWIT)
def test_valid_segwit_addresses(coin, address, script):
    assert address_to_script(coin, address).hex() == script


@pytest.mark.parametrize("coin, address", INVALID)
def test_invalid_addresses(coin, address):
    with pytest.raises(InvalidAddress):
        address_to_script(coin, address)


def test_bitcoin_genesis_address():
    # The genesis coinbase pays 1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa (hash160 62e907b1...).
    script = address_to_script(BTC, "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa")
    assert script == p2pkh_script(bytes.fromhex("62e907b15cbf27d5425399ebf6f0fb50ebb88f18"))


def test_litecoin_prefixes():
    h = bytes(range(20))
    assert b58encode_check(b"\x30" + h).startswith("L")
    assert address_to_script(LTC, b58encode_check(b"\x30" + h)) == p2pkh_script(h)
    assert address_to_script(LTC, b58encode_check(b"\x32" + h)).hex() == "a914" + h.hex() + "87"  # M...
    assert address_to_script(LTC, b58encode_check(b"\x05" + h)).hex() == "a914" + h.hex() + "87"  # legacy 3...
    assert address_to_script(LTC, bech32_encode_segwit("ltc", 0, h)).hex() == "0014" + h.hex()
    with pytest.raises(InvalidAddress):
        address_to_script(LTC, b58encode_check(b"\x00" + h))
    with pytest.raises(InvalidAddress):
        address_to_script(LTC, b58encode_check(b"\x30" + h + b"\x00"))


@given(st.binary(min_size=1, max_size=40))
def test_base58_round_trip(payload):
    assert b58decode_check(b58encode_check(payload)) == payload


@given(st.integers(0, 16), st.binary(min_size=2, max_size=40))
def test_bech32_round_trip(version, program):
    if version == 0 and len(program) not in (20, 32):
        return
    address = bech32_encode_segwit("bc", version, program)
    script = address_to_script(BTC, address)
    assert script[2:] == program


@given(st.text(max_size=100))
def test_arbitrary_text_never_crashes(text):
    try:
        address_to_script(LTC, text)
    except InvalidAddress:
        pass


# -- what the refusal says ---------------------------------------------------------------------------

H = bytes(range(20))


@pytest.mark.parametrize("address, why", [
    # The reported case: a mainnet address with a mistyped character.
    ("LlbcHwqS2GxwMg1Y2cGzd7mkqUMZYbb2u8", "(character 'l' is not base58)"),
    ("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", "(this is a Bitcoin mainnet address)"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "(this is a Bitcoin mainnet address)"),
    (bech32_encode_segwit("rltc", 0, H), "(this is a Litecoin regtest address)"),
    (b58encode_check(b"\x6f" + H), "(this is a Litecoin testnet4, Litecoin regtest, Bitcoin testnet3 or "
                                    "Bitcoin regtest address)"),
    ("tltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
     "(bech32 prefix tltc1 is Litecoin testnet4's, and bech32 checksum mismatch)"),
    ("ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "(bech32 checksum mismatch)"),
    (b58encode_check(b"\x30" + H)[:-1] + "z", "(base58 checksum mismatch)"),
    (INVALID[-1][1], "(an MWEB address cannot receive a coinbase output or a payout)"),
    ("", "(address length or characters out of range)"),
    (None, "(address must be a string)"),
])
def test_a_refusal_names_the_network_and_the_forms_expected(address, why):
    with pytest.raises(InvalidAddress) as caught:
        address_to_script(LTC, address)
    expected = "not a Litecoin mainnet address: bech32 prefix ltc1 or base58 L/M/3 expected"
    assert str(caught.value) == f"{expected} {why}"


def test_expected_forms_come_from_the_coin_data():
    assert expected_forms(LTC) == "bech32 prefix ltc1 or base58 L/M/3 expected"
    assert expected_forms(BTC) == "bech32 prefix bc1 or base58 1/3 expected"
    assert expected_forms(BTC_TEST) == "bech32 prefix tb1 or base58 m/n/2 expected"
    assert network_name(get_coin("litecoin-testnet4")) == "Litecoin testnet4"
    # Every leading character the derivation gives is one a real address of that version has, and
    # the lowest and highest hashes of each version start with one of them.
    for coin in all_coins().values():
        for version in (coin.p2pkh_prefix, *coin.p2sh_prefixes):
            leads = base58_leading_characters(version)
            for body in (bytes(20), b"\xff" * 20, H):
                assert b58encode_check(bytes([version]) + body)[0] in leads, (coin.name, version, leads)


@given(st.integers(1, 255))
def test_base58_leading_characters_cover_the_extremes(version):
    leads = base58_leading_characters(version)
    low = b58encode_check(bytes([version]) + bytes(20))   # the checksum varies: check the bounds by hand
    high = b58encode_check(bytes([version]) + b"\xff" * 20)
    assert low[0] in leads and high[0] in leads
