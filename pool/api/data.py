"""What the API shows, read from the ledger's tables: aggregates only, never the raw shares.

Hashrate and workers come from ``worker_minutes`` (per-minute sums per worker, written in the same
transaction as the shares); blocks, balances, the journal, payout reports and payments from their
tables. `PoolData` holds every query of one pool's API, in parts:

- `pool.api.pool_queries`: the pool's page, the network, the performance series, the estimate.
- `pool.api.miner_queries`: a miner's page and performance, the top miners, the miners' money.
- `pool.api.block_queries`: pages of blocks, payout reports and proofs, payments.
- `pool.api.caches`: `Cached` and `Batched`; `pool.api.formats`: how values are written.
"""
from __future__ import annotations

from pool.api.block_queries import BlockQueries
from pool.api.miner_queries import MinerQueries


class PoolData(MinerQueries, BlockQueries):
    """The queries of one pool's API (``config.pool_name``) on an asyncpg pool."""
