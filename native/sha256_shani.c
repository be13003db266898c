/* SHA-256 compression with the x86 SHA extensions. Placeholder: filled in next. */
#include <stddef.h>
#include <stdint.h>
void pool_sha256_transform_portable(uint32_t state[8], const uint8_t *blocks, size_t nblocks);
void pool_sha256_transform_shani(uint32_t state[8], const uint8_t *blocks, size_t nblocks)
{
    pool_sha256_transform_portable(state, blocks, nblocks);
}
