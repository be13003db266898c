"""Pool hopping: why the pool pays by PPLNS and not by PROP.

A simulated pool: every share has the same difficulty, 1/N of the network difficulty, so each share
is a block with probability 1/N (N = 16 here).  Three kinds of miners mine at the pool: the rest of
the pool (6 units of hash rate), a steady miner (1 unit, always) and a hopper (1 unit, but only
while the current round's work is below 0.43 x network difficulty, i.e. its first 0.43 N shares;
afterwards the hopper mines elsewhere and is not counted here).  Each block is then paid by the
real ``payouts.schemes.prop`` and ``payouts.schemes.pplns`` (factor 2: the last 2N shares), and we
compare what the hopper and the steady miner earned per share they submitted.

* PROP pays a block over its round.  Early in a round a share is worth more than average: the round
  may end soon, with few shares to split the reward; late in a long round it is worth less.  The
  hopper takes only the early, valuable part, and the steady miner is left with the long tails:
  per share at this pool the hopper earns far more (about 1.8x with these rates).
* PPLNS pays each block over the last 2N shares, whatever round they were in.  A share's payout
  depends only on the blocks found in the 2N shares after it, and whether a block is found is
  independent of the past: every share's expected payout is the same, reward / N, whenever it was
  submitted.  Hopping gains nothing: the ratio is 1, up to luck.

How much luck: the blocks are cut into batches, the ratio is computed per batch, and the standard
error of their mean is estimated from the spread between batches.  The PPLNS ratio must be within
4 standard errors of 1 (a fixed seed makes the test deterministic; with 20 batches, Student's t
with 19 degrees of freedom, a fair scheme would fail that by chance about once in 1,300 seeds),
and the standard error itself must be small (< 0.04), so that "within tolerance" means something.
The PROP ratio must be above 1 by more than 4 standard errors and above 1.1.
"""
from __future__ import annotations

import random
import statistics
from fractions import Fraction

from payouts import Block, FeeConfig, ShareWork, pplns, prop

SHARES_PER_BLOCK = 16            # N: network difficulty / share difficulty
HOP_UNTIL = Fraction(43, 100)    # the hopper leaves once the round's work reaches 0.43 D
RATES = {"pool": 6, "steady": 1, "hopper": 1}
BLOCKS = 8_000
BATCHES = 20
REWARD = 100_000_000
FEES = FeeConfig("0", pool_account="fee")


def simulate(seed: int, blocks: int) -> tuple[list[ShareWork], list[int]]:
    """The shares (in submission order) and the index of each block-finding share."""
    rng = random.Random(seed)
    network = float(SHARES_PER_BLOCK)
    everyone = list(RATES)
    without_hopper = [name for name in RATES if name != "hopper"]
    shares: list[ShareWork] = []
    block_at: list[int] = []
    round_shares = 0
    while len(block_at) < blocks:
        hopping = Fraction(round_shares, SHARES_PER_BLOCK) < HOP_UNTIL
        names = everyone if hopping else without_hopper
        miner = rng.choices(names, [RATES[name] for name in names])[0]
        index = len(shares)
        shares.append(ShareWork(miner, "rig", 1.0, network, f"{index:09d}", created=index))
        round_shares += 1
        if rng.random() < 1 / SHARES_PER_BLOCK:
            block_at.append(index)
            round_shares = 0
    return shares, block_at


def per_share_ratios(shares: list[ShareWork], block_at: list[int], scheme: str) -> list[float]:
    """Hopper / steady earnings per share, one ratio per batch of blocks."""
    window = 2 * SHARES_PER_BLOCK
    ratios = []
    size = len(block_at) // BATCHES
    for batch in range(BATCHES):
        earned = {"steady": 0, "hopper": 0}
        submitted = {"steady": 0, "hopper": 0}
        first = block_at[batch * size - 1] + 1 if batch else 0
        for number in range(batch * size, (batch + 1) * size):
            end = block_at[number]
            block = Block(number, f"{number:08x}", REWARD, shares[end].address)
            if scheme == "pplns":
                # The window is the last 2N shares (all of difficulty 1/N): older ones would be ignored.
                report = pplns(block, shares[max(0, end + 1 - window):end + 1], FEES, factor=2)
            else:
                start = block_at[number - 1] + 1 if number else 0
                report = prop(block, shares[start:end + 1], FEES)
            for address, amount in report.amounts().items():
                if address in earned:
                    earned[address] += amount
        for share in shares[first:block_at[(batch + 1) * size - 1] + 1]:
            if share.address in submitted:
                submitted[share.address] += 1
        ratios.append((earned["hopper"] / submitted["hopper"]) / (earned["steady"] / submitted["steady"]))
    return ratios


def test_a_hopper_gains_nothing_under_pplns_and_gains_under_prop():
    shares, block_at = simulate(seed=2024, blocks=BLOCKS)
    results = {}
    for scheme in ("pplns", "prop"):
        ratios = per_share_ratios(shares, block_at, scheme)
        mean = statistics.fmean(ratios)
        standard_error = statistics.stdev(ratios) / len(ratios) ** 0.5
        results[scheme] = (mean, standard_error)
        print(f"{scheme}: hopper / steady earnings per share = {mean:.4f} +- {standard_error:.4f} "
              f"(standard error over {len(ratios)} batches of {len(block_at) // BATCHES} blocks, "
              f"{len(shares)} shares)")
    pplns_ratio, pplns_error = results["pplns"]
    prop_ratio, prop_error = results["prop"]
    assert pplns_error < 0.04
    assert abs(pplns_ratio - 1) < 4 * pplns_error
    assert prop_ratio - 1 > 4 * prop_error and prop_ratio > 1.1
