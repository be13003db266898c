"""Fee configuration (validation, exact percents) and the integer split of a reward."""
from decimal import Decimal
from fractions import Fraction

import pytest

from payouts.fees import FeeConfig, FeeRecipient, parse_percent, split_reward
from payouts.money import MAX_AMOUNT, PayoutError


@pytest.mark.parametrize("given", ["1.5", " 1.5 ", "1.50", Decimal("1.5"), Decimal("1.500"), Fraction(3, 2)])
def test_percent_is_exact_whatever_its_spelling(given):
    assert parse_percent(given) == Fraction(3, 2)


def test_int_percents():
    assert parse_percent(0) == 0 and parse_percent(100) == 100 and parse_percent("7") == 7


def test_float_percent_is_refused_with_a_way_out():
    expected = r"float: give it as a string \('0.1'\).*parse_float=decimal.Decimal"
    with pytest.raises(PayoutError, match=expected):
        parse_percent(0.1, "pool fee percent")
    with pytest.raises(ValueError):
        FeeConfig(1.0)
    with pytest.raises(ValueError, match="float"):
        FeeConfig("1", [("fund", 0.5)])


@pytest.mark.parametrize("bad", [True, None, b"1", [1], "abc", "", "1/3", "NaN", "-Infinity", "Infinity",
                                 "sNaN",
                                 Decimal("NaN"), Decimal("Infinity"), "-0.01", -1, "100.00000001", 101,
                                 "1e3", "0.000000001", Decimal("1E-9"), Fraction(1, 3), "1e999999999",
                                 "1e-999999999", Decimal("1E-999999999"), "1" * 100, 10**1000])
def test_bad_percents(bad):
    with pytest.raises(ValueError):
        parse_percent(bad)


def test_edge_percents_allowed():
    assert parse_percent("-0") == 0
    assert parse_percent("0.00000001") == Fraction(1, 10**8)
    assert parse_percent("1E+2") == 100
    FeeConfig("100")
    FeeConfig("0", [("a", "60"), ("b", "40")])


def test_total_over_100_is_refused():
    with pytest.raises(PayoutError, match=r"pool fee 50 % plus fee recipients add up to 100.00000001 %"):
        FeeConfig("50", [("a", "25"), ("b", "25.00000001")])


def test_recipients_distinct_and_not_the_pool_account():
    with pytest.raises(PayoutError, match="listed twice"):
        FeeConfig("1", [("a", "1"), ("a", "2")])
    with pytest.raises(PayoutError, match="is the pool fee account"):
        FeeConfig("1", [("pool", "1")], pool_account="pool")


@pytest.mark.parametrize("recipients", ["a", {"a": "1"}, [("a",)], [("a", "1", "x")], ["ab"], 5, [("", "1")],
                                        [("a\x00b", "1")], [(5, "1")], [("\ud800", "1")]])
def test_bad_recipient_shapes(recipients):
    with pytest.raises(PayoutError):
        FeeConfig("1", recipients)


@pytest.mark.parametrize("account", ["", None, "a\x00"])
def test_bad_pool_account(account):
    with pytest.raises(PayoutError):
        FeeConfig("1", pool_account=account)


def test_same_meaning_same_config():
    one = FeeConfig("1.0", [("b", "0.25"), ("a", Decimal("0.5"))])
    other = FeeConfig(Decimal(1), [FeeRecipient("a", "0.50"), ("b", Fraction(1, 4))])
    assert one == other
    assert [r.address for r in one.recipients] == ["a", "b"]
    assert one.total_percent == Fraction(7, 4)
    assert one.miners_fraction == Fraction(9825, 10000)


def test_split_known_answer_with_rounding():
    # 1_250_000_000 sat, pool fee 1 %, recipient 0.5 %, three miners with equal work.
    # recipient: 1_250_000_000 * 0.005 = 6_250_000; pool fee: 12_500_000
    # miners: 1_250_000_000 * 0.985 = 1_231_250_000, / 3 = 410_416_666.67 -> 410_416_666 each,
    # 2 satoshis left over go to the pool account: 12_500_002.
    fees = FeeConfig("1", [("fund", "0.5")], pool_account="pool")
    split = split_reward(1_250_000_000, {"c": Fraction(1), "a": Fraction(1), "b": Fraction(1)}, fees)
    assert split.miner_amounts == {"a": 410_416_666, "b": 410_416_666, "c": 410_416_666}
    assert list(split.miner_amounts) == ["a", "b", "c"]
    assert [(p.address, p.amount) for p in split.fee_payments] == [("fund", 6_250_000)]
    assert (split.pool_fee, split.rounding_remainder, split.pool_amount) == (12_500_000, 2, 12_500_002)
    assert split.miners_total + split.fees_total == 1_250_000_000


def test_split_recipient_rounding_goes_to_pool():
    # reward 999: recipient 1/3 % -> not allowed (8 places); 0.33333333 % of 999 = 3.33 -> 3;
    # pool 1 % = 9.99 -> 9; miners 98.66666667 % = 985.67 -> a 492.83 -> 492, b 492.
    fees = FeeConfig("1", [("r", "0.33333333")])
    split = split_reward(999, {"a": Fraction(1), "b": Fraction(1)}, fees)
    assert split.miner_amounts == {"a": 492, "b": 492}
    assert split.fee_payments[0].amount == 3
    assert (split.pool_fee, split.rounding_remainder) == (9, 3)
    assert split.miners_total + split.fees_total == 999


def test_split_edges():
    assert split_reward(0, {"a": Fraction(1)}, FeeConfig("1")).miner_amounts == {"a": 0}
    everything = split_reward(1000, {"a": Fraction(1)}, FeeConfig("60", [("r", "40")]))
    assert everything.miner_amounts == {"a": 0} and everything.fee_payments[0].amount == 400
    assert everything.pool_amount == 600
    top = split_reward(MAX_AMOUNT, {"a": Fraction(1, 3), "b": Fraction(2, 3)}, FeeConfig("0"))
    assert top.miners_total + top.fees_total == MAX_AMOUNT


@pytest.mark.parametrize("reward", [-1, 1.0, True, "5", MAX_AMOUNT + 1, None])
def test_split_bad_reward(reward):
    with pytest.raises(PayoutError):
        split_reward(reward, {"a": Fraction(1)}, FeeConfig("1"))


@pytest.mark.parametrize("work", [{}, {"a": Fraction(0)}, {"a": Fraction(-1)}, {"a": 1.0}, {"": Fraction(1)},
                                  {"a": True}])
def test_split_bad_work(work):
    with pytest.raises(PayoutError):
        split_reward(100, work, FeeConfig("1"))
