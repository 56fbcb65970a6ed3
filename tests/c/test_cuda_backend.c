/* test_cuda_backend.c — every op of the CUDA backend against the CPU backend.
 *
 * Modelled on ggml's tests/test-backend-ops.cpp: random inputs, the same
 * launch on both backends, the results compared with a tolerance that fits
 * the op (bit-exact where both sides round the same IEEE operation, a few
 * units in the last place for exp/tanh, a norm-relative bound for matmul,
 * whose summation order differs).  Outputs are poisoned before each run so
 * that an element the kernel forgot to write cannot pass.
 *
 * Without a GPU (no driver, no device, module not built) the test prints
 * "skipped: no CUDA device" and passes.  KILN_CUDA_BACKEND points the loader
 * at the module built next to this test unless the caller set it.  With
 * KILN_CUDA_BENCH=1 it also times the embedding gather and a few large
 * elementwise ops (effective GB/s: bytes read + written) and a bf16 GEMM. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ops/op_list.h"
#include "ops/op_table.h"
#include "test.h"
#include "backend/backend.h"
#include "core/dtype.h"

static const kiln_backend_iface *cpu, *gpu;
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* The default stream, and CUDA's per-thread default stream (the documented
 * handle value cudaStreamPerThread), so both stream paths are exercised
 * without linking the CUDA runtime here. */
#define STREAM_DEFAULT    ((void *)0)
#define STREAM_PER_THREAD ((void *)0x2)

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}
/* Uniform in [lo, hi). */
static double rng_uniform(double lo, double hi) { return lo + (hi - lo) * (double)(rng_next() >> 11) * 0x1p-53; }

/* ---- buffers living on both backends -------------------------------------- */

typedef struct buf {
    kiln_tensor_desc host;    /* host memory: the CPU backend's tensor */
    kiln_tensor_desc dev;     /* device memory: the CUDA backend's tensor */
    void  *dev_base;          /* allocation (dev.data may be offset from it) */
    size_t bytes;
    int64_t n;
} buf;

static void desc_init(kiln_tensor_desc *d, kiln_dtype dt, int32_t rank, const int64_t *dims, kiln_device_type type) {
    memset(d, 0, sizeof *d);
    d->dtype = dt;
    d->rank = rank;
    int64_t s = 1;
    for (int32_t i = rank - 1; i >= 0; i--) {
        d->dims[i] = dims[i];
        d->strides[i] = s;
        s *= dims[i];
    }
    d->device.type = type;
}

/* A tensor on both sides; `offset` elements of slack before the device data
 * make its pointer unaligned (to test the kernels' scalar paths). */
static int buf_init_off(buf *b, kiln_dtype dt, int32_t rank, const int64_t *dims, int offset) {
    memset(b, 0, sizeof *b);
    desc_init(&b->host, dt, rank, dims, KILN_DEVICE_CPU);
    desc_init(&b->dev, dt, rank, dims, KILN_DEVICE_CUDA);
    b->n = 1;
    for (int32_t i = 0; i < rank; i++) b->n *= dims[i];
    size_t es = kiln_dtype_size(dt);
    b->bytes = (size_t)b->n * es;
    if (cpu->alloc(0, b->bytes + 64, &b->host.data) != KILN_OK) return 0;
    if (gpu->alloc(0, b->bytes + (size_t)offset * es + 64, &b->dev_base) != KILN_OK) return 0;
    b->dev.data = (char *)b->dev_base + (size_t)offset * es;
    return 1;
}
static int buf_init(buf *b, kiln_dtype dt, int32_t rank, const int64_t *dims) {
    return buf_init_off(b, dt, rank, dims, 0);
}

static void buf_free(buf *b) {
    if (b->host.data) cpu->free(0, b->host.data);
    if (b->dev_base) gpu->free(0, b->dev_base);
    memset(b, 0, sizeof *b);
}

static kiln_status buf_upload(buf *b) {
    return gpu->copy(0, b->dev.data, b->host.data, b->bytes, KILN_COPY_HOST_TO_DEVICE, NULL);
}

/* Fill the output with a byte pattern on both sides (0xA5: a NaN-free but
 * implausible value in every dtype). */
static kiln_status buf_poison(buf *b) {
    memset(b->host.data, 0xA5, b->bytes);
    return buf_upload(b);
}

/* ---- random data ------------------------------------------------------------ */

static void store_f(kiln_dtype dt, void *p, int64_t i, double v) {
    switch (dt) {
    case KILN_FLOAT32:  ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT16:  ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v); break;
    default: break;
    }
}

static double load_f(kiln_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case KILN_FLOAT32:  return ((const float *)p)[i];
    case KILN_FLOAT16:  return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    case KILN_INT8:     return ((const int8_t *)p)[i];
    case KILN_UINT8:    return ((const uint8_t *)p)[i];
    case KILN_INT32:    return ((const int32_t *)p)[i];
    case KILN_INT64:    return (double)((const int64_t *)p)[i];
    default:            return ((const uint8_t *)p)[i];
    }
}

static void store_i(kiln_dtype dt, void *p, int64_t i, int64_t v) {
    switch (dt) {
    case KILN_INT8:  ((int8_t *)p)[i] = (int8_t)v; break;
    case KILN_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case KILN_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case KILN_INT64: ((int64_t *)p)[i] = v; break;
    case KILN_BOOL:  ((uint8_t *)p)[i] = (uint8_t)v; break;
    default:         store_f(dt, p, i, (double)v); break;
    }
}

static int64_t int_min(kiln_dtype dt) {
    return dt == KILN_INT8 ? INT8_MIN : dt == KILN_INT32 ? INT32_MIN : dt == KILN_INT64 ? INT64_MIN : 0;
}

/* Floats uniform in [lo, hi); integers over their whole range with the
 * awkward values (0, -1, 1, MIN) planted often; bools 0/1 with the odd
 * other nonzero byte. */
static void fill_random(buf *b, double lo, double hi) {
    kiln_dtype dt = b->host.dtype;
    void *p = b->host.data;
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t r = rng_next();
        if (kiln_dtype_is_float(dt)) {
            store_f(dt, p, i, rng_uniform(lo, hi));
        } else if (dt == KILN_BOOL) {
            store_i(dt, p, i, (r & 7) == 0 ? (int64_t)((r >> 8) % 255 + 1) : (int64_t)((r >> 8) & 1));
        } else {
            int64_t v = (int64_t)r;
            switch ((r >> 60) & 15) {
            case 0: v = 0; break;
            case 1: v = -1; break;
            case 2: v = 1; break;
            case 3: v = int_min(dt); break;
            case 4: v = (int64_t)(r % 7) - 3; break;
            default: break;
            }
            store_i(dt, p, i, v);
        }
    }
}

/* ---- comparing ---------------------------------------------------------------- */

/* For results of exp/tanh, which libm and CUDA compute to a few ulps:
 * relative error a few units of the dtype's last place, and an absolute
 * floor for results that cancel towards zero (gelu of negative x). */
static double tol_rel(kiln_dtype dt) { return dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 2e-3 : 1.6e-2; }
static double tol_abs(kiln_dtype dt) { return dt == KILN_FLOAT32 ? 1e-6 : dt == KILN_FLOAT16 ? 1e-4 : 1e-3; }

/* Element-wise: rtol = atol = 0 asks for exact equality (floats: equal
 * values, or both NaN).  Returns the number of mismatches; prints a few. */
static int64_t compare(const char *what, kiln_dtype dt, const void *got, const void *want, int64_t n, double rtol,
                       double atol, const uint8_t *mask) {
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        int ok;
        if (!kiln_dtype_is_float(dt)) {
            size_t es = kiln_dtype_size(dt);
            ok = memcmp((const char *)got + (size_t)i * es, (const char *)want + (size_t)i * es, es) == 0;
        } else {
            double g = load_f(dt, got, i), w = load_f(dt, want, i);
            if (isnan(w) || isnan(g)) ok = isnan(w) && isnan(g);
            else if (isinf(w) || isinf(g)) ok = g == w;
            else ok = fabs(g - w) <= atol + rtol * fabs(w);
        }
        if (!ok) {
            if (bad < 5) {
                fprintf(stderr, "  %s: element %lld: cuda %.9g, cpu %.9g\n", what, (long long)i,
                        load_f(dt, got, i), load_f(dt, want, i));
            }
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %lld of %lld elements differ\n", what, (long long)bad, (long long)n);
    return bad;
}

/* ||got - want|| / ||want||, NaN if either has a NaN. */
static double rel_error(kiln_dtype dt, const void *got, const void *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = load_f(dt, got, i), w = load_f(dt, want, i);
        num += (g - w) * (g - w);
        den += w * w;
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ---- running one launch on both backends --------------------------------------- */

/* Run op on both backends: inputs are uploaded, the output poisoned, and the
 * GPU result copied into *got (malloc'd, out->bytes).  Returns 1 when both ran. */
static int run_both_attrs(const char *what, kiln_op op, int32_t subop, int64_t axis, const int64_t *attrs,
                          int32_t attr_count, buf *in, int32_t nin, buf *out, void *stream, void **got) {
    *got = NULL;
    kiln_tensor_desc hin[2], din[2];
    for (int32_t i = 0; i < nin; i++) {
        if (buf_upload(&in[i]) != KILN_OK) return 0;
        hin[i] = in[i].host;
        din[i] = in[i].dev;
    }
    if (buf_poison(out) != KILN_OK) return 0;
    kiln_layer_launch lc = {.op = (uint8_t)op, .subop = subop, .axis = axis, .attrs = attrs,
                            .attr_count = attr_count, .input_count = nin, .output_count = 1, .inputs = hin,
                            .outputs = &out->host};
    kiln_layer_launch lg = lc;
    lg.inputs = din;
    lg.outputs = &out->dev;
    kiln_status sc = cpu->run_layer(0, &lc, NULL);
    if (sc != KILN_OK) {
        fprintf(stderr, "  %s: cpu: %s\n", what, kiln_last_error());
        return 0;
    }
    kiln_status sg = gpu->run_layer(0, &lg, stream);
    if (sg == KILN_OK) sg = gpu->synchronize(0, stream);
    if (sg != KILN_OK) {
        fprintf(stderr, "  %s: cuda: %s\n", what, kiln_last_error());
        return 0;
    }
    *got = malloc(out->bytes + 1);
    if (!*got) return 0;
    if (gpu->copy(0, *got, out->dev.data, out->bytes, KILN_COPY_DEVICE_TO_HOST, NULL) != KILN_OK) {
        free(*got);
        *got = NULL;
        return 0;
    }
    return 1;
}

static int run_both(const char *what, kiln_op op, int32_t subop, int64_t axis, buf *in, int32_t nin, buf *out,
                    void *stream, void **got) {
    return run_both_attrs(what, op, subop, axis, NULL, 0, in, nin, out, stream, got);
}

static const kiln_dtype all_dtypes[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_INT8,
                                        KILN_UINT8,   KILN_INT32,   KILN_INT64,    KILN_BOOL};
static const kiln_dtype float_dtypes[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};

/* ---- basic table functions ------------------------------------------------------- */

static void test_table(void) {
    CHECK(gpu->api_version == KILN_BACKEND_API_VERSION);
    CHECK(strcmp(gpu->name, "cuda") == 0);
    CHECK(gpu->device_type == KILN_DEVICE_CUDA);
    CHECK(gpu->device_count() >= 1);
    CHECK_OK(gpu->set_device(0));
    CHECK_FAILS(gpu->set_device(4096), KILN_ERROR_BACKEND, "cuda: cudaSetDevice");

    void *p = NULL;
    CHECK_OK(gpu->alloc(0, 0, &p));
    CHECK(p == NULL);
    CHECK_OK(gpu->alloc(0, 1000, &p));
    REQUIRE(p != NULL);
    CHECK(((uintptr_t)p & 255) == 0);
    gpu->free(0, p);
    CHECK_FAILS(gpu->alloc(0, (size_t)1 << 60, &p), KILN_ERROR_BACKEND, "cuda: cudaMalloc");
    CHECK(p == NULL);

    CHECK_OK(gpu->alloc(0, 1000, &p));
    void *q = NULL;
    CHECK_OK(gpu->alloc(0, 1000, &q));
    uint8_t src[1000], dst[1000];
    for (int i = 0; i < 1000; i++) src[i] = (uint8_t)(i * 7 + 3);
    CHECK_OK(gpu->copy(0, p, src, 1000, KILN_COPY_HOST_TO_DEVICE, NULL));
    CHECK_OK(gpu->copy(0, q, p, 1000, KILN_COPY_DEVICE_TO_DEVICE, STREAM_PER_THREAD));
    CHECK_OK(gpu->synchronize(0, STREAM_PER_THREAD));
    memset(dst, 0, sizeof dst);
    CHECK_OK(gpu->copy(0, dst, q, 1000, KILN_COPY_DEVICE_TO_HOST, NULL));
    CHECK(memcmp(src, dst, sizeof src) == 0);
    CHECK_FAILS(gpu->copy(0, dst, q, 1000, (kiln_copy_kind)7, NULL), KILN_ERROR_INVALID_ARGUMENT, "copy kind");
    gpu->free(0, p);
    gpu->free(0, q);
    gpu->free(0, NULL);
}

/* ---- CAST -------------------------------------------------------------------------- */

/* Floats that probe the rules: NaN, infinities, signed zeros, halves, the
 * bounds of every integer type and beyond. */
static const double cast_specials[] = {
    NAN, INFINITY, -INFINITY, 0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 127.0, 127.9, 128.0, -128.0, -128.9, -129.0,
    255.0, 255.5, 256.0, -1.0, -0.9, 65504.0, 65520.0, 1e10, -1e10, 2147483520.0, 2147483648.0, -2147483648.0,
    -2147483904.0, 9.2233715e18, 9.3e18, -9.2233715e18, -9.3e18, 3.0e38, 1e-40, 6e-8, 3e-8,
};

static void test_cast_case(kiln_dtype from, kiln_dtype to, int64_t n, int offset) {
    char what[96];
    snprintf(what, sizeof what, "cast %s -> %s (n=%lld, offset %d)", kiln_dtype_name(from), kiln_dtype_name(to),
             (long long)n, offset);
    buf in, out;
    int64_t dims[1] = {n};
    REQUIRE(buf_init_off(&in, from, 1, dims, offset) && buf_init_off(&out, to, 1, dims, offset));
    fill_random(&in, -300.0, 300.0);
    if (kiln_dtype_is_float(from)) {
        int64_t specials = (int64_t)(sizeof cast_specials / sizeof cast_specials[0]);
        for (int64_t i = 0; i < specials && i < n; i++) store_f(from, in.host.data, i * 7 % n, cast_specials[i]);
    }
    void *got;
    if (run_both(what, KILN_OP_CAST, 0, 0, &in, 1, &out, STREAM_DEFAULT, &got)) {
        CHECK(compare(what, to, got, out.host.data, n, 0, 0, NULL) == 0);
        free(got);
    } else {
        CHECK(!"cast ran on both backends");
    }
    buf_free(&in);
    buf_free(&out);
}

static void test_cast(void) {
    for (size_t i = 0; i < 8; i++)
        for (size_t j = 0; j < 8; j++) test_cast_case(all_dtypes[i], all_dtypes[j], 1000 + (int64_t)(rng_next() % 64), 0);
    /* The vectorized float <-> half paths, large, aligned and not. */
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 3; j++) {
            if (i == j) continue;
            test_cast_case(float_dtypes[i], float_dtypes[j], 1 << 20, 0);
            test_cast_case(float_dtypes[i], float_dtypes[j], (1 << 20) + 5, 1);
        }
    test_cast_case(KILN_INT32, KILN_INT8, 1 << 20, 0);
    test_cast_case(KILN_INT64, KILN_BFLOAT16, 1 << 20, 0);
}

/* ---- BINARY --------------------------------------------------------------------------- */

typedef struct bshape {
    int32_t ra, rb, ro;
    int64_t a[4], b[4], o[4];
} bshape;

static const bshape binary_shapes[] = {
    {1, 1, 1, {1000}, {1000}, {1000}},                       /* same shape: flat, vectorized */
    {2, 1, 2, {64, 300}, {300}, {64, 300}},                  /* bias row */
    {3, 1, 3, {3, 16, 256}, {256}, {3, 16, 256}},            /* bias row, vector per thread */
    {3, 3, 3, {3, 1, 64}, {1, 16, 1}, {3, 16, 64}},          /* row x column, vector per thread */
    {2, 2, 2, {64, 300}, {64, 1}, {64, 300}},                /* column */
    {0, 1, 1, {0}, {517}, {517}},                            /* scalar a */
    {3, 0, 3, {3, 5, 7}, {0}, {3, 5, 7}},                    /* scalar b */
    {3, 2, 3, {4, 1, 33}, {5, 1}, {4, 5, 33}},               /* both broadcast */
    {4, 4, 4, {2, 1, 3, 1}, {1, 4, 1, 5}, {2, 4, 3, 5}},     /* alternating */
    {2, 2, 2, {1, 1}, {1, 1}, {1, 1}},                       /* one element */
};

static void test_binary_case(kiln_dtype dt, int op, const bshape *s, int offset, void *stream) {
    char what[128];
    snprintf(what, sizeof what, "binary %s %s rank %d x %d -> [%lld..] (offset %d)", kiln_binary_op_list_name(op),
             kiln_dtype_name(dt),
             (int)s->ra, (int)s->rb, (long long)s->o[0], offset);
    buf in[2], out;
    REQUIRE(buf_init_off(&in[0], dt, s->ra, s->a, offset) && buf_init(&in[1], dt, s->rb, s->b) &&
            buf_init_off(&out, dt, s->ro, s->o, offset));
    fill_random(&in[0], -10.0, 10.0);
    fill_random(&in[1], -10.0, 10.0);
    void *got;
    if (run_both(what, KILN_OP_BINARY, op, 0, in, 2, &out, stream, &got)) {
        /* IEEE add/sub/mul/div (and fmod) round the same on both sides:
         * exact; powf differs by ulps between libm and CUDA, which a half
         * type may round to its neighbour. */
        double rtol = op != KILN_BINARY_POW ? 0 : dt == KILN_FLOAT32 ? 1e-6 : 1e-2;
        CHECK(compare(what, dt, got, out.host.data, out.n, rtol, 0, NULL) == 0);
        free(got);
    } else {
        CHECK(!"binary ran on both backends");
    }
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

static void test_binary(void) {
    for (size_t d = 0; d < 8; d++)
        for (int op = 0; op < KILN_BINARY_OP_COUNT; op++)
            for (size_t s = 0; s < sizeof binary_shapes / sizeof binary_shapes[0] &&
                               kiln_binary_op_accepts(op, all_dtypes[d]); s++)
                test_binary_case(all_dtypes[d], op, &binary_shapes[s], 0, (s & 1) ? STREAM_PER_THREAD : NULL);
    /* Unaligned operands take the scalar path. */
    for (size_t d = 0; d < 8; d++) test_binary_case(all_dtypes[d], KILN_BINARY_ADD, &binary_shapes[0], 1, NULL);
    /* Large: a million elements, flat and broadcast. */
    bshape big_flat = {1, 1, 1, {1 << 20}, {1 << 20}, {1 << 20}};
    bshape big_bcast = {2, 2, 2, {1024, 1024}, {1024, 1}, {1024, 1024}};
    bshape big_odd = {3, 1, 3, {3, 1, 349525}, {349525}, {3, 3, 349525}};
    for (size_t d = 0; d < 8; d++) {
        test_binary_case(all_dtypes[d], KILN_BINARY_MUL, &big_flat, 0, NULL);
        test_binary_case(all_dtypes[d], KILN_BINARY_SUB, &big_bcast, 0, NULL);
    }
    test_binary_case(KILN_FLOAT16, KILN_BINARY_DIV, &big_odd, 0, NULL);
    test_binary_case(KILN_FLOAT32, KILN_BINARY_MAX, &big_flat, 3, NULL);
}

/* ---- UNARY ------------------------------------------------------------------------------ */

static void test_unary_case(kiln_dtype dt, int op, int64_t n, int offset) {
    char what[96];
    snprintf(what, sizeof what, "unary %s %s (n=%lld, offset %d)", kiln_unary_op_list_name(op), kiln_dtype_name(dt), (long long)n,
             offset);
    buf in, out;
    int64_t dims[1] = {n};
    REQUIRE(buf_init_off(&in, dt, 1, dims, offset) && buf_init_off(&out, dt, 1, dims, offset));
    fill_random(&in, -8.0, 8.0);
    void *got;
    if (run_both(what, KILN_OP_UNARY, op, 0, &in, 1, &out, STREAM_DEFAULT, &got)) {
        /* relu, neg and sqrt are exact in IEEE; exp and tanh differ by ulps
         * between libm and CUDA, which f16/bf16 rounding may turn into one
         * unit of theirs. */
        int exact = op == KILN_UNARY_RELU || op == KILN_UNARY_NEG || op == KILN_UNARY_SQRT || op == KILN_UNARY_ABS ||
                    op == KILN_UNARY_FLOOR || op == KILN_UNARY_CEIL || op == KILN_UNARY_SIGN;
        double rtol = exact ? 0 : tol_rel(dt), atol = exact ? 0 : tol_abs(dt);
        CHECK(compare(what, dt, got, out.host.data, n, rtol, atol, NULL) == 0);
        free(got);
    } else {
        CHECK(!"unary ran on both backends");
    }
    buf_free(&in);
    buf_free(&out);
}

static void test_unary(void) {
    for (size_t d = 0; d < 3; d++)
        for (int op = 0; op < KILN_UNARY_OP_COUNT; op++) {
            test_unary_case(float_dtypes[d], op, 4099, 0);
            test_unary_case(float_dtypes[d], op, 1001, 1);
        }
    test_unary_case(KILN_INT8, KILN_UNARY_NEG, 4099, 0);
    test_unary_case(KILN_INT32, KILN_UNARY_NEG, 4099, 1);
    test_unary_case(KILN_INT64, KILN_UNARY_NEG, 4099, 0);
    test_unary_case(KILN_FLOAT16, KILN_UNARY_GELU, 1 << 20, 0);
    test_unary_case(KILN_BFLOAT16, KILN_UNARY_SILU, 1 << 20, 0);
    test_unary_case(KILN_FLOAT32, KILN_UNARY_EXP, 1 << 20, 0);

    /* Integer ops other than NEG, and uint8/bool, are refused by name. */
    buf in, out;
    int64_t dims[1] = {16};
    REQUIRE(buf_init(&in, KILN_INT32, 1, dims) && buf_init(&out, KILN_INT32, 1, dims));
    kiln_layer_launch l = {.op = KILN_OP_UNARY, .subop = KILN_UNARY_RELU, .input_count = 1, .output_count = 1,
                           .inputs = &in.dev, .outputs = &out.dev};
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "relu does not support int32");
    in.dev.dtype = out.dev.dtype = KILN_BOOL;
    l.subop = KILN_UNARY_NEG;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "neg does not support bool");
    buf_free(&in);
    buf_free(&out);
}

/* ---- GATHER ------------------------------------------------------------------------------ */

/* Gather with `bad` indices out of range: the CPU runs with the bad ones
 * replaced by 0 (it would refuse them); the GPU with the originals, whose
 * rows must be zeros, all other rows equal to the CPU's. */
static void test_gather_case(kiln_dtype dt, kiln_dtype it, int32_t rank, const int64_t *dims, int64_t axis,
                             int32_t irank, const int64_t *idims, int bad, int offset) {
    char what[128];
    snprintf(what, sizeof what, "gather %s[rank %d] axis %lld, %s indices%s (offset %d)", kiln_dtype_name(dt),
             (int)rank, (long long)axis, kiln_dtype_name(it), bad ? ", some out of range" : "", offset);
    int64_t odims[KILN_MAX_RANK];
    int32_t orank = 0;
    for (int32_t i = 0; i < axis; i++) odims[orank++] = dims[i];
    for (int32_t i = 0; i < irank; i++) odims[orank++] = idims[i];
    for (int32_t i = (int32_t)axis + 1; i < rank; i++) odims[orank++] = dims[i];

    buf in[2], out;
    REQUIRE(buf_init_off(&in[0], dt, rank, dims, offset) && buf_init(&in[1], it, irank, idims) &&
            buf_init_off(&out, dt, orank, odims, offset));
    fill_random(&in[0], -100.0, 100.0);
    int64_t limit = dims[axis], nidx = in[1].n;
    uint8_t *row_bad = calloc((size_t)nidx + 1, 1);
    REQUIRE(row_bad);
    for (int64_t j = 0; j < nidx; j++) {
        int64_t v = (int64_t)(rng_next() % (uint64_t)limit);
        if (bad && rng_next() % 4 == 0) {
            static const int64_t wild[] = {-1, -2, 0, 1, INT32_MAX, INT32_MIN};
            int k = (int)(rng_next() % 6);
            v = k == 2 ? limit : k == 3 ? limit + 100 : wild[k];
            row_bad[j] = 1;
        }
        store_i(it, in[1].host.data, j, v);
    }
    /* Upload the real indices for the GPU, then sanitize the host copy. */
    kiln_tensor_desc hin[2] = {in[0].host, in[1].host}, din[2] = {in[0].dev, in[1].dev};
    int ok = buf_upload(&in[0]) == KILN_OK && buf_upload(&in[1]) == KILN_OK && buf_poison(&out) == KILN_OK;
    for (int64_t j = 0; j < nidx; j++)
        if (row_bad[j]) store_i(it, in[1].host.data, j, 0);
    kiln_layer_launch lc = {.op = KILN_OP_GATHER, .axis = axis, .input_count = 2, .output_count = 1,
                            .inputs = hin, .outputs = &out.host};
    kiln_layer_launch lg = lc;
    lg.inputs = din;
    lg.outputs = &out.dev;
    void *got = malloc(out.bytes + 1);
    ok = ok && got && cpu->run_layer(0, &lc, NULL) == KILN_OK && gpu->run_layer(0, &lg, NULL) == KILN_OK &&
         gpu->synchronize(0, NULL) == KILN_OK &&
         gpu->copy(0, got, out.dev.data, out.bytes, KILN_COPY_DEVICE_TO_HOST, NULL) == KILN_OK;
    if (!ok) fprintf(stderr, "  %s: %s\n", what, kiln_last_error());
    CHECK(ok);
    if (ok) {
        /* Output element e is in index slot (e / inner) % nidx. */
        int64_t inner = 1;
        for (int32_t i = (int32_t)axis + 1; i < rank; i++) inner *= dims[i];
        uint8_t *mask = calloc((size_t)out.n + 1, 1);
        REQUIRE(mask);
        int64_t nonzero_bad = 0;
        size_t es = kiln_dtype_size(dt);
        static const uint8_t zeros[8];
        for (int64_t e = 0; e < out.n; e++) {
            mask[e] = !row_bad[(e / inner) % nidx];
            if (!mask[e] && memcmp((const char *)got + (size_t)e * es, zeros, es) != 0) nonzero_bad++;
        }
        CHECK(compare(what, dt, got, out.host.data, out.n, 0, 0, mask) == 0);
        CHECK(nonzero_bad == 0);
        if (nonzero_bad) fprintf(stderr, "  %s: %lld elements of bad rows not zero\n", what, (long long)nonzero_bad);
        free(mask);
    }
    free(got);
    free(row_bad);
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

static void test_gather(void) {
    const kiln_dtype its[2] = {KILN_INT32, KILN_INT64};
    for (int k = 0; k < 2; k++) {
        kiln_dtype it = its[k];
        /* Embedding: rows of 256 halves (512 bytes: 16-byte units). */
        int64_t emb[2] = {1000, 256}, tok[2] = {8, 512};
        test_gather_case(KILN_FLOAT16, it, 2, emb, 0, 2, tok, 0, 0);
        test_gather_case(KILN_FLOAT16, it, 2, emb, 0, 2, tok, 1, 0);
        /* Unaligned rows: 12 bytes (4-byte units), odd int8 rows (bytes). */
        int64_t d3[2] = {50, 3}, d5[2] = {70, 5}, i1[1] = {300};
        test_gather_case(KILN_FLOAT32, it, 2, d3, 0, 1, i1, 0, 0);
        test_gather_case(KILN_INT8, it, 2, d5, 0, 1, i1, 1, 0);
        test_gather_case(KILN_BFLOAT16, it, 2, emb, 0, 1, i1, 0, 1);
        /* Inner and last axes; rank-0 indices. */
        int64_t d4[3] = {6, 40, 9}, i2[2] = {5, 7};
        test_gather_case(KILN_INT64, it, 3, d4, 1, 2, i2, 0, 0);
        test_gather_case(KILN_FLOAT32, it, 3, d4, 2, 2, i2, 1, 0);
        test_gather_case(KILN_BOOL, it, 3, d4, 1, 0, i2, 0, 0);
        test_gather_case(KILN_UINT8, it, 3, d4, 0, 1, i1, 1, 0);
        /* Large: a million-element output, and a long-row embedding. */
        int64_t big[2] = {32000, 64}, bigi[1] = {16384};
        test_gather_case(KILN_FLOAT32, it, 2, big, 0, 1, bigi, 0, 0);
        int64_t wide[2] = {512, 4096}, widei[1] = {300};
        test_gather_case(KILN_BFLOAT16, it, 2, wide, 0, 1, widei, 1, 0);
    }

    buf in[2], out;
    int64_t dims[1] = {4};
    REQUIRE(buf_init(&in[0], KILN_FLOAT32, 1, dims) && buf_init(&in[1], KILN_FLOAT32, 1, dims) &&
            buf_init(&out, KILN_FLOAT32, 1, dims));
    kiln_tensor_desc din[2] = {in[0].dev, in[1].dev};
    kiln_layer_launch l = {.op = KILN_OP_GATHER, .input_count = 2, .output_count = 1, .inputs = din,
                           .outputs = &out.dev};
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "gather indices does not support float32");
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

/* ---- SCATTER_ND, SCATTER_ELEMENTS ------------------------------------------------------------ */

/* Data and updates whose sums and products are exact in every dtype and
 * order (small integers; ±0.5, ±1, ±2 for mul), so CUDA's atomics, which
 * combine duplicates in any order, must match the CPU bit for bit; integers
 * over their whole range (wrapping add and mul do not depend on order). */
static void scatter_fill(buf *b, int reduction) {
    static const double mul_values[6] = {-2, -1, -0.5, 0.5, 1, 2};
    kiln_dtype dt = b->host.dtype;
    if (!kiln_dtype_is_float(dt)) {
        fill_random(b, 0, 0);
        return;
    }
    for (int64_t i = 0; i < b->n; i++) {
        uint64_t r = rng_next();
        store_f(dt, b->host.data, i, reduction == KILN_SCATTER_MUL ? mul_values[r % 6] : (double)(r % 17) - 8);
    }
}

/* Run one scatter on both backends (inputs already uploaded; the CPU may
 * get other indices and updates than the GPU: hin vs din) and compare the
 * whole output exactly.  gpu_out: the GPU's output (data's memory when in place). */
static void scatter_compare(const char *what, kiln_op op, int64_t axis, int64_t reduction,
                            const kiln_tensor_desc *hin, const kiln_tensor_desc *din, buf *out,
                            const kiln_tensor_desc *gpu_out) {
    kiln_layer_launch lc = {.op = (uint8_t)op, .axis = axis, .attrs = &reduction, .attr_count = 1, .input_count = 3,
                            .output_count = 1, .inputs = hin, .outputs = &out->host};
    kiln_layer_launch lg = lc;
    lg.inputs = din;
    lg.outputs = gpu_out;
    void *got = malloc(out->bytes + 1);
    int ok = got && buf_poison(out) == KILN_OK && cpu->supports_op(&lc) && gpu->supports_op(&lg);
    if (ok && cpu->run_layer(0, &lc, NULL) != KILN_OK) {
        fprintf(stderr, "  %s: cpu: %s\n", what, kiln_last_error());
        ok = 0;
    }
    if (ok && (gpu->run_layer(0, &lg, STREAM_PER_THREAD) != KILN_OK || gpu->synchronize(0, STREAM_PER_THREAD) != KILN_OK ||
               gpu->copy(0, got, gpu_out->data, out->bytes, KILN_COPY_DEVICE_TO_HOST, NULL) != KILN_OK)) {
        fprintf(stderr, "  %s: cuda: %s\n", what, kiln_last_error());
        ok = 0;
    }
    CHECK(ok);
    if (ok) CHECK(compare(what, out->host.dtype, got, out->host.data, out->n, 0, 0, NULL) == 0);
    free(got);
}

/* scatter_nd of data [a, b, c] with `count` index tuples of k coordinates:
 * distinct for reduction none, else with duplicates; some negative.  With
 * `bad`, a quarter of the tuples have a coordinate out of range: the GPU
 * must skip them, so the CPU runs on the other tuples only.  in_place: the
 * GPU writes into data's memory. */
static void test_scatter_nd_case(kiln_dtype dt, kiln_dtype it, int reduction, const int64_t *dd, int32_t k,
                                 int64_t count, int bad, int in_place) {
    char what[160];
    snprintf(what, sizeof what, "scatter_nd %s [%lld, %lld, %lld], %lld %s indices of %d, reduction %s%s%s",
             kiln_dtype_name(dt), (long long)dd[0], (long long)dd[1], (long long)dd[2], (long long)count,
             kiln_dtype_name(it), (int)k, kiln_scatter_reduction_list_name(reduction), bad ? ", some out of range" : "",
             in_place ? ", in place" : "");
    int64_t idims[2] = {count, k}, udims[KILN_MAX_RANK] = {count}, slice = 1, positions = 1;
    int32_t urank = 1;
    for (int32_t i = k; i < 3; i++) {
        udims[urank++] = dd[i];
        slice *= dd[i];
    }
    for (int32_t i = 0; i < k; i++) positions *= dd[i];
    buf data, ix, upd, cix, cupd, out;
    REQUIRE(buf_init(&data, dt, 3, dd) && buf_init(&ix, it, 2, idims) && buf_init(&upd, dt, urank, udims) &&
            buf_init(&cix, it, 2, idims) && buf_init(&cupd, dt, urank, udims) && buf_init(&out, dt, 3, dd));
    scatter_fill(&data, reduction);
    scatter_fill(&upd, reduction);
    size_t es = kiln_dtype_size(dt);
    int64_t good = 0;
    for (int64_t t = 0; t < count; t++) {
        int64_t flat = reduction == KILN_SCATTER_NONE ? (t * 7919) % positions : (int64_t)(rng_next() % (uint64_t)positions);
        int is_bad = bad && rng_next() % 4 == 0;
        int32_t bad_at = (int32_t)(rng_next() % (uint64_t)k);
        for (int32_t j = k - 1; j >= 0; j--) {
            int64_t c = flat % dd[j];
            flat /= dd[j];
            if (rng_next() & 1) c -= dd[j];
            if (is_bad && j == bad_at) {
                /* Out of range whatever the axis' size (-1000 alone is a
                 * valid negative index into an axis of 2048). */
                static const int64_t wild[] = {INT32_MAX, INT32_MIN};
                int w = (int)(rng_next() % 5);
                c = w == 2 ? -dd[j] - 1000 : w == 3 ? dd[j] : w == 4 ? -dd[j] - 1 : wild[w];
            }
            store_i(it, ix.host.data, t * k + j, c);
            if (!is_bad) store_i(it, cix.host.data, good * k + j, c);
        }
        if (!is_bad) {
            memcpy((char *)cupd.host.data + (size_t)(good * slice) * es, (const char *)upd.host.data + (size_t)(t * slice) * es,
                   (size_t)slice * es);
            good++;
        }
    }
    kiln_tensor_desc hin[3] = {data.host, cix.host, cupd.host}, din[3] = {data.dev, ix.dev, upd.dev};
    hin[1].dims[0] = good;
    hin[2].dims[0] = good;
    CHECK(buf_upload(&data) == KILN_OK && buf_upload(&ix) == KILN_OK && buf_upload(&upd) == KILN_OK);
    kiln_tensor_desc gpu_out = out.dev;
    if (in_place) gpu_out.data = data.dev.data;
    scatter_compare(what, KILN_OP_SCATTER_ND, 0, reduction, hin, din, &out, &gpu_out);
    buf_free(&data); buf_free(&ix); buf_free(&upd); buf_free(&cix); buf_free(&cupd); buf_free(&out);
}

/* scatter_elements of data dd along axis with indices id: distinct along the
 * axis for reduction none, else random; some negative.  With `bad`
 * (reduction add only), a quarter of the indices are out of range: the GPU
 * skips them, the CPU adds 0 at index 0 instead. */
static void test_scatter_elements_case(kiln_dtype dt, kiln_dtype it, int reduction, const int64_t *dd,
                                       const int64_t *id, int32_t axis, int bad) {
    char what[160];
    snprintf(what, sizeof what, "scatter_elements %s [%lld, %lld, %lld] axis %d, %s indices [%lld, %lld, %lld], "
             "reduction %s%s", kiln_dtype_name(dt), (long long)dd[0], (long long)dd[1], (long long)dd[2], (int)axis,
             kiln_dtype_name(it), (long long)id[0], (long long)id[1], (long long)id[2],
             kiln_scatter_reduction_list_name(reduction), bad ? ", some out of range" : "");
    buf data, ix, upd, cix, cupd, out;
    REQUIRE(buf_init(&data, dt, 3, dd) && buf_init(&ix, it, 3, id) && buf_init(&upd, dt, 3, id) &&
            buf_init(&cix, it, 3, id) && buf_init(&cupd, dt, 3, id) && buf_init(&out, dt, 3, dd));
    scatter_fill(&data, reduction);
    scatter_fill(&upd, reduction);
    memcpy(cupd.host.data, upd.host.data, upd.bytes);
    int64_t n = ix.n, len = dd[axis];
    for (int64_t t = 0; t < n; t++) {
        int64_t c[3] = {t / (id[1] * id[2]), t / id[2] % id[1], t % id[2]};
        int64_t v = reduction == KILN_SCATTER_NONE ? (c[axis] + c[(axis + 1) % 3] + 2 * c[(axis + 2) % 3]) % len
                                                   : (int64_t)(rng_next() % (uint64_t)len);
        if (rng_next() & 1) v -= len;
        store_i(it, cix.host.data, t, v);
        if (bad && rng_next() % 4 == 0) {
            v = rng_next() & 1 ? len + (int64_t)(rng_next() % 3) : -len - 1 - (int64_t)(rng_next() % 3);
            store_i(it, cix.host.data, t, 0);
            store_i(dt, cupd.host.data, t, 0);
        }
        store_i(it, ix.host.data, t, v);
    }
    kiln_tensor_desc hin[3] = {data.host, cix.host, cupd.host}, din[3] = {data.dev, ix.dev, upd.dev};
    CHECK(buf_upload(&data) == KILN_OK && buf_upload(&ix) == KILN_OK && buf_upload(&upd) == KILN_OK);
    scatter_compare(what, KILN_OP_SCATTER_ELEMENTS, axis, reduction, hin, din, &out, &out.dev);
    buf_free(&data); buf_free(&ix); buf_free(&upd); buf_free(&cix); buf_free(&cupd); buf_free(&out);
}

static void test_scatter(void) {
    const kiln_dtype its[2] = {KILN_INT32, KILN_INT64};
    const int64_t small[3] = {6, 5, 8}, ed[3] = {7, 6, 9}, ei[3] = {5, 6, 4};
    for (size_t d = 0; d < sizeof all_dtypes / sizeof all_dtypes[0]; d++) {
        kiln_dtype dt = all_dtypes[d];
        int reduces = kiln_dtype_is_float(dt) || dt == KILN_INT32 || dt == KILN_INT64;
        for (int red = 0; red < KILN_SCATTER_REDUCTION_COUNT; red++) {
            /* The two backends take the same dtypes and reductions. */
            kiln_tensor_desc probe[3] = {{.dtype = dt}, {.dtype = KILN_INT64}, {.dtype = dt}}, pout = {.dtype = dt};
            int64_t r = red;
            kiln_layer_launch l = {.op = KILN_OP_SCATTER_ND, .attrs = &r, .attr_count = 1, .input_count = 3,
                                   .output_count = 1, .inputs = probe, .outputs = &pout};
            CHECK(gpu->supports_op(&l) == cpu->supports_op(&l));
            CHECK(gpu->supports_op(&l) == (red == KILN_SCATTER_NONE || reduces));
            if (red != KILN_SCATTER_NONE && !reduces) continue;
            for (int k = 0; k < 2; k++) {
                kiln_dtype it = its[k];
                test_scatter_nd_case(dt, it, red, small, 1, 4, 0, 0);
                test_scatter_nd_case(dt, it, red, small, 2, 17, k, 0);
                test_scatter_nd_case(dt, it, red, small, 3, 100, 1, k);
                for (int32_t axis = 0; axis < 3; axis++)
                    test_scatter_elements_case(dt, it, red, ed, ei, axis, red == KILN_SCATTER_ADD);
            }
        }
    }
    /* Large: a KV-cache update (rows of 4096 bf16), and heavy contention on few elements. */
    const int64_t cache[3] = {4, 2048, 4096}, hot[3] = {4, 64, 2}, hot_ix[3] = {4, 8192, 2};
    test_scatter_nd_case(KILN_BFLOAT16, KILN_INT64, KILN_SCATTER_NONE, cache, 2, 256, 1, 1);
    test_scatter_nd_case(KILN_FLOAT32, KILN_INT32, KILN_SCATTER_ADD, cache, 2, 512, 0, 0);
    test_scatter_elements_case(KILN_FLOAT32, KILN_INT64, KILN_SCATTER_ADD, hot, hot_ix, 1, 1);
    test_scatter_elements_case(KILN_INT32, KILN_INT32, KILN_SCATTER_MUL, hot, hot_ix, 1, 0);
    test_scatter_elements_case(KILN_FLOAT32, KILN_INT64, KILN_SCATTER_MAX, hot, hot_ix, 1, 0);

    /* A reduction the dtype lacks is refused by name. */
    buf b[4];
    int64_t dims[2] = {4, 1}, one[1] = {4};
    REQUIRE(buf_init(&b[0], KILN_BOOL, 1, one) && buf_init(&b[1], KILN_INT64, 2, dims) &&
            buf_init(&b[2], KILN_BOOL, 1, one) && buf_init(&b[3], KILN_BOOL, 1, one));
    int64_t add = KILN_SCATTER_ADD;
    kiln_tensor_desc din[3] = {b[0].dev, b[1].dev, b[2].dev};
    kiln_layer_launch l = {.op = KILN_OP_SCATTER_ND, .attrs = &add, .attr_count = 1, .input_count = 3,
                           .output_count = 1, .inputs = din, .outputs = &b[3].dev};
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "scatter_nd does not support bool");
    for (int i = 0; i < 4; i++) buf_free(&b[i]);
}

/* ---- RESHAPE -------------------------------------------------------------------------------- */

static void test_reshape(void) {
    buf in, out;
    int64_t a[2] = {300, 7}, b[3] = {7, 10, 30};
    REQUIRE(buf_init(&in, KILN_INT32, 2, a) && buf_init(&out, KILN_INT32, 3, b));
    fill_random(&in, 0, 0);
    void *got;
    if (run_both("reshape", KILN_OP_RESHAPE, 0, 0, &in, 1, &out, STREAM_PER_THREAD, &got)) {
        CHECK(memcmp(got, in.host.data, in.bytes) == 0);
        free(got);
    } else {
        CHECK(!"reshape ran on both backends");
    }
    /* In place: nothing to copy. */
    kiln_tensor_desc same = out.dev;
    same.data = in.dev.data;
    kiln_layer_launch l = {.op = KILN_OP_RESHAPE, .input_count = 1, .output_count = 1, .inputs = &in.dev,
                           .outputs = &same};
    CHECK_OK(gpu->run_layer(0, &l, NULL));
    buf_free(&in);
    buf_free(&out);
}

/* ---- collectives (world size 1; groups need two processes: test_collectives.py) ------------- */

static void test_collectives_world_size_1(void) {
    static const kiln_op ops[] = {KILN_OP_ALL_REDUCE, KILN_OP_ALL_GATHER, KILN_OP_REDUCE_SCATTER};
    for (size_t k = 0; k < sizeof all_dtypes / sizeof all_dtypes[0]; k++)
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            buf in, out;
            int64_t dims[3] = {5, 3, 7};
            REQUIRE(buf_init(&in, all_dtypes[k], 3, dims) && buf_init(&out, all_dtypes[k], 3, dims));
            fill_random(&in, 0, 0);
            kiln_layer_launch l = {.op = (uint8_t)ops[i], .axis = 1, .input_count = 1, .output_count = 1,
                                   .inputs = &in.dev, .outputs = &out.dev, .rank = 0, .world_size = 1};
            bool reduces = ops[i] != KILN_OP_ALL_GATHER;
            CHECK(gpu->supports_op(&l) == !(reduces && all_dtypes[k] == KILN_BOOL));
            if (gpu->supports_op(&l)) {
                CHECK_OK(buf_upload(&in));
                CHECK_OK(buf_poison(&out));
                CHECK_OK(gpu->run_layer(0, &l, NULL));
                CHECK_OK(gpu->synchronize(0, NULL));
                void *got = malloc(out.bytes);
                REQUIRE(got != NULL);
                CHECK_OK(gpu->copy(0, got, out.dev.data, out.bytes, KILN_COPY_DEVICE_TO_HOST, NULL));
                CHECK(memcmp(got, in.host.data, in.bytes) == 0);
                free(got);
                /* A group without a communicator is refused, never run. */
                l.world_size = 2;
                CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_STATE, "the context has no communicator");
            }
            buf_free(&in);
            buf_free(&out);
        }
    /* NCCL: loaded when asked for; without it, the error names it. */
    kiln_status s = gpu->comm_available();
    if (s != KILN_OK) CHECK(strstr(kiln_last_error(), "NCCL") != NULL);
}

/* ---- TOPK: two outputs, the CPU's selection exactly (ties and NaN included) -------------------- */

static void test_topk_case(kiln_dtype dt, int32_t rank, const int64_t *dims, int64_t axis, int64_t k, int largest,
                           int ties) {
    int64_t od[KILN_MAX_RANK];
    memcpy(od, dims, sizeof(int64_t) * (size_t)rank);
    od[axis] = k;
    buf in, outs[2];
    REQUIRE(buf_init(&in, dt, rank, dims) && buf_init(&outs[0], dt, rank, od) &&
            buf_init(&outs[1], KILN_INT64, rank, od));
    static const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1.0};
    for (int64_t i = 0; i < in.n; i++) {
        uint64_t r = rng_next();
        if (kiln_dtype_is_float(dt))
            store_f(dt, in.host.data, i, !ties ? rng_uniform(-100, 100) : r % 7 == 0 ? specials[(r >> 8) % 6]
                                                                                      : (double)(r % 5));
        else store_i(dt, in.host.data, i, ties ? (int64_t)(r % 5) - 2 : (int64_t)r);
    }
    int64_t attrs[3] = {largest, 1, k};
    kiln_layer_launch lc = {.op = KILN_OP_TOPK, .axis = axis, .attrs = attrs, .attr_count = 3, .input_count = 1,
                            .output_count = 2, .inputs = &in.host};
    kiln_tensor_desc hout[2] = {outs[0].host, outs[1].host}, dout[2] = {outs[0].dev, outs[1].dev};
    lc.outputs = hout;
    kiln_layer_launch lg = lc;
    lg.inputs = &in.dev;
    lg.outputs = dout;
    CHECK(gpu->supports_op(&lg));
    CHECK_OK(buf_upload(&in));
    CHECK_OK(buf_poison(&outs[0]));
    CHECK_OK(buf_poison(&outs[1]));
    CHECK_OK(cpu->run_layer(0, &lc, NULL));
    CHECK_OK(gpu->run_layer(0, &lg, NULL));
    CHECK_OK(gpu->synchronize(0, NULL));
    for (int o = 0; o < 2; o++) {
        void *got = malloc(outs[o].bytes + 1);
        REQUIRE(got != NULL);
        CHECK_OK(gpu->copy(0, got, outs[o].dev.data, outs[o].bytes, KILN_COPY_DEVICE_TO_HOST, NULL));
        int same = memcmp(got, outs[o].host.data, outs[o].bytes) == 0;
        if (!same)
            fprintf(stderr, "  topk %s axis %lld k %lld largest %d ties %d: %s differ\n", kiln_dtype_name(dt),
                    (long long)axis, (long long)k, largest, ties, o ? "indices" : "values");
        CHECK(same);
        free(got);
    }
    buf_free(&in);
    buf_free(&outs[0]);
    buf_free(&outs[1]);
}

static void test_topk(void) {
    static const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_INT32, KILN_INT64};
    const int64_t d2[] = {3, 9}, d3[] = {2, 7, 3}, sorted[] = {4, 2048}, cached[] = {3, 5000}, long_rows[] = {2, 10000},
                  many[] = {64, 33};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++)
        for (int largest = 0; largest < 2; largest++)
            for (int ties = 0; ties < 2; ties++) {
                for (int64_t k = 1; k <= 9; k += 4) test_topk_case(dts[t], 2, d2, 1, k, largest, ties);
                test_topk_case(dts[t], 3, d3, 1, 4, largest, ties);          /* strided rows */
                test_topk_case(dts[t], 2, sorted, 1, 1000, largest, ties);   /* the largest row sorted whole */
                test_topk_case(dts[t], 2, cached, 1, 50, largest, ties);     /* k rounds, keys in shared memory */
                test_topk_case(dts[t], 2, long_rows, 1, 17, largest, ties);  /* keys recomputed each round */
                test_topk_case(dts[t], 2, many, 0, 33, largest, ties);       /* k = n along the outer axis */
            }
    /* What the kernel does not take is refused before a run. */
    int64_t dims[2] = {2, 3};
    buf in, outs[2];
    REQUIRE(buf_init(&in, KILN_UINT8, 2, dims) && buf_init(&outs[0], KILN_UINT8, 2, dims) &&
            buf_init(&outs[1], KILN_INT64, 2, dims));
    kiln_tensor_desc dout[2] = {outs[0].dev, outs[1].dev};
    int64_t attrs[3] = {1, 1, 3};
    kiln_layer_launch l = {.op = KILN_OP_TOPK, .axis = 1, .attrs = attrs, .attr_count = 3, .input_count = 1,
                           .output_count = 2, .inputs = &in.dev, .outputs = dout};
    CHECK(!gpu->supports_op(&l));
    l.output_count = 1;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT, "topk: wants 1 inputs and 2 output(s)");
    buf_free(&in);
    buf_free(&outs[0]);
    buf_free(&outs[1]);
}

/* ---- ROTARY_EMBEDDING: the CPU's results to the bit (both round every product alone) ---------- */

/* x 4-D [B, H, S, D] (four_d) or 3-D [B, S, H*D]; caches [P, R/2] picked by
 * ids of pos_dt (KILN_BOOL: no ids, caches [B, S, R/2]); rot 0: whole heads.
 * bad_every > 0 plants an id out of range at every bad_every-th position:
 * the CPU fails there, CUDA reads zero cache rows, so those positions'
 * rotated elements must come out zero and the rest be the CPU's (run with
 * the bad ids replaced by 0).  offset: elements of slack before x on the
 * device (an unaligned x). */
static void test_rotary_case(kiln_dtype dt, int four_d, int64_t B, int64_t S, int64_t H, int64_t D, int64_t rot,
                             int interleaved, kiln_dtype pos_dt, int64_t P, int bad_every, int offset) {
    const int64_t R = rot ? rot : D, half = R / 2;
    const int has_pos = pos_dt != KILN_BOOL;
    int64_t xd[4], cd[3], pd[2] = {B, S};
    int32_t xr = four_d ? 4 : 3, cr = has_pos ? 2 : 3;
    if (four_d) memcpy(xd, (int64_t[]){B, H, S, D}, sizeof(int64_t) * 4);
    else memcpy(xd, (int64_t[]){B, S, H * D}, sizeof(int64_t) * 3);
    if (has_pos) memcpy(cd, (int64_t[]){P, half}, sizeof(int64_t) * 2);
    else memcpy(cd, (int64_t[]){B, S, half}, sizeof(int64_t) * 3);
    buf x, c, sn, pos, y;
    REQUIRE(buf_init_off(&x, dt, xr, xd, offset) && buf_init(&c, dt, cr, cd) && buf_init(&sn, dt, cr, cd) &&
            buf_init(&pos, has_pos ? pos_dt : KILN_INT64, 2, pd) && buf_init(&y, dt, xr, xd));
    fill_random(&x, -4, 4);
    fill_random(&c, -1, 1);
    fill_random(&sn, -1, 1);
    for (int64_t i = 0; has_pos && i < B * S; i++)
        store_i(pos_dt, pos.host.data, i, bad_every && i % bad_every == bad_every - 1
                                              ? ((i / bad_every) % 2 ? -1 - (int64_t)(rng_next() % 5)
                                                                     : P + (int64_t)(rng_next() % 5))
                                              : (int64_t)(rng_next() % (uint64_t)P));
    CHECK_OK(buf_upload(&x));
    CHECK_OK(buf_upload(&c));
    CHECK_OK(buf_upload(&sn));
    CHECK_OK(buf_upload(&pos));
    CHECK_OK(buf_poison(&y));
    int64_t attrs[3] = {interleaved, rot, four_d ? 0 : H};
    kiln_tensor_desc hin[4] = {x.host, c.host, sn.host, pos.host}, din[4] = {x.dev, c.dev, sn.dev, pos.dev};
    kiln_layer_launch lg = {.op = KILN_OP_ROTARY_EMBEDDING, .attrs = attrs, .attr_count = 3,
                            .input_count = has_pos ? 4 : 3, .output_count = 1, .inputs = din, .outputs = &y.dev};
    kiln_layer_launch lc = lg;
    lc.inputs = hin;
    lc.outputs = &y.host;
    CHECK(gpu->supports_op(&lg));
    CHECK_OK(gpu->run_layer(0, &lg, NULL));
    CHECK_OK(gpu->synchronize(0, NULL));
    /* The CPU refuses the bad ids; its answer with them made 0 ... */
    if (bad_every) CHECK_FAILS(cpu->run_layer(0, &lc, NULL), KILN_ERROR_INVALID_ARGUMENT, "out of range [0, ");
    uint8_t *bad_row = calloc((size_t)(B * S), 1);
    REQUIRE(bad_row != NULL);
    for (int64_t i = 0; has_pos && i < B * S; i++) {
        int64_t v = (int64_t)load_f(pos_dt, pos.host.data, i);
        if (v < 0 || v >= P) {
            bad_row[i] = 1;
            store_i(pos_dt, pos.host.data, i, 0);
        }
    }
    CHECK_OK(cpu->run_layer(0, &lc, NULL));
    /* ... and zero where CUDA read zero cache rows. */
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++)
            for (int64_t h = 0; bad_row[b * S + s] && h < H; h++)
                for (int64_t d = 0; d < R; d++)
                    store_f(dt, y.host.data, (four_d ? ((b * H + h) * S + s) * D : ((b * S + s) * H + h) * D) + d, 0.0);
    void *got = malloc(y.bytes + 1);
    REQUIRE(got != NULL);
    CHECK_OK(gpu->copy(0, got, y.dev.data, y.bytes, KILN_COPY_DEVICE_TO_HOST, NULL));
    char what[160];
    snprintf(what, sizeof what, "rotary %s %s B %lld S %lld H %lld D %lld rot %lld il %d ids %s bad %d off %d",
             kiln_dtype_name(dt), four_d ? "4-D" : "3-D", (long long)B, (long long)S, (long long)H, (long long)D,
             (long long)rot, interleaved, has_pos ? kiln_dtype_name(pos_dt) : "none", bad_every, offset);
    CHECK(compare(what, dt, got, y.host.data, y.n, 0, 0, NULL) == 0);
    free(got);
    free(bad_row);
    buf_free(&x);
    buf_free(&c);
    buf_free(&sn);
    buf_free(&pos);
    buf_free(&y);
}

static void test_rotary(void) {
    for (size_t t = 0; t < sizeof float_dtypes / sizeof float_dtypes[0]; t++) {
        kiln_dtype dt = float_dtypes[t];
        for (int four_d = 0; four_d < 2; four_d++)
            for (int il = 0; il < 2; il++) {
                test_rotary_case(dt, four_d, 2, 3, 4, 8, 0, il, KILN_INT64, 11, 0, 0);     /* whole heads */
                test_rotary_case(dt, four_d, 2, 3, 4, 8, 4, il, KILN_INT32, 5, 0, 1);      /* partial, unaligned */
                test_rotary_case(dt, four_d, 3, 5, 2, 6, 2, il, KILN_BOOL, 0, 0, 0);       /* per-token caches */
                test_rotary_case(dt, four_d, 1, 1, 32, 128, 0, il, KILN_INT64, 4096, 0, 0); /* a decode step */
                test_rotary_case(dt, four_d, 2, 37, 8, 64, 32, il, KILN_INT64, 64, 5, 0);  /* bad ids: zero rows */
            }
        /* A prompt of Llama's shape, and heads longer than a block (the row loop). */
        test_rotary_case(dt, 1, 1, 512, 32, 128, 0, 0, KILN_INT64, 2048, 0, 0);
        test_rotary_case(dt, 0, 2, 7, 3, 1100, 600, 1, KILN_INT32, 9, 0, 3);
    }
    /* What the kernel does not take is refused before a run. */
    int64_t xd[4] = {1, 2, 3, 8}, cd[2] = {4, 4}, pd[2] = {1, 3};
    buf x, c, pos, y;
    REQUIRE(buf_init(&x, KILN_FLOAT32, 4, xd) && buf_init(&c, KILN_FLOAT16, 2, cd) && buf_init(&pos, KILN_INT64, 2, pd)
            && buf_init(&y, KILN_FLOAT32, 4, xd));
    int64_t attrs[3] = {0, 0, 0};
    kiln_tensor_desc din[4] = {x.dev, c.dev, c.dev, pos.dev};
    kiln_layer_launch l = {.op = KILN_OP_ROTARY_EMBEDDING, .attrs = attrs, .attr_count = 3, .input_count = 4,
                           .output_count = 1, .inputs = din, .outputs = &y.dev};
    CHECK(!gpu->supports_op(&l));   /* float16 caches for float32 x */
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED,
                "cuda: rotary_embedding of float32 x with float16 and float16 caches");
    l.input_count = 2;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "cuda: rotary_embedding: wants 3 or 4 inputs and 1 output(s), got 2 and 1");
    buf_free(&x);
    buf_free(&c);
    buf_free(&pos);
    buf_free(&y);
}

/* ---- POOL: the CUDA kernel against the CPU's (the same window arithmetic) ---- */

typedef struct pshape {
    int32_t k;
    int64_t x[5], kernel[3], stride[3], dil[3], pad[6];
    int64_t ceil_mode, count_include_pad;
} pshape;

static const pshape pool_shapes[] = {
    {1, {2, 3, 37}, {3}, {1}, {1}, {0, 0}, 0, 0},
    {1, {3, 2, 50}, {4}, {3}, {2}, {2, 1}, 1, 1},                                  /* asymmetric, ceil */
    {2, {2, 8, 17, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 1, 0},                /* a ResNet stem's pool */
    {2, {1, 4, 15, 11}, {2, 4}, {1, 3}, {2, 1}, {0, 2, 1, 0}, 1, 1},
    {3, {1, 3, 6, 9, 7}, {2, 3, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 2}, 0, 1},
};

/* Output size as the rule gives it (floor or ceil, the last ceil window
 * dropped when it would start in the end padding). */
static int64_t pool_out(int64_t d, int64_t pb, int64_t pe, int64_t kern, int64_t st, int64_t dil, int64_t ceil_mode) {
    int64_t room = d + pb + pe - dil * (kern - 1) - 1;
    if (!ceil_mode) return room / st + 1;
    int64_t o = (room + st - 1) / st + 1;
    return (o - 1) * st >= d + pb ? o - 1 : o;
}

static void test_pool_case(kiln_dtype dt, const pshape *c, int32_t mode) {
    const int32_t rank = c->k + 2;
    int64_t od[5] = {c->x[0], c->x[1]}, attrs[17];
    int32_t na = 0;
    attrs[na++] = c->ceil_mode;
    attrs[na++] = mode == KILN_POOL_AVERAGE ? c->count_include_pad : 0;
    for (int32_t i = 0; i < c->k; i++) attrs[na++] = c->kernel[i];
    for (int32_t i = 0; i < c->k; i++) attrs[na++] = c->stride[i];
    for (int32_t i = 0; i < c->k; i++) attrs[na++] = c->dil[i];
    for (int32_t i = 0; i < 2 * c->k; i++) attrs[na++] = c->pad[i];
    for (int32_t i = 0; i < c->k; i++)
        od[2 + i] = pool_out(c->x[2 + i], c->pad[i], c->pad[c->k + i], c->kernel[i], c->stride[i], c->dil[i],
                             c->ceil_mode);
    buf in, out;
    REQUIRE(buf_init(&in, dt, rank, c->x) && buf_init(&out, dt, rank, od));
    fill_random(&in, -1.0, 1.0);
    if (dt == KILN_FLOAT32)   /* a NaN: max gives NaN wherever a window holds it, on both backends */
        ((float *)in.host.data)[in.n / 3] = NAN;
    void *got = NULL;
    const char *what = mode == KILN_POOL_MAX ? "max_pool" : "avg_pool";
    CHECK(run_both_attrs(what, KILN_OP_POOL, mode, 0, attrs, na, &in, 1, &out, NULL, &got));
    if (got) {
        /* Max picks an element: equal, NaN where NaN.  The average adds the
         * same taps in the same order in float32: equal up to rounding. */
        int64_t bad = 0;
        for (int64_t i = 0; i < out.n; i++) {
            double g = load_f(dt, got, i), w = load_f(dt, out.host.data, i);
            double tol = mode == KILN_POOL_MAX ? 0 : dt == KILN_FLOAT32 ? 1e-6 : dt == KILN_FLOAT16 ? 1e-3 : 8e-3;
            if (isnan(g) != isnan(w) || (!isnan(w) && !(fabs(g - w) <= tol * (1 + fabs(w))))) bad++;
        }
        if (bad)
            fprintf(stderr, "  %s %s %dd x [%lld, %lld, ..]: %lld of %lld outputs differ\n", what, kiln_dtype_name(dt),
                    (int)c->k, (long long)c->x[0], (long long)c->x[1], (long long)bad, (long long)out.n);
        CHECK(bad == 0);
    }
    free(got);
    buf_free(&in);
    buf_free(&out);
}

static void test_pool(void) {
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof pool_shapes / sizeof pool_shapes[0]; s++) {
            test_pool_case(float_dtypes[d], &pool_shapes[s], KILN_POOL_MAX);
            test_pool_case(float_dtypes[d], &pool_shapes[s], KILN_POOL_AVERAGE);
        }
    /* int32 is not taken, nor an unknown mode; a launch whose attributes do
     * not fit its rank is refused, not run. */
    int64_t dims[3] = {1, 2, 4};
    buf in, out;
    REQUIRE(buf_init(&in, KILN_INT32, 3, dims) && buf_init(&out, KILN_FLOAT32, 3, dims));
    int64_t attrs[7] = {0, 0, 1, 1, 1, 0, 0};
    kiln_layer_launch l = {.op = KILN_OP_POOL, .attrs = attrs, .attr_count = 7, .input_count = 1,
                           .output_count = 1, .inputs = &in.dev, .outputs = &out.dev};
    CHECK(!gpu->supports_op(&l));
    buf_free(&in);
    REQUIRE(buf_init(&in, KILN_FLOAT32, 3, dims));
    l.inputs = &in.dev;
    CHECK(gpu->supports_op(&l));
    l.subop = KILN_POOL_MODE_COUNT;
    CHECK(!gpu->supports_op(&l));
    l.subop = KILN_POOL_MAX;
    l.attr_count = 6;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT, "pool of rank 3 with 6 attributes");
    buf_free(&in);
    buf_free(&out);
}

/* ---- RESIZE: the CUDA kernel against the CPU's (the same taps, ops/resize_view.h) ---- */

typedef struct rshape {
    int32_t rank;
    int64_t x[5], out[5];
    int64_t mode, coord, nearest, exclude;
    double  a, scale[5];   /* 0: out/in */
} rshape;

static const rshape resize_shapes[] = {
    {4, {2, 3, 17, 13}, {2, 3, 34, 26}, KILN_RESIZE_NEAREST, KILN_RESIZE_ASYMMETRIC, KILN_RESIZE_FLOOR, 0, -0.75,
     {1, 1, 2, 2}},                                                               /* YOLO's 2x upsample */
    {4, {2, 3, 17, 13}, {2, 3, 11, 29}, KILN_RESIZE_NEAREST, KILN_RESIZE_HALF_PIXEL, KILN_RESIZE_ROUND_PREFER_CEIL,
     0, -0.75, {0}},
    {4, {2, 4, 15, 11}, {2, 4, 31, 7}, KILN_RESIZE_LINEAR, KILN_RESIZE_HALF_PIXEL, 0, 0, -0.75, {0}},
    {4, {1, 4, 15, 11}, {1, 4, 22, 6}, KILN_RESIZE_LINEAR, KILN_RESIZE_ALIGN_CORNERS, 0, 0, -0.75, {0}},
    {3, {2, 3, 40}, {2, 3, 24}, KILN_RESIZE_LINEAR, KILN_RESIZE_PYTORCH_HALF_PIXEL, 0, 0, -0.75, {1, 1, 0.6}},
    {4, {1, 3, 9, 10}, {1, 3, 20, 5}, KILN_RESIZE_CUBIC, KILN_RESIZE_HALF_PIXEL, 0, 1, -0.5, {0}},
    {4, {1, 3, 9, 10}, {1, 3, 13, 15}, KILN_RESIZE_CUBIC, KILN_RESIZE_ASYMMETRIC, 0, 0, -0.75, {1, 1, 1.5, 1.5}},
    {5, {1, 2, 5, 6, 7}, {1, 2, 9, 4, 13}, KILN_RESIZE_LINEAR, KILN_RESIZE_HALF_PIXEL_SYMMETRIC, 0, 0, -0.75, {0}},
    {2, {3, 8}, {5, 17}, KILN_RESIZE_CUBIC, KILN_RESIZE_HALF_PIXEL, 0, 0, -0.75, {0}},   /* every axis resized */
};

static void test_resize_case(kiln_dtype dt, const rshape *c) {
    int64_t attrs[5 + 2 * 5];
    int32_t na = 0;
    attrs[na++] = c->mode;
    attrs[na++] = c->coord;
    attrs[na++] = c->nearest;
    attrs[na++] = c->exclude;
    memcpy(&attrs[na++], &c->a, sizeof c->a);
    for (int32_t i = 0; i < c->rank; i++) memcpy(&attrs[na++], &c->scale[i], sizeof(double));
    for (int32_t i = 0; i < c->rank; i++) attrs[na++] = c->out[i];
    buf in, out;
    REQUIRE(buf_init(&in, dt, c->rank, c->x) && buf_init(&out, dt, c->rank, c->out));
    fill_random(&in, -1.0, 1.0);
    void *got = NULL;
    CHECK(run_both_attrs("resize", KILN_OP_RESIZE, 0, 0, attrs, na, &in, 1, &out, NULL, &got));
    if (got) {
        /* Nearest copies: equal.  Interpolation: the same weights and order
         * in float32, equal up to contraction into fused multiply-adds. */
        int64_t bad = 0;
        for (int64_t i = 0; i < out.n; i++) {
            double g = load_f(dt, got, i), w = load_f(dt, out.host.data, i);
            double tol = c->mode == KILN_RESIZE_NEAREST ? 0 : dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 1e-3
                                                                                                         : 8e-3;
            if (isnan(g) != isnan(w) || (!isnan(w) && !(fabs(g - w) <= tol * (1 + fabs(w))))) bad++;
        }
        if (bad)
            fprintf(stderr, "  resize mode %lld coord %lld %s rank %d: %lld of %lld outputs differ\n",
                    (long long)c->mode, (long long)c->coord, kiln_dtype_name(dt), (int)c->rank, (long long)bad,
                    (long long)out.n);
        CHECK(bad == 0);
    }
    free(got);
    buf_free(&in);
    buf_free(&out);
}

static void test_resize(void) {
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof resize_shapes / sizeof resize_shapes[0]; s++)
            test_resize_case(float_dtypes[d], &resize_shapes[s]);
    /* Nearest takes integers (a copy), interpolation does not; a launch
     * whose attributes do not fit its rank is refused, not run. */
    int64_t dims[2] = {3, 4}, odims[2] = {6, 8};
    buf in, out;
    REQUIRE(buf_init(&in, KILN_INT32, 2, dims) && buf_init(&out, KILN_INT32, 2, odims));
    for (int64_t i = 0; i < in.n; i++) ((int32_t *)in.host.data)[i] = (int32_t)(i * 7 - 20);
    const double a = -0.75, zero = 0;
    int64_t attrs[9] = {KILN_RESIZE_NEAREST, KILN_RESIZE_ASYMMETRIC, KILN_RESIZE_FLOOR, 0, 0, 0, 0, 6, 8};
    memcpy(&attrs[4], &a, sizeof a);
    memcpy(&attrs[5], &zero, sizeof zero);
    memcpy(&attrs[6], &zero, sizeof zero);
    void *got = NULL;
    CHECK(run_both_attrs("resize", KILN_OP_RESIZE, 0, 0, attrs, 9, &in, 1, &out, NULL, &got));
    if (got) CHECK(memcmp(got, out.host.data, (size_t)out.n * sizeof(int32_t)) == 0);
    free(got);
    kiln_layer_launch l = {.op = KILN_OP_RESIZE, .attrs = attrs, .attr_count = 9, .input_count = 1,
                           .output_count = 1, .inputs = &in.dev, .outputs = &out.dev};
    CHECK(gpu->supports_op(&l));
    attrs[0] = KILN_RESIZE_LINEAR;
    CHECK(!gpu->supports_op(&l));
    attrs[0] = KILN_RESIZE_NEAREST;
    l.attr_count = 8;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT, "resize of rank 2 with 8 attributes");
    buf_free(&in);
    buf_free(&out);
}

/* ---- CONV, CONV_TRANSPOSE: the CUDA kernels (direct, cuBLAS 1x1, implicit GEMM) against the CPU's im2col /
 * col2im + matmul ---- */

typedef struct cshape {
    int32_t k;                     /* spatial axes */
    int64_t x[5], w[5];            /* [N, C, D..], [M, C/group, K..] */
    int64_t stride[3], dil[3], pad[6], group;
    int     bias;
} cshape;

static const cshape conv_shapes[] = {
    {1, {2, 4, 37}, {6, 4, 3}, {1}, {1}, {0, 0}, 1, 1},
    {1, {3, 6, 50}, {9, 2, 5}, {2}, {3}, {4, 1}, 3, 0},                                    /* groups, asymmetric */
    {2, {2, 3, 17, 13}, {8, 3, 3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 1, 1},                  /* a 3x3 stem */
    {2, {1, 16, 20, 20}, {16, 1, 3, 3}, {2, 2}, {1, 1}, {1, 1, 0, 0}, 16, 1},               /* depthwise */
    {2, {1, 8, 15, 11}, {16, 4, 2, 4}, {1, 3}, {2, 1}, {0, 2, 1, 0}, 2, 1},                /* everything mixed */
    {2, {4, 64, 14, 14}, {64, 64, 1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, 0},               /* 1x1 */
    {3, {1, 3, 6, 9, 7}, {4, 3, 2, 3, 3}, {1, 2, 1}, {1, 1, 2}, {1, 0, 1, 0, 1, 2}, 1, 1},
    /* conv.cu's fast paths: 1x1 through cuBLAS batched over the groups (batch < groups), with a bias; the
     * implicit-GEMM kernels with rows, columns and depth off their tiles (128-row tiles for halves). */
    {2, {3, 12, 5, 6}, {16, 3, 1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 4, 1},
    {2, {2, 19, 17, 15}, {130, 19, 3, 3}, {2, 2}, {1, 1}, {1, 1, 0, 2}, 1, 1},
    {1, {2, 12, 100}, {36, 4, 5}, {2}, {3}, {2, 1}, 3, 0},
    /* With a workspace, im2col + cuBLAS: the flat form (batch > 1, under 128 positions) with groups; 1x1
     * of stride 2 flat and batched (batch 1); 1x1 stride 1 in the flat form (in the batched one it is
     * the 1x1 path).  The rows above take it too where they qualify (at least 8 output channels per
     * group and a depth of 8). */
    {2, {3, 16, 6, 6}, {32, 8, 3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 2, 1},
    {2, {2, 16, 9, 9}, {24, 16, 1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, 1},
    {2, {1, 16, 30, 30}, {24, 16, 1, 1}, {2, 2}, {1, 1}, {0, 0, 0, 0}, 1, 0},
    {2, {4, 16, 7, 7}, {40, 16, 1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, 1, 1},
};

/* transposed: w is [C, M/group, K..] and the output grows by the stride
 * (pads may be negative there: output_padding). */
static void test_conv_case(kiln_dtype dt, const cshape *c, int transposed) {
    int32_t rank = c->k + 2;
    int64_t od[5] = {c->x[0], transposed ? c->w[1] * c->group : c->w[0]};
    int64_t attrs[13];
    int32_t na = 0;
    attrs[na++] = c->group;
    for (int32_t i = 0; i < c->k; i++) attrs[na++] = c->stride[i];
    for (int32_t i = 0; i < c->k; i++) attrs[na++] = c->dil[i];
    for (int32_t i = 0; i < 2 * c->k; i++) attrs[na++] = c->pad[i];
    for (int32_t i = 0; i < c->k; i++)
        od[2 + i] = transposed ? c->stride[i] * (c->x[2 + i] - 1) + c->dil[i] * (c->w[2 + i] - 1) + 1 - c->pad[i] -
                                     c->pad[c->k + i]
                               : (c->x[2 + i] + c->pad[i] + c->pad[c->k + i] - c->dil[i] * (c->w[2 + i] - 1) - 1) /
                                     c->stride[i] + 1;
    buf in[3], out;
    const int64_t bd[1] = {od[1]};
    REQUIRE(buf_init(&in[0], dt, rank, c->x) && buf_init(&in[1], dt, rank, c->w) && buf_init(&in[2], dt, 1, bd) &&
            buf_init(&out, dt, rank, od));
    for (int i = 0; i < 3; i++) {
        fill_random(&in[i], -1.0, 1.0);
        CHECK_OK(buf_upload(&in[i]));
    }
    CHECK_OK(buf_poison(&out));
    int32_t nin = c->bias ? 3 : 2;
    kiln_tensor_desc hin[3] = {in[0].host, in[1].host, in[2].host}, din[3] = {in[0].dev, in[1].dev, in[2].dev};
    kiln_layer_launch lc = {.op = transposed ? KILN_OP_CONV_TRANSPOSE : KILN_OP_CONV, .attrs = attrs,
                            .attr_count = na, .input_count = nin,
                            .output_count = 1, .inputs = hin, .outputs = &out.host};
    kiln_layer_launch lg = lc;
    lg.inputs = din;
    lg.outputs = &out.dev;
    CHECK(gpu->supports_op(&lg));
    CHECK_OK(cpu->run_layer(0, &lc, NULL));
    /* The workspace the runtime would give (layer_workspace: conv.cu's im2col path), then none (the
     * paths that need none: 1x1 cuBLAS, implicit GEMM, direct); a row that needs none runs once. */
    const uint64_t ws_size = gpu->layer_workspace(&lg);
    void *ws = NULL;
    if (ws_size) REQUIRE(gpu->alloc(0, (size_t)ws_size, &ws) == KILN_OK);
    void *got = malloc(out.bytes + 1), *want = malloc(out.bytes + 1);
    REQUIRE(got != NULL && want != NULL);
    memcpy(want, out.host.data, out.bytes);   /* buf_poison below overwrites the host copy too */
    for (int with_ws = ws_size ? 1 : 0; with_ws >= 0; with_ws--) {
        lg.workspace = with_ws ? ws : NULL;
        lg.workspace_size = with_ws ? ws_size : 0;
        CHECK_OK(buf_poison(&out));
        CHECK_OK(gpu->run_layer(0, &lg, NULL));
        CHECK_OK(gpu->synchronize(0, NULL));
        CHECK_OK(gpu->copy(0, got, out.dev.data, out.bytes, KILN_COPY_DEVICE_TO_HOST, NULL));
        /* Both sum in float32, in different orders; halves round the result once. */
        double err = rel_error(dt, got, want, out.n);
        double tol = dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 1e-3 : 8e-3;
        if (!(err <= tol))
            fprintf(stderr, "  conv%s %s %dd x [%lld, %lld, ..] w [%lld, %lld, ..] group %lld%s: relative error %g > %g\n",
                    transposed ? "_transpose" : "", kiln_dtype_name(dt), (int)c->k, (long long)c->x[0], (long long)c->x[1], (long long)c->w[0],
                    (long long)c->w[1], (long long)c->group, with_ws ? " (workspace)" : "", err, tol);
        CHECK(err <= tol);
    }
    if (ws_size) {
        /* A workspace smaller than layer_workspace said is refused, never overrun. */
        lg.workspace = ws;
        lg.workspace_size = ws_size - 1;
        CHECK_FAILS(gpu->run_layer(0, &lg, NULL), KILN_ERROR_INVALID_ARGUMENT, "im2col path needs a workspace");
        gpu->free(0, ws);
    }
    free(got);
    free(want);
    for (int i = 0; i < 3; i++) buf_free(&in[i]);
    buf_free(&out);
}

static const cshape conv_transpose_shapes[] = {
    {1, {2, 4, 9}, {4, 3, 3}, {1}, {1}, {0, 0}, 1, 1},
    {1, {1, 6, 12}, {6, 2, 4}, {2}, {1}, {1, -1}, 3, 1},                                   /* output_padding 1 */
    {2, {2, 8, 7, 6}, {8, 4, 3, 3}, {2, 2}, {1, 1}, {1, 1, 0, 0}, 1, 1},                    /* a decoder's upsampling */
    {2, {1, 16, 9, 9}, {16, 1, 3, 3}, {1, 2}, {2, 1}, {0, 1, 2, -1}, 16, 0},               /* depthwise */
    {3, {1, 2, 4, 3, 5}, {2, 3, 2, 2, 3}, {2, 1, 3}, {1, 2, 1}, {0, 1, 0, 1, 0, 0}, 1, 1},
};

static void test_conv(void) {
    for (size_t d = 0; d < 3; d++) {
        for (size_t s = 0; s < sizeof conv_shapes / sizeof conv_shapes[0]; s++)
            test_conv_case(float_dtypes[d], &conv_shapes[s], 0);
        for (size_t s = 0; s < sizeof conv_transpose_shapes / sizeof conv_transpose_shapes[0]; s++)
            test_conv_case(float_dtypes[d], &conv_transpose_shapes[s], 1);
    }
    /* int32 is not taken; one input is not a conv. */
    int64_t dims[3] = {1, 2, 4};
    buf in[2], out;
    REQUIRE(buf_init(&in[0], KILN_INT32, 3, dims) && buf_init(&in[1], KILN_INT32, 3, dims) &&
            buf_init(&out, KILN_INT32, 3, dims));
    kiln_tensor_desc din[2] = {in[0].dev, in[1].dev};
    int64_t attrs[5] = {1, 1, 1, 0, 0};
    kiln_layer_launch l = {.op = KILN_OP_CONV, .attrs = attrs, .attr_count = 5, .input_count = 2,
                           .output_count = 1, .inputs = din, .outputs = &out.dev};
    CHECK(!gpu->supports_op(&l));
    l.input_count = 1;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT, "conv: wants 3 inputs");
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

/* ---- MATMUL --------------------------------------------------------------------------------- */

typedef struct mshape {
    int32_t ra, rb, ro;
    int64_t a[4], b[4], o[4];
} mshape;

static const mshape matmul_shapes[] = {
    {2, 2, 2, {37, 61}, {61, 23}, {37, 23}},                            /* one GEMM, odd sizes */
    {3, 2, 3, {5, 16, 64}, {64, 48}, {5, 16, 48}},                      /* x @ W: batch folds into M */
    {2, 3, 3, {16, 64}, {5, 64, 48}, {5, 16, 48}},                      /* W @ x: a shared */
    {3, 3, 3, {4, 33, 17}, {4, 17, 9}, {4, 33, 9}},                     /* strided batch */
    {4, 4, 4, {2, 1, 8, 12}, {1, 3, 12, 10}, {2, 3, 8, 10}},            /* both broadcast: a loop */
    {4, 3, 4, {3, 1, 7, 5}, {4, 5, 6}, {3, 4, 7, 6}},                   /* a broadcast inside */
    {2, 2, 2, {1, 128}, {128, 1}, {1, 1}},                              /* dot product */
    {2, 2, 2, {4, 0}, {0, 5}, {4, 5}},                                  /* K = 0: zeros */
    {2, 2, 2, {256, 512}, {512, 384}, {256, 384}},                      /* larger */
    {3, 2, 3, {8, 128, 256}, {256, 512}, {8, 128, 512}},                /* half a million outputs */
    {2, 2, 2, {1, 4096}, {4096, 1024}, {1, 1024}},                      /* one row: decode's x @ W.T */
    {3, 2, 3, {3, 1, 512}, {512, 1000}, {3, 1, 1000}},                  /* a batch of rows, W shared */
    /* With transpose_b, one row takes gemv.cu's kernel instead of cuBLAS: */
    {2, 2, 2, {1, 2048}, {2048, 3001}, {1, 3001}},                      /* N not a multiple of 8 */
    {3, 2, 3, {1, 1, 40}, {40, 7}, {1, 1, 7}},                          /* K of 5 (half) / 10 (float) vectors */
    {2, 2, 2, {1, 36}, {36, 5}, {1, 5}},                                /* K = 36: half types fall back to cuBLAS */
    {2, 2, 2, {1, 8200}, {8200, 64}, {1, 64}},                          /* the unrolled loop and its tail */
    {3, 2, 3, {2, 1, 256}, {256, 64}, {2, 1, 64}},                      /* 2 rows: cuBLAS */
    {2, 2, 2, {3, 2048}, {2048, 1001}, {3, 1001}},                      /* 3 rows: cuBLAS */
};

/* s's shapes are the product's, a [..., M, K] and b [..., K, N]; with ta
 * (tb) the operand is stored with its last two axes swapped, and the
 * backends read it through the layer's transpose flags. */
static void test_matmul_case(kiln_dtype dt, const mshape *s, int ta, int tb, void *stream) {
    char what[200];
    snprintf(what, sizeof what, "matmul %s [%lld,%lld..] x [%lld,%lld..] (rank %d x %d) transpose_a %d transpose_b %d",
             kiln_dtype_name(dt), (long long)s->a[0], (long long)s->a[1], (long long)s->b[0], (long long)s->b[1],
             (int)s->ra, (int)s->rb, ta, tb);
    int64_t da[4], db[4];
    memcpy(da, s->a, sizeof da);
    memcpy(db, s->b, sizeof db);
    if (ta) da[s->ra - 2] = s->a[s->ra - 1], da[s->ra - 1] = s->a[s->ra - 2];
    if (tb) db[s->rb - 2] = s->b[s->rb - 1], db[s->rb - 1] = s->b[s->rb - 2];
    buf in[2], out;
    REQUIRE(buf_init(&in[0], dt, s->ra, da) && buf_init(&in[1], dt, s->rb, db) && buf_init(&out, dt, s->ro, s->o));
    fill_random(&in[0], -1.0, 1.0);
    fill_random(&in[1], -1.0, 1.0);
    const int64_t flags[2] = {ta, tb};
    void *got;
    if (run_both_attrs(what, KILN_OP_MATMUL, 0, 0, flags, ta || tb ? 2 : 0, in, 2, &out, stream, &got)) {
        double err = rel_error(dt, got, out.host.data, out.n);
        /* float32 sums differ only by order; halves by one rounding of the result */
        double tol = dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 1e-3 : 8e-3;
        if (!(err <= tol)) fprintf(stderr, "  %s: relative error %g > %g\n", what, err, tol);
        CHECK(err <= tol);
        free(got);
    } else {
        CHECK(!"matmul ran on both backends");
    }
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

/* argmax/argmin over one axis against the CPU, exactly: values from a small
 * set (so the extreme repeats and the lower index must win), with NaNs
 * planted (special 1: NaN wins, the first one), or zeros of both signs
 * (special 2: -0 and +0 are equal).  Long rows of few outputs take the
 * CUDA backend's chunked path, the others a block per row. */
static void test_arg_reduce_case(kiln_dtype dt, int32_t rank, const int64_t *dims, int64_t axis, int argmax,
                                 int special) {
    char what[160];
    snprintf(what, sizeof what, "%s %s rank %d axis %lld (dims %lld, %lld..) special %d", argmax ? "argmax" : "argmin",
             kiln_dtype_name(dt), (int)rank, (long long)axis, (long long)dims[0], (long long)dims[1], special);
    int64_t odims[KILN_MAX_RANK];
    memcpy(odims, dims, (size_t)rank * sizeof *dims);
    odims[axis] = 1;
    buf in, out;
    REQUIRE(buf_init(&in, dt, rank, dims) && buf_init(&out, KILN_INT64, rank, odims));
    for (int64_t i = 0; i < in.n; i++) {
        uint64_t r = rng_next();
        double v = special == 2 ? ((r & 1) ? -0.0 : 0.0) : (double)((int64_t)(r % 64) - 32) / 16.0;
        if (special == 1 && r % 5003 == 0) v = NAN;
        store_f(dt, in.host.data, i, v);
    }
    const int64_t attrs[2] = {1, axis};
    void *got;
    if (run_both_attrs(what, KILN_OP_REDUCE, argmax ? KILN_REDUCE_ARGMAX : KILN_REDUCE_ARGMIN, 0, attrs, 2, &in, 1,
                       &out, STREAM_DEFAULT, &got)) {
        int64_t bad = 0;
        for (int64_t i = 0; i < out.n; i++) {
            int64_t g = ((const int64_t *)got)[i], c = ((const int64_t *)out.host.data)[i];
            if (g != c && bad++ < 3) fprintf(stderr, "  %s: output %lld: cuda %lld, cpu %lld\n", what, (long long)i,
                                             (long long)g, (long long)c);
        }
        CHECK(bad == 0);
        free(got);
    } else {
        CHECK(!"argmax ran on both backends");
    }
    buf_free(&in);
    buf_free(&out);
}

static void test_arg_reduce(void) {
    const int64_t vocab[2] = {1, 128256}, rows[2] = {3, 20000}, strided[3] = {2, 9000, 3}, edge[2] = {4, 8192},
                  many[2] = {300, 9000}, short_rows[2] = {64, 100};
    for (size_t d = 0; d < 3; d++)
        for (int argmax = 0; argmax < 2; argmax++)
            for (int special = 0; special < 3; special++) {
                test_arg_reduce_case(float_dtypes[d], 2, vocab, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 2, rows, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 3, strided, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 2, edge, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 2, many, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 2, short_rows, 1, argmax, special);
                test_arg_reduce_case(float_dtypes[d], 2, rows, 0, argmax, special);
            }
}

static void test_matmul(void) {
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof matmul_shapes / sizeof matmul_shapes[0]; s++)
            for (int flags = 0; flags < 4; flags++)
                test_matmul_case(float_dtypes[d], &matmul_shapes[s], flags & 1, flags >> 1,
                                 (s & 1) ? STREAM_PER_THREAD : STREAM_DEFAULT);

    buf in[2], out;
    int64_t dims[2] = {4, 4};
    REQUIRE(buf_init(&in[0], KILN_INT32, 2, dims) && buf_init(&in[1], KILN_INT32, 2, dims) &&
            buf_init(&out, KILN_INT32, 2, dims));
    kiln_tensor_desc din[2] = {in[0].dev, in[1].dev};
    kiln_layer_launch l = {.op = KILN_OP_MATMUL, .input_count = 2, .output_count = 1, .inputs = din,
                           .outputs = &out.dev};
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "matmul does not support int32");
    /* Transpose flags outside the rule's form (none, or two of 0/1) are refused. */
    buf fin[2], fout;
    REQUIRE(buf_init(&fin[0], KILN_FLOAT32, 2, dims) && buf_init(&fin[1], KILN_FLOAT32, 2, dims) &&
            buf_init(&fout, KILN_FLOAT32, 2, dims));
    kiln_tensor_desc fdin[2] = {fin[0].dev, fin[1].dev};
    int64_t bad_flags[2] = {0, 2};
    kiln_layer_launch fl = {.op = KILN_OP_MATMUL, .attrs = bad_flags, .attr_count = 2, .input_count = 2,
                            .output_count = 1, .inputs = fdin, .outputs = &fout.dev};
    CHECK(!gpu->supports_op(&fl));
    CHECK_FAILS(gpu->run_layer(0, &fl, NULL), KILN_ERROR_INVALID_ARGUMENT, "are not transpose_a, transpose_b");
    fl.attr_count = 1;
    CHECK(!gpu->supports_op(&fl));
    buf_free(&fin[0]);
    buf_free(&fin[1]);
    buf_free(&fout);
    l.op = KILN_OP_PLUGIN;
    CHECK_FAILS(gpu->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "plugin");
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

/* ---- optional: embedding bandwidth ------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Effective bandwidth (bytes read + written) of an embedding lookup. */
static void bench_gather(kiln_dtype dt, int64_t vocab, int64_t hidden, int64_t tokens) {
    buf in[2], out;
    int64_t ddims[2] = {vocab, hidden}, idims[1] = {tokens}, odims[2] = {tokens, hidden};
    if (!buf_init(&in[0], dt, 2, ddims) || !buf_init(&in[1], KILN_INT64, 1, idims) ||
        !buf_init(&out, dt, 2, odims)) {
        fprintf(stderr, "bench: allocation failed: %s\n", kiln_last_error());
        return;
    }
    memset(in[0].host.data, 0x3c, in[0].bytes);
    for (int64_t j = 0; j < tokens; j++) ((int64_t *)in[1].host.data)[j] = (int64_t)(rng_next() % (uint64_t)vocab);
    buf_upload(&in[0]);
    buf_upload(&in[1]);
    kiln_tensor_desc din[2] = {in[0].dev, in[1].dev};
    kiln_layer_launch l = {.op = KILN_OP_GATHER, .axis = 0, .input_count = 2, .output_count = 1, .inputs = din,
                           .outputs = &out.dev};
    for (int i = 0; i < 10; i++) gpu->run_layer(0, &l, NULL);
    gpu->synchronize(0, NULL);
    const int iters = 200;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) gpu->run_layer(0, &l, NULL);
    gpu->synchronize(0, NULL);
    double dt_s = (now_s() - t0) / iters;
    double bytes = 2.0 * (double)out.bytes + (double)in[1].bytes;
    printf("bench gather %-8s vocab %6lld hidden %5lld tokens %6lld: %8.2f us  %7.1f GB/s\n", kiln_dtype_name(dt),
           (long long)vocab, (long long)hidden, (long long)tokens, dt_s * 1e6, bytes / dt_s * 1e-9);
    buf_free(&in[0]);
    buf_free(&in[1]);
    buf_free(&out);
}

/* Time one launch (average of many): bytes moved, or flops for matmul. */
static void bench_layer(const char *what, kiln_op op, int32_t subop, buf *in, int32_t nin, buf *out, double flops) {
    kiln_tensor_desc din[2];
    for (int32_t i = 0; i < nin; i++) {
        memset(in[i].host.data, 0x3c, in[i].bytes);   /* small finite values in every float dtype */
        buf_upload(&in[i]);
        din[i] = in[i].dev;
    }
    kiln_layer_launch l = {.op = (uint8_t)op, .subop = subop, .input_count = nin, .output_count = 1, .inputs = din,
                           .outputs = &out->dev};
    for (int i = 0; i < 5; i++) gpu->run_layer(0, &l, NULL);
    gpu->synchronize(0, NULL);
    const int iters = 50;
    double t0 = now_s();
    for (int i = 0; i < iters; i++) gpu->run_layer(0, &l, NULL);
    gpu->synchronize(0, NULL);
    double t = (now_s() - t0) / iters, bytes = (double)out->bytes;
    for (int32_t i = 0; i < nin; i++) bytes += (double)in[i].bytes;
    if (flops > 0) printf("bench %-40s %9.2f us  %7.1f TFLOP/s\n", what, t * 1e6, flops / t * 1e-12);
    else           printf("bench %-40s %9.2f us  %7.1f GB/s\n", what, t * 1e6, bytes / t * 1e-9);
}

static void bench_ops(void) {
    int64_t n16[1] = {1 << 24}, rows[2] = {8192, 4096}, row[1] = {4096}, sq[2] = {4096, 4096};
    buf a, b, c, d;
    if (buf_init(&a, KILN_BFLOAT16, 1, n16) && buf_init(&b, KILN_BFLOAT16, 1, n16) && buf_init(&c, KILN_BFLOAT16, 1, n16)) {
        buf ab[2] = {a, b};
        bench_layer("binary add bf16 [16M] + [16M]", KILN_OP_BINARY, KILN_BINARY_ADD, ab, 2, &c, 0);
        bench_layer("unary gelu bf16 [16M]", KILN_OP_UNARY, KILN_UNARY_GELU, &a, 1, &c, 0);
    }
    buf_free(&a); buf_free(&b); buf_free(&c);
    if (buf_init(&a, KILN_BFLOAT16, 2, rows) && buf_init(&b, KILN_BFLOAT16, 1, row) && buf_init(&c, KILN_BFLOAT16, 2, rows)) {
        buf ab[2] = {a, b};
        bench_layer("binary add bf16 [8192,4096] + [4096]", KILN_OP_BINARY, KILN_BINARY_ADD, ab, 2, &c, 0);
    }
    buf_free(&a); buf_free(&b); buf_free(&c);
    if (buf_init(&a, KILN_FLOAT32, 1, n16) && buf_init(&c, KILN_BFLOAT16, 1, n16))
        bench_layer("cast f32 -> bf16 [16M]", KILN_OP_CAST, 0, &a, 1, &c, 0);
    buf_free(&a); buf_free(&c);
    if (buf_init(&a, KILN_BFLOAT16, 2, sq) && buf_init(&b, KILN_BFLOAT16, 2, sq) && buf_init(&d, KILN_BFLOAT16, 2, sq)) {
        buf ab[2] = {a, b};
        bench_layer("matmul bf16 4096^3", KILN_OP_MATMUL, 0, ab, 2, &d, 2.0 * 4096.0 * 4096.0 * 4096.0);
    }
    buf_free(&a); buf_free(&b); buf_free(&d);
}

int main(void) {
#ifdef KILN_CUDA_MODULE_PATH
    setenv("KILN_CUDA_BACKEND", KILN_CUDA_MODULE_PATH, 0);
#endif
    cpu = kiln_backend_cpu();
    if (kiln_backend_get(KILN_DEVICE_CUDA, &gpu) != KILN_OK || !gpu || gpu->device_count() < 1) {
        printf("skipped: no CUDA device (%s)\n", kiln_last_error());
        return 0;
    }
    TEST_RUN(test_table);
    TEST_RUN(test_cast);
    TEST_RUN(test_binary);
    TEST_RUN(test_unary);
    TEST_RUN(test_gather);
    TEST_RUN(test_scatter);
    TEST_RUN(test_reshape);
    TEST_RUN(test_collectives_world_size_1);
    TEST_RUN(test_matmul);
    TEST_RUN(test_arg_reduce);
    TEST_RUN(test_topk);
    TEST_RUN(test_rotary);
    TEST_RUN(test_conv);
    TEST_RUN(test_pool);
    TEST_RUN(test_resize);
    const char *bench = getenv("KILN_CUDA_BENCH");
    if (bench && bench[0] == '1') {
        bench_gather(KILN_BFLOAT16, 128256, 4096, 16384);
        bench_gather(KILN_FLOAT16, 32000, 4096, 4096);
        bench_gather(KILN_FLOAT32, 32000, 1024, 8192);
        bench_gather(KILN_BFLOAT16, 50000, 768, 2048);
        bench_ops();
    }
    return test_summary();
}
