"""The demo miner's work building (pool/devtools/miner/work.py) against real blocks: the header it
builds from a ``mining.notify`` is the real header, version rolling rebuilds a real rolled header,
and malformed notifies are refused."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from miner_reference import (
    BITCOIN,
    LITECOIN,
    REAL_BLOCKS,
    RealBlock,
    compact_to_target,
    merkle_branch,
    sha256d,
    share_hash,
    share_header,
)

from pool.devtools.miner.wire import StratumProtocolError
from pool.devtools.miner.work import (
    Job,
    build_header,
    make_work_unit,
    prevhash_from_notify,
    rolled_version,
    spread_bits,
)


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_fixture_split_is_faithful(block: RealBlock) -> None:
    """The test's own pool side reproduces the real coinbase txid, merkle root and block hash."""
    coinb1, extranonce1, extranonce2, coinb2 = block.split()
    coinbase = coinb1 + extranonce1 + extranonce2 + coinb2
    assert sha256d(coinbase)[::-1].hex() == block.fixture["tx"][0]
    root = sha256d(coinbase)
    for entry in merkle_branch(block.fixture["tx"]):
        root = sha256d(root + entry)
    assert root[::-1].hex() == block.fixture["merkleroot"]
    assert sha256d(block.header)[::-1].hex() == block.fixture["hash"]


@pytest.mark.parametrize("block", REAL_BLOCKS, ids=lambda b: b.name)
def test_header_from_notify_is_the_real_header(block: RealBlock) -> None:
    _, extranonce1, extranonce2, _ = block.split()
    job = Job.from_notify(block.notify_params("job1"))
    nonce = block.fixture["nonce"]

    header = build_header(job, extranonce1, extranonce2, nonce)

    assert header == block.header
    assert sha256d(header)[::-1].hex() == block.fixture["hash"]
    network_target = compact_to_target(int(block.fixture["bits"], 16))
    assert share_hash(header, block.algorithm) <= network_target
    work = make_work_unit(job, extranonce1, extranonce2, difficulty=1, algorithm=block.algorithm)
    assert work.header(nonce) == block.header
    assert work.network_target == network_target
    assert work.submit_params("w", nonce) == [
        "w",
        "job1",
        extranonce2.hex(),
        f"{block.fixture['time']:08x}",
        f"{nonce:08x}",
    ]


def test_prevhash_word_order_against_the_real_previous_block() -> None:
    for block in REAL_BLOCKS:
        notify_prevhash = block.notify_params("j")[1]
        assert (
            prevhash_from_notify(notify_prevhash) == bytes.fromhex(block.fixture["previousblockhash"])[::-1]
        )


def test_version_rolling_rebuilds_the_real_bitcoin_header() -> None:
    """Block 951658 was mined with version rolling: 0x253ac004 = 0x20000004 | 0x053ac000 (BIP310)."""
    mask = 0x1FFFE000
    real_version = int.from_bytes(BITCOIN.header[0:4], "little")
    assert real_version == 0x253AC004
    job_version = 0x20000004
    bits = real_version & mask
    _, extranonce1, extranonce2, _ = BITCOIN.split()
    job = Job.from_notify(BITCOIN.notify_params("rolled", version=job_version))

    work = make_work_unit(
        job, extranonce1, extranonce2, difficulty=1, algorithm="sha256d", version_bits=bits, version_mask=mask
    )

    nonce = BITCOIN.fixture["nonce"]
    assert work.header(nonce) == BITCOIN.header
    params = work.submit_params("w", nonce)
    assert params[5] == "053ac000"
    notify = BITCOIN.notify_params("rolled", version=job_version)
    assert share_header(notify, extranonce1.hex(), params, mask) == BITCOIN.header


def test_rolled_version_follows_bip310_not_xor() -> None:
    """BIP310: nVersion = (job_version & ~last_mask) | (version_bits & last_mask). It differs from
    XOR-ing the bits in only when the job version has bits inside the mask."""
    mask = 0x1FFFE000
    assert rolled_version(0x20006004, 0x00002000, mask) == 0x20002004
    assert rolled_version(0x20000004, 0x053AC000, mask) == 0x253AC004
    assert spread_bits(0b101, mask) == (1 << 13) | (1 << 15)
    assert spread_bits(2**16, mask) == 0  # 16 bits in the mask: the counter wraps
    with pytest.raises(ValueError):
        make_work_unit(
            Job.from_notify(BITCOIN.notify_params("j")),
            b"",
            b"",
            difficulty=1,
            algorithm="sha256d",
            version_bits=0x1,
            version_mask=mask,
        )


@pytest.mark.parametrize(
    "mutate",
    [
        lambda p: p.__setitem__(0, 17),  # job id not a string
        lambda p: p.__setitem__(1, p[1][:-2]),  # prevhash 31 bytes
        lambda p: p.__setitem__(1, "zz" * 32),  # prevhash not hex
        lambda p: p.__setitem__(2, 1234),  # coinb1 not a string
        lambda p: p.__setitem__(3, "abc"),  # odd hex length
        lambda p: p.__setitem__(4, "notalist"),
        lambda p: p.__setitem__(4, [123]),
        lambda p: p.__setitem__(4, ["00" * 31]),
        lambda p: p.__setitem__(5, 0x20000000),  # version as a number
        lambda p: p.__setitem__(6, "1a010ccd00"),
        lambda p: p.__setitem__(7, " 6287218"),
        lambda p: p.__setitem__(7, "0x628721"),
        lambda p: p.__delitem__(slice(5, None)),
    ],
)
def test_notify_decoding_rejects_wrong_types(mutate: Callable[[list[Any]], None]) -> None:
    params = LITECOIN.notify_params("j")
    mutate(params)
    with pytest.raises(StratumProtocolError):
        Job.from_notify(params)


def test_notify_without_clean_flag_is_not_clean() -> None:
    assert Job.from_notify(LITECOIN.notify_params("j")[:8]).clean_jobs is False
    assert Job.from_notify(LITECOIN.notify_params("j", clean=True)).clean_jobs is True
