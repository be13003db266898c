"""A fake Stratum pool on a real local TCP socket for the demo miner's tests, and the recorded
cpuminer exchange it can replay.

tests/data/cpuminer_exchange.jsonl is a Stratum session as pooler/cpuminer 2.5.0 would have it with a
scrypt pool, one JSON object per line: ``dir`` ("c2s" client to server, "s2c" server to client),
``line`` (the raw JSON text) and an optional ``note``. Client lines are spelled as cpuminer prints
them: ``util.c stratum_subscribe`` (id 1, params [USER_AGENT] = ["cpuminer/2.5.0"]),
``util.c stratum_authorize`` (id 2, [user, pass]), ``cpu-miner.c submit_upstream_work`` (id 4,
[user, job_id, extranonce2, ntime, nonce], ntime/nonce = ``bin2hex(le32enc(header word))``, the
big-endian hex). The job is Litecoin block 2265985: its non-witness coinbase split around the 8 bytes
``02000300 00000000`` at the end of its scriptSig (extranonce1 = 02000300; cpuminer's first
extranonce2 is 00000000 because ``stratum_notify`` zeroes it for a new job id, so the miner rebuilds
the real coinbase), the merkle branch of its txids, prevhash words byte-reversed, version/nbits/ntime
as big-endian hex. The difficulty 0.002 is a scrypt Stratum difficulty (cpuminer ``stratum_gen_work``:
``diff_to_target(target, diff / 65536.0)``) and the submitted nonce 0x106 is the first nonce from 0
(cpuminer's single thread starts at 0) whose scrypt hash meets that target, found when the file
was generated and re-checked by ``test_recorded_submit_is_a_valid_share``
(tests/pool/devtools/miner/test_protocol.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

EXCHANGE = pathlib.Path(__file__).resolve().parent / "data" / "cpuminer_exchange.jsonl"


class Peer:
    """The server end of one miner connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received: list[dict[str, Any]] = []

    async def recv(self, timeout: float = 20.0) -> dict[str, Any]:
        line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not line:
            raise EOFError("miner closed the connection")
        message = json.loads(line)
        self.received.append(message)
        return message

    async def send(self, message: dict[str, Any] | str | bytes) -> None:
        if isinstance(message, dict):
            message = json.dumps(message)
        if isinstance(message, str):
            message = message.encode()
        self.writer.write(message if message.endswith(b"\n") else message + b"\n")
        await self.writer.drain()

    async def expect_eof(self, timeout: float = 20.0) -> None:
        """The miner closes the connection (after anything else it still had to say)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            line = await asyncio.wait_for(
                self.reader.readline(), deadline - asyncio.get_running_loop().time()
            )
            if not line:
                return
            self.received.append(json.loads(line))

    async def handshake(
        self, *, extranonce1: str = "02000300", extranonce2_size: int = 4, version_mask: str | None = None
    ) -> None:
        message = await self.recv()
        if message["method"] == "mining.configure":
            result: dict[str, Any] = {"version-rolling": version_mask is not None}
            if version_mask is not None:
                result["version-rolling.mask"] = version_mask
            await self.send({"id": message["id"], "result": result, "error": None})
            message = await self.recv()
        assert message["method"] == "mining.subscribe"
        await self.send(
            {
                "id": message["id"],
                "result": [
                    [["mining.notify", "ae6812eb4cd7735a302a8a9dd95cf71f"]],
                    extranonce1,
                    extranonce2_size,
                ],
                "error": None,
            }
        )
        message = await self.recv()
        assert message["method"] == "mining.authorize"
        await self.send({"id": message["id"], "result": True, "error": None})


Handler = Callable[[Peer], Awaitable[None]]


@contextlib.asynccontextmanager
async def fake_pool(handler: Handler) -> AsyncIterator[tuple[int, list[BaseException]]]:
    errors: list[BaseException] = []

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(Peer(reader, writer))
        except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in the server
            errors.append(exc)
        finally:
            writer.close()

    server = await asyncio.start_server(on_connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port, errors
    finally:
        server.close()
        await server.wait_closed()


def fast_options(**extra: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_reconnects": 0,
        "backoff_initial": 0.01,
        "response_timeout": 10.0,
        "connect_timeout": 5.0,
        "chunk_seconds": 0.05,
    }
    options.update(extra)
    return options


def load_exchange() -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in EXCHANGE.read_text().splitlines() if line.strip()]
    assert {entry["dir"] for entry in entries} == {"c2s", "s2c"}
    return entries


async def replay(
    entries: list[dict[str, Any]], seen: list[tuple[dict[str, Any], dict[str, Any]]], peer: Peer
) -> None:
    """Play the server side of a recording; answers go to the ids the miner actually used."""
    ids: dict[Any, Any] = {}
    for entry in entries:
        recorded = json.loads(entry["line"])
        if entry["dir"] == "c2s":
            actual = await peer.recv()
            seen.append((recorded, actual))
            ids[recorded["id"]] = actual["id"]
        elif recorded.get("method") is None and recorded.get("id") is not None:
            recorded["id"] = ids[recorded["id"]]
            await peer.send(recorded)
        else:
            await peer.send(entry["line"])  # notifications byte for byte
    await peer.expect_eof()
