-- Quarry schema, version 3: payments through the daemon wallet.
-- Amounts are bigint satoshis.

-- Payments: one wallet transaction per batch. Status flow:
--   built -> signed -> (stored with txid, balances debited) broadcast -> confirmed
--   and on the side: unknown (a wallet call timed out: reconcile before anything else),
--   failed (never left the wallet: amounts returned through the journal).
CREATE TABLE payments (
    id            bigserial   PRIMARY KEY,
    pool          text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('signed', 'broadcast', 'unknown', 'confirmed',
                                                         'failed', 'returned')),
    txid          text        UNIQUE,
    raw_tx        text,
    amount        bigint      NOT NULL CHECK (amount >= 0),
    fee           bigint      NOT NULL DEFAULT 0 CHECK (fee >= 0),
    fee_paid_by   text        NOT NULL DEFAULT 'pool' CHECK (fee_paid_by IN ('pool', 'miners')),
    payees        integer     NOT NULL,
    confirmations integer     NOT NULL DEFAULT 0,
    detail        text        NOT NULL DEFAULT '',
    created       timestamptz NOT NULL DEFAULT now(),
    updated       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE payment_outputs (
    payment_id bigint NOT NULL REFERENCES payments (id),
    address    text   NOT NULL,
    amount     bigint NOT NULL CHECK (amount > 0),    -- what the miner receives
    debited    bigint NOT NULL CHECK (debited > 0),   -- what left the balance (amount + fee share)
    PRIMARY KEY (payment_id, address)
);
