"""The demo CPU miner (``pool miner``): a real Stratum v1 TCP client, written from the public wire
conventions.

It is deliberately independent of the pool's own share code (``share_validator``): a pool and a miner
written together can agree on a wrong byte order and still "find" shares. Everything here follows the
reference client, pooler/cpuminer 2.5 (``cpu-miner.c`` and ``util.c``), BIP310 for version rolling,
and the conventions summarised in the project's ``stratum-v1-wire`` notes. Pure Python and ``hashlib``
only. Each module's docstring gives the conventions it implements and where they come from.

From the wire up:

- `wire`: line framing, how values are spelled (hex, numbers, errors), `StratumProtocolError`
- `hashing`: scrypt and sha256d, Stratum difficulty and targets, the nonce scan (in a worker thread)
- `work`: a ``mining.notify`` decoded into a `Job`; coinbase, merkle root, header, version rolling;
  the `WorkUnit` that is hashed and the ``mining.submit`` that reports a share of it
- `stats`: `MinerStats`, what a run counts
- `client`: `StratumClient`, one connection: requests and answers by id, the handshake, server methods
- `mining`: `StratumMiner`, which hashes the jobs, submits the shares and reconnects; `run_miner`
- `cli`: the ``pool miner`` command (``python -m pool.devtools.miner``)

From Python::

    stats = await run_miner("127.0.0.1", 3333, "ADDRESS.worker", algorithm="scrypt", max_shares=10)
"""

from pool.devtools.miner.mining import StratumMiner, run_miner
from pool.devtools.miner.stats import MinerStats

__all__ = ["MinerStats", "StratumMiner", "run_miner"]
