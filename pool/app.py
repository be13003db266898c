"""Running the pool: the components under one TaskGroup, stopped by a shutdown event."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import asyncpg
from yarl import URL

from payouts.fees import FeeConfig
from payouts.payments import PaymentPolicy, PaymentSender
from payouts.processor import PayoutProcessor
from pool.chain.blocks import BlockSubmitter
from pool.chain.tracker import BlockTracker
from pool.chain.work import WorkSource
from pool.config import API_DSN_ENV, PoolConfig
from pool.ledger.database import connect_pool, drop_share_partitions_before, ensure_share_partitions, migrate
from pool.ledger.embedded_postgres import PgServer
from pool.ledger.orphaned_postgres import lock_data_dir, stop_orphaned_server
from pool.ledger.recorder import FanoutRecorder, LogRecorder, Recorder
from pool.ledger.writer import LedgerProcess
from pool.rpc.client import DaemonClient
from pool.rpc.wire import DaemonEndpoint, DaemonError
from pool.stats.hashrate import hashes_per_difficulty
from pool.stats.memory_store import MemoryStats
from pool.stats.redis_store import RedisStats
from pool.stats.store import LiveStats
from pool.stratum.server import StratumServer

logger = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005


@dataclass
class RunningPool:
    """Handles on a running pool, for the devnet command and the tests."""

    config: PoolConfig
    daemon: DaemonClient
    server: StratumServer
    work: WorkSource
    blocks: BlockSubmitter
    recorder: Recorder
    db: asyncpg.Pool | None = None
    ledger: LedgerProcess | None = None
    stats: LiveStats | None = None
    tracker: BlockTracker | None = None
    embedded_postgres: PgServer | None = None


def embedded_postgres_dir(config: PoolConfig) -> Path:
    """Where the embedded PostgreSQL lives (without ``database.dsn``)."""
    return Path(config.data_dir).resolve() / "postgres"


async def open_database(config: PoolConfig) -> tuple[asyncpg.Pool, PgServer | None, str]:
    """The configured PostgreSQL, or an embedded one in the data directory; migrated, partitions made.
    Returns the connection pool, the embedded server (None for database.dsn) and the DSN."""
    embedded = None
    dsn = config.database.dsn
    if not dsn:
        lock_data_dir(config.data_dir)   # refuses when a live pool uses this data directory
        await asyncio.to_thread(stop_orphaned_server, embedded_postgres_dir(config))
        embedded = PgServer(embedded_postgres_dir(config), make_traversable=True)
        await asyncio.to_thread(embedded.start)
        dsn = embedded.dsn
        logger.info("no database.dsn configured: using an embedded PostgreSQL in %s (port %d)",
                    embedded.base_dir, embedded.port)
    try:
        db = await connect_pool(dsn)
        applied = await migrate(db)
        if applied:
            logger.info("database schema migrated: applied %s", applied)
        await ensure_share_partitions(db)
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    return db, embedded, dsn


def make_stats(config: PoolConfig) -> LiveStats:
    options = {"hashes_per_difficulty": hashes_per_difficulty(config.coin.diff1_target)}
    if config.redis.url:
        return RedisStats.from_url(config.redis.url, config.pool_name, **options)
    return MemoryStats(config.pool_name, **options)


async def rebuild_stats(stats: LiveStats, db: asyncpg.Pool, pool_name: str) -> None:
    """Reload the last day of per-minute aggregates (after a restart, or Redis lost its data)."""
    rows = await db.fetch(
        """SELECT pool, address, worker, minute, shares, difficulty_sum, last_share FROM worker_minutes
           WHERE pool = $1 AND minute > now() - interval '25 hours'""", pool_name)
    loaded = await stats.rebuild_from(rows)
    round_row = await db.fetchrow("SELECT work, shares, started FROM rounds WHERE pool = $1", pool_name)
    if round_row is not None and hasattr(stats, "rebuild_round"):
        await stats.rebuild_round(pool_name, work=round_row["work"], shares=round_row["shares"],
                                  started=round_row["started"])
    logger.info("live statistics rebuilt from %d per-minute rows", loaded)


async def watch_stats_store(stats: LiveStats, db: asyncpg.Pool, pool_name: str, interval_s: float = 15.0) -> None:
    """Redis restarted empty or flushed: rebuild the statistics from the ledger's aggregates."""
    if not hasattr(stats, "store_lost"):
        return
    while True:
        try:
            if await stats.store_lost():
                logger.warning("live statistics were lost from Redis; rebuilding them from PostgreSQL")
                await rebuild_stats(stats, db, pool_name)
                await stats.mark_rebuilt()
        except Exception as exc:  # Redis or PostgreSQL away: the next round tries again
            logger.debug("statistics store check: %s", exc)
        await asyncio.sleep(interval_s)


def make_payout_processor(config: PoolConfig, db: asyncpg.Pool) -> PayoutProcessor:
    payouts = config.payouts
    fees = FeeConfig(payouts.pool_fee_percent, list(payouts.fee_recipients))
    block_value = None
    if payouts.scheme == "pps":
        coin = config.coin
        block_value = lambda share: coin.block_subsidy(share.height)
    return PayoutProcessor(db, config.pool_name, payouts.scheme, fees, payouts.pplns_factor, block_value=block_value,
                           settle_s=payouts.pps_settle_s)


async def run_payouts(processor: PayoutProcessor, interval_s: float, counters: dict[str, int] | None = None) -> None:
    """Credit matured blocks (and PPS shares) every interval; one run at a time pool-wide (advisory lock).

    ``counters`` (for the metrics): runs, failures (runs that raised), blocks_credited,
    block_failures (a block not credited by a run: the processor logs the alert) and the gauge
    blocks_not_credited (how many the last run could not credit)."""
    counters = counters if counters is not None else {}
    while True:
        try:
            counters["runs"] = counters.get("runs", 0) + 1
            result = await processor.run_once()
            counters["blocks_credited"] = counters.get("blocks_credited", 0) + len(result.credited)
            if result.credited:
                logger.info("credited blocks at heights %s", result.credited)
            if not result.locked_out:
                counters["block_failures"] = counters.get("block_failures", 0) + len(result.failed)
                counters["blocks_not_credited"] = len(result.failed)
        except Exception:
            counters["failures"] = counters.get("failures", 0) + 1
            logger.exception("payout run failed; trying again next interval")
        await asyncio.sleep(interval_s)


def wallet_endpoint(config: PoolConfig) -> DaemonEndpoint:
    """The daemon holding the pool's wallet: ``payouts.wallet_url`` or the first daemon, with
    ``/wallet/<payouts.wallet>`` when a wallet name is configured.  Payments are broadcast through
    this same node (the reconciliation relies on it)."""
    payouts = config.payouts
    if payouts.wallet_url:
        endpoint = DaemonEndpoint.parse(payouts.wallet_url)
    else:
        first = config.daemons[0]
        endpoint = DaemonEndpoint.parse(first.url, user=first.user, password=first.password)
    if payouts.wallet:
        endpoint = DaemonEndpoint.parse(str(URL(endpoint.url).with_path(f"/wallet/{payouts.wallet}")),
                                        user=endpoint.user, password=endpoint.password)
    return endpoint


def make_payment_sender(config: PoolConfig, db: asyncpg.Pool, wallet: DaemonClient) -> PaymentSender:
    payouts = config.payouts
    policy = PaymentPolicy(minimum_payout=payouts.minimum_payout, fee_paid_by=payouts.tx_fee_paid_by,
                           max_payees=payouts.max_payees_per_tx, max_tx_fee=payouts.max_tx_fee,
                           payment_confirmations=payouts.payment_confirmations,
                           conflict_confirmations=payouts.conflict_confirmations)
    coin = config.coin
    return PaymentSender(db, wallet, config.pool_name, lambda address: config.family.payout_script(coin, address), policy)


def wallet_client(config: PoolConfig) -> DaemonClient:
    return DaemonClient([wallet_endpoint(config)], max_attempts=3, retry_max_time=10.0, request_timeout=60.0)


async def run_payments(config: PoolConfig, db: asyncpg.Pool) -> None:
    """Reconcile open payments and pay due balances every ``payouts.payment_interval_s``; one run at
    a time pool-wide (advisory lock)."""
    async with wallet_client(config) as wallet:
        sender = make_payment_sender(config, db, wallet)
        while True:
            try:
                result = await sender.run_once()
                if result.paid or result.changed:
                    logger.info("payments: sent %s, status changes %s", result.paid, result.changed)
            except Exception:
                logger.exception("payment run failed; trying again next interval")
            await asyncio.sleep(config.payouts.payment_interval_s)


async def supervise_api(config: PoolConfig, dsn: str) -> None:
    """Run ``pool api`` as a child process (so API queries never delay Stratum), restarted if it dies."""
    from pool.children import supervise

    await supervise([sys.executable, "-m", "pool.cli", "api", "-c", config.source],
                    env={**os.environ, API_DSN_ENV: dsn}, name=f"API process (port {config.api.port})")


async def maintain_partitions(db: asyncpg.Pool, retention_days: int) -> None:
    while True:
        await asyncio.sleep(3600)
        try:
            await ensure_share_partitions(db)
            await drop_share_partitions_before(db, date.today() - timedelta(days=retention_days))
        except Exception:
            logger.exception("share partition maintenance failed; trying again in an hour")


async def run_pool(config: PoolConfig, shutdown: asyncio.Event, *, recorder: Recorder | None = None,
                   on_ready: Callable[[RunningPool], None] | None = None, use_database: bool = True) -> None:
    endpoints = [DaemonEndpoint.parse(d.url, user=d.user, password=d.password) for d in config.daemons]
    db = embedded = ledger = stats = tracker = api_task = None
    background: list[asyncio.Task] = []
    payout_counters: dict[str, int] = {}
    metrics_runner = None
    if recorder is None:
        parts: list[Recorder] = []
        if use_database:
            db, embedded, dsn = await open_database(config)
            # The ledger's rows are encoded and written by a process of its own, off this event loop.
            ledger = LedgerProcess(
                dsn, config.pool_name, Path(config.data_dir) / "spill",
                flush_interval_s=config.database.flush_interval_s, batch_size=config.database.batch_size,
                write_timeout_s=config.database.write_timeout_s, log_level=config.log_level,
            )
            parts.append(ledger)
        stats = make_stats(config)
        parts.append(stats)
        if config.share_log:
            parts.append(LogRecorder(config.share_log))
        recorder = FanoutRecorder(*parts)
    try:
        async with DaemonClient(endpoints, request_timeout=15.0, retry_max_time=10.0) as daemon:
            validator = config.family.share_checker(config.coin, ntime_future_s=config.work.ntime_future_s)
            work_holder: list[WorkSource] = []
            # The daemons' answer moves the tip at once (before the block is looked for on the chain).
            blocks = BlockSubmitter(daemon, recorder, family=config.family,
                                    on_submitted=lambda record, outcome: work_holder[0].block_submitted(
                                        record, outcome),
                                    tip_height=lambda: _tip_height(work_holder),
                                    late_deadline_s=config.blocks.late_submit_deadline_s)

            def on_block(result, session) -> None:
                work_holder[0].block_found(result)  # the pool's own block on a current job moves the tip
                blocks.submit(result, session)

            async def check_address(address: str) -> bool:
                return await config.family.daemon_accepts_address(daemon, address)

            server = StratumServer(config, validator, recorder, on_block=on_block,
                                   check_address=check_address)
            work = WorkSource(daemon, server, config)
            work_holder.append(work)
            await recorder.start()
            if db is not None and stats is not None:
                if hasattr(stats, "store_lost"):
                    background.append(asyncio.ensure_future(watch_stats_store(stats, db, config.pool_name)))
                else:
                    try:
                        await rebuild_stats(stats, db, config.pool_name)
                    except Exception:
                        logger.exception("could not rebuild live statistics from the database")
            if db is not None:
                tracker = BlockTracker(daemon, db, config.pool_name, family=config.family, maturity=config.maturity,
                                       orphan_confirmations=config.blocks.orphan_confirmations,
                                       interval_s=config.blocks.tracker_interval_s)
                background.append(asyncio.ensure_future(tracker.run()))
                background.append(asyncio.ensure_future(
                    maintain_partitions(db, config.database.share_retention_days)))
                if config.payouts.enabled:
                    background.append(asyncio.ensure_future(
                        run_payouts(make_payout_processor(config, db), config.payouts.interval_s, payout_counters)))
                if config.payouts.enabled and config.payouts.payments_enabled:
                    background.append(asyncio.ensure_future(run_payments(config, db)))
                if config.api.enabled:
                    if Path(config.source).is_file():
                        dsn = config.database.dsn or embedded.dsn
                        api_task = asyncio.ensure_future(supervise_api(config, dsn))
                        background.append(api_task)
                    else:
                        logger.warning("api.enabled: the API process needs a config file; not started")
            await server.start()
            # Thousands of long-lived sessions make full collections slow (tens of ms inside a job
            # broadcast): keep what exists at start-up out of them and collect young objects less often.
            gc.freeze()
            gc.set_threshold(50_000, 20, 100)
            # The scrypt hashing threads need the GIL back after every batch, and a busy loop gives it
            # up only once per switch interval (5 ms by default, longer than a batch of 64 takes).
            sys.setswitchinterval(SWITCH_INTERVAL_S)
            running = RunningPool(config, daemon, server, work, blocks, recorder, db, ledger, stats, tracker, embedded)
            if config.api.metrics_listen:
                from pool.metrics import start_metrics_server

                try:
                    metrics_runner = await start_metrics_server(running, config.api.metrics_listen,
                                                                payout_counters=payout_counters)
                except OSError as error:
                    logger.error("metrics: cannot listen on %s: %s", config.api.metrics_listen, error)
            work_task = asyncio.ensure_future(work.run())
            try:
                if on_ready is not None:
                    on_ready(running)
                shutdown_task = asyncio.ensure_future(shutdown.wait())
                watched = {work_task, shutdown_task} | ({api_task} if api_task is not None else set())
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                if work_task in done:
                    work_task.result()  # a crashed work source stops the pool loudly
                if api_task in done:
                    api_task.result()  # ChildFailed: the API cannot listen on its port (it said so)
                shutdown_task.cancel()
            finally:
                logger.info("shutting down")
                for task in [work_task, *background]:
                    task.cancel()
                for task in [work_task, *background]:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                if metrics_runner is not None:
                    await metrics_runner.cleanup()
                await server.stop()
                await blocks.drain(config.blocks.shutdown_drain_s)
                await recorder.stop()
    finally:
        if db is not None:
            await db.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def _tip_height(work_holder: list[WorkSource]) -> int | None:
    """The height of the tip the current template builds on (None before the first template)."""
    template = work_holder[0].template if work_holder else None
    return None if template is None else template.height - 1


def install_signal_handlers(shutdown: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, shutdown.set)


async def check_daemon(config: PoolConfig) -> None:
    """Start-up checks against the daemon: reachable, the right chain, the pool address valid."""
    endpoints = [DaemonEndpoint.parse(d.url, user=d.user, password=d.password) for d in config.daemons]
    async with DaemonClient(endpoints, retry_max_time=10.0) as daemon:
        try:
            answer = await daemon.validateaddress(config.address)
        except DaemonError as exc:
            logger.warning("could not check the pool address with the daemon: %s", exc)
            return
        if not answer.get("isvalid"):
            raise SystemExit(f"{config.source}: pool.address {config.address} is not valid for the daemon's chain")
