/* cpu_features.c — CPUID once (see cpu_features.h).  __builtin_cpu_supports
 * would do for some features, but not every compiler's knows "f16c". */
#include "backend/cpu/cpu_features.h"

#include <stdatomic.h>

enum { FEATURE_AVX2_FMA = 1, FEATURE_F16C = 2, FEATURES_KNOWN = 1 << 30 };

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>

static int detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    /* AVX (ECX 28) with the OS saving YMM registers: OSXSAVE (ECX 27) and XCR0 bits 1-2. */
    if (!(c >> 27 & 1) || !(c >> 28 & 1)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6u) != 6u) return 0;
    int f = 0;
    if (c >> 29 & 1) f |= FEATURE_F16C;
    int fma = c >> 12 & 1;
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 5 & 1) && fma) f |= FEATURE_AVX2_FMA;
    return f;
}
#else
static int detect(void) { return 0; }
#endif

static int features(void) {
    static _Atomic int known = 0;   /* every thread that races here stores the same answer */
    int f = atomic_load_explicit(&known, memory_order_relaxed);
    if (!f) {
        f = detect() | FEATURES_KNOWN;
        atomic_store_explicit(&known, f, memory_order_relaxed);
    }
    return f;
}

bool kiln_cpu_has_avx2_fma(void) { return features() & FEATURE_AVX2_FMA; }
bool kiln_cpu_has_f16c(void) { return features() & FEATURE_F16C; }
