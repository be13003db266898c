"""The measured phases (shares per second under load, then broadcast and memory with idle connections)
and the report: figures, goals met, one JSON line."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from bench.stratum_bench.common import (
    BENCH_DIR, GOAL_BROADCAST_CONNECTIONS, GOAL_BROADCAST_MS, GOAL_RSS_PER_CONN_KB, GOAL_SCRYPT_RATIO,
    GOAL_SHA256D_PER_S, LATENCY_BUCKETS_PER_E, SCRIPT, child_pids, log, machine_busy_cores_seconds,
    raise_nofile, rss_kb, schedstat, user_system_seconds,
)
from bench.stratum_bench.harness import (
    Children, finish_py_spy, measure_scrypt_batch, start_pool, start_py_spy,
)
from bench.stratum_bench.load_generator import histogram_percentile


def rate_phase(children: Children, args: argparse.Namespace, daemon_url: str, workdir: str) -> dict[str, Any]:
    pool, port = start_pool(children, args, daemon_url, "pool-rate", workdir, cprofile=args.pool_cprofile)
    procs = max(1, args.load_procs)
    loads = []
    for index in range(procs):
        share = args.connections // procs + (1 if index < args.connections % procs else 0)
        per_proc_rate = args.rate / procs if args.rate > 0 else 0
        argv = [
            sys.executable,
            SCRIPT,
            "--role",
            "load",
            "--coin",
            args.coin,
            "--port",
            str(port),
            "--connections",
            str(share),
            "--seconds",
            str(args.seconds),
            "--warmup",
            str(args.warmup),
            "--rate",
            str(per_proc_rate),
            "--window",
            str(args.window),
            "--max-in-flight",
            str(args.max_in_flight),
            "--proc-index",
            str(index),
            "--max-seconds",
            str(args.budget),
        ]
        if not args.uvloop:
            argv.append("--no-uvloop")
        loads.append(children.start(f"load-{index}", argv))
    for load in loads:
        load.expect("ready", 180)
    log(f"{args.connections} connections subscribed and authorized over {procs} load process(es)")
    start_at = time.monotonic() + 0.3
    for load in loads:
        load.send(f"go {start_at}")
    window_start = start_at + args.warmup
    time.sleep(max(0.0, window_start - time.monotonic()))
    before = pool.stats()
    pids = {"pool": pool.pid, **{f"load-{i}": c.pid for i, c in enumerate(loads)}}
    for pid in child_pids(pool.pid):  # the pool's ledger writer process (not the embedded PostgreSQL)
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if b"pool.ledger.writer" in handle.read():
                    pids["ledger-writer"] = pid
    sched_before = {name: schedstat(pid) for name, pid in pids.items()}
    pool_user_system_before = user_system_seconds(pool.pid)
    machine_before = machine_busy_cores_seconds()
    spy = start_py_spy(args, pool.pid, args.py_spy, args.seconds)
    while time.monotonic() < window_start + args.seconds:
        time.sleep(min(1.0, window_start + args.seconds - time.monotonic()))
        log(f"rate run: {pool.stats()['stats'].get('shares_accepted', 0):,} shares accepted so far")
    after = pool.stats()
    sched_after = {name: schedstat(pid) for name, pid in pids.items()}
    pool_user_system_after = user_system_seconds(pool.pid)
    machine_after = machine_busy_cores_seconds()
    pool_rss = rss_kb(pool.pid)
    results = [load.expect("result", args.seconds + 60) for load in loads]
    finish_py_spy(spy, args.py_spy)
    pool.child.stop()
    elapsed = after["monotonic"] - before["monotonic"]
    pool_accepted = after["stats"].get("shares_accepted", 0) - before["stats"].get("shares_accepted", 0)
    histogram: dict[int, int] = {}
    for result in results:
        for key, count in result["histogram"].items():
            histogram[int(key)] = histogram.get(int(key), 0) + count
    accepted = sum(r["accepted"] for r in results)
    rejected = sum(r["rejected"] for r in results)
    reasons: dict[str, int] = {}
    for result in results:
        for key, count in result["reject_reasons"].items():
            reasons[key] = reasons.get(key, 0) + count
    cpu = {name: round((sched_after[name][0] - sched_before[name][0]) / elapsed, 3) for name in pids}
    waited = {name: round((sched_after[name][1] - sched_before[name][1]) / elapsed, 3) for name in pids}
    gc_seconds = sum(after["gc"]["seconds"]) - sum(before["gc"]["seconds"])
    gc_full = after["gc"]["collections"][2] - before["gc"]["collections"][2]
    pool_user = pool_user_system_after[0] - pool_user_system_before[0]
    pool_system = pool_user_system_after[1] - pool_user_system_before[1]
    others = (machine_after - machine_before) / elapsed - sum(cpu.values())
    p50, p99 = histogram_percentile(histogram, 0.50), histogram_percentile(histogram, 0.99)
    figures: dict[str, Any] = {
        "accepted_per_s": round(accepted / args.seconds, 1),
        "pool_accepted_per_s": round(pool_accepted / elapsed, 1),
        "rejected_per_s": round(rejected / args.seconds, 1),
        "submit_p50_ms": None if p50 is None else round(p50 * 1000, 3),
        "submit_p90_ms": None if p50 is None else round(histogram_percentile(histogram, 0.90) * 1000, 3),
        "submit_p99_ms": None if p99 is None else round(p99 * 1000, 3),
        "submit_max_ms": None
        if not histogram
        else round(math.exp(max(histogram) / LATENCY_BUCKETS_PER_E) * 1000, 3),
        "connections": sum(r["connections"] for r in results),
        "mode": f"closed loop, {args.window} in flight per connection"
        if args.rate <= 0
        else f"open loop at {args.rate:g} shares/s offered",
        "cpu_cores_used": cpu,
        "runqueue_wait_per_s": waited,
        "pool_kernel_cpu_fraction": round(pool_system / (pool_user + pool_system), 3)
        if pool_user + pool_system
        else None,
        "other_processes_cores": round(max(0.0, others), 2),
        "pool_cpu_us_per_share": round(cpu["pool"] * 1e6 / (pool_accepted / elapsed), 2)
        if pool_accepted
        else None,
        "pool_gc_fraction": round(gc_seconds / elapsed, 4),
        "pool_gc_full_collections": gc_full,
        "pool_capacity_per_core_per_s": round(pool_accepted / elapsed / cpu["pool"], 1)
        if cpu["pool"]
        else None,
        "pool_rss_kb_under_load": pool_rss,
        # The ledger must keep up: shares it stored per second of the window, and the accepted shares
        # it had not yet stored (committed or spilled) at the window's end.
        "ledger_written_per_s": round((after["ledger_written"] - before["ledger_written"]) / elapsed, 1)
        if after.get("ledger_written") is not None
        else None,
        "ledger_backlog_at_end": after.get("ledger_backlog"),
        "skipped_by_client": sum(r["skipped"] for r in results),
        "unanswered_at_end": sum(r["unanswered"] for r in results),
        "connections_lost": sum(r["lost"] for r in results),
    }
    if reasons:
        figures["reject_reasons"] = reasons
    if after["stats"].get("internal_error"):
        figures["pool_internal_errors"] = after["stats"]["internal_error"]
    return figures


def idle_phase(
    children: Children, args: argparse.Namespace, daemon_url: str, announce_url: str, workdir: str
) -> dict[str, Any]:
    pool, port = start_pool(children, args, daemon_url, "pool-idle", workdir)
    time.sleep(1.0)
    rss_none = rss_kb(pool.pid)
    argv = [
        sys.executable,
        SCRIPT,
        "--role",
        "idle",
        "--coin",
        args.coin,
        "--port",
        str(port),
        "--connections",
        str(args.idle_connections),
        "--announce-url",
        announce_url,
        "--pool-pid",
        str(pool.pid),
        "--max-seconds",
        str(args.budget),
    ]
    idle = children.start("idle", argv)
    ready = idle.expect("ready", 300)
    time.sleep(1.0)
    snapshot = pool.stats()
    rss_idle = rss_kb(pool.pid)
    log(
        f"pool RSS {rss_none:,} kB with no connection, {rss_idle:,} kB with {ready['connections']:,} "
        f"({snapshot['sessions']:,} sessions)"
    )
    rounds = []
    spy = start_py_spy(args, pool.pid, args.py_spy_idle, args.broadcast_rounds * 1.0 + 1)
    for number in range(args.broadcast_rounds):
        before = pool.stats()
        idle.send("round")
        result = idle.expect("round", 60)
        after = pool.stats()
        result["pool_gc_ms"] = (sum(after["gc"]["seconds"]) - sum(before["gc"]["seconds"])) * 1000
        result["pool_gc_full_collections"] = after["gc"]["collections"][2] - before["gc"]["collections"][2]
        rounds.append(result)
        log(
            f"broadcast {number + 1}: {result.get('received')}/{result.get('connections')} got the job; "
            f"first->last {result.get('spread_ms', float('nan')):.1f} ms, tip->last "
            f"{result.get('tip_to_last_ms', float('nan')):.1f} ms ({result.get('clock')}); pool on CPU "
            f"{result.get('pool_on_cpu_ms', float('nan')):.1f} ms, waiting for a CPU "
            f"{result.get('pool_runqueue_wait_ms', float('nan')):.1f} ms, in gc {result['pool_gc_ms']:.1f} ms"
        )
        time.sleep(0.5)
    finish_py_spy(spy, args.py_spy_idle)
    rss_after = rss_kb(pool.pid)
    idle.send("quit")
    pool.child.stop()
    idle.stop()
    complete = [r for r in rounds if r.get("received") == r.get("connections")]

    def median(key: str) -> float | None:
        values = sorted(r[key] for r in complete)
        return round(values[len(values) // 2], 2) if values else None

    return {
        "idle_connections": ready["connections"],
        "rss_none_kb": rss_none,
        "rss_idle_kb": rss_idle,
        "rss_after_broadcasts_kb": rss_after,
        "rss_per_conn_kb": round((rss_idle - rss_none) / ready["connections"], 3),
        "rss_per_conn_kb_after_broadcasts": round((rss_after - rss_none) / ready["connections"], 3),
        "broadcast_ms": median("spread_ms"),
        "broadcast_worst_ms": round(max(r["spread_ms"] for r in complete), 2) if complete else None,
        "tip_to_first_notify_ms": median("tip_to_first_ms"),
        "tip_to_last_notify_ms": median("tip_to_last_ms"),
        "broadcast_pool_on_cpu_ms": median("pool_on_cpu_ms"),
        "broadcast_pool_runqueue_wait_ms": median("pool_runqueue_wait_ms"),
        "broadcast_pool_gc_ms": median("pool_gc_ms"),
        "broadcast_clock": complete[0]["clock"] if complete else None,
        "broadcast_rounds": [
            {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rounds
        ],
    }


def orchestrate(args: argparse.Namespace) -> int:
    nofile = raise_nofile(max(args.connections, args.idle_connections) + 1024)
    if nofile < args.idle_connections + 256:
        log(f"RLIMIT_NOFILE is {nofile}: lowering --idle-connections to fit")
        args.idle_connections = max(0, nofile - 256)
    figures: dict[str, Any] = {
        "coin": args.coin,
        "algorithm": "scrypt" if args.coin == "litecoin" else "sha256d",
        "cpus": os.cpu_count(),
    }
    if args.coin == "litecoin":
        threads = max(1, min(4, os.cpu_count() or 1))  # as StratumServer's default hash_threads
        log("measuring the native scrypt_batch hash rate (nothing else running) ...")
        figures["scrypt_batch_hs"] = round(measure_scrypt_batch(args.scrypt_seconds, 1), 1)
        figures["scrypt_batch_hs_threads"] = round(measure_scrypt_batch(args.scrypt_seconds, threads), 1)
        figures["scrypt_threads"] = threads
        log(
            f"scrypt_batch: {figures['scrypt_batch_hs']:,.0f} H/s on 1 thread, "
            f"{figures['scrypt_batch_hs_threads']:,.0f} H/s on {threads}"
        )
    workdir = tempfile.mkdtemp(prefix="stratum_load-")
    try:
        with Children() as children:
            daemon_argv = [
                sys.executable,
                os.path.join(BENCH_DIR, "replay_daemon.py"),
                "--coin",
                args.coin,
                "--max-seconds",
                str(args.budget),
                "--die-with-parent",
            ]
            daemon = children.start("replay-daemon", daemon_argv)
            ready = daemon.expect("ready", 60)
            log(
                f"replay daemon at {ready['url']}: height {ready['height']}, {ready['transactions']} transactions, "
                f"bits {ready['bits']}{', mweb' if ready['mweb'] else ''}"
            )
            figures["template_transactions"] = ready["transactions"]
            if args.connections > 0 and args.seconds > 0:
                figures.update(rate_phase(children, args, ready["url"], workdir))
            if args.idle_connections > 0:
                figures.update(idle_phase(children, args, ready["url"], ready["announce_url"], workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals: dict[str, bool | None] = {}
    accepted = figures.get("accepted_per_s")
    if figures["algorithm"] == "sha256d":
        goals["sha256d_40k_shares_per_s"] = None if accepted is None else accepted >= GOAL_SHA256D_PER_S
    else:
        if accepted is not None:
            figures["accepted_vs_scrypt_batch"] = round(accepted / figures["scrypt_batch_hs"], 3)
            figures["accepted_vs_scrypt_batch_threads"] = round(
                accepted / figures["scrypt_batch_hs_threads"], 3
            )
        goals["scrypt_80pct_of_batch_hash_rate"] = (
            None if accepted is None else figures["accepted_vs_scrypt_batch"] >= GOAL_SCRYPT_RATIO
        )
    if figures.get("broadcast_ms") is not None:
        full_size = figures["idle_connections"] >= GOAL_BROADCAST_CONNECTIONS
        goals["broadcast_10k_within_100ms"] = full_size and figures["broadcast_ms"] <= GOAL_BROADCAST_MS
        goals["rss_4kb_per_idle_conn"] = figures["rss_per_conn_kb"] <= GOAL_RSS_PER_CONN_KB
        # the same connections after --broadcast-rounds new blocks (per-connection job maps fill up)
        goals["rss_4kb_per_idle_conn_after_broadcasts"] = (
            figures["rss_per_conn_kb_after_broadcasts"] <= GOAL_RSS_PER_CONN_KB
        )
    figures["goals_met"] = goals
    figures["goals"] = {
        "sha256d_accepted_per_s": GOAL_SHA256D_PER_S,
        "broadcast_ms_at_10k": GOAL_BROADCAST_MS,
        "rss_per_conn_kb": GOAL_RSS_PER_CONN_KB,
        "scrypt_accepted_vs_batch": GOAL_SCRYPT_RATIO,
    }
    print(json.dumps(figures), flush=True)
    return 0

