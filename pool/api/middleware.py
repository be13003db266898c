"""What every API request goes through: errors answered as JSON, the rate limit, CORS, the metrics.

An error is a JSON document ``{"error": {"status", "code", "message"}}`` (`ApiError` from a route, or
the server's 404 and 405); a database that cannot answer gives 503. Every client IP has a token bucket
(``api.rate_limit_per_s``, ``api.rate_limit_burst``; ``api.trusted_networks`` have their own or none:
``pool.api.ratelimit``); CORS answers the origins in ``api.cors_origins``.
Every request is counted by route and status, and timed (`ApiMetrics`, served at ``/metrics``).
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pool.api.caches import DataUnavailable
from pool.api.data import PoolData
from pool.api.formats import dump_json
from pool.api.ratelimit import RateLimits, client_ip

logger = logging.getLogger(__name__)

LIMITER = web.AppKey("limiter", "RateLimits")
METRICS = web.AppKey("metrics", "ApiMetrics")

MAX_PATH_BYTES = 2048


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


# -- rate limit, CORS, errors, metrics -------------------------------------------------------------------


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
        stale = GaugeMetricFamily("quarry_stale_candidates", "Block solutions found on a stale tip (not the "
                                  "pool's blocks unless the chain took them), by status", labels=["status"])
        for status in ("pending", "confirmed", "orphaned", "rejected"):
            blocks.add_metric([status], counts["blocks"].get(status, 0))
            if status != "confirmed":
                stale.add_metric([status], counts.get("stale_candidates", {}).get(status, 0))
        yield blocks
        yield stale
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


def rate_limit_middleware(limiter: RateLimits, trust_forwarded_for: bool):
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
