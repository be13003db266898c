-- Quarry schema, version 1: shares, blocks, per-minute worker aggregates, round work.
-- Money is bigint satoshis; difficulties are double precision and never hold money.

CREATE TABLE shares (
    share_id            text             NOT NULL,  -- node id + process start + sequence: unique pool-wide
    created             timestamptz      NOT NULL,
    pool                text             NOT NULL,
    address             text             NOT NULL,
    worker              text             NOT NULL,
    credited_difficulty double precision NOT NULL,  -- the difficulty the job was sent at (0 for a rejected block share)
    actual_difficulty   double precision NOT NULL,  -- diff1 / hash
    network_difficulty  double precision NOT NULL,  -- Stratum units, at the time of the share
    height              bigint           NOT NULL,
    coinbase_value      bigint           NOT NULL,  -- satoshis, from the template
    node_id             smallint         NOT NULL,
    ip                  text             NOT NULL DEFAULT '',
    is_block            boolean          NOT NULL DEFAULT false,
    PRIMARY KEY (share_id, created)
) PARTITION BY RANGE (created);

-- Shares outside the daily partitions the recorder creates land here rather than fail.
CREATE TABLE shares_default PARTITION OF shares DEFAULT;

CREATE INDEX shares_pool_created ON shares (pool, created);
CREATE INDEX shares_pool_address_created ON shares (pool, address, created);

CREATE TABLE blocks (
    id                 bigserial        PRIMARY KEY,
    pool               text             NOT NULL,
    height             bigint           NOT NULL,
    hash               text             NOT NULL UNIQUE,
    status             text             NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'confirmed', 'orphaned', 'rejected')),
    confirmations      integer          NOT NULL DEFAULT 0,
    reward             bigint           NOT NULL CHECK (reward >= 0),  -- satoshis (the coinbase value)
    finder_address     text             NOT NULL DEFAULT '',
    finder_worker      text             NOT NULL DEFAULT '',
    share_difficulty   double precision NOT NULL DEFAULT 0,
    network_difficulty double precision NOT NULL DEFAULT 0,
    effort             double precision,                             -- round work / network difficulty
    submit_detail      text             NOT NULL DEFAULT '',
    node_id            smallint         NOT NULL DEFAULT 0,
    created            timestamptz      NOT NULL DEFAULT now(),
    updated            timestamptz      NOT NULL DEFAULT now()
);

CREATE INDEX blocks_pool_status ON blocks (pool, status);
CREATE INDEX blocks_pool_height ON blocks (pool, height DESC);

-- Per-minute sums per worker, kept in the same transaction as the shares they count: charts and
-- statistics read these, never the raw shares.
CREATE TABLE worker_minutes (
    pool           text             NOT NULL,
    address        text             NOT NULL,
    worker         text             NOT NULL,
    minute         timestamptz      NOT NULL,
    shares         bigint           NOT NULL,
    difficulty_sum double precision NOT NULL,
    last_share     timestamptz      NOT NULL,
    PRIMARY KEY (pool, address, worker, minute)
);

CREATE INDEX worker_minutes_pool_minute ON worker_minutes (pool, minute);

-- Work done since the pool's last block (sum of credited difficulty / network difficulty).
CREATE TABLE rounds (
    pool        text             PRIMARY KEY,
    started     timestamptz      NOT NULL DEFAULT now(),
    work        double precision NOT NULL DEFAULT 0,
    shares      bigint           NOT NULL DEFAULT 0
);
