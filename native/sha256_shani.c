/*
 * SHA-256 compression with the x86 SHA extensions (SHA-NI).
 *
 * pool_sha256_transform_shani() has the same contract as
 * pool_sha256_transform_portable() in sha256.c: compress `nblocks` consecutive
 * 64-byte blocks (big-endian message words, FIPS 180-4) into state[0..7] = a..h.
 * pool_sha256d_64_shani() is sha256d of exactly 64 bytes (a merkle step), like
 * pool_sha256d_64_portable().
 *
 * Only the functions in this file are compiled with target("sha,sse4.1,ssse3"),
 * so the rest of the library stays baseline x86-64; sha256.c selects them at run
 * time only when pool_cpu_has_shani() (cpu.c) reports SHA, SSE4.1 and SSSE3.
 *
 * The structure follows Intel's SHA extensions white paper and Jeffrey Walton's
 * public-domain sha256-x86.c.  Overview of the instructions:
 *
 *   sha256rnds2(cdgh, abef, wk)  two rounds; the working variables are split as
 *                                ABEF = {a,b,e,f} and CDGH = {c,d,g,h} (a and c in
 *                                the highest lane) and the two W[t]+K[t] values are
 *                                taken from the low 64 bits of wk.  Returns the new
 *                                ABEF; the old ABEF becomes the new CDGH.
 *   sha256msg1(w0, w1)           w0 + sigma0(next four words) (first half of the
 *                                message schedule for four words).
 *   sha256msg2(x, w3)            adds sigma1(W[t-2]) to x, four words, using the
 *                                last two words of w3 and the first two results.
 *
 * The state lives in two __m128i registers (ABEF, CDGH) for the whole run of
 * blocks; it is converted from/to the a..h array layout only once per call.
 */
#include <stddef.h>
#include <stdint.h>

void pool_sha256_transform_portable(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
void pool_sha256d_64_portable(const uint8_t *in64, uint8_t *out32);
void pool_sha256d_64_shani(const uint8_t *in64, uint8_t *out32);

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* Round constants, 16-byte aligned so that four of them load with one movdqa. */
static const uint32_t K256[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/*
 * Message registers: M(q) holds W[4q..4q+3] (W[4q] in the lowest lane).  Four
 * registers rotate: M(q) lives in register q % 4.
 *
 * QROUND(q, cur): rounds 4q..4q+3 using the message words in `cur` = M(q).
 *
 * SCHED_NEXT(cur, prev, next): builds M(q+1) in `next`, which holds
 *   msg1(M(q-3), M(q-2)) = W[t-16] + sigma0(W[t-15])   (t = 4q+4 .. 4q+7),
 * by adding W[t-7] = alignr(M(q), M(q-1), 4) and then sigma1(W[t-2]) via msg2.
 *
 * SCHED_MSG1(cur, prev): prev = msg1(M(q-1), M(q)), the first half of M(q+3).
 */
#define QROUND(q, cur)                                                              \
    do {                                                                            \
        __m128i wk_ = _mm_add_epi32((cur), _mm_load_si128((const __m128i *)&K256[4 * (q)])); \
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk_);                              \
        wk_ = _mm_shuffle_epi32(wk_, 0x0E); /* upper two W+K into the low half */    \
        abef = _mm_sha256rnds2_epu32(abef, cdgh, wk_);                              \
    } while (0)

#define SCHED_NEXT(cur, prev, next)                                                 \
    do {                                                                            \
        (next) = _mm_add_epi32((next), _mm_alignr_epi8((cur), (prev), 4));          \
        (next) = _mm_sha256msg2_epu32((next), (cur));                               \
    } while (0)

#define SCHED_MSG1(cur, prev) ((prev) = _mm_sha256msg1_epu32((prev), (cur)))

#define SHANI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/*
 * The 64 rounds of one block on (abef, cdgh), message words W[0..15] in m0..m3
 * (host order, W[4q] in the lowest lane of mq).  No feed-forward: the caller adds
 * the state it started from.
 */
static inline __attribute__((always_inline)) SHANI_TARGET void
shani_rounds(__m128i *abef_p, __m128i *cdgh_p, __m128i m0, __m128i m1, __m128i m2, __m128i m3)
{
    __m128i abef = *abef_p, cdgh = *cdgh_p;

    /* Rounds 0-15: message words straight from the block. */
    QROUND(0, m0);
    QROUND(1, m1);
    SCHED_MSG1(m1, m0);
    QROUND(2, m2);
    SCHED_MSG1(m2, m1);
    QROUND(3, m3);
    SCHED_NEXT(m3, m2, m0); /* m0 = W[16..19] */
    SCHED_MSG1(m3, m2);

    /* Rounds 16-51: compute the schedule four words ahead. */
    QROUND(4, m0);
    SCHED_NEXT(m0, m3, m1); /* W[20..23] */
    SCHED_MSG1(m0, m3);
    QROUND(5, m1);
    SCHED_NEXT(m1, m0, m2); /* W[24..27] */
    SCHED_MSG1(m1, m0);
    QROUND(6, m2);
    SCHED_NEXT(m2, m1, m3); /* W[28..31] */
    SCHED_MSG1(m2, m1);
    QROUND(7, m3);
    SCHED_NEXT(m3, m2, m0); /* W[32..35] */
    SCHED_MSG1(m3, m2);
    QROUND(8, m0);
    SCHED_NEXT(m0, m3, m1); /* W[36..39] */
    SCHED_MSG1(m0, m3);
    QROUND(9, m1);
    SCHED_NEXT(m1, m0, m2); /* W[40..43] */
    SCHED_MSG1(m1, m0);
    QROUND(10, m2);
    SCHED_NEXT(m2, m1, m3); /* W[44..47] */
    SCHED_MSG1(m2, m1);
    QROUND(11, m3);
    SCHED_NEXT(m3, m2, m0); /* W[48..51] */
    SCHED_MSG1(m3, m2);
    QROUND(12, m0);
    SCHED_NEXT(m0, m3, m1); /* W[52..55] */
    SCHED_MSG1(m0, m3);     /* last msg1: feeds W[60..63] */

    /* Rounds 52-63: the last two schedule steps, then plain rounds. */
    QROUND(13, m1);
    SCHED_NEXT(m1, m0, m2); /* W[56..59] */
    QROUND(14, m2);
    SCHED_NEXT(m2, m1, m3); /* W[60..63] */
    QROUND(15, m3);

    *abef_p = abef;
    *cdgh_p = cdgh;
}

SHANI_TARGET
void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    /* Byte order swap within each 32-bit word (big-endian message words). */
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    __m128i abef, cdgh, tmp;

    if (nblocks == 0)
        return;

    /* state[0..3] = {a,b,c,d}, state[4..7] = {e,f,g,h} (a, e in the lowest lane)
     * -> abef = {f,e,b,a}, cdgh = {h,g,d,c} in lanes 0..3. */
    tmp = _mm_loadu_si128((const __m128i *)&state[0]);  /* d c b a (high..low) */
    cdgh = _mm_loadu_si128((const __m128i *)&state[4]); /* h g f e */
    tmp = _mm_shuffle_epi32(tmp, 0xB1);                 /* c d a b */
    cdgh = _mm_shuffle_epi32(cdgh, 0x1B);               /* e f g h */
    abef = _mm_alignr_epi8(tmp, cdgh, 8);               /* a b e f */
    cdgh = _mm_blend_epi16(cdgh, tmp, 0xF0);            /* c d g h */

    do {
        const __m128i abef_save = abef;
        const __m128i cdgh_save = cdgh;

        shani_rounds(&abef, &cdgh,
                     _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 0)), bswap),
                     _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 16)), bswap),
                     _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 32)), bswap),
                     _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(blocks + 48)), bswap));

        /* Feed-forward. */
        abef = _mm_add_epi32(abef, abef_save);
        cdgh = _mm_add_epi32(cdgh, cdgh_save);
        blocks += 64;
    } while (--nblocks);

    /* Back to the a..h array layout. */
    tmp = _mm_shuffle_epi32(abef, 0x1B);      /* f e b a */
    cdgh = _mm_shuffle_epi32(cdgh, 0xB1);     /* d c h g */
    abef = _mm_blend_epi16(tmp, cdgh, 0xF0);  /* d c b a */
    cdgh = _mm_alignr_epi8(cdgh, tmp, 8);     /* h g f e */
    _mm_storeu_si128((__m128i *)&state[0], abef);
    _mm_storeu_si128((__m128i *)&state[4], cdgh);
}

/* W[t] + K[t] of the padding block of a 64-byte message (defined in sha256.c). */
extern const uint32_t pool_sha256_pad64_wk[64];

/*
 * sha256d of exactly 64 bytes (one merkle step), all three compressions in
 * registers:
 *   1. the input block, with the usual schedule;
 *   2. the padding block (0x80, zeros, 512 bits): constant, so its W[t] + K[t]
 *      are loaded from pool_sha256_pad64_wk and no schedule is computed;
 *   3. the 32-byte first digest plus padding.  The digest's big-endian words are
 *      the state words themselves, so its message words come from the state
 *      registers by two shuffles each (no store, no byte swap); words 8..15 are
 *      the constant {0x80000000, 0 x 6, 256}, so (shani_rounds being inlined)
 *      the compiler turns W + K of rounds 8..15 into constants as well.
 * The input is loaded completely before out32 is written, so they may overlap
 * (share.c hashes each merkle node in place).
 */
SHANI_TARGET
void pool_sha256d_64_shani(const uint8_t *in64, uint8_t *out32)
{
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
    /* Byte reversal of each 64-bit half: turns {b,a,d,c} / {f,e,h,g} (lanes 0..3)
     * into the big-endian bytes of a,b,c,d / e,f,g,h. */
    const __m128i bswap64 = _mm_set_epi8(8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    /* Initial hash value in the rnds2 layout: abef = {f,e,b,a}, cdgh = {h,g,d,c}. */
    const __m128i h0_abef = _mm_set_epi32(0x6a09e667, 0xbb67ae85, 0x510e527f, 0x9b05688c);
    const __m128i h0_cdgh = _mm_set_epi32(0x3c6ef372, 0xa54ff53a, 0x1f83d9ab, 0x5be0cd19);
    /* Message words 8..15 of block 3: padding of a 32-byte (256-bit) message. */
    const __m128i pad32_m2 = _mm_set_epi32(0, 0, 0, (int)0x80000000);
    const __m128i pad32_m3 = _mm_set_epi32(256, 0, 0, 0);
    __m128i abef = h0_abef, cdgh = h0_cdgh;
    __m128i mid_abef, mid_cdgh, lo, hi;

    /* Block 1: the 64 input bytes. */
    shani_rounds(&abef, &cdgh,
                 _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in64 + 0)), bswap),
                 _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in64 + 16)), bswap),
                 _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in64 + 32)), bswap),
                 _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in64 + 48)), bswap));
    abef = mid_abef = _mm_add_epi32(abef, h0_abef);
    cdgh = mid_cdgh = _mm_add_epi32(cdgh, h0_cdgh);

    /* Block 2: two rounds per rnds2, W + K straight from the table (rnds2 reads
     * only the low 64 bits of its wk operand). */
    for (int t = 0; t < 64; t += 4) {
        const uint32_t *wk = &pool_sha256_pad64_wk[t];
        cdgh = _mm_sha256rnds2_epu32(cdgh, abef, _mm_loadl_epi64((const __m128i *)&wk[0]));
        abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_loadl_epi64((const __m128i *)&wk[2]));
    }
    abef = _mm_add_epi32(abef, mid_abef);
    cdgh = _mm_add_epi32(cdgh, mid_cdgh);

    /* Block 3: W[0..3] = {a,b,c,d}, W[4..7] = {e,f,g,h} of the first digest. */
    hi = _mm_unpackhi_epi64(abef, cdgh); /* b a d c (lanes 0..3) */
    lo = _mm_unpacklo_epi64(abef, cdgh); /* f e h g */
    abef = h0_abef;
    cdgh = h0_cdgh;
    shani_rounds(&abef, &cdgh, _mm_shuffle_epi32(hi, 0xB1), _mm_shuffle_epi32(lo, 0xB1),
                 pad32_m2, pad32_m3);
    abef = _mm_add_epi32(abef, h0_abef);
    cdgh = _mm_add_epi32(cdgh, h0_cdgh);

    /* Output: a..h as big-endian bytes. */
    hi = _mm_unpackhi_epi64(abef, cdgh); /* b a d c */
    lo = _mm_unpacklo_epi64(abef, cdgh); /* f e h g */
    _mm_storeu_si128((__m128i *)(out32 + 0), _mm_shuffle_epi8(hi, bswap64));
    _mm_storeu_si128((__m128i *)(out32 + 16), _mm_shuffle_epi8(lo, bswap64));
}

#undef QROUND
#undef SCHED_NEXT
#undef SCHED_MSG1
#undef SHANI_TARGET

#else /* not x86: never selected (pool_cpu_has_shani() returns 0) */

void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    pool_sha256_transform_portable(state, blocks, nblocks);
}

void pool_sha256d_64_shani(const uint8_t *in64, uint8_t *out32)
{
    pool_sha256d_64_portable(in64, out32);
}

#endif
