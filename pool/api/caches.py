"""The API's two ways of sparing the database: a value recomputed by one task at a time (`Cached`),
and lookups of one kind gathered into one statement (`Batched`)."""
from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K")


class DataUnavailable(RuntimeError):
    """The database (or the daemon, for network figures) cannot answer now."""


class Cached(Generic[T]):
    """A value recomputed at most every ``ttl_s`` by one task at a time; stale values are served
    while a refresh runs (or when it failed). The first call waits for the first value."""

    def __init__(self, load: Callable[[], Awaitable[T]], ttl_s: float, name: str) -> None:
        self.load = load
        self.ttl_s = ttl_s
        self.name = name
        self._value: T | None = None
        self._at = -math.inf
        self._task: asyncio.Task | None = None

    async def get(self) -> T:
        if self._value is not None and time.monotonic() - self._at < self.ttl_s:
            return self._value
        if self._task is None:
            self._task = asyncio.ensure_future(self._refresh())
        if self._value is not None:
            return self._value
        await asyncio.shield(self._task)
        if self._value is None:
            raise DataUnavailable(f"{self.name} could not be computed")
        return self._value

    async def _refresh(self) -> None:
        try:
            self._value = await self.load()
            self._at = time.monotonic()
        except Exception as error:  # the database away: keep serving what we had
            logger.warning("api: could not refresh %s: %s: %s", self.name, type(error).__name__, error)
        finally:
            self._task = None

    def invalidate(self) -> None:
        self._at = -math.inf

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class Batched(Generic[K, T]):
    """Lookups of one kind by key, gathered into one statement for many keys (as a data loader does).

    A lookup starts a statement at once while fewer than ``parallel`` are running; otherwise it waits
    for the next one, which takes every key waiting (up to ``max_keys``). Under light load a lookup
    costs one statement as before; under heavy load, one statement answers tens of requests, so the
    database spends its time on the rows instead of on a round trip, a parse and a plan per request,
    and every request waits in one FIFO line (a pool's free connection is not handed to whoever asks
    last, as asyncpg's queue does when many wait).
    """

    def __init__(self, load_many: Callable[[list[K]], Awaitable[dict[K, T]]], *, parallel: int = 4,
                 max_keys: int = 200) -> None:
        self.load_many = load_many
        self.parallel = parallel
        self.max_keys = max_keys
        self._waiting: dict[K, list[asyncio.Future]] = {}
        self._running = 0
        self.statements = 0
        self.keys_loaded = 0

    async def get(self, key: K) -> T | None:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        try:
            if self._running < self.parallel:
                # This request runs the statement itself (no task to start: one event-loop turn less).
                await self._run(self._take())
            return await future
        except asyncio.CancelledError:
            future.cancel()
            raise

    def _take(self) -> dict[K, list[asyncio.Future]]:
        keys = list(itertools.islice(self._waiting, self.max_keys))
        self._running += 1
        return {key: self._waiting.pop(key) for key in keys}

    async def _run(self, batch: dict[K, list[asyncio.Future]]) -> None:
        try:
            try:
                found = await self.load_many(list(batch))
            except asyncio.CancelledError:  # the request running it went away: the others wait for the next
                for key, futures in batch.items():
                    alive = [future for future in futures if not future.done()]
                    if alive:
                        self._waiting.setdefault(key, []).extend(alive)
                raise
            except Exception as error:  # the database away: every waiting request gets the error
                for futures in batch.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(error)
                return
            self.statements += 1
            self.keys_loaded += len(batch)
            for key, futures in batch.items():
                value = found.get(key)
                for future in futures:
                    if not future.done():
                        future.set_result(value)
        finally:
            self._running -= 1
            if self._waiting and self._running < self.parallel:
                asyncio.ensure_future(self._run(self._take()))  # those who came while all statements ran
