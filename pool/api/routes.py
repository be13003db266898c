"""The API's routes: its JSON documents, the live feed, the OpenAPI document, the metrics, the dashboard.

Bad input never reaches a query: path and query values are checked first and answered with a 4xx JSON
error (`ApiError`). Strings from miners (worker names) are emitted with ``<``, ``>`` and ``&`` escaped as
``\\u003c``... (`pool.api.formats.dump_json`) so a JSON document can be embedded in HTML without becoming
markup.
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pool.api.caches import DataUnavailable
from pool.api.data import PoolData
from pool.api.feed import EventFeed
from pool.api.formats import dump_json
from pool.api.middleware import METRICS, ApiError, json_body_response, json_response
from pool.api.openapi import MAX_ADDRESS_CHARS, MAX_HEIGHT, MAX_PAGE, MAX_PAGE_SIZE
from pool.config import PoolConfig

CONFIG = web.AppKey("config", PoolConfig)
DATA = web.AppKey("data", PoolData)
FEED = web.AppKey("feed", EventFeed)
OPENAPI = web.AppKey("openapi", bytes)
DASHBOARD = web.AppKey("dashboard", dict)

DEFAULT_PAGE_SIZE = 20
_INTEGER = re.compile(r"[+-]?\d{1,19}")
_FLOAT = re.compile(r"[+-]?(\d{1,30}(\.\d{0,30})?|\.\d{1,30})([eE][+-]?\d{1,3})?")
_KEEPALIVE_S = 15.0


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
    except ValueError as error:  # FamilyError is one; its message says what was expected
        raise ApiError(400, "malformed_address", str(error)) from None
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
