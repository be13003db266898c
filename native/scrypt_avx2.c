/*
 * scrypt ROMix (N=1024, r=1) with AVX2, eight headers at once, one per 32-bit
 * lane; see scrypt.c for the surrounding PBKDF2 steps and for the contract of
 * the pool_scrypt_romix_* functions (X: 32 little-endian words per lane, lanes
 * one after the other, replaced by B'; scratch: 128 KiB per lane, 64-byte
 * aligned).
 *
 * The salsa20/8 state is "word-major": register k holds word k of all eight
 * headers, so every quarter-round step is one add, two shifts, an or and an xor
 * on eight headers, and the column/row rounds need no shuffles at all.
 *
 * V is kept in pairs of lanes so that the second loop, whose row index differs
 * per header, needs no gathers: the 256 bytes at V + 256 * (4 i + m), m = 0..3,
 * hold row i of lanes m and m + 4 as eight 32-byte chunks, chunk g being
 * [words 4g..4g+3 of lane m | words 4g..4g+3 of lane m + 4].  A 4x4 transpose
 * inside each 128-bit half (four unpacks of each width) turns the registers of
 * words 4g..4g+3 into those chunks and back; a read takes its low half from
 * lane m's row and its high half from lane m + 4's row (one load and one
 * vinserti128).
 *
 * As in scrypt_sse2.c, V stores X0 ^ X1 in place of X0.
 */
#include <stddef.h>
#include <stdint.h>

#include "internal/scrypt_simd.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))
#define N 1024

#define WSTEP(a, b, c, s)                                                                           \
    do {                                                                                           \
        __m256i t_ = _mm256_add_epi32(b, c);                                                       \
        a = _mm256_xor_si256(a, _mm256_or_si256(_mm256_slli_epi32(t_, s),                          \
                                                _mm256_srli_epi32(t_, 32 - (s))));                 \
    } while (0)

/* B = salsa20/8(B), 16 words, each register one word of eight headers. */
AVX2_INLINE void salsa8_w8(__m256i B[16])
{
    __m256i x00 = B[0], x01 = B[1], x02 = B[2], x03 = B[3];
    __m256i x04 = B[4], x05 = B[5], x06 = B[6], x07 = B[7];
    __m256i x08 = B[8], x09 = B[9], x10 = B[10], x11 = B[11];
    __m256i x12 = B[12], x13 = B[13], x14 = B[14], x15 = B[15];
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
    B[0] = _mm256_add_epi32(B[0], x00);
    B[1] = _mm256_add_epi32(B[1], x01);
    B[2] = _mm256_add_epi32(B[2], x02);
    B[3] = _mm256_add_epi32(B[3], x03);
    B[4] = _mm256_add_epi32(B[4], x04);
    B[5] = _mm256_add_epi32(B[5], x05);
    B[6] = _mm256_add_epi32(B[6], x06);
    B[7] = _mm256_add_epi32(B[7], x07);
    B[8] = _mm256_add_epi32(B[8], x08);
    B[9] = _mm256_add_epi32(B[9], x09);
    B[10] = _mm256_add_epi32(B[10], x10);
    B[11] = _mm256_add_epi32(B[11], x11);
    B[12] = _mm256_add_epi32(B[12], x12);
    B[13] = _mm256_add_epi32(B[13], x13);
    B[14] = _mm256_add_epi32(B[14], x14);
    B[15] = _mm256_add_epi32(B[15], x15);
}

/* 4x4 transpose of 32-bit elements inside each 128-bit half. */
AVX2_INLINE void transpose4x2(__m256i *r0, __m256i *r1, __m256i *r2, __m256i *r3)
{
    __m256i t0 = _mm256_unpacklo_epi32(*r0, *r1);
    __m256i t1 = _mm256_unpacklo_epi32(*r2, *r3);
    __m256i t2 = _mm256_unpackhi_epi32(*r0, *r1);
    __m256i t3 = _mm256_unpackhi_epi32(*r2, *r3);
    *r0 = _mm256_unpacklo_epi64(t0, t1);
    *r1 = _mm256_unpackhi_epi64(t0, t1);
    *r2 = _mm256_unpacklo_epi64(t2, t3);
    *r3 = _mm256_unpackhi_epi64(t2, t3);
}

/* 32 bytes: low half from lo, high half from hi. */
AVX2_INLINE __m256i load_halves(const uint8_t *lo, const uint8_t *hi)
{
    __m256i v = _mm256_castsi128_si256(_mm_load_si128((const __m128i *)lo));
    return _mm256_inserti128_si256(v, _mm_load_si128((const __m128i *)hi), 1);
}

AVX2 void pool_scrypt_romix_avx2_8(uint32_t X[8 * 32], void *scratch)
{
    uint8_t *V = scratch;
    __m256i w[32]; /* w[k] = word k of the eight headers */
    uint32_t j[8] __attribute__((aligned(32)));

    for (int k = 0; k < 32; k++)
        w[k] = _mm256_set_epi32((int)X[224 + k], (int)X[192 + k], (int)X[160 + k], (int)X[128 + k],
                                (int)X[96 + k], (int)X[64 + k], (int)X[32 + k], (int)X[k]);

    for (size_t i = 0; i < N; i++) {
        uint8_t *row = V + 256 * 4 * i;
        for (int k = 0; k < 16; k++)
            w[k] = _mm256_xor_si256(w[k], w[16 + k]);
        for (int g = 0; g < 8; g++) {
            __m256i r0 = w[4 * g], r1 = w[4 * g + 1], r2 = w[4 * g + 2], r3 = w[4 * g + 3];
            transpose4x2(&r0, &r1, &r2, &r3);
            _mm256_store_si256((__m256i *)(row + 0 * 256 + 32 * g), r0);
            _mm256_store_si256((__m256i *)(row + 1 * 256 + 32 * g), r1);
            _mm256_store_si256((__m256i *)(row + 2 * 256 + 32 * g), r2);
            _mm256_store_si256((__m256i *)(row + 3 * 256 + 32 * g), r3);
        }
        salsa8_w8(&w[0]);
        for (int k = 0; k < 16; k++)
            w[16 + k] = _mm256_xor_si256(w[16 + k], w[k]);
        salsa8_w8(&w[16]);
    }

    for (size_t i = 0; i < N; i++) {
        /* Integerify: word 16 of each header. */
        _mm256_store_si256((__m256i *)j, _mm256_and_si256(w[16], _mm256_set1_epi32(N - 1)));
        const uint8_t *lo[4], *hi[4];
        for (int m = 0; m < 4; m++) {
            lo[m] = V + 256 * (4 * (size_t)j[m] + m);
            hi[m] = V + 256 * (4 * (size_t)j[m + 4] + m) + 16;
        }
        /* Groups 0..3 (X0) read the old X1, so they go first. */
        for (int g = 0; g < 8; g++) {
            __m256i r0 = load_halves(lo[0] + 32 * g, hi[0] + 32 * g);
            __m256i r1 = load_halves(lo[1] + 32 * g, hi[1] + 32 * g);
            __m256i r2 = load_halves(lo[2] + 32 * g, hi[2] + 32 * g);
            __m256i r3 = load_halves(lo[3] + 32 * g, hi[3] + 32 * g);
            transpose4x2(&r0, &r1, &r2, &r3);
            __m256i *d = &w[4 * g];
            if (g < 4) {
                d[0] = _mm256_xor_si256(_mm256_xor_si256(d[0], d[16]), r0);
                d[1] = _mm256_xor_si256(_mm256_xor_si256(d[1], d[17]), r1);
                d[2] = _mm256_xor_si256(_mm256_xor_si256(d[2], d[18]), r2);
                d[3] = _mm256_xor_si256(_mm256_xor_si256(d[3], d[19]), r3);
            } else {
                d[0] = _mm256_xor_si256(d[0], r0);
                d[1] = _mm256_xor_si256(d[1], r1);
                d[2] = _mm256_xor_si256(d[2], r2);
                d[3] = _mm256_xor_si256(d[3], r3);
            }
        }
        salsa8_w8(&w[0]);
        for (int k = 0; k < 16; k++)
            w[16 + k] = _mm256_xor_si256(w[16 + k], w[k]);
        salsa8_w8(&w[16]);
    }

    for (int k = 0; k < 32; k += 4) {
        __m256i r0 = w[k], r1 = w[k + 1], r2 = w[k + 2], r3 = w[k + 3];
        transpose4x2(&r0, &r1, &r2, &r3);
        __m256i r[4] = {r0, r1, r2, r3};
        for (int m = 0; m < 4; m++) {
            _mm_storeu_si128((__m128i *)&X[32 * m + k], _mm256_castsi256_si128(r[m]));
            _mm_storeu_si128((__m128i *)&X[32 * (m + 4) + k], _mm256_extracti128_si256(r[m], 1));
        }
    }
}

#else /* not x86: never selected (pool_cpu_has_avx2() returns 0) */

void pool_scrypt_romix_avx2_8(uint32_t X[8 * 32], void *scratch)
{
    (void)X;
    (void)scratch;
}

#endif
