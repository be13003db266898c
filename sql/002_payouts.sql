-- Quarry schema, version 2: balances, the journal of every credit and debit, payout reports, PPS state.
-- Amounts are bigint satoshis. "sum of journal == balances" is the ledger's invariant.

-- How far a confirmed block has been paid out: credited once, in the same transaction as its
-- journal entries and its report.
ALTER TABLE blocks ADD COLUMN credited boolean NOT NULL DEFAULT false;
ALTER TABLE blocks ADD COLUMN credited_at timestamptz;

CREATE TABLE balances (
    pool     text   NOT NULL,
    address  text   NOT NULL,
    amount   bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
    paid     bigint NOT NULL DEFAULT 0 CHECK (paid >= 0),   -- total ever paid out, for the API
    updated  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (pool, address)
);

-- Append-only: rows are never updated or deleted (a trigger refuses it).
CREATE TABLE journal (
    id          bigserial   PRIMARY KEY,
    pool        text        NOT NULL,
    address     text        NOT NULL,
    amount      bigint      NOT NULL,            -- + credit, - debit
    reason      text        NOT NULL CHECK (reason IN ('block_credit', 'pool_fee', 'fee_recipient',
                                                        'pps_credit', 'payment', 'payment_returned',
                                                        'payment_fee', 'adjustment')),
    block_hash  text,
    payment_id  bigint,
    created     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX journal_pool_address ON journal (pool, address, id);
CREATE UNIQUE INDEX journal_one_block_credit ON journal (pool, block_hash, address, reason)
    WHERE block_hash IS NOT NULL;

CREATE FUNCTION journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the journal is append-only';
END $$;

CREATE TRIGGER journal_no_update BEFORE UPDATE OR DELETE ON journal
    FOR EACH ROW EXECUTE FUNCTION journal_append_only();

-- The payout report of each paid block, byte for byte as computed, with its Merkle root.
CREATE TABLE payout_reports (
    pool        text   NOT NULL,
    block_hash  text   NOT NULL PRIMARY KEY REFERENCES blocks (hash),
    height      bigint NOT NULL,
    scheme      text   NOT NULL,
    merkle_root text   NOT NULL,
    report      bytea  NOT NULL,
    created     timestamptz NOT NULL DEFAULT now()
);

-- PPS/FPPS: the last share credited, and each miner's fraction-of-a-satoshi carry.
CREATE TABLE pps_state (
    pool          text   PRIMARY KEY,
    last_share_id text,
    last_created  timestamptz
);

-- carry: units of 10^-18 satoshi below one satoshi (payouts.schemes.pps_credits), an int < 10^18.
CREATE TABLE pps_carry (
    pool    text    NOT NULL,
    address text    NOT NULL,
    carry   bigint  NOT NULL CHECK (carry >= 0 AND carry < 1000000000000000000),
    PRIMARY KEY (pool, address)
);
