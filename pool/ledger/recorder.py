"""Where accepted shares and block candidates go.

The ``Recorder`` interface is what the Stratum server calls; ``LogRecorder`` keeps a log of
every accepted share and every block (JSON lines, appended to a file when one is configured).
The PostgreSQL ledger implements the same interface.  The pool's own log has one line per
block, from the block submitter once the block's fate is known.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import orjson

logger = logging.getLogger(__name__)


class ShareRecord(NamedTuple):
    """One share as the recorders get it; a tuple, so that it is cheap to make and to send on."""

    share_id: str  # node id + sequence: unique across the pool
    created: float  # unix time
    address: str
    worker: str
    credited_difficulty: float
    actual_difficulty: float
    network_difficulty: float
    height: int
    coinbase_value: int  # satoshis
    node_id: int
    ip: str
    is_block: bool


# A record's fields as a plain tuple in declaration order (one C call per record).
share_fields = tuple


@dataclass(slots=True)
class BlockRecord:
    height: int
    hash: str
    created: float
    address: str
    worker: str
    status: str  # candidate, submitted, accepted, rejected, orphaned ...
    reward: int  # satoshis
    actual_difficulty: float
    network_difficulty: float
    detail: str = ""
    stale: bool = False  # found on a job whose previous block was no longer the tip: not the pool's orphan


class Recorder(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def record_share(self, share: ShareRecord) -> None: ...
    def record_block(self, block: BlockRecord) -> None: ...


class LogRecorder:
    """Every accepted share and block as one JSON line, flushed once a second."""

    def __init__(self, path: str | Path | None = None, *, flush_interval_s: float = 1.0) -> None:
        self.path = Path(path) if path else None
        self.flush_interval_s = flush_interval_s
        self._buffer: list[bytes] = []
        self._file = None
        self._task: asyncio.Task | None = None
        self.shares = 0
        self.blocks: list[BlockRecord] = []

    async def start(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "ab")
        self._task = asyncio.create_task(self._flusher(), name="share-log-flush")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.flush()
        if self._file:
            self._file.close()
            self._file = None

    def record_share(self, share: ShareRecord) -> None:
        self.shares += 1
        if self._file:
            self._buffer.append(orjson.dumps({"type": "share", **share._asdict()}) + b"\n")
        elif logger.isEnabledFor(logging.DEBUG):
            logger.debug("share %s", share._asdict())

    def record_block(self, block: BlockRecord) -> None:
        self.blocks.append(block)
        logger.debug("block %s at height %d: %s %s", block.hash, block.height, block.status, block.detail)
        if self._file:
            self._buffer.append(orjson.dumps({"type": "block", **asdict(block)}) + b"\n")
            self.flush()

    def flush(self) -> None:
        if self._file and self._buffer:
            self._file.write(b"".join(self._buffer))
            self._file.flush()
            self._buffer.clear()

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            self.flush()


class FanoutRecorder:
    """Hands every share and block to several recorders (the ledger, live statistics, a log)."""

    def __init__(self, *recorders: Recorder) -> None:
        self.recorders = [r for r in recorders if r is not None]
        self._share_calls = [r.record_share for r in self.recorders]
        self._block_calls = [r.record_block for r in self.recorders]
        if len(self._share_calls) == 2:  # the pool's usual pair (ledger, statistics): no loop per share
            first, second = self._share_calls

            def record_share(share: ShareRecord) -> None:
                first(share)
                second(share)

            self.record_share = record_share  # type: ignore[method-assign]

    async def start(self) -> None:
        for recorder in self.recorders:
            await recorder.start()

    async def stop(self) -> None:
        for recorder in reversed(self.recorders):
            try:
                await recorder.stop()
            except Exception:  # one failing recorder must not keep the others from flushing
                logger.exception("stopping %s", type(recorder).__name__)

    def record_share(self, share: ShareRecord) -> None:
        for call in self._share_calls:
            call(share)

    def record_block(self, block: BlockRecord) -> None:
        for call in self._block_calls:
            call(block)
