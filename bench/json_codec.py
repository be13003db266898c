#!/usr/bin/env python3
"""Which JSON library for the Stratum hot path: stdlib json, orjson and msgspec on the pool's real messages.

Operations, each on the bytes the pool really handles (one line, newline included where the pool
sends one):

* ``decode_submit``: a typical ``mining.submit`` line from a miner -> Python objects;
* ``encode_submit_response``: ``{"id": N, "result": true, "error": null}`` -> bytes + newline;
* ``encode_notify``: a ``mining.notify`` with a 12-entry merkle branch (a full mainnet block) -> bytes
  + newline.

``msgspec`` is measured twice for decoding: generic (``msgspec.json.decode``, any JSON -> dict, the
same contract as the others) and typed (``msgspec_typed``: a ``Struct`` describing the request,
which also checks the shape -- a different contract, reported apart and not counted for
``fastest``).  Every library's output is checked against stdlib json's before timing.

Prints progress to stderr and one JSON line: ops/s per library and operation, the ratio of each to
stdlib json, and the fastest library per operation and overall (geometric mean of the ratios).
Runs with only orjson installed (msgspec is then skipped and the output says so); msgspec is not a
pool dependency.

    python bench/json_codec.py [--seconds 0.5] [--rounds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

SUBMIT_LINE = (
    b'{"id":4711,"method":"mining.submit","params":["ltc1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqp9ysmq.rig07",'
    b'"1a2f","0000b3c1","6287a50c","8d0e54f2"]}\n'
)


def _hex_digest(label: str, index: int) -> str:
    return hashlib.sha256(f"{label}{index}".encode()).hexdigest()


def submit_response() -> dict[str, Any]:
    return {"id": 4711, "result": True, "error": None}


def notify_message() -> dict[str, Any]:
    """A mining.notify as the pool sends it for a ~2,500-transaction block (12-deep merkle branch)."""
    coinb1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1c0381932208"
    coinb2 = (
        "0e2f7175617272792d62656e63682fffffffff02"  # pool tag push, sequence, two outputs
        "3f1e864a00000000160014"
        + "00" * 20  # payout (P2WPKH)
        + "0000000000000000266a24aa21a9ed"
        + _hex_digest("commitment", 0)  # witness commitment
        + "00000000"
    )
    return {
        "id": None,
        "method": "mining.notify",
        "params": [
            "1a30",
            _hex_digest("prevhash", 0),
            coinb1,
            coinb2,
            [_hex_digest("branch", index) for index in range(12)],
            "20000000",
            "1a010ccd",
            "6287a50c",
            True,
        ],
    }


def rate(function: Callable[[], Any], seconds: float, rounds: int) -> float:
    """Best calls/s over ``rounds`` timed runs of about ``seconds``; 100 calls between clock reads."""
    best = 0.0
    for _ in range(rounds):
        calls = 0
        start = time.perf_counter()
        deadline = start + seconds
        while True:
            for _ in range(100):
                function()
            calls += 100
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, calls / (now - start))
    return best


def codecs() -> tuple[dict[str, dict[str, Callable]], dict[str, str]]:
    """Per library: decode and encode functions with the pool's contracts; and what was skipped."""
    notes: dict[str, str] = {}
    std_dumps = json.dumps

    libraries: dict[str, dict[str, Callable]] = {
        "json": {
            "decode": json.loads,
            "encode": lambda obj: std_dumps(obj, separators=(",", ":")).encode() + b"\n",
        },
    }
    try:
        import orjson
    except ImportError:
        notes["orjson"] = "not installed: skipped"
    else:
        orjson_dumps = orjson.dumps
        libraries["orjson"] = {"decode": orjson.loads, "encode": lambda obj: orjson_dumps(obj) + b"\n"}
        notes["orjson"] = orjson.__version__
    try:
        import msgspec
    except ImportError:
        notes["msgspec"] = "not installed: skipped (pip install msgspec to compare it)"
    else:
        encoder = msgspec.json.Encoder()
        buffer_encode = encoder.encode

        class Request(msgspec.Struct):
            method: str
            id: int | str | None = None
            params: list[Any] = []

        typed = msgspec.json.Decoder(Request).decode
        libraries["msgspec"] = {
            "decode": msgspec.json.Decoder().decode,
            "encode": lambda obj: buffer_encode(obj) + b"\n",
        }
        libraries["msgspec_typed"] = {"decode": typed}
        notes["msgspec"] = msgspec.__version__
    return libraries, notes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one timed run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs per figure (best is kept)")
    args = parser.parse_args()

    libraries, notes = codecs()
    response, notify = submit_response(), notify_message()
    expected_submit = json.loads(SUBMIT_LINE)
    expected_response = json.dumps(response, separators=(",", ":")).encode() + b"\n"
    expected_notify = json.dumps(notify, separators=(",", ":")).encode() + b"\n"

    operations: dict[str, dict[str, Callable[[], Any]]] = {
        "decode_submit": {},
        "encode_submit_response": {},
        "encode_notify": {},
    }
    for name, codec in libraries.items():
        decode, encode = codec["decode"], codec.get("encode")
        decoded = decode(SUBMIT_LINE)
        if name == "msgspec_typed":
            decoded = {"id": decoded.id, "method": decoded.method, "params": decoded.params}
        if decoded != expected_submit:
            raise AssertionError(f"{name} decodes the submit line differently: {decoded!r}")
        operations["decode_submit"][name] = lambda decode=decode: decode(SUBMIT_LINE)
        if encode is None:
            continue
        for operation, message, expected in (
            ("encode_submit_response", response, expected_response),
            ("encode_notify", notify, expected_notify),
        ):
            if encode(message) != expected:
                raise AssertionError(f"{name} encodes {operation} differently: {encode(message)!r}")
            operations[operation][name] = lambda encode=encode, message=message: encode(message)

    ops_per_s: dict[str, dict[str, float]] = {}
    for operation, candidates in operations.items():
        ops_per_s[operation] = {}
        for name, function in candidates.items():
            ops_per_s[operation][name] = round(rate(function, args.seconds, args.rounds), 1)
            print(f"{operation:24s} {name:14s} {ops_per_s[operation][name]:>14,.0f} ops/s", file=sys.stderr)

    vs_json = {
        operation: {name: round(value / figures["json"], 2) for name, value in figures.items()}
        for operation, figures in ops_per_s.items()
    }
    comparable = [name for name in libraries if name != "msgspec_typed"]
    fastest = {
        operation: max((name for name in figures if name in comparable), key=figures.__getitem__)
        for operation, figures in ops_per_s.items()
    }
    geometric = {
        name: round(math.exp(sum(math.log(vs_json[op][name]) for op in vs_json) / len(vs_json)), 2)
        for name in comparable
    }
    print(
        json.dumps(
            {
                "ops_per_s": ops_per_s,
                "vs_json": vs_json,
                "fastest": fastest,
                "geomean_vs_json": geometric,
                "fastest_overall": max(geometric, key=geometric.__getitem__),
                "libraries": {"json": "stdlib " + platform.python_version(), **notes},
                "messages_bytes": {
                    "submit_line": len(SUBMIT_LINE),
                    "submit_response": len(expected_response),
                    "notify": len(expected_notify),
                },
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
