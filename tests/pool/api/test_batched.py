"""`Batched`: concurrent lookups share one statement, errors reach every waiter, and a request that
goes away while running the statement leaves the others answered."""
from __future__ import annotations

import asyncio

import pytest

from pool.api.caches import Batched


class Loader:
    def __init__(self, delay: float = 0.01, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.delay = delay
        self.fail = fail

    async def __call__(self, keys: list[str]) -> dict[str, str]:
        self.calls.append(keys)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise OSError("database away")
        return {key: key.upper() for key in keys if key != "missing"}


async def test_one_lookup_alone_is_one_statement():
    loader = Loader()
    batched = Batched(loader, parallel=2)
    assert await batched.get("a") == "A"
    assert await batched.get("missing") is None
    assert loader.calls == [["a"], ["missing"]]


async def test_lookups_while_statements_run_share_the_next_one():
    loader = Loader(delay=0.05)
    batched = Batched(loader, parallel=1, max_keys=3)
    keys = ["a", "b", "c", "d", "b", "e"]
    results = await asyncio.gather(*(batched.get(key) for key in keys))
    assert results == [key.upper() for key in keys]
    assert loader.calls[0] == ["a"]  # the first runs at once
    assert loader.calls[1:] == [["b", "c", "d"], ["e"]]  # then at most 3 keys; "b" asked twice, read once
    assert batched.statements == 3 and batched._running == 0 and not batched._waiting


async def test_an_error_reaches_every_waiter_and_the_next_lookup_tries_again():
    loader = Loader(fail=True)
    batched = Batched(loader, parallel=1)
    results = await asyncio.gather(*(batched.get(key) for key in "abc"), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    loader.fail = False
    assert await batched.get("a") == "A"


async def test_the_request_running_the_statement_goes_away_and_the_others_are_answered():
    loader = Loader(delay=0.2)
    batched = Batched(loader, parallel=1)
    first = asyncio.ensure_future(batched.get("a"))  # runs the statement itself
    await asyncio.sleep(0.01)
    others = [asyncio.ensure_future(batched.get(key)) for key in "abc"]
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    async with asyncio.timeout(2):
        assert await asyncio.gather(*others) == ["A", "B", "C"]
    assert batched._running == 0 and not batched._waiting
