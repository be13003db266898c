"""The API process: the aiohttp application over the ledger (`make_app`), served alone by ``pool api``
(`run_api`) or by ``api.workers`` processes on one port (`run_api_workers`).

The routes are in `pool.api.routes`, what every request goes through in `pool.api.middleware`.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable

import asyncpg
import orjson
from aiohttp import web

from pool.api.data import PoolData
from pool.api.feed import EventFeed
from pool.api.middleware import (
    LIMITER,
    METRICS,
    ApiMetrics,
    cors_middleware,
    error_middleware,
    metrics_middleware,
    rate_limit_middleware,
)
from pool.api.openapi import openapi_document
from pool.api.ratelimit import RateLimits
from pool.api.routes import CONFIG, DASHBOARD, DASHBOARD_ROUTES, DATA, FEED, OPENAPI, ROUTES, load_dashboard
from pool.config import API_DSN_ENV, PoolConfig
from pool.rpc.client import DaemonClient
from pool.rpc.wire import DaemonEndpoint, DaemonError

logger = logging.getLogger(__name__)


async def watch_network(data: PoolData, config: PoolConfig, interval_s: float) -> None:
    """Ask the coin daemon for the network difficulty and height now and then (never in a request)."""
    endpoints = [DaemonEndpoint.parse(d.url, user=d.user, password=d.password) for d in config.daemons]
    async with DaemonClient(endpoints, request_timeout=5.0, connect_timeout=2.0, max_attempts=1,
                            retry_max_time=0.0) as daemon:
        while True:
            try:
                data.apply_mining_info(await daemon.call("getmininginfo"))
            except DaemonError as error:
                logger.debug("api: getmininginfo: %s", error)
            await asyncio.sleep(interval_s)


def make_app(config: PoolConfig, db: asyncpg.Pool, *, network_poll_s: float | None = 30.0,
             clock: Callable[[], float] = time.time) -> web.Application:
    """The API application on an open asyncpg pool (the caller closes it). ``network_poll_s=None``
    asks no daemon (network figures then come from the ledger's latest block)."""
    api = config.api
    data = PoolData(config, db, clock=clock)
    limiter = RateLimits(api.rate_limit_per_s, api.rate_limit_burst, api.trusted_networks)
    # Request lines up to 64 KiB reach the middlewares (a long path gets a JSON 414, not the parser's 400).
    app = web.Application(handler_args={"max_line_size": 65536, "max_field_size": 16384}, middlewares=[
        metrics_middleware,
        cors_middleware(api.cors_origins),
        error_middleware,
        rate_limit_middleware(limiter, api.trust_forwarded_for),
    ])
    app[CONFIG] = config
    app[DATA] = data
    app[LIMITER] = limiter
    app[METRICS] = ApiMetrics(data)
    app[FEED] = EventFeed(data)
    app[OPENAPI] = orjson.dumps(openapi_document(config))
    app[DASHBOARD] = load_dashboard()
    for path, handler in ROUTES + DASHBOARD_ROUTES:
        app.router.add_get(path, handler)

    async def components(app: web.Application) -> AsyncIterator[None]:
        feed = app[FEED]
        feed.start()
        tasks = [asyncio.ensure_future(data.watch_ledger())]
        if network_poll_s is not None and config.daemons:
            tasks.append(asyncio.ensure_future(watch_network(data, config, network_poll_s)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await feed.stop()
        await data.close()

    app.cleanup_ctx.append(components)
    return app


async def _keep_session(connection: asyncpg.Connection) -> None:
    """A released connection is not reset: the API's statements are reads that leave no session state
    (no advisory lock, SET or cursor; the one LISTEN is undone by `PoolData.watch_ledger`), and asyncpg's
    reset is one more round trip per query."""


async def run_api(config: PoolConfig, dsn: str, shutdown: asyncio.Event, *,
                  on_ready: Callable[[int], None] | None = None, worker_port: int | None = None) -> None:
    """Serve the API on ``api.host:api.port`` until ``shutdown`` is set; as one of ``api.workers``, on
    ``worker_port`` with SO_REUSEPORT (the kernel spreads the connections over the workers)."""
    from pool.ledger.database import connect_pool

    db = await connect_pool(dsn, min_size=2, max_size=10, command_timeout=10.0, reset=_keep_session,
                            server_settings={"application_name": "quarry-api"})
    try:
        app = make_app(config, db)
        runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await runner.setup()
        try:
            if worker_port is not None:
                site = web.TCPSite(runner, config.api.host, worker_port, backlog=1024, reuse_port=True)
            else:
                site = web.TCPSite(runner, config.api.host, config.api.port, backlog=1024)
            await site.start()
            port = runner.addresses[0][1] if runner.addresses else config.api.port
            # Everything made so far (modules, the application) lives as long as the process: out of the
            # garbage collector's sight, its full collections walk only what requests and caches make.
            gc.freeze()
            logger.info("API on http://%s:%d/api/v1/pools, dashboard on http://%s:%d/", config.api.host, port,
                        config.api.host, port)
            if on_ready is not None:
                on_ready(port)
            await shutdown.wait()
        finally:
            await runner.cleanup()
    finally:
        await db.close()


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (not listening) with SO_REUSEPORT: it holds the port (``api.port``, or a free one
    for 0) that the workers then listen on with SO_REUSEPORT too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


async def run_api_workers(config: PoolConfig, config_path: str, dsn: str, shutdown: asyncio.Event, *,
                          on_ready: Callable[[int], None] | None = None) -> None:
    """``api.workers`` processes (``pool api --worker-port``) serving one port with SO_REUSEPORT; a worker
    that dies is started again; ``shutdown`` ends them all."""
    import shutil
    import sys
    import tempfile

    from pool.children import supervise

    sock = reserve_port(config.api.host, config.api.port)
    port = sock.getsockname()[1]
    metrics_dir = tempfile.mkdtemp(prefix="quarry-api-metrics-")
    env = {**os.environ, API_DSN_ENV: dsn, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
    ready = asyncio.Event()
    started = 0

    def started_one(line: bytes) -> bool:
        nonlocal started
        if not line.startswith(b"API PORT "):
            return False
        started += 1
        if started >= config.api.workers:
            ready.set()
        return True

    argv = [sys.executable, "-m", "pool.cli", "api", "-c", config_path, "--worker-port", str(port)]
    tasks = [asyncio.create_task(supervise(argv, env=env, name=f"API worker {number}", on_first_line=started_one,
                                           done=shutdown, fatal_codes=()))  # a worker's port is its parent's
             for number in range(config.api.workers)]
    waiting = [asyncio.create_task(ready.wait()), asyncio.create_task(shutdown.wait())]
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if ready.is_set() and on_ready is not None:
            on_ready(port)
        await shutdown.wait()
    finally:
        for task in tasks + waiting:
            task.cancel()
        await asyncio.gather(*tasks, *waiting, return_exceptions=True)
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
