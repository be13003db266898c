/* Streaming SHA-256 shared by the native sources (not part of the Python API). */
#ifndef POOL_NATIVE_SHA256_STREAM_H
#define POOL_NATIVE_SHA256_STREAM_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t total_len;
    uint8_t buffer[64];
    size_t buffer_len;
} pool_sha256_ctx;

void pool_sha256_init(pool_sha256_ctx *ctx);
void pool_sha256_update(pool_sha256_ctx *ctx, const uint8_t *data, size_t len);
void pool_sha256_final(pool_sha256_ctx *ctx, uint8_t *out32);
/* Compress `blocks` consecutive 64-byte blocks into state (dispatches to SHA-NI or portable). */
void pool_sha256_transform(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
/* sha256d of exactly 64 bytes (a merkle node: left | right). */
void pool_sha256d_64(const uint8_t *in64, uint8_t *out32);
/* PBKDF2-HMAC-SHA256 helpers for scrypt live in scrypt.c. */

/* CPU feature detection (x86 cpuid/xgetbv; 0 elsewhere). */
int pool_cpu_has_shani(void);
int pool_cpu_has_avx2(void);
int pool_cpu_has_sse2(void);
#endif
