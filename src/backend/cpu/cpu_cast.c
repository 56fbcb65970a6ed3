/* cpu_cast.c — CAST: convert every element to the output's dtype.
 *
 * Rules (the CUDA backend follows the same ones):
 *   float → float      round to nearest even (f16/bf16 through float32, which
 *                      holds every f16 and bf16 value exactly); these use the
 *                      vectorized bulk conversions of cpu_convert.c
 *   float → integer    NaN → 0, out of range → the nearest bound (saturate),
 *                      otherwise truncate toward zero
 *   integer → integer  wrap modulo 2^bits, as numpy and torch do
 *   integer → float    round to nearest even (also for int64 → f16/bf16,
 *                      which goes through a round-to-odd float32 so that the
 *                      value is rounded only once)
 *   anything → bool    nonzero (NaN included) → 1, zero → 0
 *   bool → anything    0 or 1 (any nonzero byte counts as 1)
 * C's own conversions are undefined for out-of-range floats: every float →
 * integer conversion here is range-checked first. */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"

/* Loads: a source element as float (float dtypes) or int64_t (the others). */
static inline float   ld_f32 (float x)    { return x; }
static inline int64_t ld_i8  (int8_t x)   { return x; }
static inline int64_t ld_u8  (uint8_t x)  { return x; }
static inline int64_t ld_i32 (int32_t x)  { return x; }
static inline int64_t ld_i64 (int64_t x)  { return x; }
static inline int64_t ld_bool(uint8_t x)  { return x != 0; }

/* float → target. */
static inline float    fs_f32 (float f) { return f; }
static inline uint16_t fs_f16 (float f) { return kiln_f32_to_f16(f); }
static inline uint16_t fs_bf16(float f) { return kiln_f32_to_bf16(f); }
static inline uint8_t  fs_bool(float f) { return f != 0.0f; }
static inline int8_t   fs_i8  (float f) {
    if (f != f) return 0;
    if (f <= -128.0f) return INT8_MIN;
    if (f >= 127.0f) return INT8_MAX;
    return (int8_t)f;
}
static inline uint8_t  fs_u8  (float f) {
    if (f != f || f <= 0.0f) return 0;
    if (f >= 255.0f) return UINT8_MAX;
    return (uint8_t)f;
}
static inline int32_t  fs_i32 (float f) {
    if (f != f) return 0;
    if (f <= -2147483648.0f) return INT32_MIN;
    if (f >= 2147483648.0f) return INT32_MAX;      /* 2^31: INT32_MAX itself is not a float */
    return (int32_t)f;
}
static inline int64_t  fs_i64 (float f) {
    if (f != f) return 0;
    if (f <= -9223372036854775808.0f) return INT64_MIN;
    if (f >= 9223372036854775808.0f) return INT64_MAX;
    return (int64_t)f;
}

/* int64 → float32 rounded to odd: exact for |v| < 2^24, else the low bit
 * records whether bits were dropped.  Rounding that to f16 or bf16 (fewer
 * than 23 bits) then gives the correctly rounded result, where rounding to
 * nearest twice could be off by one unit. */
static inline float i64_to_f32_odd(int64_t v) {
    if (v > -(1 << 24) && v < (1 << 24)) return (float)v;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int shift = (64 - __builtin_clzll(u)) - 24;
    uint64_t m = u >> shift;
    if (u & ((UINT64_C(1) << shift) - 1)) m |= 1;
    float f = ldexpf((float)m, shift);
    return v < 0 ? -f : f;
}

/* int64 → target. */
static inline float    is_f32 (int64_t v) { return (float)v; }
static inline uint16_t is_f16 (int64_t v) { return kiln_f32_to_f16(i64_to_f32_odd(v)); }
static inline uint16_t is_bf16(int64_t v) { return kiln_f32_to_bf16(i64_to_f32_odd(v)); }
static inline int8_t   is_i8  (int64_t v) { return (int8_t)(uint8_t)(uint64_t)v; }
static inline uint8_t  is_u8  (int64_t v) { return (uint8_t)(uint64_t)v; }
static inline int32_t  is_i32 (int64_t v) { return (int32_t)(uint32_t)(uint64_t)v; }
static inline int64_t  is_i64 (int64_t v) { return v; }
static inline uint8_t  is_bool(int64_t v) { return v != 0; }

#define CAST_LOOP(SRC_T, LOAD, DST_T, STORE) do {                       \
        const SRC_T *s_ = (const SRC_T *)in->data;                      \
        DST_T *d_ = (DST_T *)out->data;                                 \
        for (int64_t i_ = 0; i_ < n; i_++) d_[i_] = STORE(LOAD(s_[i_])); \
        return KILN_OK;                                                 \
    } while (0)

/* One switch over the output dtype for every source: P is fs
 * (the source loads as float) or is (it loads as int64_t). */
#define CAST_FROM(SRC_T, LOAD, P) do { switch (out->dtype) {          \
    case KILN_FLOAT32:  CAST_LOOP(SRC_T, LOAD, float,    P##_f32);  \
    case KILN_FLOAT16:  CAST_LOOP(SRC_T, LOAD, uint16_t, P##_f16);  \
    case KILN_BFLOAT16: CAST_LOOP(SRC_T, LOAD, uint16_t, P##_bf16); \
    case KILN_INT8:     CAST_LOOP(SRC_T, LOAD, int8_t,   P##_i8);   \
    case KILN_UINT8:    CAST_LOOP(SRC_T, LOAD, uint8_t,  P##_u8);   \
    case KILN_INT32:    CAST_LOOP(SRC_T, LOAD, int32_t,  P##_i32);  \
    case KILN_INT64:    CAST_LOOP(SRC_T, LOAD, int64_t,  P##_i64);  \
    case KILN_BOOL:     CAST_LOOP(SRC_T, LOAD, uint8_t,  P##_bool); \
    default: break; } } while (0)

/* Between float dtypes the bulk conversions of cpu_convert.c do the work
 * (vectorized), through a float32 chunk on the stack. */
static void cast_floats(kiln_dtype from, const void *src, kiln_dtype to, void *dst, int64_t n) {
    enum { CHUNK = 512 };
    float buf[CHUNK];
    for (int64_t start = 0; start < n; start += CHUNK) {
        int64_t m = n - start < CHUNK ? n - start : CHUNK;
        const float *f = buf;
        switch (from) {
        case KILN_FLOAT16:  kiln_cpu_f16_to_f32((const uint16_t *)src + start, buf, m); break;
        case KILN_BFLOAT16: kiln_cpu_bf16_to_f32((const uint16_t *)src + start, buf, m); break;
        default:            f = (const float *)src + start; break;
        }
        switch (to) {
        case KILN_FLOAT16:  kiln_cpu_f32_to_f16(f, (uint16_t *)dst + start, m); break;
        case KILN_BFLOAT16: kiln_cpu_f32_to_bf16(f, (uint16_t *)dst + start, m); break;
        default:            memcpy((float *)dst + start, f, (size_t)m * sizeof(float)); break;
        }
    }
}

bool kiln_cpu_cast_supports(const kiln_layer_launch *l) {
    return (unsigned)l->inputs[0].dtype < KILN_DTYPE_COUNT && (unsigned)l->outputs[0].dtype < KILN_DTYPE_COUNT;
}

kiln_status kiln_cpu_cast(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    int64_t n = kiln_cpu_numel(out);
    if ((unsigned)in->dtype < KILN_DTYPE_COUNT && in->dtype == out->dtype) {
        if (n > 0 && in->data != out->data) memmove(out->data, in->data, (size_t)n * kiln_dtype_size(in->dtype));
        return KILN_OK;
    }
    if (kiln_dtype_is_float(in->dtype) && kiln_dtype_is_float(out->dtype)) {
        cast_floats(in->dtype, in->data, out->dtype, out->data, n);
        return KILN_OK;
    }
    switch (in->dtype) {
    case KILN_FLOAT32:  CAST_FROM(float,    ld_f32,           fs); break;
    case KILN_FLOAT16:  CAST_FROM(uint16_t, kiln_f16_to_f32,  fs); break;
    case KILN_BFLOAT16: CAST_FROM(uint16_t, kiln_bf16_to_f32, fs); break;
    case KILN_INT8:     CAST_FROM(int8_t,   ld_i8,            is); break;
    case KILN_UINT8:    CAST_FROM(uint8_t,  ld_u8,            is); break;
    case KILN_INT32:    CAST_FROM(int32_t,  ld_i32,           is); break;
    case KILN_INT64:    CAST_FROM(int64_t,  ld_i64,           is); break;
    case KILN_BOOL:     CAST_FROM(uint8_t,  ld_bool,          is); break;
    default: break;
    }
    const char *from = kiln_dtype_name(in->dtype), *to = kiln_dtype_name(out->dtype);
    return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: cast from %s (%d) to %s (%d) is not supported",
                      from ? from : "unknown dtype", (int)in->dtype, to ? to : "unknown dtype", (int)out->dtype);
}
