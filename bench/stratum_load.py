#!/usr/bin/env python3
"""The pool's load benchmark: shares per second, submit latency, job broadcast, memory per connection.

Processes (all on 127.0.0.1, each bounded in time, all stopped by this script even on errors):

* a replay daemon (``bench/replay_daemon.py``) serving a template built from a real mainnet
  block (mainnet bits, so no share is a block);
* the pool (``pool.app.run_pool``, under uvloop like ``pool run``) in its own process, on a
  port with fixed difficulty 1e-12 (every hash is a valid share), vardiff off;
* load generators (asyncio, raw lines over TCP): N connections subscribe and authorize, then
  submit shares with unique extranonce2 -- as fast as the pool answers (``--rate 0``: every
  connection keeps ``--window`` submits in flight) or at a fixed total ``--rate``;
* for the idle phase, a fresh pool and one client holding ``--idle-connections`` idle
  authorized connections (plain non-blocking sockets and epoll).

Figures (one JSON line on stdout at the end; progress on stderr):

* ``accepted_per_s``: accepted answers the load generators received per second of the
  measured window (``pool_accepted_per_s``: the pool's own counter over the same window);
  ``submit_p50_ms`` / ``submit_p99_ms``: send -> answer per share, measured by the load
  generator (a share sent in a burst is stamped with the burst's time);
* ``broadcast_ms``: from the first to the last of the idle connections receiving the new
  clean ``mining.notify`` after the daemon announced a block, using the kernel's receive
  timestamps (SO_TIMESTAMPNS), so the client's own processing does not count; this is how
  long the pool takes to hand one job to every connection.  ``tip_to_last_notify_ms`` adds
  the time from the daemon changing its tip (long poll answer, getblocktemplate, job build);
  median over ``--broadcast-rounds`` announcements, the worst one is reported too;
* ``rss_per_conn_kb``: (pool VmRSS with the idle connections - VmRSS with none) / count;
  ``rss_per_conn_kb_after_broadcasts``: the same after the broadcast rounds (every new block
  adds an entry to each connection's job map until it holds 64);
* what the numbers depend on, since the machine may be shared: ``cpu_cores_used`` (the pool, its
  ledger writer process, the load generators) and
  ``runqueue_wait_per_s`` per process (/proc/PID/task/*/schedstat), ``other_processes_cores``
  (the rest of the machine, /proc/stat), ``pool_cpu_us_per_share``,
  ``pool_capacity_per_core_per_s`` (accepted shares per second of pool CPU: the rate on a free
  core), ``pool_kernel_cpu_fraction`` and the pool's time in the cyclic garbage collector;
* ``ledger_written_per_s`` and ``ledger_backlog_at_end``: shares the ledger stored per second of
  the window and the accepted shares not yet stored at its end (a ledger that falls behind makes the
  pool look faster than it can go for long, and breaks the one-flush-interval loss bound);
* scrypt only: ``scrypt_batch_hs``, the native ``scrypt_batch`` hash rate (batches of 64 on
  one thread, as bench/hashing.py) measured in this run before the pool starts, and the ratio
  ``accepted_vs_scrypt_batch`` (``scrypt_batch_hs_threads`` is the rate on as many threads as
  the pool's batcher uses).

Goals (``goals_met``): sha256d >= 40k accepted shares/s per pool process; new-job broadcast to
10k connections <= 100 ms; <= 4 KB of pool process memory per idle connection; scrypt
accepted/s >= 80 % of the native batch hash rate.  The goal flags only count when the run
used the goal's size (for instance 10k idle connections).

    python bench/stratum_load.py --coin bitcoin [--connections 1000] [--seconds 10] [--rate 0]
                                 [--idle-connections 10000] [--load-procs 1] [--py-spy FILE]
    python bench/stratum_load.py --coin litecoin
    python bench/stratum_load.py --rate 40000 --idle-connections 0   # latency at a fixed offered rate
"""

from __future__ import annotations

import argparse
import os
import sys

# The parts live in bench/stratum_bench/ (common, pool_process, load_generator, idle_client, harness,
# report); each child process runs this script again with its --role. bench/payouts.py is named like
# the payouts package the pool imports: keep this folder off the import path and reach the parts
# from the repository's root.
BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != BENCH_DIR]
sys.path.insert(0, os.path.dirname(BENCH_DIR))

from bench.stratum_bench.idle_client import idle_main  # noqa: E402
from bench.stratum_bench.load_generator import load_main  # noqa: E402
from bench.stratum_bench.pool_process import pool_main  # noqa: E402
from bench.stratum_bench.report import orchestrate  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coin", choices=["bitcoin", "litecoin"], default="bitcoin")
    parser.add_argument(
        "--connections", type=int, default=1000, help="connections of the rate run (0: skip it)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window of the rate run")
    parser.add_argument("--warmup", type=float, default=2.0, help="submitting before the window opens")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="total shares/s offered (0: as fast as the pool answers, closed loop)",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=1,
        help="closed loop: submits in flight per connection (1: like a real miner)",
    )
    parser.add_argument("--max-in-flight", type=int, default=256, help="open loop: cap per connection")
    parser.add_argument("--tick-s", type=float, default=0.002, help="open loop: send interval")
    parser.add_argument("--load-procs", type=int, default=1, help="load generator processes for the rate run")
    parser.add_argument("--idle-connections", type=int, default=10_000, help="idle phase size (0: skip it)")
    parser.add_argument("--broadcast-rounds", type=int, default=5)
    parser.add_argument("--scrypt-seconds", type=float, default=2.0)
    parser.add_argument(
        "--budget", type=float, default=600.0, help="every child exits after this many seconds"
    )
    parser.add_argument(
        "--no-uvloop", dest="uvloop", action="store_false", help="plain asyncio loops everywhere"
    )
    parser.add_argument("--pool-log-level", default="WARNING")
    parser.add_argument(
        "--py-spy", default="", help="record the pool with py-spy during the rate window to FILE"
    )
    parser.add_argument(
        "--py-spy-idle", default="", help="record the idle-phase pool during the broadcasts to FILE"
    )
    parser.add_argument("--py-spy-format", default="raw", choices=["raw", "flamegraph", "speedscope"])
    parser.add_argument("--py-spy-rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--py-spy-native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--py-spy-bin", default="", help="the py-spy executable (default: on PATH)")
    parser.add_argument(
        "--pool-cprofile", default="", help="run the rate-phase pool under cProfile, dump to FILE"
    )
    # internal: the child roles
    parser.add_argument(
        "--role", choices=["main", "pool", "load", "idle"], default="main", help=argparse.SUPPRESS
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--daemon-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--announce-url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--stats-file", default="", help=argparse.SUPPRESS)
    parser.add_argument("--proc-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--pool-pid", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--max-seconds", type=float, default=600.0, help=argparse.SUPPRESS)
    parser.add_argument("--cprofile", default="", help=argparse.SUPPRESS)
    return parser


def main() -> int:
    args = build_parser().parse_args()
    if args.role == "pool":
        return pool_main(args)
    if args.role == "load":
        return load_main(args)
    if args.role == "idle":
        return idle_main(args)
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
