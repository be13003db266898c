"""Payout schemes: pure functions from a block, its shares and the fee config to satoshis.

Work.  A share's work is credited difficulty / network difficulty at the time of the share (both
Stratum units, floats in the ledger, each turned into its exact rational value): the share's
chance of being a block, so one unit of work is one expected block.  Sums of work are exact
``Fraction``s; satoshis are ints, rounded down only at the end (see ``payouts.fees``).

Order.  Shares are ordered newest first by ``(created, share_id)``, both descending: equal
timestamps are broken by the share id as text.  The schemes sort what they are given, so the order
of the input never changes a report.  A share id may appear only once.

* ``pplns``: the last ``factor`` units of work before the block (N = factor x network difficulty
  in difficulty terms, default factor 2); the share crossing the window boundary counts in part.
  Fewer shares than the window: the miners' part is shared over those there are, and the report
  says so (``window.filled`` is False, and a note).  ``shares`` may hold more than the window
  (everything at or before the block): older shares are ignored.  Shares after the block must not
  be passed: choosing them is the caller's query.  ``PplnsWindow`` builds the same window without
  a list of shares (runs of whole shares as per-address groups, the boundary shares one by one),
  for windows of millions of shares; ``pplns_from_window`` pays it.
* ``prop``: the round's shares (since the previous block), each at its whole work.
* ``solo``: the finder takes the block.
* ``pps_credits`` / ``fpps_credits``: credits per share when stored, not per block (below).

Every block scheme pays only a ``confirmed`` block, returns an unpaid report (all zero) for an
``orphaned`` or ``rejected`` one, and raises ``PayoutError`` for a ``pending`` one and for any bad
input (NaN, infinite, negative or zero difficulty; a float percent; a duplicate share).  A confirmed
block with nobody to pay by its scheme -- no stored share in its PROP round or PPLNS window (shares
of the last flush interval are lost when the pool process is killed), or no finder for SOLO -- is
paid all the same (``without_shares``): the miners' part goes to the finder stored with the block,
or, when none is stored, to the pool's fee accounts in proportion to their fees; the report's note
says which and why.  So no confirmed block is ever left unpaid for want of shares.  Under PPS and
FPPS a confirmed block credits no balance (``settled_per_share``): its reward is the PPS reserve.

PPS carry.  A share is worth, exactly,
``work x block value x (100 - total fee percent) / 100`` satoshis (block value: the subsidy for
PPS, the template's coinbase value for FPPS).  That value is rounded down once, per share, to
*units* of 10^-18 satoshi (``PPS_UNITS_PER_SATOSHI``); everything after is integer.  Each miner has
a carry in 0 ..= 10^18 - 1 units: a batch adds the miner's share units to its carry, credits the
whole satoshis and carries the rest.  So after any sequence of batches a miner has been credited
exactly ``floor(sum of its share units / 10^18)`` satoshis and holds the rest as carry: how the
shares were cut into batches changes nothing, and no satoshi is lost to rounding; the only
rounding is below 10^-18 satoshi per share.  The carry is an int per address (it fits a bigint
column); store it with the credits in the same transaction.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from fractions import Fraction
from typing import NamedTuple

from payouts import merkle
from payouts.fees import FeeConfig, split_reward
from payouts.money import (
    PayoutError,
    check_account,
    check_amount,
    decimal_text,
    exact_difficulty,
    fraction_text,
    parse_decimal,
)
from payouts.report import PayoutEntry, PayoutReport, Window
from payouts.rounds import UNPAID_STATUSES, Block, ShareWork

DEFAULT_PPLNS_FACTOR = 2
PPS_UNITS_PER_SATOSHI = 10**18

#: Why a round can hold no stored share, in the note of every report that pays such a block.
EMPTY_ROUND_CAUSE = ("shares accepted within one flush interval before the pool process was killed are "
                     "not stored")


def newest_first(shares: Iterable[ShareWork]) -> list[ShareWork]:
    """The shares newest first by (created, share_id); PayoutError on a non-share or a repeated id."""
    ordered = list(shares)
    seen = set()
    for share in ordered:
        if not isinstance(share, ShareWork):
            raise PayoutError(f"expected ShareWork, got {type(share).__name__}")
        if share.share_id in seen:
            raise PayoutError(f"share {share.share_id} is given twice")
        seen.add(share.share_id)
    ordered.sort(key=lambda share: share.order_key, reverse=True)
    return ordered


def _check_inputs(block: Block, fees: FeeConfig) -> None:
    if not isinstance(block, Block):
        raise PayoutError(f"block must be a Block, not {type(block).__name__}")
    if not isinstance(fees, FeeConfig):
        raise PayoutError(f"fees must be a FeeConfig, not {type(fees).__name__}")
    if block.status == "pending":
        raise PayoutError(f"block {block.hash} at {block.height} is pending: only a confirmed block is paid")


def _unpaid(scheme: str, block: Block, fees: FeeConfig) -> PayoutReport:
    return PayoutReport(scheme, block, fees, (), (), 0, 0, None, False,
                        (f"block is {block.status}: it pays nothing",))


def _paid(scheme: str, block: Block, fees: FeeConfig, work_by_address: dict[str, Fraction],
          window: Window | None, notes: tuple[str, ...]) -> PayoutReport:
    split = split_reward(block.reward, work_by_address, fees)
    # The window's work is that sum, exactly (PPLNS, PROP): no need to add it up again.
    total_work = window.work if window is not None else sum(work_by_address.values(), Fraction(0))
    entries = tuple(
        PayoutEntry(address, work_by_address[address], work_by_address[address] / total_work, amount)
        for address, amount in split.miner_amounts.items())
    return PayoutReport(scheme, block, fees, entries, split.fee_payments, split.pool_fee,
                        split.rounding_remainder, window, True, notes)


def _positive_factor(factor: object) -> Fraction:
    exact = parse_decimal(factor, "PPLNS factor")
    if exact <= 0:
        raise PayoutError(f"PPLNS factor must be positive, got {factor}")
    return exact


def _work(credited_total: int, scale: int, network: float) -> Fraction:
    """(credited_total / scale) / network, exactly."""
    numerator, denominator = network.as_integer_ratio()
    return Fraction(credited_total * denominator, scale * numerator)


class PplnsWindow:
    """A PPLNS window built newest first without keeping the shares: per-address exact work only.

    ``add(share)`` takes one share (newest first, the caller's order) and counts it whole, or in
    part when it crosses the window boundary; it returns True once the window is full (``factor``
    units of work): give no more shares.  ``add_whole(groups, newest_share_id, oldest_share_id)``
    counts a run of consecutive shares at once, summarised as ``(address, credited difficulty,
    network difficulty, count)`` groups (what a SQL ``GROUP BY`` over the run returns), only when
    their work stays strictly below the rest of the window; otherwise it changes nothing and returns
    False, and the caller gives those shares one by one instead.  Work is summed as exact
    ``Fraction``s either way, so a window built from groups and single shares equals the one built
    from the same shares one by one (``pplns`` builds it so).
    """

    def __init__(self, factor: object = DEFAULT_PPLNS_FACTOR) -> None:
        self.target = _positive_factor(factor)
        self.work_by_address: dict[str, Fraction] = {}
        self.counted = Fraction(0)
        self.shares_counted = 0
        self.newest_share_id: str | None = None
        self.oldest_share_id: str | None = None
        self.oldest_fraction = Fraction(1)

    @property
    def full(self) -> bool:
        return self.counted == self.target

    def add(self, share: ShareWork) -> bool:
        """Count ``share`` (older than every share counted so far); True when the window is full."""
        if not isinstance(share, ShareWork):
            raise PayoutError(f"expected ShareWork, got {type(share).__name__}")
        if self.full:
            raise PayoutError(f"share {share.share_id}: the window is already full")
        part = min(share.work, self.target - self.counted)
        self.work_by_address[share.address] = self.work_by_address.get(share.address, Fraction(0)) + part
        self.counted += part
        if self.newest_share_id is None:
            self.newest_share_id = share.share_id
        self.oldest_share_id, self.oldest_fraction = share.share_id, part / share.work
        self.shares_counted += 1
        return self.full

    def add_whole(self, groups: Iterable[tuple[str, float, float, int]], newest_share_id: str,
                  oldest_share_id: str) -> bool:
        """Count a run of shares (older than every share counted so far) whole, from its groups:
        ``(address, credited_difficulty, network_difficulty, count)``, ``newest_share_id`` and
        ``oldest_share_id`` of the run.  False, and nothing counted, when the run's work would
        reach the end of the window."""
        for share_id in (newest_share_id, oldest_share_id):
            if not isinstance(share_id, str) or not share_id:
                raise PayoutError(f"share id must be a non-empty str, got {share_id!r}")
        # Exact and fast over tens of thousands of groups: a credited difficulty is a float, so
        # numerator / 2^k; scaled to the common denominator, sums per (address, network difficulty)
        # are ints, and a Fraction is made once per (address, network difficulty).
        rows = []
        scale = 1
        shares = 0
        for address, credited, network, count in groups:
            what = f"shares of {address!r}"
            check_account(address, f"{what} address")
            if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
                raise PayoutError(f"{what}: count must be a positive int, got {count!r}")
            if type(credited) is float and 0.0 < credited < math.inf:
                numerator, denominator = credited.as_integer_ratio()   # exact_difficulty, fast
            else:
                exact = exact_difficulty(credited, f"{what} credited difficulty")
                numerator, denominator = exact.as_integer_ratio()
            if not (type(network) is float and 0.0 < network < math.inf):
                exact_difficulty(network, f"{what} network difficulty")
            rows.append((address, network, numerator * count, denominator))
            scale = math.lcm(scale, denominator)   # for floats, powers of two: the largest
            shares += count
        if not rows:
            raise PayoutError("a run of shares without shares")
        credited_by_key: dict[tuple[str, float], int] = {}
        credited_by_network: dict[float, int] = {}
        for address, network, numerator, denominator in rows:
            scaled = numerator * (scale // denominator)
            key = (address, network)
            credited_by_key[key] = credited_by_key.get(key, 0) + scaled
            credited_by_network[network] = credited_by_network.get(network, 0) + scaled
        run_work = sum((_work(total, scale, network) for network, total in credited_by_network.items()),
                       Fraction(0))
        if self.counted + run_work >= self.target:
            return False
        work_by_address: dict[str, Fraction] = {}
        for (address, network), total in credited_by_key.items():
            work = _work(total, scale, network)
            work_by_address[address] = work_by_address[address] + work if address in work_by_address else work
        for address, work in work_by_address.items():
            self.work_by_address[address] = self.work_by_address.get(address, Fraction(0)) + work
        self.counted += run_work
        if self.newest_share_id is None:
            self.newest_share_id = newest_share_id
        self.oldest_share_id, self.oldest_fraction = oldest_share_id, Fraction(1)
        self.shares_counted += shares
        return True


def pplns(block: Block, shares: Iterable[ShareWork], fees: FeeConfig, *,
          factor: object = DEFAULT_PPLNS_FACTOR) -> PayoutReport:
    """Pay ``block`` over the last ``factor`` units of work before it (see the module docstring).

    ``factor`` is a str, int or Decimal (not a float), at most 8 decimal places.
    """
    _check_inputs(block, fees)
    window = PplnsWindow(factor)
    if block.status in UNPAID_STATUSES:
        return _unpaid("pplns", block, fees)
    for share in newest_first(shares):
        if window.add(share):
            break
    return pplns_from_window(block, window, fees)


def pplns_from_window(block: Block, window: PplnsWindow, fees: FeeConfig) -> PayoutReport:
    """Pay ``block`` over a window built with ``PplnsWindow``: the same report as ``pplns`` over
    the same shares."""
    _check_inputs(block, fees)
    if not isinstance(window, PplnsWindow):
        raise PayoutError(f"window must be a PplnsWindow, not {type(window).__name__}")
    if block.status in UNPAID_STATUSES:
        return _unpaid("pplns", block, fees)
    if window.oldest_share_id is None:
        return without_shares("pplns", block, fees,
                              f"no share is stored at or before the block ({EMPTY_ROUND_CAUSE})")
    target, counted = window.target, window.counted
    filled = counted == target
    summary = Window(target, target, counted, filled, window.shares_counted, window.newest_share_id,
                     window.oldest_share_id, window.oldest_fraction)
    notes = () if filled else (
        f"window not filled: {fraction_text(counted)} of {decimal_text(target)} units of work; "
        "the miners' part is shared over the shares there are",)
    return _paid("pplns", block, fees, dict(window.work_by_address), summary, notes)


def prop(block: Block, round_shares: Iterable[ShareWork], fees: FeeConfig) -> PayoutReport:
    """Pay ``block`` over the round's shares (since the previous block), each at its whole work."""
    _check_inputs(block, fees)
    if block.status in UNPAID_STATUSES:
        return _unpaid("prop", block, fees)
    ordered = newest_first(round_shares)
    if not ordered:
        return without_shares("prop", block, fees, f"the round has no stored share ({EMPTY_ROUND_CAUSE})")
    work_by_address: dict[str, Fraction] = {}
    for share in ordered:
        work_by_address[share.address] = work_by_address.get(share.address, Fraction(0)) + share.work
    counted = sum(work_by_address.values(), Fraction(0))
    window = Window(None, None, counted, True, len(ordered), ordered[0].share_id, ordered[-1].share_id,
                    Fraction(1))
    return _paid("prop", block, fees, work_by_address, window, ())


def solo(block: Block, fees: FeeConfig) -> PayoutReport:
    """The finder takes ``block`` less the fees (its entry shows work 1, share 1)."""
    _check_inputs(block, fees)
    if block.status in UNPAID_STATUSES:
        return _unpaid("solo", block, fees)
    if not block.finder_address:
        return without_shares("solo", block, fees, "SOLO pays the block's finder")
    check_account(block.finder_address, f"block {block.hash} finder address")
    return _paid("solo", block, fees, {block.finder_address: Fraction(1)}, None, ())


def fee_account_weights(fees: FeeConfig) -> dict[str, Fraction]:
    """The pool's fee accounts weighted by their fee percents (the pool fee account, then each
    recipient; zero percents left out); the pool fee account alone when every percent is zero."""
    weights = {fees.pool_account: fees.pool_fee_percent}
    weights.update((recipient.address, recipient.percent) for recipient in fees.recipients)
    weights = {address: percent for address, percent in weights.items() if percent > 0}
    return weights or {fees.pool_account: Fraction(1)}


def without_shares(scheme: str, block: Block, fees: FeeConfig, why: str) -> PayoutReport:
    """A confirmed block with nobody to pay by ``scheme`` (no stored share in its round or window;
    SOLO: no finder): the block is paid all the same, never kept back.  The miners' part goes to the
    finder stored with the block, or, when none is stored, to the pool's fee accounts in proportion
    to their fee percents; the fees are split as always, so credits + fees == reward.  The report's
    note says which and why."""
    _check_inputs(block, fees)
    if block.status in UNPAID_STATUSES:
        return _unpaid(scheme, block, fees)
    if block.finder_address:
        check_account(block.finder_address, f"block {block.hash} finder address")
        note = f"{why}: the miners' part goes to the finder {block.finder_address}"
        return _paid(scheme, block, fees, {block.finder_address: Fraction(1)}, None, (note,))
    note = (f"{why}; no finder is stored with the block: the miners' part goes to the pool's fee "
            "accounts in proportion to their fees")
    return _paid(scheme, block, fees, fee_account_weights(fees), None, (note,))


def settled_per_share(scheme: str, block: Block, fees: FeeConfig) -> PayoutReport:
    """PPS / FPPS: the report of a confirmed block, which credits no balance: the miners were
    credited per share (``pps_credits``) when their shares were stored, and the block reward goes to
    the pool's PPS reserve, from which those credits are paid.  Every amount is 0 (``paid`` False)
    and a note says so; an orphaned or rejected block gets the usual unpaid report."""
    if scheme not in ("pps", "fpps"):
        raise PayoutError(f"scheme {scheme!r} credits blocks, not shares")
    _check_inputs(block, fees)
    if block.status in UNPAID_STATUSES:
        return _unpaid(scheme, block, fees)
    note = (f"{scheme.upper()}: miners were credited per share when their shares were stored; the block "
            "reward goes to the pool's PPS reserve, which pays those credits")
    return PayoutReport(scheme, block, fees, (), (), 0, 0, None, False, (note,))


class PpsCredits(NamedTuple):
    """A batch's credits (address -> satoshis, only addresses credited > 0, in UTF-8 byte order) and
    the whole new carry (address -> units of 10^-18 satoshi, zero carries dropped): it replaces
    the old carry."""
    credits: dict[str, int]
    carry: dict[str, int]


def share_units(share: ShareWork, block_value: int, fees: FeeConfig) -> int:
    """A share's PPS value in units of 10^-18 satoshi, rounded down (see the module docstring)."""
    return math.floor(share.work * block_value * fees.miners_fraction * PPS_UNITS_PER_SATOSHI)


def pps_credits(shares: Iterable[ShareWork], block_value: int | Callable[[ShareWork], int],
                fees: FeeConfig, carry: Mapping[str, int] | None = None) -> PpsCredits:
    """Credit a batch of shares by PPS: ``block_value`` is the subsidy in satoshis, or a function of
    the share giving it (a subsidy by ``share.height``; FPPS passes the coinbase value).

    ``carry`` is what the previous batch returned (``{}`` or None at the start).
    """
    if not isinstance(fees, FeeConfig):
        raise PayoutError(f"fees must be a FeeConfig, not {type(fees).__name__}")
    value_of = block_value if callable(block_value) else None
    if value_of is None:
        check_amount(block_value, "PPS block value")
    units: dict[str, int] = {}
    for address, held in (carry or {}).items():
        check_account(address, "carry address")
        if isinstance(held, bool) or not isinstance(held, int) or not 0 <= held < PPS_UNITS_PER_SATOSHI:
            raise PayoutError(f"carry of {address} must be an int in 0 ..= 10^18 - 1, got {held!r}")
        units[address] = held
    for share in newest_first(shares):
        if value_of is None:
            value = block_value
        else:
            value = check_amount(value_of(share), f"share {share.share_id} value")
        units[share.address] = units.get(share.address, 0) + share_units(share, value, fees)
    credits: dict[str, int] = {}
    new_carry: dict[str, int] = {}
    for address in sorted(units, key=merkle.sort_key):
        whole, rest = divmod(units[address], PPS_UNITS_PER_SATOSHI)
        if whole:
            credits[address] = whole
        if rest:
            new_carry[address] = rest
    return PpsCredits(credits, new_carry)


def fpps_credits(shares: Iterable[ShareWork], fees: FeeConfig,
                 carry: Mapping[str, int] | None = None) -> PpsCredits:
    """PPS with the transaction fees: each share is valued at its template's coinbase value."""
    def coinbase_value(share: ShareWork) -> int:
        if share.coinbase_value is None:
            raise PayoutError(f"share {share.share_id} has no coinbase value: FPPS needs it")
        return share.coinbase_value
    return pps_credits(shares, coinbase_value, fees, carry)
