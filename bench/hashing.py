#!/usr/bin/env python3
"""Hashing and share-validation speed on one core, against hashlib measured in the same run.

Prints progress to stderr and one JSON line at the end.  Figures are hashes (or full share
validations) per second; the ratio keys compare with the hashlib baseline of the same run, since
the machines this runs on are shared and noisy.  Goals (issue "native hashing core"):
native single scrypt >= 1.5x hashlib, batch scrypt >= 3.5x hashlib, full sha256d validation
>= 150k/s, full scrypt validation within 10 % of the raw (batch) hash rate.

    python bench/hashing.py [--seconds 1.0] [--rounds 3]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time

from share_validator import hashing
from share_validator.bitcoin.coins import get_coin
from share_validator.bitcoin.job import Job, Template
from share_validator.bitcoin.validator import MinerState, ShareValidator
from share_validator.difficulty import Difficulty

BATCH = 32


def rate(fn, units_per_call: int, seconds: float, rounds: int) -> float:
    """Best units/s over ``rounds`` timed runs of about ``seconds`` each."""
    best = 0.0
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            fn()
            calls += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, calls * units_per_call / (now - start))
    return best


# Transactions per block, shaped like busy mainnet blocks: ~2,500 on Bitcoin (a 12-deep merkle
# branch), ~250 on Litecoin (8 deep; block 2,265,985 in tests/data has 58).
TX_COUNTS = {"bitcoin": 2500, "litecoin": 250}


def mainnet_like_job(coin_name: str, tx_count: int | None = None) -> Job:
    """A job shaped like a busy mainnet block of the coin (see TX_COUNTS)."""
    tx_count = tx_count or TX_COUNTS[coin_name]
    template = Template.from_gbt({
        "version": 0x20000000, "previousblockhash": "11" * 32, "bits": "1a010ccd", "curtime": 1_700_000_000,
        "height": 2_500_000, "coinbasevalue": 625_000_000,
        "transactions": [{"data": "00", "txid": f"{i:064x}"} for i in range(1, tx_count)],
        "default_witness_commitment": "6a24aa21a9ed" + "00" * 32,
    })
    payout = bytes.fromhex("0014") + bytes(20)
    return Job("1", get_coin(coin_name), template, payout_script=payout, pool_tag=b"/quarry/")


def validation_rate(coin_name: str, seconds: float, rounds: int, batch: bool) -> float:
    coin = get_coin(coin_name)
    job = mainnet_like_job(coin_name)
    state = MinerState(bytes.fromhex("01020304"), 4)
    state.authorized.add("worker")
    state.job_sent("1", Difficulty(coin, 1e-12))
    ntime = f"{job.ntime:08x}"
    counter = iter(range(1 << 62))

    def fresh_validator() -> ShareValidator:
        validator = ShareValidator(coin)
        validator.add_job(job, clean=True)
        return validator

    holder = [fresh_validator()]
    # Submissions are made ahead (formatting them is the miner's work, parsing them the server's).
    def params() -> list:
        n = next(counter)
        return ["worker", "1", f"{n >> 32:08x}", ntime, f"{n & 0xFFFFFFFF:08x}"]

    if batch:
        batches = [[(state, params()) for _ in range(BATCH)] for _ in range(400)]
        position = [0]

        def run():
            i = position[0]
            if i == len(batches):
                holder[0] = fresh_validator()
                i = 0
            position[0] = i + 1
            results = holder[0].validate_batch(batches[i])
            assert results[0].accepted, results[0]
        units = BATCH
    else:
        prepared = [params() for _ in range(200_000 if coin.algorithm.name == "sha256d" else 2_000)]
        position = [0]

        def run():
            i = position[0]
            if i == len(prepared):
                holder[0] = fresh_validator()
                i = 0
            position[0] = i + 1
            assert holder[0].validate(state, prepared[i]).reject is None
        units = 1
    return rate(run, units, seconds, rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="length of one timed run")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per figure (best is kept)")
    args = parser.parse_args()
    native = hashing.load_backend("native")
    header = os.urandom(80)
    headers = [os.urandom(80) for _ in range(BATCH)]
    sha = hashlib.sha256
    figures: dict[str, float | str | bool] = {}

    def measure(key, fn, units=1):
        figures[key] = round(rate(fn, units, args.seconds, args.rounds), 1)
        print(f"{key}: {figures[key]:,.0f}", file=sys.stderr)

    measure("scrypt_hashlib_hs", lambda: hashlib.scrypt(header, salt=header, n=1024, r=1, p=1, dklen=32))
    measure("scrypt_native_hs", lambda: native.scrypt(header))
    measure("scrypt_batch_hs", lambda: native.scrypt_batch(headers), BATCH)
    measure("sha256d_hashlib_hs", lambda: sha(sha(header).digest()).digest())
    measure("sha256d_native_hs", lambda: native.sha256d(header))
    figures["validate_sha256d_per_s"] = round(validation_rate("bitcoin", args.seconds, args.rounds, batch=False), 1)
    print(f"validate_sha256d_per_s: {figures['validate_sha256d_per_s']:,.0f}", file=sys.stderr)
    figures["validate_scrypt_per_s"] = round(validation_rate("litecoin", args.seconds, args.rounds, batch=True), 1)
    print(f"validate_scrypt_per_s: {figures['validate_scrypt_per_s']:,.0f}", file=sys.stderr)
    figures["validate_scrypt_single_per_s"] = round(
        validation_rate("litecoin", args.seconds, args.rounds, batch=False), 1
    )
    hashlib_scrypt = figures["scrypt_hashlib_hs"]
    figures["scrypt_native_vs_hashlib"] = round(figures["scrypt_native_hs"] / hashlib_scrypt, 2)
    figures["scrypt_batch_vs_hashlib"] = round(figures["scrypt_batch_hs"] / hashlib_scrypt, 2)
    figures["validate_scrypt_vs_batch_hash"] = round(figures["validate_scrypt_per_s"] / figures["scrypt_batch_hs"], 3)
    figures["sha256d_native_vs_hashlib"] = round(figures["sha256d_native_hs"] / figures["sha256d_hashlib_hs"], 2)
    figures["goals_met"] = {
        "scrypt_native_1.5x": figures["scrypt_native_vs_hashlib"] >= 1.5,
        "scrypt_batch_3.5x": figures["scrypt_batch_vs_hashlib"] >= 3.5,
        "validate_sha256d_150k": figures["validate_sha256d_per_s"] >= 150_000,
        "validate_scrypt_within_10pct": figures["validate_scrypt_vs_batch_hash"] >= 0.9,
    }
    figures["merkle_branch_lengths"] = {name: len(mainnet_like_job(name).branch) for name in TX_COUNTS}
    figures["implementations"] = native.describe()
    figures["cpu"] = platform.processor() or platform.machine()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
