"""Live statistics: hashrate windows, workers online, round work; in Redis or in process memory.

``record_share`` is called on the share path and only appends the record to a bounded buffer. Once a
second (or every ``flush_records`` shares) a flusher reduces the buffer to per-minute sums and applies
them in one step: for `RedisStats` one MULTI/EXEC pipeline, for `MemoryStats` a few dict updates.
These are statistics, not money: the ledger in PostgreSQL is the truth, and `rebuild_from` reloads its
``worker_minutes`` rows after Redis lost its data.

Hashrate
    Every share adds its *credited* difficulty (the difficulty its job was sent at). Over a window,
    ``hashrate = sum(credited difficulty) * hashes_per_difficulty / window_s``, where
    ``hashes_per_difficulty`` is the number of hashes one share of difficulty 1 takes on average:
    ``2**32`` for sha256d coins (diff-1 target ``0xffff * 2**208``) and ``2**16`` for scrypt coins (diff-1
    target ``0xffff * 2**224``, the "multiplier 65536" of scrypt miners); `hashes_per_difficulty`
    derives it from a coin's diff-1 target. Buckets hold difficulty, as ``worker_minutes.difficulty_sum``
    does, so hashes are a read-time factor and a rebuild is a plain load.

    A window of ``window_s`` seconds is the last ``window_s / 60`` *complete* minutes before the current
    one (windows up to 1 h) or the last ``window_s / 600`` complete 10-minute buckets (longer windows, up
    to 24 h): figures trail by less than one bucket but never count a bucket that is still filling. The
    10-minute buckets keep 24 h at 150 fields per worker instead of 1500 per-minute ones.

Workers online
    Workers with a share in the last ``ONLINE_S`` (10 minutes).

Round work
    ``sum(credited difficulty / network difficulty)`` over the shares since the pool's last accepted
    block: 1.0 is one expected block's worth of work (the effort of the round is this, at the block).
    An ``accepted`` `BlockRecord` starts a new round; the shares buffered before it still count for the
    old one, and the old round is kept as the "last round".

Redis key layout (``P`` = ``key_prefix:pool``, default prefix ``quarry:stats``; every write is an
addition, a maximum or a reset keyed by the block, so several pool nodes share the keys)::

    P:m1:<unix // 60>      hash, one per minute, expires 2 h after the minute:
    P:m10:<unix // 600>    hash, one per 10 minutes, expires 25 h after them:
                             d                      difficulty sum of the pool
                             n                      shares of the pool
                             a:<address>            difficulty sum of a miner
                             w:["address","worker"] difficulty sum of a worker (JSON array)
    P:seen:workers         sorted set ["address","worker"] -> unix time of the last share (25 h)
    P:seen:miners          sorted set address -> unix time of the last share (25 h)
    P:seen:miner:<address> sorted set worker -> unix time of the last share (25 h)
    P:round                hash work, shares, started, height, hash (the block that started it)
    P:round:last           hash: the previous round as it ended, and the block that ended it
    P:flush:<node>:<seq>   a flush's marker (1 h): after an ambiguous failure (timeout mid-EXEC) it
                           tells whether that flush was applied, so a retry never counts twice

A flush is one MULTI/EXEC: one Lua call adds all bucket sums (one JSON document per key, cheap to pack),
one sets all last-share times (ZADD GT, Redis >= 6.2), then the round and the marker. Sums are doubles
stored with 17 significant digits (HINCRBYFLOAT would keep only 17 digits after the point, losing small
round-work increments), so Redis and `MemoryStats` give bit-identical answers for the same input. All
keys of a flush are declared to the scripts; on Redis Cluster give the pool a ``key_prefix`` ending in
a ``{hash tag}`` so they share a slot.

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
import itertools
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson

from pool.ledger.recorder import BlockRecord, ShareRecord

try:  # the client library is needed only by RedisStats
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ExecAbortError, RedisError, ResponseError
except ImportError:  # pragma: no cover - exercised only without the package
    aioredis = None

logger = logging.getLogger(__name__)

WINDOWS_S = (300, 3600, 86400)
WINDOW_NAMES = {300: "5m", 3600: "1h", 86400: "24h"}
ONLINE_S = 600
MINUTE_RETENTION_S = 2 * 3600  # the 1 h window, the minute being filled, and slack
TEN_MINUTE_RETENTION_S = 25 * 3600  # the 24 h window and slack
SEEN_RETENTION_S = 25 * 3600
MARKER_TTL_S = 3600
MAX_NAME_CHARS = 128
MAX_CREDITED_DIFFICULTY = 2.0**64
MAX_SHARE_AGE_S = TEN_MINUTE_RETENTION_S
FUTURE_TOLERANCE_S = 300
SHA256D_HASHES_PER_DIFFICULTY = 2**32
SCRYPT_HASHES_PER_DIFFICULTY = 2**16

_BUCKETS = (("m1", 60, MINUTE_RETENTION_S), ("m10", 600, TEN_MINUTE_RETENTION_S))


def hashes_per_difficulty(diff1_target: int) -> int:
    """Hashes per share of difficulty 1 for a coin's diff-1 target: the power of two nearest
    ``2**256 / diff1_target`` (``2**32`` for ``0xffff * 2**208``, ``2**16`` for ``0xffff * 2**224``),
    which is the convention miners and pools report hashrate in."""
    if diff1_target <= 0:
        raise ValueError("diff1_target must be positive")
    return 1 << round(math.log2((1 << 256) / diff1_target))


def clean_name(value: object) -> str:
    """A miner or worker name as stored: at most MAX_NAME_CHARS characters of valid UTF-8."""
    if type(value) is str:
        if len(value) <= MAX_NAME_CHARS and value.isascii():
            return value
        text = value[:MAX_NAME_CHARS]
    elif value is None:
        return ""
    else:
        text = str(value)[:MAX_NAME_CHARS]
    return text.encode("utf-8", "replace").decode("utf-8")  # lone surrogates become "?"


def worker_member(address: str, worker: str) -> str:
    """The unambiguous name of a worker in hashes and sorted sets: a JSON array [address, worker]."""
    return orjson.dumps([address, worker]).decode()


def window_buckets(window_s: int, now: float) -> tuple[str, int, range]:
    """(bucket kind, bucket width, bucket indices) of a window ending before the bucket being filled."""
    if isinstance(window_s, bool) or not isinstance(window_s, int):
        raise TypeError(f"window_s must be an int number of seconds, not {window_s!r}")
    if 60 <= window_s <= 3600 and window_s % 60 == 0:
        kind, width = "m1", 60
    elif 3600 < window_s <= 86400 and window_s % 600 == 0:
        kind, width = "m10", 600
    else:
        raise ValueError(
            f"window_s {window_s}: allowed are whole minutes up to 3600 and whole 10 minutes up to 86400 "
            f"(the standard windows are {WINDOWS_S})"
        )
    current = int(now // width)
    return kind, width, range(current - window_s // width, current)


def _number(value: Any, default: float | None = 0.0) -> float | None:
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


# -- the reduced form of a batch of shares (pure) ------------------------------------------------------


class StatsBatch:
    """Shares reduced to what the stores add, and the round's work with block resets in order.

    ``workers`` maps (minute, address, worker) to [shares, difficulty sum, last share time]; its
    insertion order is (nearly) time order, which `trim` relies on. ``round_ops`` is a list of
    ``["work", work, shares]`` and ``["block", height, hash, created]`` in the order they happened.
    """

    __slots__ = ("round_ops", "shares", "workers")

    def __init__(self) -> None:
        self.workers: dict[tuple[int, str, str], list] = {}
        self.round_ops: list[list] = []
        self.shares = 0

    def __bool__(self) -> bool:
        return bool(self.workers or self.round_ops)

    def add_share(self, share: ShareRecord, now: float) -> bool:
        """Count one share; False (nothing counted) for a record that is not a sane share."""
        return self.add_shares((share,), now) == 0

    def add_shares(self, shares: Iterable[ShareRecord], now: float) -> int:
        """Count shares in order; the number ignored (records that are not sane shares: not counted).

        One loop for the whole buffer (the flusher's work, once a second): the sums are those of
        adding the shares one by one, in the same order, so they are bit-identical."""
        lowest = now - MAX_SHARE_AGE_S
        highest = now + FUTURE_TOLERANCE_S
        workers = self.workers
        ops = self.round_ops
        tail = ops[-1] if ops and ops[-1][0] == "work" else None
        work_sum, work_shares = (tail[1], tail[2]) if tail is not None else (0.0, 0)
        counted = ignored = 0
        inf = math.inf
        for share in shares:
            try:  # everything that may fail comes before the first change (zero cost when nothing fails)
                created = share.created
                if type(created) is not float:
                    created = float(created)
                difficulty = share.credited_difficulty
                if type(difficulty) is not float:
                    difficulty = float(difficulty)
                # NaN fails every comparison, so it is ignored here too.
                if not (lowest <= created <= highest and 0.0 <= difficulty <= MAX_CREDITED_DIFFICULTY):
                    ignored += 1
                    continue
                address = share.address
                if type(address) is not str or len(address) > MAX_NAME_CHARS or not address.isascii():
                    address = clean_name(address)
                worker = share.worker
                if type(worker) is not str or len(worker) > MAX_NAME_CHARS or not worker.isascii():
                    worker = clean_name(worker)
                try:
                    network = share.network_difficulty
                    if type(network) is not float:
                        network = float(network)
                except (TypeError, ValueError, AttributeError, OverflowError):
                    network = 0.0
                work = difficulty / network if 0.0 < network < inf else 0.0
                if not work <= MAX_CREDITED_DIFFICULTY:
                    work = 0.0
                key = (int(created // 60), address, worker)
            except Exception:  # a hostile record must not stop the others
                ignored += 1
                continue
            entry = workers.get(key)
            if entry is None:
                workers[key] = [1, difficulty, created]
            else:
                entry[0] += 1
                entry[1] += difficulty
                if created > entry[2]:  # noqa: PLR1730 (a comparison costs less than a call, per share)
                    entry[2] = created
            work_sum += work
            work_shares += 1
            counted += 1
        if counted:
            if tail is None:
                ops.append(["work", work_sum, work_shares])
            else:
                tail[1] = work_sum
                tail[2] = work_shares
            self.shares += counted
        return ignored

    def add_block(self, block: BlockRecord) -> bool:
        """An accepted block ends the round; other statuses change nothing."""
        if getattr(block, "status", None) != "accepted":
            return False
        try:
            height = int(block.height)
            created = float(block.created)
        except (TypeError, ValueError, AttributeError, OverflowError):
            return False
        if not math.isfinite(created):
            return False
        self.round_ops.append(["block", height, clean_name(block.hash), created])
        return True

    def trim(self, max_entries: int) -> int:
        """Drop the oldest worker entries beyond `max_entries`; the number of shares dropped."""
        excess = len(self.workers) - max_entries
        if excess <= 0:
            return 0
        dropped = 0
        for key in list(itertools.islice(self.workers, excess)):
            dropped += self.workers.pop(key)[0]
        self.shares -= dropped
        return dropped

    def absorb_older(self, older: StatsBatch) -> None:
        """Put `older` (a batch that was not applied) in front of this one."""
        workers = {key: list(entry) for key, entry in older.workers.items()}
        for key, (shares, difficulty, last) in self.workers.items():
            entry = workers.get(key)
            if entry is None:
                workers[key] = [shares, difficulty, last]
            else:
                entry[0] += shares
                entry[1] += difficulty
                entry[2] = max(entry[2], last)
        self.workers = workers
        ops = [list(op) for op in older.round_ops]
        for op in self.round_ops:
            if op[0] == "work" and ops and ops[-1][0] == "work":
                ops[-1][1] += op[1]
                ops[-1][2] += op[2]
            else:
                ops.append(list(op))
        self.round_ops = ops
        self.shares += older.shares


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


class _BufferedStats(LiveStats):
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
                for kind, width, retention in _BUCKETS:
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
        return _number(total)

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
        return _number(raw.get("work")) if raw else 0.0

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
        sums = dict(zip(WINDOWS_S, (_number(value) for value in answers[: len(WINDOWS_S)])))
        shares_5m, workers, miners, current, last = answers[len(WINDOWS_S):]
        return {
            "pool": clean_name(pool),
            "time": now,
            "hashes_per_difficulty": self.hashes_per_difficulty,
            "hashrate": {WINDOW_NAMES[w]: s * self.hashes_per_difficulty / w for w, s in sums.items()},
            "difficulty_sum": {WINDOW_NAMES[w]: total for w, total in sums.items()},
            "shares_per_second": _number(shares_5m) / WINDOWS_S[0],
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
                for kind, width, retention in _BUCKETS:
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
        await self._write_now([("round_rebuild", key, _number(work), int(shares), _unix_time(started))])

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
    height = _number(raw.get("height"), None)
    height = None if height is None else int(height)
    block_hash = raw.get("hash") or None
    view = {
        "work": _number(raw.get("work")),
        "shares": int(_number(raw.get("shares"))),
        "started": _number(raw.get("started"), None),
    }
    if ended:
        view.update(ended=_number(raw.get("ended"), None), block_height=height, block_hash=block_hash)
    else:
        view.update(after_block_height=height, after_block_hash=block_hash)
    return view


# -- in process memory ----------------------------------------------------------------------------------


class MemoryStats(_BufferedStats):
    """The same statistics in this process, for a single node without Redis.

    Queries first take in what is buffered, so they see every share recorded before them. Memory is
    bounded by the retention times: expired buckets are pruned once a minute.
    """

    def __init__(self, pool: str, **options: Any) -> None:
        super().__init__(pool, **options)
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._next_prune = 0.0

    async def _write_now(self, ops: list[tuple]) -> None:
        self._apply(ops)

    async def _read(self, queries: list[tuple]) -> list[Any]:
        async with self._lock:
            self._drain()
            await self._push()
        return [self._answer(query) for query in queries]

    # A tiny subset of Redis semantics, the same arithmetic as the Lua scripts in RedisStats.

    def _live(self, key: str) -> Any:
        expires = self._expires.get(key)
        if expires is not None and expires <= self.clock():
            del self._expires[key]
            self._data.pop(key, None)
            return None
        return self._data.get(key)

    def _hash(self, key: str) -> dict:
        value = self._live(key)
        if value is None:
            value = self._data[key] = {}
        return value

    def _apply(self, ops: list[tuple]) -> None:
        now = self.clock()
        for op in ops:
            kind, key = op[0], op[1]
            if kind == "buckets":
                for key, (increments, shares, ttl) in op[1].items():
                    fields = self._hash(key)
                    for name, increment in increments.items():
                        fields[name] = _number(fields.get(name)) + increment
                    fields["n"] = int(fields.get("n", 0)) + shares
                    self._expires[key] = now + ttl
            elif kind == "buckets_max":
                for key, (values, ttl) in op[1].items():
                    fields = self._hash(key)
                    for name, value in values.items():
                        current = fields.get(name)
                        if current is None or value > current:
                            fields[name] = value
                    self._expires[key] = now + ttl
            elif kind == "seen":
                _, sets, cutoff, ttl = op
                for key, scores in sets.items():
                    members = self._hash(key)
                    for member, score in scores.items():
                        if member not in members or score > members[member]:
                            members[member] = score
                    if cutoff is not None:
                        for member in [m for m, score in members.items() if score < cutoff]:
                            del members[member]
                    self._expires[key] = now + ttl
            elif kind == "round_add":
                fields = self._hash(key)
                fields["work"] = _number(fields.get("work")) + op[2]
                fields["shares"] = int(fields.get("shares", 0)) + op[3]
                fields.setdefault("started", op[4])
            elif kind == "round_reset":
                _, _, last_key, height, block_hash, created = op
                current = self._live(key) or {}
                if current.get("hash") == block_hash or height < int(current.get("height", -1)):
                    continue
                self._data[last_key] = {
                    "work": current.get("work", 0.0), "shares": current.get("shares", 0),
                    "started": current.get("started", ""), "ended": created,
                    "height": height, "hash": block_hash,
                }
                self._expires.pop(last_key, None)
                self._data[key] = {"work": 0.0, "shares": 0, "started": created, "height": height,
                                   "hash": block_hash}
                self._expires.pop(key, None)
            elif kind == "round_rebuild":
                fields = self._hash(key)
                if "hash" in fields:
                    continue
                if op[2] > _number(fields.get("work")):
                    fields["work"] = op[2]
                if op[3] > int(fields.get("shares", 0)):
                    fields["shares"] = op[3]
                fields["started"] = op[4]
            else:  # pragma: no cover - a programming error
                raise ValueError(f"unknown operation {kind!r}")
        if now >= self._next_prune:
            self._next_prune = now + 60
            for key in [key for key, when in self._expires.items() if when <= now]:
                del self._expires[key]
                self._data.pop(key, None)

    def _answer(self, query: tuple) -> Any:
        kind = query[0]
        if kind == "hsum":
            total = 0.0
            for key in query[1]:
                fields = self._live(key)
                if fields:
                    value = fields.get(query[2])
                    if value is not None and math.isfinite(value):
                        total += value
            return total
        if kind == "zcount_above":
            members = self._live(query[1]) or {}
            return sum(1 for score in members.values() if score > query[2])
        if kind == "zscore":
            return (self._live(query[1]) or {}).get(query[2])
        if kind == "hgetall":
            return dict(self._live(query[1]) or {})
        if kind == "exists":
            return self._live(query[1]) is not None
        raise ValueError(f"unknown query {kind!r}")  # pragma: no cover


# -- Redis -------------------------------------------------------------------------------------------------

# Float sums are doubles stored with 17 significant digits (HINCRBYFLOAT would add in long double and
# store 17 digits after the point, losing the small round-work increments).
# The bulk operations carry one JSON document per key (orjson writes the shortest round-trip form of
# a double, cjson reads it back exactly): far cheaper to pack than one argument per field.

# ARGV[i] = [{field: increment}, shares, ttl] for KEYS[i]
_BUCKETS_ADD = """
for i = 1, #KEYS do
  local bucket = cjson.decode(ARGV[i])
  for field, increment in pairs(bucket[1]) do
    local current = tonumber(redis.call('HGET', KEYS[i], field)) or 0
    redis.call('HSET', KEYS[i], field, string.format('%.17g', current + increment))
  end
  redis.call('HINCRBY', KEYS[i], 'n', string.format('%d', bucket[2]))
  redis.call('EXPIRE', KEYS[i], string.format('%d', bucket[3]))
end
return 0
"""

# ARGV[i] = [{field: value}, ttl] for KEYS[i]
_BUCKETS_MAX = """
for i = 1, #KEYS do
  local bucket = cjson.decode(ARGV[i])
  for field, value in pairs(bucket[1]) do
    local current = tonumber(redis.call('HGET', KEYS[i], field))
    if current == nil or value > current then
      redis.call('HSET', KEYS[i], field, string.format('%.17g', value))
    end
  end
  redis.call('EXPIRE', KEYS[i], string.format('%d', bucket[2]))
end
return 0
"""

# ARGV[i] = {member: unix time} for KEYS[i]; then cutoff ('' for none) and ttl. ZADD GT: Redis >= 6.2.
_SEEN = """
local cutoff = ARGV[#KEYS + 1]
local ttl = ARGV[#KEYS + 2]
for i = 1, #KEYS do
  for member, score in pairs(cjson.decode(ARGV[i])) do
    redis.call('ZADD', KEYS[i], 'GT', string.format('%.17g', score), member)
  end
  if cutoff ~= '' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. cutoff)
  end
  redis.call('EXPIRE', KEYS[i], ttl)
end
return 0
"""

_ROUND_ADD = """
local work = tonumber(redis.call('HGET', KEYS[1], 'work')) or 0
redis.call('HSET', KEYS[1], 'work', string.format('%.17g', work + tonumber(ARGV[1])))
redis.call('HINCRBY', KEYS[1], 'shares', ARGV[2])
redis.call('HSETNX', KEYS[1], 'started', ARGV[3])
return 0
"""

# KEYS: round, last round; ARGV: height, hash, created. A block already seen (another node reported
# it) or older than the one that started the round changes nothing.
_ROUND_RESET = """
local current_hash = redis.call('HGET', KEYS[1], 'hash')
local current_height = tonumber(redis.call('HGET', KEYS[1], 'height')) or -1
if current_hash == ARGV[2] or tonumber(ARGV[1]) < current_height then return 0 end
local work = redis.call('HGET', KEYS[1], 'work') or '0'
local shares = redis.call('HGET', KEYS[1], 'shares') or '0'
local started = redis.call('HGET', KEYS[1], 'started') or ''
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[2], 'work', work, 'shares', shares, 'started', started, 'ended', ARGV[3],
           'height', ARGV[1], 'hash', ARGV[2])
redis.call('HSET', KEYS[1], 'work', '0', 'shares', '0', 'started', ARGV[3],
           'height', ARGV[1], 'hash', ARGV[2])
return 1
"""

_ROUND_REBUILD = """
if redis.call('HEXISTS', KEYS[1], 'hash') == 1 then return 0 end
if tonumber(ARGV[1]) > (tonumber(redis.call('HGET', KEYS[1], 'work')) or 0) then
  redis.call('HSET', KEYS[1], 'work', ARGV[1])
end
if tonumber(ARGV[2]) > (tonumber(redis.call('HGET', KEYS[1], 'shares')) or 0) then
  redis.call('HSET', KEYS[1], 'shares', ARGV[2])
end
redis.call('HSET', KEYS[1], 'started', ARGV[3])
return 1
"""

_HSUM = """
local total = 0
for i = 1, #KEYS do
  local value = tonumber(redis.call('HGET', KEYS[i], ARGV[1]))
  if value and value == value and value ~= math.huge and value ~= -math.huge then
    total = total + value
  end
end
return string.format('%.17g', total)
"""


class RedisStats(_BufferedStats):
    """The statistics in Redis, shared by every pool node writing to it.

    `redis` is a ``redis.asyncio.Redis``; it should not retry commands itself (a MULTI retried after a
    timeout could be applied twice; the flusher retries with its own marker check) and should have a
    socket timeout. `from_url` builds such a client.
    """

    def __init__(self, redis: Any, pool: str, *, push_timeout_s: float = 5.0, owns_client: bool = False,
                 **options: Any) -> None:
        if aioredis is None:
            raise RuntimeError("RedisStats needs the redis package: pip install 'redis>=5'")
        super().__init__(pool, **options)
        self.redis = redis
        self.push_timeout_s = push_timeout_s
        self._owns_client = owns_client
        self._node = secrets.token_hex(6)
        self._sequence = 0
        self._in_doubt: tuple[str, StatsBatch] | None = None

    async def store_lost(self) -> bool:
        """True when Redis no longer holds this node's rebuild marker (restarted empty, or flushed)."""
        return not await self.redis.exists(self._base(self.pool) + "rebuilt")

    async def mark_rebuilt(self) -> None:
        await self.redis.set(self._base(self.pool) + "rebuilt", str(self.clock()))

    @classmethod
    def from_url(cls, url: str, pool: str, *, socket_timeout_s: float = 2.0, **options: Any) -> RedisStats:
        """A RedisStats with its own client for `url` (``redis://host:port/db``), closed by `stop`."""
        if aioredis is None:
            raise RuntimeError("RedisStats needs the redis package: pip install 'redis>=5'")
        client = aioredis.Redis.from_url(
            url, decode_responses=True, socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s, retry=Retry(NoBackoff(), 0),
        )
        return cls(client, pool, owns_client=True, **options)

    async def stop(self) -> None:
        try:
            await super().stop()
        finally:
            if self._owns_client:
                await self.redis.aclose()

    @property
    def pending_entries(self) -> int:
        doubtful = len(self._in_doubt[1].workers) if self._in_doubt else 0
        return len(self._pending.workers) + doubtful

    async def _push(self) -> bool:
        try:
            async with asyncio.timeout(self.push_timeout_s):
                if self._in_doubt is not None:
                    marker, doubtful = self._in_doubt
                    if not await self.redis.exists(marker):
                        # Never applied: it goes out again, in front of what came since.
                        self._pending.absorb_older(doubtful)
                        self.counters["shares_dropped"] += self._pending.trim(self.max_pending_entries)
                    self._in_doubt = None
                batch = self._pending
                if not batch:
                    if not self.healthy:
                        await self.redis.ping()  # back only when Redis says so
                        self._succeeded()
                    return True
                self._pending = StatsBatch()
                self._sequence += 1
                marker = f"{self._base(self.pool)}flush:{self._node}:{self._sequence}"
                self._in_doubt = (marker, batch)
                ops = self._ops_for(batch, self.clock())
                ops.append(("marker", marker, MARKER_TTL_S))
                try:
                    results = await self._execute(ops, transaction=True)
                except ResponseError as error:
                    if isinstance(error, ExecAbortError) or isinstance(error.__cause__, ExecAbortError):
                        self._in_doubt = None  # refused as a whole: nothing was applied
                        self._pending.absorb_older(batch)
                        self.counters["shares_dropped"] += self._pending.trim(self.max_pending_entries)
                    raise
                self._in_doubt = None
                errors = [result for result in results if isinstance(result, Exception)]
                self.counters["shares_pushed"] += batch.shares
                if errors:  # partly applied; sending it again would count the rest twice
                    self._failed(errors[0], "Redis refused part of a flush; that part is lost")
                    return False
                self._succeeded()
                return True
        except (RedisError, OSError, TimeoutError) as error:
            self._failed(error, "Redis is not taking statistics; shares are kept (bounded) and pushed "
                                "when it is back")
            return False
        except Exception as error:  # a bug: do not retry the same batch forever
            if self._in_doubt is not None:
                self.counters["shares_dropped"] += self._in_doubt[1].shares
                self._in_doubt = None
            logger.exception("live stats for %s: flush failed", self.pool)
            self._failed(error, "flush failed; its shares are dropped")
            return False

    async def _execute(self, ops: list[tuple], *, transaction: bool) -> list[Any]:
        async with self.redis.pipeline(transaction=transaction) as pipe:
            for op in ops:
                kind, key = op[0], op[1]
                if kind == "buckets" or kind == "buckets_max":
                    keys = list(op[1])
                    pipe.eval(_BUCKETS_ADD if kind == "buckets" else _BUCKETS_MAX, len(keys), *keys,
                              *(orjson.dumps(value) for value in op[1].values()))
                elif kind == "seen":
                    _, sets, cutoff, ttl = op
                    keys = list(sets)
                    pipe.eval(_SEEN, len(keys), *keys, *(orjson.dumps(value) for value in sets.values()),
                              "" if cutoff is None else repr(cutoff), ttl)
                elif kind == "round_add":
                    pipe.eval(_ROUND_ADD, 1, key, op[2], op[3], op[4])
                elif kind == "round_reset":
                    pipe.eval(_ROUND_RESET, 2, key, op[2], op[3], op[4], op[5])
                elif kind == "round_rebuild":
                    pipe.eval(_ROUND_REBUILD, 1, key, op[2], op[3], op[4])
                elif kind == "marker":
                    pipe.set(key, 1, ex=op[2])
                else:  # pragma: no cover - a programming error
                    raise ValueError(f"unknown operation {kind!r}")
            return await pipe.execute(raise_on_error=False)

    async def _write_now(self, ops: list[tuple]) -> None:
        try:
            async with asyncio.timeout(self.push_timeout_s * 4):
                results = await self._execute(ops, transaction=True)
        except (RedisError, OSError, TimeoutError) as error:
            raise StatsUnavailable(f"Redis: {type(error).__name__}: {error}") from error
        errors = [result for result in results if isinstance(result, Exception)]
        if errors:
            raise StatsUnavailable(f"Redis refused part of the write: {errors[0]}")

    async def _read(self, queries: list[tuple]) -> list[Any]:
        try:
            async with asyncio.timeout(self.push_timeout_s):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for query in queries:
                        kind = query[0]
                        if kind == "hsum":
                            pipe.eval(_HSUM, len(query[1]), *query[1], query[2])
                        elif kind == "zcount_above":
                            pipe.zcount(query[1], f"({query[2]!r}", "+inf")
                        elif kind == "zscore":
                            pipe.zscore(query[1], query[2])
                        elif kind == "hgetall":
                            pipe.hgetall(query[1])
                        elif kind == "exists":
                            pipe.exists(query[1])
                        else:  # pragma: no cover
                            raise ValueError(f"unknown query {kind!r}")
                    results = await pipe.execute()
        except (RedisError, OSError, TimeoutError) as error:
            raise StatsUnavailable(f"Redis: {type(error).__name__}: {error}") from error
        return [_decoded(result) for result in results]


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_decoded(key): _decoded(item) for key, item in value.items()}
    return value
