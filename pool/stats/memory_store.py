"""`MemoryStats`: the live statistics in this process, for a single node without Redis."""

from __future__ import annotations

import math
from typing import Any

from pool.stats.store import BufferedStats, stored_number


class MemoryStats(BufferedStats):
    """The same statistics in this process, for a single node without Redis.

    Queries first take in what is buffered, so they see every share recorded before them. Memory is
    bounded by the retention times: expired buckets are pruned once a minute.
    """

    def __init__(self, pool: str, **options: Any) -> None:
        super().__init__(pool, **options)
        self._data: dict[str, Any] = {}
        self._expires: dict[str, float] = {}
        self._next_prune = 0.0

    async def _write_now(self, ops: list[tuple]) -> None:
        self._apply(ops)

    async def _read(self, queries: list[tuple]) -> list[Any]:
        async with self._lock:
            self._drain()
            await self._push()
        return [self._answer(query) for query in queries]

    # A tiny subset of Redis semantics, the same arithmetic as the Lua scripts in RedisStats.

    def _live(self, key: str) -> Any:
        expires = self._expires.get(key)
        if expires is not None and expires <= self.clock():
            del self._expires[key]
            self._data.pop(key, None)
            return None
        return self._data.get(key)

    def _hash(self, key: str) -> dict:
        value = self._live(key)
        if value is None:
            value = self._data[key] = {}
        return value

    def _apply(self, ops: list[tuple]) -> None:
        now = self.clock()
        for op in ops:
            kind, key = op[0], op[1]
            if kind == "buckets":
                for key, (increments, shares, ttl) in op[1].items():
                    fields = self._hash(key)
                    for name, increment in increments.items():
                        fields[name] = stored_number(fields.get(name)) + increment
                    fields["n"] = int(fields.get("n", 0)) + shares
                    self._expires[key] = now + ttl
            elif kind == "buckets_max":
                for key, (values, ttl) in op[1].items():
                    fields = self._hash(key)
                    for name, value in values.items():
                        current = fields.get(name)
                        if current is None or value > current:
                            fields[name] = value
                    self._expires[key] = now + ttl
            elif kind == "seen":
                _, sets, cutoff, ttl = op
                for key, scores in sets.items():
                    members = self._hash(key)
                    for member, score in scores.items():
                        if member not in members or score > members[member]:
                            members[member] = score
                    if cutoff is not None:
                        for member in [m for m, score in members.items() if score < cutoff]:
                            del members[member]
                    self._expires[key] = now + ttl
            elif kind == "round_add":
                fields = self._hash(key)
                fields["work"] = stored_number(fields.get("work")) + op[2]
                fields["shares"] = int(fields.get("shares", 0)) + op[3]
                fields.setdefault("started", op[4])
            elif kind == "round_reset":
                _, _, last_key, height, block_hash, created = op
                current = self._live(key) or {}
                if current.get("hash") == block_hash or height < int(current.get("height", -1)):
                    continue
                self._data[last_key] = {
                    "work": current.get("work", 0.0), "shares": current.get("shares", 0),
                    "started": current.get("started", ""), "ended": created,
                    "height": height, "hash": block_hash,
                }
                self._expires.pop(last_key, None)
                self._data[key] = {"work": 0.0, "shares": 0, "started": created, "height": height,
                                   "hash": block_hash}
                self._expires.pop(key, None)
            elif kind == "round_rebuild":
                fields = self._hash(key)
                if "hash" in fields:
                    continue
                if op[2] > stored_number(fields.get("work")):
                    fields["work"] = op[2]
                if op[3] > int(fields.get("shares", 0)):
                    fields["shares"] = op[3]
                fields["started"] = op[4]
            else:  # pragma: no cover - a programming error
                raise ValueError(f"unknown operation {kind!r}")
        if now >= self._next_prune:
            self._next_prune = now + 60
            for key in [key for key, when in self._expires.items() if when <= now]:
                del self._expires[key]
                self._data.pop(key, None)

    def _answer(self, query: tuple) -> Any:
        kind = query[0]
        if kind == "hsum":
            total = 0.0
            for key in query[1]:
                fields = self._live(key)
                if fields:
                    value = fields.get(query[2])
                    if value is not None and math.isfinite(value):
                        total += value
            return total
        if kind == "zcount_above":
            members = self._live(query[1]) or {}
            return sum(1 for score in members.values() if score > query[2])
        if kind == "zscore":
            return (self._live(query[1]) or {}).get(query[2])
        if kind == "hgetall":
            return dict(self._live(query[1]) or {})
        if kind == "exists":
            return self._live(query[1]) is not None
        raise ValueError(f"unknown query {kind!r}")  # pragma: no cover
