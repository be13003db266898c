"""The ledger under Stratum load: PostgreSQL stopped for 60 s, made slow, the pool killed.

Miners (real TCP clients) keep submitting throughout; every share a miner saw accepted must be
in the shares table exactly once.  Crash steps covered: PostgreSQL away (spill, replay), slow
(write timeout, spill, replay; a commit the pool did not see plus its replay stores it once),
SIGTERM (final flush), SIGKILL (loss bounded by one flush interval, measured).
"""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

import pytest
from ledger_pool import USER, start_pool, stop_pool
from stratum_client import Client

OUTAGE_S = float(os.environ.get("QUARRY_OUTAGE_S", "60"))


class Miners:
    """N connections submitting unique shares as fast as answers come; counts what was accepted."""

    def __init__(self, port: int, count: int = 8) -> None:
        self.port = port
        self.count = count
        self.accepted_at: list[float] = []
        self.errors: list = []
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        for n in range(self.count):
            client = await Client.connect(self.port)
            info = await client.handshake(USER)
            self.tasks.append(asyncio.ensure_future(self._mine(client, info["job"], n)))

    async def _mine(self, client: Client, job: list, n: int) -> None:
        nonce = 0
        try:
            while not self.stop.is_set():
                nonce += 1
                answer = await client.request("mining.submit", [USER, job[0], f"{n:08x}", job[7], f"{nonce:08x}"],
                                              timeout=30)
                if answer["result"] is True:
                    self.accepted_at.append(time.monotonic())
                else:
                    self.errors.append(answer["error"])
                await asyncio.sleep(0.002)
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            await client.close()

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    @property
    def accepted(self) -> int:
        return len(self.accepted_at)


async def stored(dsn: str) -> tuple[int, int]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        # One statement, one snapshot: a writer still committing (the orphaned writer after a SIGKILL)
        # must not be seen between the count of shares and that of their aggregates.
        rows, distinct, minutes = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM shares), (SELECT count(DISTINCT share_id) FROM shares),"
            " (SELECT coalesce(sum(shares), 0) FROM worker_minutes)")
        assert minutes == rows  # aggregates count each stored share once
        return rows, distinct
    finally:
        await conn.close()


async def wait_replayed(recorder, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if recorder.healthy and not recorder.spill.size() and not recorder.buffered:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"spill not replayed: {recorder.stats}")


async def test_postgres_stopped_for_a_minute_under_load(pg_server, dsn, tmp_path):
    server, recorder, db = await start_pool(dsn, str(tmp_path))
    miners = Miners(server.ports[0])
    await miners.start()
    try:
        await asyncio.sleep(2)
        await asyncio.to_thread(pg_server.pause)
        before = miners.accepted
        await asyncio.sleep(OUTAGE_S)
        during = miners.accepted - before
        await asyncio.to_thread(pg_server.resume)
        await asyncio.sleep(2)
    finally:
        await miners.finish()
        await wait_replayed(recorder)
        await stop_pool(server, recorder, db)
    assert during > 100, "mining went on while PostgreSQL was away"
    assert miners.errors == []
    assert recorder.stats["batches_spilled"] > 0 and recorder.stats["spill_replays"] > 0
    rows, distinct = await stored(dsn)
    assert rows == distinct == miners.accepted == server.stats["shares_accepted"]
    print(f"\n{miners.accepted} shares accepted, {during} of them during a {OUTAGE_S:g} s outage; "
          f"{recorder.stats['shares_spilled']} spilled and replayed; {rows} rows stored")


async def test_postgres_slow_under_load(pg_server, dsn, tmp_path):
    server, recorder, db = await start_pool(dsn, str(tmp_path), write_timeout_s=1.0)
    miners = Miners(server.ports[0])
    await miners.start()
    database = dsn.rsplit("/", 1)[1]
    try:
        await asyncio.sleep(1)
        async with pg_server.lock_table("shares", database=database):
            await asyncio.sleep(10)
        await asyncio.sleep(2)
    finally:
        await miners.finish()
        await wait_replayed(recorder)
        await stop_pool(server, recorder, db)
    assert miners.errors == []
    assert recorder.stats["shares_spilled"] > 0
    rows, distinct = await stored(dsn)
    assert rows == distinct == miners.accepted


async def run_pool_process(dsn: str, spill_dir: str, writer: str = "in-process"):
    process = await asyncio.create_subprocess_exec(
        # -P: the script's folder (tests/) must not shadow the packages of the same names
        sys.executable, "-P", os.path.join(os.path.dirname(__file__), "..", "..", "ledger_pool.py"), dsn, spill_dir,
        writer, stdout=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
    assert line.startswith("PORT "), line
    return process, int(line.split()[1])


WRITERS = pytest.mark.parametrize("writer", ["in-process", "process"])


@WRITERS
async def test_sigterm_flushes_everything(dsn, tmp_path, writer):
    process, port = await run_pool_process(dsn, str(tmp_path), writer)
    miners = Miners(port)
    await miners.start()
    await asyncio.sleep(3)
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 30) == 0
    await miners.finish()
    rows, distinct = await stored(dsn)
    # Answers in flight when the server closed may not have reached the miners; nothing accepted is lost.
    assert rows == distinct >= miners.accepted > 0
    assert rows - miners.accepted <= miners.count
    assert not list(tmp_path.iterdir())


@WRITERS
async def test_sigkill_loses_at_most_one_flush_interval(dsn, tmp_path, writer):
    """With the writer process, the killed pool's writer still stores what it was sent, then ends."""
    flush_interval_s = 0.5  # ledger_pool.py's
    process, port = await run_pool_process(dsn, str(tmp_path), writer)
    miners = Miners(port)
    await miners.start()
    await asyncio.sleep(3)
    killed_at = time.monotonic()
    process.kill()
    await process.wait()
    await miners.finish()
    rows, distinct = await stored(dsn)
    if writer == "process":  # the orphaned writer stores the batches it was sent, then ends
        for _ in range(40):
            await asyncio.sleep(0.5)
            before, (rows, distinct) = rows, await stored(dsn)
            if rows == before:
                break
    lost = miners.accepted - rows
    recent = sum(1 for t in miners.accepted_at if t > killed_at - flush_interval_s - 0.25)
    print(f"\nSIGKILL: {miners.accepted} accepted, {rows} stored, {lost} lost; "
          f"{recent} were accepted in the last flush interval")
    assert rows == distinct
    assert 0 <= lost <= recent


async def test_redis_killed_and_flushed_mid_run(dsn, tmp_path):
    """Statistics are not money: Redis dying, coming back empty, nothing reaches the miners, no share is lost."""
    from pool.devtools.redisserver import RedisServer
    from pool.stats.redis_store import RedisStats

    with RedisServer() as redis_server:
        stats = RedisStats.from_url(redis_server.url, "litecoin-regtest", flush_interval_s=0.2)
        server, recorder, db = await start_pool(dsn, str(tmp_path), stats=stats)
        miners = Miners(server.ports[0])
        await miners.start()
        try:
            await asyncio.sleep(1.5)
            assert await stats.hashrate("litecoin-regtest", window_s=300) >= 0
            await asyncio.to_thread(redis_server.kill)
            await asyncio.sleep(2)
            await asyncio.to_thread(redis_server.restart)
            await asyncio.sleep(1)
            await asyncio.to_thread(redis_server.flushall)
            await asyncio.sleep(1.5)
        finally:
            await miners.finish()
            await wait_replayed(recorder)
            await stop_pool(server, recorder, db)
        assert miners.errors == [] and server.stats["internal_error"] == 0
        assert stats.counters["push_failures"] > 0  # it did notice the outage
        assert stats.healthy
        rows, distinct = await stored(dsn)
        assert rows == distinct == miners.accepted > 0


async def test_pool_rebuilds_flushed_statistics_from_the_ledger(pg_server, dsn, tmp_path):
    """run_pool's watcher notices Redis came back empty and reloads the per-minute aggregates."""
    import asyncpg

    from pool.app import watch_stats_store
    from pool.devtools.redisserver import RedisServer
    from pool.stats.redis_store import RedisStats

    conn = await asyncpg.connect(dsn)
    await conn.execute(
        """INSERT INTO worker_minutes VALUES ('litecoin-regtest', 'addr', 'rig', date_trunc('minute', now()) - interval '3 minutes',
           10, 655.36, now() - interval '3 minutes')""")
    db = await asyncpg.create_pool(dsn)
    with RedisServer() as redis_server:
        stats = RedisStats.from_url(redis_server.url, "litecoin-regtest")
        await stats.start()
        watcher = asyncio.ensure_future(watch_stats_store(stats, db, "litecoin-regtest", interval_s=0.2))
        try:
            async def rate():
                return await stats.hashrate("litecoin-regtest", window_s=300)
            for _ in range(50):
                if await rate() > 0:
                    break
                await asyncio.sleep(0.1)
            first = await rate()
            assert first > 0
            await asyncio.to_thread(redis_server.flushall)
            assert await rate() == 0
            for _ in range(50):
                await asyncio.sleep(0.1)
                if await rate() == first:
                    break
            assert await rate() == first
        finally:
            watcher.cancel()
            await stats.stop()
            await db.close()
            await conn.close()
