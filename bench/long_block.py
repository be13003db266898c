#!/usr/bin/env python3
"""Memory and per-share time of share validation through one long block.

Drives the share validator in this process (sha256d shares, one native call each) with
``--shares`` shares on one chain tip and a new job every ``--shares-per-job`` shares, as template
refreshes make them while a block takes its time. Every ``--every`` shares it prints the resident
set size, the duplicate-set entries held and the shares/s of that stretch. Duplicate sets live as
long as their jobs (the newest ``max_jobs_per_tip`` of the tip and as many stale ones), so memory
levels off once that many jobs have passed and the per-share time stays flat.

Prints progress to stderr and one JSON line at the end.

    python bench/long_block.py [--shares 10000000] [--shares-per-job 10000] [--every 1000000]
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from share_validator import hashing
from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import MinerState, ShareValidator
from share_validator.difficulty import Difficulty


def rss_mib() -> float:
    """The resident set size now (Linux), else the peak so far."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shares", type=int, default=10_000_000, help="shares on the one chain tip")
    parser.add_argument("--shares-per-job", type=int, default=10_000,
                        help="shares between two jobs (a pool's share rate x template_refresh_s)")
    parser.add_argument("--every", type=int, default=1_000_000, help="shares between two printed lines")
    args = parser.parse_args()
    if args.shares >= 1 << 32:
        parser.error("--shares must stay below 2^32 (one nonce per share)")

    coin = get_coin("bitcoin")
    template = Template.from_gbt({
        "version": 0x20000000, "previousblockhash": "11" * 32, "bits": "1a010ccd", "curtime": 1_700_000_000,
        "height": 900_000, "coinbasevalue": 312_500_000,
        "transactions": [{"data": "00", "txid": f"{i:064x}"} for i in range(1, 2500)],
        "default_witness_commitment": "6a24aa21a9ed" + "00" * 32,
    })
    payout = bytes.fromhex("0014") + bytes(20)
    validator = ShareValidator(coin)
    state = MinerState(bytes.fromhex("01020304"), 4)
    state.authorized.add("worker")
    difficulty = Difficulty(coin, 1e-12)  # every share is accepted: every share is remembered
    ntime = f"{template.curtime:08x}"
    jobs_made = 0

    def new_job() -> str:
        nonlocal jobs_made
        jobs_made += 1
        job = Job(f"{jobs_made:x}", coin, template, payout_script=payout, pool_tag=b"/quarry/")
        validator.add_job(job, clean=jobs_made == 1)
        state.job_sent(job.job_id, difficulty)
        return job.job_id

    def held() -> int:
        return sum(len(entries) for entries in validator._seen.values())

    validate = validator.validate
    rss_start = rss_mib()
    print(f"hashing: {hashing.describe()}; max_jobs_per_tip {validator.max_jobs_per_tip}; "
          f"{args.shares_per_job:,} shares per job; RSS at start {rss_start:.0f} MiB", file=sys.stderr)
    lines = []
    rejected = 0
    nonce = 0
    job_id = new_job()
    stretch_started = time.perf_counter()
    stretch_shares = 0
    started = stretch_started
    while nonce < args.shares:
        if nonce and nonce % args.shares_per_job == 0:
            job_id = new_job()
        if validate(state, ["worker", job_id, "00000000", ntime, f"{nonce:08x}"]).reject is not None:
            rejected += 1
        nonce += 1
        stretch_shares += 1
        if nonce % args.every == 0 or nonce == args.shares:
            now = time.perf_counter()
            line = {"shares": nonce, "jobs": jobs_made, "rss_mib": round(rss_mib(), 1), "duplicate_entries": held(),
                    "shares_per_s": round(stretch_shares / (now - stretch_started))}
            lines.append(line)
            print(f"{nonce:>12,} shares  {jobs_made:>5} jobs  RSS {line['rss_mib']:7.1f} MiB  "
                  f"{line['duplicate_entries']:>10,} duplicate entries  {line['shares_per_s']:>9,} shares/s",
                  file=sys.stderr)
            stretch_started, stretch_shares = time.perf_counter(), 0
    elapsed = time.perf_counter() - started
    figures = {
        "shares": args.shares,
        "shares_per_job": args.shares_per_job,
        "max_jobs_per_tip": validator.max_jobs_per_tip,
        "rejected": rejected,
        "rss_mib_start": round(rss_start, 1),
        "rss_mib_after": lines[-1]["rss_mib"],
        "duplicate_entries_after": lines[-1]["duplicate_entries"],
        "shares_per_s_first_stretch": lines[0]["shares_per_s"],
        "shares_per_s_last_stretch": lines[-1]["shares_per_s"],
        "shares_per_s": round(args.shares / elapsed),
        "stretches": lines,
    }
    print(f"RSS after {args.shares:,} shares on one long block: {figures['rss_mib_after']:.0f} MiB "
          f"(at start {rss_start:.0f} MiB; {figures['duplicate_entries_after']:,} duplicate entries held)",
          file=sys.stderr)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
