/* The whole share in one call: coinbase -> txid -> merkle root -> header -> hashes. */
#include <string.h>

#include "scrypt.h"
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
