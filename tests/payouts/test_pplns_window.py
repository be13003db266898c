"""PplnsWindow (runs of whole shares as groups, the rest one by one) pays exactly what the list-based
PPLNS paid: the reference below is the list-based ``pplns`` as it was before the window was
streamed, kept verbatim; every report is compared byte for byte."""
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payouts import Block, FeeConfig, PayoutError, PplnsWindow, ShareWork, pplns, pplns_from_window
from payouts.money import decimal_text, fraction_text
from payouts.report import Window
from payouts.schemes import (
    EMPTY_ROUND_CAUSE,
    UNPAID_STATUSES,
    _check_inputs,
    _paid,
    _positive_factor,
    _unpaid,
    newest_first,
    without_shares,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# The strategies of test_payout_properties.py.
addresses = st.sampled_from(["A", "B", "ltc1qxyz", "Mabc", "é", "日本", "a b", "z" * 90, "\U0001f600"])
difficulties = st.floats(min_value=2**-30, max_value=1e15, allow_nan=False, allow_infinity=False)
percents = st.integers(0, 25 * 10**8).map(lambda n: Decimal(n).scaleb(-8))
factors = st.integers(1, 10 * 10**8).map(lambda n: str(Decimal(n).scaleb(-8)))
rewards = st.integers(0, 21_000_000 * 100_000_000 * 4)


@st.composite
def share_lists(draw, max_size=60):
    rows = draw(st.lists(st.tuples(addresses, difficulties, difficulties, st.integers(0, 6)),
                         min_size=1, max_size=max_size))
    ids = draw(st.lists(st.text("0123456789abcdef-", min_size=1, max_size=8), min_size=len(rows),
                        max_size=len(rows), unique=True))
    return [ShareWork(address, "rig", credited, network, share_id, created=created)
            for (address, credited, network, created), share_id in zip(rows, ids)]


@st.composite
def fee_configs(draw):
    names = draw(st.lists(st.sampled_from(["dev", "ops", "A", "é"]), unique=True, max_size=3))
    return FeeConfig(draw(percents), [(name, str(draw(percents))) for name in names], pool_account="pool")


def list_pplns(block, shares, fees, *, factor=2):
    """The list-based PPLNS before ``PplnsWindow`` (the reference)."""
    _check_inputs(block, fees)
    target = _positive_factor(factor)
    if block.status in UNPAID_STATUSES:
        return _unpaid("pplns", block, fees)
    ordered = newest_first(shares)
    work_by_address = {}
    counted = Fraction(0)
    oldest = None
    oldest_fraction = Fraction(1)
    shares_counted = 0
    for share in ordered:
        part = min(share.work, target - counted)
        work_by_address[share.address] = work_by_address.get(share.address, Fraction(0)) + part
        counted += part
        oldest, oldest_fraction = share, part / share.work
        shares_counted += 1
        if counted == target:
            break
    if oldest is None:
        return without_shares("pplns", block, fees,
                              f"no share is stored at or before the block ({EMPTY_ROUND_CAUSE})")
    filled = counted == target
    window = Window(target, target, counted, filled, shares_counted, ordered[0].share_id,
                    oldest.share_id, oldest_fraction)
    notes = () if filled else (
        f"window not filled: {fraction_text(counted)} of {decimal_text(target)} units of work; "
        "the miners' part is shared over the shares there are",)
    return _paid("pplns", block, fees, work_by_address, window, notes)


def groups_of(run):
    """(address, credited, network, count) of a run of shares, as the ledger's GROUP BY gives them."""
    counts = {}
    for share in run:
        key = (share.address, share.credited_difficulty, share.network_difficulty)
        counts[key] = counts.get(key, 0) + 1
    return [(*key, count) for key, count in counts.items()]


def streamed(block, shares, fees, factor, cuts):
    """The window built the way the processor builds it: runs of whole shares between ``cuts``
    (positions in the newest-first order) as groups while they fit, then one share at a time."""
    ordered = newest_first(shares)
    window = PplnsWindow(factor)
    position = 0
    for cut in sorted(set(cuts)):
        run = ordered[position:cut]
        if not run:
            continue
        if not window.add_whole(groups_of(run), run[0].share_id, run[-1].share_id):
            break
        position = cut
    for share in ordered[position:]:
        if window.add(share):
            break
    return pplns_from_window(block, window, fees)


BLOCK = Block(100, "beef", 1_250_000_000, "A")


@SETTINGS
@given(share_lists(), rewards, fee_configs(), factors, st.lists(st.integers(0, 60), max_size=4))
def test_streamed_window_equals_the_list_based_pplns(shares, reward, fees, factor, cuts):
    block = Block(100, "beef", reward, "A")
    expected = list_pplns(block, shares, fees, factor=factor)
    assert pplns(block, shares, fees, factor=factor).to_json_bytes() == expected.to_json_bytes()
    report = streamed(block, shares, fees, factor, cuts)
    assert report.to_json_bytes() == expected.to_json_bytes()
    assert report.merkle_root == expected.merkle_root


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from([1.0, 3.0, 1e-9, 7.5]),
                          st.sampled_from([10.0, 30.0, 1e-3])), min_size=1, max_size=80),
       st.sampled_from(["0.1", "1", "2", "3.33333333"]), st.integers(0, 80))
def test_repeated_difficulties_and_exact_boundaries(rows, factor, cut):
    # Few distinct values, so groups hold many shares and the window often ends exactly on a share.
    shares = [ShareWork(a, "r", c, n, f"{i:05d}", created=1000 - i) for i, (a, c, n) in enumerate(rows)]
    expected = list_pplns(BLOCK, shares, FeeConfig("1.5"), factor=factor).to_json_bytes()
    assert streamed(BLOCK, shares, FeeConfig("1.5"), factor, [cut]).to_json_bytes() == expected


def test_a_run_reaching_the_end_of_the_window_is_refused_and_changes_nothing():
    window = PplnsWindow("2")
    assert window.add_whole([("A", 50.0, 100.0, 2)], "s0", "s1")            # 1 unit of work
    assert not window.add_whole([("B", 100.0, 100.0, 1)], "s2", "s2")       # would reach 2 exactly
    assert (window.counted, window.shares_counted, window.oldest_share_id) == (1, 2, "s1")
    assert window.add(ShareWork("B", "r", 150.0, 100.0, "s2", created=1))   # full: 1 of its 1.5 counts
    assert window.full and window.oldest_fraction == Fraction(2, 3)
    with pytest.raises(PayoutError, match="already full"):
        window.add(ShareWork("C", "r", 1.0, 100.0, "s3", created=0))


@pytest.mark.parametrize("groups", [
    [("A", float("nan"), 1.0, 1)], [("A", 1.0, 0.0, 1)], [("A", 1.0, float("inf"), 1)],
    [("", 1.0, 1.0, 1)], [("A", 1.0, 1.0, 0)], [("A", 1.0, 1.0, True)], []])
def test_bad_groups_are_refused(groups):
    with pytest.raises(PayoutError):
        PplnsWindow().add_whole(groups, "s0", "s0")


def test_an_empty_window_pays_the_finder_and_says_why():
    report = pplns_from_window(BLOCK, PplnsWindow(), FeeConfig())
    assert report.paid and report.amounts() == {BLOCK.finder_address: BLOCK.reward}
    assert "no share is stored" in report.notes[0]
    assert report.to_json_bytes() == list_pplns(BLOCK, [], FeeConfig()).to_json_bytes()
    orphan = Block(100, "beef", 5, "A", status="orphaned")
    assert pplns_from_window(orphan, PplnsWindow(), FeeConfig()).paid is False
