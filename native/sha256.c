/* SHA-256 (FIPS 180-4): portable C compression, streaming API and sha256d.
 * The SHA-NI compression lives in sha256_shani.c; pool_sha256_transform dispatches. */
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
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
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

/* Provided by sha256_shani.c (compiled with target("sha,sse4.1")); on machines
 * without x86 it is a stub that is never selected. */
void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks);

typedef void (*transform_fn)(uint32_t state[8], const uint8_t *blocks, size_t nblocks);

static transform_fn current_transform;
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
    } else if (impl == POOL_SHA256_PORTABLE) {
        current_transform = pool_sha256_transform_portable;
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

void pool_sha256d_64(const uint8_t *in64, uint8_t *out32)
{
    static const uint8_t pad_block[64] = {0x80, [62] = 0x02}; /* 512 bits */
    uint32_t state[8];
    uint8_t first[32];
    memcpy(state, H0, sizeof H0);
    pool_sha256_transform(state, in64, 1);
    pool_sha256_transform(state, pad_block, 1);
    for (int i = 0; i < 8; i++)
        store_be32(first + 4 * i, state[i]);
    sha256_of_digest(first, out32);
}
