/* SIMD ROMix kernels shared by scrypt.c and scrypt_sse2.c / scrypt_avx2.c (not part of the Python API).
 * On machines without x86 they are stubs that are never selected. */
#ifndef POOL_NATIVE_SCRYPT_SIMD_H
#define POOL_NATIVE_SCRYPT_SIMD_H
#include <stdint.h>

void pool_scrypt_romix_sse2_1(uint32_t X[32], void *scratch);
void pool_scrypt_romix_sse2_4(uint32_t X[4 * 32], void *scratch);
void pool_scrypt_romix_avx2_8(uint32_t X[8 * 32], void *scratch);
#endif
