"""Block candidates: recorded at once, then submitted to every daemon, the current tip's first.

Every candidate is reported to the recorder before anything is sent (a solution is never dropped)
and stays recorded whatever happens to its submission.  ``null`` from ``submitblock`` is acceptance;
``duplicate``, ``inconclusive`` and ``duplicate-inconclusive`` are not rejections, and an RPC error is
retried.  The outcome of a submission is one of:

- ``accepted``: the daemon shows the block at its height (``getblockhash``);
- ``submitted``: handed over and not refused, not (yet) seen at its height;
- ``rejected``: every daemon that answered refused it;
- ``unsent``: its height was decided and its deadline passed before it could be sent.

None of these is a verdict on the chain: the ledger keeps the row ``pending`` (``rejected``:
``rejected``), and the block tracker (``pool.tracker``) alone decides ``confirmed`` or ``orphaned``,
by the block's hash, as deep as the configuration asks.

A solution found on a job whose previous block was no longer the tip (a stale share: the pool knew
the tip had moved, or had no template) is submitted all the same, in the same order as any other
(the node decides: it can still win a race), and recorded as a stale candidate, apart from the
pool's own blocks and orphans.  What the daemons answered goes to ``on_submitted`` at once, before
the chain is asked, so that the work source knows whether the tip moved.

Order.  Candidates wait here, never in the daemon client's queue:

- A candidate above the decided height (the tip's height from the work source, or the height of a
  block of the pool's own that was just accepted) is on the current tip: it is sent at once, with
  retries.  At one height one candidate is under way at a time: when it is accepted the others of
  that height are late, when it is not the next one goes.  A higher height never waits for a lower.
- A candidate whose height is decided can only win a race: it is sent after those, one at a time,
  the highest height first, once, and only within ``late_deadline_s`` of being found.  Later it is
  recorded ``unsent``.
- Submissions are outside the daemon client's concurrency limit (the submitter bounds their number
  itself), so templates and the tracker never wait behind them, nor they behind those.

``drain(timeout_s)`` at shutdown sends what it can within that time, then stops what is left and
logs it: the candidates never sent and the submissions not answered stay recorded ``pending``.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pool.ledger.recorder import BlockRecord, Recorder
from pool.rpc.client import DaemonClient
from pool.rpc.wire import DaemonError
from share_validator.errors import Reject

if TYPE_CHECKING:
    from pool.families.base import CoinFamily, ShareResult


class Finder(Protocol):
    """The connection that found a block: its authorized workers, name -> (address, worker)."""
    workers: Mapping[str, tuple[str, str]]

logger = logging.getLogger(__name__)

#: Hashes named per height in the shutdown log (the rest are counted).
LOGGED_PER_HEIGHT = 5


@dataclass(slots=True)
class _Candidate:
    record: BlockRecord
    block_hex: str


@dataclass
class Drained:
    """What a shutdown drain left: candidates never sent, submissions sent and not answered."""
    unsent: list[BlockRecord] = field(default_factory=list)
    unanswered: list[BlockRecord] = field(default_factory=list)


class BlockSubmitter:
    def __init__(self, daemon: DaemonClient, recorder: Recorder, *, family: CoinFamily,
                 on_accepted: Callable[[], None] | None = None,
                 on_submitted: Callable[[BlockRecord, str], None] | None = None,
                 tip_height: Callable[[], int | None] | None = None, late_deadline_s: float = 10.0,
                 submit_attempts: int = 5, verify_attempts: int = 20, verify_interval_s: float = 0.5,
                 clock: Callable[[], float] = time.time) -> None:
        self.daemon = daemon
        self.recorder = recorder
        self.family = family
        self.on_accepted = on_accepted
        self.on_submitted = on_submitted  # (record, accepted | rejected | unknown), before the chain check
        self.tip_height = tip_height
        self.late_deadline_s = late_deadline_s
        self.submit_attempts = submit_attempts
        self.verify_attempts = verify_attempts
        self.verify_interval_s = verify_interval_s
        self.clock = clock
        self.tasks: set[asyncio.Task] = set()
        self.results: list[BlockRecord] = []
        self._waiting: dict[int, deque[_Candidate]] = {}  # by height, in the order found
        self._sending: dict[int, _Candidate] = {}  # on the current tip, sent and not answered, by height
        self._late: _Candidate | None = None  # a decided height's candidate, sent and not answered
        self._accepted_height = -1
        self._stopped = False

    # -- interface -------------------------------------------------------------------------------

    def submit(self, result: ShareResult, session: Finder) -> None:
        address, worker = session.workers.get(result.worker, ("", ""))
        job = result.job
        record = BlockRecord(
            height=job.height, hash=result.block_hash_hex, created=self.clock(), address=address, worker=worker,
            status="candidate", reward=job.coinbase_value, actual_difficulty=result.actual_difficulty,
            network_difficulty=job.network_difficulty, stale=result.reject is Reject.STALE,
        )
        if record.stale:
            logger.info("stale block candidate %s at height %d (the tip had moved past its job): "
                        "submitted anyway", record.hash, record.height)
        self.recorder.record_block(record)
        if self._stopped:
            logger.error("block %s at height %d found after the submissions were drained: recorded, not sent",
                         record.hash, record.height)
            return
        self._waiting.setdefault(record.height, deque()).append(_Candidate(record, result.block.hex()))
        self._dispatch()

    def decided_height(self) -> int:
        """The highest height known to hold a block: the tip's, or one the pool just had accepted."""
        tip = self.tip_height() if self.tip_height is not None else None
        return self._accepted_height if tip is None else max(tip, self._accepted_height)

    @property
    def queued(self) -> int:
        return sum(len(queue) for queue in self._waiting.values())

    async def wait(self) -> None:
        """Wait until every candidate is sent (or past its deadline) and answered (tests, drain)."""
        while self.tasks:
            await asyncio.wait(list(self.tasks))  # cancelling this wait leaves the submissions running

    async def drain(self, timeout_s: float) -> Drained:
        """At shutdown: go on for at most ``timeout_s``, then stop and log what was left."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                await self.wait()
        except TimeoutError:
            pass
        self._stopped = True
        left = Drained(
            unsent=[candidate.record for queue in self._waiting.values() for candidate in queue],
            unanswered=[candidate.record for candidate in
                        [*self._sending.values(), *([self._late] if self._late is not None else [])]],
        )
        self._waiting.clear()
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._log_drained(left, time.monotonic() - started, len(tasks) - len(left.unanswered))
        return left

    # -- order -----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        """Start what may go now: per height above the decided one, one candidate; then one late."""
        if self._stopped:
            return
        decided = self.decided_height()
        now = self.clock()
        for height in sorted(self._waiting, reverse=True):
            queue = self._waiting[height]
            if height > decided:
                if height not in self._sending:
                    self._start(queue.popleft(), late=False)
            else:
                while queue and now - queue[0].record.created >= self.late_deadline_s:
                    record = queue.popleft().record
                    self._finish(record, "unsent", f"not sent: height {height} was decided and the "
                                                   f"{self.late_deadline_s:g} s deadline passed")
                if queue and self._late is None:
                    self._start(queue.popleft(), late=True)
            if not queue:
                del self._waiting[height]

    def _start(self, candidate: _Candidate, *, late: bool) -> None:
        if late:
            self._late = candidate
        else:
            self._sending[candidate.record.height] = candidate
        task = asyncio.ensure_future(self._send(candidate, late))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _release(self, candidate: _Candidate, late: bool) -> None:
        if late:
            if self._late is candidate:
                self._late = None
        elif self._sending.get(candidate.record.height) is candidate:
            del self._sending[candidate.record.height]

    # -- one submission --------------------------------------------------------------------------

    async def _send(self, candidate: _Candidate, late: bool) -> None:
        record = candidate.record
        verdicts: list[str] = []
        needs_check = False
        try:
            if late:
                remaining = self.late_deadline_s - (self.clock() - record.created)
                try:
                    async with asyncio.timeout(max(remaining, 0.0)):
                        verdicts, needs_check = await self._submitblock(candidate.block_hex, attempts=1)
                except TimeoutError:
                    verdicts = [f"no answer within the {self.late_deadline_s:g} s deadline"]
                    needs_check = True
            else:
                verdicts, needs_check = await self._submitblock(candidate.block_hex,
                                                                attempts=self.submit_attempts)
        finally:
            if "accepted" in verdicts:
                self._accepted_height = max(self._accepted_height, record.height)
            self._release(candidate, late)
            self._dispatch()
        accepted = "accepted" in verdicts
        if self.on_submitted is not None:
            try:
                outcome = "accepted" if accepted else "unknown" if needs_check else "rejected"
                self.on_submitted(record, outcome)
            except Exception:  # the block's own record must still be written
                logger.exception("block %s: handling the submission's outcome failed", record.hash)
        if late:
            on_chain = accepted  # null: the daemon connected it as its tip
        else:
            on_chain = (accepted or needs_check) and await self._on_main_chain(record)
        if on_chain:
            status = "accepted"
        elif accepted or needs_check:
            status = "submitted"
        else:
            status = "rejected"
        self._finish(record, status, ", ".join(verdicts))
        if status == "accepted" and self.on_accepted is not None:
            self.on_accepted()

    async def _submitblock(self, block_hex: str, *, attempts: int) -> tuple[list[str], bool]:
        """Every daemon's verdict, and whether the chain must be asked (nothing was refused for sure)."""
        verdicts: list[str] = []
        for attempt in range(attempts):
            verdicts = await self.family.submit_block(self.daemon, block_hex)
            errors = sum(verdict.startswith("error: ") for verdict in verdicts)
            if "accepted" in verdicts:
                return verdicts, False
            if any(v in self.family.inconclusive_verdicts for v in verdicts):
                return verdicts, True
            if errors < len(verdicts):  # every daemon that answered rejected it
                return verdicts, False
            if attempt + 1 < attempts:
                await asyncio.sleep(min(0.5 * 2**attempt, 5.0))
        return verdicts, True

    async def _on_main_chain(self, record: BlockRecord) -> bool:
        """True when ``getblockhash(height)`` is this block.  False when another block holds the
        height or nobody could tell: not a verdict (the tracker gives that, by the block's hash)."""
        for _ in range(self.verify_attempts):
            try:
                at_height = await self.family.block_hash_at(self.daemon, record.height)
            except DaemonError as exc:
                logger.debug("verify block %s: %s", record.hash, exc)
            else:
                if at_height is not None:  # None: the height is above the tip, not there (yet)
                    return at_height == record.hash
            await asyncio.sleep(self.verify_interval_s)
        return False

    def _finish(self, record: BlockRecord, status: str, detail: str) -> None:
        record = _with_status(record, status, detail)
        # The one line the pool logs for a block (the recorders log it at DEBUG at most).
        logger.log(logging.WARNING if status == "rejected" else logging.INFO,
                   "block %d %s found by %s.%s: %s (%s)", record.height, record.hash,
                   record.address or "?", record.worker or "?", status, record.detail)
        self.results.append(record)
        self.recorder.record_block(record)

    def _log_drained(self, left: Drained, elapsed: float, checks_cut: int) -> None:
        if not left.unsent and not left.unanswered and not checks_cut:
            logger.info("block submissions drained in %.1f s", elapsed)
            return
        logger.warning("block submissions stopped after %.1f s: %d candidates unsent and %d submissions "
                       "unanswered (%d chain checks cut short); they stay recorded as pending for the "
                       "block tracker", elapsed, len(left.unsent), len(left.unanswered), checks_cut)
        for record in left.unanswered:
            logger.warning("unanswered: block %s at height %d", record.hash, record.height)
        by_height: dict[int, list[str]] = {}
        for record in left.unsent:
            by_height.setdefault(record.height, []).append(record.hash)
        for height in sorted(by_height, reverse=True):
            hashes = by_height[height]
            more = len(hashes) - LOGGED_PER_HEIGHT
            logger.warning("unsent at height %d: %d candidates: %s%s", height, len(hashes),
                           ", ".join(hashes[:LOGGED_PER_HEIGHT]), f" and {more} more" if more > 0 else "")


def _with_status(record: BlockRecord, status: str, detail: str) -> BlockRecord:
    fields = {name: getattr(record, name) for name in BlockRecord.__slots__}
    fields.update(status=status, detail=detail)
    return BlockRecord(**fields)
