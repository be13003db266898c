"""Live statistics against a real redis-server (started here) and in memory: exact windows, workers
online, several nodes, round resets, Redis killed / frozen / flushed, and hostile input."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
import tracemalloc
from collections import defaultdict
from datetime import UTC, datetime

import pytest

from pool.devtools.redisserver import RedisServer, RedisServerNotFound, find_redis_server
from pool.ledger.recorder import BlockRecord, ShareRecord
from pool.stats.batch import MAX_NAME_CHARS
from pool.stats.hashrate import SEEN_RETENTION_S, SHA256D_HASHES_PER_DIFFICULTY, hashes_per_difficulty
from pool.stats.memory_store import MemoryStats
from pool.stats.redis_store import RedisStats
from share_validator.bitcoin.coins import SCRYPT, SHA256D

POOL = "ltc"
T0 = 1_700_000_400  # a multiple of 600: a 10-minute bucket (and a minute) starts here
NOW = T0 + 630  # 30 s into the minute that starts at T0 + 600


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = float(now)

    def __call__(self) -> float:
        return self.now


def share(created, address="A", worker="rig1", difficulty=1.0, network=1024.0, **fields) -> ShareRecord:
    values = dict(share_id="n1-1", created=created, address=address, worker=worker,
                  credited_difficulty=difficulty, actual_difficulty=difficulty, network_difficulty=network,
                  height=100, coinbase_value=0, node_id=1, ip="127.0.0.1", is_block=False)
    values.update(fields)
    return ShareRecord(**values)


def block(height, block_hash, status="accepted", created=NOW) -> BlockRecord:
    return BlockRecord(height=height, hash=block_hash, created=created, address="A", worker="rig1",
                       status=status, reward=0, actual_difficulty=1.0, network_difficulty=1.0)


async def wait_until(condition, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def redis_server():
    with RedisServer() as server:  # RedisServerNotFound says how to install redis-server
        yield server


@pytest.fixture
def server(redis_server):
    redis_server.flushall()
    return redis_server


@pytest.fixture
async def make_stats(server):
    """make_stats("redis" | "memory", clock, **options): started stats, stopped after the test."""
    made = []

    async def make(kind, clock, url=None, **options):
        if kind == "redis":
            stats = RedisStats.from_url(url or server.url, POOL, clock=clock, flush_interval_s=0.02,
                                        **options)
        else:
            stats = MemoryStats(POOL, clock=clock, flush_interval_s=0.02, **options)
        await stats.start()
        made.append(stats)
        return stats

    yield make
    for stats in made:
        await stats.stop()


BOTH = pytest.mark.parametrize("kind", ["redis", "memory"])

# -- windows ------------------------------------------------------------------------------------------

KNOWN_SHARES = [
    # In the 5-minute window [T0 + 300, T0 + 600): 7500 for A.rig1, 1500 for A.rig2.
    share(T0 + 310, "A", "rig1", 1875), share(T0 + 420, "A", "rig1", 1875),
    share(T0 + 530, "A", "rig1", 1875), share(T0 + 599, "A", "rig1", 1875),
    share(T0 + 300, "A", "rig2", 1500),
    share(T0 + 299, "B", "rig1", 3600),  # 1 h window [T0 - 3000, T0 + 600) only
    share(T0 + 600, "B", "rig1", 1_000_000),  # the minute being filled: in no window yet
    share(T0 - 3000, "A", "rig1", 5400),  # first second of the 1 h window
    share(T0 - 3001, "A", "rig1", 117_000),  # 24 h window [T0 + 600 - 86400, T0 + 600) only
    share(T0 + 600 - 86400 - 1, "B", "rig1", 7_000_000),  # just before the 24 h window
]


@BOTH
async def test_hashrate_windows_from_known_shares(make_stats, kind):
    stats = await make_stats(kind, Clock())
    for record in KNOWN_SHARES:
        stats.record_share(record)
    assert await stats.flush()

    assert await stats.difficulty_sum(POOL, window_s=300) == 9000
    assert await stats.difficulty_sum(POOL, window_s=3600) == 18_000
    assert await stats.difficulty_sum(POOL, window_s=86400) == 135_000
    # hashrate = difficulty sum * 2**16 / window for scrypt
    assert await stats.hashrate(POOL, window_s=300) == 1_966_080  # 9000 * 65536 / 300
    assert await stats.hashrate(POOL, window_s=3600) == 327_680  # 18000 * 65536 / 3600
    assert await stats.hashrate(POOL, window_s=86400) == 102_400  # 135000 * 65536 / 86400
    assert await stats.hashrate(POOL, "A", window_s=300) == 1_966_080
    assert await stats.hashrate(POOL, "A", "rig1", window_s=300) == 1_638_400  # 7500 * 65536 / 300
    assert await stats.hashrate(POOL, "A", "rig2", window_s=300) == 327_680  # 1500 * 65536 / 300
    assert await stats.hashrate(POOL, "B", window_s=300) == 0
    assert await stats.hashrate(POOL, "B", "rig1", window_s=3600) == 65_536  # 3600 * 65536 / 3600
    assert await stats.difficulty_sum(POOL, "A", window_s=86400) == 7500 + 1500 + 5400 + 117_000
    # sha256d: difficulty 1 is 2**32 hashes
    assert await stats.hashrate(POOL, window_s=300, hashes_per_difficulty=SHA256D_HASHES_PER_DIFFICULTY) \
        == 128_849_018_880  # 9000 * 2**32 / 300
    assert await stats.hashrate("another-pool", window_s=300) == 0

    # The minute that was being filled counts once it is complete.
    stats.clock.now = T0 + 660
    assert await stats.difficulty_sum(POOL, window_s=300) == 3 * 1875 + 1_000_000  # [T0 + 360, T0 + 660)

    with pytest.raises(ValueError):
        await stats.hashrate(POOL, window_s=301)
    with pytest.raises(ValueError):
        await stats.hashrate(POOL, worker="rig1")  # a worker needs its address


def test_hashes_per_difficulty_from_the_coin():
    assert hashes_per_difficulty(SCRYPT.diff1_target) == 2**16
    assert hashes_per_difficulty(SHA256D.diff1_target) == 2**32


# -- workers online -------------------------------------------------------------------------------------


@BOTH
async def test_workers_online_and_expiry(make_stats, kind):
    clock = Clock()
    stats = await make_stats(kind, clock)
    stats.record_share(share(NOW - 10, "A", "x"))
    stats.record_share(share(NOW - 599, "B", "y"))
    stats.record_share(share(NOW - 601, "A", "z"))
    stats.record_share(share(NOW - 700, "A", "x"))  # older than x's last share, arriving later
    assert await stats.flush()
    assert await stats.workers_online(POOL) == 2
    assert await stats.workers_online(POOL, "A") == 1
    assert await stats.workers_online(POOL, "B") == 1
    assert await stats.workers_online(POOL, "nobody") == 0
    assert await stats.miners_online(POOL) == 2
    assert await stats.last_share(POOL, "A", "x") == NOW - 10
    assert await stats.last_share(POOL, "A", "z") == NOW - 601
    assert await stats.last_share(POOL, "A", "nobody") is None

    clock.now += 2  # y is now 601 s old
    assert await stats.workers_online(POOL) == 1
    assert await stats.workers_online(POOL, "B") == 0
    clock.now += 600
    assert await stats.workers_online(POOL) == 0
    assert await stats.last_share(POOL, "A", "x") == NOW - 10  # still known
    clock.now = NOW - 10 + SEEN_RETENTION_S + 1
    assert await stats.last_share(POOL, "A", "x") is None

    # a new share brings a worker back
    stats.record_share(share(clock.now, "A", "x"))
    assert await stats.flush()
    assert await stats.workers_online(POOL) == 1
    assert await stats.last_share(POOL, "A", "x") == clock.now


# -- several nodes --------------------------------------------------------------------------------------


def random_shares(rng: random.Random, count: int, now: float, workers: int = 40) -> list[ShareRecord]:
    """Shares over the last 2 h with difficulties in eighths: every sum is exact in any order."""
    names = [(f"addr{rng.randrange(8)}", f"w{index}") for index in range(workers)]
    return [
        share(now - rng.uniform(0, 7200), *rng.choice(names), rng.randrange(1, 4096) / 8,
              network=rng.choice([512.0, 1024.0, 2048.0]))
        for _ in range(count)
    ]


async def all_answers(stats, names) -> dict:
    answers = {"snapshot": await stats.snapshot(POOL)}
    for window_s in (300, 3600, 86400):
        answers[("pool", window_s)] = await stats.hashrate(POOL, window_s=window_s)
        for address, worker in names:
            answers[(address, window_s)] = await stats.hashrate(POOL, address, window_s=window_s)
            answers[(address, worker, window_s)] = await stats.hashrate(POOL, address, worker,
                                                                        window_s=window_s)
    for address, worker in names:
        answers[(address, "online")] = await stats.workers_online(POOL, address)
        answers[(address, worker, "last")] = await stats.last_share(POOL, address, worker)
    answers["round"] = await stats.round_work(POOL)
    return answers


async def test_two_nodes_aggregate(make_stats):
    clock = Clock()
    node1 = await make_stats("redis", clock)
    node2 = await make_stats("redis", clock)
    single = await make_stats("memory", clock)
    rng = random.Random(7)
    shares = random_shares(rng, 3000, NOW)
    for position, record in enumerate(shares):
        (node1 if rng.random() < 0.5 else node2).record_share(record)
        single.record_share(record)
        if position % 500 == 0:  # both nodes push at the same moment, several times
            assert all(await asyncio.gather(node1.flush(), node2.flush()))
    assert all(await asyncio.gather(node1.flush(), node2.flush()))
    names = sorted({(s.address, s.worker) for s in shares})
    expected = await all_answers(single, names)
    assert await all_answers(node1, names) == expected
    assert await all_answers(node2, names) == expected
    # and the figures are right, not merely equal
    cutoff_end = (NOW // 60) * 60
    in_5m = [s for s in shares if cutoff_end - 300 <= s.created < cutoff_end]
    assert await node1.difficulty_sum(POOL, window_s=300) == sum(s.credited_difficulty for s in in_5m)
    assert await node1.round_work(POOL) == sum(s.credited_difficulty / s.network_difficulty for s in shares)
    assert node1.counters["shares_pushed"] + node2.counters["shares_pushed"] == len(shares)


# -- rounds --------------------------------------------------------------------------------------------


@BOTH
async def test_round_work_resets_on_accepted_block(make_stats, kind):
    stats = await make_stats(kind, Clock())
    stats.record_share(share(NOW - 5, difficulty=512, network=1024))  # 0.5
    stats.record_share(share(NOW - 4, difficulty=256, network=1024))  # 0.25
    stats.record_block(block(500, "aa" * 32, status="candidate"))  # not the end of the round
    assert await stats.flush()
    assert await stats.round_work(POOL) == 0.75
    stats.record_share(share(NOW - 3, difficulty=128, network=1024))  # 0.125, still this round
    stats.record_block(block(500, "aa" * 32, status="accepted", created=NOW - 2))
    stats.record_share(share(NOW - 1, difficulty=64, network=1024))  # 0.0625, the new round
    assert await stats.flush()
    assert await stats.round_work(POOL) == 0.0625
    snapshot = await stats.snapshot(POOL)
    assert snapshot["last_round"]["work"] == 0.875
    assert snapshot["last_round"]["shares"] == 3
    assert snapshot["last_round"]["block_height"] == 500
    assert snapshot["last_round"]["block_hash"] == "aa" * 32
    assert snapshot["round"] == {"work": 0.0625, "shares": 1, "started": NOW - 2,
                                 "after_block_height": 500, "after_block_hash": "aa" * 32}

    # Another node reporting the same block, or an older one, does not reset again.
    stats.record_block(block(500, "aa" * 32))
    stats.record_block(block(499, "bb" * 32))
    assert await stats.flush()
    assert await stats.round_work(POOL) == 0.0625
    stats.record_block(block(501, "cc" * 32))
    assert await stats.flush()
    assert await stats.round_work(POOL) == 0.0
    assert (await stats.snapshot(POOL))["last_round"]["work"] == 0.0625


# -- the same answers in memory and in Redis -----------------------------------------------------------


async def test_memory_and_redis_give_the_same_answers(make_stats):
    clock = Clock()
    in_redis = await make_stats("redis", clock)
    in_memory = await make_stats("memory", clock)
    rng = random.Random(11)
    names = [("A", "rig1"), ("A", "矿工🚀"), ("ltc1q" + "x" * 200, "w:1"), ('B"', "a\nb"), ("C", "")]
    shares = []
    for _ in range(2000):
        address, worker = rng.choice(names)
        shares.append(share(NOW - rng.uniform(-60, 90000), address, worker,
                            difficulty=rng.choice([rng.uniform(0, 1e6), rng.random(), 1e-9, 2**40]),
                            network=rng.choice([rng.uniform(1, 1e9), 0.0, math.nan])))
    shares.insert(700, block(900, "dd" * 32))
    shares.insert(1500, block(901, "ee" * 32, created=NOW - 30))
    for position, record in enumerate(shares):
        for stats in (in_redis, in_memory):
            if isinstance(record, BlockRecord):
                stats.record_block(record)
            else:
                stats.record_share(record)
        if position % 300 == 0:  # the same batches in both: sums are grouped alike
            assert all(await asyncio.gather(in_redis.flush(), in_memory.flush()))
    assert all(await asyncio.gather(in_redis.flush(), in_memory.flush()))
    for offset in (0, 61, 3600):
        clock.now = NOW + offset
        assert await all_answers(in_redis, names) == await all_answers(in_memory, names)
    assert in_redis.counters == in_memory.counters


# -- Redis killed, frozen, flushed ---------------------------------------------------------------------


@pytest.fixture
def own_server():
    with RedisServer() as server:
        yield server


def outage_warnings(caplog):
    return [r for r in caplog.records if r.name == "pool.stats.store" and "not taking statistics" in r.getMessage()]


async def test_redis_killed_mid_run_keeps_record_share_bounded(make_stats, own_server, caplog):
    caplog.set_level(logging.INFO, logger="pool.stats")
    clock = Clock(time.time())
    stats = await make_stats("redis", clock, url=own_server.url, flush_records=1000, max_buffered_shares=5000,
                             max_pending_entries=2000, max_retry_interval_s=0.1, push_timeout_s=0.5,
                             socket_timeout_s=0.5)
    stats.record_share(share(clock.now - 1))
    assert await stats.flush()
    own_server.kill()

    tracemalloc.start()
    try:
        baseline = None
        largest_buffer = largest_pending = 0
        started = time.perf_counter()
        for round_number in range(40):
            for index in range(5000):  # 3000 distinct workers: more than the pending bound holds
                worker = f"w{(index * 7 + round_number) % 3000}"
                stats.record_share(share(clock.now, f"addr{index % 50}", worker))
            largest_buffer = max(largest_buffer, stats.buffered)
            largest_pending = max(largest_pending, stats.pending_entries)
            await asyncio.sleep(0.01)  # the flusher runs and fails
            if round_number == 10:
                baseline = tracemalloc.get_traced_memory()[0]
        grown = tracemalloc.get_traced_memory()[0] - baseline
        elapsed = time.perf_counter() - started
    finally:
        tracemalloc.stop()

    assert largest_buffer <= 5000
    assert largest_pending <= 2 * 2000  # the pending sums and at most one flush in doubt
    assert grown < 2_000_000, f"memory grew by {grown} bytes during the outage"
    assert stats.counters["shares_dropped"] > 0
    assert stats.counters["push_failures"] >= 2
    assert not stats.healthy
    assert len(outage_warnings(caplog)) == 1  # once per outage, not per share or per flush
    assert elapsed < 30

    own_server.restart()  # same port, empty
    marker_worker = ("after", "restart")
    for _ in range(8):
        stats.record_share(share(clock.now - 120, *marker_worker, difficulty=1500))
    await wait_until(lambda: stats.healthy, what="the push to resume")
    assert await stats.flush()
    assert await stats.difficulty_sum(POOL, *marker_worker, window_s=300) == 12_000
    assert [r for r in caplog.records if "store back after" in r.getMessage()]
    assert len(outage_warnings(caplog)) == 1


async def test_short_outage_loses_nothing(make_stats, own_server):
    clock = Clock(time.time())
    stats = await make_stats("redis", clock, url=own_server.url, max_retry_interval_s=0.05)
    own_server.kill()
    recorded = [share(clock.now - 90 + index / 10, "A", f"w{index % 3}", difficulty=index % 16 + 0.5)
                for index in range(300)]
    for record in recorded:
        stats.record_share(record)
    assert not await stats.flush()
    own_server.restart()
    await wait_until(lambda: stats.healthy and stats.pending_entries == 0 and stats.buffered == 0,
                     what="the pending shares to be pushed")
    expected = sum(r.credited_difficulty for r in recorded if (clock.now // 60) * 60 - 300 <= r.created
                   < (clock.now // 60) * 60)
    assert await stats.difficulty_sum(POOL, window_s=300) == expected
    assert stats.counters["shares_pushed"] == 300
    assert stats.counters["shares_dropped"] == 0


async def test_frozen_redis_times_out_without_counting_twice(make_stats, own_server):
    clock = Clock(time.time())
    stats = await make_stats("redis", clock, url=own_server.url, push_timeout_s=0.3, socket_timeout_s=0.3,
                             max_retry_interval_s=0.1)
    recorded = [share(clock.now - 200 + index / 10, "A", "w", difficulty=2.0) for index in range(500)]
    own_server.freeze()
    try:
        started = time.perf_counter()
        for record in recorded:
            stats.record_share(record)
        assert time.perf_counter() - started < 0.5  # buffering only
        assert not await stats.flush()  # sent, then timed out: in doubt
        await asyncio.sleep(0.5)  # the flusher retries (and times out) a few times
    finally:
        own_server.thaw()
    await wait_until(lambda: stats.healthy and stats.pending_entries == 0, what="the push to resume")
    assert await stats.flush()
    cutoff_end = (clock.now // 60) * 60
    expected = 2.0 * sum(1 for r in recorded if cutoff_end - 3600 <= r.created < cutoff_end)
    assert await stats.difficulty_sum(POOL, window_s=3600) == expected  # exactly once
    assert (await stats.snapshot(POOL))["round"]["shares"] == len(recorded)


def worker_minutes_rows(shares, pool=POOL) -> list[dict]:
    """What the ledger keeps in table worker_minutes for these shares."""
    groups = defaultdict(lambda: [0, 0.0, 0.0])
    for record in shares:
        minute = int(record.created // 60) * 60
        entry = groups[(record.address, record.worker, minute)]
        entry[0] += 1
        entry[1] += record.credited_difficulty
        entry[2] = max(entry[2], record.created)
    return [
        {"pool": pool, "address": address, "worker": worker,
         "minute": datetime.fromtimestamp(minute, tz=UTC), "shares": count,
         "difficulty_sum": total, "last_share": datetime.fromtimestamp(last, tz=UTC)}
        for (address, worker, minute), (count, total, last) in groups.items()
    ]


@BOTH
async def test_flushall_then_rebuild_from_rows(make_stats, server, kind):
    clock = Clock()
    stats = await make_stats(kind, clock)
    rng = random.Random(3)
    shares = random_shares(rng, 2000, NOW) + random_shares(rng, 200, NOW - 80000, workers=5)
    for record in shares:
        stats.record_share(record)
    assert await stats.flush()
    names = sorted({(s.address, s.worker) for s in shares})
    before = await all_answers(stats, names)
    sum_5m = await stats.difficulty_sum(POOL, window_s=300)
    assert sum_5m > 0

    if kind == "redis":
        server.flushall()
    else:
        stats._data.clear()
        stats._expires.clear()
    emptied = await all_answers(stats, names)
    assert emptied[("pool", 86400)] == 0 and emptied["round"] == 0
    assert emptied[(*names[0], "last")] is None

    rows = worker_minutes_rows(shares)
    assert await stats.rebuild_from(rows) == len(rows)
    await stats.rebuild_round(POOL, work=before["round"], shares=len(shares), started=NOW - 7200)
    after = await all_answers(stats, names)
    for key in before:
        if key[-1] == "last":  # timestamptz keeps microseconds
            assert after[key] == pytest.approx(before[key], abs=1e-6), key
        elif key != "snapshot":
            assert after[key] == before[key], key
    assert after["snapshot"]["hashrate"] == before["snapshot"]["hashrate"]
    assert after["snapshot"]["shares_per_second"] == before["snapshot"]["shares_per_second"]

    # Loading again (or as tuples in column order) changes nothing; new shares add on top.
    tuples = [tuple(row.values()) for row in rows]
    assert await stats.rebuild_from(tuples) == len(rows)
    assert await all_answers(stats, names) == after
    stats.record_share(share(NOW - 100, "A", "new", difficulty=300))
    assert await stats.flush()
    assert await stats.difficulty_sum(POOL, window_s=300) == sum_5m + 300
    assert await stats.rebuild_from([{"pool": POOL}, ("short",), None, {"nonsense": 1}]) == 0


# -- hostile input -------------------------------------------------------------------------------------


@BOTH
async def test_hostile_input_never_raises(make_stats, kind, caplog):
    caplog.set_level(logging.WARNING, logger="pool.stats")
    stats = await make_stats(kind, Clock())
    good = [
        share(NOW - 100, "A", "矿工🚀", 100.0),
        share(NOW - 100, "A", "\udc80lone surrogate", 100.0),
        share(NOW - 100, "A" * 10_000, "w" * 100_000, 100.0),
        share(NOW - 100, 'quote"colon:newline\n', "\x00", 100.0),
        share(NOW - 100, None, 12345, 100.0),
        share(NOW - 100, "A", "huge", 2.0**50, network=1e-320),  # work would overflow: counts as 0
        share(NOW - 100, "A", "zero-network", 100.0, network=0.0),
        share(NOW - 100, "A", "nan-network", 100.0, network=math.nan),
    ]
    bad = [
        share(NOW - 100, "A", "nan", math.nan),
        share(NOW - 100, "A", "inf", math.inf),
        share(NOW - 100, "A", "negative", -1.0),
        share(NOW - 100, "A", "absurd", 1e300),
        share(math.nan, "A", "nan-time", 1.0),
        share(None, "A", "no-time", 1.0),
        share("yesterday", "A", "text-time", 1.0),
        share(NOW + 86400, "A", "future", 1.0),
        share(NOW - 30 * 86400, "A", "ancient", 1.0),
        None, 42, object(), "share",
    ]
    for record in good + bad:
        stats.record_share(record)
    for record in (None, block(math.nan, "x"), block(10, None, created=math.nan), object()):
        stats.record_block(record)
    assert await stats.flush()
    assert stats.counters["shares_ignored"] == len(bad)
    assert stats.counters["shares_pushed"] == len(good)
    total = await stats.difficulty_sum(POOL, window_s=300)
    assert total == 7 * 100.0 + 2.0**50  # NaN and the rest did not poison the sum
    assert math.isfinite(await stats.round_work(POOL))
    assert await stats.round_work(POOL) == 5 * 100 / 1024  # not the overflowing or 0 / NaN network ones
    assert await stats.last_share(POOL, "A", "矿工🚀") == NOW - 100
    assert await stats.last_share(POOL, "A", "\udc80lone surrogate") == NOW - 100
    assert await stats.last_share(POOL, "A", "?lone surrogate") == NOW - 100
    assert await stats.last_share(POOL, "A" * 10_000, "w" * 100_000) == NOW - 100
    assert await stats.last_share(POOL, "A" * MAX_NAME_CHARS, "w" * MAX_NAME_CHARS) == NOW - 100
    assert await stats.hashrate(POOL, 'quote"colon:newline\n', "\x00", window_s=300) == 100 * 65536 / 300
    assert await stats.workers_online(POOL) == len(good)
    snapshot = await stats.snapshot(POOL)
    assert snapshot["difficulty_sum"]["5m"] == total
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]

    # A flood of hostile records: no exceptions, and the NaN half counts nothing.
    for index in range(20_000):
        stats.record_share(share(NOW - 100, "A", "x" * (index % 300), math.nan if index % 2 else 0.5))
    assert await stats.flush()
    assert await stats.difficulty_sum(POOL, window_s=300) == total + 10_000 * 0.5


async def test_foreign_key_of_the_wrong_type_is_logged_once(make_stats, server, caplog):
    caplog.set_level(logging.WARNING, logger="pool.stats")
    clock = Clock()
    stats = await make_stats("redis", clock, max_retry_interval_s=0.05)
    server.command("SET", f"quarry:stats:{POOL}:seen:workers", "not a sorted set")
    for _ in range(3):
        stats.record_share(share(NOW - 100, difficulty=4.0))
        assert not await stats.flush()  # applied in part: the sums, not the last-share times
    assert await stats.difficulty_sum(POOL, window_s=300) == 12.0
    server.command("DEL", f"quarry:stats:{POOL}:seen:workers")
    stats.record_share(share(NOW - 100, difficulty=4.0))
    assert await stats.flush()
    assert await stats.difficulty_sum(POOL, window_s=300) == 16.0
    assert await stats.workers_online(POOL) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if "refused part of a flush" in m]) == 1
    assert len([m for m in messages if "store back" in m]) == 1


# -- the server manager ---------------------------------------------------------------------------------


def test_missing_redis_server_says_how_to_install(monkeypatch):
    monkeypatch.setenv("REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(RedisServerNotFound, match="apt-get install -y redis-server"):
        find_redis_server()


def test_server_restarts_on_the_same_port_empty(own_server):
    port = own_server.port
    own_server.command("SET", "key", "value")
    own_server.restart()
    assert own_server.port == port
    assert own_server.command("GET", "key") is None
    own_server.kill()
    assert not own_server.running
    own_server.start()
    assert own_server.ping()
