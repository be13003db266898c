"""The share ledger on a real PostgreSQL: batches, idempotence, the spill file, blocks.

Crash safety, step by step:
- a batch is handed over only after COMMIT or after its spill line was fsync'd: a crash before
  either leaves it in memory (lost only on SIGKILL: at most one flush interval, see the docs);
- a commit that the client did not see (timeout during COMMIT) plus the spilled copy replayed
  later store the shares once (unique share ids, ON CONFLICT DO NOTHING) and count them once
  in the aggregates (only inserted rows are counted);
- a crash during replay leaves the spill file in place (deleted only after its commit):
  replaying it again changes nothing (test_spill_replayed_twice).
"""
from __future__ import annotations

import asyncio
import random
import shutil
import time
from datetime import UTC, datetime

import pytest

from pool.ledger.recorder import BlockRecord, ShareRecord, share_fields
from pool.ledger.store import (
    PostgresRecorder,
    SpillFile,
    share_row_of_fields,
    shares_entry,
    timestamp_microseconds,
)

START = time.time()


def share(n: int, *, worker="rig1", created=None, difficulty=2.0) -> ShareRecord:
    """Share n is the same record each time it is made (a retry or a replay of it)."""
    return ShareRecord(
        share_id=f"07test{n:012x}", created=created or START + n * 0.001237, address="ltc1qminer", worker=worker,
        credited_difficulty=difficulty, actual_difficulty=difficulty * 3, network_difficulty=1000.0, height=100,
        coinbase_value=625_000_000, node_id=7, ip="127.0.0.1", is_block=False,
    )


async def counts(db) -> tuple[int, int, float, float]:
    rows = await db.fetchval("SELECT count(*) FROM shares")
    minute_shares = await db.fetchval("SELECT coalesce(sum(shares), 0) FROM worker_minutes")
    minute_diff = await db.fetchval("SELECT coalesce(sum(difficulty_sum), 0) FROM worker_minutes")
    work = await db.fetchval("SELECT coalesce(sum(work), 0) FROM rounds")
    return rows, minute_shares, minute_diff, work


async def test_batches_are_written_once(db, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, batch_size=1000)
    for n in range(2500):
        recorder.record_share(share(n))
    await recorder.flush()
    assert await counts(db) == (2500, 2500, 5000.0, pytest.approx(5.0))
    assert recorder.stats["shares_written"] == 2500
    # The same shares again (a retried batch): stored and counted once.
    for n in range(2500):
        recorder.record_share(share(n))
    await recorder.flush()
    assert await counts(db) == (2500, 2500, 5000.0, pytest.approx(5.0))
    assert recorder.stats["shares_duplicate"] == 2500
    assert not tmp_path.joinpath("spill.jsonl").exists()


async def test_flush_by_time_and_by_count(db, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, flush_interval_s=0.2, batch_size=100)
    await recorder.start()
    try:
        recorder.record_share(share(1))
        await asyncio.sleep(0.6)
        assert (await counts(db))[0] == 1  # by time
        for n in range(2, 102):
            recorder.record_share(share(n))
        await asyncio.sleep(0.05)
        assert (await counts(db))[0] >= 101  # by count, before the interval
    finally:
        await recorder.stop()


async def test_postgres_away_spills_then_replays(db, pg_server, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, write_timeout_s=1.0, replay_interval_s=0.2)
    await recorder.start()
    try:
        await asyncio.to_thread(pg_server.pause)
        for n in range(300):
            recorder.record_share(share(n))
        await recorder.flush()
        assert recorder.healthy is False and recorder.buffered == 0
        spilled = SpillFile.read(tmp_path / "spill.jsonl")
        assert sum(len(entry["rows"]) for entry in spilled) == 300
        for n in range(300, 400):  # mining goes on while PostgreSQL is away
            recorder.record_share(share(n))
        await recorder.flush()
        await asyncio.to_thread(pg_server.resume)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if recorder.healthy and not recorder.spill.size():
                break
        assert recorder.healthy
        assert await counts(db) == (400, 400, 800.0, pytest.approx(0.8))
        assert list(tmp_path.iterdir()) == []  # the spill is deleted only after the replay committed
    finally:
        await recorder.stop()


async def test_spill_replayed_twice(db, tmp_path):
    """A crash after the replay committed but before the file was deleted: replaying again is harmless."""
    spill = SpillFile(tmp_path)
    recorder = PostgresRecorder(db, "litecoin", tmp_path)
    for n in range(50):
        recorder.record_share(share(n))
    recorder.healthy = False
    await recorder.flush()  # to the spill
    keep = tmp_path / "copy.jsonl"
    shutil.copy(spill.path, keep)
    await recorder.replay()
    first = await counts(db)
    shutil.copy(keep, spill.path)
    await recorder.replay()
    assert await counts(db) == first == (50, 50, 100.0, pytest.approx(0.1))


def test_timestamp_microseconds_rounds_as_datetime():
    """The binary COPY's time of a share is the one its spilled copy gets through datetime: same key."""
    rng = random.Random(7)
    values = [START, 0.0, 1.5, -1.5, 0.9999995, 1.0000005, 1700000000.0000005, 1700000000.9999996, -0.0000005]
    values += [rng.uniform(0, 4e9) for _ in range(20_000)]
    values += [round(rng.uniform(1.6e9, 1.8e9), 6) + rng.choice((-5e-7, 5e-7, 0.0)) for _ in range(20_000)]
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    for value in values:
        expected = (datetime.fromtimestamp(value, tz=UTC) - epoch) // datetime.resolution
        assert timestamp_microseconds(value) == expected, value


async def test_copied_batch_replayed_from_the_spill_is_stored_once(db, tmp_path):
    """A batch committed by the binary COPY, then replayed from a spill (a commit the writer did not see)."""
    recorder = PostgresRecorder(db, "litecoin", tmp_path)
    shares = [share(n, created=START + n * 0.0012345678) for n in range(300)]
    for record in shares:
        recorder.record_share(record)
    await recorder.flush()
    first = await counts(db)
    assert first == (300, 300, 600.0, pytest.approx(0.6))
    recorder.spill.append(shares_entry([share_row_of_fields(share_fields(r), "litecoin") for r in shares]))
    await recorder.replay()
    assert await counts(db) == first
    assert recorder.stats["shares_duplicate"] == 300


async def test_copy_and_staging_store_the_same_rows_and_sums(db, tmp_path):
    """The sums the writer computes for a batch copied straight into shares are the staging statement's."""
    rng = random.Random(3)
    records = [share(n, worker=f"rig{n % 7}", created=START + rng.uniform(0, 300), difficulty=rng.uniform(0.1, 9.0))
               for n in range(2000)]
    copied = PostgresRecorder(db, "copied", tmp_path / "a", batch_size=700)
    for record in records:
        copied.record_share(record)
    await copied.flush()
    staged = PostgresRecorder(db, "staged", tmp_path / "b")
    for start in range(0, len(records), 700):
        rows = [share_row_of_fields(share_fields(r), "staged") for r in records[start:start + 700]]
        rows = [(row[0].replace("07test", "07stag"), *row[1:]) for row in rows]
        await staged._write_shares(rows)
    minutes = "SELECT address, worker, minute, shares, difficulty_sum, last_share FROM worker_minutes WHERE pool = $1 ORDER BY 1, 2, 3"
    assert [tuple(r) for r in await db.fetch(minutes, "copied")] == [tuple(r) for r in await db.fetch(minutes, "staged")]
    rounds = "SELECT work, shares FROM rounds WHERE pool = $1"
    assert tuple(await db.fetchrow(rounds, "copied")) == tuple(await db.fetchrow(rounds, "staged"))
    columns = "created, address, worker, credited_difficulty, actual_difficulty, network_difficulty, height, " \
              "coinbase_value, node_id, ip, is_block"
    stored = f"SELECT substr(share_id, 7), {columns} FROM shares WHERE pool = $1 ORDER BY 1"
    assert [tuple(r) for r in await db.fetch(stored, "copied")] == [tuple(r) for r in await db.fetch(stored, "staged")]


async def test_torn_last_line_is_skipped(db, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path)
    recorder.healthy = False
    for n in range(10):
        recorder.record_share(share(n))
    await recorder.flush()
    with open(recorder.spill.path, "ab") as handle:
        handle.write(b'{"kind": "shares", "rows": [["07tor')  # a crash in the middle of an append
    await recorder.replay()
    assert (await counts(db))[0] == 10


async def test_slow_postgres_spills_and_nothing_is_doubled(db, pg_server, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, write_timeout_s=0.5, replay_interval_s=0.2)
    await recorder.start()
    database = db._connect_kwargs.get("database") or (await db.fetchval("SELECT current_database()"))
    try:
        async with pg_server.lock_table("shares", database=database):
            for n in range(200):
                recorder.record_share(share(n))
            started = time.monotonic()
            await recorder.flush()
            assert time.monotonic() - started < 3  # the miners' side is never held up for long
            assert recorder.stats["shares_spilled"] == 200
        for _ in range(100):
            await asyncio.sleep(0.1)
            if recorder.healthy and not recorder.spill.size():
                break
        assert await counts(db) == (200, 200, 400.0, pytest.approx(0.4))
    finally:
        await recorder.stop()


def block(status: str, **changes) -> BlockRecord:
    record = BlockRecord(height=100, hash="ab" * 32, created=time.time(), address="ltc1qminer", worker="rig1",
                         status=status, reward=625_000_000, actual_difficulty=5000.0, network_difficulty=1000.0)
    for name, value in changes.items():
        setattr(record, name, value)
    return record


async def test_block_rows_and_round_effort(db, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path)
    for n in range(500):
        recorder.record_share(share(n))  # 500 x 2 / 1000 = effort 1.0
    await recorder.flush()
    recorder.record_block(block("candidate"))
    await recorder.stop()
    row = await db.fetchrow("SELECT * FROM blocks")
    assert row["status"] == "pending" and row["reward"] == 625_000_000 and row["effort"] is None
    recorder.record_block(block("accepted", detail="accepted, accepted"))
    recorder.record_block(block("accepted", detail="accepted, accepted"))  # twice: still one round end
    await recorder.stop()
    row = await db.fetchrow("SELECT * FROM blocks")
    assert row["effort"] == pytest.approx(1.0) and row["submit_detail"] == "accepted, accepted"
    assert await db.fetchval("SELECT work FROM rounds WHERE pool = 'litecoin'") == 0
    # A candidate the daemons did not take as their tip: pending (only the block tracker calls a
    # block orphaned), and the round goes on.  An "orphaned" from an older spill file is pending too.
    recorder.record_block(block("candidate", hash="cd" * 32))
    recorder.record_block(block("submitted", hash="cd" * 32, detail="inconclusive, inconclusive"))
    recorder.record_block(block("orphaned", hash="ce" * 32, detail="inconclusive"))
    await recorder.stop()
    rows = await db.fetch("SELECT hash, status, effort, submit_detail FROM blocks WHERE hash <> $1 ORDER BY hash",
                          "ab" * 32)
    assert [(r["hash"], r["status"], r["effort"], r["submit_detail"]) for r in rows] == [
        ("cd" * 32, "pending", None, "inconclusive, inconclusive"), ("ce" * 32, "pending", None, "inconclusive")]
    assert await db.fetchval("SELECT work FROM rounds WHERE pool = 'litecoin'") == 0
    # A refusal is final at once.
    recorder.record_block(block("candidate", hash="ef" * 32))
    recorder.record_block(block("rejected", hash="ef" * 32, detail="high-hash"))
    await recorder.stop()
    assert await db.fetchval("SELECT status FROM blocks WHERE hash = $1", "ef" * 32) == "rejected"


async def test_block_kept_in_spill_while_postgres_away(db, pg_server, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, write_timeout_s=1.0)
    await asyncio.to_thread(pg_server.pause)
    try:
        recorder.record_block(block("candidate", hash="ef" * 32))
        await recorder.stop()
        assert recorder.stats["blocks_spilled"] == 1
    finally:
        await asyncio.to_thread(pg_server.resume)
    await recorder.replay()
    assert await db.fetchval("SELECT count(*) FROM blocks WHERE hash = $1", "ef" * 32) == 1


async def test_batch_cancelled_mid_write_goes_to_the_spill(db, pg_server, tmp_path):
    """Shutdown cancelling a write in flight: the batch is spilled, never dropped; the replay stores it once."""
    recorder = PostgresRecorder(db, "litecoin", tmp_path, write_timeout_s=30)
    database = await db.fetchval("SELECT current_database()")
    async with pg_server.lock_table("shares", database=database):
        for n in range(20):
            recorder.record_share(share(n))
        flushing = asyncio.ensure_future(recorder.flush())
        await asyncio.sleep(0.5)  # the write is waiting for the lock
        assert recorder.buffered == 0
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing
    assert sum(len(e["rows"]) for e in SpillFile.read(tmp_path / "spill.jsonl")) == 20
    await recorder.replay()
    assert (await counts(db))[0] == 20


async def test_stop_waits_for_the_batch_in_hand(db, pg_server, tmp_path):
    recorder = PostgresRecorder(db, "litecoin", tmp_path, flush_interval_s=0.1, write_timeout_s=10)
    await recorder.start()
    database = await db.fetchval("SELECT current_database()")
    lock = await pg_server.lock_table("shares", database=database).acquire()
    for n in range(30):
        recorder.record_share(share(n))
    await asyncio.sleep(0.3)  # the flusher took the batch and waits for the lock
    stopping = asyncio.ensure_future(recorder.stop())
    await asyncio.sleep(0.5)
    assert not stopping.done()
    await lock.release()
    await stopping
    assert (await counts(db))[0] == 30 and not (tmp_path / "spill.jsonl").exists()
