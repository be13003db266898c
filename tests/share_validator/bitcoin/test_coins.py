"""Coin definitions: every network has its fixture, look-up errors are clear."""
import pytest
from chaindata import genesis_fixtures, genesis_header

from share_validator.bitcoin.coins import SCRYPT, SHA256D, UnknownCoin, all_coins, get_coin
from share_validator.difficulty import bits_to_target


def test_every_coin_has_a_block_fixture():
    fixtures = genesis_fixtures()
    missing = sorted(set(all_coins()) - set(fixtures))
    assert not missing, f"coins without a block fixture in tests/data/blocks/genesis.json: {missing}"


@pytest.mark.parametrize("name", sorted(all_coins()))
def test_genesis_matches_coin_definition(name):
    coin = get_coin(name)
    entry = genesis_fixtures()[name]
    header = genesis_header(entry)
    assert coin.block_hash(header)[::-1].hex() == coin.genesis_hash == entry["hash"]
    pow_hash = coin.algorithm.pow_hash(header)
    assert int.from_bytes(pow_hash, "little") <= bits_to_target(int(entry["bits"], 16))


def test_algorithms_and_diff1():
    assert get_coin("litecoin").algorithm is SCRYPT
    assert get_coin("bitcoin").algorithm is SHA256D
    assert SCRYPT.diff1_target == 0xFFFF * 2**224
    assert SHA256D.diff1_target == 0xFFFF * 2**208
    for coin in all_coins().values():
        assert coin.coinbase_maturity >= 100


@pytest.mark.parametrize("bad", ["", "dogecoin", "LITECOIN", None, 5, "litecoin\x00", "x" * 10_000])
def test_unknown_coin_is_a_clear_error(bad):
    with pytest.raises(UnknownCoin, match="known coins: bitcoin"):
        get_coin(bad)


@pytest.mark.parametrize("name, height, subsidy", [
    ("litecoin", 0, 50 * 10**8), ("litecoin", 839_999, 50 * 10**8), ("litecoin", 840_000, 25 * 10**8),
    ("litecoin", 2_265_985, 1_250_000_000),  # tests/data block: 12.5 LTC after two halvings
    ("bitcoin", 951_658, 312_500_000), ("bitcoin", 210_000 * 64, 0), ("litecoin-regtest", 150, 25 * 10**8),
])
def test_block_subsidy(name, height, subsidy):
    # Core's GetBlockSubsidy: 50 coins halved every halving_interval blocks (840,000 on Litecoin).
    assert get_coin(name).block_subsidy(height) == subsidy
