/* SHA-256 (FIPS 180-4): portable C compression, streaming API, sha256d and the
 * 64-byte merkle step pool_sha256d_64.  The SHA-NI code lives in sha256_shani.c;
 * pool_sha256_transform and pool_sha256d_64 dispatch on the implementation in force. */
#include <string.h>

#include "sha256.h"
#include "internal/sha256_stream.h"

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static const uint32_t H0[8] = {
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define CH(x, y, z) ((((y) ^ (z)) & (x)) ^ (z)) /* = (x & y) ^ (~x & z) */
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (ROTR(x, 2) ^ ROTR(x, 13) ^ ROTR(x, 22))
#define BSIG1(x) (ROTR(x, 6) ^ ROTR(x, 11) ^ ROTR(x, 25))
#define SSIG0(x) (ROTR(x, 7) ^ ROTR(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (ROTR(x, 17) ^ ROTR(x, 19) ^ ((x) >> 10))

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

void pool_sha256_transform_portable(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    uint32_t w[64];
    while (nblocks--) {
        for (int i = 0; i < 16; i++)
            w[i] = load_be32(blocks + 4 * i);
        for (int i = 16; i < 64; i++)
            w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
        for (int i = 0; i < 64; i++) {
            uint32_t t1 = h + BSIG1(e) + CH(e, f, g) + K[i] + w[i];
            uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
            h = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
        blocks += 64;
    }
}

/* W[t] + K[t] for the padding block that ends a 64-byte message (0x80, zeros,
 * bit length 512): that block is the same for every merkle node, so its whole
 * message schedule is a constant.  Shared with sha256_shani.c; aligned so that
 * its 256 bytes fill exactly four cache lines.  Derivation: W[0..15] =
 * {0x80000000, 0 x 14, 512}, W[16..63] by the usual schedule (as in
 * pool_sha256_transform_portable), plus K[t]. */
const uint32_t pool_sha256_pad64_wk[64] __attribute__((aligned(64))) = {
    0xc28a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf374,
    0x649b69c1, 0xf0fe4786, 0x0fe1edc6, 0x240cf254, 0x4fe9346f, 0x6cc984be, 0x61b9411e, 0x16f988fa,
    0xf2c65152, 0xa88e5a6d, 0xb019fc65, 0xb9d99ec7, 0x9a1231c3, 0xe70eeaa0, 0xfdb1232b, 0xc7353eb0,
    0x3069bad5, 0xcb976d5f, 0x5a0f118f, 0xdc1eeefd, 0x0a35b689, 0xde0b7a04, 0x58f4ca9d, 0xe15d5b16,
    0x007f3e86, 0x37088980, 0xa507ea32, 0x6fab9537, 0x17406110, 0x0d8cd6f1, 0xcdaa3b6d, 0xc0bbbe37,
    0x83613bda, 0xdb48a363, 0x0b02e931, 0x6fd15ca7, 0x521afaca, 0x31338431, 0x6ed41a95, 0x6d437890,
    0xc39c91f2, 0x9eccabbd, 0xb5c9a0e6, 0x532fb63c, 0xd2c741c6, 0x07237ea3, 0xa4954b68, 0x4c191d76,
};

/*
 * One round on working variables a..h with wk = W[t] + K[t].  Instead of moving
 * the eight variables along, callers rotate the argument names (ROUNDS64), so a
 * round only writes d (the next e) and h (the next a).
 *
 * Maj(a,b,c) = ((a ^ b) & (b ^ c)) ^ b, and b ^ c is the previous round's a ^ b:
 * each round stores a ^ b in `ab` and reads the previous one from `bc` (two
 * variables used alternately), one operation less than the usual form.
 */
#define ROUND(a, b, c, d, e, f, g, h, wk, ab, bc)               \
    do {                                                        \
        uint32_t t1_ = (h) + BSIG1(e) + CH(e, f, g) + (wk);     \
        (ab) = (a) ^ (b);                                       \
        (d) += t1_;                                             \
        (h) = t1_ + BSIG0(a) + (((ab) & (bc)) ^ (b));           \
    } while (0)

/* 64 rounds on locals a..h; WK(t) must expand to W[t] + K[t]. */
#define ROUNDS64(WK)                                            \
    do {                                                        \
        uint32_t x_ = b ^ c, y_;                                \
        for (int t = 0; t < 64; t += 8) {                       \
            ROUND(a, b, c, d, e, f, g, h, WK(t), y_, x_);       \
            ROUND(h, a, b, c, d, e, f, g, WK(t + 1), x_, y_);   \
            ROUND(g, h, a, b, c, d, e, f, WK(t + 2), y_, x_);   \
            ROUND(f, g, h, a, b, c, d, e, WK(t + 3), x_, y_);   \
            ROUND(e, f, g, h, a, b, c, d, WK(t + 4), y_, x_);   \
            ROUND(d, e, f, g, h, a, b, c, WK(t + 5), x_, y_);   \
            ROUND(c, d, e, f, g, h, a, b, WK(t + 6), y_, x_);   \
            ROUND(b, c, d, e, f, g, h, a, WK(t + 7), x_, y_);   \
        }                                                       \
    } while (0)

/* Compress one block given as 16 message words w[0..15] (host order); w[16..63]
 * is filled in here.  state = a..h, updated with the feed-forward. */
static inline void compress_words(uint32_t state[8], uint32_t w[64])
{
    for (int i = 16; i < 64; i++)
        w[i] = SSIG1(w[i - 2]) + w[i - 7] + SSIG0(w[i - 15]) + w[i - 16];
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
#define WK_SCHED(t) (w[t] + K[t])
    ROUNDS64(WK_SCHED);
#undef WK_SCHED
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

/* sha256d of 64 bytes in portable C: three compressions, the middle one (the
 * constant padding block) with the precomputed pool_sha256_pad64_wk instead of a
 * message schedule.  in64 and out32 may overlap (share.c hashes a node in place):
 * the input is read completely before anything is written. */
void pool_sha256d_64_portable(const uint8_t *in64, uint8_t *out32)
{
    uint32_t w[64];
    uint32_t state[8];

    /* Block 1: the 64 input bytes. */
    for (int i = 0; i < 16; i++)
        w[i] = load_be32(in64 + 4 * i);
    memcpy(state, H0, sizeof H0);
    compress_words(state, w);

    /* Block 2: padding only; W[t] + K[t] comes from the table. */
    {
        uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
        uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
#define WK_PAD(t) (pool_sha256_pad64_wk[t])
        ROUNDS64(WK_PAD);
#undef WK_PAD
        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
    }

    /* Block 3: the first digest's big-endian words are already the message words
     * (no byte round trip), then the padding of a 32-byte message. */
    for (int i = 0; i < 8; i++)
        w[i] = state[i];
    w[8] = 0x80000000;
    for (int i = 9; i < 15; i++)
        w[i] = 0;
    w[15] = 256; /* bit length */
    memcpy(state, H0, sizeof H0);
    compress_words(state, w);

    for (int i = 0; i < 8; i++)
        store_be32(out32 + 4 * i, state[i]);
}

#undef ROUNDS64
#undef ROUND

/* Provided by sha256_shani.c (compiled with target("sha,sse4.1,ssse3")); on
 * machines without x86 they are stubs that are never selected. */
void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
void pool_sha256d_64_shani(const uint8_t *in64, uint8_t *out32);

typedef void (*transform_fn)(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
typedef void (*sha256d_64_fn)(const uint8_t *in64, uint8_t *out32);

static transform_fn current_transform;
static sha256d_64_fn current_sha256d_64;
static int current_impl = -2;

static void ensure_selected(void)
{
    if (current_impl == -2)
        pool_sha256_select(POOL_IMPL_AUTO);
}

int pool_sha256_select(int impl)
{
    if (impl == POOL_IMPL_AUTO)
        impl = pool_cpu_has_shani() ? POOL_SHA256_SHANI : POOL_SHA256_PORTABLE;
    if (impl == POOL_SHA256_SHANI) {
        if (!pool_cpu_has_shani())
            return -1;
        current_transform = pool_sha256_transform_shani;
        current_sha256d_64 = pool_sha256d_64_shani;
    } else if (impl == POOL_SHA256_PORTABLE) {
        current_transform = pool_sha256_transform_portable;
        current_sha256d_64 = pool_sha256d_64_portable;
    } else {
        return -1;
    }
    current_impl = impl;
    return impl;
}

int pool_sha256_impl(void)
{
    ensure_selected();
    return current_impl;
}

void pool_sha256_transform(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    ensure_selected();
    current_transform(state, blocks, nblocks);
}

void pool_sha256_init(pool_sha256_ctx *ctx)
{
    memcpy(ctx->state, H0, sizeof H0);
    ctx->total_len = 0;
    ctx->buffer_len = 0;
}

void pool_sha256_update(pool_sha256_ctx *ctx, const uint8_t *data, size_t len)
{
    ctx->total_len += len;
    if (ctx->buffer_len) {
        size_t take = 64 - ctx->buffer_len;
        if (take > len)
            take = len;
        memcpy(ctx->buffer + ctx->buffer_len, data, take);
        ctx->buffer_len += take;
        data += take;
        len -= take;
        if (ctx->buffer_len < 64)
            return;
        pool_sha256_transform(ctx->state, ctx->buffer, 1);
        ctx->buffer_len = 0;
    }
    if (len >= 64) {
        size_t blocks = len / 64;
        pool_sha256_transform(ctx->state, data, blocks);
        data += blocks * 64;
        len -= blocks * 64;
    }
    if (len) {
        memcpy(ctx->buffer, data, len);
        ctx->buffer_len = len;
    }
}

void pool_sha256_final(pool_sha256_ctx *ctx, uint8_t *out32)
{
    uint64_t bit_len = ctx->total_len * 8;
    uint8_t pad[72];
    size_t pad_len = (ctx->buffer_len < 56) ? 56 - ctx->buffer_len : 120 - ctx->buffer_len;
    memset(pad, 0, sizeof pad);
    pad[0] = 0x80;
    for (int i = 0; i < 8; i++)
        pad[pad_len + i] = (uint8_t)(bit_len >> (56 - 8 * i));
    uint64_t saved = ctx->total_len;
    pool_sha256_update(ctx, pad, pad_len + 8);
    ctx->total_len = saved;
    for (int i = 0; i < 8; i++)
        store_be32(out32 + 4 * i, ctx->state[i]);
}

void pool_sha256(const uint8_t *data, size_t len, uint8_t *out32)
{
    pool_sha256_ctx ctx;
    pool_sha256_init(&ctx);
    pool_sha256_update(&ctx, data, len);
    pool_sha256_final(&ctx, out32);
}

/* Second pass of sha256d: the 32-byte digest padded to one block. */
static void sha256_of_digest(const uint8_t *digest32, uint8_t *out32)
{
    uint8_t block[64];
    uint32_t state[8];
    memcpy(block, digest32, 32);
    memset(block + 32, 0, 32);
    block[32] = 0x80;
    block[62] = 0x01; /* 256 bits */
    memcpy(state, H0, sizeof H0);
    pool_sha256_transform(state, block, 1);
    for (int i = 0; i < 8; i++)
        store_be32(out32 + 4 * i, state[i]);
}

void pool_sha256d(const uint8_t *data, size_t len, uint8_t *out32)
{
    uint8_t first[32];
    pool_sha256(data, len, first);
    sha256_of_digest(first, out32);
}

/* Merkle step: sha256d(in64), through the implementation in force (SHA-NI:
 * pool_sha256d_64_shani in sha256_shani.c).  in64 and out32 may be the same buffer. */
void pool_sha256d_64(const uint8_t *in64, uint8_t *out32)
{
    ensure_selected();
    current_sha256d_64(in64, out32);
}
