"""The OpenAPI 3 document of the API (``GET /api/v1/openapi.json``).

Written out as data next to the routes; ``tests/pool/api/test_openapi.py`` checks that every route of
the application is documented and every documented path is a route, and a property-based fuzzer
(schemathesis) drives the API from this document.
"""
from __future__ import annotations

from typing import Any

from pool.config import PoolConfig

API_VERSION = "1.0.0"
MAX_PAGE = 1_000_000
MAX_PAGE_SIZE = 100
MAX_ADDRESS_CHARS = 128
MAX_HEIGHT = 10**12

_NUMBER = {"type": "number"}
_INTEGER = {"type": "integer"}
_SATOSHIS = {"type": "integer", "minimum": 0, "description": "satoshis"}
_COINS = {"type": "string", "pattern": r"^-?\d+\.\d{8}$", "description": "the same amount in coins"}
_TIME = {"type": "number", "description": "unix time, seconds"}
_NULLABLE_TIME = {"type": ["number", "null"], "description": "unix time, seconds"}
_HASHRATE_WINDOWS = {
    "type": "object",
    "description": "hashes per second over the last 5 minutes, hour and 24 hours",
    "required": ["5m", "1h", "24h"],
    "properties": {"5m": _NUMBER, "1h": _NUMBER, "24h": _NUMBER},
}


def _obj(properties: dict[str, Any], *, description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "required": sorted(properties), "properties": properties}
    if description:
        schema["description"] = description
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": _obj({
        "status": _INTEGER,
        "code": {"type": "string", "description": "stable machine-readable reason, e.g. unknown_pool"},
        "message": {"type": "string"},
    })}),
    "Port": _obj({"port": _INTEGER, "name": {"type": "string"}, "difficulty": _NUMBER,
                  "min_difficulty": _NUMBER, "max_difficulty": _NUMBER, "vardiff": {"type": "boolean"}}),
    "Pool": _obj({
        "id": {"type": "string"},
        "coin": _obj({"name": {"type": "string"}, "symbol": {"type": "string"}, "algorithm": {"type": "string"},
                      "block_time_s": _INTEGER, "coinbase_maturity": _INTEGER}),
        "scheme": {"type": "object", "required": ["name"],
                   "properties": {"name": {"type": "string", "enum": ["pplns", "prop", "solo", "pps", "fpps"]},
                                  "pplns_factor": {"type": "string"}}},
        "fee": _obj({"pool_percent": {"type": "string"}, "recipients_percent": {"type": "string"},
                     "total_percent": {"type": "string"},
                     "recipients": {"type": "array", "items": _obj({"address": {"type": "string"},
                                                                    "percent": {"type": "string"}})}}),
        "minimum_payout": {"type": ["integer", "null"], "description": "satoshis; null when not configured"},
        "ports": {"type": "array", "items": _ref("Port")},
        "hashrate": _HASHRATE_WINDOWS,
        "miners_online": _INTEGER,
        "workers_online": _INTEGER,
        "network": _obj({"difficulty": {"type": ["number", "null"], "description": "Stratum units"},
                         "height": {"type": ["integer", "null"]}, "hashrate": {"type": ["number", "null"]},
                         "source": {"type": "string", "enum": ["daemon", "ledger", "none"]}}),
        "last_block": _nullable(_obj({"height": _INTEGER, "hash": {"type": "string"}, "status": {"type": "string"},
                                      "effort": {"type": ["number", "null"]}, "time": _TIME})),
        "blocks_found": _INTEGER,
        "round": _obj({"effort": {**_NUMBER, "description": "work since the last block / one block's work"},
                       "shares": _INTEGER, "started": _NULLABLE_TIME}),
        "total_paid": _SATOSHIS,
        "total_paid_coins": _COINS,
        "pps_reserve": {"type": ["integer", "null"],
                        "description": "PPS/FPPS: confirmed block rewards minus PPS credits, satoshis; else null"},
    }),
    "Pools": _obj({"pools": {"type": "array", "items": _ref("Pool")}}),
    "SeriesPoint": _obj({"time": _TIME, "hashrate": _NUMBER, "workers": _INTEGER}),
    "Performance": _obj({
        "pool": {"type": "string"},
        "ten_minutes": {"type": "array", "items": _ref("SeriesPoint"), "description": "144 points: 24 h"},
        "hourly": {"type": "array", "items": _ref("SeriesPoint"), "description": "720 points: 30 days"},
    }),
    "Block": _obj({
        "height": _INTEGER, "hash": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "orphaned", "rejected"]},
        "confirmations": _INTEGER, "reward": _SATOSHIS, "reward_coins": _COINS,
        "effort": {"type": ["number", "null"]}, "finder": {"type": "string", "description": "shortened address"},
        "time": _TIME, "credited": {"type": "boolean"},
    }),
    "Payout": _obj({
        "height": _INTEGER, "block_hash": {"type": "string"}, "scheme": {"type": "string"},
        "merkle_root": {"type": "string"}, "time": _TIME,
        "report": {"type": "object", "description": "the payout report (payouts/report.py, quarry-payout-v1)"},
    }),
    "Payment": _obj({
        "id": _INTEGER, "txid": {"type": ["string", "null"]},
        "status": {"type": "string", "enum": ["signed", "broadcast", "unknown", "confirmed", "failed", "returned"]},
        "amount": _SATOSHIS, "amount_coins": _COINS, "fee": _SATOSHIS, "payees": _INTEGER,
        "confirmations": _INTEGER, "time": _TIME,
    }),
    "MinerSummary": _obj({
        "address": {"type": "string"},
        "hashrate": _obj({"5m": _NUMBER, "1h": _NUMBER}),
        "workers_online": _INTEGER,
    }),
    "Worker": _obj({"name": {"type": "string"}, "hashrate": _HASHRATE_WINDOWS, "last_share": _NULLABLE_TIME,
                    "online": {"type": "boolean"}}),
    "Miner": _obj({
        "pool": {"type": "string"}, "address": {"type": "string"}, "hashrate": _HASHRATE_WINDOWS,
        "workers_online": _INTEGER, "workers_total": _INTEGER,
        "workers": {"type": "array", "items": _ref("Worker"), "description": "at most 1000"},
        "balance": _SATOSHIS, "balance_coins": _COINS,
        "immature_estimate": {**_SATOSHIS, "description": "estimated share of pending (immature) blocks, satoshis"},
        "immature_estimate_coins": _COINS,
        "total_paid": _SATOSHIS, "total_paid_coins": _COINS,
        "payments": {"type": "array", "items": _obj({
            "id": _INTEGER, "txid": {"type": ["string", "null"]}, "status": {"type": "string"},
            "amount": _SATOSHIS, "amount_coins": _COINS, "time": _TIME})},
        "daily_earnings": {"type": "array", "items": _obj({
            "day": {"type": "string", "format": "date"}, "amount": _SATOSHIS, "amount_coins": _COINS})},
    }),
    "MinerPerformance": _obj({
        "pool": {"type": "string"}, "address": {"type": "string"},
        "ten_minutes": {"type": "array", "items": _ref("SeriesPoint"), "description": "144 points: 24 h"},
    }),
    "Proof": _obj({
        "height": _INTEGER, "block_hash": {"type": "string"}, "address": {"type": "string"},
        "amount": _SATOSHIS, "amount_coins": _COINS, "merkle_root": {"type": "string"},
        "proof": {"type": "array", "items": _obj({"side": {"type": "string", "enum": ["L", "R"]},
                                                  "hash": {"type": "string"}})},
        "verified": {"type": "boolean"},
        "leaf": _obj({"tag": {"type": "string"}, "encoding": {"type": "string"}}),
    }),
    "Estimate": _obj({
        "pool": {"type": "string"}, "hashrate": _NUMBER, "network_difficulty": _NUMBER,
        "network_hashrate": {"type": ["number", "null"]},
        "block_reward": _SATOSHIS, "block_reward_coins": _COINS, "fee_percent": {"type": "string"},
        "blocks_per_day": _NUMBER, "satoshis_per_day": _SATOSHIS, "coins_per_day": _COINS,
        "power_cost_per_day": _NUMBER, "revenue_per_day": {"type": ["number", "null"]},
        "profit_per_day": {"type": ["number", "null"]}, "note": {"type": "string"},
    }),
}


def _page(items: str) -> dict[str, Any]:
    return _obj({"page": _INTEGER, "page_size": _INTEGER, "total": _INTEGER,
                 "items": {"type": "array", "items": _ref(items)}})


SCHEMAS["BlockPage"] = _page("Block")
SCHEMAS["PaymentPage"] = _page("Payment")
SCHEMAS["MinerPage"] = _page("MinerSummary")

_POOL_PARAMETER = {"name": "pool", "in": "path", "required": True, "description": "the pool's id (GET /pools)",
         "schema": {"type": "string", "maxLength": 64}}
_ADDRESS_PARAMETER = {"name": "address", "in": "path", "required": True, "description": "a payout address of the coin",
            "schema": {"type": "string", "maxLength": MAX_ADDRESS_CHARS}}
_HEIGHT = {"name": "height", "in": "path", "required": True,
           "schema": {"type": "integer", "minimum": 0, "maximum": MAX_HEIGHT}}
_PAGING = [
    {"name": "page", "in": "query", "description": "0-based page number",
     "schema": {"type": "integer", "minimum": 0, "maximum": MAX_PAGE, "default": 0}},
    {"name": "page_size", "in": "query", "description": f"items per page, clamped to 1..{MAX_PAGE_SIZE}",
     "schema": {"type": "integer", "default": 20}},
]


def _json(schema: str, description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {400: "malformed input", 404: "unknown pool, miner, block or route", 414: "request target too long",
             429: "rate limit exceeded", 503: "the database cannot answer now"}
    return {str(status): _json("Error", texts[status]) for status in statuses}


def _get(summary: str, response: dict[str, Any], parameters: list[dict[str, Any]], *errors: int,
         operation_id: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "operationId": operation_id, "parameters": parameters,
                    "responses": {"200": response, **_errors(*errors, 414, 429, 503)}}}


def openapi_document(config: PoolConfig) -> dict[str, Any]:
    pool = "/api/v1/pools/{pool}"
    pool_parameter = {**_POOL_PARAMETER, "schema": {"type": "string", "enum": [config.pool_name]}}
    address_parameter = {**_ADDRESS_PARAMETER, "example": config.address}
    paths = {
        "/api/v1/pools": _get("The pools served here", _json("Pools"), [], operation_id="listPools"),
        pool: _get("One pool: coin, scheme, fees, ports, hashrate, network, last block, round, payments",
                   _json("Pool"), [pool_parameter], 404, operation_id="getPool"),
        f"{pool}/performance": _get("Hashrate and workers per 10 minutes over 24 h and per hour over 30 days",
                                    _json("Performance"), [pool_parameter], 404, operation_id="getPerformance"),
        f"{pool}/blocks": _get("Blocks found, newest first", _json("BlockPage"), [
            pool_parameter, *_PAGING,
            {"name": "status", "in": "query", "schema": {"type": "string",
                                                         "enum": ["pending", "confirmed", "orphaned", "rejected"]}},
        ], 400, 404, operation_id="listBlocks"),
        f"{pool}/blocks/{{height}}/payout": _get("The payout report of a credited block, with its Merkle root",
                                                 _json("Payout"), [pool_parameter, _HEIGHT], 400, 404,
                                                 operation_id="getPayout"),
        f"{pool}/payments": _get("Payments sent, newest first", _json("PaymentPage"), [pool_parameter, *_PAGING], 400, 404,
                                 operation_id="listPayments"),
        f"{pool}/miners": _get("Top miners by hashrate over the last hour", _json("MinerPage"),
                               [pool_parameter, *_PAGING], 400, 404, operation_id="listMiners"),
        f"{pool}/miners/{{address}}": _get("One miner: hashrate, workers, balance, payments, earnings",
                                           _json("Miner"), [pool_parameter, address_parameter], 400, 404, operation_id="getMiner"),
        f"{pool}/miners/{{address}}/performance": _get(
            "One miner's hashrate and workers per 10 minutes over 24 h", _json("MinerPerformance"),
            [pool_parameter, address_parameter], 400, 404, operation_id="getMinerPerformance"),
        f"{pool}/miners/{{address}}/proof/{{height}}": _get(
            "The inclusion proof of a miner's payout in a block's payout report", _json("Proof"),
            [pool_parameter, address_parameter, _HEIGHT], 400, 404, operation_id="getProof"),
        f"{pool}/estimate": _get("Expected earnings of a hashrate at the current network difficulty",
                                 _json("Estimate"), [
            pool_parameter,
            {"name": "hashrate", "in": "query", "required": True, "description": "hashes per second",
             "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 1e24}},
            {"name": "power_w", "in": "query", "description": "the miner's power draw, watts",
             "schema": {"type": "number", "minimum": 0, "maximum": 1e9, "default": 0}},
            {"name": "price_kwh", "in": "query", "description": "electricity price per kWh (any currency)",
             "schema": {"type": "number", "minimum": 0, "maximum": 1e6, "default": 0}},
            {"name": "coin_price", "in": "query", "description": "price of one coin (same currency)",
             "schema": {"type": "number", "minimum": 0, "maximum": 1e12}},
        ], 400, 404, operation_id="getEstimate"),
        f"{pool}/events": {"get": {
            "summary": "Live feed (server-sent events): block, payment and hashrate events, JSON data",
            "operationId": "streamEvents",
            "parameters": [pool_parameter],
            "responses": {"200": {"description": "an endless text/event-stream",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          **_errors(404, 414, 429, 503)},
        }},
        "/api/v1/openapi.json": {"get": {
            "summary": "This document", "operationId": "getOpenApi", "parameters": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}},
                          **_errors(414, 429)},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics of the API process and the ledger", "operationId": "getMetrics",
            "parameters": [],
            "responses": {"200": {"description": "Prometheus text format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(414)},
        }},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Quarry pool API ({config.pool_name})", "version": API_VERSION,
                 "description": "Public statistics of a Quarry mining pool. Amounts are integer satoshis "
                                "(with *_coins decimal strings); hashrates are hashes per second; times are "
                                "unix seconds. Errors are JSON: {\"error\": {\"status\", \"code\", \"message\"}}."},
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
