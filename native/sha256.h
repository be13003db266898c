/*
 * SHA-256 and double SHA-256 (sha256d).
 *
 * Two implementations live behind these calls: a portable C one and one using the
 * x86 SHA extensions (SHA-NI), chosen at run time through cpuid.  All byte buffers
 * are raw bytes; digests are written in the order SHA-256 produces them.
 *
 * This header is read by native/build_native.py into the cffi cdef: keep it to
 * plain declarations (preprocessor lines are stripped before parsing).
 */
#ifndef POOL_NATIVE_SHA256_H
#define POOL_NATIVE_SHA256_H
#include <stddef.h>
#include <stdint.h>

/* Implementations, for pool_sha256_impl() and pool_sha256_select(). */
enum {
    POOL_IMPL_AUTO = -1,
    POOL_SHA256_PORTABLE = 0,
    POOL_SHA256_SHANI = 1
};

void pool_sha256(const uint8_t *data, size_t len, uint8_t *out32);
void pool_sha256d(const uint8_t *data, size_t len, uint8_t *out32);

/* 1 when the CPU has the SHA extensions (and SSE4.1), else 0. */
int pool_cpu_has_shani(void);
/* The implementation in force. */
int pool_sha256_impl(void);
/* Choose an implementation (POOL_IMPL_AUTO = best available); returns the one in
 * force afterwards, or -1 when the requested one is not available here. */
int pool_sha256_select(int impl);

#endif
