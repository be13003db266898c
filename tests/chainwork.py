"""Building and solving blocks from a regtest node's template, for tests against litecoind."""
from __future__ import annotations

from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import MinerState, ShareValidator
from share_validator.difficulty import Difficulty

COIN = get_coin("litecoin-regtest")


def job_from_node(net, job_id: str) -> Job:
    address = net.rpc(0, "getnewaddress", "", "bech32")
    payout = bytes.fromhex(net.rpc(0, "validateaddress", address)["scriptPubKey"])
    return Job(job_id, COIN, Template.from_gbt(net.getblocktemplate()), payout_script=payout, pool_tag=b"/t/")


def solve(job: Job, *, want_block: bool = True):
    """A share result for the job that is (or, with want_block=False, is not) a block on regtest."""
    validator = ShareValidator(COIN)
    validator.add_job(job, clean=True)
    state = MinerState(bytes.fromhex("0a0b0c0d"), job.extranonce2_size)
    state.authorized.add("w")
    state.job_sent(job.job_id, Difficulty(COIN, 1e-12))
    for nonce in range(1000):
        result = validator.validate(state, ["w", job.job_id, "00000000", f"{job.ntime:08x}", f"{nonce:08x}"])
        if (result.block is not None) == want_block:
            return result
    raise AssertionError("no suitable nonce in 1000")


def solve_blocks(job: Job, count: int) -> list:
    """``count`` different blocks for the same job (the same height and parent), by nonce."""
    validator = ShareValidator(COIN)
    validator.add_job(job, clean=True)
    state = MinerState(bytes.fromhex("0a0b0c0d"), job.extranonce2_size)
    state.authorized.add("w")
    state.job_sent(job.job_id, Difficulty(COIN, 1e-12))
    blocks = []
    for nonce in range(100 * count):
        result = validator.validate(state, ["w", job.job_id, "00000000", f"{job.ntime:08x}", f"{nonce:08x}"])
        if result.block is not None:
            blocks.append(result)
            if len(blocks) == count:
                return blocks
    raise AssertionError(f"fewer than {count} blocks in {100 * count} nonces")
