/* cpu_convert.c — bulk float16/bfloat16 ↔ float32 conversion.
 *
 * The CPU kernels compute half types in float32, so converting arrays is on
 * the path of every float16/bfloat16 op.  The scalar conversions of
 * core/dtype.h branch (and loop, for subnormals), which keeps the compiler
 * from vectorizing a loop over them.  These compute every case (normal,
 * subnormal, inf/NaN) for each element and select the right one with bit
 * masks, so each loop vectorizes; their results are bit-identical to
 * core/dtype.h (test_cpu_kernels checks all 65536 half values and a sweep of
 * float32 bit patterns).
 *
 * float16 also has a hardware path: x86-64 CPUs with F16C convert 8 values
 * per instruction (round to nearest even, subnormals exact, as ours).  Only
 * NaN payloads could differ, so blocks holding an inf or NaN take the
 * portable loop; everything else gets the same bits 3-5x faster. */
#include <string.h>

#include "backend/cpu/cpu_features.h"
#include "backend/cpu/cpu_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define KC_F16C 1
#else
#define KC_F16C 0
#endif

static inline float    from_bits(uint32_t u) { float f; memcpy(&f, &u, sizeof f); return f; }
static inline uint32_t to_bits(float f)      { uint32_t u; memcpy(&u, &f, sizeof u); return u; }
/* All ones when cond holds, else 0. */
static inline uint32_t mask_if(int cond)     { return 0u - (uint32_t)cond; }

static void f16_to_f32_portable(const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t h = src[i], em = h & 0x7fffu, sign = (h & 0x8000u) << 16;
        /* Subnormal (and zero): the mantissa counts units of 2^-24, exactly. */
        uint32_t sub = to_bits((float)(int32_t)em * 0x1p-24f);
        uint32_t normal = (em << 13) + 0x38000000u;          /* rebias the exponent by 127 - 15 */
        uint32_t special = (em << 13) | 0x7f800000u;         /* inf and NaN keep their mantissa */
        int32_t e = (int32_t)em;                             /* signed compares vectorize on SSE2 */
        uint32_t is_sub = mask_if(e < 0x400), is_special = mask_if(e >= 0x7c00);
        dst[i] = from_bits(sign | (sub & is_sub) | (special & is_special) | (normal & ~(is_sub | is_special)));
    }
}

static void f32_to_f16_portable(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x = to_bits(src[i]), sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
        /* Below 2^-14 the result is subnormal: adding 0.5 puts the float32
         * ulp at 2^-24, the f16 subnormal step, so the FPU's round-to-nearest-
         * even does the rounding and the low bits are the f16 mantissa. */
        uint32_t sub = to_bits(from_bits(a) + 0.5f) - 0x3f000000u;
        /* Normal: rebias, then round half to even on the 13 dropped bits. */
        uint32_t normal = (a - 0x38000000u + 0xfffu + ((a >> 13) & 1u)) >> 13;
        int32_t s = (int32_t)a;
        uint32_t is_nan = mask_if(s > 0x7f800000), is_inf = mask_if(s >= 0x477ff000);   /* >= 65520 rounds to inf */
        uint32_t is_sub = mask_if(s < 0x38800000);
        uint32_t r = (0x7e00u & is_nan) | (0x7c00u & is_inf & ~is_nan) | (sub & is_sub) | (normal & ~(is_inf | is_sub));
        dst[i] = (uint16_t)(r | sign);
    }
}

#if KC_F16C
__attribute__((target("avx,f16c")))
static void f16_to_f32_f16c(const uint16_t *src, float *dst, int64_t n) {
    const __m128i exponent = _mm_set1_epi16(0x7c00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        if (_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent)))
            f16_to_f32_portable(src + i, dst + i, 8);   /* an inf or NaN among them */
        else
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    f16_to_f32_portable(src + i, dst + i, n - i);
}

__attribute__((target("avx,f16c")))
static void f32_to_f16_f16c(const float *src, uint16_t *dst, int64_t n) {
    const __m256i exponent = _mm256_set1_epi32(0x7f800000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(src + i);
        /* inf/NaN lanes: exponent bits all set (an integer compare, through floats for AVX1) */
        __m256 e = _mm256_and_ps(x, _mm256_castsi256_ps(exponent));
        if (_mm256_movemask_ps(_mm256_cmp_ps(e, _mm256_castsi256_ps(exponent), _CMP_EQ_UQ)))
            f32_to_f16_portable(src + i, dst + i, 8);
        else
            _mm_storeu_si128((__m128i *)(dst + i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    f32_to_f16_portable(src + i, dst + i, n - i);
}
#endif

void kiln_cpu_f16_to_f32(const uint16_t *src, float *dst, int64_t n) {
#if KC_F16C
    if (kiln_cpu_has_f16c()) {
        f16_to_f32_f16c(src, dst, n);
        return;
    }
#endif
    f16_to_f32_portable(src, dst, n);
}

void kiln_cpu_f32_to_f16(const float *src, uint16_t *dst, int64_t n) {
#if KC_F16C
    if (kiln_cpu_has_f16c()) {
        f32_to_f16_f16c(src, dst, n);
        return;
    }
#endif
    f32_to_f16_portable(src, dst, n);
}

void kiln_cpu_bf16_to_f32(const uint16_t *src, float *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = from_bits((uint32_t)src[i] << 16);
}

void kiln_cpu_f32_to_bf16(const float *src, uint16_t *dst, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x = to_bits(src[i]);
        uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;   /* nearest even */
        uint32_t quiet = (x >> 16) | 0x40u;                          /* NaN stays NaN */
        uint32_t is_nan = mask_if((int32_t)(x & 0x7fffffffu) > 0x7f800000);
        dst[i] = (uint16_t)((quiet & is_nan) | (rounded & ~is_nan));
    }
}
