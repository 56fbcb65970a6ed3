/* cpu_binary.c — BINARY: out = a (op) b with numpy broadcasting.
 *
 * The broadcast is planned first: both operands are aligned to the output's
 * rank (missing leading axes have size 1), a size-1 axis gets stride 0, size-1
 * output axes are dropped and neighbouring axes that both operands walk
 * contiguously are merged.  Same-shape operands thus become one flat loop,
 * a scalar one flat loop against a constant, and a row or column broadcast
 * an outer loop over rows around a contiguous inner loop; only the innermost
 * axis runs in a kernel, whose operand strides are 0 or 1, so that each case
 * is a plain loop the compiler vectorizes.
 *
 * Semantics per dtype:
 *   float32            IEEE arithmetic; MIN/MAX propagate NaN (as numpy.minimum)
 *   float16, bfloat16  computed in float32, rounded back to nearest even
 *   integers           wrap on overflow (computed in unsigned arithmetic); DIV
 *                      truncates toward zero, x / 0 = 0, INT_MIN / -1 = INT_MIN;
 *                      MOD and FMOD by 0 (and by -1) give 0
 *   POW                floats only (powf); MOD is numpy.mod (divisor's sign),
 *                      FMOD is C fmod (dividend's sign)
 *   bool               ADD = or, SUB = xor, MUL = and, MIN = and, MAX = or,
 *                      DIV = a (true / true is true; division by false has no
 *                      meaning, and returning a keeps the op total) */
#include <math.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "ops/op_table.h"

/* Innermost loop: n elements; sa and sb are 0 (broadcast) or 1 (contiguous). */
typedef void (*binary_kernel)(const void *a, int64_t sa, const void *b, int64_t sb, void *out, int64_t n);

#define BINARY_KERNEL(NAME, T, EXPR)                                                        \
    static void NAME(const void *a_, int64_t sa, const void *b_, int64_t sb, void *o_, int64_t n) { \
        const T *a = (const T *)a_, *b = (const T *)b_;                                     \
        T *o = (T *)o_;                                                                     \
        if (sa && sb) {                                                                     \
            for (int64_t i = 0; i < n; i++) { T x = a[i], y = b[i]; o[i] = (T)(EXPR); }     \
        } else if (sa) {                                                                    \
            T y = b[0];                                                                     \
            for (int64_t i = 0; i < n; i++) { T x = a[i]; o[i] = (T)(EXPR); }               \
        } else if (sb) {                                                                    \
            T x = a[0];                                                                     \
            for (int64_t i = 0; i < n; i++) { T y = b[i]; o[i] = (T)(EXPR); }               \
        } else {                                                                            \
            T x = a[0], y = b[0], r = (T)(EXPR);                                            \
            for (int64_t i = 0; i < n; i++) o[i] = r;                                       \
        }                                                                                   \
    }

/* float32; the float16/bfloat16 kernels below reuse these on converted chunks. */
BINARY_KERNEL(f32_add, float, x + y)
BINARY_KERNEL(f32_sub, float, x - y)
BINARY_KERNEL(f32_mul, float, x * y)
BINARY_KERNEL(f32_div, float, x / y)
BINARY_KERNEL(f32_min, float, (x < y || x != x) ? x : y)
BINARY_KERNEL(f32_max, float, (x > y || x != x) ? x : y)
BINARY_KERNEL(f32_pow, float, powf(x, y))
BINARY_KERNEL(f32_fmod, float, fmodf(x, y))
static inline float floor_mod_f32(float x, float y) {
    float r = fmodf(x, y);
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
BINARY_KERNEL(f32_mod, float, floor_mod_f32(x, y))

/* float16 / bfloat16: convert a chunk of each operand to float32 on the
 * stack, run the float32 kernel, convert the result back. */
#define HALF_CHUNK 256
#define HALF_KERNEL(NAME, TO_F32, FROM_F32, F32_KERNEL)                                     \
    static void NAME(const void *a_, int64_t sa, const void *b_, int64_t sb, void *o_, int64_t n) { \
        const uint16_t *a = (const uint16_t *)a_, *b = (const uint16_t *)b_;                \
        uint16_t *o = (uint16_t *)o_;                                                       \
        float fa[HALF_CHUNK], fb[HALF_CHUNK], fo[HALF_CHUNK];                               \
        if (!sa) TO_F32(a, fa, 1);                                                          \
        if (!sb) TO_F32(b, fb, 1);                                                          \
        for (int64_t start = 0; start < n; start += HALF_CHUNK) {                           \
            int64_t m = n - start < HALF_CHUNK ? n - start : HALF_CHUNK;                    \
            if (sa) TO_F32(a + start, fa, m);                                               \
            if (sb) TO_F32(b + start, fb, m);                                               \
            F32_KERNEL(fa, sa, fb, sb, fo, m);                                              \
            FROM_F32(fo, o + start, m);                                                     \
        }                                                                                   \
    }

#define HALF_KERNELS(PREFIX, TO_F32, FROM_F32)                 \
    HALF_KERNEL(PREFIX##_add, TO_F32, FROM_F32, f32_add)       \
    HALF_KERNEL(PREFIX##_sub, TO_F32, FROM_F32, f32_sub)       \
    HALF_KERNEL(PREFIX##_mul, TO_F32, FROM_F32, f32_mul)       \
    HALF_KERNEL(PREFIX##_div, TO_F32, FROM_F32, f32_div)       \
    HALF_KERNEL(PREFIX##_min, TO_F32, FROM_F32, f32_min)       \
    HALF_KERNEL(PREFIX##_max, TO_F32, FROM_F32, f32_max)       \
    HALF_KERNEL(PREFIX##_pow, TO_F32, FROM_F32, f32_pow)       \
    HALF_KERNEL(PREFIX##_mod, TO_F32, FROM_F32, f32_mod)       \
    HALF_KERNEL(PREFIX##_fmod, TO_F32, FROM_F32, f32_fmod)
HALF_KERNELS(f16, kiln_cpu_f16_to_f32, kiln_cpu_f32_to_f16)
HALF_KERNELS(bf16, kiln_cpu_bf16_to_f32, kiln_cpu_f32_to_bf16)

/* Signed integers: add/sub/mul in the unsigned type UT wrap instead of
 * overflowing; DIV special-cases 0 and -1 (whose quotient, -x, may not fit). */
#define SIGNED_KERNELS(PREFIX, T, UT)                                                  \
    BINARY_KERNEL(PREFIX##_add, T, (UT)x + (UT)y)                                      \
    BINARY_KERNEL(PREFIX##_sub, T, (UT)x - (UT)y)                                      \
    BINARY_KERNEL(PREFIX##_mul, T, (UT)x * (UT)y)                                      \
    BINARY_KERNEL(PREFIX##_div, T, y == 0 ? 0 : y == -1 ? (T)(UT)(0u - (UT)x) : x / y) \
    BINARY_KERNEL(PREFIX##_min, T, x < y ? x : y)                                      \
    BINARY_KERNEL(PREFIX##_max, T, x > y ? x : y)                                      \
    BINARY_KERNEL(PREFIX##_fmod, T, (y == 0 || y == -1) ? 0 : x % y)                   \
    BINARY_KERNEL(PREFIX##_mod, T, (y == 0 || y == -1) ? 0 : (x % y != 0 && ((x % y < 0) != (y < 0))) ? x % y + y : x % y)
/* For int8, UT = uint8_t still promotes to int, whose range holds every
 * int8/uint8 sum and product, so nothing overflows before the wrap. */
SIGNED_KERNELS(i8, int8_t, uint8_t)
SIGNED_KERNELS(i32, int32_t, uint32_t)
SIGNED_KERNELS(i64, int64_t, uint64_t)

BINARY_KERNEL(u8_add, uint8_t, x + y)
BINARY_KERNEL(u8_sub, uint8_t, x - y)
BINARY_KERNEL(u8_mul, uint8_t, x * y)
BINARY_KERNEL(u8_div, uint8_t, y == 0 ? 0 : x / y)
BINARY_KERNEL(u8_min, uint8_t, x < y ? x : y)
BINARY_KERNEL(u8_max, uint8_t, x > y ? x : y)
BINARY_KERNEL(u8_mod, uint8_t, y == 0 ? 0 : x % y)

/* bool: any nonzero byte is true; results are 0 or 1. */
BINARY_KERNEL(b_or,  uint8_t, (x != 0) | (y != 0))
BINARY_KERNEL(b_xor, uint8_t, (x != 0) ^ (y != 0))
BINARY_KERNEL(b_and, uint8_t, (x != 0) & (y != 0))
static void b_div(const void *a_, int64_t sa, const void *b_, int64_t sb, void *o_, int64_t n) {
    const uint8_t *a = (const uint8_t *)a_;
    uint8_t *o = (uint8_t *)o_;
    for (int64_t i = 0; i < n; i++) o[i] = a[sa ? i : 0] != 0;
}

static const binary_kernel binary_kernels[KILN_DTYPE_COUNT][KILN_BINARY_OP_COUNT] = {
    /*                 ADD      SUB      MUL      DIV      MIN      MAX      POW      MOD      FMOD */
    [KILN_FLOAT32]  = {f32_add, f32_sub, f32_mul, f32_div, f32_min, f32_max, f32_pow, f32_mod, f32_fmod},
    [KILN_FLOAT16]  = {f16_add, f16_sub, f16_mul, f16_div, f16_min, f16_max, f16_pow, f16_mod, f16_fmod},
    [KILN_BFLOAT16] = {bf16_add, bf16_sub, bf16_mul, bf16_div, bf16_min, bf16_max, bf16_pow, bf16_mod, bf16_fmod},
    [KILN_INT8]     = {i8_add, i8_sub, i8_mul, i8_div, i8_min, i8_max, NULL, i8_mod, i8_fmod},
    [KILN_UINT8]    = {u8_add, u8_sub, u8_mul, u8_div, u8_min, u8_max, NULL, u8_mod, u8_mod},
    [KILN_INT32]    = {i32_add, i32_sub, i32_mul, i32_div, i32_min, i32_max, NULL, i32_mod, i32_fmod},
    [KILN_INT64]    = {i64_add, i64_sub, i64_mul, i64_div, i64_min, i64_max, NULL, i64_mod, i64_fmod},
    [KILN_BOOL]     = {b_or, b_xor, b_and, b_div, b_and, b_or, NULL, NULL, NULL},
};

/* The broadcast as at most KILN_MAX_RANK merged axes with element strides. */
typedef struct broadcast_plan {
    int     rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
} broadcast_plan;

/* Contiguous strides of t, aligned to the right of an output of rank r, with
 * 0 for broadcast (size-1) axes and for the axes t lacks. */
static kiln_status broadcast_strides(const kiln_tensor_desc *t, const kiln_tensor_desc *out, const char *which,
                                     int64_t *strides) {
    int r = out->rank, shift = r - t->rank;
    if (t->rank < 0 || shift < 0)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: binary: operand %s has rank %d, output %d",
                          which, (int)t->rank, r);
    int64_t stride = 1;
    for (int i = r - 1; i >= 0; i--) {
        int64_t d = i >= shift ? t->dims[i - shift] : 1;
        if (d != 1 && d != out->dims[i])
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                              "cpu backend: binary: operand %s axis %d has size %lld, output %lld",
                              which, i - shift, (long long)d, (long long)out->dims[i]);
        strides[i] = d == 1 ? 0 : stride;
        stride *= d;
    }
    return KILN_OK;
}

static kiln_status plan_broadcast(const kiln_tensor_desc *a, const kiln_tensor_desc *b, const kiln_tensor_desc *out,
                                  broadcast_plan *p) {
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    if (out->rank < 0 || out->rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: binary: output rank %d", (int)out->rank);
    kiln_status st = broadcast_strides(a, out, "a", sa);
    if (st == KILN_OK) st = broadcast_strides(b, out, "b", sb);
    if (st != KILN_OK) return st;
    p->rank = 0;
    for (int i = 0; i < out->rank; i++) {
        int64_t d = out->dims[i];
        if (d == 1) continue;                      /* walks nothing */
        int k = p->rank - 1;
        if (k >= 0 && p->sa[k] == sa[i] * d && p->sb[k] == sb[i] * d) {
            p->dims[k] *= d;                       /* both continue the previous axis */
            p->sa[k] = sa[i];
            p->sb[k] = sb[i];
        } else {
            p->dims[++k] = d;
            p->sa[k] = sa[i];
            p->sb[k] = sb[i];
            p->rank++;
        }
    }
    if (p->rank == 0) {                            /* a single element */
        p->rank = 1;
        p->dims[0] = 1;
        p->sa[0] = p->sb[0] = 0;
    }
    return KILN_OK;
}

bool kiln_cpu_binary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    return l->subop >= 0 && l->subop < KILN_BINARY_OP_COUNT && (unsigned)dt < KILN_DTYPE_COUNT &&
           l->inputs[0].dtype == dt && l->inputs[1].dtype == dt && binary_kernels[dt][l->subop] != NULL;
}

kiln_status kiln_cpu_binary(const kiln_layer_launch *l) {
    const kiln_tensor_desc *a = &l->inputs[0], *b = &l->inputs[1], *out = &l->outputs[0];
    kiln_dtype dt = out->dtype;
    if (l->subop < 0 || l->subop >= KILN_BINARY_OP_COUNT)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: binary op %d is not supported", (int)l->subop);
    const char *opname = kiln_binary_op_name(l->subop);
    if ((unsigned)dt >= KILN_DTYPE_COUNT)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: binary %s on dtype %d is not supported", opname, (int)dt);
    if (a->dtype != dt || b->dtype != dt)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: binary %s with operands %s and %s into %s is not supported",
                          opname, kiln_dtype_name(a->dtype) ? kiln_dtype_name(a->dtype) : "unknown",
                          kiln_dtype_name(b->dtype) ? kiln_dtype_name(b->dtype) : "unknown", kiln_dtype_name(dt));
    binary_kernel kernel = binary_kernels[dt][l->subop];

    broadcast_plan p = {.rank = 0};
    kiln_status st = plan_broadcast(a, b, out, &p);
    if (st != KILN_OK) return st;
    if (kiln_cpu_numel(out) == 0) return KILN_OK;

    size_t es = kiln_dtype_size(dt);
    int inner = p.rank - 1;
    int64_t n = p.dims[inner], outer = 1;
    for (int i = 0; i < inner; i++) outer *= p.dims[i];
    const char *pa = (const char *)a->data, *pb = (const char *)b->data;
    char *po = (char *)out->data;
    int64_t idx[KILN_MAX_RANK] = {0}, oa = 0, ob = 0;
    for (int64_t t = 0; t < outer; t++) {
        kernel(pa + (size_t)oa * es, p.sa[inner], pb + (size_t)ob * es, p.sb[inner], po + (size_t)(t * n) * es, n);
        /* Advance the odometer over the outer axes. */
        for (int ax = inner - 1; ax >= 0; ax--) {
            oa += p.sa[ax];
            ob += p.sb[ax];
            if (++idx[ax] < p.dims[ax]) break;
            oa -= p.sa[ax] * p.dims[ax];
            ob -= p.sb[ax] * p.dims[ax];
            idx[ax] = 0;
        }
    }
    return KILN_OK;
}
