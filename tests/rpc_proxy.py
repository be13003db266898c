"""A JSON-RPC proxy in front of a regtest node that forwards every call and, for the methods in
``hold``, never answers (the node did the work; the caller sees a daemon that does not reply)."""
from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web

from pool.localnet import free_loopback_ports


class HoldingProxy:
    def __init__(self, target: str, hold: set[str] | None = None) -> None:
        self.target = target  # http://127.0.0.1:PORT/
        self.hold: set[str] = set(hold or ())
        self.held: list[str] = []
        self.port = free_loopback_ports(1)[0]

    def url(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}/"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        payload = json.loads(body)
        method = payload.get("method") if isinstance(payload, dict) else None
        async with aiohttp.ClientSession() as session:
            async with session.post(self.target + request.path.lstrip("/"), data=body,
                                    headers={"Authorization": request.headers.get("Authorization", ""),
                                             "Content-Type": "application/json"}) as reply:
                answer, status = await reply.read(), reply.status
        if method in self.hold:
            self.held.append(method)
            await asyncio.sleep(3600)
        return web.Response(body=answer, status=status, content_type="application/json")

    async def __aenter__(self) -> HoldingProxy:
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()
