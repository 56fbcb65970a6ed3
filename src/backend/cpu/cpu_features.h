/* cpu_features.h — which optional x86-64 instructions this CPU (and its OS)
 * lets the CPU kernels use.  Asked once through CPUID and XGETBV, the same
 * way for every compiler; false on other architectures. */
#ifndef KILN_CPU_FEATURES_H
#define KILN_CPU_FEATURES_H

#include <stdbool.h>

bool kiln_cpu_has_avx2_fma(void);   /* AVX2 and FMA: cpu_gemm_avx2.c */
bool kiln_cpu_has_f16c(void);       /* AVX and F16C: cpu_convert.c */

#endif
