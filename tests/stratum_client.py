"""A plain Stratum test client over real TCP (asyncio streams), for the protocol tests."""
from __future__ import annotations

import asyncio
import itertools
import json


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ids = itertools.count(1)
        self.notifications: list[dict] = []
        self.responses: dict = {}

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> Client:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer)

    async def send_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str, params: list | None = None, *, timeout: float = 5.0) -> dict:
        msg_id = next(self.ids)
        line = json.dumps({"id": msg_id, "method": method, "params": [] if params is None else params})
        await self.send_raw(line.encode() + b"\n")
        return await self.response(msg_id, timeout=timeout)

    async def response(self, msg_id, *, timeout: float = 5.0) -> dict:
        async with asyncio.timeout(timeout):
            while msg_id not in self.responses:
                await self._read_one()
        return self.responses.pop(msg_id)

    async def notification(self, method: str, *, timeout: float = 5.0) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                for index, message in enumerate(self.notifications):
                    if message["method"] == method:
                        return self.notifications.pop(index)
                await self._read_one()

    async def _read_one(self) -> None:
        line = await self.reader.readline()
        if not line:
            raise ConnectionError("closed by the server")
        message = json.loads(line)
        if message.get("method"):
            self.notifications.append(message)
        else:
            self.responses[message.get("id")] = message

    async def closed(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection within the timeout."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.reader.readline()
                    if not line:
                        return True
                    message = json.loads(line)
                    (self.notifications if message.get("method") else []).append(message)
        except (TimeoutError, ConnectionError):
            return False
        except OSError:
            return True

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

    async def handshake(self, user: str, password: str = "x") -> dict:
        subscribed = await self.request("mining.subscribe", ["test-client/1.0"])
        authorized = await self.request("mining.authorize", [user, password])
        assert authorized["result"] is True, authorized
        difficulty = await self.notification("mining.set_difficulty")
        job = await self.notification("mining.notify")
        return {"subscribe": subscribed["result"], "difficulty": difficulty["params"][0], "job": job["params"]}
