#!/usr/bin/env python3
"""The API's load benchmark: requests per second and latency of the pool, miner and blocks routes.

An embedded PostgreSQL (temporary directory) is seeded with ``--shares`` shares (1 M) from
``--miners`` miners (10k, two workers each) spread over the last 24 h, their per-minute aggregates
(as the ledger writes them), ``--blocks`` blocks (1,000) each crediting 20 miners in the journal, a
balance per miner and some payments;
``COPY`` and ``generate_series`` make that take seconds. ``pool api`` then runs in its own process
(as ``pool run`` starts it: the Stratum event loop never waits for an API query) and this process
keeps ``--clients`` (200) concurrent clients on ``/pools/{pool}``, ``/miners/{address}`` (a random
miner) and ``/blocks?page=N`` (a random page) for ``--seconds`` (30).

Each client keeps one keep-alive connection and sends its next request when the answer is in
(a closed loop, as ``wrk -c 200`` does), through a small HTTP/1.1 client that costs the shared cores
little. ``--ledger-change-every S`` commits a balance change every S seconds meanwhile (each one makes
the API read every miner's money again); ``--workers N`` sets ``api.workers``.

One JSON line on stdout: ``requests_per_s``, ``p50_ms``, ``p99_ms`` (client-side, send -> whole
answer), per route p50/p99, errors, the seed time, and the CPU the API processes and the load
generator used. Goal: p99 < 50 ms.

    python bench/api_load.py [--shares 1000000] [--miners 10000] [--blocks 1000] [--clients 200] [--seconds 30]
                             [--ledger-change-every S] [--workers N] [--dsn DSN]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pool.ledger.database import connect_pool, ensure_share_partitions, migrate
from pool.ledger.embedded_postgres import PgServer
from share_validator.bitcoin.address import bech32_encode_segwit

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
        await connection.execute(  # each credited block pays 20 miners: 20k journal credits over 40 h
            """INSERT INTO journal (pool, address, amount, reason, block_hash, created)
               SELECT $1, m.address, 5000000000 / 20, 'block_credit', b.hash, b.created
               FROM blocks b CROSS JOIN generate_series(0, 19) AS k
               JOIN bench_miners m ON m.n = (b.height * 20 + k) % $2
               WHERE b.pool = $1 AND b.credited""", POOL, miners)
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


def write_config(path: Path, workers: int) -> Path:
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
workers = {workers}
""")
    return path


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and of its children still running (the API's workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat.parent.name == str(pid) or fields[1] == str(pid):
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


class _HttpClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request, then its whole answer (Content-Length framed).

    A few microseconds a request, so that the measured time is the server's: a general client
    (aiohttp's) costs more CPU per request than the handler it measures, on the same two cores.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.expected = -1
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if self.expected < 0:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).lower()
            self.status = int(head[9:12])
            at = head.find(b"\r\ncontent-length:")
            if at < 0:
                self.transport.close()
                return
            self.expected = end + 4 + int(head[at + 17:head.find(b"\r\n", at + 2)])
        if len(buffer) >= self.expected:
            del buffer[: self.expected]
            self.expected = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    async def get(self, request: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


async def change_ledger(dsn: str, addresses: list[str], every_s: float, stop: asyncio.Event) -> int:
    """A balance changed every ``every_s`` seconds, as credits and payments do: each commit makes the
    API forget every miner's money and read it again."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    changes = 0
    try:
        rng = random.Random(7)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every_s)
            if stop.is_set():
                break
            await connection.execute("UPDATE balances SET amount = amount + 1 WHERE pool = $1 AND address = $2",
                                     POOL, addresses[rng.randrange(len(addresses))])
            changes += 1
    finally:
        await connection.close()
    return changes


async def load(port: int, addresses: list[str], blocks: int, clients: int, seconds: float) -> dict:
    base = f"/api/v1/pools/{POOL}"
    pages = max(1, blocks // 20)
    latencies: dict[str, list[float]] = {"pool": [], "miner": [], "blocks": []}
    errors: dict[str, int] = {}
    loop = asyncio.get_running_loop()

    def request(path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\r\n".encode()

    async def connect() -> _HttpClient:
        _, protocol = await loop.create_connection(_HttpClient, "127.0.0.1", port)
        return protocol

    warm = await connect()
    for path in ("", f"/miners/{addresses[0]}", "/blocks"):  # warm the caches
        await warm.get(request(base + path))
    warm.transport.close()
    connections = [await connect() for _ in range(clients)]
    deadline = time.monotonic() + seconds

    async def client(number: int) -> None:
        rng = random.Random(number)
        kinds = ("pool", "miner", "blocks")
        connection = connections[number]
        while time.monotonic() < deadline:
            kind = kinds[rng.randrange(3)]
            if kind == "pool":
                path = base
            elif kind == "miner":
                path = f"{base}/miners/{addresses[rng.randrange(len(addresses))]}"
            else:
                path = f"{base}/blocks?page={rng.randrange(pages)}"
            started = time.perf_counter()
            try:
                status = await connection.get(request(path))
            except (ConnectionError, OSError) as error:
                errors[type(error).__name__] = errors.get(type(error).__name__, 0) + 1
                connection = connections[number] = await connect()
                continue
            elapsed = time.perf_counter() - started
            if trace is not None:
                trace.append((started, kind, elapsed))
            if status == 200:
                latencies[kind].append(elapsed)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1

    trace = [] if os.environ.get("API_LOAD_TRACE") else None
    began = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    if trace is not None:
        first = trace[0][0]
        Path(os.environ["API_LOAD_TRACE"]).write_text("".join(
            f"{at - first:.4f} {kind} {elapsed * 1000:.2f}\n" for at, kind, elapsed in sorted(trace)))
    wall = time.monotonic() - began
    for connection in connections:
        connection.transport.close()
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
    parser.add_argument("--ledger-change-every", type=float, default=0.0, metavar="S",
                        help="commit a balance change every S seconds during the run (0: none)")
    parser.add_argument("--workers", type=int, default=1, help="api.workers: API processes on one socket")
    parser.add_argument("--dsn", help="a database this script seeded before (with the same sizes): no new seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="quarry-api-bench-") as directory, \
            contextlib.ExitStack() as stack:
        if args.dsn:
            dsn = args.dsn
            seeded = {"seed_s": 0.0, "addresses": [miner_address(n + 1) for n in range(args.miners)]}
        else:
            server = stack.enter_context(PgServer(Path(directory) / "pg", durable=False, make_traversable=True))
            dsn = await asyncio.to_thread(server.create_database, "bench")
            log(f"seeding {args.shares} shares, {args.miners} miners, {args.blocks} blocks ...")
            seeded = await seed(dsn, args.shares, args.miners, args.blocks)
            log(f"seeded in {seeded['seed_s']} s: {seeded}")
        addresses = seeded.pop("addresses")
        config = write_config(Path(directory) / "pool.toml", args.workers)
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
            load_cpu_before = time.process_time()
            log(f"{args.clients} clients for {args.seconds:g} s ...")
            stop = asyncio.Event()
            changer = (asyncio.ensure_future(change_ledger(dsn, addresses, args.ledger_change_every, stop))
                       if args.ledger_change_every > 0 else None)
            result = await load(port, addresses, args.blocks, args.clients, args.seconds)
            stop.set()
            ledger_changes = await changer if changer is not None else 0
            api_cpu = cpu_seconds(api.pid) - cpu_before
            load_cpu = time.process_time() - load_cpu_before
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
        "load_generator_cpu_cores_used": round(load_cpu / result["wall_s"], 2),
        "api_workers": args.workers,
        "ledger_changes": ledger_changes,
        "api_in_own_process": True,
        "cpu_count": os.cpu_count(),
        **seeded,
        "goal_p99_ms": 50,
        "goal_met": p99 < 50,
    }))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
