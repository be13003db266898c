-- Quarry schema, version 5: one btree on shares instead of three.
--
-- No query reads shares by address: the payouts read the window by (pool, created) and the
-- statistics read worker_minutes. The primary key becomes (pool, created, share_id): it still makes
-- a stored share unique (the ledger's retried and replayed batches rely on it), and it is the
-- (pool, created) index the payouts read the window by, in (created, share_id) order. Each btree
-- cost every inserted share a third or so of PostgreSQL's work.

ALTER TABLE shares DROP CONSTRAINT shares_pkey;
DROP INDEX shares_pool_created;
DROP INDEX shares_pool_address_created;
ALTER TABLE shares ADD PRIMARY KEY (pool, created, share_id);
