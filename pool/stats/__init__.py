"""Live statistics: hashrate windows, workers online, round work; in Redis or in process memory.

``record_share`` is called on the share path and only appends the record to a bounded buffer. Once a
second (or every ``flush_records`` shares) a flusher reduces the buffer to per-minute sums and applies
them in one step: for `RedisStats` one MULTI/EXEC pipeline, for `MemoryStats` a few dict updates.
These are statistics, not money: the ledger in PostgreSQL is the truth, and `rebuild_from` reloads its
``worker_minutes`` rows after Redis lost its data.

- `pool.stats.hashrate`: windows, buckets and retention; hashes per share of difficulty 1.
- `pool.stats.batch`: a buffer of shares reduced to per-minute sums and the round's work (pure).
- `pool.stats.store`: the `LiveStats` interface and what both stores share: the buffer and its
  flusher, the keys, the write operations, the queries, the rebuild from the ledger.
- `pool.stats.memory_store`: `MemoryStats`, the statistics in this process (one node, no Redis).
- `pool.stats.redis_store`: `RedisStats`, the statistics in Redis, shared by every pool node.
"""
