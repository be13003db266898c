/*
 * scrypt(N=1024, r=1, p=1, dkLen=32) over an 80-byte block header, used as both
 * password and salt: the proof of work of Litecoin and Dogecoin.
 *
 * Three implementations: portable C, SSE2 (4 headers at once in the batch call)
 * and AVX2 (8 headers at once), chosen at run time through cpuid.  The single
 * call hashes one header; the batch call hashes `count` different headers, with
 * SIMD lanes carrying different headers.
 *
 * Returns 0 on success, -1 when scratch memory could not be allocated.
 * The 32-byte result is the scrypt output as is; read it as a little-endian
 * 256-bit integer to compare it with a target.
 */
#ifndef POOL_NATIVE_SCRYPT_H
#define POOL_NATIVE_SCRYPT_H
#include <stddef.h>
#include <stdint.h>

enum {
    POOL_SCRYPT_PORTABLE = 0,
    POOL_SCRYPT_SSE2 = 1,
    POOL_SCRYPT_AVX2 = 2
};

int pool_scrypt_1024_1_1(const uint8_t *header80, uint8_t *out32);
/* headers80: count * 80 bytes; out32s: count * 32 bytes. */
int pool_scrypt_1024_1_1_batch(const uint8_t *headers80, size_t count, uint8_t *out32s);

/* 1 when the CPU (and OS) support AVX2, else 0. */
int pool_cpu_has_avx2(void);
int pool_scrypt_impl(void);
/* As pool_sha256_select: POOL_IMPL_AUTO picks the best; -1 when unavailable. */
int pool_scrypt_select(int impl);

#endif
