"""The pure block-status decision of the tracker."""
import pytest

from pool.chain.tracker import Verdict, judge


def verdict(status="pending", height=100, confirmations=1, tip=100, maturity=100, orphan=10):
    return judge(status=status, height=height, confirmations=confirmations, tip_height=tip, maturity=maturity,
                 orphan_confirmations=orphan)


@pytest.mark.parametrize("confirmations, expected", [(1, Verdict("pending", 1)), (99, Verdict("pending", 99)),
                                                     (100, Verdict("confirmed", 100)),
                                                     (401, Verdict("confirmed", 401))])
def test_confirmations_and_maturity(confirmations, expected):
    assert verdict(confirmations=confirmations, tip=99 + confirmations) == expected


@pytest.mark.parametrize("off_chain", [-1, None])  # -1: known, off the main chain; None: unknown to the daemon
def test_another_block_at_the_height(off_chain):
    assert verdict(confirmations=off_chain, tip=105) == Verdict("pending", 0)  # not yet deep enough to call it
    assert verdict(confirmations=off_chain, tip=109) == Verdict("orphaned", -10)
    assert verdict(confirmations=off_chain, tip=150) == Verdict("orphaned", -51)


@pytest.mark.parametrize("status", ["orphaned", "rejected"])
def test_a_block_called_orphaned_or_rejected_is_looked_at_again(status):
    assert verdict(status=status, confirmations=-1, tip=120) == Verdict(status, -21)
    assert verdict(status=status, confirmations=-1, tip=199) == Verdict(status, -100)  # final from here
    # Back on the main chain (a reorg): pending again, confirmed at maturity.
    assert verdict(status=status, confirmations=31, tip=130) == Verdict("pending", 31)
    assert verdict(status=status, confirmations=100, tip=199) == Verdict("confirmed", 100)


def test_unknowns_change_nothing():
    assert verdict(height=101, confirmations=None, tip=100) is None  # daemon behind, or block above its tip
    assert verdict(height=101, confirmations=-1, tip=100) is None
