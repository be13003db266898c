"""PPS and FPPS: per-share credits, the integer carry, batching that changes nothing."""
import random
from fractions import Fraction

import pytest

from payouts import PPS_UNITS_PER_SATOSHI, FeeConfig, PayoutError, ShareWork, fpps_credits, pps_credits
from payouts.schemes import share_units

SUBSIDY = 625_000_000  # 6.25 LTC


def share(address, credited, network, share_id, **kwargs):
    return ShareWork(address, "rig", credited, network, share_id, **kwargs)


def test_pps_known_answer():
    # A share of difficulty 1024 at network difficulty 16384 is 1/16 of a block:
    # 625_000_000 / 16 * 99 % = 38_671_875 satoshis exactly, no carry.
    credits, carry = pps_credits([share("A", 1024.0, 16384.0, "s1")], SUBSIDY, FeeConfig("1"))
    assert credits == {"A": 38_671_875} and carry == {}


def test_pps_carry_known_answer():
    # Difficulty 1 at network 3 with a 1 sat subsidy and no fee: 1/3 sat, i.e. floor(10^18 / 3) units.
    # Batch 1 (two shares): 666_666_666_666_666_666 units -> 0 sat, all carried.
    # Batch 2 (two more): 1_333_333_333_333_333_332 units -> 1 sat, carry 333_333_333_333_333_332.
    third = PPS_UNITS_PER_SATOSHI // 3
    credits, carry = pps_credits([share("A", 1.0, 3.0, "a"), share("A", 1.0, 3.0, "b")], 1, FeeConfig("0"))
    assert credits == {} and carry == {"A": 2 * third}
    batch = [share("A", 1.0, 3.0, "c"), share("A", 1.0, 3.0, "d")]
    credits, carry = pps_credits(batch, 1, FeeConfig("0"), carry)
    assert credits == {"A": 1} and carry == {"A": 4 * third - PPS_UNITS_PER_SATOSHI}
    # The documented rounding: three thirds are 999_999_999_999_999_999 units, not one satoshi.
    credits, carry = pps_credits([share("B", 1.0, 3.0, x) for x in "xyz"], 1, FeeConfig("0"))
    assert credits == {} and carry == {"B": PPS_UNITS_PER_SATOSHI - 1}


def test_fpps_uses_each_share_coinbase_value():
    # FPPS: the template's coinbase value (subsidy + expected fees), per share.
    shares = [share("A", 1.0, 4.0, "a", coinbase_value=640_000_000),   # 160_000_000
              share("A", 1.0, 8.0, "b", coinbase_value=800_000_000),   # 100_000_000
              share("B", 1.0, 2.0, "c", coinbase_value=630_000_001)]   # 315_000_000.5
    credits, carry = fpps_credits(shares, FeeConfig("2"))
    # x 98 %: A 254_800_000; B 308_700_000.49 -> 308_700_000 and 0.49 sat carried
    assert credits == {"A": 254_800_000, "B": 308_700_000}
    assert carry == {"B": 49 * PPS_UNITS_PER_SATOSHI // 100}


def test_fpps_needs_the_coinbase_value():
    with pytest.raises(PayoutError, match="no coinbase value"):
        fpps_credits([share("A", 1.0, 4.0, "a")], FeeConfig("1"))


def test_pps_subsidy_by_height():
    def subsidy(s):
        return 5_000_000_000 >> (s.height // 840_000)
    shares = [share("A", 1.0, 10.0, "a", height=839_999), share("B", 1.0, 10.0, "b", height=840_000)]
    credits, _ = pps_credits(shares, subsidy, FeeConfig("0"))
    assert credits == {"A": 500_000_000, "B": 250_000_000}


def test_many_small_batches_sum_exactly():
    rng = random.Random(20260509)
    fees = FeeConfig("1.25", [("dev", "0.5")])
    addresses = [f"miner{i}" for i in range(7)]
    shares = [share(rng.choice(addresses), rng.choice([1.0, 3.0, 512.5, 1e-3, 65536.0]),
                    rng.choice([1234567.891, 3.0, 7e6]), f"s{i:05d}", created=i,
                    coinbase_value=rng.randrange(600_000_000, 700_000_000)) for i in range(3000)]
    schemes = [(lambda batch, carry: pps_credits(batch, SUBSIDY, fees, carry), lambda s: SUBSIDY),
               (lambda batch, carry: fpps_credits(batch, fees, carry), lambda s: s.coinbase_value)]
    for credit, value_of in schemes:
        whole_credits, whole_carry = credit(shares, None)
        totals: dict[str, int] = {}
        carry: dict[str, int] = {}
        position = 0
        while position < len(shares):
            size = rng.randint(1, 9)
            batch = shares[position:position + size]
            position += size
            credits, carry = credit(batch, carry)
            assert all(type(v) is int and v > 0 for v in credits.values())
            assert all(type(v) is int and 0 < v < PPS_UNITS_PER_SATOSHI for v in carry.values())
            for address, amount in credits.items():
                totals[address] = totals.get(address, 0) + amount
        assert totals == whole_credits and carry == whole_carry
        # And both are the exact sum of per-share units, split into satoshis and carry.
        units: dict[str, int] = {}
        for s in shares:
            units[s.address] = units.get(s.address, 0) + share_units(s, value_of(s), fees)
        assert {a: u // PPS_UNITS_PER_SATOSHI for a, u in units.items()} == totals
        assert {a: u % PPS_UNITS_PER_SATOSHI for a, u in units.items() if u % PPS_UNITS_PER_SATOSHI} == carry
        # Less than 10^-18 sat lost per share against the exact rational value.
        for address, total in totals.items():
            exact = sum((s.work * value_of(s) * fees.miners_fraction for s in shares if s.address == address),
                        Fraction(0))
            held = total + Fraction(carry.get(address, 0), PPS_UNITS_PER_SATOSHI)
            assert 0 <= exact - held < Fraction(len(shares), PPS_UNITS_PER_SATOSHI)


def test_carry_is_kept_for_miners_absent_from_a_batch():
    _, carry = pps_credits([share("A", 1.0, 3.0, "a")], 1, FeeConfig("0"))
    credits, carry = pps_credits([share("B", 1.0, 1.0, "b")], 5, FeeConfig("0"), carry)
    assert credits == {"B": 5} and carry == {"A": PPS_UNITS_PER_SATOSHI // 3}


@pytest.mark.parametrize("carry", [{"A": -1}, {"A": PPS_UNITS_PER_SATOSHI}, {"A": 0.5}, {"": 1}, {"A": True}])
def test_bad_carry(carry):
    with pytest.raises(PayoutError, match="carry"):
        pps_credits([share("A", 1.0, 3.0, "a")], 1, FeeConfig("0"), carry)


@pytest.mark.parametrize("value", [-1, 1.5, "5", 2**63])
def test_bad_block_value(value):
    with pytest.raises(PayoutError):
        pps_credits([share("A", 1.0, 3.0, "a")], value, FeeConfig("0"))
    with pytest.raises(PayoutError):
        pps_credits([share("A", 1.0, 3.0, "a")], lambda s: value, FeeConfig("0"))


def test_duplicate_share_in_a_batch():
    with pytest.raises(PayoutError, match="given twice"):
        pps_credits([share("A", 1.0, 3.0, "a"), share("A", 1.0, 3.0, "a")], 1, FeeConfig("0"))
