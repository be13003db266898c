/* Placeholder so the module links; the real scrypt lands next. */
#include "scrypt.h"
int pool_scrypt_1024_1_1(const uint8_t *header80, uint8_t *out32) { (void)header80; (void)out32; return -1; }
int pool_scrypt_1024_1_1_batch(const uint8_t *h, size_t n, uint8_t *o) { (void)h; (void)n; (void)o; return -1; }
int pool_cpu_has_avx2(void);
int pool_scrypt_impl(void) { return 0; }
int pool_scrypt_select(int impl) { (void)impl; return 0; }
