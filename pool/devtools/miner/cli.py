"""The demo miner's command line: ``pool miner --url stratum+tcp://host:port --user ADDRESS.worker ...``
(also ``python -m pool.devtools.miner``). It prints the run's counters as JSON when it stops."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from urllib.parse import urlsplit

from pool.devtools.miner.hashing import ALGORITHMS
from pool.devtools.miner.mining import run_miner


def parse_stratum_url(url: str) -> tuple[str, int]:
    """``stratum+tcp://host:port`` (or ``host:port``) -> (host, port). TLS is not supported."""
    if "://" not in url:
        url = "stratum+tcp://" + url
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("stratum+tcp", "stratum", "tcp"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r}: use stratum+tcp://host:port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"invalid port in {url!r}") from None
    if not parts.hostname or port is None:
        raise ValueError(f"URL must name a host and a port: {url!r}")
    return parts.hostname, port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pool miner", description="Demo Stratum v1 CPU miner (scrypt / sha256d)"
    )
    parser.add_argument("--url", required=True, help="stratum+tcp://host:port")
    parser.add_argument("--user", required=True, help="worker name, usually ADDRESS.worker")
    parser.add_argument("--pass", dest="password", default="x", help="worker password (default: x)")
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="scrypt")
    parser.add_argument("--max-shares", type=int, default=None, help="stop after N shares are submitted")
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--suggest-difficulty", type=float, default=None)
    parser.add_argument("--no-version-rolling", action="store_true", help="do not send mining.configure")
    parser.add_argument(
        "--max-reconnects", type=int, default=5, help="consecutive failed connections before giving up"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log the protocol lines")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        host, port = parse_stratum_url(args.url)
    except ValueError as exc:
        parser.error(str(exc))
    if args.max_shares is not None and args.max_shares < 1:
        parser.error("--max-shares must be >= 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be > 0")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        stats = asyncio.run(
            run_miner(
                host,
                port,
                args.user,
                args.password,
                algorithm=args.algorithm,
                max_shares=args.max_shares,
                max_seconds=args.duration,
                version_rolling=not args.no_version_rolling,
                suggest_difficulty=args.suggest_difficulty,
                max_reconnects=args.max_reconnects,
            )
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(stats.as_dict(), sort_keys=True))
    return 1 if stats.gave_up else 0
