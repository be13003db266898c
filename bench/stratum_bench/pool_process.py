"""The pool under test, in a process of its own (``--role pool``): the pool as operators run it, and
its counters written to a file on SIGUSR1."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time

from bench.stratum_bench.common import (
    BENCH_DIFFICULTY, HOST, die_with_parent, emit, pool_address, raise_nofile, run_event_loop,
)


def pool_config(coin: str, daemon_url: str, log_level: str):
    """The pool as operators run it: shares go to the ledger (an embedded PostgreSQL in a temporary
    data directory) and to in-process statistics."""
    import tempfile

    from pool.config import parse_config

    data_dir = tempfile.mkdtemp(prefix="quarry-bench-")
    return parse_config(
        {
            "pool": {
                "coin": coin,
                "address": pool_address(coin),
                "pool_tag": "/quarry-bench/",
                "log_level": log_level,
                "data_dir": data_dir,
            },
            "daemons": [{"url": daemon_url}],
            "stratum": {
                "ports": [
                    {
                        "port": 0,
                        "host": HOST,
                        "difficulty": BENCH_DIFFICULTY,
                        "min_difficulty": BENCH_DIFFICULTY,
                        "max_difficulty": BENCH_DIFFICULTY,
                        "vardiff": False,
                        "name": "bench",
                    }
                ],
                "handshake_timeout_s": 600.0,
                "idle_timeout_s": 3600.0,
                "max_connections": 1_000_000,
                "max_connections_per_ip": 1_000_000,
            },
            "work": {"template_refresh_s": 3600.0, "poll_interval_s": 0.5, "longpoll": True},
        },
        source="bench/stratum_load.py",
    )


def pool_main(args: argparse.Namespace) -> int:
    """The pool in its own process; SIGUSR1 writes its counters to --stats-file."""
    die_with_parent()
    raise_nofile(1 << 20)
    config = pool_config(args.coin, args.daemon_url, args.pool_log_level)
    logging.basicConfig(
        level=getattr(logging, config.log_level),
        format="[pool] %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import gc

    from pool.app import run_pool

    gc_totals = {"collections": [0, 0, 0], "seconds": [0.0, 0.0, 0.0]}
    gc_started = [0.0]

    def gc_callback(phase: str, info: dict) -> None:  # the benchmark's instrument, not the pool's
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            generation = info["generation"]
            gc_totals["collections"][generation] += 1
            gc_totals["seconds"][generation] += time.perf_counter() - gc_started[0]

    gc.callbacks.append(gc_callback)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shutdown = asyncio.Event()
        holder: list = []
        sequence = [0]

        def dump_stats() -> None:
            if not holder:
                return
            running = holder[0]
            server = running.server
            sequence[0] += 1
            snapshot = {
                "seq": sequence[0],
                "monotonic": time.monotonic(),
                "stats": dict(server.stats),
                "sessions": len(server.sessions),
                "recorded": getattr(running.recorder, "shares", None),
                "ledger_written": running.ledger.stats["shares_written"] if running.ledger else None,
                "ledger_backlog": running.ledger.buffered if running.ledger else None,
                "work_healthy": running.work.healthy,
                "job_counter": running.work.job_counter,
                "gc": gc_totals,
            }
            temporary = args.stats_file + ".tmp"
            with open(temporary, "w") as out:
                json.dump(snapshot, out)
            os.replace(temporary, args.stats_file)

        def ready(running) -> None:
            holder.append(running)
            emit("ready", pid=os.getpid(), port=running.server.ports[0], loop=type(loop).__module__)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, shutdown.set)
        loop.add_signal_handler(signal.SIGUSR1, dump_stats)
        loop.call_later(args.max_seconds, shutdown.set)
        try:
            await run_pool(config, shutdown, on_ready=ready)
        finally:
            import shutil

            shutil.rmtree(config.data_dir, ignore_errors=True)

    if args.cprofile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
        try:
            run_event_loop(main(), args.uvloop)
        finally:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    else:
        run_event_loop(main(), args.uvloop)
    return 0

