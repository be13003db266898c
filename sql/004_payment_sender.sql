-- Quarry schema, version 4: what the payment sender needs beyond version 3.
--
-- Payment status flow (payouts/payments.py):
--   signed     the signed transaction and its txid are stored and the balances debited, in one
--              transaction; it may or may not have reached the daemon yet
--   broadcast  the daemon's wallet knows the transaction (mempool or chain)
--   unknown    a broadcast call timed out: reconciled by txid before anything else is paid
--   confirmed  `payment_confirmations` deep
--   failed     the daemon refused it and its wallet never knew it: nobody can mine it; the
--              debits are returned through the journal
--   returned   the wallet saw it conflicted `conflict_confirmations` deep: the debits are returned

COMMENT ON COLUMN payments.fee IS 'the transaction fee in satoshis, paid by fee_paid_by';
ALTER TABLE payments ADD COLUMN block_hash text;            -- the block that confirmed it
ALTER TABLE payments ADD COLUMN broadcasts integer NOT NULL DEFAULT 0;

CREATE INDEX payments_open ON payments (pool, id) WHERE status IN ('signed', 'broadcast', 'unknown');
CREATE INDEX payment_outputs_address ON payment_outputs (address, payment_id);

-- A payment debits each payee once and returns at most once (the journal guard, as for blocks).
CREATE UNIQUE INDEX journal_one_payment_entry ON journal (pool, payment_id, address, reason)
    WHERE payment_id IS NOT NULL;

-- Per-miner settings a miner may choose: a minimum payout above the pool's.
CREATE TABLE miner_settings (
    pool            text   NOT NULL,
    address         text   NOT NULL,
    minimum_payout  bigint CHECK (minimum_payout > 0),
    updated         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, address)
);
