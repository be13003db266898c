"""The live statistics' interface, and the machinery both stores share.

``record_share`` is called on the share path and only appends the record to a bounded buffer. Once a
second (or every ``flush_records`` shares) a flusher reduces the buffer (`pool.stats.batch`) and turns
it into write operations on keys (below) that a store applies in one step: `RedisStats` in one
MULTI/EXEC pipeline, `MemoryStats` in a few dict updates. The queries are the same for both: a store
only answers a few kinds of reads. `rebuild_from` reloads the ledger's ``worker_minutes`` rows after
the store lost its data.

Failure behaviour
    ``record_share`` never raises and never waits. The raw buffer holds at most ``max_buffered_shares``
    records and the reduced pending sums at most ``max_pending_entries`` (minute, miner, worker) entries
    (plus one flush in doubt); beyond that the oldest are dropped and counted in
    ``counters["shares_dropped"]``. An outage is logged once when it starts and once when it ends; pushing
    resumes by itself (retries back off to ``max_retry_interval_s``). Shares with a non-finite, negative
    or absurd (> 2**64) difficulty or timestamp are ignored and counted; names are cut to
    ``MAX_NAME_CHARS`` characters and made valid UTF-8.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pool.ledger.recorder import BlockRecord, ShareRecord
from pool.stats.batch import MAX_CREDITED_DIFFICULTY, StatsBatch, clean_name, worker_member
from pool.stats.hashrate import (
    BUCKETS,
    ONLINE_S,
    SCRYPT_HASHES_PER_DIFFICULTY,
    SEEN_RETENTION_S,
    WINDOW_NAMES,
    WINDOWS_S,
    window_buckets,
)

logger = logging.getLogger(__name__)


def stored_number(value: Any, default: float | None = 0.0) -> float | None:
    """A finite float from a stored value, else `default`."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return default
    return number if math.isfinite(number) else default


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _unix_time(value: Any) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    return float(value)


# -- the interface ----------------------------------------------------------------------------------------


class StatsUnavailable(RuntimeError):
    """A statistics query could not be answered (the store is down or too slow)."""


class LiveStats(abc.ABC):
    """Live pool statistics. Also a `pool.ledger.recorder.Recorder` (start, stop, record_share, record_block).

    The instance records for one pool (``pool``); the queries take the pool's name so that an API can
    read any pool that writes to the same store.
    """

    pool: str
    hashes_per_difficulty: float

    @abc.abstractmethod
    def record_share(self, share: ShareRecord) -> None:
        """Buffer one accepted share. Never raises, never waits: called on the share path."""

    @abc.abstractmethod
    def record_block(self, block: BlockRecord) -> None:
        """An ``accepted`` block starts a new round (after the shares buffered before it)."""

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Push what is buffered (best effort) and stop."""

    @abc.abstractmethod
    async def hashrate(self, pool: str, address: str | None = None, worker: str | None = None,
                       window_s: int = 300, *, hashes_per_difficulty: float | None = None) -> float:
        """Hashes per second over the window, of the pool, a miner, or one worker of a miner."""

    @abc.abstractmethod
    async def workers_online(self, pool: str, address: str | None = None) -> int:
        """Workers (of the pool, or of one miner) with a share in the last ONLINE_S seconds."""

    @abc.abstractmethod
    async def last_share(self, pool: str, address: str, worker: str) -> float | None:
        """Unix time of the worker's last share (None if none within SEEN_RETENTION_S)."""

    @abc.abstractmethod
    async def round_work(self, pool: str) -> float:
        """Sum of credited / network difficulty since the pool's last accepted block."""

    @abc.abstractmethod
    async def snapshot(self, pool: str) -> dict[str, Any]:
        """Everything the pools API shows, read in one round trip."""

    @abc.abstractmethod
    async def rebuild_from(self, rows: Iterable[Any]) -> int:
        """Load ``worker_minutes`` rows (pool, address, worker, minute, shares, difficulty_sum,
        last_share) back; the number of rows used."""


# -- shared machinery: buffer, flusher, keys, queries -----------------------------------------------------

# Write operations, applied in order and atomically by a store:
#   ("buckets", {key: ({field: increment}, shares, ttl_s)})   add to float sums and to field n
#   ("buckets_max", {key: ({field: value}, ttl_s)})           raise fields to at least value
#   ("seen", {key: {member: unix time}}, cutoff, ttl_s)        insert or raise scores; drop those
#                                                              below cutoff (unless None)
#   ("round_add", key, work, shares, now)
#   ("round_reset", key, last_key, height, hash, created)
#   ("round_rebuild", key, work, shares, started)
#   ("marker", key, ttl_s)
# Reads: ("hsum", [keys], field) ("zcount_above", key, cutoff) ("zscore", key, member)
#        ("hgetall", key) ("exists", key)


class BufferedStats(LiveStats):
    """What `MemoryStats` and `RedisStats` share: the buffer and its flusher, the outage bookkeeping,
    the keys and write operations, the queries and the rebuild. A store applies operations (`_apply`,
    `_write_now`, or its own `_push`) and answers reads (`_read`)."""

    def __init__(
        self,
        pool: str,
        *,
        hashes_per_difficulty: float = SCRYPT_HASHES_PER_DIFFICULTY,
        key_prefix: str = "quarry:stats",
        flush_interval_s: float = 1.0,
        flush_records: int = 10_000,
        max_buffered_shares: int = 100_000,
        max_pending_entries: int = 100_000,
        max_retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if flush_records < 1 or max_buffered_shares < flush_records or max_pending_entries < 1:
            raise ValueError("need 1 <= flush_records <= max_buffered_shares and max_pending_entries >= 1")
        self.pool = clean_name(pool)
        self.hashes_per_difficulty = float(hashes_per_difficulty)
        self.key_prefix = key_prefix
        self.flush_interval_s = flush_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.max_pending_entries = max_pending_entries
        self.clock = clock
        self.counters = {
            "shares_pushed": 0,  # counted in the store
            "shares_dropped": 0,  # buffer or pending sums full (store away too long)
            "shares_ignored": 0,  # not sane: NaN or absurd difficulty, bad timestamp, not a share
            "push_failures": 0,
        }
        self.healthy = True
        self._shares: deque = deque(maxlen=max_buffered_shares)
        self._buffer_limit = max_buffered_shares
        self._flush_records = flush_records
        self._pending = StatsBatch()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._next_trim = 0.0
        self._lock = asyncio.Lock()
        self._outage_started = 0.0
        self._outage_dropped = 0

    # -- recording (the hot path) ---------------------------------------------------------------------

    def record_share(self, share: ShareRecord) -> None:
        shares = self._shares
        if len(shares) >= self._buffer_limit:
            self.counters["shares_dropped"] += 1  # the deque lets go of the oldest
        shares.append(share)
        if len(shares) == self._flush_records:
            self._wakeup.set()

    def record_block(self, block: BlockRecord) -> None:
        try:
            if getattr(block, "status", None) != "accepted":
                return
            self._drain()  # the shares before the block belong to the round it ends
            if self._pending.add_block(block):
                self._wakeup.set()
        except Exception:  # never into the block path
            logger.exception("live stats: could not record block %r", block)

    def _drain(self) -> None:
        """Reduce the raw buffer into the pending sums (synchronous: no share can slip in between)."""
        shares = self._shares
        if not shares:
            return
        records = list(shares)
        shares.clear()
        now = self.clock()
        self.counters["shares_ignored"] += self._pending.add_shares(records, now)
        self.counters["shares_dropped"] += self._pending.trim(self.max_pending_entries)

    @property
    def buffered(self) -> int:
        return len(self._shares)

    @property
    def pending_entries(self) -> int:
        return len(self._pending.workers)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._flush_loop(), name=f"live-stats-{self.pool}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self.flush()

    async def _flush_loop(self) -> None:
        delay = self.flush_interval_s
        while not self._stopping:
            if self.healthy:
                try:  # not wait_for: before 3.12 it can swallow the cancellation of stop()
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()
                except TimeoutError:
                    pass
            else:
                await asyncio.sleep(delay)
            self._wakeup.clear()
            try:
                ok = await self.flush()
            except Exception:  # a bug must not end the flusher
                logger.exception("live stats: flush failed")
                ok = False
            delay = self.flush_interval_s if ok else min(max(delay, self.flush_interval_s) * 2,
                                                         self.max_retry_interval_s)

    async def flush(self) -> bool:
        """Push what is buffered now; False if the store did not take it (it stays pending)."""
        async with self._lock:
            self._drain()
            return await self._push()

    async def _push(self) -> bool:
        batch = self._pending
        if not batch:
            return True
        self._pending = StatsBatch()
        try:
            self._apply(self._ops_for(batch, self.clock()))
        except Exception:
            logger.exception("live stats: could not apply %d shares; dropped", batch.shares)
            self.counters["shares_dropped"] += batch.shares
            return False
        self.counters["shares_pushed"] += batch.shares
        return True

    def _apply(self, ops: list[tuple]) -> None:
        raise NotImplementedError

    # -- outage bookkeeping ---------------------------------------------------------------------------

    def _failed(self, error: BaseException, what: str) -> None:
        self.counters["push_failures"] += 1
        if self.healthy:
            self.healthy = False
            self._outage_started = self.clock()
            self._outage_dropped = self.counters["shares_dropped"]
            logger.warning("live stats for %s: %s (%s)", self.pool, what, _describe(error))
        else:
            logger.debug("live stats for %s: still failing (%s)", self.pool, _describe(error))

    def _succeeded(self) -> None:
        if not self.healthy:
            self.healthy = True
            logger.warning("live stats for %s: store back after %.1f s; %d shares dropped meanwhile",
                           self.pool, self.clock() - self._outage_started,
                           self.counters["shares_dropped"] - self._outage_dropped)

    # -- keys and write operations --------------------------------------------------------------------

    def _base(self, pool: str) -> str:
        return f"{self.key_prefix}:{clean_name(pool)}:"

    @staticmethod
    def _field(address: str | None, worker: str | None) -> str:
        if worker is not None:
            if address is None:
                raise ValueError("a worker needs its address")
            return "w:" + worker_member(clean_name(address), clean_name(worker))
        if address is not None:
            return "a:" + clean_name(address)
        return "d"

    def _ops_for(self, batch: StatsBatch, now: float) -> list[tuple]:
        """The write operations that add `batch` to the store."""
        base = self._base(self.pool)
        sums: dict[str, dict[str, float]] = {}
        counts: dict[str, int] = {}
        ttls: dict[str, int] = {}
        seen_workers: dict[str, float] = {}
        seen_miners: dict[str, float] = {}
        seen_by_miner: dict[str, dict[str, float]] = {}
        buckets_of_minute: dict[int, list[tuple[str, int]]] = {}  # the live buckets a minute adds to
        for (minute, address, worker), (shares, difficulty, last) in batch.workers.items():
            member = worker_member(address, worker)
            buckets = buckets_of_minute.get(minute)
            if buckets is None:
                buckets = buckets_of_minute[minute] = []
                for kind, width, retention in BUCKETS:
                    index = minute * 60 // width
                    ttl = math.ceil((index + 1) * width + retention - now)
                    if ttl > 0:
                        buckets.append((f"{base}{kind}:{index}", ttl))
            address_name = "a:" + address
            worker_name = "w:" + member
            for key, ttl in buckets:
                fields = sums.get(key)
                if fields is None:
                    fields = sums[key] = {"d": 0.0}
                    counts[key] = 0
                    ttls[key] = ttl
                fields["d"] += difficulty
                counts[key] += shares
                fields[address_name] = fields.get(address_name, 0.0) + difficulty
                fields[worker_name] = fields.get(worker_name, 0.0) + difficulty
            if last > seen_workers.get(member, -math.inf):
                seen_workers[member] = last
            if last > seen_miners.get(address, -math.inf):
                seen_miners[address] = last
            by_worker = seen_by_miner.setdefault(address, {})
            if last > by_worker.get(worker, -math.inf):
                by_worker[worker] = last
        ops: list[tuple] = []
        if sums:
            ops.append(("buckets", {key: (fields, counts[key], ttls[key]) for key, fields in sums.items()}))
        seen = {f"{base}seen:miner:{address}": workers for address, workers in seen_by_miner.items()}
        if seen_workers:
            seen[f"{base}seen:workers"] = seen_workers
            seen[f"{base}seen:miners"] = seen_miners
        if seen:
            cutoff = None
            if now >= self._next_trim:  # forgetting workers gone for 25 h can wait a minute
                self._next_trim = now + 60
                cutoff = now - SEEN_RETENTION_S
            ops.append(("seen", seen, cutoff, SEEN_RETENTION_S))
        round_key = f"{base}round"
        for op in batch.round_ops:
            if op[0] == "work":
                ops.append(("round_add", round_key, op[1], op[2], now))
            else:
                ops.append(("round_reset", round_key, f"{base}round:last", op[1], op[2], op[3]))
        return ops

    # -- queries --------------------------------------------------------------------------------------

    async def _read(self, queries: list[tuple]) -> list[Any]:
        raise NotImplementedError

    async def difficulty_sum(self, pool: str, address: str | None = None, worker: str | None = None,
                             window_s: int = 300) -> float:
        """Sum of credited difficulty over the window (see the module docstring for windows)."""
        field = self._field(address, worker)
        kind, _, indices = window_buckets(window_s, self.clock())
        base = self._base(pool)
        (total,) = await self._read([("hsum", [f"{base}{kind}:{index}" for index in indices], field)])
        return stored_number(total)

    async def hashrate(self, pool: str, address: str | None = None, worker: str | None = None,
                       window_s: int = 300, *, hashes_per_difficulty: float | None = None) -> float:
        total = await self.difficulty_sum(pool, address, worker, window_s)
        factor = self.hashes_per_difficulty if hashes_per_difficulty is None else hashes_per_difficulty
        return total * factor / window_s

    async def workers_online(self, pool: str, address: str | None = None) -> int:
        base = self._base(pool)
        key = f"{base}seen:workers" if address is None else f"{base}seen:miner:{clean_name(address)}"
        (count,) = await self._read([("zcount_above", key, self.clock() - ONLINE_S)])
        return int(count)

    async def miners_online(self, pool: str) -> int:
        """Miners (addresses) with a share in the last ONLINE_S seconds."""
        key = f"{self._base(pool)}seen:miners"
        (count,) = await self._read([("zcount_above", key, self.clock() - ONLINE_S)])
        return int(count)

    async def last_share(self, pool: str, address: str, worker: str) -> float | None:
        key = f"{self._base(pool)}seen:miner:{clean_name(address)}"
        (score,) = await self._read([("zscore", key, clean_name(worker))])
        if score is None or float(score) < self.clock() - SEEN_RETENTION_S:
            return None
        return float(score)

    async def round_work(self, pool: str) -> float:
        (raw,) = await self._read([("hgetall", f"{self._base(pool)}round")])
        return stored_number(raw.get("work")) if raw else 0.0

    async def snapshot(self, pool: str) -> dict[str, Any]:
        now = self.clock()
        base = self._base(pool)
        queries: list[tuple] = []
        for window_s in WINDOWS_S:
            kind, _, indices = window_buckets(window_s, now)
            queries.append(("hsum", [f"{base}{kind}:{index}" for index in indices], "d"))
        kind, _, indices = window_buckets(WINDOWS_S[0], now)
        queries.append(("hsum", [f"{base}{kind}:{index}" for index in indices], "n"))
        queries.append(("zcount_above", f"{base}seen:workers", now - ONLINE_S))
        queries.append(("zcount_above", f"{base}seen:miners", now - ONLINE_S))
        queries.append(("hgetall", f"{base}round"))
        queries.append(("hgetall", f"{base}round:last"))
        answers = await self._read(queries)
        sums = dict(zip(WINDOWS_S, (stored_number(value) for value in answers[: len(WINDOWS_S)])))
        shares_5m, workers, miners, current, last = answers[len(WINDOWS_S):]
        return {
            "pool": clean_name(pool),
            "time": now,
            "hashes_per_difficulty": self.hashes_per_difficulty,
            "hashrate": {WINDOW_NAMES[w]: s * self.hashes_per_difficulty / w for w, s in sums.items()},
            "difficulty_sum": {WINDOW_NAMES[w]: total for w, total in sums.items()},
            "shares_per_second": stored_number(shares_5m) / WINDOWS_S[0],
            "workers_online": int(workers),
            "miners_online": int(miners),
            "round": _round_view(current, ended=False),
            "last_round": _round_view(last, ended=True) if last else None,
        }

    # -- rebuilding after a flush or restart ----------------------------------------------------------

    def _rebuild_ops(self, rows: Iterable[Any]) -> tuple[list[tuple], int]:
        now = self.clock()
        by_pool: dict[str, list[tuple]] = {}
        used = 0
        for row in rows:
            try:
                values = _row_values(row)
            except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError):
                continue
            by_pool.setdefault(values[0], []).append(values)
            used += 1
        ops: list[tuple] = []
        for pool, values in by_pool.items():
            base = self._base(pool)
            sums: dict[str, dict[str, float]] = {}
            ttls: dict[str, int] = {}
            seen: dict[str, dict[str, float]] = {}
            for _, address, worker, minute, shares, difficulty, last in values:
                member = worker_member(address, worker)
                for kind, width, retention in BUCKETS:
                    index = minute * 60 // width
                    ttl = math.ceil((index + 1) * width + retention - now)
                    if ttl <= 0:
                        continue
                    key = f"{base}{kind}:{index}"
                    fields = sums.get(key)
                    if fields is None:
                        fields = sums[key] = {"d": 0.0, "n": 0}
                        ttls[key] = ttl
                    fields["d"] += difficulty
                    fields["n"] += shares
                    for name in ("a:" + address, "w:" + member):
                        fields[name] = fields.get(name, 0.0) + difficulty
                if last >= now - SEEN_RETENTION_S:
                    for key, name in ((f"{base}seen:workers", member), (f"{base}seen:miners", address),
                                      (f"{base}seen:miner:{address}", worker)):
                        members = seen.setdefault(key, {})
                        if last > members.get(name, -math.inf):
                            members[name] = last
            if sums:
                ops.append(("buckets_max", {key: (fields, ttls[key]) for key, fields in sums.items()}))
            if seen:
                ops.append(("seen", seen, None, SEEN_RETENTION_S))
        return ops, used

    async def rebuild_from(self, rows: Iterable[Any]) -> int:
        """Load ``worker_minutes`` rows (mappings such as asyncpg records, or tuples in the table's
        column order; times as datetimes or unix seconds). Each bucket field is raised to at least the
        rows' sum, so shares pushed since the store came back are not lost and loading twice changes
        nothing. Give whole minutes of the whole pool (``WHERE pool = $1 AND minute >= now() - '25
        hours'``); rows older than the retention and rows that do not parse are skipped."""
        ops, used = self._rebuild_ops(rows)
        await self._write_now(ops)
        return used

    async def rebuild_round(self, pool: str, *, work: float, shares: int, started: float | datetime) -> None:
        """Load the ledger's round (table ``rounds``) unless the store has seen a block since it was
        emptied (the ledger's round would be stale); work and shares are raised to at least these."""
        key = f"{self._base(pool)}round"
        await self._write_now([("round_rebuild", key, stored_number(work), int(shares), _unix_time(started))])

    async def _write_now(self, ops: list[tuple]) -> None:
        raise NotImplementedError


def _row_values(row: Any) -> tuple[str, str, str, int, int, float, float]:
    try:
        pool, address, worker, minute = row["pool"], row["address"], row["worker"], row["minute"]
        shares, difficulty, last = row["shares"], row["difficulty_sum"], row["last_share"]
    except (TypeError, IndexError):  # a plain tuple in column order
        pool, address, worker, minute, shares, difficulty, last = row
    minute_s = _unix_time(minute)
    difficulty = float(difficulty)
    last_s = _unix_time(last)
    shares = int(shares)
    if not (math.isfinite(minute_s) and math.isfinite(last_s)
            and 0.0 <= difficulty <= MAX_CREDITED_DIFFICULTY * max(shares, 1) and shares >= 0):
        raise ValueError("not a sane worker_minutes row")
    names = clean_name(pool), clean_name(address), clean_name(worker)
    return *names, int(minute_s // 60), shares, difficulty, last_s


def _round_view(raw: Mapping[str, Any] | None, *, ended: bool) -> dict[str, Any]:
    """A round hash as stored (strings from Redis, numbers in memory) as plain JSON-ready values."""
    raw = raw or {}
    height = stored_number(raw.get("height"), None)
    height = None if height is None else int(height)
    block_hash = raw.get("hash") or None
    view = {
        "work": stored_number(raw.get("work")),
        "shares": int(stored_number(raw.get("shares"))),
        "started": stored_number(raw.get("started"), None),
    }
    if ended:
        view.update(ended=stored_number(raw.get("ended"), None), block_height=height, block_hash=block_hash)
    else:
        view.update(after_block_height=height, after_block_hash=block_hash)
    return view
