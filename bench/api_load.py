#!/usr/bin/env python3
"""The API's load benchmark: requests per second and latency of the pool, miner and blocks routes.

An embedded PostgreSQL (temporary directory) is seeded with ``--shares`` shares (1 M) from
``--miners`` miners (10k, two workers each) spread over the last 24 h, their per-minute aggregates
(as the ledger writes them), ``--blocks`` blocks (1,000), a balance per miner and some payments;
``COPY`` and ``generate_series`` make that take seconds. ``pool api`` then runs in its own process
(as ``pool run`` starts it: the Stratum event loop never waits for an API query) and this process
keeps ``--clients`` (200) concurrent clients on ``/pools/{pool}``, ``/miners/{address}`` (a random
miner) and ``/blocks?page=N`` (a random page) for ``--seconds`` (30).

One JSON line on stdout: ``requests_per_s``, ``p50_ms``, ``p99_ms`` (client-side, send -> whole
answer), per route p50/p99, errors, the seed time, and the CPU the API process used. Goal: p99 < 50 ms.

    python bench/api_load.py [--shares 1000000] [--miners 10000] [--blocks 1000] [--clients 200] [--seconds 30]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pool.database import connect_pool, ensure_share_partitions, migrate
from pool.pgserver import PgServer
from share_validator.address import bech32_encode_segwit

POOL = "litecoin-regtest"
POOL_ADDRESS = bech32_encode_segwit("rltc", 0, bytes(20))


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def miner_address(n: int) -> str:
    return bech32_encode_segwit("rltc", 0, n.to_bytes(20, "big"))


async def seed(dsn: str, shares: int, miners: int, blocks: int) -> dict:
    started = time.perf_counter()
    await migrate(dsn)
    await ensure_share_partitions(dsn)
    db = await connect_pool(dsn, command_timeout=600)
    addresses = [miner_address(n + 1) for n in range(miners)]
    async with db.acquire() as connection:
        await connection.execute("CREATE TEMP TABLE bench_miners (n integer PRIMARY KEY, address text)")
        await connection.copy_records_to_table("bench_miners", records=list(enumerate(addresses)))
        # Shares over the last 24 h, miner n % miners, worker rig0/rig1; a few miners do most work.
        await connection.execute(
            """INSERT INTO shares (share_id, created, pool, address, worker, credited_difficulty, actual_difficulty,
                                   network_difficulty, height, coinbase_value, node_id)
               SELECT 'b' || g, now() - (g::double precision / $2) * interval '24 hours', $1, m.address,
                      'rig' || (g % 2), 1 + (g % 7) * 8, 100, 50000, 1000 + g / 1000, 5000000000, 0
               FROM generate_series(1, $2) AS g JOIN bench_miners m ON m.n = (g::bigint * 7919) % $3""",
            POOL, shares, miners)
        await connection.execute(
            """INSERT INTO worker_minutes (pool, address, worker, minute, shares, difficulty_sum, last_share)
               SELECT pool, address, worker, date_trunc('minute', created), count(*), sum(credited_difficulty),
                      max(created)
               FROM shares GROUP BY pool, address, worker, date_trunc('minute', created)""")
        await connection.execute(
            """INSERT INTO rounds (pool, work, shares) SELECT pool, sum(credited_difficulty / network_difficulty),
               count(*) FROM shares GROUP BY pool""")
        await connection.execute(
            """INSERT INTO blocks (pool, height, hash, status, confirmations, reward, finder_address, finder_worker,
                                   network_difficulty, effort, created, credited)
               SELECT $1, 1000 + g, lpad(to_hex(g), 64, '0'),
                      CASE WHEN g > $2 - 5 THEN 'pending' WHEN g % 50 = 0 THEN 'orphaned' ELSE 'confirmed' END,
                      least($2 - g, 100), 5000000000, m.address, 'rig0', 50000, 0.5 + (g % 10) / 5.0,
                      now() - ($2 - g) * interval '150 seconds', g <= $2 - 5 AND g % 50 <> 0
               FROM generate_series(1, $2) AS g JOIN bench_miners m ON m.n = g % $3""",
            POOL, blocks, miners)
        await connection.execute(
            """INSERT INTO balances (pool, address, amount, paid) SELECT $1, address, 1000 * n, 500 * n
               FROM bench_miners""", POOL)
        await connection.execute(
            """INSERT INTO payments (pool, status, txid, amount, fee, payees, confirmations, created)
               SELECT $1, 'confirmed', lpad(to_hex(g), 64, 'f'), 100000 * 100, 1000, 100, 10,
                      now() - g * interval '1 hour' FROM generate_series(1, 100) AS g""", POOL)
        await connection.execute(
            """INSERT INTO payment_outputs (payment_id, address, amount, debited)
               SELECT p.id, m.address, 100000, 100000 FROM payments p
               JOIN bench_miners m ON m.n % 100 = p.id % 100 AND m.n < 10000""")
        await connection.execute("ANALYZE")
        counts = await connection.fetchrow(
            """SELECT (SELECT count(*) FROM shares) AS shares, (SELECT count(*) FROM worker_minutes) AS worker_minutes,
                      (SELECT count(*) FROM blocks) AS blocks, (SELECT count(DISTINCT address) FROM balances) AS miners""")
    await db.close()
    return {"seed_s": round(time.perf_counter() - started, 1), **dict(counts), "addresses": addresses}


def write_config(path: Path) -> Path:
    path.write_text(f"""
[pool]
coin = "litecoin-regtest"
address = "{POOL_ADDRESS}"
log_level = "warning"

[[daemons]]
url = "http://127.0.0.1:1/"

[[stratum.ports]]
port = 3333

[api]
host = "127.0.0.1"
port = 0
rate_limit_per_s = 0
""")
    return path


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(port: int, addresses: list[str], blocks: int, clients: int, seconds: float) -> dict:
    base = f"http://127.0.0.1:{port}/api/v1/pools/{POOL}"
    pages = max(1, blocks // 20)
    latencies: dict[str, list[float]] = {"pool": [], "miner": [], "blocks": []}
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        for path in ("", f"/miners/{addresses[0]}", "/blocks"):  # warm the caches
            async with session.get(base + path) as response:
                await response.read()
        deadline = time.monotonic() + seconds

        async def client(number: int) -> None:
            rng = random.Random(number)
            kinds = ("pool", "miner", "blocks")
            while time.monotonic() < deadline:
                kind = kinds[rng.randrange(3)]
                if kind == "pool":
                    url = base
                elif kind == "miner":
                    url = f"{base}/miners/{addresses[rng.randrange(len(addresses))]}"
                else:
                    url = f"{base}/blocks?page={rng.randrange(pages)}"
                started = time.perf_counter()
                try:
                    async with session.get(url) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError as error:
                    status = type(error).__name__
                elapsed = time.perf_counter() - started
                if status == 200:
                    latencies[kind].append(elapsed)
                else:
                    errors[str(status)] = errors.get(str(status), 0) + 1

        began = time.monotonic()
        await asyncio.gather(*(client(n) for n in range(clients)))
        wall = time.monotonic() - began
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shares", type=int, default=1_000_000)
    parser.add_argument("--miners", type=int, default=10_000)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quarry-api-bench-") as directory, \
            PgServer(Path(directory) / "pg", durable=False, make_traversable=True) as server:
        dsn = await asyncio.to_thread(server.create_database, "bench")
        log(f"seeding {args.shares} shares, {args.miners} miners, {args.blocks} blocks ...")
        seeded = await seed(dsn, args.shares, args.miners, args.blocks)
        addresses = seeded.pop("addresses")
        log(f"seeded in {seeded['seed_s']} s: {seeded}")
        config = write_config(Path(directory) / "pool.toml")
        api = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool.cli", "api", "-c", str(config),
            env={**os.environ, "QUARRY_API_DSN": dsn}, stdout=asyncio.subprocess.PIPE, cwd=ROOT)
        try:
            async with asyncio.timeout(60):
                while True:
                    line = await api.stdout.readline()
                    if not line:
                        raise SystemExit("pool api exited before it listened")
                    if line.startswith(b"API PORT "):
                        port = int(line.split()[-1])
                        break
            cpu_before = cpu_seconds(api.pid)
            log(f"{args.clients} clients for {args.seconds:g} s ...")
            result = await load(port, addresses, args.blocks, args.clients, args.seconds)
            api_cpu = cpu_seconds(api.pid) - cpu_before
        finally:
            api.send_signal(signal.SIGTERM)
            await api.wait()
    latencies = result["latencies"]
    every = [value for values in latencies.values() for value in values]
    p99 = percentile(every, 0.99)
    print(json.dumps({
        "requests_per_s": round(len(every) / result["wall_s"], 1),
        "p50_ms": round(percentile(every, 0.50), 2),
        "p99_ms": round(p99, 2),
        "routes": {kind: {"requests": len(values), "p50_ms": round(percentile(values, 0.5), 2),
                          "p99_ms": round(percentile(values, 0.99), 2)} for kind, values in latencies.items()},
        "errors": result["errors"],
        "clients": args.clients,
        "seconds": round(result["wall_s"], 1),
        "api_cpu_cores_used": round(api_cpu / result["wall_s"], 2),
        "api_in_own_process": True,
        "cpu_count": os.cpu_count(),
        **seeded,
        "goal_p99_ms": 50,
        "goal_met": p99 < 50,
    }))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
