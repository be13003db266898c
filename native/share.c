/* The whole share in one call: coinbase -> txid -> merkle root -> header -> hashes. */
#include <stdlib.h>
#include <string.h>

#include "scrypt.h"
#include "sha256.h"
#include "share.h"
#include "internal/sha256_stream.h"

static inline void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

int pool_share_hash(int pow_algo,
                    const uint8_t *coinb1, size_t coinb1_len,
                    const uint8_t *extranonce1, size_t extranonce1_len,
                    const uint8_t *extranonce2, size_t extranonce2_len,
                    const uint8_t *coinb2, size_t coinb2_len,
                    const uint8_t *merkle_branch, size_t merkle_branch_count,
                    const uint8_t *prevhash32,
                    uint32_t version, uint32_t ntime, uint32_t nbits, uint32_t nonce,
                    uint8_t *out144)
{
    if (pow_algo != POOL_POW_SHA256D && pow_algo != POOL_POW_SCRYPT && pow_algo != POOL_POW_DEFERRED)
        return -1;

    /* Coinbase txid: sha256d over the four parts, streamed without a copy. */
    pool_sha256_ctx ctx;
    uint8_t node[64];
    pool_sha256_init(&ctx);
    pool_sha256_update(&ctx, coinb1, coinb1_len);
    pool_sha256_update(&ctx, extranonce1, extranonce1_len);
    pool_sha256_update(&ctx, extranonce2, extranonce2_len);
    pool_sha256_update(&ctx, coinb2, coinb2_len);
    pool_sha256_final(&ctx, node);
    pool_sha256(node, 32, node);

    /* Merkle root: the coinbase is always the leftmost leaf. */
    for (size_t i = 0; i < merkle_branch_count; i++) {
        memcpy(node + 32, merkle_branch + 32 * i, 32);
        pool_sha256d_64(node, node);
    }

    uint8_t *header = out144;
    uint8_t *pow_hash = out144 + 80;
    uint8_t *block_hash = out144 + 112;
    store_le32(header, version);
    memcpy(header + 4, prevhash32, 32);
    memcpy(header + 36, node, 32);
    store_le32(header + 68, ntime);
    store_le32(header + 72, nbits);
    store_le32(header + 76, nonce);

    pool_sha256d(header, 80, block_hash);
    if (pow_algo == POOL_POW_SHA256D) {
        memcpy(pow_hash, block_hash, 32);
    } else if (pow_algo == POOL_POW_SCRYPT) {
        if (pool_scrypt_1024_1_1(header, pow_hash) != 0)
            return -1;
    } else {
        memset(pow_hash, 0, 32);
    }
    return 0;
}

struct pool_job {
    uint8_t *coinb1;
    size_t coinb1_len;
    uint8_t *coinb2;
    size_t coinb2_len;
    uint8_t *merkle_branch;
    size_t merkle_branch_count;
    uint8_t prevhash[32];
    uint32_t nbits;
};

#define POOL_MAX_COINBASE (64 * 1024)

pool_job *pool_job_new(const uint8_t *coinb1, size_t coinb1_len,
                       const uint8_t *coinb2, size_t coinb2_len,
                       const uint8_t *merkle_branch, size_t merkle_branch_count,
                       const uint8_t *prevhash32, uint32_t nbits)
{
    if (coinb1_len + coinb2_len > POOL_MAX_COINBASE || merkle_branch_count > 64)
        return NULL;
    /* One allocation: the struct, then the three byte arrays. */
    size_t branch_len = 32 * merkle_branch_count;
    pool_job *job = malloc(sizeof *job + coinb1_len + coinb2_len + branch_len + 1);
    if (!job)
        return NULL;
    uint8_t *data = (uint8_t *)(job + 1);
    job->coinb1 = data;
    job->coinb2 = data + coinb1_len;
    job->merkle_branch = data + coinb1_len + coinb2_len;
    memcpy(job->coinb1, coinb1, coinb1_len);
    memcpy(job->coinb2, coinb2, coinb2_len);
    if (branch_len)
        memcpy(job->merkle_branch, merkle_branch, branch_len);
    job->coinb1_len = coinb1_len;
    job->coinb2_len = coinb2_len;
    job->merkle_branch_count = merkle_branch_count;
    memcpy(job->prevhash, prevhash32, 32);
    job->nbits = nbits;
    return job;
}

void pool_job_free(pool_job *job)
{
    free(job);
}

int pool_job_share_hash(const pool_job *job, int pow_algo,
                        const uint8_t *extranonce1, size_t extranonce1_len,
                        const uint8_t *extranonce2, size_t extranonce2_len,
                        uint32_t version, uint32_t ntime, uint32_t nonce,
                        uint8_t *out144)
{
    return pool_share_hash(pow_algo, job->coinb1, job->coinb1_len, extranonce1, extranonce1_len,
                           extranonce2, extranonce2_len, job->coinb2, job->coinb2_len,
                           job->merkle_branch, job->merkle_branch_count, job->prevhash,
                           version, ntime, job->nbits, nonce, out144);
}
