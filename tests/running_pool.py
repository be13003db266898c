"""Running the whole pool inside a test: ``async with running_pool(config) as running: ...``."""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pool.app import RunningPool, run_pool
from pool.config import PoolConfig


@contextlib.asynccontextmanager
async def running_pool(config: PoolConfig, *, start_timeout: float = 60.0) -> AsyncIterator[RunningPool]:
    """Start ``run_pool`` (a failure to start raises its own error), yield its handles, shut it down."""
    shutdown = asyncio.Event()
    ready: asyncio.Future[RunningPool] = asyncio.get_running_loop().create_future()
    pool_task = asyncio.ensure_future(run_pool(config, shutdown, on_ready=ready.set_result))
    await asyncio.wait({ready, pool_task}, timeout=start_timeout, return_when=asyncio.FIRST_COMPLETED)
    if pool_task.done():
        pool_task.result()
    try:
        yield ready.result()
    finally:
        shutdown.set()
        await asyncio.wait_for(pool_task, 60)

