/* cpu_unary.c — UNARY: out = op(x), elementwise.
 *
 * Every op (relu gelu silu exp neg sqrt tanh sigmoid erf gelu_erf rsqrt abs log
 * sin cos floor ceil reciprocal sign) runs on float32, float16 and bfloat16 (the half types computed in
 * float32 on stack chunks and rounded back to nearest even); NEG also runs on
 * int8, int32 and int64, wrapping (-INT_MIN = INT_MIN).  RELU keeps NaN
 * (as torch.relu), GELU is the tanh approximation
 * 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
#include <math.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "ops/op_table.h"

typedef void (*unary_kernel)(const void *in, void *out, int64_t n);

#define UNARY_F32(NAME, EXPR)                                                    \
    static void NAME(const void *in_, void *out_, int64_t n) {                   \
        const float *in = (const float *)in_;                                    \
        float *out = (float *)out_;                                              \
        for (int64_t i = 0; i < n; i++) { float x = in[i]; out[i] = (EXPR); }    \
    }

#include "backend/cpu/cpu_exp.h"   /* exp_f32 */

#define GELU_C 0.7978845608028654f   /* sqrt(2 / pi) */
UNARY_F32(f32_relu, x < 0.0f ? 0.0f : x)
/* The tanh form, 0.5 x (1 + tanh(u)) = x / (1 + e^(-2u)): no cancellation as
 * tanh(u) nears -1, and one exp. */
UNARY_F32(f32_gelu, x / (1.0f + exp_f32(-2.0f * GELU_C * (x + 0.044715f * x * x * x))))
UNARY_F32(f32_silu, x / (1.0f + exp_f32(-x)))
UNARY_F32(f32_exp,  exp_f32(x))
UNARY_F32(f32_neg,  -x)
UNARY_F32(f32_sqrt, sqrtf(x))
UNARY_F32(f32_tanh, tanhf(x))
UNARY_F32(f32_sigmoid, 1.0f / (1.0f + exp_f32(-x)))
UNARY_F32(f32_erf, erff(x))
/* 0.5 x erfc(-x / sqrt 2) = 0.5 x (1 + erf(x / sqrt 2)), without the
 * cancellation of 1 + erf for negative x. */
UNARY_F32(f32_gelu_erf, 0.5f * x * erfcf(-x * 0.70710678118654752f))
UNARY_F32(f32_rsqrt, 1.0f / sqrtf(x))
UNARY_F32(f32_abs, fabsf(x))
UNARY_F32(f32_log, logf(x))
UNARY_F32(f32_sin, sinf(x))
UNARY_F32(f32_cos, cosf(x))
UNARY_F32(f32_floor, floorf(x))
UNARY_F32(f32_ceil, ceilf(x))
UNARY_F32(f32_reciprocal, 1.0f / x)
UNARY_F32(f32_sign, x != x ? x : (float)((x > 0.0f) - (x < 0.0f)))

#define HALF_CHUNK 256
#define UNARY_HALF(NAME, TO_F32, FROM_F32, F32_KERNEL)                           \
    static void NAME(const void *in_, void *out_, int64_t n) {                   \
        const uint16_t *in = (const uint16_t *)in_;                              \
        uint16_t *out = (uint16_t *)out_;                                        \
        float buf[HALF_CHUNK];                                                   \
        for (int64_t start = 0; start < n; start += HALF_CHUNK) {                \
            int64_t m = n - start < HALF_CHUNK ? n - start : HALF_CHUNK;         \
            TO_F32(in + start, buf, m);                                          \
            F32_KERNEL(buf, buf, m);                                             \
            FROM_F32(buf, out + start, m);                                       \
        }                                                                        \
    }

#define UNARY_HALFS(PREFIX, TO_F32, FROM_F32)                   \
    UNARY_HALF(PREFIX##_relu, TO_F32, FROM_F32, f32_relu)       \
    UNARY_HALF(PREFIX##_gelu, TO_F32, FROM_F32, f32_gelu)       \
    UNARY_HALF(PREFIX##_silu, TO_F32, FROM_F32, f32_silu)       \
    UNARY_HALF(PREFIX##_exp,  TO_F32, FROM_F32, f32_exp)        \
    UNARY_HALF(PREFIX##_sqrt, TO_F32, FROM_F32, f32_sqrt)       \
    UNARY_HALF(PREFIX##_tanh, TO_F32, FROM_F32, f32_tanh) \
    UNARY_HALF(PREFIX##_sigmoid, TO_F32, FROM_F32, f32_sigmoid) \
    UNARY_HALF(PREFIX##_erf, TO_F32, FROM_F32, f32_erf) \
    UNARY_HALF(PREFIX##_gelu_erf, TO_F32, FROM_F32, f32_gelu_erf) \
    UNARY_HALF(PREFIX##_rsqrt, TO_F32, FROM_F32, f32_rsqrt) \
    UNARY_HALF(PREFIX##_abs, TO_F32, FROM_F32, f32_abs) \
    UNARY_HALF(PREFIX##_log, TO_F32, FROM_F32, f32_log) \
    UNARY_HALF(PREFIX##_sin, TO_F32, FROM_F32, f32_sin) \
    UNARY_HALF(PREFIX##_cos, TO_F32, FROM_F32, f32_cos) \
    UNARY_HALF(PREFIX##_floor, TO_F32, FROM_F32, f32_floor) \
    UNARY_HALF(PREFIX##_ceil, TO_F32, FROM_F32, f32_ceil) \
    UNARY_HALF(PREFIX##_reciprocal, TO_F32, FROM_F32, f32_reciprocal) \
    UNARY_HALF(PREFIX##_sign, TO_F32, FROM_F32, f32_sign)

UNARY_HALFS(f16, kiln_cpu_f16_to_f32, kiln_cpu_f32_to_f16)
UNARY_HALFS(bf16, kiln_cpu_bf16_to_f32, kiln_cpu_f32_to_bf16)

/* Negating a half is flipping its sign bit (exact, NaN included). */
static void half_neg(const void *in_, void *out_, int64_t n) {
    const uint16_t *in = (const uint16_t *)in_;
    uint16_t *out = (uint16_t *)out_;
    for (int64_t i = 0; i < n; i++) out[i] = (uint16_t)(in[i] ^ 0x8000u);
}

/* Integer negation in the unsigned type: wraps instead of overflowing. */
#define NEG_INT(NAME, T, UT)                                                       \
    static void NAME(const void *in_, void *out_, int64_t n) {                     \
        const T *in = (const T *)in_;                                              \
        T *out = (T *)out_;                                                        \
        for (int64_t i = 0; i < n; i++) out[i] = (T)(UT)(0u - (UT)in[i]);          \
    }
NEG_INT(i8_neg, int8_t, uint8_t)
NEG_INT(i32_neg, int32_t, uint32_t)
NEG_INT(i64_neg, int64_t, uint64_t)

/* NULL: not supported. */
static const unary_kernel unary_kernels[KILN_DTYPE_COUNT][KILN_UNARY_OP_COUNT] = {
    /*                 RELU       GELU       SILU       EXP       NEG       SQRT */
    [KILN_FLOAT32]  = {f32_relu,  f32_gelu,  f32_silu,  f32_exp,  f32_neg,  f32_sqrt,
                       f32_tanh, f32_sigmoid, f32_erf, f32_gelu_erf, f32_rsqrt, f32_abs, f32_log, f32_sin, f32_cos, f32_floor, f32_ceil, f32_reciprocal, f32_sign},
    [KILN_FLOAT16]  = {f16_relu,  f16_gelu,  f16_silu,  f16_exp,  half_neg, f16_sqrt,
                       f16_tanh, f16_sigmoid, f16_erf, f16_gelu_erf, f16_rsqrt, f16_abs, f16_log, f16_sin, f16_cos, f16_floor, f16_ceil, f16_reciprocal, f16_sign},
    [KILN_BFLOAT16] = {bf16_relu, bf16_gelu, bf16_silu, bf16_exp, half_neg, bf16_sqrt,
                       bf16_tanh, bf16_sigmoid, bf16_erf, bf16_gelu_erf, bf16_rsqrt, bf16_abs, bf16_log, bf16_sin, bf16_cos, bf16_floor, bf16_ceil, bf16_reciprocal, bf16_sign},
    [KILN_INT8]     = {[KILN_UNARY_NEG] = i8_neg},
    [KILN_INT32]    = {[KILN_UNARY_NEG] = i32_neg},
    [KILN_INT64]    = {[KILN_UNARY_NEG] = i64_neg},
};

bool kiln_cpu_unary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return l->subop >= 0 && l->subop < KILN_UNARY_OP_COUNT && (unsigned)dt < KILN_DTYPE_COUNT &&
           l->outputs[0].dtype == dt && unary_kernels[dt][l->subop] != NULL;
}

kiln_status kiln_cpu_unary(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    if (l->subop < 0 || l->subop >= KILN_UNARY_OP_COUNT)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: unary op %d is not supported", (int)l->subop);
    const char *opname = kiln_unary_op_name(l->subop);
    const char *dname = kiln_dtype_name(in->dtype);
    unary_kernel kernel = dname ? unary_kernels[in->dtype][l->subop] : NULL;
    if (!kernel || out->dtype != in->dtype)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: unary %s on %s is not supported", opname,
                          dname ? dname : "an unknown dtype");
    kernel(in->data, out->data, kiln_cpu_numel(out));
    return KILN_OK;
}
