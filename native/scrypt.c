/*
 * scrypt(N=1024, r=1, p=1, dkLen=32) of an 80-byte block header used as both
 * password and salt (the Litecoin proof of work), RFC 7914:
 *
 *   B  = PBKDF2-HMAC-SHA256(P=header, S=header, c=1, dkLen=128)
 *   B' = ROMix(B)       (N=1024 rounds of BlockMix/salsa20/8 over 128 KiB)
 *   out = PBKDF2-HMAC-SHA256(P=header, S=B', c=1, dkLen=32)
 *
 * This file holds the PBKDF2 steps (on the project's SHA-256, which dispatches to
 * SHA-NI), the portable ROMix, the per-thread scratch memory and the run-time
 * choice between the three ROMix implementations:
 *
 *   portable  plain C, one header at a time;
 *   SSE2      scrypt_sse2.c: a lone header with the "diagonal" salsa20/8 layout
 *             of Colin Percival's crypto_scrypt-sse.c, and groups of 4 headers
 *             in the batch call (one header per 32-bit lane);
 *   AVX2      scrypt_avx2.c: groups of 8 headers in the batch call (one header
 *             per 32-bit lane); a lone header uses the SSE2 diagonal code.
 *
 * The ROMix functions take the 128-byte block as 32 little-endian words
 * X[0..31] (the words of B in order; several headers: 32 words each, one after
 * the other) and leave B' there.  They need 128 KiB of scratch per header,
 * 64-byte aligned.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "scrypt.h"
#include "sha256.h"
#include "internal/scrypt_simd.h"
#include "internal/sha256_stream.h"

#define SCRYPT_N 1024
#define LANE_SCRATCH ((size_t)SCRYPT_N * 128) /* 128 KiB: V of one header */


/* ------------------------------------------------------------------------- */
/* Byte order helpers                                                        */

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void store_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ------------------------------------------------------------------------- */
/* PBKDF2-HMAC-SHA256 with the header as password                            */

static const uint32_t SHA256_H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

/*
 * HMAC-SHA256 keyed with the 80-byte header.  The key is longer than the 64-byte
 * block, so HMAC uses K = SHA256(header) (32 bytes, zero padded to 64).  Both
 * PBKDF2 calls share the key, so the compressed inner and outer pads are computed
 * once per header:
 *   istate = compress(H0, K ^ 0x36...),  ostate = compress(H0, K ^ 0x5c...).
 */
typedef struct {
    uint32_t istate[8];
    uint32_t ostate[8];
    const uint8_t *header;
} header_hmac;

static void header_hmac_init(header_hmac *h, const uint8_t *header80)
{
    uint32_t key[8];
    uint8_t block[64];

    /* K = SHA256(header): the first 64 bytes, then the last 16 with padding. */
    memcpy(key, SHA256_H0, sizeof key);
    pool_sha256_transform(key, header80, 1);
    memcpy(block, header80 + 64, 16);
    memset(block + 16, 0, 48);
    block[16] = 0x80;
    block[62] = 0x02; /* 80 bytes = 640 bits = 0x280 */
    block[63] = 0x80;
    pool_sha256_transform(key, block, 1);

    for (int i = 0; i < 8; i++)
        store_be32(block + 4 * i, key[i] ^ 0x36363636u);
    memset(block + 32, 0x36, 32);
    memcpy(h->istate, SHA256_H0, sizeof h->istate);
    pool_sha256_transform(h->istate, block, 1);

    for (int i = 0; i < 8; i++)
        store_be32(block + 4 * i, key[i] ^ 0x5c5c5c5cu);
    memset(block + 32, 0x5c, 32);
    memcpy(h->ostate, SHA256_H0, sizeof h->ostate);
    pool_sha256_transform(h->ostate, block, 1);

    h->header = header80;
}

/* Outer hash: state = compress(ostate, inner digest | padding of 64+32 bytes). */
static void hmac_outer(const header_hmac *h, const uint32_t inner[8], uint32_t out[8])
{
    uint8_t block[64];
    for (int i = 0; i < 8; i++)
        store_be32(block + 4 * i, inner[i]);
    memset(block + 32, 0, 32);
    block[32] = 0x80;
    block[62] = 0x03; /* 96 bytes = 768 bits = 0x300 */
    memcpy(out, h->ostate, 8 * sizeof(uint32_t));
    pool_sha256_transform(out, block, 1);
}

/*
 * B = PBKDF2(P=header, S=header, c=1, dkLen=128): four blocks
 * T_i = HMAC(header, header | INT(i)), i = 1..4.  The inner hash of all four
 * starts with the same 64 header bytes, compressed once.  The result goes to X
 * as 32 little-endian words (salsa20 reads B that way).
 */
static void pbkdf2_first(const header_hmac *h, uint32_t X[32])
{
    uint32_t base[8], inner[8], outer[8];
    uint8_t block[64];

    memcpy(base, h->istate, sizeof base);
    pool_sha256_transform(base, h->header, 1);

    memcpy(block, h->header + 64, 16);
    memset(block + 16, 0, 48);
    block[20] = 0x80;
    block[62] = 0x04; /* 64 + 84 bytes = 1184 bits = 0x4a0 */
    block[63] = 0xa0;
    for (int i = 0; i < 4; i++) {
        block[19] = (uint8_t)(i + 1); /* INT(i) big-endian in bytes 16..19 */
        memcpy(inner, base, sizeof inner);
        pool_sha256_transform(inner, block, 1);
        hmac_outer(h, inner, outer);
        /* T_i is outer[] big-endian; salsa20 reads it as little-endian words. */
        for (int k = 0; k < 8; k++)
            X[8 * i + k] = __builtin_bswap32(outer[k]);
    }
}

/* out = PBKDF2(P=header, S=B', c=1, dkLen=32) = HMAC(header, B' | INT(1)). */
static void pbkdf2_final(const header_hmac *h, const uint32_t X[32], uint8_t *out32)
{
    static const uint8_t tail[64] = {
        0x00, 0x00, 0x00, 0x01, 0x80, [62] = 0x06, [63] = 0x20, /* 64+132 bytes = 0x620 bits */
    };
    uint8_t bytes[128];
    uint32_t inner[8], outer[8];

    for (int k = 0; k < 32; k++)
        store_le32(bytes + 4 * k, X[k]);
    memcpy(inner, h->istate, sizeof inner);
    pool_sha256_transform(inner, bytes, 2);
    pool_sha256_transform(inner, tail, 1);
    hmac_outer(h, inner, outer);
    for (int i = 0; i < 8; i++)
        store_be32(out32 + 4 * i, outer[i]);
}

/* ------------------------------------------------------------------------- */
/* Portable ROMix                                                            */

#define ROTL32(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

/* B = salsa20/8(B ^ Bx) (B and Bx are 16 words). */
static inline void salsa20_8_xor(uint32_t B[16], const uint32_t Bx[16])
{
    uint32_t x00 = (B[0] ^= Bx[0]), x01 = (B[1] ^= Bx[1]), x02 = (B[2] ^= Bx[2]), x03 = (B[3] ^= Bx[3]);
    uint32_t x04 = (B[4] ^= Bx[4]), x05 = (B[5] ^= Bx[5]), x06 = (B[6] ^= Bx[6]), x07 = (B[7] ^= Bx[7]);
    uint32_t x08 = (B[8] ^= Bx[8]), x09 = (B[9] ^= Bx[9]), x10 = (B[10] ^= Bx[10]), x11 = (B[11] ^= Bx[11]);
    uint32_t x12 = (B[12] ^= Bx[12]), x13 = (B[13] ^= Bx[13]), x14 = (B[14] ^= Bx[14]),
             x15 = (B[15] ^= Bx[15]);

    for (int i = 0; i < 8; i += 2) {
        /* Columns. */
        x04 ^= ROTL32(x00 + x12, 7);
        x09 ^= ROTL32(x05 + x01, 7);
        x14 ^= ROTL32(x10 + x06, 7);
        x03 ^= ROTL32(x15 + x11, 7);
        x08 ^= ROTL32(x04 + x00, 9);
        x13 ^= ROTL32(x09 + x05, 9);
        x02 ^= ROTL32(x14 + x10, 9);
        x07 ^= ROTL32(x03 + x15, 9);
        x12 ^= ROTL32(x08 + x04, 13);
        x01 ^= ROTL32(x13 + x09, 13);
        x06 ^= ROTL32(x02 + x14, 13);
        x11 ^= ROTL32(x07 + x03, 13);
        x00 ^= ROTL32(x12 + x08, 18);
        x05 ^= ROTL32(x01 + x13, 18);
        x10 ^= ROTL32(x06 + x02, 18);
        x15 ^= ROTL32(x11 + x07, 18);
        /* Rows. */
        x01 ^= ROTL32(x00 + x03, 7);
        x06 ^= ROTL32(x05 + x04, 7);
        x11 ^= ROTL32(x10 + x09, 7);
        x12 ^= ROTL32(x15 + x14, 7);
        x02 ^= ROTL32(x01 + x00, 9);
        x07 ^= ROTL32(x06 + x05, 9);
        x08 ^= ROTL32(x11 + x10, 9);
        x13 ^= ROTL32(x12 + x15, 9);
        x03 ^= ROTL32(x02 + x01, 13);
        x04 ^= ROTL32(x07 + x06, 13);
        x09 ^= ROTL32(x08 + x11, 13);
        x14 ^= ROTL32(x13 + x12, 13);
        x00 ^= ROTL32(x03 + x02, 18);
        x05 ^= ROTL32(x04 + x07, 18);
        x10 ^= ROTL32(x09 + x08, 18);
        x15 ^= ROTL32(x14 + x13, 18);
    }
    B[0] += x00; B[1] += x01; B[2] += x02; B[3] += x03;
    B[4] += x04; B[5] += x05; B[6] += x06; B[7] += x07;
    B[8] += x08; B[9] += x09; B[10] += x10; B[11] += x11;
    B[12] += x12; B[13] += x13; B[14] += x14; B[15] += x15;
}

static void romix_portable(uint32_t X[32], void *scratch)
{
    uint32_t *V = scratch;

    for (int i = 0; i < SCRYPT_N; i++) {
        memcpy(&V[32 * i], X, 128);
        salsa20_8_xor(&X[0], &X[16]);
        salsa20_8_xor(&X[16], &X[0]);
    }
    for (int i = 0; i < SCRYPT_N; i++) {
        const uint32_t *Vj = &V[32 * (X[16] & (SCRYPT_N - 1))];
        for (int k = 0; k < 32; k++)
            X[k] ^= Vj[k];
        salsa20_8_xor(&X[0], &X[16]);
        salsa20_8_xor(&X[16], &X[0]);
    }
}

/* ------------------------------------------------------------------------- */
/* Per-thread scratch memory                                                 */

/*
 * Each thread keeps one 64-byte aligned buffer, allocated on first use and grown
 * when a wider implementation needs more; a pthread key destructor frees it when
 * the thread exits.  The first 64 bytes of the allocation record its usable size.
 * (Large _Thread_local arrays would eat the static TLS that dlopen relies on, and
 * a fresh malloc per call would be dominated by mmap and page faults.)
 */
#define SCRATCH_HEADER 64

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
    free(p);
}

static void scratch_key_create(void)
{
    scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static void *scratch_alloc(size_t size)
{
    void *p;
    if (posix_memalign(&p, 64, SCRATCH_HEADER + size) != 0)
        return NULL;
    *(size_t *)p = size;
    return p;
}

/* Returns scratch of at least `size` bytes, or NULL.  When *owned is set, the
 * caller must free it with scratch_release (no per-thread key available). */
static void *scratch_get(size_t size, void **owned)
{
    *owned = NULL;
    pthread_once(&scratch_once, scratch_key_create);
    if (!scratch_key_ok) {
        void *p = scratch_alloc(size);
        *owned = p;
        return p ? (uint8_t *)p + SCRATCH_HEADER : NULL;
    }
    void *p = pthread_getspecific(scratch_key);
    if (p == NULL || *(size_t *)p < size) {
        void *fresh = scratch_alloc(size);
        if (fresh == NULL)
            return NULL;
        if (pthread_setspecific(scratch_key, fresh) != 0) {
            free(fresh);
            return NULL;
        }
        free(p);
        p = fresh;
    }
    return (uint8_t *)p + SCRATCH_HEADER;
}

static void scratch_release(void *owned)
{
    free(owned);
}

/* ------------------------------------------------------------------------- */
/* Implementation choice                                                     */

static int scrypt_impl = -2; /* -2: not chosen yet */

static int impl_available(int impl)
{
    switch (impl) {
    case POOL_SCRYPT_PORTABLE:
        return 1;
    case POOL_SCRYPT_SSE2:
        return pool_cpu_has_sse2();
    case POOL_SCRYPT_AVX2:
        return pool_cpu_has_avx2();
    default:
        return 0;
    }
}

int pool_scrypt_select(int impl)
{
    if (impl == POOL_IMPL_AUTO) {
        impl = POOL_SCRYPT_PORTABLE;
        if (impl_available(POOL_SCRYPT_SSE2))
            impl = POOL_SCRYPT_SSE2;
        if (impl_available(POOL_SCRYPT_AVX2))
            impl = POOL_SCRYPT_AVX2;
    } else if (!impl_available(impl)) {
        return -1;
    }
    __atomic_store_n(&scrypt_impl, impl, __ATOMIC_RELAXED);
    return impl;
}

int pool_scrypt_impl(void)
{
    int impl = __atomic_load_n(&scrypt_impl, __ATOMIC_RELAXED);
    if (impl < 0)
        impl = pool_scrypt_select(POOL_IMPL_AUTO);
    return impl;
}

/* ------------------------------------------------------------------------- */
/* Entry points                                                              */

/* One header, start to finish.  The SIMD implementations share the SSE2
 * diagonal ROMix for a lone header: with one header there is nothing to spread
 * over lanes, and its latency (four dependent operations per quarter-round
 * step) is the same with AVX2 encodings. */
static void hash_one(int impl, const uint8_t *header80, uint8_t *out32, void *scratch)
{
    header_hmac h;
    uint32_t X[32] __attribute__((aligned(64)));

    header_hmac_init(&h, header80);
    pbkdf2_first(&h, X);
    if (impl == POOL_SCRYPT_PORTABLE)
        romix_portable(X, scratch);
    else
        pool_scrypt_romix_sse2_1(X, scratch);
    pbkdf2_final(&h, X, out32);
}

/*
 * `lanes` headers (1 <= used <= lanes) through one SIMD ROMix; lanes past `used`
 * repeat the last header and their results are dropped.
 */
static void hash_group(int impl, size_t lanes, size_t used, const uint8_t *headers80,
                       uint8_t *out32s, void *scratch)
{
    header_hmac h[8];
    uint32_t X[8 * 32] __attribute__((aligned(64)));

    for (size_t l = 0; l < used; l++) {
        header_hmac_init(&h[l], headers80 + 80 * l);
        pbkdf2_first(&h[l], &X[32 * l]);
    }
    for (size_t l = used; l < lanes; l++)
        memcpy(&X[32 * l], &X[32 * (used - 1)], 128);
    if (impl == POOL_SCRYPT_AVX2)
        pool_scrypt_romix_avx2_8(X, scratch);
    else
        pool_scrypt_romix_sse2_4(X, scratch);
    for (size_t l = 0; l < used; l++)
        pbkdf2_final(&h[l], &X[32 * l], out32s + 32 * l);
}

int pool_scrypt_1024_1_1(const uint8_t *header80, uint8_t *out32)
{
    int impl = pool_scrypt_impl();
    void *owned;
    void *scratch = scratch_get(LANE_SCRATCH, &owned);
    if (scratch == NULL)
        return -1;
    hash_one(impl, header80, out32, scratch);
    scratch_release(owned);
    return 0;
}

/*
 * Headers per SIMD group, and the fewest headers worth a (partly idle) group
 * rather than single-header calls.  Measured on Zen 4: an 8-lane AVX2 group
 * takes about 2.2 single-header times and a 4-lane SSE2 group about 2, so one
 * or two leftover headers go through the single path and three or more fill a
 * group.
 */
static size_t group_lanes(int impl)
{
    return impl == POOL_SCRYPT_AVX2 ? 8 : impl == POOL_SCRYPT_SSE2 ? 4 : 1;
}

#define MIN_GROUP 3

int pool_scrypt_1024_1_1_batch(const uint8_t *headers80, size_t count, uint8_t *out32s)
{
    if (count == 0)
        return 0;

    int impl = pool_scrypt_impl();
    size_t lanes = group_lanes(impl);
    if (count < MIN_GROUP)
        lanes = 1;

    void *owned;
    void *scratch = scratch_get(lanes * LANE_SCRATCH, &owned);
    if (scratch == NULL)
        return -1;

    size_t n = 0;
    if (lanes > 1) {
        while (count - n >= MIN_GROUP) {
            size_t used = count - n < lanes ? count - n : lanes;
            hash_group(impl, lanes, used, headers80 + 80 * n, out32s + 32 * n, scratch);
            n += used;
        }
    }
    for (; n < count; n++)
        hash_one(impl, headers80 + 80 * n, out32s + 32 * n, scratch);

    scratch_release(owned);
    return 0;
}
