"""The ``pool`` command line: run, api, migrate, verify-block, pay, check-ledger, check-config, devnet,
miner, notify, message, reconnect, bench.  Argument parsing only; the commands are `pool.commands`."""
from __future__ import annotations

import argparse
import sys

from pool import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pool", description="Stratum v1 mining pool server")
    subparsers = parser.add_subparsers(dest="command", required=True)

    run = subparsers.add_parser("run", help="run the pool from a TOML config")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(handler=commands.cmd_run)

    api = subparsers.add_parser("api", help="run the public statistics API alone (its own process)")
    api.add_argument("-c", "--config", required=True)
    api.add_argument("--dsn", default=None, help="PostgreSQL DSN (default: database.dsn of the config)")
    api.add_argument("--worker-port", type=int, default=None, help=argparse.SUPPRESS)  # one of api.workers
    api.set_defaults(handler=commands.cmd_api)

    migrate = subparsers.add_parser("migrate", help="apply missing database migrations and exit")
    migrate.add_argument("-c", "--config", required=True)
    migrate.set_defaults(handler=commands.cmd_migrate)

    verify = subparsers.add_parser("verify-block", help="recompute a paid block's payout report and check it")
    verify.add_argument("-c", "--config", required=True)
    verify.add_argument("height", type=int)
    verify.set_defaults(handler=commands.cmd_verify_block)

    pay = subparsers.add_parser("pay", help="reconcile open payments and pay due balances through the wallet")
    pay.add_argument("-c", "--config", required=True)
    pay.add_argument("--once", action="store_true", help="one run, then exit (1 if it raised an alert)")
    pay.set_defaults(handler=commands.cmd_pay)

    ledger = subparsers.add_parser("check-ledger", help="check the ledger invariant and show the pool's reserve")
    ledger.add_argument("-c", "--config", required=True)
    ledger.add_argument("--no-wallet", action="store_true", help="do not ask the wallet for the reserve")
    ledger.set_defaults(handler=commands.cmd_check_ledger)

    check = subparsers.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(handler=commands.cmd_check_config)

    devnet = subparsers.add_parser("devnet", help="regtest daemons, the pool and a demo miner on this machine")
    devnet.add_argument("--blocks", type=int, default=None, help="stop after this many accepted blocks")
    devnet.add_argument("--miners", type=int, default=1, help="demo miners to run")
    devnet.add_argument("--port", type=int, default=3333, help="stratum port (0: any free port)")
    devnet.add_argument("--api-port", type=int, default=8080,
                        help="stats page and API port (0: any free port, -1: none)")
    devnet.add_argument("--data-dir", default=None, help="keep the regtest chain here (default: a temp dir)")
    devnet.add_argument("--keep", action="store_true", help="keep the temporary directory")
    devnet.add_argument("-v", "--verbose", action="store_true")
    devnet.set_defaults(handler=commands.cmd_devnet)

    miner = subparsers.add_parser("miner", help="the demo CPU miner (pool miner --help)", add_help=False)
    miner.set_defaults(handler=commands.cmd_miner, passthrough=True)

    notify = subparsers.add_parser("notify", help="-blocknotify hook: tell a running pool about a new block")
    notify.add_argument("--url", default="http://127.0.0.1:8081", help="the pool's work.notify_listen")
    notify.add_argument("--secret", required=True, help="the pool's work.notify_secret")
    notify.add_argument("blockhash", nargs="?", help="the %%s of -blocknotify (informative)")
    notify.set_defaults(handler=commands.cmd_notify)

    message = subparsers.add_parser("message", help="operator: show a message to every connected miner")
    message.add_argument("--url", default="http://127.0.0.1:8081", help="the pool's work.notify_listen")
    message.add_argument("--secret", required=True)
    message.add_argument("text")
    message.set_defaults(handler=commands.cmd_message)

    reconnect = subparsers.add_parser("reconnect", help="operator: ask every miner to reconnect (here or elsewhere)")
    reconnect.add_argument("--url", default="http://127.0.0.1:8081", help="the pool's work.notify_listen")
    reconnect.add_argument("--secret", required=True)
    reconnect.add_argument("--host", default=None, help="another pool to move miners to")
    reconnect.add_argument("--port", type=int, default=3333)
    reconnect.add_argument("--wait", type=int, default=0, help="seconds miners wait before reconnecting")
    reconnect.set_defaults(handler=commands.cmd_reconnect)

    bench = subparsers.add_parser("bench", help="measure hashing and share validation speed")
    bench.add_argument("--seconds", type=float, default=1.0)
    bench.set_defaults(handler=commands.cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "miner":
        return commands.cmd_miner(argparse.Namespace(), argv[1:])
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
