"""The coin daemons' JSON-RPC client: `pool.rpc.client.DaemonClient` (retries with backoff, failover over
several daemons, a concurrency limit) and `pool.rpc.wire` (its errors, endpoints and JSON with Decimal
amounts).  Coin families speak their daemon dialect through it; it knows no coin."""
