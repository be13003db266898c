"""The public statistics API (``pool api``): routes in `pool.api.app`, queries in `pool.api.data`,
the OpenAPI document in `pool.api.openapi`, the live feed in `pool.api.feed`."""
