/* Run-time CPU feature detection through cpuid/xgetbv (x86); 0 on other machines. */
#include "internal/sha256_stream.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static int xgetbv_has_ymm(void)
{
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (eax & 0x6) == 0x6; /* XMM and YMM state enabled by the OS */
}

int pool_cpu_has_sse2(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    return (d >> 26) & 1;
}

int pool_cpu_has_shani(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int sse41 = (c >> 19) & 1, ssse3 = (c >> 9) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return sse41 && ssse3 && ((b >> 29) & 1);
}

int pool_cpu_has_avx2(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    if (!osxsave || !avx || !xgetbv_has_ymm())
        return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return (b >> 5) & 1;
}
#else
int pool_cpu_has_sse2(void) { return 0; }
int pool_cpu_has_shani(void) { return 0; }
int pool_cpu_has_avx2(void) { return 0; }
#endif
