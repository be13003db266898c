"""The pure rules of the payment sender: who is paid now, and how a funded transaction's outputs
map to debits (payouts.payments)."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payouts.payments import Payee, PaymentError, PaymentPolicy, batches, choose_payees, match_outputs

POLICY = PaymentPolicy(minimum_payout=1000, max_payees=2)


def _check(address: str) -> str | None:
    return None if address.startswith("m") else "not a regtest address"


def test_balances_at_the_minimum_are_paid_largest_first_and_the_pool_account_never():
    payees, skipped = choose_payees(
        [("m1", 999), ("m2", 1000), ("m3", 50_000), ("pool", 10**9), ("m4", 7000)], POLICY,
        check_address=_check, not_paid=("pool",))
    assert payees == [Payee("m3", 50_000), Payee("m4", 7000), Payee("m2", 1000)]
    assert skipped == []


def test_a_miner_minimum_above_the_pool_minimum_wins_and_one_below_does_not():
    payees, _ = choose_payees([("m1", 5000), ("m2", 5000)], POLICY, minimums={"m1": 6000, "m2": 10})
    assert payees == [Payee("m2", 5000)]


def test_an_invalid_address_is_skipped_with_its_reason_and_the_others_are_paid():
    payees, skipped = choose_payees([("m1", 5000), ("bad", 5000), ("m2", 4000)], POLICY, check_address=_check)
    assert [p.address for p in payees] == ["m1", "m2"]
    assert skipped == [("bad", "not a regtest address")]


def test_float_balances_are_refused():
    with pytest.raises(PaymentError):
        choose_payees([("m1", 5000.0)], POLICY)


def test_batches_respect_the_size():
    payees = [Payee(f"m{i}", 1000 + i) for i in range(5)]
    assert [len(b) for b in batches(payees, 2)] == [2, 2, 1]
    assert [payee for batch in batches(payees, 2) for payee in batch] == payees


@pytest.mark.parametrize("bad", [{"minimum_payout": 0}, {"fee_paid_by": "nobody"}, {"max_payees": 1.5},
                                 {"conflict_confirmations": True}])
def test_policy_refuses_nonsense(bad):
    with pytest.raises(PaymentError):
        PaymentPolicy(**bad)


PAYEES = [Payee("m1", 10_000), Payee("m2", 5_000)]
SCRIPTS = [b"\x00\x14" + b"\x01" * 20, b"\x00\x14" + b"\x02" * 20]
CHANGE = (b"\x00\x14" + b"\x03" * 20, 123_456)


def test_pool_pays_the_fee_outputs_are_the_balances():
    outputs = match_outputs(PAYEES, [(SCRIPTS[0], 10_000), (SCRIPTS[1], 5_000), CHANGE], SCRIPTS, 300, "pool")
    assert [(o.address, o.amount, o.debited, o.fee) for o in outputs] == [("m1", 10_000, 10_000, 0),
                                                                           ("m2", 5_000, 5_000, 0)]


def test_miners_pay_the_fee_the_shortfall_is_the_fee():
    outputs = match_outputs(PAYEES, [(SCRIPTS[0], 9_850), (SCRIPTS[1], 4_850)], SCRIPTS, 300, "miners")
    assert [(o.amount, o.debited, o.fee) for o in outputs] == [(9_850, 10_000, 150), (4_850, 5_000, 150)]


@pytest.mark.parametrize("outputs, fee, who", [
    ([(SCRIPTS[0], 10_000), (SCRIPTS[1], 4_999)], 300, "pool"),           # short with the pool paying
    ([(SCRIPTS[1], 10_000), (SCRIPTS[0], 5_000)], 300, "pool"),           # outputs swapped
    ([(SCRIPTS[0], 10_001), (SCRIPTS[1], 5_000)], 300, "pool"),           # more than the balance
    ([(SCRIPTS[0], 9_850), (SCRIPTS[1], 4_850)], 299, "miners"),          # shortfall is not the fee
    ([(SCRIPTS[0], 10_000)], 300, "pool"),                                 # a payee missing
    ([(SCRIPTS[0], 10_000), (SCRIPTS[1], 5_000), CHANGE, CHANGE], 300, "pool"),  # two change outputs
    ([(SCRIPTS[0], 0), (SCRIPTS[1], 5_000)], 300, "miners"),               # nothing left for a payee
])
def test_a_transaction_that_is_not_what_was_asked_is_refused(outputs, fee, who):
    with pytest.raises(PaymentError):
        match_outputs(PAYEES, outputs, SCRIPTS, fee, who)


@given(amounts=st.lists(st.integers(min_value=1000, max_value=10**12), min_size=1, max_size=40),
       fee=st.integers(min_value=0, max_value=900))
def test_conservation_when_miners_pay(amounts, fee):
    """Core splits the fee equally, the first output taking the remainder; whatever the split, what
    miners receive plus the fee is what left their balances."""
    payees = [Payee(f"m{i}", a) for i, a in enumerate(amounts)]
    scripts = [bytes([i]) * 22 for i in range(len(amounts))]
    share, remainder = divmod(fee, len(amounts))
    values = [a - share - (remainder if i == 0 else 0) for i, a in enumerate(amounts)]
    outputs = match_outputs(payees, list(zip(scripts, values)), scripts, fee, "miners")
    assert sum(o.amount for o in outputs) + fee == sum(o.debited for o in outputs) == sum(amounts)
    assert all(o.amount + o.fee == o.debited and o.fee >= 0 for o in outputs)
