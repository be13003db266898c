#!/usr/bin/env python3
"""A replay coin daemon for the load benchmark: JSON-RPC over HTTP on 127.0.0.1.

It serves one recorded mainnet-like block template, built from a real block in
``tests/data/blocks`` (its transactions with data and txid, its bits -- mainnet difficulty,
so no benchmark share is a block --, the value of its coinbase outputs, its height and times,
its witness commitment, and on Litecoin its MWEB block).  A POST to ``/announce`` moves the
tip: previousblockhash and height change, ``getbestblockhash`` answers the new tip and a
waiting long poll returns, so the pool sends a clean job.

This fake daemon exists ONLY for ``bench/stratum_load.py``: the tests run against real
daemons.

Methods: getblocktemplate (with long polling), getbestblockhash, validateaddress (always
valid), submitblock (null), getblockhash, getblockcount, getblockchaininfo, getnetworkinfo,
getconnectioncount.  Anything else answers -32601 like Core.

    python bench/replay_daemon.py --coin bitcoin [--port 0]
    # prints {"event": "ready", "url": ..., "announce_url": ...} on stdout
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import pathlib
import signal
import sys
import time
from typing import Any

from aiohttp import web

BLOCKS = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "blocks"
FIXTURES = {
    "bitcoin": "bitcoin_mainnet_951658.json",
    "litecoin": "litecoin_mainnet_2265985.json",
}
WITNESS_COMMITMENT_PREFIX = bytes.fromhex("6a24aa21a9ed")
LONGPOLL_HOLD_S = 30.0


def _sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, count: int) -> bytes:
        out = self.data[self.pos : self.pos + count]
        if len(out) != count:
            raise ValueError("truncated block")
        self.pos += count
        return out

    def varint(self) -> int:
        first = self.take(1)[0]
        if first < 0xFD:
            return first
        return int.from_bytes(self.take({0xFD: 2, 0xFE: 4, 0xFF: 8}[first]), "little")


def _read_tx(reader: _Reader) -> dict[str, Any]:
    """One transaction: full serialization, txid (non-witness), wtxid, outputs."""
    start = reader.pos
    version = reader.take(4)
    flags = 0
    if reader.data[reader.pos] == 0 and reader.data[reader.pos + 1] != 0:
        flags = reader.take(2)[1]
    body_start = reader.pos
    input_count = reader.varint()
    for _ in range(input_count):
        reader.take(36)
        reader.take(reader.varint())
        reader.take(4)
    outputs = []
    for _ in range(reader.varint()):
        value = int.from_bytes(reader.take(8), "little")
        outputs.append((value, reader.take(reader.varint())))
    body_end = reader.pos
    if flags & 1:
        for _ in range(input_count):
            for _ in range(reader.varint()):
                reader.take(reader.varint())
    if flags & 8 and reader.take(1) != b"\x00":  # Litecoin HogEx: an empty MWEB tx body
        raise ValueError("transactions carrying an MWEB body are not replayed")
    locktime = reader.take(4)
    raw = reader.data[start : reader.pos]
    stripped = version + reader.data[body_start:body_end] + locktime
    return {
        "raw": raw,
        "txid": _sha256d(stripped)[::-1].hex(),
        "hash": _sha256d(raw)[::-1].hex(),
        "outputs": outputs,
        "weight": len(stripped) * 3 + len(raw),
    }


def template_from_block(coin: str) -> dict[str, Any]:
    """A getblocktemplate answer carrying the real block's transactions, bits, value and times."""
    block = json.loads((BLOCKS / FIXTURES[coin]).read_text())
    reader = _Reader(bytes.fromhex(block["block"]))
    header = reader.take(80)
    txs = [_read_tx(reader) for _ in range(reader.varint())]
    rest = reader.data[reader.pos :]
    if [tx["txid"] for tx in txs] != block["tx"]:
        raise ValueError(f"{FIXTURES[coin]}: parsed txids do not match the fixture's")
    coinbase = txs[0]
    commitment = next(
        (script for _, script in coinbase["outputs"] if script.startswith(WITNESS_COMMITMENT_PREFIX)), None
    )
    template: dict[str, Any] = {
        "capabilities": ["proposal"],
        "version": int.from_bytes(header[:4], "little"),
        "rules": ["csv", "!segwit", "taproot"] + (["mweb"] if coin == "litecoin" else []),
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": block["previousblockhash"],
        "transactions": [
            {
                "data": tx["raw"].hex(),
                "txid": tx["txid"],
                "hash": tx["hash"],
                "depends": [],
                "fee": 0,
                "sigops": 0,
                "weight": tx["weight"],
            }
            for tx in txs[1:]
        ],
        "coinbaseaux": {},
        "coinbasevalue": sum(value for value, _ in coinbase["outputs"]),
        "target": f"{_bits_to_target(int(block['bits'], 16)):064x}",
        "mintime": block.get("mediantime", block["time"] - 3000) + 1,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 80000,
        "sizelimit": 4000000,
        "weightlimit": 4000000,
        "curtime": block["time"],
        "bits": block["bits"],
        "height": block["height"],
    }
    if commitment is not None:
        template["default_witness_commitment"] = commitment.hex()
    if rest[:1] == b"\x01":
        template["mweb"] = rest[1:].hex()
    return template


def _bits_to_target(bits: int) -> int:
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    return mantissa >> 8 * (3 - exponent) if exponent <= 3 else mantissa << 8 * (exponent - 3)


class ReplayDaemon:
    """The chain state (tip, height, time) and the JSON-RPC handlers."""

    def __init__(self, coin: str) -> None:
        self.coin = coin
        self.base = template_from_block(coin)
        self.tip = self.base["previousblockhash"]
        self.height = self.base["height"]
        self.curtime = self.base["curtime"]
        self.announcements = 0
        self.calls: dict[str, int] = {}
        self._tip_changed = asyncio.Event()
        self._gbt_cache: dict[str, Any] | None = None

    def template(self) -> dict[str, Any]:
        if self._gbt_cache is None:
            gbt = dict(self.base)
            gbt["previousblockhash"] = self.tip
            gbt["height"] = self.height
            gbt["curtime"] = self.curtime
            gbt["mintime"] = min(self.base["mintime"], self.curtime)
            gbt["longpollid"] = f"{self.tip}{self.announcements}"
            self._gbt_cache = gbt
        return self._gbt_cache

    def release_longpolls(self) -> None:
        """Answer every waiting long poll now (at shutdown)."""
        self._tip_changed.set()

    def announce(self) -> dict[str, Any]:
        """A new block on top of the tip: the pool must send a clean job."""
        self.announcements += 1
        self.tip = _sha256d(bytes.fromhex(self.tip) + self.announcements.to_bytes(4, "little"))[::-1].hex()
        self.height += 1
        self.curtime += 60
        self._gbt_cache = None
        changed, self._tip_changed = self._tip_changed, asyncio.Event()
        stamp = {"tip": self.tip, "height": self.height, "time": time.time(), "monotonic": time.monotonic()}
        changed.set()
        return stamp

    async def getblocktemplate(self, request: Any = None) -> dict[str, Any]:
        longpollid = request.get("longpollid") if isinstance(request, dict) else None
        if longpollid is not None and longpollid == self.template()["longpollid"]:
            try:
                await asyncio.wait_for(self._tip_changed.wait(), LONGPOLL_HOLD_S)
            except TimeoutError:
                pass
        return self.template()

    async def dispatch(self, method: str, params: list) -> Any:
        self.calls[method] = self.calls.get(method, 0) + 1
        if method == "getblocktemplate":
            return await self.getblocktemplate(params[0] if params else None)
        if method == "getbestblockhash":
            return self.tip
        if method == "getblockcount":
            return self.height - 1
        if method == "getblockhash":
            height = params[0] if params else -1
            if not isinstance(height, int) or not 0 <= height < self.height:
                raise RpcError(-8, "Block height out of range")
            if height == self.height - 1:
                return self.tip
            return _sha256d(b"replay" + height.to_bytes(8, "little"))[::-1].hex()
        if method == "validateaddress":
            address = params[0] if params else ""
            return {"isvalid": True, "address": address, "isscript": False, "iswitness": True}
        if method == "submitblock":
            return None
        if method == "getblockchaininfo":
            return {
                "chain": "main",
                "blocks": self.height - 1,
                "headers": self.height - 1,
                "bestblockhash": self.tip,
                "difficulty": 1.0,
                "mediantime": self.curtime - 600,
                "verificationprogress": 1.0,
                "initialblockdownload": False,
                "pruned": False,
                "warnings": "",
            }
        if method == "getnetworkinfo":
            return {
                "version": 270000 if self.coin == "bitcoin" else 210200,
                "subversion": "/Satoshi:27.0.0/" if self.coin == "bitcoin" else "/LitecoinCore:0.21.2/",
                "protocolversion": 70016,
                "connections": 10,
                "networkactive": True,
                "warnings": "",
            }
        if method == "getconnectioncount":
            return 10
        raise RpcError(-32601, "Method not found")


class RpcError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def build_app(daemon: ReplayDaemon) -> web.Application:
    async def one(request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"result": None, "error": {"code": -32600, "message": "Invalid Request"}, "id": None}
        params = request.get("params") or []
        try:
            result = await daemon.dispatch(
                request["method"], params if isinstance(params, list) else [params]
            )
        except RpcError as exc:
            return {
                "result": None,
                "error": {"code": exc.code, "message": exc.message},
                "id": request.get("id"),
            }
        return {"result": result, "error": None, "id": request.get("id")}

    async def rpc(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            return web.json_response(
                {"result": None, "error": {"code": -32700, "message": "Parse error"}, "id": None}, status=500
            )
        if isinstance(body, list):
            return web.json_response(await asyncio.gather(*(one(item) for item in body)))
        answer = await one(body)
        status = 200
        if answer["error"] is not None:
            status = 404 if answer["error"]["code"] == -32601 else 500
        return web.json_response(answer, status=status)

    async def announce(request: web.Request) -> web.Response:
        return web.json_response(daemon.announce())

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"calls": daemon.calls, "height": daemon.height, "tip": daemon.tip})

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/", rpc)
    app.router.add_post("/announce", announce)
    app.router.add_get("/stats", stats)
    return app


async def serve(coin: str, port: int, max_seconds: float) -> None:
    daemon = ReplayDaemon(coin)
    runner = web.AppRunner(build_app(daemon), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    template = daemon.template()
    print(
        json.dumps(
            {
                "event": "ready",
                "pid": os.getpid(),
                "url": f"http://127.0.0.1:{bound}/",
                "announce_url": f"http://127.0.0.1:{bound}/announce",
                "height": template["height"],
                "transactions": len(template["transactions"]),
                "bits": template["bits"],
                "mweb": "mweb" in template,
            }
        ),
        flush=True,
    )
    try:
        await asyncio.wait_for(stop.wait(), max_seconds)
    except TimeoutError:
        print("replay daemon: time limit reached, exiting", file=sys.stderr)
    finally:
        daemon.release_longpolls()
        await runner.cleanup()


def _die_with_parent() -> None:
    import ctypes

    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coin", choices=sorted(FIXTURES), default="bitcoin")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--max-seconds", type=float, default=600.0, help="exit after this long whatever happens"
    )
    parser.add_argument(
        "--die-with-parent", action="store_true", help="Linux: exit when the parent process dies"
    )
    args = parser.parse_args()
    if args.die_with_parent:
        _die_with_parent()
    asyncio.run(serve(args.coin, args.port, args.max_seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
