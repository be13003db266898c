"""The public API: an aiohttp application over the ledger, run alone by ``pool api`` (its own process).

Bad input never reaches a query: path and query values are checked first and answered with a 4xx JSON
error ``{"error": {"status", "code", "message"}}``; a database that cannot answer gives 503. Strings
from miners (worker names) are emitted with ``<``, ``>`` and ``&`` escaped as ``\\u003c``... so a JSON
document can be embedded in HTML without becoming markup. Every client IP has a token bucket
(``api.rate_limit_per_s``, ``api.rate_limit_burst``); CORS answers the origins in ``api.cors_origins``.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.resources
import logging
import math
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pool.api.caches import DataUnavailable
from pool.api.data import PoolData
from pool.api.feed import EventFeed
from pool.api.formats import dump_json
from pool.api.openapi import MAX_ADDRESS_CHARS, MAX_HEIGHT, MAX_PAGE, MAX_PAGE_SIZE, openapi_document
from pool.chain.daemon import DaemonClient
from pool.chain.rpc import DaemonEndpoint, DaemonError
from pool.config import API_DSN_ENV, PoolConfig

logger = logging.getLogger(__name__)

CONFIG = web.AppKey("config", PoolConfig)
DATA = web.AppKey("data", PoolData)
FEED = web.AppKey("feed", EventFeed)
LIMITER = web.AppKey("limiter", "RateLimiter")
METRICS = web.AppKey("metrics", "ApiMetrics")
OPENAPI = web.AppKey("openapi", bytes)
DASHBOARD = web.AppKey("dashboard", dict)

MAX_PATH_BYTES = 2048
DEFAULT_PAGE_SIZE = 20
_INTEGER = re.compile(r"[+-]?\d{1,19}")
_FLOAT = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")
_KEEPALIVE_S = 15.0


# -- answers -------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=dump_json(data), status=status, content_type="application/json",
                        headers={"X-Content-Type-Options": "nosniff", **(headers or {})})


def json_body_response(body: bytes) -> web.Response:
    """An answer whose JSON (from `dump_json`) was made once for many requests."""
    return web.Response(body=body, content_type="application/json", headers={"X-Content-Type-Options": "nosniff"})


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return json_response({"error": {"status": status, "code": code, "message": message}}, status, headers)


# -- input ---------------------------------------------------------------------------------------------


def query_int(request: web.Request, name: str, default: int, low: int, high: int, *, clamp: bool = False) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise ApiError(400, "bad_parameter", f"{name} must be an integer")
    value = int(raw)
    if clamp:
        return min(max(value, low), high)
    if not low <= value <= high:
        raise ApiError(400, "bad_parameter", f"{name} must be in {low}..{high}")
    return value


def query_float(request: web.Request, name: str, default: float | None, low: float, high: float, *,
                required: bool = False, exclusive_low: bool = False) -> float | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise ApiError(400, "missing_parameter", f"{name} is required")
        return default
    if not _FLOAT.fullmatch(raw):
        raise ApiError(400, "bad_parameter", f"{name} must be a number")
    value = float(raw)
    if not math.isfinite(value) or value < low or value > high or (exclusive_low and value == low):
        raise ApiError(400, "bad_parameter", f"{name} must be a number in {'(' if exclusive_low else '['}"
                                             f"{low:g}, {high:g}]")
    return value


def path_height(request: web.Request) -> int:
    raw = request.match_info["height"]
    if not _INTEGER.fullmatch(raw) or not 0 <= int(raw) <= MAX_HEIGHT:
        raise ApiError(400, "bad_height", f"height must be an integer in 0..{MAX_HEIGHT}")
    return int(raw)


_VALID_ADDRESSES: dict[tuple[str, str], None] = {}  # (coin, address) seen valid: decoding costs tens of µs
_MAX_VALID_ADDRESSES = 100_000


def path_address(request: web.Request) -> str:
    address = request.match_info["address"]
    config = request.app[CONFIG]
    if (config.coin.name, address) in _VALID_ADDRESSES:
        return address
    if len(address) > MAX_ADDRESS_CHARS:
        raise ApiError(400, "malformed_address", "the address is too long")
    try:
        config.family.payout_script(config.coin, address)
    except ValueError:  # FamilyError is one
        raise ApiError(400, "malformed_address", f"not a {config.coin.name} address") from None
    if len(_VALID_ADDRESSES) >= _MAX_VALID_ADDRESSES:
        _VALID_ADDRESSES.clear()
    _VALID_ADDRESSES[(config.coin.name, address)] = None
    return address


def pool_data(request: web.Request) -> PoolData:
    data = request.app[DATA]
    if request.match_info.get("pool") != data.pool:
        raise ApiError(404, "unknown_pool", "no such pool (GET /api/v1/pools lists them)")
    return data


def paging(request: web.Request) -> tuple[int, int]:
    page = query_int(request, "page", 0, 0, MAX_PAGE)
    page_size = query_int(request, "page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE, clamp=True)
    return page, page_size


def page_of(page: int, page_size: int, total: int, items: list) -> dict[str, Any]:
    return {"page": page, "page_size": page_size, "total": total, "items": items}


# -- handlers ------------------------------------------------------------------------------------------


async def list_pools(request: web.Request) -> web.Response:
    return json_response({"pools": [await request.app[DATA].pool_view()]})


async def get_pool(request: web.Request) -> web.Response:
    return json_body_response(await pool_data(request).pool_view_json())


async def get_performance(request: web.Request) -> web.Response:
    return json_response(await pool_data(request).performance())


async def list_blocks(request: web.Request) -> web.Response:
    data = pool_data(request)
    page, page_size = paging(request)
    status = request.query.get("status") or None
    if status is not None and status not in ("pending", "confirmed", "orphaned", "rejected"):
        raise ApiError(400, "bad_parameter", "status must be one of pending, confirmed, orphaned, rejected")
    return json_body_response(await data.blocks_json(page, page_size, status))


async def get_payout(request: web.Request) -> web.Response:
    data = pool_data(request)
    payout = await data.payout(path_height(request))
    if payout is None:
        raise ApiError(404, "no_payout", "no credited block at that height")
    return json_response(payout)


async def list_payments(request: web.Request) -> web.Response:
    data = pool_data(request)
    page, page_size = paging(request)
    total, items = await data.payments(page * page_size, page_size)
    return json_response(page_of(page, page_size, total, items))


async def list_miners(request: web.Request) -> web.Response:
    data = pool_data(request)
    page, page_size = paging(request)
    miners = await data.top_miners.get()
    start = page * page_size
    return json_response(page_of(page, page_size, len(miners), miners[start:start + page_size]))


async def get_miner(request: web.Request) -> web.Response:
    data = pool_data(request)
    miner = await data.miner(path_address(request))
    if miner is None:
        raise ApiError(404, "unknown_miner", "the pool has no record of this address")
    return json_response(miner)


async def get_miner_performance(request: web.Request) -> web.Response:
    data = pool_data(request)
    return json_response(await data.miner_performance(path_address(request)))


async def get_proof(request: web.Request) -> web.Response:
    data = pool_data(request)
    address = path_address(request)
    proof = await data.proof(address, path_height(request))
    if proof is None:
        raise ApiError(404, "no_payout", "this address has no payout in a credited block at that height")
    return json_response(proof)


async def get_estimate(request: web.Request) -> web.Response:
    data = pool_data(request)
    hashrate = query_float(request, "hashrate", None, 0.0, 1e24, required=True, exclusive_low=True)
    power_w = query_float(request, "power_w", 0.0, 0.0, 1e9)
    price_kwh = query_float(request, "price_kwh", 0.0, 0.0, 1e6)
    coin_price = query_float(request, "coin_price", None, 0.0, 1e12)
    await data.summary.get()  # the network figures fall back to the ledger's latest block
    estimate = data.estimate(hashrate, power_w, price_kwh, coin_price)
    if estimate is None:
        raise DataUnavailable("the network difficulty is not known yet (no daemon answer, no block stored)")
    return json_response(estimate)


async def stream_events(request: web.Request) -> web.StreamResponse:
    pool_data(request)
    feed = request.app[FEED]
    queue = feed.subscribe()
    if queue is None:
        raise DataUnavailable("too many live feed listeners")
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    try:
        await response.prepare(request)
        await response.write(b"retry: 5000\n\n")
        while queue in feed.listeners or not queue.empty():
            try:
                async with asyncio.timeout(_KEEPALIVE_S):
                    event, payload = await queue.get()
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            await response.write(b"event: " + event.encode() + b"\ndata: " + dump_json(payload) + b"\n\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        feed.unsubscribe(queue)
    return response


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def get_metrics(request: web.Request) -> web.Response:
    data = request.app[DATA]
    with contextlib.suppress(DataUnavailable):
        await data.ledger_counts.get()
    with contextlib.suppress(DataUnavailable):
        await data.summary.get()
    return web.Response(body=generate_latest(request.app[METRICS].registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- the dashboard -------------------------------------------------------------------------------------

#: The dashboard's files (pool/api/static, package data) and their types; nothing else is served.
DASHBOARD_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css",
                   "favicon.svg": "image/svg+xml"}
#: Scripts, styles and data from this origin only: no inline script, no eval, no other host.
DASHBOARD_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
                 "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def load_dashboard() -> dict[str, bytes]:
    static = importlib.resources.files("pool.api").joinpath("static")
    return {name: static.joinpath(name).read_bytes() for name in DASHBOARD_FILES}


def dashboard_response(request: web.Request, name: str) -> web.Response:
    return web.Response(body=request.app[DASHBOARD][name], content_type=DASHBOARD_FILES[name],
                        charset="utf-8" if DASHBOARD_FILES[name].startswith("text/") else None, headers={
                            "Content-Security-Policy": DASHBOARD_CSP, "X-Content-Type-Options": "nosniff",
                            "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"})


async def get_dashboard(request: web.Request) -> web.Response:
    return dashboard_response(request, "index.html")


async def get_static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in DASHBOARD_FILES:
        raise ApiError(404, "not_found", "no such file")
    return dashboard_response(request, name)


DASHBOARD_ROUTES: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
    ("/", get_dashboard),
    ("/static/{name}", get_static),
]

ROUTES: list[tuple[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
    ("/api/v1/pools", list_pools),
    ("/api/v1/pools/{pool}", get_pool),
    ("/api/v1/pools/{pool}/performance", get_performance),
    ("/api/v1/pools/{pool}/blocks", list_blocks),
    ("/api/v1/pools/{pool}/blocks/{height}/payout", get_payout),
    ("/api/v1/pools/{pool}/payments", list_payments),
    ("/api/v1/pools/{pool}/miners", list_miners),
    ("/api/v1/pools/{pool}/miners/{address}", get_miner),
    ("/api/v1/pools/{pool}/miners/{address}/performance", get_miner_performance),
    ("/api/v1/pools/{pool}/miners/{address}/proof/{height}", get_proof),
    ("/api/v1/pools/{pool}/estimate", get_estimate),
    ("/api/v1/pools/{pool}/events", stream_events),
    ("/api/v1/openapi.json", get_openapi),
    ("/metrics", get_metrics),
]


# -- rate limit, CORS, errors, metrics -------------------------------------------------------------------


class RateLimiter:
    """A token bucket per client IP: ``rate`` tokens a second, at most ``burst``; bounded memory."""

    def __init__(self, rate: float, burst: int, *, max_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self.clock = clock
        self.buckets: dict[str, list[float]] = {}

    def take(self, client: str) -> float:
        """0 when the request may go on, else the seconds until it would."""
        if self.rate <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= self.max_clients:
                self._forget(now)
            bucket = self.buckets[client] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _forget(self, now: float) -> None:
        """Drop the clients whose bucket has refilled (they lose nothing); the oldest half if none has."""
        full_after = self.burst / self.rate
        for client in [c for c, (_, last) in self.buckets.items() if now - last >= full_after]:
            del self.buckets[client]
        if len(self.buckets) >= self.max_clients:
            for client in sorted(self.buckets, key=lambda c: self.buckets[c][1])[: len(self.buckets) // 2]:
                del self.buckets[client]


def client_ip(request: web.Request, trust_forwarded_for: bool) -> str:
    if trust_forwarded_for:
        forwarded = request.headers.get("X-Forwarded-For", "")
        hop = forwarded.rsplit(",", 1)[-1].strip()
        if hop:
            return hop[:64]
    return request.remote or ""


class ApiMetrics:
    """The API process's registry: request counters and latency, and the ledger's figures."""

    def __init__(self, data: PoolData) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # Several API processes (api.workers): each counts in files of the directory their parent made
        # (prometheus_client's multiprocess mode), and /metrics in any of them sums every process's.
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        own = None if shared else self.registry
        self.requests = Counter("quarry_api_requests", "API requests by route and status", ["route", "status"],
                                registry=own)
        self.latency = Histogram("quarry_api_request_seconds", "API request latency by route", ["route"],
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                                 registry=own)
        self.rate_limited = Counter("quarry_api_rate_limited", "Requests refused by the rate limit", registry=own)
        if shared:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry, path=shared)
        self.registry.register(LedgerCollector(data))
        self._counters: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

    def request_counter(self, route: str, status: int):
        """The counter of one route and status (the labelled child looked up once)."""
        child = self._counters.get((route, status))
        if child is None:
            child = self._counters[(route, status)] = self.requests.labels(route, str(status))
        return child

    def latency_of(self, route: str):
        child = self._latencies.get(route)
        if child is None:
            child = self._latencies[route] = self.latency.labels(route)
        return child


class LedgerCollector(Collector):
    """Blocks by status, payments by status and amount, the pool's live figures (from the caches)."""

    def __init__(self, data: PoolData) -> None:
        self.data = data

    def collect(self):
        counts = self.data.ledger_counts._value or {"blocks": {}, "payments": {}}
        blocks = GaugeMetricFamily("quarry_blocks", "Blocks in the ledger by status", labels=["status"])
        for status in ("pending", "confirmed", "orphaned", "rejected"):
            blocks.add_metric([status], counts["blocks"].get(status, 0))
        yield blocks
        payments = GaugeMetricFamily("quarry_payments", "Payments in the ledger by status", labels=["status"])
        amounts = CounterMetricFamily("quarry_payments_amount_satoshis", "Satoshis of payments by status",
                                      labels=["status"])
        for status in ("signed", "broadcast", "unknown", "confirmed", "failed", "returned"):
            number, amount = counts["payments"].get(status, (0, 0))
            payments.add_metric([status], number)
            amounts.add_metric([status], amount)
        yield payments
        yield amounts
        summary = self.data.summary._value
        if summary is not None:
            hashrate = GaugeMetricFamily("quarry_pool_hashrate", "Pool hashrate, hashes per second",
                                         labels=["window"])
            hashrate.add_metric(["5m"], summary["hashrate_5m"])
            hashrate.add_metric(["1h"], summary["hashrate_1h"])
            yield hashrate
            yield GaugeMetricFamily("quarry_workers_online", "Workers with a share in 10 minutes",
                                    value=summary["workers_online"])
            yield GaugeMetricFamily("quarry_miners_online", "Miners with a share in 10 minutes",
                                    value=summary["miners_online"])
            yield GaugeMetricFamily("quarry_round_effort", "Work since the last block / one block's work",
                                    value=summary["round"]["effort"])


def _route_name(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is None or getattr(info, "http_exception", None) is not None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics = request.app[METRICS]
        route = _route_name(request)
        metrics.request_counter(route, status).inc()
        if route != "/api/v1/pools/{pool}/events":
            metrics.latency_of(route).observe(time.perf_counter() - started)


def cors_middleware(origins: tuple[str, ...]):
    allow_any = "*" in origins
    allowed = frozenset(origins)

    @web.middleware
    async def cors(request: web.Request, handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        allow = None
        if origin is not None and (allow_any or origin in allowed):
            allow = "*" if allow_any else origin
        if request.method == "OPTIONS" and origin is not None and "Access-Control-Request-Method" in request.headers:
            if allow is None:
                return error_response(403, "origin_not_allowed", "this origin may not use the API from a browser")
            return web.Response(status=204, headers={
                "Access-Control-Allow-Origin": allow, "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type", "Access-Control-Max-Age": "600",
                "Vary": "Origin"})
        response = await handler(request)
        if allow is not None:
            response.headers["Access-Control-Allow-Origin"] = allow
            response.headers["Vary"] = "Origin"
        return response

    return cors


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        if len(request.raw_path) > MAX_PATH_BYTES:
            raise ApiError(414, "uri_too_long", f"the request target is longer than {MAX_PATH_BYTES} bytes")
        return await handler(request)
    except ApiError as error:
        return error_response(error.status, error.code, error.message, error.headers)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status, "http_error")
        headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
        return error_response(error.status, code, error.reason, headers)
    except (DataUnavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as error:
        logger.warning("api: %s %s: %s: %s", request.method, request.path, type(error).__name__, error)
        return error_response(503, "unavailable", "the pool's database cannot answer now; try again shortly",
                              {"Retry-After": "5"})
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("api: %s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "internal error")


def rate_limit_middleware(limiter: RateLimiter, trust_forwarded_for: bool):
    @web.middleware
    async def rate_limit(request: web.Request, handler) -> web.StreamResponse:
        if request.path != "/metrics":
            wait_s = limiter.take(client_ip(request, trust_forwarded_for))
            if wait_s:
                request.app[METRICS].rate_limited.inc()
                raise ApiError(429, "rate_limited", "too many requests; slow down",
                               {"Retry-After": str(max(1, math.ceil(wait_s)))})
        return await handler(request)

    return rate_limit


# -- the application -----------------------------------------------------------------------------------


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
    limiter = RateLimiter(api.rate_limit_per_s, api.rate_limit_burst)
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
                                           done=shutdown))
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
