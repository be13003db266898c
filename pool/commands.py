"""The ``pool`` subcommands: each reads its config, starts what it needs and reports (`pool.cli` parses
the command line and calls one of these)."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import json
import logging
import os
import runpy
import sys
import urllib.error
import urllib.request
from pathlib import Path


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _run_async(coro) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency; stay usable without it
        return asyncio.run(coro)
    return uvloop.run(coro)


def _load(path: str):
    from pool.config import load_config
    from pool.tables import ConfigError

    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"pool: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    _setup_logging(config.log_level)
    from pool.listen import PortTaken, check_ports_free

    logger = logging.getLogger("pool")
    try:  # before anything starts: a port taken is said once, and the pool does not start
        check_ports_free(config)
    except PortTaken as taken:
        logger.error("%s", taken)
        return 2

    async def main() -> int:
        from pool.app import check_daemon, install_signal_handlers, run_pool
        from pool.children import ChildFailed

        shutdown = asyncio.Event()
        install_signal_handlers(shutdown)
        await check_daemon(config)
        try:
            await run_pool(config, shutdown)
        except ChildFailed as failed:  # the API process could not listen (its own line says where)
            logger.error("pool stopped: %s", failed)
            return 2
        except OSError as error:  # taken since the check
            if error.errno != errno.EADDRINUSE:
                raise
            logger.error("pool stopped: %s", error)
            return 2
        return 0

    return _run_async(main())


def cmd_api(args: argparse.Namespace) -> int:
    """The public API alone, in this process (``pool run`` starts it so when ``api.enabled``)."""
    config = _load(args.config)
    _setup_logging(config.log_level)
    from pool.config import API_DSN_ENV

    dsn = args.dsn or os.environ.get(API_DSN_ENV) or config.database.dsn
    if not dsn:
        print("pool api: needs database.dsn in the config or --dsn (the embedded PostgreSQL belongs to "
              "`pool run`, which passes its DSN to the API it starts)", file=sys.stderr)
        return 2

    async def main() -> int:
        from pool.api.app import run_api
        from pool.app import install_signal_handlers
        from pool.children import EXIT_PORT_TAKEN
        from pool.listen import port_taken_message

        shutdown = asyncio.Event()
        install_signal_handlers(shutdown)
        def announce(port: int) -> None:
            print(f"API PORT {port}", flush=True)

        try:
            if args.worker_port is not None:  # one of several workers, on the port its parent holds
                await run_api(config, dsn, shutdown, on_ready=announce, worker_port=args.worker_port)
            elif config.api.workers > 1:
                from pool.api.app import run_api_workers

                await run_api_workers(config, args.config, dsn, shutdown, on_ready=announce)
            else:
                await run_api(config, dsn, shutdown, on_ready=announce)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            port = args.worker_port if args.worker_port is not None else config.api.port
            print(f"pool api: {port_taken_message('api.port', config.api.host, port)}", file=sys.stderr)
            return EXIT_PORT_TAKEN  # the pool that started this process does not start it again
        return 0

    return _run_async(main())


@contextlib.asynccontextmanager
async def _database(config, *, read_only: bool = False):
    """The pool's database for a one-off command.  Without ``database.dsn``: the embedded server the
    running pool started in the data directory when one runs there (PostgreSQL allows one server
    per data directory), else one started and stopped with the command.  A read-only command
    changes nothing on a running pool's database: it checks the schema version instead of
    migrating."""
    from pool.app import embedded_postgres_dir, open_database
    from pool.ledger.running_postgres import connect_running_server

    if not config.database.dsn:
        db = await connect_running_server(embedded_postgres_dir(config))
        if db is not None:
            try:
                if read_only:
                    await _check_schema(db)
                else:
                    from pool.ledger.database import migrate

                    await migrate(db)
                yield db
            finally:
                await db.close()
            return
    db, embedded, _ = await open_database(config)
    try:
        yield db
    finally:
        await db.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


async def _check_schema(db) -> None:
    """Exit (2) unless the database is at the schema version of this code."""
    from pool.ledger.database import applied_migrations, load_migrations

    applied = max(await applied_migrations(db), default=0)
    known = max((migration.version for migration in load_migrations()), default=0)
    if applied != known:
        print(f"pool: the database is at schema version {applied} and this quarry is at {known}: run the "
              "running pool's own version of this command, or `pool migrate`", file=sys.stderr)
        raise SystemExit(2)


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply the missing schema migrations (the pool also does this at start)."""
    config = _load(args.config)
    _setup_logging(config.log_level)

    async def main() -> int:
        from pool.ledger.database import SchemaError

        try:
            async with _database(config) as db:
                version = await db.fetchval("SELECT max(version) FROM schema_version")
        except SchemaError as exc:
            print(f"pool migrate: {exc}", file=sys.stderr)
            return 2
        print(f"database schema at version {version}")
        return 0

    return _run_async(main())


def cmd_verify_block(args: argparse.Namespace) -> int:
    """Recompute a paid block's payout report from the stored shares and check it and its Merkle root."""
    config = _load(args.config)
    _setup_logging("WARNING")

    async def main() -> int:
        from pool.app import make_payout_processor

        async with _database(config, read_only=True) as db:
            ok, detail = await make_payout_processor(config, db).verify_block(args.height)
        print(f"block {args.height}: {'OK' if ok else 'MISMATCH'}: {detail}")
        return 0 if ok else 1

    return _run_async(main())


def cmd_pay(args: argparse.Namespace) -> int:
    """Reconcile open payments and pay due balances (once, or every payment interval)."""
    config = _load(args.config)
    _setup_logging(config.log_level)

    async def main() -> int:
        from pool.app import make_payment_sender, wallet_client

        async with _database(config) as db, wallet_client(config) as wallet:
            sender = make_payment_sender(config, db, wallet)
            while True:
                run = await sender.run_once()
                print(json.dumps({"locked_out": run.locked_out, "paid": run.paid,
                                  "changed": {str(k): v for k, v in run.changed.items()},
                                  "skipped": run.skipped, "alerts": run.alerts,
                                  "reserve": run.reserve.as_dict() if run.reserve else None}), flush=True)
                if args.once:
                    return 1 if run.alerts else 0
                await asyncio.sleep(config.payouts.payment_interval_s)

    return _run_async(main())


def cmd_check_ledger(args: argparse.Namespace) -> int:
    """Check the ledger invariant (journal == balances, blocks, payments) and show the reserve."""
    config = _load(args.config)
    _setup_logging("WARNING")

    async def main() -> int:
        from payouts.ledger import check_invariant
        from pool.app import make_payment_sender, wallet_client
        from pool.rpc.wire import DaemonError

        async with _database(config, read_only=True) as db:
            async with db.acquire() as connection:
                problems = await check_invariant(connection, config.pool_name)
            for line in problems:
                print(f"PROBLEM: {line}")
            if not problems:
                print("ledger OK: every balance equals the sum of its journal; blocks and payments add up")
            if not args.no_wallet:
                try:
                    async with wallet_client(config) as wallet:
                        reserve = await make_payment_sender(config, db, wallet).reserve()
                    print("reserve: " + json.dumps(reserve.as_dict()))
                    if reserve.reserve < 0:
                        print("PROBLEM: the pool owes more than its wallet holds")
                        problems.append("negative reserve")
                except DaemonError as exc:
                    print(f"reserve: the wallet does not answer: {exc}")
        return 1 if problems else 0

    return _run_async(main())


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.config)
    print(f"{args.config}: OK ({config.coin.name}, {len(config.stratum.ports)} stratum ports, "
          f"{len(config.daemons)} daemons)")
    return 0


def cmd_devnet(args: argparse.Namespace) -> int:
    _setup_logging("WARNING" if not args.verbose else "INFO")
    from pool.devtools.devnet import devnet_main

    try:
        return _run_async(devnet_main(args.blocks, args.keep, args.data_dir, args.miners, args.port,
                                      args.api_port))
    except KeyboardInterrupt:
        return 0


def cmd_miner(args: argparse.Namespace, rest: list[str]) -> int:
    from pool.devtools.miner.cli import main as miner_main

    return miner_main(rest)


def _post(url: str, path: str, secret: str, body: dict) -> int:
    request = urllib.request.Request(url.rstrip("/") + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"X-Notify-Secret": secret, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            answer = response.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        print(f"pool: {exc.code} {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"pool: {exc}", file=sys.stderr)
        return 1
    if path != "/notify":
        print(answer)
    return 0


def cmd_notify(args: argparse.Namespace) -> int:
    """For ``-blocknotify``: tell the pool a block arrived (POST to its loopback notify endpoint)."""
    return _post(args.url, "/notify", args.secret, {"block": args.blockhash})


def cmd_message(args: argparse.Namespace) -> int:
    return _post(args.url, "/admin/message", args.secret, {"text": args.text})


def cmd_reconnect(args: argparse.Namespace) -> int:
    body: dict = {"wait": args.wait}
    if args.host:
        body.update(host=args.host, port=args.port)
    return _post(args.url, "/admin/reconnect", args.secret, body)


def cmd_bench(args: argparse.Namespace) -> int:
    script = Path(__file__).resolve().parent.parent / "bench" / "hashing.py"
    sys.argv = [str(script), "--seconds", str(args.seconds)]
    runpy.run_path(str(script), run_name="__main__")
    return 0
