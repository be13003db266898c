"""The ledger written by its own process (pool.ledger.writer), on a real PostgreSQL.

The same guarantees as the in-process recorder: a batch leaves the pool only once the writer has
committed or spilled it; a writer that dies has its unacknowledged batches spilled by the pool and is
replaced, and the new writer replays the spill (stored once); stop sends and stores everything.
"""
from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from pool.ledger.recorder import BlockRecord, ShareRecord
from pool.ledger.store import SpillFile
from pool.ledger.writer import LedgerProcess

START = time.time()


def share(n: int, *, worker="rig1", difficulty=2.0) -> ShareRecord:
    return ShareRecord(
        share_id=f"07proc{n:012x}", created=START + n * 0.001237, address="ltc1qminer", worker=worker,
        credited_difficulty=difficulty, actual_difficulty=difficulty * 3, network_difficulty=1000.0, height=100,
        coinbase_value=625_000_000, node_id=7, ip="127.0.0.1", is_block=False,
    )


async def counts(db) -> tuple[int, int, float]:
    rows = await db.fetchval("SELECT count(*) FROM shares")
    minute_shares = await db.fetchval("SELECT coalesce(sum(shares), 0) FROM worker_minutes")
    work = await db.fetchval("SELECT coalesce(sum(work), 0) FROM rounds")
    return rows, minute_shares, work


async def settled(recorder: LedgerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if recorder.healthy and not recorder.spill.size() and not recorder.buffered:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not settled: {recorder.stats}")


async def test_batches_are_written_once(dsn, db, tmp_path):
    recorder = LedgerProcess(dsn, "litecoin", tmp_path, batch_size=1000)
    await recorder.start()
    try:
        for n in range(2500):
            recorder.record_share(share(n))
        await recorder.flush()
        assert recorder.buffered == 0
        assert await counts(db) == (2500, 2500, pytest.approx(5.0))
        for n in range(2500):  # the same shares again: stored and counted once
            recorder.record_share(share(n))
        await recorder.flush()
        assert await counts(db) == (2500, 2500, pytest.approx(5.0))
    finally:
        await recorder.stop()
    assert recorder.stats["shares_written"] == 2500 and recorder.stats["shares_duplicate"] == 2500
    assert not tmp_path.joinpath("spill.jsonl").exists()


async def test_stop_stores_what_is_buffered(dsn, db, tmp_path):
    recorder = LedgerProcess(dsn, "litecoin", tmp_path, flush_interval_s=30)
    await recorder.start()
    for n in range(777):
        recorder.record_share(share(n))
    recorder.record_block(BlockRecord(height=100, hash="ab" * 32, created=time.time(), address="ltc1qminer",
                                      worker="rig1", status="candidate", reward=625_000_000,
                                      actual_difficulty=5000.0, network_difficulty=1000.0))
    await recorder.stop()
    assert (await counts(db))[0] == 777
    assert await db.fetchval("SELECT status FROM blocks WHERE hash = $1", "ab" * 32) == "pending"
    assert recorder.stats["blocks_written"] == 1


async def test_writer_killed_its_batches_are_spilled_and_replayed(dsn, db, tmp_path):
    recorder = LedgerProcess(dsn, "litecoin", tmp_path, flush_interval_s=0.1, restart_delay_s=0.2)
    await recorder.start()
    try:
        first = recorder._process.pid
        for n in range(300):
            recorder.record_share(share(n))
        os.kill(first, signal.SIGKILL)
        for n in range(300, 3000):  # mining goes on while no writer runs
            recorder.record_share(share(n))
            if n % 100 == 0:
                await asyncio.sleep(0.01)
        await settled(recorder)
        assert recorder._process.pid != first and recorder.stats["writer_restarts"] == 1
        await recorder.flush()
        assert await counts(db) == (3000, 3000, pytest.approx(6.0))
    finally:
        await recorder.stop()
    assert list(tmp_path.iterdir()) == []


async def test_postgres_away_spills_then_replays(dsn, db, pg_server, tmp_path):
    recorder = LedgerProcess(dsn, "litecoin", tmp_path, flush_interval_s=0.1, write_timeout_s=1.0,
                             replay_interval_s=0.2)
    await recorder.start()
    try:
        await asyncio.to_thread(pg_server.pause)
        try:
            for n in range(400):
                recorder.record_share(share(n))
            started = time.monotonic()
            await recorder.flush()
            assert time.monotonic() - started < 5
            assert recorder.healthy is False and recorder.buffered == 0
            assert sum(len(entry["rows"]) for entry in SpillFile.read(tmp_path / "spill.jsonl")) == 400
        finally:
            await asyncio.to_thread(pg_server.resume)
        await settled(recorder)
        assert await counts(db) == (400, 400, pytest.approx(0.8))
    finally:
        await recorder.stop()


async def test_writer_ignores_group_signals_and_ends_with_its_input(dsn, db, tmp_path):
    """SIGTERM to the whole process group does not lose the last batch; the pool decides the end."""
    recorder = LedgerProcess(dsn, "litecoin", tmp_path, flush_interval_s=30)
    await recorder.start()
    process = recorder._process
    for n in range(50):
        recorder.record_share(share(n))
    os.kill(process.pid, signal.SIGTERM)
    await asyncio.sleep(0.3)
    assert process.returncode is None
    await recorder.stop()
    assert process.returncode == 0
    assert (await counts(db))[0] == 50


POOL = """
import asyncio, sys, time
from pool.ledger.writer import LedgerProcess
from pool.ledger.recorder import ShareRecord

async def main(dsn, spill_dir):
    recorder = LedgerProcess(dsn, "litecoin", spill_dir, flush_interval_s=30)
    await recorder.start()
    for n in range(2000):
        recorder.record_share(ShareRecord(
            share_id=f"07kill{n:012x}", created=time.time(), address="ltc1qminer", worker="rig1",
            credited_difficulty=2.0, actual_difficulty=6.0, network_difficulty=1000.0, height=100,
            coinbase_value=625_000_000, node_id=7, ip="127.0.0.1", is_block=False))
    await recorder._send_buffer()  # handed down the pipe; the pool dies before any answer counts
    print(recorder._process.pid, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_killed_pools_writer_stores_what_it_was_sent_then_ends(dsn, db, tmp_path):
    """SIGKILL of the pool: the writer reads the end of its input, stores what it had been sent, and exits
    (it must not die with the pool: that would lose more than the pool's own buffer)."""
    import sys

    pool = await asyncio.create_subprocess_exec(sys.executable, "-c", POOL, dsn, str(tmp_path),
                                                stdout=asyncio.subprocess.PIPE)
    writer = int(await asyncio.wait_for(pool.stdout.readline(), 60))
    pool.kill()
    await pool.wait()

    def running() -> bool:
        try:
            with open(f"/proc/{writer}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    async with asyncio.timeout(30):
        while running():
            await asyncio.sleep(0.05)
    assert (await counts(db))[0] == 2000
