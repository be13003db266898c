"""Running the pool: the components under one TaskGroup, stopped by a shutdown event."""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from share_validator.validator import ShareValidator

from pool.blocks import BlockSubmitter
from pool.config import PoolConfig
from pool.daemon import DaemonClient, DaemonEndpoint, DaemonError
from pool.recorder import LogRecorder, Recorder
from pool.stratum.server import StratumServer
from pool.work import WorkSource

logger = logging.getLogger(__name__)


@dataclass
class RunningPool:
    """Handles on a running pool, for the devnet command and the tests."""

    config: PoolConfig
    daemon: DaemonClient
    server: StratumServer
    work: WorkSource
    blocks: BlockSubmitter
    recorder: Recorder


async def run_pool(config: PoolConfig, shutdown: asyncio.Event, *, recorder: Recorder | None = None,
                   on_ready: Callable[[RunningPool], None] | None = None) -> None:
    endpoints = [DaemonEndpoint.parse(d.url, user=d.user, password=d.password) for d in config.daemons]
    recorder = recorder or LogRecorder(config.share_log or None)
    async with DaemonClient(endpoints, request_timeout=15.0, retry_max_time=10.0) as daemon:
        validator = ShareValidator(config.coin, ntime_future_s=config.work.ntime_future_s)
        work_holder: list[WorkSource] = []
        blocks = BlockSubmitter(daemon, recorder, on_accepted=lambda: work_holder[0].wake("submit"))

        async def check_address(address: str) -> bool:
            answer = await daemon.validateaddress(address)
            return bool(answer.get("isvalid"))

        server = StratumServer(config, validator, recorder, on_block=blocks.submit, check_address=check_address)
        work = WorkSource(daemon, server, config)
        work_holder.append(work)
        await recorder.start()
        await server.start()
        # Thousands of long-lived sessions make full collections slow (tens of ms inside a job
        # broadcast): keep what exists at start-up out of them and collect young objects less often.
        gc.freeze()
        gc.set_threshold(50_000, 20, 100)
        running = RunningPool(config, daemon, server, work, blocks, recorder)
        work_task = asyncio.ensure_future(work.run())
        try:
            if on_ready is not None:
                on_ready(running)
            shutdown_task = asyncio.ensure_future(shutdown.wait())
            done, _ = await asyncio.wait({work_task, shutdown_task}, return_when=asyncio.FIRST_COMPLETED)
            if work_task in done:
                work_task.result()  # a crashed work source stops the pool loudly
            shutdown_task.cancel()
        finally:
            logger.info("shutting down")
            work_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work_task
            await server.stop()
            await blocks.wait()
            await recorder.stop()


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
