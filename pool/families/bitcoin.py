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

    async def submit_block(self, daemon: Any, block_hex: str) -> Any:
        return await daemon.submitblock(block_hex)


FAMILY = BitcoinFamily()
