"""The ``pool`` command."""
from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path


def _bench(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parent.parent / "bench" / "hashing.py"
    sys.argv = [str(script), "--seconds", str(args.seconds)]
    runpy.run_path(str(script), run_name="__main__")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pool", description="Stratum v1 mining pool server")
    commands = parser.add_subparsers(dest="command", required=True)
    bench = commands.add_parser("bench", help="measure hashing and share validation speed")
    bench.add_argument("--seconds", type=float, default=1.0)
    bench.set_defaults(handler=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
