"""Block candidates: submitted at once to every daemon, then looked for on the chain.

``null`` from ``submitblock`` is acceptance; ``duplicate``, ``inconclusive`` and
``duplicate-inconclusive`` are not rejections: the block is looked for with
``getblockhash(height)``.  An RPC error is retried and then looked for the same way.  A solution
is never dropped: every candidate is reported to the recorder before anything is sent.

The outcome is ``accepted`` (at its height now), ``submitted`` (handed over, not refused, not seen
at its height) or ``rejected`` (every daemon that answered refused it).  None is a verdict on the
chain: the ledger keeps the row ``pending`` (``rejected``: ``rejected``) and the block tracker
(``pool.tracker``) alone decides ``confirmed`` or ``orphaned``, by the block's hash.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

from pool.chain.daemon import DaemonClient
from pool.chain.rpc import DaemonError
from pool.ledger.recorder import BlockRecord, Recorder

if TYPE_CHECKING:
    from pool.families.base import ShareResult


class Finder(Protocol):
    """The connection that found a block: its authorized workers, name -> (address, worker)."""
    workers: Mapping[str, tuple[str, str]]

logger = logging.getLogger(__name__)

NOT_REJECTIONS = {"duplicate", "inconclusive", "duplicate-inconclusive"}


class BlockSubmitter:
    def __init__(self, daemon: DaemonClient, recorder: Recorder, *, on_accepted: Callable[[], None] | None = None,
                 submit_attempts: int = 5, verify_attempts: int = 20, verify_interval_s: float = 0.5,
                 clock: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.recorder = recorder
        self.on_accepted = on_accepted
        self.submit_attempts = submit_attempts
        self.verify_attempts = verify_attempts
        self.verify_interval_s = verify_interval_s
        self.clock = clock
        self.tasks: set[asyncio.Task] = set()
        self.results: list[BlockRecord] = []

    def submit(self, result: ShareResult, session: Finder) -> None:
        address, worker = session.workers.get(result.worker, ("", ""))
        job = result.job
        record = BlockRecord(
            height=job.height, hash=result.block_hash_hex, created=self.clock(), address=address, worker=worker,
            status="candidate", reward=job.coinbase_value, actual_difficulty=result.actual_difficulty,
            network_difficulty=job.network_difficulty,
        )
        self.recorder.record_block(record)
        task = asyncio.ensure_future(self._submit(record, result.block.hex()))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def wait(self) -> None:
        """Wait for the submissions under way (used at shutdown and by tests)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _submit(self, record: BlockRecord, block_hex: str) -> None:
        verdicts: list[str] = []
        needs_check = False
        for attempt in range(self.submit_attempts):
            replies = await self.daemon.call_all("submitblock", block_hex)
            verdicts = []
            errors = 0
            for reply in replies:
                if reply.error is not None:
                    errors += 1
                    verdicts.append(f"error: {reply.error}")
                elif reply.result is None:
                    verdicts.append("accepted")
                else:
                    verdicts.append(str(reply.result))
            if "accepted" in verdicts:
                break
            if any(v in NOT_REJECTIONS for v in verdicts):
                needs_check = True
                break
            if errors < len(replies):  # every daemon that answered rejected it
                break
            await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        else:
            needs_check = True
        if "accepted" in verdicts or needs_check:
            status = "accepted" if await self._on_main_chain(record) else "submitted"
        else:
            status = "rejected"
        record = _with_status(record, status, ", ".join(verdicts))
        self.results.append(record)
        self.recorder.record_block(record)
        if status == "accepted" and self.on_accepted is not None:
            self.on_accepted()

    async def _on_main_chain(self, record: BlockRecord) -> bool:
        """True when ``getblockhash(height)`` is this block.  False when another block holds the
        height or nobody could tell: not a verdict (the tracker gives that, by the block's hash)."""
        for _ in range(self.verify_attempts):
            try:
                at_height = await self.daemon.getblockhash(record.height)
            except DaemonError as exc:  # -8: height above the tip, not there (yet)
                if exc.code != -8:
                    logger.debug("verify block %s: %s", record.hash, exc)
            else:
                return at_height == record.hash
            await asyncio.sleep(self.verify_interval_s)
        return False


def _with_status(record: BlockRecord, status: str, detail: str) -> BlockRecord:
    fields = {name: getattr(record, name) for name in BlockRecord.__slots__}
    fields.update(status=status, detail=detail)
    return BlockRecord(**fields)
