-- Quarry schema, version 5: one index less on shares.
--
-- No query reads shares by address: the payouts read the window by (pool, created) and the
-- statistics read worker_minutes. The (pool, address, created) index only cost every insert a
-- third btree (about a quarter of PostgreSQL's work per share).

DROP INDEX shares_pool_address_created;
