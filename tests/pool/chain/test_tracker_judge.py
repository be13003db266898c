"""The pure block-status decision of the tracker."""
import pytest

from pool.chain.tracker import Verdict, judge

H = "aa" * 32
OTHER = "bb" * 32


def verdict(height=100, tip=100, at=H, maturity=100, orphan=10):
    return judge(height=height, block_hash=H, tip_height=tip, hash_at_height=at, maturity=maturity,
                 orphan_confirmations=orphan)


@pytest.mark.parametrize("tip, expected", [(100, Verdict("pending", 1)), (198, Verdict("pending", 99)),
                                           (199, Verdict("confirmed", 100)), (500, Verdict("confirmed", 401))])
def test_confirmations_and_maturity(tip, expected):
    assert verdict(tip=tip) == expected


def test_another_block_at_the_height():
    assert verdict(tip=105, at=OTHER) == Verdict("pending", 0)  # not yet deep enough to call it
    assert verdict(tip=109, at=OTHER) == Verdict("orphaned", 0)


def test_unknowns_change_nothing():
    assert verdict(at=None) is None  # RPC error
    assert verdict(height=101, tip=100) is None  # daemon behind (syncing) or block above its tip
