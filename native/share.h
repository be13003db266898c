/*
 * One call per share: builds the coinbase from its parts, hashes it to the
 * coinbase txid, folds the merkle branch into the merkle root, assembles the
 * 80-byte header and hashes it for proof of work and for the block id.
 *
 *   coinbase    = coinb1 | extranonce1 | extranonce2 | coinb2
 *   root        = sha256d(coinbase); for each branch entry e: root = sha256d(root | e)
 *   header      = version (LE32) | prevhash (32, header order) | root | ntime (LE32)
 *                 | nbits (LE32) | nonce (LE32)
 *   block hash  = sha256d(header)             (internal byte order; reversed = block id)
 *   pow hash    = sha256d(header) or scrypt(header), by pow_algo
 *
 * merkle_branch is merkle_branch_count * 32 bytes, in internal byte order.
 * out144 receives header (80) | pow hash (32) | block hash (32).
 * With POOL_POW_DEFERRED the pow hash bytes are left as zero: the caller hashes
 * the headers of several shares in one pool_scrypt_1024_1_1_batch call.
 * Returns 0 on success, -1 for an unknown pow_algo or allocation failure.
 */
#ifndef POOL_NATIVE_SHARE_H
#define POOL_NATIVE_SHARE_H
#include <stddef.h>
#include <stdint.h>

enum {
    POOL_POW_SHA256D = 0,
    POOL_POW_SCRYPT = 1,
    POOL_POW_DEFERRED = 2
};

int pool_share_hash(int pow_algo,
                    const uint8_t *coinb1, size_t coinb1_len,
                    const uint8_t *extranonce1, size_t extranonce1_len,
                    const uint8_t *extranonce2, size_t extranonce2_len,
                    const uint8_t *coinb2, size_t coinb2_len,
                    const uint8_t *merkle_branch, size_t merkle_branch_count,
                    const uint8_t *prevhash32,
                    uint32_t version, uint32_t ntime, uint32_t nbits, uint32_t nonce,
                    uint8_t *out144);

/*
 * The same, with the per-job parts (coinbase halves, merkle branch, prevhash, nbits)
 * copied once into a job context when the job is made: the per-share call then passes
 * only what the miner chose.  pool_job_new returns NULL when out of memory or when
 * coinb1 + extranonce + coinb2 would exceed 64 KiB.
 */
typedef struct pool_job pool_job;

pool_job *pool_job_new(const uint8_t *coinb1, size_t coinb1_len,
                       const uint8_t *coinb2, size_t coinb2_len,
                       const uint8_t *merkle_branch, size_t merkle_branch_count,
                       const uint8_t *prevhash32, uint32_t nbits);
void pool_job_free(pool_job *job);
int pool_job_share_hash(const pool_job *job, int pow_algo,
                        const uint8_t *extranonce1, size_t extranonce1_len,
                        const uint8_t *extranonce2, size_t extranonce2_len,
                        uint32_t version, uint32_t ntime, uint32_t nonce,
                        uint8_t *out144);

#endif
