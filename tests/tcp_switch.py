"""A loopback TCP forwarder that can be cut and restored: a daemon that goes away and comes back."""
from __future__ import annotations

import asyncio


class Switch:
    """A loopback TCP forwarder to the daemon's RPC port that can be cut and restored."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.base_events.Server | None = None
        self.port = 0
        self.pipes: set[asyncio.Task] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for task in list(self.pipes):
            task.cancel()

    async def _handle(self, reader, writer) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        tasks = [asyncio.ensure_future(pipe(reader, upstream_writer)), asyncio.ensure_future(pipe(upstream_reader, writer))]
        self.pipes.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self.pipes.difference_update(tasks)
