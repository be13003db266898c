"""The demo miner's proof of work (pool/devtools/miner/hashing.py): the nonce scan finds the real
nonces of real blocks, and Stratum difficulty becomes the target cpuminer's ``diff_to_target`` gives."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from miner_reference import BITCOIN, REAL_BLOCKS, RealBlock, cpuminer_share_target, share_target

from pool.devtools.miner.hashing import bits_to_target, difficulty_to_target, scan_nonces
from pool.devtools.miner.work import Job, make_work_unit


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_scan_finds_the_real_nonce_at_the_network_target(block: RealBlock) -> None:
    _, extranonce1, extranonce2, _ = block.split()
    work = make_work_unit(
        Job.from_notify(block.notify_params("j")),
        extranonce1,
        extranonce2,
        difficulty=1,
        algorithm=block.algorithm,
    )
    nonce = block.fixture["nonce"]
    result = scan_nonces(work.header_prefix, nonce - 20, nonce + 20, work.network_target, block.algorithm)
    assert [share.nonce for share in result.shares] == [nonce]
    assert result.hashes == 41
    assert result.next_nonce == nonce + 21


def test_bits_to_target_matches_bitcoin_core_target_field() -> None:
    # bitcoind getblock reports the target; the fixture keeps it.
    assert bits_to_target(int(BITCOIN.fixture["bits"], 16)) == int(BITCOIN.fixture["target"], 16)
    assert bits_to_target(0x1A010CCD) == 0x010CCD << (8 * (0x1A - 3))


@pytest.mark.parametrize("algorithm", ["scrypt", "sha256d"])
@pytest.mark.parametrize("difficulty", [1, 65536, 0.5, 2**-10])
def test_difficulty_to_target_equals_cpuminer(algorithm: str, difficulty: float) -> None:
    assert difficulty_to_target(difficulty, algorithm) == cpuminer_share_target(difficulty, algorithm)


def test_difficulty_one_targets() -> None:
    assert (
        difficulty_to_target(1, "sha256d")
        == 0x00000000FFFF0000000000000000000000000000000000000000000000000000
    )
    assert (
        difficulty_to_target(1, "scrypt")
        == 0x0000FFFF00000000000000000000000000000000000000000000000000000000
    )
    assert difficulty_to_target(65536, "scrypt") == difficulty_to_target(1, "sha256d")


@settings(max_examples=300, deadline=None, database=None)
@given(
    algorithm=st.sampled_from(["scrypt", "sha256d"]),
    difficulty=st.floats(min_value=1e-4, max_value=1e15, allow_nan=False, allow_infinity=False),
)
def test_difficulty_to_target_within_cpuminer_rounding(algorithm: str, difficulty: float) -> None:
    """cpuminer computes in double precision and keeps 64 bits at a 32-bit word boundary: the exact
    floor differs from it by less than one unit of the lowest kept word, plus the double rounding."""
    ours = difficulty_to_target(difficulty, algorithm)
    theirs = cpuminer_share_target(difficulty, algorithm)
    assert abs(ours - theirs) <= (theirs >> 50) + (1 << 192)
    assert ours == share_target(difficulty, algorithm)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "1", None, True])
def test_difficulty_to_target_rejects_nonsense(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        difficulty_to_target(bad, "scrypt")
