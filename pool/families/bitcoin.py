"""The Bitcoin family: Bitcoin, Litecoin (scrypt, MWEB) and their forks.

Its pure core is `share_validator.bitcoin` (coins.json, addresses, template -> jobs, the share
check); this module adds the daemon dialect of Bitcoin Core and Litecoin Core (``getblocktemplate``
with long polling, ``submitblock``, ``getbestblockhash``) and names the Stratum dialect its miners
speak (Stratum v1: ``pool.stratum.session``).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pool.families.base import FamilyError
from pool.rpc.wire import DaemonError
from share_validator.bitcoin.address import InvalidAddress, address_to_script
from share_validator.bitcoin.coins import Coin, all_coins
from share_validator.bitcoin.job import (
    MAX_EXTRANONCE2_SIZE,
    MIN_EXTRANONCE2_SIZE,
    POOL_VERSION_MASK,
    Job,
    Template,
    TemplateError,
)
from share_validator.bitcoin.validator import ShareValidator

#: Core's RPC error codes: a height above the tip (``getblockhash``), an unknown block (``getblockheader``).
RPC_INVALID_PARAMETER = -8
RPC_BLOCK_NOT_FOUND = -5


class BitcoinFamily:
    name = "bitcoin"
    stratum_dialect = "stratum-v1"
    extranonce2_sizes = (MIN_EXTRANONCE2_SIZE, MAX_EXTRANONCE2_SIZE)
    version_mask = POOL_VERSION_MASK

    def coins(self) -> Mapping[str, Coin]:
        return all_coins()

    # -- addresses ----------------------------------------------------------------------

    def payout_script(self, coin: Coin, address: str) -> bytes:
        try:
            return address_to_script(coin, address)
        except InvalidAddress as exc:
            raise FamilyError(str(exc)) from None

    async def daemon_accepts_address(self, daemon: Any, address: str) -> bool:
        """The daemon's own word on an address (``validateaddress``), past the local decoding."""
        answer = await daemon.validateaddress(address)
        return bool(answer.get("isvalid"))

    # -- the share check ----------------------------------------------------------------

    def share_checker(self, coin: Coin, *, ntime_future_s: int = 600) -> ShareValidator:
        return ShareValidator(coin, ntime_future_s=ntime_future_s)

    def job_notification(self, job: Job, clean: bool) -> bytes:
        return orjson.dumps({"id": None, "method": "mining.notify", "params": [*job.notify_params, clean]}) + b"\n"

    # -- the daemon dialect -------------------------------------------------------------

    async def fetch_work(self, daemon: Any, *, longpollid: str | None = None) -> Template:
        try:
            return Template.from_gbt(await daemon.getblocktemplate(longpollid=longpollid))
        except TemplateError as exc:
            raise FamilyError(f"unusable block template: {exc}") from None

    def longpoll_id(self, work: Template) -> str | None:
        return work.longpollid

    def same_work(self, old: Template, new: Template) -> bool:
        """Same tip, same transactions, same MWEB block: a new job would change nothing for miners."""
        return (old.prevhash == new.prevhash and old.txids == new.txids and old.mweb == new.mweb
                and old.coinbase_value == new.coinbase_value)

    def new_job(self, work: Template, job_id: str, *, payout_script: bytes, pool_tag: bytes,
                extranonce2_size: int, coin: Coin) -> Job:
        return Job(job_id, coin, work, payout_script=payout_script, pool_tag=pool_tag,
                   extranonce2_size=extranonce2_size)

    def describe_work(self, work: Template) -> str:
        return f"{len(work.tx_data)} transactions, {'mweb' if work.mweb else 'no mweb'}"

    async def best_block_hash(self, daemon: Any) -> str:
        return await daemon.getbestblockhash()

    #: ``submitblock`` answers that are not rejections: the chain must be asked.
    inconclusive_verdicts = frozenset({"duplicate", "inconclusive", "duplicate-inconclusive"})

    async def submit_block(self, daemon: Any, block_hex: str) -> list[str]:
        """``submitblock`` to every daemon at once, outside the client's concurrency limit.  Each
        daemon's verdict: "accepted" (``null``), "error: ..." (no usable answer) or its reason."""
        replies = await daemon.call_all("submitblock", block_hex, limited=False)
        verdicts = []
        for reply in replies:
            if reply.error is not None:
                verdicts.append(f"error: {reply.error}")
            elif reply.result is None:
                verdicts.append("accepted")
            else:
                verdicts.append(str(reply.result))
        return verdicts

    async def block_hash_at(self, daemon: Any, height: int) -> str | None:
        """The main chain's block at ``height`` (``getblockhash``); None above the tip (error -8)."""
        try:
            return await daemon.getblockhash(height)
        except DaemonError as exc:
            if exc.code == RPC_INVALID_PARAMETER:
                return None
            raise

    async def synced_tip_height(self, daemon: Any) -> int | None:
        """The tip's height, None while the daemon is still syncing (``getblockchaininfo``)."""
        info = await daemon.getblockchaininfo()
        if info.get("initialblockdownload") or info.get("blocks", 0) < info.get("headers", 0) - 1:
            return None
        return int(info["blocks"])

    async def confirmations(self, daemon: Any, hashes: list[str]) -> list[int | None | DaemonError]:
        """Per block hash: its confirmations (-1 off the main chain), None when the daemon does not
        know the block (error -5), or the daemon's error when it could not tell.  One batch request."""
        headers = await daemon.batch([("getblockheader", [block_hash]) for block_hash in hashes], return_errors=True)
        answers: list[int | None | DaemonError] = []
        for header in headers:
            if isinstance(header, DaemonError):
                answers.append(None if header.code == RPC_BLOCK_NOT_FOUND else header)
            else:
                answers.append(int(header["confirmations"]))
        return answers


FAMILY = BitcoinFamily()
