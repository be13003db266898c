"""Properties over random shares, rewards and fees: exact totals, ints, determinism, proofs."""
import random
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payouts import (
    PPS_UNITS_PER_SATOSHI,
    Block,
    FeeConfig,
    ShareWork,
    pplns,
    pps_credits,
    proof,
    prop,
    solo,
    verify_proof,
)

MAX_REWARD = 21_000_000 * 100_000_000 * 4
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

addresses = st.sampled_from(["A", "B", "ltc1qxyz", "Mabc", "é", "日本", "a b", "z" * 90, "\U0001f600"])
difficulties = st.floats(min_value=2**-30, max_value=1e15, allow_nan=False, allow_infinity=False)
percents = st.integers(0, 25 * 10**8).map(lambda n: Decimal(n).scaleb(-8))


@st.composite
def share_lists(draw, min_size=1, max_size=40):
    rows = draw(st.lists(st.tuples(addresses, difficulties, difficulties, st.integers(0, 6)),
                         min_size=min_size, max_size=max_size))
    ids = draw(st.lists(st.text("0123456789abcdef-", min_size=1, max_size=8), min_size=len(rows),
                        max_size=len(rows), unique=True))
    return [ShareWork(address, "rig", credited, network, share_id, created=created)
            for (address, credited, network, created), share_id in zip(rows, ids)]


@st.composite
def fee_configs(draw):
    pool = draw(percents)
    names = draw(st.lists(st.sampled_from(["dev", "ops", "A", "é"]), unique=True, max_size=3))
    recipients = [(name, str(draw(percents))) for name in names]
    spellings = [str(pool), pool, pool.normalize()]
    return FeeConfig(draw(st.sampled_from(spellings)), recipients, pool_account="pool")


factors = st.integers(1, 10 * 10**8).map(lambda n: str(Decimal(n).scaleb(-8)))
rewards = st.integers(0, MAX_REWARD)


def check_report(report, reward):
    amounts = [e.amount for e in report.entries] + [p.amount for p in report.fee_payments]
    amounts += [report.pool_fee, report.rounding_remainder]
    assert all(type(a) is int and a >= 0 for a in amounts)
    assert sum(amounts) == reward == report.total
    assert report.rounding_remainder <= len(report.entries) + len(report.fee_payments)
    for entry in report.entries:
        steps = proof(report, entry.address)
        assert verify_proof(report.merkle_root, entry.address, entry.amount, steps)
        assert not verify_proof(report.merkle_root, entry.address, entry.amount + 1, steps)
        if entry.amount:
            assert not verify_proof(report.merkle_root, entry.address, entry.amount - 1, steps)


@SETTINGS
@given(share_lists(), rewards, fee_configs(), factors, st.randoms(use_true_random=False))
def test_pplns_properties(shares, reward, fees, factor, rng):
    block = Block(100, "beef", reward, "A")
    report = pplns(block, shares, fees, factor=factor)
    check_report(report, reward)
    assert report.window.work <= report.window.target_work
    assert report.window.filled == (report.window.work == report.window.target_work)
    assert sum(e.share for e in report.entries) == 1
    shuffled = list(shares)
    rng.shuffle(shuffled)
    again = pplns(block, shuffled, FeeConfig(fees.pool_fee_percent, fees.recipients[::-1]), factor=factor)
    assert again.to_json_bytes() == report.to_json_bytes() and again.merkle_root == report.merkle_root


@SETTINGS
@given(share_lists(), rewards, fee_configs(), st.randoms(use_true_random=False))
def test_prop_properties(shares, reward, fees, rng):
    block = Block(100, "beef", reward, "A")
    report = prop(block, shares, fees)
    check_report(report, reward)
    assert report.window.shares_counted == len(shares)
    shuffled = list(shares)
    rng.shuffle(shuffled)
    assert prop(block, shuffled, fees).to_json_bytes() == report.to_json_bytes()


@SETTINGS
@given(rewards, fee_configs(), addresses)
def test_solo_properties(reward, fees, finder):
    report = solo(Block(1, "h", reward, finder), fees)
    check_report(report, reward)
    assert report.amounts()[finder] == reward * fees.miners_fraction // 1


@SETTINGS
@given(share_lists(max_size=60), st.integers(0, 10**12), fee_configs(), st.randoms(use_true_random=False))
def test_pps_batching_changes_nothing(shares, subsidy, fees, rng):
    whole = pps_credits(shares, subsidy, fees)
    totals, carry, position = {}, {}, 0
    while position < len(shares):
        size = rng.randint(1, 5)
        credits, carry = pps_credits(shares[position:position + size], subsidy, fees, carry)
        position += size
        for address, amount in credits.items():
            assert type(amount) is int and amount > 0
            totals[address] = totals.get(address, 0) + amount
    assert totals == whole.credits and carry == whole.carry
    assert all(0 < units < PPS_UNITS_PER_SATOSHI for units in carry.values())


def test_many_random_equal_timestamp_orders():
    rng = random.Random(7)
    shares = [ShareWork(f"m{i % 11}", "r", float(rng.randint(1, 300)), 1000.0, f"id{i:04d}", created=i // 50)
              for i in range(400)]
    block = Block(1, "h", 1_234_567_891, "m0")
    expected = pplns(block, shares, FeeConfig("1.1"), factor="0.75").to_json_bytes()
    for _ in range(20):
        rng.shuffle(shares)
        assert pplns(block, shares, FeeConfig("1.1"), factor="0.75").to_json_bytes() == expected
