"""The share ledger: accepted shares and block candidates, durably in PostgreSQL.

Shares are buffered and written every ``flush_interval_s`` seconds or ``batch_size`` shares,
whichever comes first, in one transaction: one binary COPY straight into ``shares`` (the rows are
encoded here, `ShareCopy`), then one statement that adds the batch's per-minute worker sums and
its work (summed here, in the batch's order, as PostgreSQL would) to the aggregates and the round.
A batch that meets a share already stored (a batch retried after a timeout, or replayed: every
share has a unique id) fails on the primary key; it then goes through a staging table and one
statement that inserts the new shares (``ON CONFLICT DO NOTHING``) and adds exactly those rows to
the aggregates, so it is stored and counted once.  A block candidate is written at once, in its own
transaction, never together with shares.

When PostgreSQL is away or slow, a batch goes to an append-only spill file (written and
fsync'd before the batch is let go of), memory stays bounded to one batch, mining goes on, and
an alert is logged and counted.  The spill is replayed automatically once PostgreSQL answers
again and deleted only after the replay committed; replaying it twice changes nothing.

Durability bounds: on SIGTERM the buffer is flushed (to PostgreSQL or the spill).  After
SIGKILL, what was accepted but not yet flushed is lost: at most ``flush_interval_s`` seconds
(or ``batch_size`` shares) of shares.  Block candidates are not batched.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson

from pool.ledger.recorder import BlockRecord, ShareRecord, share_fields

logger = logging.getLogger(__name__)

SHARE_COLUMNS = (
    "share_id", "created", "pool", "address", "worker", "credited_difficulty", "actual_difficulty",
    "network_difficulty", "height", "coinbase_value", "node_id", "ip", "is_block",
)

# One statement: insert the new shares, then count exactly the inserted ones into the
# aggregates and the round (a replayed share inserts nothing, so it counts nothing).
_INSERT_TEMPLATE = """
WITH inserted AS (
    INSERT INTO shares SELECT * FROM shares_staging
    {on_conflict}
    RETURNING pool, address, worker, created, credited_difficulty, network_difficulty
), minutes AS (
    INSERT INTO worker_minutes (pool, address, worker, minute, shares, difficulty_sum, last_share)
    SELECT pool, address, worker, date_trunc('minute', created), count(*), sum(credited_difficulty), max(created)
    FROM inserted GROUP BY pool, address, worker, date_trunc('minute', created)
    ON CONFLICT (pool, address, worker, minute) DO UPDATE SET
        shares = worker_minutes.shares + excluded.shares,
        difficulty_sum = worker_minutes.difficulty_sum + excluded.difficulty_sum,
        last_share = greatest(worker_minutes.last_share, excluded.last_share)
    RETURNING 1
), round_work AS (
    INSERT INTO rounds (pool, work, shares)
    SELECT pool, sum(credited_difficulty / nullif(network_difficulty, 0)), count(*)
    FROM inserted GROUP BY pool
    ON CONFLICT (pool) DO UPDATE SET work = rounds.work + excluded.work, shares = rounds.shares + excluded.shares
    RETURNING 1
)
SELECT (SELECT count(*) FROM inserted) AS inserted
"""
_INSERT_FROM_STAGING = _INSERT_TEMPLATE.format(on_conflict="ON CONFLICT DO NOTHING")
# A batch of shares never stored before (the usual case) is inserted without ON CONFLICT, whose
# check costs PostgreSQL about a quarter of the insert; a batch that meets a stored share (a retry
# or a replay) fails on the primary key, and is then inserted with ON CONFLICT DO NOTHING.
_INSERT_NEW_FROM_STAGING = _INSERT_TEMPLATE.format(on_conflict="")

_CREATE_STAGING = "CREATE TEMP TABLE IF NOT EXISTS shares_staging (LIKE shares) ON COMMIT DELETE ROWS"

# A batch copied straight into shares (all of it inserted): its per-minute sums, copied into a
# staging table, and its round work ($2) and shares ($3), summed by `ShareCopyEncoder`.
_CREATE_MINUTES_STAGING = (
    "CREATE TEMP TABLE IF NOT EXISTS worker_minutes_staging (LIKE worker_minutes) ON COMMIT DELETE ROWS")
_ADD_AGGREGATES = """
WITH minutes AS (
    INSERT INTO worker_minutes (pool, address, worker, minute, shares, difficulty_sum, last_share)
    SELECT pool, address, worker, minute, shares, difficulty_sum, last_share FROM worker_minutes_staging
    ON CONFLICT (pool, address, worker, minute) DO UPDATE SET
        shares = worker_minutes.shares + excluded.shares,
        difficulty_sum = worker_minutes.difficulty_sum + excluded.difficulty_sum,
        last_share = greatest(worker_minutes.last_share, excluded.last_share)
    RETURNING 1
)
INSERT INTO rounds (pool, work, shares) VALUES ($1, $2, $3)
ON CONFLICT (pool) DO UPDATE SET work = rounds.work + excluded.work, shares = rounds.shares + excluded.shares
"""

# The submitter's outcomes as block rows: only a refusal is final; every other outcome (and an
# "orphaned" of an older spill file) is pending, for the block tracker to decide on the chain.
_BLOCK_STATUS = {"rejected": "rejected"}


def _timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def share_row_of_fields(fields: tuple, pool_name: str) -> tuple:
    """The shares table row of a record's fields in `ShareRecord` order (as `share_fields` gives them)."""
    (share_id, created, address, worker, credited_difficulty, actual_difficulty, network_difficulty, height,
     coinbase_value, node_id, ip, is_block) = fields
    return (share_id, _timestamp(created), pool_name, address, worker, credited_difficulty, actual_difficulty,
            network_difficulty, height, coinbase_value, node_id, ip, is_block)


# PostgreSQL's binary COPY: header (signature, flags, extension length), rows, trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
_COPY_TRAILER = b"\xff\xff"
_PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in microseconds since 1970
_MINUTE_US = 60_000_000
#: The column order of `ShareCopy.shares`: the fixed-size columns first, packed by one struct with share_id.
COPY_COLUMNS = (
    "created", "credited_difficulty", "actual_difficulty", "network_difficulty", "height", "coinbase_value",
    "node_id", "is_block", "share_id", "pool", "address", "worker", "ip",
)
#: The columns of `ShareCopy.minutes` (worker_minutes' own).
MINUTE_COLUMNS = ("pool", "address", "worker", "minute", "shares", "difficulty_sum", "last_share")
# A shares row up to its text columns: the field count; (length, value) of created (int8 microseconds
# since 2000), three float8, two int8, int2, bool; then share_id (length and bytes).
_SHARE_FIELDS = ">h iq id id id iq iq ih i? i{}s"
_MINUTE_COUNT = struct.Struct(">h").pack(len(MINUTE_COLUMNS))
_MINUTE_FIELDS = struct.Struct(">iq iq id iq").pack  # minute, shares, difficulty_sum, last_share
_TEXT_LENGTH = struct.Struct(">i").pack
_NAMES_CACHE_LIMIT = 100_000


def timestamp_microseconds(seconds: float) -> int:
    """Unix time to integer microseconds, rounded as ``datetime.fromtimestamp`` rounds (half to even),
    so a share copied in binary has the very key its spilled copy gets through a datetime."""
    fraction, whole = math.modf(seconds)
    return int(whole) * 1_000_000 + round(fraction * 1e6)


class ShareCopy:
    """A batch of shares as two binary COPY payloads: its rows of shares, and its rows of per-minute
    worker sums; and the round's sums.

    The sums are those the staging statement computes: per (address, worker, UTC minute) the count,
    the sum of credited difficulty in the batch's order and the latest time; for the round, the sum of
    credited / network difficulty (shares with no network difficulty add nothing)."""

    __slots__ = ("count", "minutes", "shares", "work")

    def __init__(self, shares: bytes, minutes: bytes, count: int, work: float) -> None:
        # bytes: asyncpg takes a bytes source for a path, so these go to COPY as memoryview(...)
        self.shares = shares
        self.minutes = minutes
        self.count = count
        self.work = work


class ShareCopyEncoder:
    """Encodes batches of share fields (`pool.ledger.recorder.share_fields` order) as `ShareCopy`. Pure code.

    The text columns of a connection (pool, address, worker, ip) are encoded once and kept."""

    def __init__(self, pool_name: str) -> None:
        self.pool_name = pool_name
        self._pool_field = _text_field(pool_name)
        self._names: dict[tuple, bytes] = {}
        self._share_structs: dict[int, Callable[..., bytes]] = {}

    def encode(self, batch: list[tuple]) -> ShareCopy:
        modf = math.modf
        names = self._names
        if len(names) > _NAMES_CACHE_LIMIT:
            names.clear()
        structs = self._share_structs
        pool_field = self._pool_field
        minutes: dict[tuple, list] = {}
        parts = [_COPY_HEADER]
        append = parts.append
        work = 0.0
        for (share_id, created, address, worker, credited, actual, network, height, coinbase, node_id, ip,
             is_block) in batch:
            fraction, whole = modf(created)  # timestamp_microseconds, inline: this runs per share
            micros = int(whole) * 1_000_000 + round(fraction * 1e6)
            share_id_bytes = share_id.encode()
            size = len(share_id_bytes)
            pack = structs.get(size) or self._share_struct(size)
            key = (address, worker, ip)
            text = names.get(key)
            if text is None:
                text = names[key] = pool_field + _text_field(address) + _text_field(worker) + _text_field(ip)
            append(pack(13, 8, micros - _PG_EPOCH_US, 8, credited, 8, actual, 8, network, 8, height, 8, coinbase,
                        2, node_id, 1, is_block, size, share_id_bytes) + text)
            minute_key = (address, worker, micros - micros % _MINUTE_US)
            entry = minutes.get(minute_key)
            if entry is None:
                minutes[minute_key] = [1, credited, micros]
            else:
                entry[0] += 1
                entry[1] += credited
                if micros > entry[2]:  # noqa: PLR1730 (a comparison costs less than a call, per share)
                    entry[2] = micros
            if network:
                work += credited / network
        append(_COPY_TRAILER)
        minute_rows = [_COPY_HEADER]
        for (address, worker, minute), (shares, difficulty_sum, last) in minutes.items():
            minute_rows.append(_MINUTE_COUNT + pool_field + _text_field(address) + _text_field(worker)
                               + _MINUTE_FIELDS(8, minute - _PG_EPOCH_US, 8, shares, 8, difficulty_sum,
                                                8, last - _PG_EPOCH_US))
        minute_rows.append(_COPY_TRAILER)
        return ShareCopy(b"".join(parts), b"".join(minute_rows), len(batch), work)

    def _share_struct(self, share_id_size: int) -> Callable[..., bytes]:
        pack = self._share_structs[share_id_size] = struct.Struct(_SHARE_FIELDS.format(share_id_size)).pack
        return pack


def _text_field(value: str) -> bytes:
    data = value.encode()
    return _TEXT_LENGTH(len(data)) + data


def shares_entry(rows: list[tuple]) -> dict:
    """The spill file entry of a batch of share rows."""
    return {"kind": "shares", "rows": [[_jsonable(v) for v in row] for row in rows]}


def block_entry(block: BlockRecord) -> dict:
    """The spill file entry of a block record."""
    return {"kind": "block", **{name: _jsonable(getattr(block, name)) for name in BlockRecord.__slots__}}


class SpillFile:
    """Append-only JSON lines, one batch a line, fsync'd; replayed files are renamed first."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "spill.jsonl"

    def append(self, entry: dict) -> int:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(entry) + b"\n"
        with open(self.path, "ab") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return len(line)

    def pending_files(self) -> list[Path]:
        if not self.directory.exists():
            return []
        return sorted(self.directory.glob("spill.replaying-*.jsonl"))

    def rotate(self) -> Path | None:
        """Move the live spill aside for replay (new spills go to a fresh file)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return None
        target = self.directory / f"spill.replaying-{time.time_ns()}.jsonl"
        os.replace(self.path, target)
        return target

    def size(self) -> int:
        total = 0
        for path in [self.path, *self.pending_files()]:
            try:
                total += path.stat().st_size
            except FileNotFoundError:
                pass
        return total

    @staticmethod
    def read(path: Path) -> list[dict]:
        """Entries of a spill file; a torn last line (crash while appending) is skipped."""
        entries = []
        with open(path, "rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.endswith(b"\n"):
                    logger.warning("spill %s: ignoring a torn last line %d", path, number)
                    break
                try:
                    entries.append(orjson.loads(line))
                except orjson.JSONDecodeError:
                    logger.error("spill %s: line %d is not JSON; skipped", path, number)
        return entries


class PostgresRecorder:
    """The Recorder that keeps the ledger in PostgreSQL (see the module docstring)."""

    def __init__(self, pool: asyncpg.Pool, pool_name: str, spill_dir: str | Path, *,
                 flush_interval_s: float = 1.0, batch_size: int = 5000, write_timeout_s: float = 10.0,
                 replay_interval_s: float = 2.0, on_block: Any = None) -> None:
        self.db = pool
        self.pool_name = pool_name
        self.encoder = ShareCopyEncoder(pool_name)
        self.spill = SpillFile(Path(spill_dir))
        self.flush_interval_s = flush_interval_s
        self.batch_size = batch_size
        self.write_timeout_s = write_timeout_s
        self.replay_interval_s = replay_interval_s
        self.on_block = on_block
        self._buffer: list[ShareRecord] = []
        self._wakeup = asyncio.Event()
        self._flusher: asyncio.Task | None = None
        self._replayer: asyncio.Task | None = None
        self._block_tasks: set[asyncio.Task] = set()
        self._write_lock = asyncio.Lock()
        self._stopping = False
        self.healthy = True
        self.stats = {"shares_written": 0, "shares_duplicate": 0, "batches_spilled": 0, "shares_spilled": 0,
                      "spill_replays": 0, "blocks_written": 0, "blocks_spilled": 0, "write_errors": 0}

    # -- Recorder interface ----------------------------------------------------------------

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop(), name="ledger-flush")
        self._replayer = asyncio.create_task(self._replay_loop(), name="ledger-replay")

    async def stop(self) -> None:
        """Flush everything (to PostgreSQL or the spill) and stop; what is pending is kept on disk.

        The flusher is not cancelled in the middle of a write: it finishes the batch in hand."""
        self._stopping = True
        self._wakeup.set()
        if self._flusher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._flusher), self.write_timeout_s + 5)
            except TimeoutError:
                self._flusher.cancel()  # a batch cancelled mid-write goes to the spill
                try:
                    await self._flusher
                except asyncio.CancelledError:
                    pass
        if self._replayer is not None:
            self._replayer.cancel()  # a replay cancelled mid-way leaves its file: replayed at next start
            try:
                await self._replayer
            except asyncio.CancelledError:
                pass
        while self._block_tasks:
            await asyncio.gather(*list(self._block_tasks), return_exceptions=True)
        await self.flush()

    def record_share(self, share: ShareRecord) -> None:
        self._buffer.append(share)
        if len(self._buffer) >= self.batch_size:
            self._wakeup.set()

    def record_block(self, block: BlockRecord) -> None:
        task = asyncio.ensure_future(self._write_block(block))
        self._block_tasks.add(task)
        task.add_done_callback(self._block_tasks.discard)

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # -- shares ----------------------------------------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wakeup.wait(), self.flush_interval_s)
            except TimeoutError:
                pass
            self._wakeup.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # the spill itself failed (disk full?): keep trying, loudly
                logger.exception("ALERT: could not flush shares")
            if self._stopping:
                return

    async def flush(self) -> None:
        """Write what is buffered: to PostgreSQL when it answers in time, else to the spill.

        A batch leaves memory only committed or spilled: cancelled mid-write (shutdown), or failing
        in any way, it goes to the spill, whose replay stores it once whether or not it committed."""
        while self._buffer:
            batch, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size:]
            try:
                await self.write_fields([share_fields(share) for share in batch])
            except OSError:
                self._buffer[:0] = batch  # the disk failed too: keep them in memory, try again
                raise

    async def write_fields(self, batch: list[tuple]) -> None:
        """One batch of shares, each as its record's fields (`share_fields` order), to PostgreSQL when
        it answers in time, else to the spill.

        Returns once the batch is committed or spilled; raises OSError only when the spill failed too."""
        if self.healthy:
            try:
                await self._copy_shares(batch)
                return
            except asyncio.CancelledError:
                self._spill_shares([share_row_of_fields(fields, self.pool_name) for fields in batch])
                raise
            except Exception as exc:
                self._went_away(exc)
        self._spill_shares([share_row_of_fields(fields, self.pool_name) for fields in batch])

    async def _copy_shares(self, batch: list[tuple]) -> int:
        """The batch in one binary COPY straight into shares, and its sums; through the staging table
        with ON CONFLICT DO NOTHING when a share of it is stored already (a retry or a replay)."""
        copy = self.encoder.encode(batch)
        async with self._write_lock:
            async with asyncio.timeout(self.write_timeout_s):
                async with self.db.acquire() as conn:
                    try:
                        async with conn.transaction():
                            await conn.copy_to_table("shares", source=memoryview(copy.shares), columns=COPY_COLUMNS,
                                                     format="binary")
                            await conn.execute(_CREATE_MINUTES_STAGING)
                            await conn.copy_to_table("worker_minutes_staging", source=memoryview(copy.minutes),
                                                     columns=MINUTE_COLUMNS, format="binary")
                            await conn.execute(_ADD_AGGREGATES, self.pool_name, copy.work, copy.count)
                        inserted = copy.count
                    except asyncpg.UniqueViolationError:
                        async with conn.transaction():
                            await conn.execute(_CREATE_STAGING)
                            await conn.copy_to_table("shares_staging", source=memoryview(copy.shares),
                                                     columns=COPY_COLUMNS, format="binary")
                            inserted = await conn.fetchval(_INSERT_FROM_STAGING)
        self.stats["shares_written"] += inserted
        self.stats["shares_duplicate"] += copy.count - inserted
        return inserted

    async def _write_shares(self, rows: list[tuple]) -> int:
        async with self._write_lock:
            async with asyncio.timeout(self.write_timeout_s):
                async with self.db.acquire() as conn:
                    async with conn.transaction():
                        await conn.execute(_CREATE_STAGING)
                        await conn.copy_records_to_table("shares_staging", records=rows, columns=SHARE_COLUMNS)
                        try:
                            async with conn.transaction():  # a savepoint
                                inserted = await conn.fetchval(_INSERT_NEW_FROM_STAGING)
                        except asyncpg.UniqueViolationError:
                            inserted = await conn.fetchval(_INSERT_FROM_STAGING)
        self.stats["shares_written"] += inserted
        self.stats["shares_duplicate"] += len(rows) - inserted
        return inserted

    def _spill_shares(self, rows: list[tuple]) -> None:
        self.spill.append(shares_entry(rows))
        self.stats["batches_spilled"] += 1
        self.stats["shares_spilled"] += len(rows)

    def _went_away(self, exc: BaseException) -> None:
        self.stats["write_errors"] += 1
        if self.healthy:
            logger.error("ALERT: PostgreSQL is not taking writes (%s: %s); spilling to %s until it is back",
                         type(exc).__name__, exc, self.spill.path)
        self.healthy = False

    # -- blocks ----------------------------------------------------------------------------

    async def write_block(self, block: BlockRecord) -> None:
        """One block row now, in its own transaction; to the spill when PostgreSQL does not take it."""
        await self._write_block(block)

    async def _write_block(self, block: BlockRecord) -> None:
        entry = block_entry(block)
        if self.healthy:
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    await self._apply_block(entry)
                self.stats["blocks_written"] += 1
                if self.on_block is not None:
                    self.on_block(block)
                return
            except asyncio.CancelledError:
                self.spill.append(entry)
                raise
            except Exception as exc:
                self._went_away(exc)
        self.spill.append(entry)
        self.stats["blocks_spilled"] += 1
        logger.error("ALERT: block %s at height %d kept in the spill file until PostgreSQL is back",
                     block.hash, block.height)

    async def _apply_block(self, entry: dict) -> None:
        """Insert or advance one block row in its own transaction (idempotent)."""
        status = _BLOCK_STATUS.get(entry["status"], "pending")
        async with self.db.acquire() as conn:
            async with conn.transaction():
                await conn.execute(
                    """INSERT INTO blocks (pool, height, hash, status, reward, finder_address, finder_worker,
                                           share_difficulty, network_difficulty, submit_detail, created,
                                           stale)
                       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                       ON CONFLICT (hash) DO NOTHING""",
                    self.pool_name, entry["height"], entry["hash"], status, entry["reward"], entry["address"],
                    entry["worker"], entry["actual_difficulty"], entry["network_difficulty"], entry["detail"],
                    _timestamp(entry["created"]), bool(entry.get("stale", False)),  # older spills: False
                )
                if entry["status"] == "candidate":
                    return
                row = await conn.fetchrow("SELECT status, effort FROM blocks WHERE hash = $1 FOR UPDATE", entry["hash"])
                if row["status"] in ("confirmed",):
                    return  # the tracker has moved it on already
                if entry["status"] == "accepted" and row["effort"] is None:
                    # The block ends the round: its effort is the round's work, and a new round starts.
                    work = await conn.fetchval(
                        """INSERT INTO rounds (pool) VALUES ($1) ON CONFLICT (pool) DO UPDATE SET pool = excluded.pool
                           RETURNING work""", self.pool_name)
                    await conn.execute("UPDATE rounds SET work = 0, shares = 0, started = now() WHERE pool = $1",
                                       self.pool_name)
                    await conn.execute("UPDATE blocks SET effort = $2 WHERE hash = $1", entry["hash"], work)
                await conn.execute(
                    "UPDATE blocks SET status = $2, submit_detail = $3, updated = now() WHERE hash = $1 AND status = 'pending'",
                    entry["hash"], status, entry["detail"],
                )

    # -- replay ----------------------------------------------------------------------------

    async def _replay_loop(self) -> None:
        while True:
            if not self.healthy or self.spill.size():
                try:
                    await self.replay()
                except Exception as exc:  # PostgreSQL still away: try again later
                    logger.debug("spill replay not possible yet: %s", exc)
            await asyncio.sleep(self.replay_interval_s)

    async def replay(self) -> int:
        """Write every spilled batch and block to PostgreSQL; delete each file after its commit."""
        async with asyncio.timeout(self.write_timeout_s):
            async with self.db.acquire() as conn:
                await conn.fetchval("SELECT 1")
        self.spill.rotate()
        replayed = 0
        for path in self.spill.pending_files():
            for entry in SpillFile.read(path):
                if entry.get("kind") == "shares":
                    rows = [_row_from_json(row) for row in entry["rows"]]
                    await self._write_shares(rows)
                    replayed += len(rows)
                elif entry.get("kind") == "block":
                    await self._apply_block(entry)
            path.unlink()
            self.stats["spill_replays"] += 1
            logger.info("replayed spill %s into PostgreSQL", path.name)
        if not self.healthy:
            logger.warning("PostgreSQL takes writes again; the spill has been replayed")
        self.healthy = True
        return replayed


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)




def _jsonable(value: Any) -> Any:
    """Timestamps go to the spill as integer microseconds, so a replay gives back the exact key."""
    if isinstance(value, datetime):
        return {"us": (value - _EPOCH) // _MICROSECOND}
    return value


def _row_from_json(row: list) -> tuple:
    return tuple(_EPOCH + value["us"] * _MICROSECOND if isinstance(value, dict) else value for value in row)
