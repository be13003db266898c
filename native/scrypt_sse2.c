/*
 * scrypt ROMix (N=1024, r=1) with SSE2; see scrypt.c for the surrounding
 * PBKDF2 steps and for the contract of the pool_scrypt_romix_* functions:
 * X holds 32 little-endian words per lane (the 128-byte block B), lanes one
 * after the other, and is replaced by B'; scratch is 128 KiB per lane, 64-byte
 * aligned.
 *
 * pool_scrypt_romix_sse2_1: one header, salsa20/8 in the "diagonal" layout of
 *   Colin Percival's crypto_scrypt-sse.c.  Register k (k = 0..3) holds the words
 *   (4k + 5i) mod 16, i = 0..3, of a 16-word salsa block, so both the column and
 *   the row quarter-rounds work on whole registers, with a lane rotation of three
 *   registers in between.  The AVX2 implementation uses it for a lone header too:
 *   a lone header is bound by latency (add, shift, xor, xor: 4 cycles per step,
 *   8 dependent steps per double round), which wider registers do not shorten.
 *
 * pool_scrypt_romix_sse2_4: four headers, one per 32-bit lane ("word-major":
 *   register k holds word k of every header).  V is kept lane-major (each
 *   header's 128-byte rows contiguous) so that the reads of the second loop,
 *   whose row index differs per header, are plain 16-byte loads; 4x4 transposes
 *   convert between the two layouts.
 *
 * Both versions store X0 ^ X1 in place of X0 in V (the trick of pooler's
 * cpuminer): it is the input of the first salsa20/8 anyway, and in the second
 * loop (X0 ^ V0) ^ (X1 ^ V1) = (X0 ^ X1) ^ (V0 ^ V1) then costs one XOR after
 * the load instead of two.
 */
#include <stddef.h>
#include <stdint.h>

#include "internal/scrypt_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <emmintrin.h>

#define SSE2 __attribute__((target("sse2")))
#define SSE2_INLINE static inline __attribute__((always_inline, target("sse2")))
#define N 1024

/* ------------------------------------------------------------------------- */
/* One header: diagonal layout                                               */

#define DSTEP(a, b, c, s)                                                                           \
    do {                                                                                           \
        __m128i t_ = _mm_add_epi32(b, c);                                                          \
        a = _mm_xor_si128(a, _mm_slli_epi32(t_, s));                                               \
        a = _mm_xor_si128(a, _mm_srli_epi32(t_, 32 - (s)));                                        \
    } while (0)

/* (x0..x3) = salsa20/8(x0..x3), diagonal layout. */
SSE2_INLINE void salsa8_diag(__m128i *x0, __m128i *x1, __m128i *x2, __m128i *x3)
{
    __m128i X0 = *x0, X1 = *x1, X2 = *x2, X3 = *x3;
    for (int i = 0; i < 8; i += 2) {
        DSTEP(X1, X0, X3, 7);
        DSTEP(X2, X1, X0, 9);
        DSTEP(X3, X2, X1, 13);
        DSTEP(X0, X3, X2, 18);
        X1 = _mm_shuffle_epi32(X1, 0x93);
        X2 = _mm_shuffle_epi32(X2, 0x4e);
        X3 = _mm_shuffle_epi32(X3, 0x39);
        DSTEP(X3, X0, X1, 7);
        DSTEP(X2, X3, X0, 9);
        DSTEP(X1, X2, X3, 13);
        DSTEP(X0, X1, X2, 18);
        X1 = _mm_shuffle_epi32(X1, 0x39);
        X2 = _mm_shuffle_epi32(X2, 0x4e);
        X3 = _mm_shuffle_epi32(X3, 0x93);
    }
    *x0 = _mm_add_epi32(*x0, X0);
    *x1 = _mm_add_epi32(*x1, X1);
    *x2 = _mm_add_epi32(*x2, X2);
    *x3 = _mm_add_epi32(*x3, X3);
}

SSE2 void pool_scrypt_romix_sse2_1(uint32_t X[32], void *scratch)
{
    __m128i *V = scratch;
    uint32_t D[32] __attribute__((aligned(16)));

    /* To the diagonal layout: position i of each half holds word 5i mod 16. */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 16; i++)
            D[16 * k + i] = X[16 * k + (5 * i) % 16];
    __m128i a0 = _mm_load_si128((const __m128i *)&D[0]);
    __m128i a1 = _mm_load_si128((const __m128i *)&D[4]);
    __m128i a2 = _mm_load_si128((const __m128i *)&D[8]);
    __m128i a3 = _mm_load_si128((const __m128i *)&D[12]);
    __m128i b0 = _mm_load_si128((const __m128i *)&D[16]);
    __m128i b1 = _mm_load_si128((const __m128i *)&D[20]);
    __m128i b2 = _mm_load_si128((const __m128i *)&D[24]);
    __m128i b3 = _mm_load_si128((const __m128i *)&D[28]);

    for (int i = 0; i < N; i++) {
        __m128i *v = &V[8 * i];
        a0 = _mm_xor_si128(a0, b0);
        a1 = _mm_xor_si128(a1, b1);
        a2 = _mm_xor_si128(a2, b2);
        a3 = _mm_xor_si128(a3, b3);
        _mm_store_si128(&v[0], a0);
        _mm_store_si128(&v[1], a1);
        _mm_store_si128(&v[2], a2);
        _mm_store_si128(&v[3], a3);
        _mm_store_si128(&v[4], b0);
        _mm_store_si128(&v[5], b1);
        _mm_store_si128(&v[6], b2);
        _mm_store_si128(&v[7], b3);
        salsa8_diag(&a0, &a1, &a2, &a3);
        b0 = _mm_xor_si128(b0, a0);
        b1 = _mm_xor_si128(b1, a1);
        b2 = _mm_xor_si128(b2, a2);
        b3 = _mm_xor_si128(b3, a3);
        salsa8_diag(&b0, &b1, &b2, &b3);
    }
    for (int i = 0; i < N; i++) {
        /* Integerify: word 16 = lane 0 of b0. */
        const __m128i *v = &V[8 * ((uint32_t)_mm_cvtsi128_si32(b0) & (N - 1))];
        a0 = _mm_xor_si128(_mm_xor_si128(a0, b0), _mm_load_si128(&v[0]));
        a1 = _mm_xor_si128(_mm_xor_si128(a1, b1), _mm_load_si128(&v[1]));
        a2 = _mm_xor_si128(_mm_xor_si128(a2, b2), _mm_load_si128(&v[2]));
        a3 = _mm_xor_si128(_mm_xor_si128(a3, b3), _mm_load_si128(&v[3]));
        b0 = _mm_xor_si128(b0, _mm_load_si128(&v[4]));
        b1 = _mm_xor_si128(b1, _mm_load_si128(&v[5]));
        b2 = _mm_xor_si128(b2, _mm_load_si128(&v[6]));
        b3 = _mm_xor_si128(b3, _mm_load_si128(&v[7]));
        salsa8_diag(&a0, &a1, &a2, &a3);
        b0 = _mm_xor_si128(b0, a0);
        b1 = _mm_xor_si128(b1, a1);
        b2 = _mm_xor_si128(b2, a2);
        b3 = _mm_xor_si128(b3, a3);
        salsa8_diag(&b0, &b1, &b2, &b3);
    }

    _mm_store_si128((__m128i *)&D[0], a0);
    _mm_store_si128((__m128i *)&D[4], a1);
    _mm_store_si128((__m128i *)&D[8], a2);
    _mm_store_si128((__m128i *)&D[12], a3);
    _mm_store_si128((__m128i *)&D[16], b0);
    _mm_store_si128((__m128i *)&D[20], b1);
    _mm_store_si128((__m128i *)&D[24], b2);
    _mm_store_si128((__m128i *)&D[28], b3);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 16; i++)
            X[16 * k + (5 * i) % 16] = D[16 * k + i];
}

/* ------------------------------------------------------------------------- */
/* Four headers: one per lane                                                */

#define WSTEP(a, b, c, s)                                                                           \
    do {                                                                                           \
        __m128i t_ = _mm_add_epi32(b, c);                                                          \
        a = _mm_xor_si128(a, _mm_or_si128(_mm_slli_epi32(t_, s), _mm_srli_epi32(t_, 32 - (s))));   \
    } while (0)

/* B = salsa20/8(B), 16 words, each register one word of four headers. */
SSE2_INLINE void salsa8_w4(__m128i B[16])
{
    __m128i x00 = B[0], x01 = B[1], x02 = B[2], x03 = B[3];
    __m128i x04 = B[4], x05 = B[5], x06 = B[6], x07 = B[7];
    __m128i x08 = B[8], x09 = B[9], x10 = B[10], x11 = B[11];
    __m128i x12 = B[12], x13 = B[13], x14 = B[14], x15 = B[15];
    for (int i = 0; i < 8; i += 2) {
        /* Columns, two at a time: fewer values are live at once, so the
         * spills the compiler needs (16 words and temporaries in 16
         * registers) stay off the dependency chains; about 12% faster than
         * doing each step on all four columns. */
        WSTEP(x04, x00, x12, 7);
        WSTEP(x09, x05, x01, 7);
        WSTEP(x08, x04, x00, 9);
        WSTEP(x13, x09, x05, 9);
        WSTEP(x12, x08, x04, 13);
        WSTEP(x01, x13, x09, 13);
        WSTEP(x00, x12, x08, 18);
        WSTEP(x05, x01, x13, 18);
        WSTEP(x14, x10, x06, 7);
        WSTEP(x03, x15, x11, 7);
        WSTEP(x02, x14, x10, 9);
        WSTEP(x07, x03, x15, 9);
        WSTEP(x06, x02, x14, 13);
        WSTEP(x11, x07, x03, 13);
        WSTEP(x10, x06, x02, 18);
        WSTEP(x15, x11, x07, 18);
        /* Rows, two at a time. */
        WSTEP(x01, x00, x03, 7);
        WSTEP(x06, x05, x04, 7);
        WSTEP(x02, x01, x00, 9);
        WSTEP(x07, x06, x05, 9);
        WSTEP(x03, x02, x01, 13);
        WSTEP(x04, x07, x06, 13);
        WSTEP(x00, x03, x02, 18);
        WSTEP(x05, x04, x07, 18);
        WSTEP(x11, x10, x09, 7);
        WSTEP(x12, x15, x14, 7);
        WSTEP(x08, x11, x10, 9);
        WSTEP(x13, x12, x15, 9);
        WSTEP(x09, x08, x11, 13);
        WSTEP(x14, x13, x12, 13);
        WSTEP(x10, x09, x08, 18);
        WSTEP(x15, x14, x13, 18);
    }
    B[0] = _mm_add_epi32(B[0], x00);
    B[1] = _mm_add_epi32(B[1], x01);
    B[2] = _mm_add_epi32(B[2], x02);
    B[3] = _mm_add_epi32(B[3], x03);
    B[4] = _mm_add_epi32(B[4], x04);
    B[5] = _mm_add_epi32(B[5], x05);
    B[6] = _mm_add_epi32(B[6], x06);
    B[7] = _mm_add_epi32(B[7], x07);
    B[8] = _mm_add_epi32(B[8], x08);
    B[9] = _mm_add_epi32(B[9], x09);
    B[10] = _mm_add_epi32(B[10], x10);
    B[11] = _mm_add_epi32(B[11], x11);
    B[12] = _mm_add_epi32(B[12], x12);
    B[13] = _mm_add_epi32(B[13], x13);
    B[14] = _mm_add_epi32(B[14], x14);
    B[15] = _mm_add_epi32(B[15], x15);
}

/* In-place 4x4 transpose of 32-bit elements: lane l of r[m] <-> lane m of r[l]. */
SSE2_INLINE void transpose4(__m128i *r0, __m128i *r1, __m128i *r2, __m128i *r3)
{
    __m128i t0 = _mm_unpacklo_epi32(*r0, *r1);
    __m128i t1 = _mm_unpacklo_epi32(*r2, *r3);
    __m128i t2 = _mm_unpackhi_epi32(*r0, *r1);
    __m128i t3 = _mm_unpackhi_epi32(*r2, *r3);
    *r0 = _mm_unpacklo_epi64(t0, t1);
    *r1 = _mm_unpackhi_epi64(t0, t1);
    *r2 = _mm_unpacklo_epi64(t2, t3);
    *r3 = _mm_unpackhi_epi64(t2, t3);
}

/*
 * V layout: row i of lane l is the 128 bytes at V + 128 * (4 i + l), that
 * header's 32 words in order.  Words 4g..4g+3 of the four lanes (registers
 * w[4g..4g+3]) transpose into one 16-byte piece of each lane's row.
 */
SSE2 void pool_scrypt_romix_sse2_4(uint32_t X[4 * 32], void *scratch)
{
    uint8_t *V = scratch;
    __m128i w[32]; /* w[k] = word k of the four headers */
    uint32_t j[4] __attribute__((aligned(16)));

    for (int k = 0; k < 32; k++)
        w[k] = _mm_set_epi32((int)X[96 + k], (int)X[64 + k], (int)X[32 + k], (int)X[k]);

    for (size_t i = 0; i < N; i++) {
        uint8_t *row = V + 128 * 4 * i;
        for (int k = 0; k < 16; k++)
            w[k] = _mm_xor_si128(w[k], w[16 + k]);
        for (int g = 0; g < 8; g++) {
            __m128i r0 = w[4 * g], r1 = w[4 * g + 1], r2 = w[4 * g + 2], r3 = w[4 * g + 3];
            transpose4(&r0, &r1, &r2, &r3);
            _mm_store_si128((__m128i *)(row + 0 * 128 + 16 * g), r0);
            _mm_store_si128((__m128i *)(row + 1 * 128 + 16 * g), r1);
            _mm_store_si128((__m128i *)(row + 2 * 128 + 16 * g), r2);
            _mm_store_si128((__m128i *)(row + 3 * 128 + 16 * g), r3);
        }
        salsa8_w4(&w[0]);
        for (int k = 0; k < 16; k++)
            w[16 + k] = _mm_xor_si128(w[16 + k], w[k]);
        salsa8_w4(&w[16]);
    }

    for (size_t i = 0; i < N; i++) {
        /* Integerify: word 16 of each header. */
        _mm_store_si128((__m128i *)j, _mm_and_si128(w[16], _mm_set1_epi32(N - 1)));
        const uint8_t *r0p = V + 128 * (4 * (size_t)j[0] + 0);
        const uint8_t *r1p = V + 128 * (4 * (size_t)j[1] + 1);
        const uint8_t *r2p = V + 128 * (4 * (size_t)j[2] + 2);
        const uint8_t *r3p = V + 128 * (4 * (size_t)j[3] + 3);
        /* Groups 0..3 (X0) read the old X1, so they go first. */
        for (int g = 0; g < 8; g++) {
            __m128i r0 = _mm_load_si128((const __m128i *)(r0p + 16 * g));
            __m128i r1 = _mm_load_si128((const __m128i *)(r1p + 16 * g));
            __m128i r2 = _mm_load_si128((const __m128i *)(r2p + 16 * g));
            __m128i r3 = _mm_load_si128((const __m128i *)(r3p + 16 * g));
            transpose4(&r0, &r1, &r2, &r3);
            __m128i *d = &w[4 * g];
            if (g < 4) {
                d[0] = _mm_xor_si128(_mm_xor_si128(d[0], d[16]), r0);
                d[1] = _mm_xor_si128(_mm_xor_si128(d[1], d[17]), r1);
                d[2] = _mm_xor_si128(_mm_xor_si128(d[2], d[18]), r2);
                d[3] = _mm_xor_si128(_mm_xor_si128(d[3], d[19]), r3);
            } else {
                d[0] = _mm_xor_si128(d[0], r0);
                d[1] = _mm_xor_si128(d[1], r1);
                d[2] = _mm_xor_si128(d[2], r2);
                d[3] = _mm_xor_si128(d[3], r3);
            }
        }
        salsa8_w4(&w[0]);
        for (int k = 0; k < 16; k++)
            w[16 + k] = _mm_xor_si128(w[16 + k], w[k]);
        salsa8_w4(&w[16]);
    }

    for (int k = 0; k < 32; k += 4) {
        __m128i r0 = w[k], r1 = w[k + 1], r2 = w[k + 2], r3 = w[k + 3];
        transpose4(&r0, &r1, &r2, &r3);
        _mm_storeu_si128((__m128i *)&X[0 * 32 + k], r0);
        _mm_storeu_si128((__m128i *)&X[1 * 32 + k], r1);
        _mm_storeu_si128((__m128i *)&X[2 * 32 + k], r2);
        _mm_storeu_si128((__m128i *)&X[3 * 32 + k], r3);
    }
}

#else /* not x86: never selected (pool_cpu_has_sse2() returns 0) */

void pool_scrypt_romix_sse2_1(uint32_t X[32], void *scratch)
{
    (void)X;
    (void)scratch;
}

void pool_scrypt_romix_sse2_4(uint32_t X[4 * 32], void *scratch)
{
    (void)X;
    (void)scratch;
}

#endif
