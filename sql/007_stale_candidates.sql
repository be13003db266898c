-- Quarry schema, version 7: block candidates found on a stale tip.
--
-- A share that meets the network target on a job whose previous block is no longer the chain tip
-- (the pool knew the tip had moved, or had no template) is not credited, but its block is still
-- submitted (it may win a race: the node decides) and stored, marked stale. Such a row is the
-- miner's late work, not an orphan of the pool: the pool's orphan figures leave stale rows out.
-- A stale candidate that the chain takes after all is followed and credited like any other block.
ALTER TABLE blocks ADD COLUMN stale boolean NOT NULL DEFAULT false;
