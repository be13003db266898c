"""Payout schemes: the pure part of the payout engine (no database, no daemon, no clock).

Money is an ``int`` of satoshis end to end; work (credited difficulty / network difficulty per
share) is summed as exact ``fractions.Fraction``; nothing that decides a payment is a float.  The
payment handler around this package reads blocks and shares from the ledger, calls a scheme, and
stores the credits and the report in one transaction per block.

``payouts.schemes``
    ``ShareWork(address, worker, credited_difficulty, network_difficulty, share_id, created=0,
    height=None, coinbase_value=None)`` and ``Block(height, hash, reward, finder_address="",
    status="confirmed")``: the inputs, validated on construction (NaN, infinite, zero or negative
    difficulties raise ``PayoutError``, a ``ValueError``).

    ``pplns(block, shares, fees, *, factor=2) -> PayoutReport``: the last ``factor`` units of work
    (expected blocks) before the block, the boundary share in part; a short window shares the
    whole miners' part over the shares there are and says so (``report.window.filled``).
    ``PplnsWindow(factor)`` with ``add(share)`` and ``add_whole(groups, newest_share_id,
    oldest_share_id)``, paid by ``pplns_from_window(block, window, fees)``: the same report from a
    window streamed in newest first, whole shares summed per (address, difficulty, network
    difficulty) group, so no list of shares is kept.
    ``prop(block, round_shares, fees)``, ``solo(block, fees)``: the same report.
    Orphaned and rejected blocks give an unpaid report with every amount 0; pending blocks raise.
    A block with no shares to pay (SOLO: no finder) pays the finder stored with the block, or the
    pool's fee accounts when none is stored (``without_shares``), and says so in a note.  Input
    order never matters: shares are ordered by ``(created, share_id)``.

    ``pps_credits(shares, block_value, fees, carry) -> PpsCredits(credits, carry)`` and
    ``fpps_credits(shares, fees, carry)``: per-share crediting with a per-miner integer carry in
    units of 10^-18 satoshi, so that credits over any batching equal the credits of one batch.

``payouts.fees``
    ``FeeConfig(pool_fee_percent, recipients=[(address, percent), ...], pool_account="pool")``:
    percents of the block reward as str, int, Decimal or Fraction (floats are refused: write
    ``"1.5"`` or load TOML with ``parse_float=decimal.Decimal``), at most 8 decimal places, total
    <= 100, recipients distinct.  ``split_reward(reward, work_by_address, fees)``: recipients and
    miners rounded down to the satoshi, the pool account takes its fee plus the rounding remainder,
    so miners + fees == reward exactly.

``payouts.report``
    ``PayoutReport``: entries (address, exact work, exact share, amount) in UTF-8 address order, fee
    payments, pool fee and rounding remainder, window, notes, ``merkle_root``,
    ``to_json_bytes()`` (canonical, reproducible byte for byte) and ``digest``.
    ``proof(report, address) -> [(side, hash hex), ...]`` and
    ``verify_proof(root, address, amount, proof) -> bool``; the tree is defined in ``payouts.merkle``.
"""
from payouts.fees import FeeConfig, FeeRecipient, split_reward
from payouts.money import PayoutError
from payouts.report import PayoutEntry, PayoutReport, Window, proof, verify_proof
from payouts.rounds import Block, ShareWork
from payouts.schemes import (
    DEFAULT_PPLNS_FACTOR,
    PPS_UNITS_PER_SATOSHI,
    PplnsWindow,
    PpsCredits,
    fpps_credits,
    pplns,
    pplns_from_window,
    pps_credits,
    prop,
    solo,
)

__all__ = [
    "DEFAULT_PPLNS_FACTOR",
    "PPS_UNITS_PER_SATOSHI",
    "Block",
    "FeeConfig",
    "FeeRecipient",
    "PayoutEntry",
    "PayoutError",
    "PayoutReport",
    "PplnsWindow",
    "PpsCredits",
    "ShareWork",
    "Window",
    "fpps_credits",
    "pplns",
    "pplns_from_window",
    "pps_credits",
    "proof",
    "prop",
    "solo",
    "split_reward",
    "verify_proof",
]
