"""The public statistics API (``pool api``): the process and its application in `pool.api.app`, the routes
in `pool.api.routes`, what every request goes through (errors, rate limit, CORS, metrics) in
`pool.api.middleware`, the queries in `pool.api.data` (`PoolData`, made of `pool.api.pool_queries`,
`pool.api.miner_queries` and `pool.api.block_queries`), the OpenAPI document in `pool.api.openapi`, the
live feed in `pool.api.feed`."""
