"""PPLNS, PROP and SOLO: known answers worked by hand, the window, orphans, hostile input."""
import json
import math
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import pytest

from payouts import Block, FeeConfig, PayoutError, ShareWork, pplns, proof, prop, solo, verify_proof
from payouts.schemes import newest_first

REWARD = 1_250_000_000
FEES = FeeConfig("1", [("fund", "0.5")], pool_account="pool")
BLOCK = Block(height=2_000_000, hash="00ab", reward=REWARD, finder_address="A", status="confirmed")


def shares_newest_first(rows, network=100.0):
    """ShareWork from (address, credited difficulty) rows given newest first: ids s0, s1, ..."""
    return [ShareWork(address, "rig", float(credited), network, f"s{i}", created=1000 - i)
            for i, (address, credited) in enumerate(rows)]


# Network difficulty 100, factor 2: the window is 200 difficulty = 2 units of work.
# Newest first: A 50, B 30, C 20, A 60 (cumulative work 0.5, 0.8, 1.0, 1.6), then C 80 crosses the
# boundary: 0.4 of its 0.8 counts (half the share), then B 100 is outside.
# Work: A 1.1, B 0.3, C 0.6 = 2.  Miners' part 1_250_000_000 * 98.5 % = 1_231_250_000:
# A 1_231_250_000 * 1.1 / 2 = 677_187_500, B * 0.3 / 2 = 184_687_500, C * 0.6 / 2 = 369_375_000.
# Recipient 0.5 % = 6_250_000, pool 1 % = 12_500_000, nothing left by rounding.
WINDOW_ROWS = [("A", 50), ("B", 30), ("C", 20), ("A", 60), ("C", 80), ("B", 100)]


def test_pplns_known_answer_with_boundary_share_in_part():
    report = pplns(BLOCK, shares_newest_first(WINDOW_ROWS), FEES)
    assert report.amounts() == {"A": 677_187_500, "B": 184_687_500, "C": 369_375_000}
    assert [(e.address, e.work, e.share) for e in report.entries] == [
        ("A", Fraction(11, 10), Fraction(11, 20)), ("B", Fraction(3, 10), Fraction(3, 20)),
        ("C", Fraction(3, 5), Fraction(3, 10))]
    assert [(p.address, p.amount) for p in report.fee_payments] == [("fund", 6_250_000)]
    assert (report.pool_fee, report.rounding_remainder) == (12_500_000, 0)
    assert report.miners_total + report.fees_total == REWARD
    window = report.window
    assert (window.target_work, window.work, window.filled) == (2, 2, True)
    assert (window.shares_counted, window.newest_share_id, window.oldest_share_id) == (5, "s0", "s4")
    assert window.oldest_share_fraction == Fraction(1, 2)
    assert report.notes == ()


def test_pplns_known_answer_json():
    report = pplns(BLOCK, shares_newest_first(WINDOW_ROWS), FEES)
    data = json.loads(report.to_json_bytes())
    assert data["miners"][2] == {"address": "C", "amount": 369_375_000, "share": "3/10", "work": "3/5"}
    assert data["window"] == {"factor": "2", "filled": True, "newest_share_id": "s0",
                              "oldest_share_fraction": "1/2", "oldest_share_id": "s4", "shares_counted": 5,
                              "target_work": "2", "work": "2"}
    assert data["fees"] == {"pool_account": "pool", "pool_amount": 12_500_000, "pool_fee": 12_500_000,
                            "pool_fee_percent": "1", "recipients": [{"address": "fund", "amount": 6_250_000,
                                                                     "percent": "0.5"}],
                            "rounding_remainder": 0}
    assert data["totals"] == {"fees": 18_750_000, "miners": 1_231_250_000, "paid": REWARD}
    assert data["merkle_root"] == report.merkle_root
    for entry in report.entries:
        assert verify_proof(report.merkle_root, entry.address, entry.amount, proof(report, entry.address))


def test_pplns_rounding_remainder_goes_to_the_pool_account():
    # Three miners with 1 unit of work each at factor 3: 1_231_250_000 / 3 = 410_416_666.67 each,
    # rounded down; the 2 satoshis left go to the pool account (12_500_002).
    report = pplns(BLOCK, shares_newest_first([("A", 100), ("B", 100), ("C", 100)]), FEES, factor=3)
    assert report.amounts() == {"A": 410_416_666, "B": 410_416_666, "C": 410_416_666}
    assert (report.pool_fee, report.rounding_remainder, report.pool_amount) == (12_500_000, 2, 12_500_002)
    assert report.total == REWARD


def test_share_exactly_on_the_boundary_counts_whole():
    report = pplns(BLOCK, shares_newest_first([("A", 150), ("B", 50), ("C", 70)]), FEES)
    assert report.amounts() == {"A": 923_437_500, "B": 307_812_500}  # 3/4 and 1/4 of 1_231_250_000
    assert report.window.oldest_share_id == "s1" and report.window.oldest_share_fraction == 1


def test_one_share_bigger_than_the_window():
    # A share of difficulty 1000 at network 100 is 10 units of work: 2 of them count (a fifth).
    report = pplns(BLOCK, shares_newest_first([("A", 1000), ("B", 100)]), FEES)
    assert report.amounts() == {"A": 1_231_250_000}
    assert report.window.oldest_share_fraction == Fraction(1, 5) and report.window.shares_counted == 1


def test_short_window_shares_everything_and_says_so():
    # 0.5 + 0.25 = 0.75 of 2 units: the whole 1_231_250_000 goes to A (2/3) and B (1/3), rounded down.
    report = pplns(BLOCK, shares_newest_first([("A", 50), ("B", 25)]), FEES)
    assert report.amounts() == {"A": 820_833_333, "B": 410_416_666}
    assert report.rounding_remainder == 1 and report.total == REWARD
    assert report.window.filled is False and report.window.work == Fraction(3, 4)
    assert report.notes == ("window not filled: 3/4 of 2 units of work; "
                            "the miners' part is shared over the shares there are",)
    assert json.loads(report.to_json_bytes())["window"]["filled"] is False


def test_older_shares_beyond_the_window_change_nothing():
    rows = WINDOW_ROWS + [("D", 5000), ("E", 1)]
    assert pplns(BLOCK, shares_newest_first(rows), FEES).to_json_bytes() == \
        pplns(BLOCK, shares_newest_first(WINDOW_ROWS), FEES).to_json_bytes()


def test_factor_and_network_difficulty_per_share():
    # Network difficulty changed inside the window: 100 then 200.  Factor 1.5.
    shares = [ShareWork("A", "r", 100.0, 200.0, "s0", created=3),   # 0.5
              ShareWork("B", "r", 100.0, 100.0, "s1", created=2),   # 1.0 -> 1.5, full
              ShareWork("C", "r", 100.0, 100.0, "s2", created=1)]   # outside
    report = pplns(BLOCK, shares, FeeConfig("0"), factor="1.5")
    assert report.amounts() == {"A": REWARD // 3, "B": REWARD * 2 // 3}
    assert report.rounding_remainder == REWARD - REWARD // 3 - REWARD * 2 // 3
    assert json.loads(report.to_json_bytes())["window"]["factor"] == "1.5"


def test_equal_timestamps_are_ordered_by_share_id():
    # Same created for both: share id "x2" > "x1" sorts as the newer one, so x2 (A) counts whole and
    # x1 (B) is cut at the boundary, whatever the input order.
    one = ShareWork("A", "r", 150.0, 100.0, "x2", created=5)
    two = ShareWork("B", "r", 150.0, 100.0, "x1", created=5)
    for shares in ([one, two], [two, one]):
        report = pplns(BLOCK, shares, FeeConfig("0"))
        assert report.window.newest_share_id == "x2" and report.window.oldest_share_id == "x1"
        assert report.amounts() == {"A": REWARD * 3 // 4, "B": REWARD // 4}
    assert pplns(BLOCK, [one, two], FEES).to_json_bytes() == pplns(BLOCK, [two, one], FEES).to_json_bytes()


def test_datetime_and_microsecond_timestamps_agree():
    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    as_datetimes = [ShareWork("A", "r", 60.0, 100.0, "a", created=start + timedelta(microseconds=2)),
                    ShareWork("B", "r", 60.0, 100.0, "b", created=start + timedelta(microseconds=1)),
                    ShareWork("C", "r", 160.0, 100.0, "c",
                              created=start.astimezone(timezone(timedelta(hours=2))))]
    micros = int(start.timestamp()) * 1_000_000
    as_ints = [ShareWork("A", "r", 60.0, 100.0, "a", created=micros + 2),
               ShareWork("B", "r", 60.0, 100.0, "b", created=micros + 1),
               ShareWork("C", "r", 160.0, 100.0, "c", created=micros)]
    assert pplns(BLOCK, as_datetimes, FEES).to_json_bytes() == pplns(BLOCK, as_ints, FEES).to_json_bytes()
    assert [s.share_id for s in newest_first(as_datetimes)] == ["a", "b", "c"]


@pytest.mark.parametrize("status", ["orphaned", "rejected"])
def test_orphaned_and_rejected_blocks_pay_nothing(status):
    block = Block(5, "dead", REWARD, "A", status=status)
    for report in (pplns(block, shares_newest_first(WINDOW_ROWS), FEES),
                   prop(block, shares_newest_first(WINDOW_ROWS), FEES), solo(block, FEES)):
        assert report.paid is False and report.entries == () and report.total == 0
        assert report.fees_total == 0 and report.window is None
        assert report.notes == (f"block is {status}: it pays nothing",)
        assert json.loads(report.to_json_bytes())["totals"] == {"fees": 0, "miners": 0, "paid": 0}


def test_pending_block_is_not_paid():
    block = Block(5, "cafe", REWARD, "A", status="pending")
    with pytest.raises(PayoutError, match="pending"):
        pplns(block, shares_newest_first(WINDOW_ROWS), FEES)
    with pytest.raises(PayoutError, match="pending"):
        solo(block, FEES)


def test_no_shares_pays_the_finder_and_says_why():
    # 98.5 % to the finder A, as SOLO would pay it; the note names the finder and the cause.
    for scheme, report in (("pplns", pplns(BLOCK, [], FEES)), ("prop", prop(BLOCK, [], FEES))):
        assert report.scheme == scheme and report.paid and report.total == REWARD
        assert report.amounts() == {"A": 1_231_250_000} and report.window is None
        assert "goes to the finder A" in report.notes[0] and "flush interval" in report.notes[0]
        assert report.fee_payments[0].amount == 6_250_000 and report.pool_amount == 12_500_000


def test_no_shares_and_no_finder_pays_the_fee_accounts():
    # Miners' part 1_231_250_000 over the pool account (1 %) and the fund (0.5 %), 2 to 1.
    nobody = Block(5, "cafe", REWARD, "", status="confirmed")
    for report in (pplns(nobody, [], FEES), prop(nobody, [], FEES), solo(nobody, FEES)):
        assert report.paid and report.total == REWARD
        fund, pool = report.fee_payments[0].address, FEES.pool_account
        assert report.amounts() == {fund: 410_416_666, pool: 820_833_333}
        assert report.pool_amount == 12_500_000 + 1        # its fee and the rounding remainder
        assert "fee accounts" in report.notes[0]
    # No fee at all: the pool fee account takes the miners' part.
    report = prop(nobody, [], FeeConfig("0"))
    assert report.amounts() == {"pool": REWARD} and report.total == REWARD


def test_prop_known_answer():
    # Round: A 50 + 150, B 100, C 100 at network 100 = A 2, B 1, C 1 units (4 in all), every share whole.
    # Miners' part 1_231_250_000: A 615_625_000, B 307_812_500, C 307_812_500.
    shares = shares_newest_first([("A", 50), ("B", 100), ("A", 150), ("C", 100)])
    report = prop(BLOCK, shares, FEES)
    assert report.amounts() == {"A": 615_625_000, "B": 307_812_500, "C": 307_812_500}
    assert report.window.factor is None and report.window.work == 4 and report.window.shares_counted == 4
    assert (report.window.newest_share_id, report.window.oldest_share_id) == ("s0", "s3")
    assert report.total == REWARD and report.scheme == "prop"


def test_solo_known_answer():
    # The finder takes 98.5 % = 1_231_250_000; 6_250_000 to the fund, 12_500_000 to the pool.
    report = solo(BLOCK, FEES)
    assert report.amounts() == {"A": 1_231_250_000}
    assert report.entries[0].work == 1 and report.entries[0].share == 1
    assert report.fee_payments[0].amount == 6_250_000 and report.pool_amount == 12_500_000
    assert report.window is None and report.scheme == "solo"
    odd = solo(Block(1, "h", 1_000_000_003, "A"), FeeConfig("1.5"))
    assert odd.amounts() == {"A": 985_000_002} and (odd.pool_fee, odd.rounding_remainder) == (15_000_000, 1)


def test_solo_refuses_a_bad_finder():
    with pytest.raises(PayoutError, match="finder address"):
        solo(Block(1, "h", REWARD, "A\x00B"), FEES)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1.0, 0.0, -0.0, 0, -5, "1", None, True,
                                 5e-324 * -1])
@pytest.mark.parametrize("field", ["credited_difficulty", "network_difficulty"])
def test_hostile_difficulties_are_refused(field, bad):
    values = {"credited_difficulty": 1.0, "network_difficulty": 1.0, field: bad}
    with pytest.raises(ValueError, match=field.replace("_", " ")):
        ShareWork("A", "rig", share_id="s", **values)


@pytest.mark.parametrize("kwargs", [
    {"address": ""}, {"address": "a\x00b"}, {"address": 5}, {"share_id": ""}, {"share_id": 7},
    {"worker": None}, {"created": 1.5}, {"created": datetime(2026, 1, 1)}, {"created": True},
    {"height": -1}, {"coinbase_value": -1}, {"coinbase_value": 1.0}])
def test_hostile_share_fields(kwargs):
    values = dict(address="A", worker="r", credited_difficulty=1.0, network_difficulty=1.0, share_id="s")
    values.update(kwargs)
    with pytest.raises(ValueError):
        ShareWork(**values)


@pytest.mark.parametrize("kwargs", [{"height": -1}, {"hash": ""}, {"reward": -1}, {"reward": 1.5},
                                    {"reward": 2**63}, {"status": "mature"}, {"finder_address": None}])
def test_hostile_block_fields(kwargs):
    values = dict(height=1, hash="h", reward=1, finder_address="A", status="confirmed")
    values.update(kwargs)
    with pytest.raises(ValueError):
        Block(**values)


def test_duplicate_share_ids_are_refused():
    shares = [ShareWork("A", "r", 1.0, 1.0, "same", created=1),
              ShareWork("B", "r", 1.0, 1.0, "same", created=2)]
    with pytest.raises(PayoutError, match="given twice"):
        pplns(BLOCK, shares, FEES)
    with pytest.raises(PayoutError, match="expected ShareWork"):
        pplns(BLOCK, [("A", 1.0)], FEES)


@pytest.mark.parametrize("factor", [2.0, 0, "-1", "abc", "0.000000001", None])
def test_bad_factor(factor):
    with pytest.raises(PayoutError):
        pplns(BLOCK, shares_newest_first(WINDOW_ROWS), FEES, factor=factor)


def test_wrong_argument_types():
    with pytest.raises(PayoutError, match="FeeConfig"):
        pplns(BLOCK, [], {"pool_fee_percent": "1"})
    with pytest.raises(PayoutError, match="Block"):
        solo({"height": 1}, FEES)


def test_huge_reward_and_thousands_of_miners():
    reward = 21_000_000 * 100_000_000 * 4
    network = 1.7e7
    shares = [ShareWork(f"ltc1miner{i % 3000:05d}", "r", float(1000 + (i * 7919) % 50_000), network,
                        f"share-{i:06d}", created=i // 4) for i in range(9000)]
    fees = FeeConfig("0.9", [("dev", "0.1"), ("ops", "0.25")])
    for report in (pplns(Block(1, "h", reward, "x"), shares, fees, factor="10"),
                   prop(Block(1, "h", reward, "x"), shares, fees)):
        assert len(report.entries) > 1000
        assert report.total == reward
        assert all(type(e.amount) is int and e.amount > 0 for e in report.entries)
        assert report.rounding_remainder <= len(report.entries) + len(fees.recipients)
        for entry in report.entries[::97]:
            assert verify_proof(report.merkle_root, entry.address, entry.amount, proof(report, entry.address))
