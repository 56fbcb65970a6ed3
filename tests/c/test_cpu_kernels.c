/* test_cpu_kernels.c — the CPU backend's ops against references computed here.
 *
 * References are written independently of the kernels: half-precision values
 * are decoded with ldexp, rounding to a float format is done in double with
 * nearbyint (round half to even), integer wrap-around in 64-bit arithmetic.
 * Every op is run on every dtype it takes and over every kind of broadcast;
 * unsupported combinations must answer KILN_ERROR_UNSUPPORTED.  The last
 * tests check the backend loader on a machine without CUDA. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "ops/op_table.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "engine/engine_desc.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static const kiln_dtype all_dtypes[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_INT8,
                                        KILN_UINT8,   KILN_INT32,   KILN_INT64,    KILN_BOOL};
#define DTYPE_COUNT ((int)(sizeof all_dtypes / sizeof all_dtypes[0]))

static int is_float(kiln_dtype dt) { return dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16; }

static kiln_tensor_desc make_desc(void *data, kiln_dtype dt, int rank, const int64_t *dims) {
    kiln_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.data = data;
    d.dtype = dt;
    d.rank = rank;
    int64_t stride = 1;
    for (int i = rank - 1; i >= 0; i--) {
        d.dims[i] = dims[i];
        d.strides[i] = stride;
        stride *= dims[i];
    }
    d.device.type = KILN_DEVICE_CPU;
    return d;
}

static int64_t numel_of(int rank, const int64_t *dims) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= dims[i];
    return n;
}

static kiln_status run_op(int op, int subop, int64_t axis, int nin, const kiln_tensor_desc *ins,
                          const kiln_tensor_desc *out) {
    kiln_layer_launch l = {.op = (uint8_t)op, .subop = subop, .axis = axis, .input_count = nin,
                           .output_count = 1, .inputs = ins, .outputs = out};
    return kiln_backend_cpu()->run_layer(0, &l, NULL);
}

/* Buffers with a guard zone after them, so ASan is not the only check that
 * a kernel stays inside its output. */
static void *alloc_elems(kiln_dtype dt, int64_t n) {
    size_t bytes = (size_t)(n > 0 ? n : 1) * kiln_dtype_size(dt);
    unsigned char *p = malloc(bytes);
    if (p) memset(p, 0xA5, bytes);
    return p;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Independent decoders. */
static double decode_f16(uint16_t h) {
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp(m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(m + 1024, e - 25);
    return sign ? -v : v;
}
static double decode_bf16(uint16_t h) {
    int sign = h >> 15, e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 0) v = ldexp(m, -133);
    else if (e == 255) v = m ? NAN : INFINITY;
    else v = ldexp(m + 128, e - 134);
    return sign ? -v : v;
}

static double get_f(kiln_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case KILN_FLOAT32:  return ((const float *)p)[i];
    case KILN_FLOAT16:  return decode_f16(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return decode_bf16(((const uint16_t *)p)[i]);
    default:            return NAN;
    }
}
static int64_t get_i(kiln_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case KILN_INT8:  return ((const int8_t *)p)[i];
    case KILN_UINT8: return ((const uint8_t *)p)[i];
    case KILN_INT32: return ((const int32_t *)p)[i];
    case KILN_INT64: return ((const int64_t *)p)[i];
    case KILN_BOOL:  return ((const uint8_t *)p)[i];
    default:         return INT64_MIN;
    }
}

/* Float formats: precision p (with the implicit bit), exponent of the
 * smallest subnormal, largest finite value. */
typedef struct float_format { int p, qmin; double max; } float_format;
static float_format format_of(kiln_dtype dt) {
    switch (dt) {
    case KILN_FLOAT16:  return (float_format){11, -24, 65504.0};
    case KILN_BFLOAT16: return (float_format){8, -133, ldexp(255.0, 120)};
    default:            return (float_format){24, -149, FLT_MAX};
    }
}

/* v (exact in double) rounded to nearest even in format f. */
static double ref_round(double v, float_format f) {
    if (isnan(v) || isinf(v) || v == 0) return v;
    int e;
    frexp(v, &e);
    int q = e - f.p;
    if (q < f.qmin) q = f.qmin;
    double r = ldexp(nearbyint(ldexp(v, -q)), q);
    if (fabs(r) > f.max) return copysign(INFINITY, v);
    if (r == 0) return copysign(0.0, v);
    return r;
}

/* An int64 rounded to nearest even in format f (exact for any int64). */
static double ref_round_int(int64_t v, float_format f) {
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    int bits = 0;
    while (bits < 64 && (u >> bits)) bits++;
    double r;
    if (bits <= f.p) {
        r = (double)u;
    } else {
        int shift = bits - f.p;
        uint64_t q = u >> shift, rem = u & ((UINT64_C(1) << shift) - 1), half = UINT64_C(1) << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        r = ldexp((double)q, shift);
    }
    if (r > f.max) r = INFINITY;
    return v < 0 ? -r : r;
}

static void set_f(kiln_dtype dt, void *p, int64_t i, double v) {
    switch (dt) {
    case KILN_FLOAT32:  ((float *)p)[i] = (float)v; break;
    case KILN_FLOAT16:  ((uint16_t *)p)[i] = kiln_f32_to_f16((float)v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_bf16((float)v); break;
    default: break;
    }
}

static int int_bits(kiln_dtype dt) {
    switch (dt) {
    case KILN_INT8: case KILN_UINT8: return 8;
    case KILN_INT32: return 32;
    default: return 64;
    }
}
static int is_signed(kiln_dtype dt) { return dt == KILN_INT8 || dt == KILN_INT32 || dt == KILN_INT64; }
static int64_t int_min(kiln_dtype dt) {
    return dt == KILN_INT8 ? INT8_MIN : dt == KILN_INT32 ? INT32_MIN : dt == KILN_INT64 ? INT64_MIN : 0;
}
static int64_t int_max(kiln_dtype dt) {
    return dt == KILN_INT8 ? INT8_MAX : dt == KILN_UINT8 ? UINT8_MAX : dt == KILN_INT32 ? INT32_MAX
         : dt == KILN_INT64 ? INT64_MAX : 1;
}

/* u reduced modulo 2^bits of dt, read as dt (two's complement when signed). */
static int64_t ref_wrap(kiln_dtype dt, uint64_t u) {
    if (dt == KILN_BOOL) return u != 0;
    int bits = int_bits(dt);
    if (bits == 64) {
        int64_t r;
        memcpy(&r, &u, sizeof r);
        return r;
    }
    uint64_t m = u & ((UINT64_C(1) << bits) - 1);
    if (is_signed(dt) && (m >> (bits - 1))) return (int64_t)m - ((int64_t)1 << bits);
    return (int64_t)m;
}

static void set_i(kiln_dtype dt, void *p, int64_t i, int64_t v) {
    int64_t w = ref_wrap(dt, (uint64_t)v);
    switch (dt) {
    case KILN_INT8:  ((int8_t *)p)[i] = (int8_t)w; break;
    case KILN_UINT8: ((uint8_t *)p)[i] = (uint8_t)w; break;
    case KILN_INT32: ((int32_t *)p)[i] = (int32_t)w; break;
    case KILN_INT64: ((int64_t *)p)[i] = w; break;
    case KILN_BOOL:  ((uint8_t *)p)[i] = (uint8_t)w; break;
    default: break;
    }
}

static int same_float(double want, double got) {
    if (isnan(want)) return isnan(got);
    return want == got;
}

/* ------------------------------------------------------------------------ */
/* The function table                                                       */
/* ------------------------------------------------------------------------ */

static void test_backend_table(void) {
    const kiln_backend_iface *cpu = kiln_backend_cpu();
    REQUIRE(cpu != NULL);
    CHECK(cpu->api_version == KILN_BACKEND_API_VERSION);
    CHECK(strcmp(cpu->name, "cpu") == 0);
    CHECK(cpu->device_type == KILN_DEVICE_CPU);
    CHECK(cpu->device_count() == 1);
    CHECK(cpu->set_device == NULL);

    void *p = NULL;
    CHECK_OK(cpu->alloc(0, 1000, &p));
    REQUIRE(p != NULL);
    CHECK(((uintptr_t)p & 63) == 0);
    char src[1000];
    for (int i = 0; i < 1000; i++) src[i] = (char)i;
    CHECK_OK(cpu->copy(0, p, src, sizeof src, KILN_COPY_HOST_TO_DEVICE, NULL));
    char back[1000];
    CHECK_OK(cpu->copy(0, back, p, sizeof back, KILN_COPY_DEVICE_TO_HOST, NULL));
    CHECK(memcmp(src, back, sizeof src) == 0);
    CHECK_OK(cpu->synchronize(0, NULL));
    cpu->free(0, p);

    kiln_alloc_fail_after(0);
    p = NULL;
    CHECK_FAILS(cpu->alloc(0, 64, &p), KILN_ERROR_NO_MEMORY, "cannot allocate");
    kiln_alloc_fail_after(-1);
    CHECK(p == NULL);
    CHECK_FAILS(cpu->alloc(1, 64, &p), KILN_ERROR_INVALID_ARGUMENT, "no device 1");
}

static void test_dispatch_errors(void) {
    float x = 1, y = 0;
    int64_t one = 1;
    kiln_tensor_desc in = make_desc(&x, KILN_FLOAT32, 1, &one), out = make_desc(&y, KILN_FLOAT32, 1, &one);
    CHECK_FAILS(run_op(KILN_OP_PLUGIN, 0, 0, 1, &in, &out), KILN_ERROR_UNSUPPORTED, "plugin");
    CHECK_FAILS(run_op(99, 0, 0, 1, &in, &out), KILN_ERROR_UNSUPPORTED, "op 99");
    CHECK_FAILS(run_op(KILN_OP_BINARY, KILN_BINARY_ADD, 0, 1, &in, &out), KILN_ERROR_INVALID_ARGUMENT,
                "binary takes 2 input(s)");
    CHECK_FAILS(run_op(KILN_OP_BINARY, 17, 0, 2, (kiln_tensor_desc[]){in, in}, &out), KILN_ERROR_UNSUPPORTED,
                "binary op 17");
    CHECK_FAILS(run_op(KILN_OP_UNARY, -1, 0, 1, &in, &out), KILN_ERROR_UNSUPPORTED, "unary op -1");
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL launch");
}

/* ------------------------------------------------------------------------ */
/* Bulk half conversions                                                    */
/* ------------------------------------------------------------------------ */

/* The vectorized conversions agree bit for bit with core/dtype.h: every half
 * value, and float32 bit patterns swept with a stride plus the rounding ties
 * and range edges of every exponent. */
static void test_bulk_conversions(void) {
    enum { N = 65536 };
    uint16_t *h = malloc(N * sizeof *h), *h2 = malloc(N * sizeof *h2);
    float *f = malloc(N * sizeof *f);
    uint32_t *bits = malloc(N * sizeof *bits);
    REQUIRE(h && h2 && f && bits);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
    int bad = 0;
    kiln_cpu_f16_to_f32(h, f, N);
    for (int i = 0; i < N; i++) {
        float want = kiln_f16_to_f32(h[i]);
        if (memcmp(&want, &f[i], 4) != 0 && bad++ < 5) fprintf(stderr, "  f16 %04x → %a, want %a\n", i, f[i], want);
    }
    kiln_cpu_bf16_to_f32(h, f, N);
    for (int i = 0; i < N; i++) {
        float want = kiln_bf16_to_f32(h[i]);
        if (memcmp(&want, &f[i], 4) != 0 && bad++ < 5) fprintf(stderr, "  bf16 %04x → %a, want %a\n", i, f[i], want);
    }
    CHECK(bad == 0);

    static const uint32_t low_bits[] = {0x0, 0x1, 0x0fff, 0x1000, 0x1001, 0x3000, 0x7fff, 0x8000, 0x8001, 0x18000, 0x7fffff};
    static const uint32_t edges[] = {0x477fefff, 0x477ff000, 0x477ff001, 0x387fffff, 0x38800000, 0x38800001,
                                     0x33000000, 0x33000001, 0x32ffffff, 0x7f800000, 0x7f800001, 0x7fc00000,
                                     0x7fffffff, 0x7f7fffff, 0x00000001, 0x00000000};
    uint64_t next = 0;
    int rounds = 0;
    bad = 0;
    while (next < (UINT64_C(1) << 32)) {
        int n = 0;
        if (rounds == 0) {   /* the ties and edges first */
            for (uint32_t e = 0; e < 256; e++)
                for (size_t k = 0; k < sizeof low_bits / sizeof low_bits[0]; k++)
                    for (uint32_t sign = 0; sign < 2; sign++)
                        bits[n++] = sign << 31 | e << 23 | ((uint32_t)rng() & 0x7f0000u & ~low_bits[k]) | low_bits[k];
            for (size_t k = 0; k < sizeof edges / sizeof edges[0]; k++) {
                bits[n++] = edges[k];
                bits[n++] = edges[k] | 0x80000000u;
            }
        } else {
            for (; n < N && next < (UINT64_C(1) << 32); n++, next += 4099) bits[n] = (uint32_t)next;
        }
        rounds++;
        memcpy(f, bits, (size_t)n * sizeof *f);
        kiln_cpu_f32_to_f16(f, h, n);
        kiln_cpu_f32_to_bf16(f, h2, n);
        for (int i = 0; i < n; i++) {
            uint16_t want = kiln_f32_to_f16(f[i]), want_b = kiln_f32_to_bf16(f[i]);
            if (h[i] != want && bad++ < 5) fprintf(stderr, "  f32 %08x → f16 %04x, want %04x\n", bits[i], h[i], want);
            if (h2[i] != want_b && bad++ < 5)
                fprintf(stderr, "  f32 %08x → bf16 %04x, want %04x\n", bits[i], h2[i], want_b);
        }
    }
    CHECK(bad == 0);
    CHECK(rounds > 1);
    free(h);
    free(h2);
    free(f);
    free(bits);
}

/* ------------------------------------------------------------------------ */
/* CAST                                                                     */
/* ------------------------------------------------------------------------ */

/* Source values: doubles for float dtypes (rounded into the dtype when
 * stored), int64 for the others (wrapped when stored). */
static const double cast_float_values[] = {
    0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 1.5, 2.5, -2.5, -3.7, 3.7, 127.0, 127.9, 128.0, -128.0, -128.5, -129.0,
    255.0, 255.5, 256.0, 300.0, -300.0, 2049.0, 2051.0, 257.0, 259.0, 65504.0, 65519.0, 65520.0, 1e10, -1e10,
    3e9, -3e9, 2147483520.0, 2147483648.0, -2147483648.0, -2147483904.0, 9.2e18, 9.3e18, -9.3e18, 1e-8, 3e-8,
    6e-8, 1.0009765625, 1.00048828125, 1.00146484375, 1e30, 3.4e38, -3.4e38, 1e-40, NAN, INFINITY, -INFINITY,
};
static const int64_t cast_int_values[] = {
    0, 1, -1, 2, 7, -7, 100, 127, 128, -128, -129, 200, 255, 256, 257, 1000, -1000, 2049, 65504, 65520, 70000,
    16777216, 16777217, 16842753, 16908289, INT32_MAX, INT32_MIN, (int64_t)1 << 31, -((int64_t)1 << 40) - 1,
    ((int64_t)1 << 53) + 1, ((int64_t)1 << 62) + 12345, INT64_MAX, INT64_MIN, INT64_MIN + 1,
};

static int64_t ref_float_to_int(double v, kiln_dtype to) {
    if (isnan(v)) return 0;
    double t = trunc(v);
    if (t <= (double)int_min(to)) return int_min(to);
    if (t >= ldexp(1.0, 63) || t >= (double)int_max(to)) return int_max(to);
    return (int64_t)t;
}

static void check_cast(kiln_dtype from, kiln_dtype to) {
    const int64_t n_src = is_float(from) ? (int64_t)(sizeof cast_float_values / sizeof cast_float_values[0])
                                         : (int64_t)(sizeof cast_int_values / sizeof cast_int_values[0]);
    void *in = alloc_elems(from, n_src), *out = alloc_elems(to, n_src);
    REQUIRE(in && out);
    for (int64_t i = 0; i < n_src; i++) {
        if (is_float(from)) set_f(from, in, i, cast_float_values[i]);
        else set_i(from, in, i, cast_int_values[i]);
    }
    int64_t dims[2] = {1, n_src};
    kiln_tensor_desc din = make_desc(in, from, 2, dims), dout = make_desc(out, to, 2, dims);
    kiln_status st = run_op(KILN_OP_CAST, 0, 0, 1, &din, &dout);
    CHECK(st == KILN_OK);
    int bad = 0;
    for (int64_t i = 0; i < n_src && st == KILN_OK && bad < 5; i++) {
        if (is_float(from)) {
            double v = get_f(from, in, i);
            if (is_float(to)) {
                double want = ref_round(v, format_of(to)), got = get_f(to, out, i);
                if (!same_float(want, got) || (want == 0 && signbit(want) != signbit(got))) {
                    bad++;
                    fprintf(stderr, "  cast %s→%s of %.17g: want %.17g got %.17g\n", kiln_dtype_name(from),
                            kiln_dtype_name(to), v, want, got);
                }
            } else {
                int64_t want = to == KILN_BOOL ? (v != 0 || isnan(v)) : ref_float_to_int(v, to);
                int64_t got = get_i(to, out, i);
                if (want != got) {
                    bad++;
                    fprintf(stderr, "  cast %s→%s of %.17g: want %lld got %lld\n", kiln_dtype_name(from),
                            kiln_dtype_name(to), v, (long long)want, (long long)got);
                }
            }
        } else {
            int64_t v = get_i(from, in, i);
            if (from == KILN_BOOL) v = v != 0;
            if (is_float(to)) {
                double want = ref_round_int(v, format_of(to)), got = get_f(to, out, i);
                if (!same_float(want, got)) {
                    bad++;
                    fprintf(stderr, "  cast %s→%s of %lld: want %.17g got %.17g\n", kiln_dtype_name(from),
                            kiln_dtype_name(to), (long long)v, want, got);
                }
            } else {
                int64_t want = ref_wrap(to, (uint64_t)v), got = get_i(to, out, i);
                if (want != got) {
                    bad++;
                    fprintf(stderr, "  cast %s→%s of %lld: want %lld got %lld\n", kiln_dtype_name(from),
                            kiln_dtype_name(to), (long long)v, (long long)want, (long long)got);
                }
            }
        }
    }
    CHECK(bad == 0);
    free(in);
    free(out);
}

static void test_cast_all_pairs(void) {
    for (int a = 0; a < DTYPE_COUNT; a++)
        for (int b = 0; b < DTYPE_COUNT; b++) check_cast(all_dtypes[a], all_dtypes[b]);
}

/* The edge cases spelled out, so that a wrong reference cannot hide them. */
static void test_cast_edges(void) {
    float f[] = {NAN, INFINITY, -INFINITY, 3e9f, -3e9f, -0.5f, -1.0f, 2.5f, -2.5f, 255.9f, 256.0f};
    int64_t n = sizeof f / sizeof f[0];
    int32_t i32[sizeof f / sizeof f[0]];
    uint8_t u8[sizeof f / sizeof f[0]], b[sizeof f / sizeof f[0]];
    int8_t i8[sizeof f / sizeof f[0]];
    kiln_tensor_desc in = make_desc(f, KILN_FLOAT32, 1, &n);
    kiln_tensor_desc o32 = make_desc(i32, KILN_INT32, 1, &n), ou8 = make_desc(u8, KILN_UINT8, 1, &n);
    kiln_tensor_desc oi8 = make_desc(i8, KILN_INT8, 1, &n), ob = make_desc(b, KILN_BOOL, 1, &n);
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &in, &o32));
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &in, &ou8));
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &in, &oi8));
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &in, &ob));
    const int32_t want32[] = {0, INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN, 0, -1, 2, -2, 255, 256};
    const uint8_t wantu8[] = {0, 255, 0, 255, 0, 0, 0, 2, 0, 255, 255};
    const int8_t wanti8[] = {0, 127, -128, 127, -128, 0, -1, 2, -2, 127, 127};
    const uint8_t wantb[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(memcmp(i32, want32, sizeof want32) == 0);
    CHECK(memcmp(u8, wantu8, sizeof wantu8) == 0);
    CHECK(memcmp(i8, wanti8, sizeof wanti8) == 0);
    CHECK(memcmp(b, wantb, sizeof wantb) == 0);

    /* Negative integers to uint8 wrap; int64 to bf16 rounds once, not twice. */
    int64_t iv[] = {-1, -256, 16842753 /* 2^24 + 2^16 + 1 */, 2049, 2051, 0};
    int64_t m = 6;
    uint8_t ub[6];
    uint16_t h[6], bf[6];
    kiln_tensor_desc iin = make_desc(iv, KILN_INT64, 1, &m);
    kiln_tensor_desc oub = make_desc(ub, KILN_UINT8, 1, &m), oh = make_desc(h, KILN_FLOAT16, 1, &m);
    kiln_tensor_desc obf = make_desc(bf, KILN_BFLOAT16, 1, &m);
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &iin, &oub));
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &iin, &oh));
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &iin, &obf));
    CHECK(ub[0] == 255 && ub[1] == 0 && ub[5] == 0);
    CHECK(decode_bf16(bf[2]) == 16908288.0);     /* 2^24 + 2^17: above the halfway point */
    CHECK(decode_f16(h[3]) == 2048.0);           /* tie → even */
    CHECK(decode_f16(h[4]) == 2052.0);           /* tie → even */
    CHECK(isinf(decode_f16(h[2])));

    /* f32 → f16 ties at 1 + 2^-11 and 1 + 3 * 2^-11, and 2.5 exact. */
    float hf[] = {1.00048828125f, 1.00146484375f, 2.5f, -0.0f, 65520.0f};
    int64_t k = 5;
    uint16_t hout[5];
    kiln_tensor_desc hin = make_desc(hf, KILN_FLOAT32, 1, &k), hod = make_desc(hout, KILN_FLOAT16, 1, &k);
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &hin, &hod));
    CHECK(hout[0] == 0x3c00 && hout[1] == 0x3c02 && hout[2] == 0x4100 && hout[3] == 0x8000 && hout[4] == 0x7c00);

    /* Same dtype is a copy; an unknown dtype is refused. */
    float c_in[3] = {1, 2, 3}, c_out[3] = {0};
    int64_t three = 3;
    kiln_tensor_desc cin = make_desc(c_in, KILN_FLOAT32, 1, &three), cout = make_desc(c_out, KILN_FLOAT32, 1, &three);
    CHECK_OK(run_op(KILN_OP_CAST, 0, 0, 1, &cin, &cout));
    CHECK(c_out[0] == 1 && c_out[2] == 3);
    cout.dtype = (kiln_dtype)42;
    CHECK_FAILS(run_op(KILN_OP_CAST, 0, 0, 1, &cin, &cout), KILN_ERROR_UNSUPPORTED, "cast from float32");
}

/* ------------------------------------------------------------------------ */
/* BINARY                                                                   */
/* ------------------------------------------------------------------------ */

static void fill_values(kiln_dtype dt, void *p, int64_t n, int specials) {
    static const double float_specials[] = {0.0, -0.0, NAN, INFINITY, -INFINITY, 1.0, -1.0};
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = rng();
        if (is_float(dt)) {
            double v;
            if (specials && r % 11 == 0) v = float_specials[(r >> 8) % 7];
            else if (r % 3 == 0) v = (double)((int64_t)(r >> 16) % 65) / 8.0;           /* exact quarters */
            else v = ((double)(r >> 11) / 9007199254740992.0 - 0.5) * 20.0;            /* [-10, 10) */
            set_f(dt, p, i, v);
        } else if (dt == KILN_BOOL) {
            set_i(dt, p, i, (int64_t)((r >> 7) & 1));
        } else {
            int64_t edges[] = {0, 1, -1, 2, -2, 7, -7, int_min(dt), int_max(dt), int_min(dt) + 1};
            int64_t v;
            if (specials && r % 4 == 0) v = edges[(r >> 8) % 10];
            else {
                int64_t span = int_bits(dt) == 64 ? INT64_MAX : int_max(dt) - int_min(dt) + 1;
                v = int_min(dt) + (int64_t)((r >> 1) % (uint64_t)span);
                if (r % 5 == 0) v = (int64_t)((r >> 20) % 41) - 20;          /* small values too */
            }
            set_i(dt, p, i, v);
        }
    }
}

static double ref_binary_float(int op, double x, double y) {
    switch (op) {
    case KILN_BINARY_ADD: return x + y;
    case KILN_BINARY_SUB: return x - y;
    case KILN_BINARY_MUL: return x * y;
    case KILN_BINARY_DIV: return x / y;
    case KILN_BINARY_MIN: return isnan(x) || isnan(y) ? NAN : x < y ? x : y;
    case KILN_BINARY_POW: return pow(x, y);
    case KILN_BINARY_FMOD: return fmod(x, y);
    case KILN_BINARY_MOD: {   /* numpy.mod: the divisor's sign */
        double r = fmod(x, y);
        return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
    default:              return isnan(x) || isnan(y) ? NAN : x > y ? x : y;
    }
}

static int64_t ref_binary_int(kiln_dtype dt, int op, int64_t x, int64_t y) {
    if (dt == KILN_BOOL) {
        int a = x != 0, b = y != 0;
        switch (op) {
        case KILN_BINARY_ADD: case KILN_BINARY_MAX: return a | b;
        case KILN_BINARY_SUB: return a ^ b;
        case KILN_BINARY_MUL: case KILN_BINARY_MIN: return a & b;
        default: return a;
        }
    }
    switch (op) {
    case KILN_BINARY_ADD: return ref_wrap(dt, (uint64_t)x + (uint64_t)y);
    case KILN_BINARY_SUB: return ref_wrap(dt, (uint64_t)x - (uint64_t)y);
    case KILN_BINARY_MUL: return ref_wrap(dt, (uint64_t)x * (uint64_t)y);
    case KILN_BINARY_DIV:
        if (y == 0) return 0;
        if (x == int_min(dt) && y == -1 && is_signed(dt)) return x;
        return x / y;
    case KILN_BINARY_MIN: return x < y ? x : y;
    case KILN_BINARY_FMOD: return y == 0 || y == -1 ? 0 : x % y;
    case KILN_BINARY_MOD: {
        if (y == 0 || y == -1) return 0;
        int64_t r = x % y;
        return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
    }
    default: return x > y ? x : y;
    }
}

/* Runs a (op) b with the given shapes and compares every output element. */
static void check_binary(kiln_dtype dt, int op, int ra, const int64_t *da, int rb, const int64_t *db) {
    int ro = ra > rb ? ra : rb;
    int64_t dout[KILN_MAX_RANK];
    for (int i = 0; i < ro; i++) {
        int ia = i - (ro - ra), ib = i - (ro - rb);
        int64_t x = ia >= 0 ? da[ia] : 1, y = ib >= 0 ? db[ib] : 1;
        dout[i] = x == 1 ? y : x;
    }
    int64_t na = numel_of(ra, da), nb = numel_of(rb, db), no = numel_of(ro, dout);
    void *a = alloc_elems(dt, na), *b = alloc_elems(dt, nb), *o = alloc_elems(dt, no);
    REQUIRE(a && b && o);
    fill_values(dt, a, na, 1);
    fill_values(dt, b, nb, 1);
    kiln_tensor_desc ins[2] = {make_desc(a, dt, ra, da), make_desc(b, dt, rb, db)};
    kiln_tensor_desc out = make_desc(o, dt, ro, dout);
    kiln_status st = run_op(KILN_OP_BINARY, op, 0, 2, ins, &out);
    CHECK(st == KILN_OK);
    int bad = 0;
    for (int64_t t = 0; t < no && st == KILN_OK && bad < 5; t++) {
        /* Unravel t, then ravel into a and b with broadcasting. */
        int64_t rest = t, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int i = ro - 1; i >= 0; i--) {
            int64_t c = rest % dout[i];
            rest /= dout[i];
            int xa = i - (ro - ra), xb = i - (ro - rb);
            if (xa >= 0) { if (da[xa] != 1) ia += c * sa; sa *= da[xa]; }
            if (xb >= 0) { if (db[xb] != 1) ib += c * sb; sb *= db[xb]; }
        }
        if (is_float(dt)) {
            double x = get_f(dt, a, ia), y = get_f(dt, b, ib);
            /* float32 arithmetic is the double result rounded once; the
             * half types then round that float32 again. */
            double want = (double)(float)ref_binary_float(op, x, y);
            if (dt != KILN_FLOAT32) want = ref_round(want, format_of(dt));
            double got = get_f(dt, o, t);
            /* powf is within an ulp or so of the double result, not exact; a
             * half type may then round that to its neighbour. */
            int ok = op == KILN_BINARY_POW && !isnan(want) && !isinf(want)
                         ? fabs(got - want) <= fabs(want) * (dt == KILN_FLOAT32 ? 4e-7 : 1e-2)
                         : same_float(want, got);
            if (!ok) {
                bad++;
                fprintf(stderr, "  binary %d %s [%lld]: %.9g, %.9g → want %.9g got %.9g\n", op, kiln_dtype_name(dt),
                        (long long)t, x, y, want, got);
            }
        } else {
            int64_t x = get_i(dt, a, ia), y = get_i(dt, b, ib);
            int64_t want = ref_binary_int(dt, op, x, y), got = get_i(dt, o, t);
            if (want != got) {
                bad++;
                fprintf(stderr, "  binary %d %s [%lld]: %lld, %lld → want %lld got %lld\n", op, kiln_dtype_name(dt),
                        (long long)t, (long long)x, (long long)y, (long long)want, (long long)got);
            }
        }
    }
    CHECK(bad == 0);
    free(a);
    free(b);
    free(o);
}

static void test_binary_all(void) {
    static const struct { int ra; int64_t da[4]; int rb; int64_t db[4]; } cases[] = {
        {3, {2, 3, 4}, 3, {2, 3, 4}},      /* same shape */
        {1, {600}, 1, {600}},              /* long: crosses the half chunk size */
        {3, {2, 3, 4}, 0, {0}},            /* scalar b (rank 0) */
        {0, {0}, 1, {5}},                  /* scalar a */
        {1, {6}, 1, {1}},                  /* size-1 b */
        {2, {3, 4}, 1, {4}},               /* row */
        {2, {2, 300}, 1, {300}},           /* long rows */
        {2, {3, 4}, 2, {3, 1}},            /* column */
        {2, {3, 1}, 2, {3, 4}},            /* column on the left */
        {3, {2, 3, 4}, 2, {3, 1}},         /* rank mismatch and a size-1 axis */
        {2, {3, 1}, 2, {1, 4}},            /* both sides broadcast */
        {3, {2, 1, 4}, 2, {3, 1}},         /* both sides, rank mismatch */
        {4, {2, 1, 3, 1}, 3, {4, 1, 5}},   /* interleaved */
        {3, {1, 3, 1}, 3, {1, 3, 1}},      /* size-1 output axes */
        {2, {0, 4}, 1, {4}},               /* empty */
        {0, {0}, 0, {0}},                  /* scalar and scalar */
    };
    for (int d = 0; d < DTYPE_COUNT; d++)
        for (int op = 0; op < KILN_BINARY_OP_COUNT; op++)
            for (size_t c = 0; c < sizeof cases / sizeof cases[0] && kiln_binary_op_accepts(op, all_dtypes[d]); c++)
                check_binary(all_dtypes[d], op, cases[c].ra, cases[c].da, cases[c].rb, cases[c].db);
}

static void test_binary_integer_edges(void) {
    int32_t a[] = {7, -7, 7, -7, 5, INT32_MIN, INT32_MAX, INT32_MIN, 0};
    int32_t b[] = {2, 2, -2, -2, 0, -1, 1, 1, 0};
    int32_t q[9], s[9], d[9];
    int64_t n = 9;
    kiln_tensor_desc ins[2] = {make_desc(a, KILN_INT32, 1, &n), make_desc(b, KILN_INT32, 1, &n)};
    kiln_tensor_desc oq = make_desc(q, KILN_INT32, 1, &n), os = make_desc(s, KILN_INT32, 1, &n);
    kiln_tensor_desc od = make_desc(d, KILN_INT32, 1, &n);
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_DIV, 0, 2, ins, &oq));
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_ADD, 0, 2, ins, &os));
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_SUB, 0, 2, ins, &od));
    const int32_t wq[] = {3, -3, -3, 3, 0, INT32_MIN, INT32_MAX, INT32_MIN, 0};
    CHECK(memcmp(q, wq, sizeof wq) == 0);
    CHECK(s[6] == INT32_MIN);      /* INT32_MAX + 1 wraps */
    CHECK(d[7] == INT32_MAX);      /* INT32_MIN - 1 wraps */

    int8_t a8[] = {-128, 100, -128}, b8[] = {-1, 100, 0}, q8[3], m8[3];
    int64_t n3 = 3;
    kiln_tensor_desc i8s[2] = {make_desc(a8, KILN_INT8, 1, &n3), make_desc(b8, KILN_INT8, 1, &n3)};
    kiln_tensor_desc oq8 = make_desc(q8, KILN_INT8, 1, &n3), om8 = make_desc(m8, KILN_INT8, 1, &n3);
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_DIV, 0, 2, i8s, &oq8));
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_MUL, 0, 2, i8s, &om8));
    CHECK(q8[0] == -128 && q8[1] == 1 && q8[2] == 0);
    CHECK(m8[1] == 16);            /* 10000 mod 256 */

    int64_t a64[] = {INT64_MIN, INT64_MAX}, b64[] = {-1, 2}, q64[2], p64[2];
    int64_t n2 = 2;
    kiln_tensor_desc i64s[2] = {make_desc(a64, KILN_INT64, 1, &n2), make_desc(b64, KILN_INT64, 1, &n2)};
    kiln_tensor_desc oq64 = make_desc(q64, KILN_INT64, 1, &n2), op64 = make_desc(p64, KILN_INT64, 1, &n2);
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_DIV, 0, 2, i64s, &oq64));
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_MUL, 0, 2, i64s, &op64));
    CHECK(q64[0] == INT64_MIN && q64[1] == INT64_MAX / 2);
    CHECK(p64[0] == INT64_MIN && p64[1] == -2);

    /* Float NaN propagates through MIN and MAX. */
    float fa[] = {NAN, 1.0f, 2.0f}, fb[] = {1.0f, NAN, 3.0f}, fm[3];
    kiln_tensor_desc fs[2] = {make_desc(fa, KILN_FLOAT32, 1, &n3), make_desc(fb, KILN_FLOAT32, 1, &n3)};
    kiln_tensor_desc ofm = make_desc(fm, KILN_FLOAT32, 1, &n3);
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_MIN, 0, 2, fs, &ofm));
    CHECK(isnan(fm[0]) && isnan(fm[1]) && fm[2] == 2.0f);

    /* Mixed dtypes are refused. */
    kiln_tensor_desc mixed[2] = {make_desc(a, KILN_INT32, 1, &n3), make_desc(fa, KILN_FLOAT32, 1, &n3)};
    CHECK_FAILS(run_op(KILN_OP_BINARY, KILN_BINARY_ADD, 0, 2, mixed, &ofm), KILN_ERROR_UNSUPPORTED, "add");
    /* An incompatible broadcast is refused, not read out of bounds. */
    int64_t n4 = 4;
    kiln_tensor_desc wrong[2] = {make_desc(fa, KILN_FLOAT32, 1, &n3), make_desc(fb, KILN_FLOAT32, 1, &n3)};
    float big[4];
    kiln_tensor_desc obig = make_desc(big, KILN_FLOAT32, 1, &n4);
    CHECK_FAILS(run_op(KILN_OP_BINARY, KILN_BINARY_ADD, 0, 2, wrong, &obig), KILN_ERROR_INVALID_ARGUMENT,
                "operand a axis 0 has size 3");
}

/* Operating in place (out is a) works for the contiguous case. */
static void test_binary_in_place(void) {
    float a[5] = {1, 2, 3, 4, 5}, b[5] = {10, 20, 30, 40, 50};
    int64_t n = 5;
    kiln_tensor_desc ins[2] = {make_desc(a, KILN_FLOAT32, 1, &n), make_desc(b, KILN_FLOAT32, 1, &n)};
    CHECK_OK(run_op(KILN_OP_BINARY, KILN_BINARY_ADD, 0, 2, ins, &ins[0]));
    CHECK(a[0] == 11 && a[4] == 55);
}

/* ------------------------------------------------------------------------ */
/* UNARY                                                                    */
/* ------------------------------------------------------------------------ */

static double ref_unary(int op, double x) {
    switch (op) {
    case KILN_UNARY_RELU: return x < 0 ? 0 : x;
    case KILN_UNARY_GELU: return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case KILN_UNARY_SILU: return x / (1 + exp(-x));
    case KILN_UNARY_EXP:  return exp(x);
    case KILN_UNARY_NEG:  return -x;
    case KILN_UNARY_TANH: return tanh(x);
    case KILN_UNARY_SIGMOID: return 1 / (1 + exp(-x));
    case KILN_UNARY_ERF:  return erf(x);
    case KILN_UNARY_GELU_ERF: return 0.5 * x * (1 + erf(x / sqrt(2)));
    case KILN_UNARY_RSQRT: return 1 / sqrt(x);
    case KILN_UNARY_ABS:  return fabs(x);
    case KILN_UNARY_LOG:  return log(x);
    case KILN_UNARY_SIN:  return sin(x);
    case KILN_UNARY_COS:  return cos(x);
    case KILN_UNARY_FLOOR: return floor(x);
    case KILN_UNARY_CEIL: return ceil(x);
    case KILN_UNARY_RECIPROCAL: return 1 / x;
    case KILN_UNARY_SIGN: return isnan(x) ? x : (x > 0) - (x < 0);
    default:              return sqrt(x);
    }
}

static void check_unary_float(kiln_dtype dt, int op) {
    const int64_t n = 600;
    void *in = alloc_elems(dt, n), *out = alloc_elems(dt, n);
    REQUIRE(in && out);
    fill_values(dt, in, n, 0);
    set_f(dt, in, 0, 0.0);
    set_f(dt, in, 1, NAN);
    set_f(dt, in, 2, INFINITY);
    set_f(dt, in, 3, -1.0);
    set_f(dt, in, 4, 20.0);
    set_f(dt, in, 5, -20.0);
    set_f(dt, in, 6, 1e-3);
    kiln_tensor_desc din = make_desc(in, dt, 1, &n), dout = make_desc(out, dt, 1, &n);
    kiln_status st = run_op(KILN_OP_UNARY, op, 0, 1, &din, &dout);
    CHECK(st == KILN_OK);
    float_format f = format_of(dt);
    int bad = 0;
    for (int64_t i = 0; i < n && st == KILN_OK && bad < 5; i++) {
        double x = get_f(dt, in, i), want = ref_round(ref_unary(op, x), f), got = get_f(dt, out, i);
        if (op == KILN_UNARY_GELU && isinf(x)) continue;   /* inf * 0 in the formula: no promise */
        int ok;
        if (isnan(want) || isinf(want)) ok = same_float(want, got);
        else {
            /* Within two units in the last place of the format (float32 math
             * functions may be off by one ulp before rounding), plus an
             * absolute slack near zero where GELU and SILU cancel. */
            double tol = ldexp(fabs(want), 2 - f.p) + (dt == KILN_FLOAT32 ? 1e-6 : ldexp(1.0, -f.p - 4));
            ok = fabs(want - got) <= tol;
        }
        if (!ok) {
            bad++;
            fprintf(stderr, "  unary %d %s of %.9g: want %.9g got %.9g\n", op, kiln_dtype_name(dt), x, want, got);
        }
    }
    CHECK(bad == 0);
    free(in);
    free(out);
}

/* exp, silu and gelu compute e^x without the C library (vectorized): sweep
 * float32 across exp's whole range — overflow, subnormal results, underflow
 * — and near zero, against double precision, within two ulp. */
static void test_unary_exp_sweep(void) {
    const int64_t n = 200000 + 64;
    float *in = malloc((size_t)n * sizeof *in), *out = malloc((size_t)n * sizeof *out);
    REQUIRE(in && out);
    for (int64_t i = 0; i < 200000; i++) in[i] = (float)(-110.0 + 205.0 * (double)i / 200000.0);
    for (int i = 0; i < 64; i++) in[200000 + i] = (i % 2 ? -1.0f : 1.0f) * ldexpf(1.0f, -(i / 2) * 4);
    kiln_tensor_desc din = make_desc(in, KILN_FLOAT32, 1, &n), dout = make_desc(out, KILN_FLOAT32, 1, &n);
    const int ops[] = {KILN_UNARY_EXP, KILN_UNARY_SILU, KILN_UNARY_GELU};
    float_format f = format_of(KILN_FLOAT32);
    for (int k = 0; k < 3; k++) {
        CHECK_OK(run_op(KILN_OP_UNARY, ops[k], 0, 1, &din, &dout));
        int bad = 0;
        for (int64_t i = 0; i < n; i++) {
            double want = ref_round(ref_unary(ops[k], in[i]), f), got = out[i];
            int ok = isinf(want) ? same_float(want, got)
                                 : fabs(want - got) <= ldexp(fabs(want), 2 - f.p) + 1e-6 * (ops[k] != KILN_UNARY_EXP)
                                                        + (fabs(want) < 0x1p-126 ? 0x1p-148 : 0.0);
            if (!ok && bad++ < 5)
                fprintf(stderr, "  unary %d of %.9g: want %.9g got %.9g\n", ops[k], (double)in[i], want, got);
        }
        CHECK(bad == 0);
    }
    free(in);
    free(out);
}

static void test_unary_all(void) {
    const kiln_dtype floats[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int d = 0; d < 3; d++)
        for (int op = 0; op < KILN_UNARY_OP_COUNT; op++) check_unary_float(floats[d], op);

    /* NEG on signed integers wraps at the minimum. */
    const kiln_dtype ints[] = {KILN_INT8, KILN_INT32, KILN_INT64};
    for (int d = 0; d < 3; d++) {
        kiln_dtype dt = ints[d];
        const int64_t n = 100;
        void *in = alloc_elems(dt, n), *out = alloc_elems(dt, n);
        REQUIRE(in && out);
        fill_values(dt, in, n, 1);
        set_i(dt, in, 0, int_min(dt));
        set_i(dt, in, 1, int_max(dt));
        kiln_tensor_desc din = make_desc(in, dt, 1, &n), dout = make_desc(out, dt, 1, &n);
        CHECK_OK(run_op(KILN_OP_UNARY, KILN_UNARY_NEG, 0, 1, &din, &dout));
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            if (get_i(dt, out, i) != ref_wrap(dt, 0 - (uint64_t)get_i(dt, in, i))) bad++;
        CHECK(bad == 0);
        CHECK(get_i(dt, out, 0) == int_min(dt));
        CHECK(get_i(dt, out, 1) == -int_max(dt));
        free(in);
        free(out);
    }

    /* Everything else is refused with the op and dtype named. */
    int32_t x[2] = {1, 2}, y[2];
    uint8_t u[2] = {1, 2}, v[2];
    int64_t n = 2;
    kiln_tensor_desc xi = make_desc(x, KILN_INT32, 1, &n), yi = make_desc(y, KILN_INT32, 1, &n);
    kiln_tensor_desc ub = make_desc(u, KILN_UINT8, 1, &n), vb = make_desc(v, KILN_UINT8, 1, &n);
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_RELU, 0, 1, &xi, &yi), KILN_ERROR_UNSUPPORTED, "relu on int32");
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_EXP, 0, 1, &xi, &yi), KILN_ERROR_UNSUPPORTED, "exp on int32");
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_NEG, 0, 1, &ub, &vb), KILN_ERROR_UNSUPPORTED, "neg on uint8");
    ub.dtype = vb.dtype = KILN_BOOL;
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_SQRT, 0, 1, &ub, &vb), KILN_ERROR_UNSUPPORTED, "sqrt on bool");
    ub.dtype = vb.dtype = KILN_INT64;
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_SILU, 0, 1, &ub, &vb), KILN_ERROR_UNSUPPORTED, "silu on int64");
}

/* ------------------------------------------------------------------------ */
/* GATHER                                                                   */
/* ------------------------------------------------------------------------ */

/* data of rank rd with dims dd, indices of rank ri with dims di; every data
 * element's value is its flat position, so the output says where it came from. */
static void check_gather(kiln_dtype dt, kiln_dtype it, int axis, int rd, const int64_t *dd, int ri,
                         const int64_t *di) {
    int64_t nd = numel_of(rd, dd), ni = numel_of(ri, di);
    int ro = rd - 1 + ri;
    int64_t dout[KILN_MAX_RANK];
    for (int i = 0; i < axis; i++) dout[i] = dd[i];
    for (int i = 0; i < ri; i++) dout[axis + i] = di[i];
    for (int i = axis + 1; i < rd; i++) dout[ri + i - 1] = dd[i];
    int64_t no = numel_of(ro, dout);
    void *data = alloc_elems(dt, nd), *idx = alloc_elems(it, ni), *out = alloc_elems(dt, no);
    REQUIRE(data && idx && out);
    for (int64_t i = 0; i < nd; i++) {
        if (is_float(dt)) set_f(dt, data, i, (double)(i % 2000));
        else set_i(dt, data, i, dt == KILN_BOOL ? (i * 7 % 3 == 0) : i);
    }
    for (int64_t j = 0; j < ni; j++) set_i(it, idx, j, (int64_t)(rng() % (uint64_t)dd[axis]));
    kiln_tensor_desc ins[2] = {make_desc(data, dt, rd, dd), make_desc(idx, it, ri, di)};
    kiln_tensor_desc dto = make_desc(out, dt, ro, dout);
    CHECK_OK(run_op(KILN_OP_GATHER, 0, axis, 2, ins, &dto));
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= dd[i];
    for (int i = axis + 1; i < rd; i++) inner *= dd[i];
    int bad = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++)
            for (int64_t k = 0; k < inner; k++) {
                int64_t src = (o * dd[axis] + get_i(it, idx, j)) * inner + k, dst = (o * ni + j) * inner + k;
                size_t es = kiln_dtype_size(dt);
                if (memcmp((char *)data + src * es, (char *)out + dst * es, es) != 0) bad++;
            }
    CHECK(bad == 0);
    free(data);
    free(idx);
    free(out);
}

static void test_gather(void) {
    const int64_t d2[] = {5, 3}, d3[] = {2, 5, 3}, i1[] = {4}, i2[] = {2, 2}, emb[] = {50, 1000};
    const int64_t tok[] = {3, 7};
    for (int d = 0; d < DTYPE_COUNT; d++) {
        kiln_dtype dt = all_dtypes[d];
        for (int it = 0; it < 2; it++) {
            kiln_dtype idt = it ? KILN_INT64 : KILN_INT32;
            check_gather(dt, idt, 0, 2, d2, 2, i2);    /* rows */
            check_gather(dt, idt, 1, 2, d2, 1, i1);    /* single elements (typed copies) */
            check_gather(dt, idt, 1, 3, d3, 2, i2);    /* a middle axis */
            check_gather(dt, idt, 2, 3, d3, 1, i1);    /* last axis */
            check_gather(dt, idt, 0, 1, d2, 0, i1);    /* scalar index */
        }
    }
    check_gather(KILN_FLOAT16, KILN_INT32, 0, 2, emb, 2, tok);    /* embedding lookup */
    check_gather(KILN_FLOAT32, KILN_INT64, 0, 2, emb, 2, tok);

    /* Out-of-range indices name the index, its position and the range. */
    static uint8_t vocab[128256];
    int64_t vdims[2] = {128256, 1}, idims[1] = {13};
    int32_t ids[13] = {0};
    ids[12] = 128256;
    uint8_t got[13];
    int64_t odims[2] = {13, 1};
    kiln_tensor_desc ins[2] = {make_desc(vocab, KILN_UINT8, 2, vdims), make_desc(ids, KILN_INT32, 1, idims)};
    kiln_tensor_desc out = make_desc(got, KILN_UINT8, 2, odims);
    CHECK_FAILS(run_op(KILN_OP_GATHER, 0, 0, 2, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "gather: index 128256 at position 12 is out of range [0, 128256)");
    int64_t ids64[2] = {1, -1};
    int64_t two = 2;
    int64_t odims2[2] = {2, 1};
    ins[1] = make_desc(ids64, KILN_INT64, 1, &two);
    out = make_desc(got, KILN_UINT8, 2, odims2);
    CHECK_FAILS(run_op(KILN_OP_GATHER, 0, 0, 2, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "gather: index -1 at position 1 is out of range [0, 128256)");
    ins[1].dtype = KILN_FLOAT32;
    CHECK_FAILS(run_op(KILN_OP_GATHER, 0, 0, 2, ins, &out), KILN_ERROR_UNSUPPORTED, "gather indices of dtype float32");
    ins[1].dtype = KILN_INT64;
    CHECK_FAILS(run_op(KILN_OP_GATHER, 0, 2, 2, ins, &out), KILN_ERROR_INVALID_ARGUMENT, "gather axis 2");
}

/* ------------------------------------------------------------------------ */
/* SCATTER_ND, SCATTER_ELEMENTS                                             */
/* ------------------------------------------------------------------------ */

static kiln_status run_scatter(int op, int64_t axis, int64_t reduction, const kiln_tensor_desc *ins,
                               const kiln_tensor_desc *out) {
    kiln_layer_launch l = {.op = (uint8_t)op, .axis = axis, .attrs = &reduction, .attr_count = 1, .input_count = 3,
                           .output_count = 1, .inputs = ins, .outputs = out};
    return kiln_backend_cpu()->run_layer(0, &l, NULL);
}

/* Values whose sums and products every dtype holds exactly: small integers,
 * or (for mul) ±0.5, ±1, ±2; integer dtypes also get wide values (wrapping). */
static void scatter_fill(kiln_dtype dt, void *p, int64_t n, int reduction) {
    static const double mul_values[6] = {-2, -1, -0.5, 0.5, 1, 2};
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = rng();
        if (is_float(dt)) set_f(dt, p, i, reduction == KILN_SCATTER_MUL ? mul_values[r % 6] : (double)(r % 17) - 8);
        else if (dt == KILN_BOOL) set_i(dt, p, i, (int64_t)(r & 1));
        else set_i(dt, p, i, (r >> 62) ? (int64_t)(r % 17) - 8 : (int64_t)r);
    }
}

/* ref[at] ⊕= upd[j], independently of the kernel: floats in double, rounded
 * to the dtype; integers wrapped in 64 bits, then to the dtype. */
static void scatter_ref_combine(kiln_dtype dt, int reduction, void *ref, int64_t at, const void *upd, int64_t j) {
    if (reduction == KILN_SCATTER_NONE) {
        size_t es = kiln_dtype_size(dt);
        memcpy((char *)ref + at * (int64_t)es, (const char *)upd + j * (int64_t)es, es);
    } else if (is_float(dt)) {
        double o = get_f(dt, ref, at), u = get_f(dt, upd, j);
        double r = reduction == KILN_SCATTER_ADD ? o + u : reduction == KILN_SCATTER_MUL ? o * u
                 : reduction == KILN_SCATTER_MAX ? fmax(o, u) : fmin(o, u);
        set_f(dt, ref, at, r);
    } else {
        int64_t o = get_i(dt, ref, at), u = get_i(dt, upd, j);
        uint64_t r = reduction == KILN_SCATTER_ADD ? (uint64_t)o + (uint64_t)u
                   : reduction == KILN_SCATTER_MUL ? (uint64_t)o * (uint64_t)u
                   : (uint64_t)(reduction == KILN_SCATTER_MAX ? (o > u ? o : u) : (o < u ? o : u));
        set_i(dt, ref, at, ref_wrap(dt, r));
    }
}

/* scatter_nd of data [5, 3, 4] with `count` index tuples of k coordinates
 * (distinct for reduction none; some negative), against the reference. */
static void check_scatter_nd(kiln_dtype dt, kiln_dtype it, int reduction, int32_t k, int64_t count) {
    const int64_t dd[3] = {5, 3, 4};
    int64_t slice = 1;
    for (int32_t i = k; i < 3; i++) slice *= dd[i];
    int64_t idims[2] = {count, k}, udims[KILN_MAX_RANK] = {count};
    int32_t urank = 1;
    for (int32_t i = k; i < 3; i++) udims[urank++] = dd[i];
    int64_t n = numel_of(3, dd), nu = count * slice;
    void *data = alloc_elems(dt, n), *upd = alloc_elems(dt, nu), *out = alloc_elems(dt, n), *ref = alloc_elems(dt, n);
    void *ix = alloc_elems(it, count * k);
    REQUIRE(data && upd && out && ref && ix);
    scatter_fill(dt, data, n, reduction);
    scatter_fill(dt, upd, nu, reduction);
    memcpy(ref, data, (size_t)n * kiln_dtype_size(dt));
    int64_t positions = 1;
    for (int32_t i = 0; i < k; i++) positions *= dd[i];
    for (int64_t t = 0; t < count; t++) {
        /* none: tuple t is position (t * 7) mod positions (7 is prime to every count of positions here) */
        int64_t flat = reduction == KILN_SCATTER_NONE ? (t * 7) % positions : (int64_t)(rng() % (uint64_t)positions);
        int64_t at = 0, rest = flat;
        for (int32_t j = k - 1; j >= 0; j--) {
            int64_t c = rest % dd[j];
            rest /= dd[j];
            set_i(it, ix, t * k + j, rng() & 1 ? c - dd[j] : c);
            at += c * (j == 2 ? 1 : j == 1 ? dd[2] : dd[1] * dd[2]);
        }
        for (int64_t s = 0; s < slice; s++) scatter_ref_combine(dt, reduction, ref, at + s, upd, t * slice + s);
    }
    kiln_tensor_desc ins[3] = {make_desc(data, dt, 3, dd), make_desc(ix, it, 2, idims),
                               make_desc(upd, dt, urank, udims)};
    kiln_tensor_desc o = make_desc(out, dt, 3, dd);
    kiln_status st = run_scatter(KILN_OP_SCATTER_ND, 0, reduction, ins, &o);
    if (st) fprintf(stderr, "  scatter_nd %s: %s\n", kiln_dtype_name(dt), kiln_last_error());
    CHECK(st == KILN_OK);
    int bad = memcmp(out, ref, (size_t)n * kiln_dtype_size(dt)) != 0;
    if (bad) fprintf(stderr, "  scatter_nd %s, %s indices, reduction %d, k %d: differs from the reference\n",
                     kiln_dtype_name(dt), kiln_dtype_name(it), reduction, (int)k);
    CHECK(!bad);
    /* In place: the output is data's memory. */
    memcpy(out, data, (size_t)n * kiln_dtype_size(dt));
    kiln_tensor_desc same = make_desc(out, dt, 3, dd);
    ins[0] = same;
    CHECK_OK(run_scatter(KILN_OP_SCATTER_ND, 0, reduction, ins, &same));
    CHECK(memcmp(out, ref, (size_t)n * kiln_dtype_size(dt)) == 0);
    free(data); free(upd); free(out); free(ref); free(ix);
}

/* scatter_elements of data [4, 5, 3] along axis with indices [3, 4, 2]. */
static void check_scatter_elements(kiln_dtype dt, kiln_dtype it, int reduction, int32_t axis) {
    const int64_t dd[3] = {4, 5, 3}, id[3] = {3, 4, 2};
    int64_t n = numel_of(3, dd), ni = numel_of(3, id);
    void *data = alloc_elems(dt, n), *upd = alloc_elems(dt, ni), *out = alloc_elems(dt, n), *ref = alloc_elems(dt, n);
    void *ix = alloc_elems(it, ni);
    REQUIRE(data && upd && out && ref && ix);
    scatter_fill(dt, data, n, reduction);
    scatter_fill(dt, upd, ni, reduction);
    memcpy(ref, data, (size_t)n * kiln_dtype_size(dt));
    for (int64_t t = 0; t < ni; t++) {
        int64_t c[3] = {t / (id[1] * id[2]), t / id[2] % id[1], t % id[2]};
        /* none: distinct along the axis (coordinate + 1, shifted by the other coordinates) */
        int64_t v = reduction == KILN_SCATTER_NONE ? (c[axis] + 1 + c[(axis + 1) % 3]) % dd[axis]
                                                   : (int64_t)(rng() % (uint64_t)dd[axis]);
        set_i(it, ix, t, rng() & 1 ? v - dd[axis] : v);
        c[axis] = v;
        scatter_ref_combine(dt, reduction, ref, (c[0] * dd[1] + c[1]) * dd[2] + c[2], upd, t);
    }
    kiln_tensor_desc ins[3] = {make_desc(data, dt, 3, dd), make_desc(ix, it, 3, id), make_desc(upd, dt, 3, id)};
    kiln_tensor_desc o = make_desc(out, dt, 3, dd);
    CHECK_OK(run_scatter(KILN_OP_SCATTER_ELEMENTS, axis, reduction, ins, &o));
    int bad = memcmp(out, ref, (size_t)n * kiln_dtype_size(dt)) != 0;
    if (bad) fprintf(stderr, "  scatter_elements %s, %s indices, reduction %d, axis %d: differs from the reference\n",
                     kiln_dtype_name(dt), kiln_dtype_name(it), reduction, (int)axis);
    CHECK(!bad);
    free(data); free(upd); free(out); free(ref); free(ix);
}

static void test_scatter(void) {
    for (int d = 0; d < DTYPE_COUNT; d++) {
        kiln_dtype dt = all_dtypes[d];
        int reduces = is_float(dt) || dt == KILN_INT32 || dt == KILN_INT64;
        for (int red = 0; red < KILN_SCATTER_REDUCTION_COUNT; red++) {
            kiln_dtype ins_dt[3] = {dt, KILN_INT64, dt};
            kiln_tensor_desc probe[3] = {{.dtype = ins_dt[0]}, {.dtype = ins_dt[1]}, {.dtype = ins_dt[2]}};
            kiln_tensor_desc pout = {.dtype = dt};
            int64_t r = red;
            kiln_layer_launch l = {.op = KILN_OP_SCATTER_ND, .attrs = &r, .attr_count = 1, .input_count = 3,
                                   .output_count = 1, .inputs = probe, .outputs = &pout};
            CHECK(kiln_backend_cpu()->supports_op(&l) == (red == KILN_SCATTER_NONE || reduces));
            if (red != KILN_SCATTER_NONE && !reduces) continue;
            for (int k = 0; k < 2; k++) {
                kiln_dtype it = k ? KILN_INT64 : KILN_INT32;
                check_scatter_nd(dt, it, red, 1, 4);
                check_scatter_nd(dt, it, red, 2, 6);
                check_scatter_nd(dt, it, red, 3, 9);
                for (int32_t axis = 0; axis < 3; axis++) check_scatter_elements(dt, it, red, axis);
            }
        }
    }

    /* ONNX's ScatterElements example. */
    float data[9] = {0}, got[9];
    int64_t ix[6] = {1, 0, 2, 0, 2, 1};
    float upd[6] = {1.0f, 1.1f, 1.2f, 2.0f, 2.1f, 2.2f};
    const float want[9] = {2.0f, 1.1f, 0.0f, 1.0f, 0.0f, 2.2f, 0.0f, 2.1f, 1.2f};
    int64_t d33[2] = {3, 3}, d23[2] = {2, 3};
    kiln_tensor_desc ins[3] = {make_desc(data, KILN_FLOAT32, 2, d33), make_desc(ix, KILN_INT64, 2, d23),
                               make_desc(upd, KILN_FLOAT32, 2, d23)};
    kiln_tensor_desc out = make_desc(got, KILN_FLOAT32, 2, d33);
    CHECK_OK(run_scatter(KILN_OP_SCATTER_ELEMENTS, 0, KILN_SCATTER_NONE, ins, &out));
    CHECK(memcmp(got, want, sizeof want) == 0);

    /* Out-of-range indices fail the run, naming the index and its position, before anything is written. */
    memset(got, 0xA5, sizeof got);
    uint32_t poison;
    memcpy(&poison, got, sizeof poison);
    ix[4] = 3;
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ELEMENTS, 0, KILN_SCATTER_ADD, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "scatter_elements: index 3 at position 4 is out of range [-3, 3) (data axis 0)");
    uint32_t first;
    memcpy(&first, got, sizeof first);
    CHECK(first == poison);
    ix[4] = -4;
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ELEMENTS, 0, KILN_SCATTER_NONE, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "index -4 at position 4");
    ix[4] = INT64_MIN;
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ELEMENTS, 1, KILN_SCATTER_NONE, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "index -9223372036854775808 at position 4");
    /* scatter_nd: data [3, 3], indices [2, 2] = (0, 1), (2, 3): the second's column is out of range. */
    int64_t nd_ix[4] = {0, 1, 2, 3}, d2[1] = {2}, d22[2] = {2, 2};
    ins[1] = make_desc(nd_ix, KILN_INT64, 2, d22);
    ins[2] = make_desc(upd, KILN_FLOAT32, 1, d2);
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ND, 0, KILN_SCATTER_NONE, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "scatter_nd: index 3 at position 1 (coordinate 1, data axis 1) is out of range [-3, 3)");
    nd_ix[3] = -1;
    CHECK_OK(run_scatter(KILN_OP_SCATTER_ND, 0, KILN_SCATTER_NONE, ins, &out));
    CHECK(got[1] == upd[0] && got[8] == upd[1] && got[0] == 0.0f);
    /* Updates that do not match the indices, and reductions a dtype lacks. */
    ins[2] = make_desc(upd, KILN_FLOAT32, 2, d23);
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ND, 0, KILN_SCATTER_NONE, ins, &out), KILN_ERROR_INVALID_ARGUMENT,
                "scatter_nd: updates have 6 elements, the indices name 2 slices of 1");
    uint8_t flags[9] = {0}, flag_upd[2] = {1, 1}, flag_out[9];
    ins[0] = make_desc(flags, KILN_BOOL, 2, d33);
    ins[2] = make_desc(flag_upd, KILN_BOOL, 1, d2);
    out = make_desc(flag_out, KILN_BOOL, 2, d33);
    CHECK_FAILS(run_scatter(KILN_OP_SCATTER_ND, 0, KILN_SCATTER_MAX, ins, &out), KILN_ERROR_UNSUPPORTED,
                "scatter_nd of bool data");
    CHECK_OK(run_scatter(KILN_OP_SCATTER_ND, 0, KILN_SCATTER_NONE, ins, &out));
    CHECK(flag_out[1] == 1 && flag_out[8] == 1 && flag_out[0] == 0);
}

/* ------------------------------------------------------------------------ */
/* TOPK                                                                     */
/* ------------------------------------------------------------------------ */

/* Does element (a, ia) rank before (b, ib)?  Written from the rule, not from
 * the kernel's keys: NaN above every number, equal values by index. */
static int topk_ref_before(kiln_dtype dt, const void *x, int64_t a, int64_t ia, int64_t b, int64_t ib, int largest) {
    if (!is_float(dt)) {
        int64_t va = get_i(dt, x, a), vb = get_i(dt, x, b);
        if (va != vb) return largest ? va > vb : va < vb;
        return ia < ib;
    }
    double va = get_f(dt, x, a), vb = get_f(dt, x, b);
    int na = isnan(va), nb = isnan(vb);
    if (na != nb) return largest ? na : nb;
    if (!na && va != vb) return largest ? va > vb : va < vb;
    return ia < ib;
}

/* x of rank r, dims d; topk along axis with k; values compared bit for bit. */
static void check_topk(kiln_dtype dt, int r, const int64_t *d, int axis, int64_t k, int largest, int ties) {
    int64_t nx = numel_of(r, d), od[KILN_MAX_RANK];
    memcpy(od, d, sizeof(int64_t) * (size_t)r);
    od[axis] = k;
    int64_t no = numel_of(r, od);
    void *x = alloc_elems(dt, nx), *v = alloc_elems(dt, no);
    int64_t *ix = alloc_elems(KILN_INT64, no);
    REQUIRE(x && v && ix);
    static const double specials[] = {NAN, INFINITY, -INFINITY, -0.0, 0.0, 1.5, -1.5};
    for (int64_t i = 0; i < nx; i++) {
        uint64_t u = rng();
        if (is_float(dt)) set_f(dt, x, i, ties && u % 5 == 0 ? specials[(u >> 8) % 7] : ties ? (double)(u % 4)
                                                                                        : (double)(u % 100000) / 7.0);
        else set_i(dt, x, i, ties ? (int64_t)(u % 4) - 2 : (int64_t)u);
    }
    kiln_tensor_desc in = make_desc(x, dt, r, d), outs[2] = {make_desc(v, dt, r, od), make_desc(ix, KILN_INT64, r, od)};
    int64_t attrs[3] = {largest, 1, k};
    kiln_layer_launch l = {.op = KILN_OP_TOPK, .axis = axis, .attrs = attrs, .attr_count = 3, .input_count = 1,
                           .output_count = 2, .inputs = &in, .outputs = outs};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    int64_t outer = numel_of(axis, d), n = d[axis], inner = numel_of(r - axis - 1, d + axis + 1);
    size_t es = kiln_dtype_size(dt);
    int bad = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t at = (o * n + j) * inner + i, rank = 0;
                for (int64_t m = 0; m < n; m++)
                    rank += m != j && topk_ref_before(dt, x, (o * n + m) * inner + i, m, at, j, largest);
                if (rank >= k) continue;
                int64_t dst = (o * k + rank) * inner + i;
                bad += ix[dst] != j || memcmp((char *)v + dst * (int64_t)es, (char *)x + at * (int64_t)es, es) != 0;
            }
    if (bad) fprintf(stderr, "topk %s axis %d k %lld largest %d ties %d: %d wrong\n", kiln_dtype_name(dt), axis,
                     (long long)k, largest, ties, bad);
    CHECK(bad == 0);
    free(x);
    free(v);
    free(ix);
}

static void test_topk(void) {
    const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16, KILN_INT32, KILN_INT64};
    const int64_t d2[] = {3, 9}, d3[] = {2, 7, 3}, row[] = {1, 1000};
    for (int t = 0; t < 5; t++)
        for (int largest = 0; largest < 2; largest++)
            for (int ties = 0; ties < 2; ties++) {
                for (int64_t k = 0; k <= 9; k += 3) check_topk(dts[t], 2, d2, 1, k, largest, ties);
                check_topk(dts[t], 2, d2, 0, 2, largest, ties);       /* along the outer axis */
                check_topk(dts[t], 3, d3, 1, 4, largest, ties);       /* a middle axis: strided rows */
                check_topk(dts[t], 3, d3, 2, 1, largest, ties);
                check_topk(dts[t], 2, row, 1, 50, largest, ties);     /* a long row: the heap at work */
            }
    /* Ties and NaN, spelled out: largest gives the NaNs first, then 2 (index 1 before 3). */
    float x[6] = {1, 2, NAN, 2, -INFINITY, NAN}, v[4];
    int64_t ix[4], n = 6, k = 4;
    kiln_tensor_desc in = make_desc(x, KILN_FLOAT32, 1, &n),
                     outs[2] = {make_desc(v, KILN_FLOAT32, 1, &k), make_desc(ix, KILN_INT64, 1, &k)};
    int64_t attrs[3] = {1, 1, 4};
    kiln_layer_launch l = {.op = KILN_OP_TOPK, .attrs = attrs, .attr_count = 3, .input_count = 1, .output_count = 2,
                           .inputs = &in, .outputs = outs};
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    CHECK(ix[0] == 2 && ix[1] == 5 && ix[2] == 1 && ix[3] == 3 && isnan(v[0]) && v[2] == 2);
    attrs[0] = 0;   /* smallest: -inf, 1, 2, 2; NaN last */
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    CHECK(ix[0] == 4 && ix[1] == 0 && ix[2] == 1 && ix[3] == 3);
    /* A launch with one output, or an unsupported dtype, is refused by name. */
    l.output_count = 1;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "topk takes 1 input(s) and 2 output(s), got 1 and 1");
    l.output_count = 2;
    in.dtype = KILN_UINT8;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
}

/* ------------------------------------------------------------------------ */
/* CONV, CONV_TRANSPOSE: im2col / col2im + matmul against a direct double sum */
/* ------------------------------------------------------------------------ */

typedef struct conv_case {
    int     k;
    int64_t x[5], w[5], stride[3], dil[3], pad[6], group;
    int     bias;
} conv_case;

/* The direct definition, in double over the stored (rounded) inputs;
 * out's shape in od. */
static void conv_ref(const conv_case *c, int transposed, kiln_dtype dt, const void *x, const void *w,
                     const void *b, const int64_t *od, double *out) {
    int64_t in[3] = {1, 1, 1}, ker[3] = {1, 1, 1}, o3[3] = {1, 1, 1}, st[3] = {1, 1, 1}, dl[3] = {1, 1, 1},
            pd[3] = {0, 0, 0};
    for (int i = 0; i < c->k; i++) {
        in[i] = c->x[2 + i];
        ker[i] = c->w[2 + i];
        o3[i] = od[2 + i];
        st[i] = c->stride[i];
        dl[i] = c->dil[i];
        pd[i] = c->pad[i];
    }
    const int64_t C = c->x[1], M = od[1], cg = C / c->group, mg = M / c->group;
    const int64_t plane = in[0] * in[1] * in[2], taps = ker[0] * ker[1] * ker[2];
    int64_t e = 0;
    for (int64_t n = 0; n < c->x[0]; n++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t a0 = 0; a0 < o3[0]; a0++)
                for (int64_t a1 = 0; a1 < o3[1]; a1++)
                    for (int64_t a2 = 0; a2 < o3[2]; a2++, e++) {
                        const int64_t grp = m / mg, o[3] = {a0, a1, a2};
                        double sum = b ? get_f(dt, b, m) : 0.0;
                        for (int64_t ci = 0; ci < cg; ci++)
                            for (int64_t t = 0; t < taps; t++) {
                                const int64_t tp[3] = {t / (ker[1] * ker[2]), t / ker[2] % ker[1], t % ker[2]};
                                int64_t at[3];
                                int inside = 1;
                                for (int i = 0; i < 3; i++) {
                                    if (!transposed) {
                                        at[i] = o[i] * st[i] + tp[i] * dl[i] - pd[i];
                                    } else {
                                        int64_t v = o[i] + pd[i] - tp[i] * dl[i];
                                        at[i] = v >= 0 && v % st[i] == 0 ? v / st[i] : -1;
                                    }
                                    if (at[i] < 0 || at[i] >= in[i]) inside = 0;
                                }
                                if (!inside) continue;
                                const int64_t ch = grp * cg + ci;
                                const double xv = get_f(dt, x, (n * C + ch) * plane + (at[0] * in[1] + at[1]) * in[2] + at[2]);
                                const double wv = transposed ? get_f(dt, w, (ch * mg + m % mg) * taps + t)
                                                             : get_f(dt, w, (m * cg + ci) * taps + t);
                                sum += xv * wv;
                            }
                        out[e] = sum;
                    }
}

static void check_conv(kiln_dtype dt, const conv_case *c, int transposed) {
    const int rank = c->k + 2;
    int64_t od[5] = {c->x[0], transposed ? c->w[1] * c->group : c->w[0]}, attrs[13];
    int32_t na = 0;
    attrs[na++] = c->group;
    for (int i = 0; i < c->k; i++) attrs[na++] = c->stride[i];
    for (int i = 0; i < c->k; i++) attrs[na++] = c->dil[i];
    for (int i = 0; i < 2 * c->k; i++) attrs[na++] = c->pad[i];
    for (int i = 0; i < c->k; i++) {
        int64_t span = c->dil[i] * (c->w[2 + i] - 1) + 1, pads = c->pad[i] + c->pad[c->k + i];
        od[2 + i] = transposed ? c->stride[i] * (c->x[2 + i] - 1) + span - pads
                               : (c->x[2 + i] + pads - span) / c->stride[i] + 1;
    }
    const int64_t nx = numel_of(rank, c->x), nw = numel_of(rank, c->w), no = numel_of(rank, od);
    void *x = alloc_elems(dt, nx), *w = alloc_elems(dt, nw), *b = alloc_elems(dt, od[1]), *y = alloc_elems(dt, no);
    double *want = malloc(sizeof(double) * (size_t)(no > 0 ? no : 1));
    REQUIRE(x && w && b && y && want);
    fill_values(dt, x, nx, 0);
    fill_values(dt, w, nw, 0);
    fill_values(dt, b, od[1], 0);
    kiln_tensor_desc ins[3] = {make_desc(x, dt, rank, c->x), make_desc(w, dt, rank, c->w), make_desc(b, dt, 1, &od[1])},
                     out = make_desc(y, dt, rank, od);
    kiln_layer_launch l = {.op = transposed ? KILN_OP_CONV_TRANSPOSE : KILN_OP_CONV, .attrs = attrs, .attr_count = na,
                           .input_count = c->bias ? 3 : 2, .output_count = 1, .inputs = ins, .outputs = &out};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    conv_ref(c, transposed, dt, x, w, c->bias ? b : NULL, od, want);
    /* float32 sums in another order; half types round the float32 sum once. Values are in [-10, 10). */
    const double rtol = dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 1e-3 : 8e-3;
    int64_t bad = 0;
    for (int64_t i = 0; i < no; i++) {
        double got = get_f(dt, y, i), scale = 1.0 + fabs(want[i]);
        if (!(fabs(got - want[i]) <= rtol * scale * 4)) {
            if (bad++ < 3)
                fprintf(stderr, "  conv%s %s %dd: element %lld: got %g, want %g\n", transposed ? "_transpose" : "",
                        kiln_dtype_name(dt), c->k, (long long)i, got, want[i]);
        }
    }
    CHECK(bad == 0);
    free(x);
    free(w);
    free(b);
    free(y);
    free(want);
}

/* POOL against a direct reading of ONNX's definition in double precision:
 * window o·stride − pad_begin + t·dilation; max over the taps inside the
 * input (NaN wins), average over them, or over every tap before
 * D + pad_end with count_include_pad. */
typedef struct pool_case {
    int     k;
    int64_t x[5], kernel[3], stride[3], dil[3], pad[6];
    int64_t ceil_mode, cip;
} pool_case;

static int64_t pool_size(int64_t d, int64_t pb, int64_t pe, int64_t kern, int64_t st, int64_t dil, int64_t ceil_mode) {
    int64_t room = d + pb + pe - dil * (kern - 1) - 1;
    if (!ceil_mode) return room / st + 1;
    int64_t o = (room + st - 1) / st + 1;
    return (o - 1) * st >= d + pb ? o - 1 : o;
}

static void check_pool(kiln_dtype dt, const pool_case *c, int32_t mode, int specials) {
    const int rank = c->k + 2;
    int64_t od[5] = {c->x[0], c->x[1]}, attrs[17];
    int32_t na = 0;
    attrs[na++] = c->ceil_mode;
    attrs[na++] = mode == KILN_POOL_AVERAGE ? c->cip : 0;
    for (int i = 0; i < c->k; i++) attrs[na++] = c->kernel[i];
    for (int i = 0; i < c->k; i++) attrs[na++] = c->stride[i];
    for (int i = 0; i < c->k; i++) attrs[na++] = c->dil[i];
    for (int i = 0; i < 2 * c->k; i++) attrs[na++] = c->pad[i];
    for (int i = 0; i < c->k; i++)
        od[2 + i] = pool_size(c->x[2 + i], c->pad[i], c->pad[c->k + i], c->kernel[i], c->stride[i], c->dil[i],
                              c->ceil_mode);
    const int64_t nx = numel_of(rank, c->x), no = numel_of(rank, od);
    void *x = alloc_elems(dt, nx), *y = alloc_elems(dt, no);
    REQUIRE(x && y);
    fill_values(dt, x, nx, specials);
    kiln_tensor_desc in = make_desc(x, dt, rank, c->x), out = make_desc(y, dt, rank, od);
    kiln_layer_launch l = {.op = KILN_OP_POOL, .subop = mode, .attrs = attrs, .attr_count = na, .input_count = 1,
                           .output_count = 1, .inputs = &in, .outputs = &out};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    /* Pad the unused axes to 1 so that one loop nest serves k = 1..3. */
    int64_t in3[3] = {1, 1, 1}, o3[3] = {1, 1, 1}, k3[3] = {1, 1, 1}, s3[3] = {1, 1, 1}, d3[3] = {1, 1, 1},
            pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0};
    for (int i = 0; i < c->k; i++) {
        in3[i] = c->x[2 + i];
        o3[i] = od[2 + i];
        k3[i] = c->kernel[i];
        s3[i] = c->stride[i];
        d3[i] = c->dil[i];
        pb[i] = c->pad[i];
        pe[i] = c->pad[c->k + i];
    }
    const double rtol = dt == KILN_FLOAT32 ? 1e-6 : dt == KILN_FLOAT16 ? 1e-3 : 8e-3;
    int64_t e = 0, bad = 0;
    for (int64_t plane = 0; plane < c->x[0] * c->x[1]; plane++)
        for (int64_t a0 = 0; a0 < o3[0]; a0++)
            for (int64_t a1 = 0; a1 < o3[1]; a1++)
                for (int64_t a2 = 0; a2 < o3[2]; a2++, e++) {
                    const int64_t o[3] = {a0, a1, a2};
                    double best = -INFINITY, sum = 0;
                    int64_t inside = 0, padded = 0;
                    for (int64_t t0 = 0; t0 < k3[0]; t0++)
                        for (int64_t t1 = 0; t1 < k3[1]; t1++)
                            for (int64_t t2 = 0; t2 < k3[2]; t2++) {
                                const int64_t t[3] = {t0, t1, t2};
                                int64_t at[3];
                                int in_x = 1, in_pad = 1;
                                for (int i = 0; i < 3; i++) {
                                    at[i] = o[i] * s3[i] - pb[i] + t[i] * d3[i];
                                    if (at[i] < 0 || at[i] >= in3[i]) in_x = 0;
                                    if (at[i] >= in3[i] + pe[i]) in_pad = 0;
                                }
                                padded += in_pad;
                                if (!in_x) continue;
                                double v = get_f(dt, x, (plane * in3[0] + at[0]) * in3[1] * in3[2] + at[1] * in3[2] + at[2]);
                                if (v != v || v > best) best = v != v || best != best ? NAN : v;
                                sum += v;
                                inside++;
                            }
                    const double want = mode == KILN_POOL_MAX ? best : sum / (double)(c->cip ? padded : inside);
                    const double got = get_f(dt, y, e);
                    const int ok = mode == KILN_POOL_MAX ? (isnan(want) ? isnan(got) : got == want)
                                 : (isnan(want) ? isnan(got) : got == want || fabs(got - want) <= rtol * (1 + fabs(want)) * 4);
                    if (!ok && bad++ < 3)
                        fprintf(stderr, "  %s %s %dd: element %lld: got %g, want %g\n",
                                mode == KILN_POOL_MAX ? "max_pool" : "avg_pool", kiln_dtype_name(dt), c->k,
                                (long long)e, got, want);
                }
    CHECK(bad == 0);
    free(x);
    free(y);
}

static void test_pool(void) {
    static const pool_case pools[] = {
        {1, {2, 3, 11}, {3}, {2}, {1}, {1, 2}, 1, 1},
        {1, {1, 2, 13}, {4}, {3}, {2}, {0, 1}, 1, 0},
        {2, {1, 3, 7, 6}, {3, 2}, {2, 1}, {1, 2}, {1, 0, 2, 1}, 0, 1},
        {2, {2, 2, 9, 9}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}, 1, 1},
        {3, {1, 2, 5, 6, 4}, {2, 3, 2}, {1, 2, 2}, {2, 1, 1}, {1, 0, 1, 0, 1, 1}, 1, 0},
        {2, {8, 64, 20, 20}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 0, 0},   /* enough work for threads */
    };
    const kiln_dtype floats[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof pools / sizeof pools[0]; i++)
            for (int32_t mode = 0; mode < KILN_POOL_MODE_COUNT; mode++)
                check_pool(floats[d], &pools[i], mode, i < 5);   /* NaN, ±inf, ±0 in the small cases */
    /* Refused: an int32 input, an unknown mode, attributes that do not fit the rank. */
    int64_t dims[3] = {1, 1, 4}, attrs[7] = {0, 0, 2, 1, 1, 0, 0};
    int32_t xi[4] = {0};
    float xf[4] = {0}, yf[4];
    kiln_tensor_desc in = make_desc(xi, KILN_INT32, 3, dims), out = make_desc(yf, KILN_INT32, 3, dims);
    kiln_layer_launch l = {.op = KILN_OP_POOL, .attrs = attrs, .attr_count = 7, .input_count = 1, .output_count = 1,
                           .inputs = &in, .outputs = &out};
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    in = make_desc(xf, KILN_FLOAT32, 3, dims);
    out = make_desc(yf, KILN_FLOAT32, 3, (int64_t[]){1, 1, 3});
    CHECK(kiln_backend_cpu()->supports_op(&l));
    l.subop = KILN_POOL_MODE_COUNT;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    l.subop = KILN_POOL_MAX;
    l.attr_count = 6;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "pool of rank 3 with 6 attributes");
}

static void test_conv(void) {
    static const conv_case convs[] = {
        {1, {2, 4, 11}, {6, 2, 3}, {2}, {1}, {1, 2}, 2, 1},
        {2, {1, 3, 7, 6}, {4, 3, 3, 2}, {1, 2}, {2, 1}, {1, 0, 2, 1}, 1, 0},
        {2, {2, 4, 5, 5}, {4, 1, 3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}, 4, 1},     /* depthwise */
        {3, {1, 2, 4, 5, 3}, {3, 2, 2, 3, 2}, {1, 2, 1}, {1, 1, 2}, {0, 1, 1, 1, 0, 1}, 1, 1},
        {2, {1, 2, 3, 3}, {2, 2, 1, 1}, {1, 1}, {1, 1}, {0, 0, 1, 2}, 1, 1},      /* 1x1, end pads only */
    };
    static const conv_case transposes[] = {
        {1, {2, 4, 6}, {4, 3, 3}, {2}, {1}, {1, -1}, 2, 1},                      /* output_padding 1 */
        {2, {1, 3, 4, 3}, {3, 2, 3, 2}, {2, 3}, {1, 2}, {0, 1, 1, 0}, 1, 0},
        {2, {1, 4, 3, 3}, {4, 1, 2, 2}, {1, 1}, {2, 1}, {-1, 0, 0, 0}, 4, 1},    /* a negative begin pad: bias only */
        {3, {1, 2, 3, 2, 3}, {2, 2, 2, 2, 2}, {2, 1, 2}, {1, 1, 1}, {0, 0, 1, 1, 0, 0}, 1, 1},
    };
    const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int d = 0; d < 3; d++) {
        for (size_t i = 0; i < sizeof convs / sizeof convs[0]; i++) check_conv(dts[d], &convs[i], 0);
        for (size_t i = 0; i < sizeof transposes / sizeof transposes[0]; i++) check_conv(dts[d], &transposes[i], 1);
    }
    /* What the kernels do not take: an integer dtype, one input. */
    int32_t xi[8] = {0}, wi[8] = {0}, yi[8];
    int64_t dims[3] = {1, 2, 4}, attrs[5] = {1, 1, 1, 0, 0};
    kiln_tensor_desc ins[2] = {make_desc(xi, KILN_INT32, 3, dims), make_desc(wi, KILN_INT32, 3, dims)},
                     out = make_desc(yi, KILN_INT32, 3, dims);
    kiln_layer_launch l = {.op = KILN_OP_CONV, .attrs = attrs, .attr_count = 5, .input_count = 2, .output_count = 1,
                           .inputs = ins, .outputs = &out};
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "conv of int32 is not supported");
    l.input_count = 1;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "conv takes 3 input(s) and 1 output(s), got 1 and 1");
}

/* ------------------------------------------------------------------------ */
/* RESHAPE                                                                  */
/* ------------------------------------------------------------------------ */

static void test_reshape(void) {
    int32_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0};
    int64_t d1[2] = {2, 3}, d2[3] = {3, 1, 2};
    kiln_tensor_desc in = make_desc(a, KILN_INT32, 2, d1), out = make_desc(b, KILN_INT32, 3, d2);
    CHECK_OK(run_op(KILN_OP_RESHAPE, 0, 0, 1, &in, &out));
    CHECK(memcmp(a, b, sizeof a) == 0);
    kiln_tensor_desc same = make_desc(a, KILN_INT32, 3, d2);
    CHECK_OK(run_op(KILN_OP_RESHAPE, 0, 0, 1, &in, &same));
    CHECK(a[5] == 6);
    int64_t d3[1] = {5};
    kiln_tensor_desc wrong = make_desc(b, KILN_INT32, 1, d3);
    CHECK_FAILS(run_op(KILN_OP_RESHAPE, 0, 0, 1, &in, &wrong), KILN_ERROR_INVALID_ARGUMENT, "reshape of 6 elements");
}

/* ------------------------------------------------------------------------ */
/* MATMUL                                                                   */
/* ------------------------------------------------------------------------ */

/* A matmul launch with the transpose flags ta, tb (none when both are 0, as
 * the rule stores it). */
static kiln_status run_matmul(int ta, int tb, const kiln_tensor_desc *ins, const kiln_tensor_desc *out) {
    int64_t flags[2] = {ta, tb};
    kiln_layer_launch l = {.op = KILN_OP_MATMUL, .attrs = flags, .attr_count = ta || tb ? 2 : 0, .input_count = 2,
                           .output_count = 1, .inputs = ins, .outputs = out};
    return kiln_backend_cpu()->run_layer(0, &l, NULL);
}

/* The product a [..., M, K] x b [..., K, N] (da, db: those shapes), with a
 * stored transposed as [..., K, M] when ta, b as [..., N, K] when tb, against
 * a double-precision reference that reads the stored operands.  exact:
 * small integer inputs, so every float32 sum is exact and the result must
 * equal the exact product rounded once to the dtype. */
static void check_matmul_flags(kiln_dtype dt, int ta, int tb, int ra, const int64_t *da, int rb, const int64_t *db,
                               int exact) {
    int ro = ra > rb ? ra : rb;
    int64_t M = da[ra - 2], K = da[ra - 1], N = db[rb - 1];
    int64_t sa_dims[KILN_MAX_RANK], sb_dims[KILN_MAX_RANK];   /* as stored */
    memcpy(sa_dims, da, sizeof(int64_t) * (size_t)ra);
    memcpy(sb_dims, db, sizeof(int64_t) * (size_t)rb);
    if (ta) sa_dims[ra - 2] = K, sa_dims[ra - 1] = M;
    if (tb) sb_dims[rb - 2] = N, sb_dims[rb - 1] = K;
    int64_t dout[KILN_MAX_RANK];
    for (int i = 0; i < ro - 2; i++) {
        int ia = i - (ro - ra), ib = i - (ro - rb);
        int64_t x = ia >= 0 ? da[ia] : 1, y = ib >= 0 ? db[ib] : 1;
        dout[i] = x == 1 ? y : x;
    }
    dout[ro - 2] = M;
    dout[ro - 1] = N;
    int64_t na = numel_of(ra, da), nb = numel_of(rb, db), no = numel_of(ro, dout);
    void *a = alloc_elems(dt, na), *b = alloc_elems(dt, nb), *o = alloc_elems(dt, no);
    REQUIRE(a && b && o);
    for (int64_t i = 0; i < na; i++)
        set_f(dt, a, i, exact ? (double)((int64_t)(rng() % 9) - 4) : (double)(rng() % 20001) / 10000.0 - 1.0);
    for (int64_t i = 0; i < nb; i++)
        set_f(dt, b, i, exact ? (double)((int64_t)(rng() % 9) - 4) : (double)(rng() % 20001) / 10000.0 - 1.0);
    kiln_tensor_desc ins[2] = {make_desc(a, dt, ra, sa_dims), make_desc(b, dt, rb, sb_dims)};
    kiln_tensor_desc out = make_desc(o, dt, ro, dout);
    kiln_status st = run_matmul(ta, tb, ins, &out);
    CHECK(st == KILN_OK);
    int64_t batches = no / (M * N > 0 ? M * N : 1);
    int bad = 0;
    for (int64_t t = 0; t < batches && st == KILN_OK && M * N > 0; t++) {
        /* Batch offsets of a and b for output batch t. */
        int64_t rest = t, ba = 0, bb = 0, sa = 1, sb = 1;
        for (int i = ro - 3; i >= 0; i--) {
            int64_t c = rest % dout[i];
            rest /= dout[i];
            int xa = i - (ro - ra), xb = i - (ro - rb);
            if (xa >= 0) { if (da[xa] != 1) ba += c * sa; sa *= da[xa]; }
            if (xb >= 0) { if (db[xb] != 1) bb += c * sb; sb *= db[xb]; }
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double sum = 0;
                for (int64_t k = 0; k < K; k++)
                    sum += get_f(dt, a, ba * M * K + (ta ? k * M + i : i * K + k)) *
                           get_f(dt, b, bb * K * N + (tb ? j * K + k : k * N + j));
                double got = get_f(dt, o, t * M * N + i * N + j);
                int ok = exact ? got == ref_round(sum, format_of(dt))
                               : fabs(got - sum) <= 1e-5 * (double)K + ldexp(fabs(sum), 1 - format_of(dt).p);
                if (!ok && bad++ < 5)
                    fprintf(stderr, "  matmul %s ta %d tb %d [%lld][%lld][%lld]: want %.9g got %.9g\n",
                            kiln_dtype_name(dt), ta, tb, (long long)t, (long long)i, (long long)j, sum, got);
            }
    }
    CHECK(bad == 0);
    free(a);
    free(b);
    free(o);
}

/* Every combination of transposes (kernels and packing differ for each). */
static void check_matmul(kiln_dtype dt, int ra, const int64_t *da, int rb, const int64_t *db, int exact) {
    for (int flags = 0; flags < 4; flags++) check_matmul_flags(dt, flags & 1, flags >> 1, ra, da, rb, db, exact);
}

static void test_matmul(void) {
    const kiln_dtype floats[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int d = 0; d < 3; d++) {
        kiln_dtype dt = floats[d];
        check_matmul(dt, 2, (int64_t[]){3, 5}, 2, (int64_t[]){5, 7}, 1);
        check_matmul(dt, 2, (int64_t[]){1, 33}, 2, (int64_t[]){33, 17}, 1);         /* one row (decode) */
        check_matmul(dt, 2, (int64_t[]){9, 300}, 2, (int64_t[]){300, 520}, 1);      /* crosses every block */
        check_matmul(dt, 2, (int64_t[]){6, 40}, 2, (int64_t[]){40, 12}, 0);         /* real values */
        check_matmul(dt, 4, (int64_t[]){2, 3, 4, 5}, 2, (int64_t[]){5, 6}, 1);      /* b shared */
        check_matmul(dt, 4, (int64_t[]){2, 1, 4, 5}, 3, (int64_t[]){3, 5, 6}, 1);   /* both broadcast */
        check_matmul(dt, 2, (int64_t[]){4, 5}, 3, (int64_t[]){2, 5, 6}, 1);         /* a shared */
        check_matmul(dt, 3, (int64_t[]){3, 4, 5}, 3, (int64_t[]){3, 5, 2}, 1);      /* plain batch */
        check_matmul(dt, 2, (int64_t[]){0, 5}, 2, (int64_t[]){5, 3}, 1);            /* empty */
        /* 6 rows or more take the packed AVX2 path on CPUs that have it:
         * partial tiles, batches, broadcasting and real values there too. */
        check_matmul(dt, 3, (int64_t[]){2, 13, 70}, 2, (int64_t[]){70, 33}, 1);
        check_matmul(dt, 4, (int64_t[]){2, 1, 8, 17}, 3, (int64_t[]){3, 17, 40}, 1);
        check_matmul(dt, 2, (int64_t[]){20, 600}, 2, (int64_t[]){600, 47}, 0);
    }
    /* K = 0: the output is all zeros. */
    float a[1], b[1], o[6] = {1, 2, 3, 4, 5, 6};
    int64_t da[2] = {2, 0}, db[2] = {0, 3}, dout[2] = {2, 3};
    kiln_tensor_desc ins[2] = {make_desc(a, KILN_FLOAT32, 2, da), make_desc(b, KILN_FLOAT32, 2, db)};
    kiln_tensor_desc out = make_desc(o, KILN_FLOAT32, 2, dout);
    CHECK_OK(run_op(KILN_OP_MATMUL, 0, 0, 2, ins, &out));
    CHECK(o[0] == 0 && o[5] == 0);

    /* Integer matmul is refused; so is an output on top of an input. */
    int32_t ia[4] = {0}, ib[4] = {0}, io[4];
    int64_t d22[2] = {2, 2};
    kiln_tensor_desc iins[2] = {make_desc(ia, KILN_INT32, 2, d22), make_desc(ib, KILN_INT32, 2, d22)};
    kiln_tensor_desc iout = make_desc(io, KILN_INT32, 2, d22);
    CHECK_FAILS(run_op(KILN_OP_MATMUL, 0, 0, 2, iins, &iout), KILN_ERROR_UNSUPPORTED, "matmul of int32");
    float fa[4] = {1, 2, 3, 4}, fb[4] = {1, 0, 0, 1};
    kiln_tensor_desc fins[2] = {make_desc(fa, KILN_FLOAT32, 2, d22), make_desc(fb, KILN_FLOAT32, 2, d22)};
    CHECK_FAILS(run_op(KILN_OP_MATMUL, 0, 0, 2, fins, &fins[0]), KILN_ERROR_INVALID_ARGUMENT, "overlaps");
    int64_t d23[2] = {2, 3};
    kiln_tensor_desc bad_k[2] = {make_desc(fa, KILN_FLOAT32, 2, d23), make_desc(fb, KILN_FLOAT32, 2, d22)};
    float fo[4];
    kiln_tensor_desc fout = make_desc(fo, KILN_FLOAT32, 2, d22);
    CHECK_FAILS(run_op(KILN_OP_MATMUL, 0, 0, 2, bad_k, &fout), KILN_ERROR_INVALID_ARGUMENT, "matmul of [2, 3]");
    /* [2, 3] read transposed is [3, 2]: inner sizes 2 and 2 agree, but the
     * output must then be [3, 2]. */
    CHECK_FAILS(run_matmul(1, 0, bad_k, &fout), KILN_ERROR_INVALID_ARGUMENT,
                "matmul of [3, 2] (a transposed) x [2, 2] into [2, 2]");
    /* Flags outside the rule's canonical form are refused, by supports too. */
    int64_t bad_flags[2][2] = {{2, 0}, {0, -1}};
    for (int f = 0; f < 3; f++) {
        kiln_layer_launch l = {.op = KILN_OP_MATMUL, .attrs = bad_flags[f < 2 ? f : 0], .attr_count = f < 2 ? 2 : 1,
                               .input_count = 2, .output_count = 1, .inputs = fins, .outputs = &fout};
        CHECK(!kiln_backend_cpu()->supports_op(&l));
        CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                    "are not transpose_a, transpose_b");
    }
}

/* A half matmul large enough to need heap scratch reports a failed
 * allocation, on the portable path (3 rows) and on the AVX2 one (8 rows). */
static void check_matmul_out_of_memory(int64_t M) {
    int64_t da[2] = {M, 200}, db[2] = {200, 300}, dout[2] = {M, 300};
    uint16_t *a = calloc((size_t)M * 200, 2), *b = calloc(200 * 300, 2), *o = calloc((size_t)M * 300, 2);
    REQUIRE(a && b && o);
    kiln_tensor_desc ins[2] = {make_desc(a, KILN_FLOAT16, 2, da), make_desc(b, KILN_FLOAT16, 2, db)};
    kiln_tensor_desc out = make_desc(o, KILN_FLOAT16, 2, dout);
    kiln_alloc_fail_after(0);
    kiln_status st = run_op(KILN_OP_MATMUL, 0, 0, 2, ins, &out);
    kiln_alloc_fail_after(-1);
    CHECK(st == KILN_ERROR_NO_MEMORY);
    CHECK(strstr(kiln_last_error(), "matmul") != NULL);
    CHECK_OK(run_op(KILN_OP_MATMUL, 0, 0, 2, ins, &out));
    free(a);
    free(b);
    free(o);
}

static void test_matmul_out_of_memory(void) {
    check_matmul_out_of_memory(3);
    check_matmul_out_of_memory(8);
}

/* The flat index of out[i, j] in an operand of rank 1 or 2 broadcast to it. */
static int64_t broadcast_index(int rank, const int64_t *d, int64_t i, int64_t j) {
    if (rank == 1) return d[0] == 1 ? 0 : j;
    return (d[0] == 1 ? 0 : i) * d[1] + (d[1] == 1 ? 0 : j);
}

/* Large elementwise layers are cut into flat pieces on several threads: the
 * same bits for every thread count, and errors still come with a message. */
static void test_elementwise_threads(void) {
    const int64_t n = 700001;   /* odd: the last piece is short */
    int64_t dims[2] = {7, 100000}, odd[1] = {n};
    struct { int op, subop, nin; kiln_dtype in, out; } cases[] = {
        {KILN_OP_UNARY, KILN_UNARY_GELU, 1, KILN_FLOAT16, KILN_FLOAT16},
        {KILN_OP_BINARY, KILN_BINARY_MUL, 2, KILN_BFLOAT16, KILN_BFLOAT16},
        {KILN_OP_CAST, 0, 1, KILN_FLOAT32, KILN_FLOAT16},
        {KILN_OP_CAST, 0, 1, KILN_FLOAT32, KILN_INT32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int64_t count = c == 0 ? n : 700000;
        const int64_t *d = c == 0 ? odd : dims;
        int rank = c == 0 ? 1 : 2;
        void *x = alloc_elems(cases[c].in, count), *y = alloc_elems(cases[c].in, count);
        void *o = alloc_elems(cases[c].out, count), *first = alloc_elems(cases[c].out, count);
        REQUIRE(x && y && o && first);
        for (int64_t i = 0; i < count; i++) {
            set_f(cases[c].in, x, i, (double)(rng() % 20001) / 100.0 - 100.0);
            set_f(cases[c].in, y, i, (double)(rng() % 20001) / 10000.0 - 1.0);
        }
        kiln_tensor_desc ins[2] = {make_desc(x, cases[c].in, rank, d), make_desc(y, cases[c].in, rank, d)};
        kiln_tensor_desc out = make_desc(o, cases[c].out, rank, d);
        size_t bytes = (size_t)count * kiln_dtype_size(cases[c].out);
        static const char *const counts[] = {"1", "2", "5"};
        for (int t = 0; t < 3; t++) {
            setenv("KILN_CPU_THREADS", counts[t], 1);
            memset(o, 0xab, bytes);
            CHECK_OK(run_op(cases[c].op, cases[c].subop, 0, cases[c].nin, ins, &out));
            if (t == 0) memcpy(first, o, bytes);
            else CHECK(memcmp(first, o, bytes) == 0);
        }
        free(x);
        free(y);
        free(o);
        free(first);
    }
    /* Broadcasting binary layers are cut by output rows. */
    struct { int64_t da[2], db[2]; int ra, rb; kiln_dtype dt; int subop; } bc[] = {
        {{700, 1000}, {1000}, 2, 1, KILN_FLOAT32, KILN_BINARY_ADD},        /* a bias row */
        {{700, 1}, {1, 1000}, 2, 2, KILN_BFLOAT16, KILN_BINARY_MUL},       /* an outer product */
        {{1, 1000}, {700, 1000}, 2, 2, KILN_FLOAT16, KILN_BINARY_SUB},     /* the first operand broadcast */
    };
    for (size_t c = 0; c < sizeof bc / sizeof bc[0]; c++) {
        int64_t dout[2] = {700, 1000}, na = bc[c].da[0] * (bc[c].ra > 1 ? bc[c].da[1] : 1),
                nb = bc[c].db[0] * (bc[c].rb > 1 ? bc[c].db[1] : 1);
        kiln_dtype dt = bc[c].dt;
        void *x = alloc_elems(dt, na), *y = alloc_elems(dt, nb), *o = alloc_elems(dt, 700000),
             *first = alloc_elems(dt, 700000);
        REQUIRE(x && y && o && first);
        for (int64_t i = 0; i < na; i++) set_f(dt, x, i, (double)(rng() % 2001) / 100.0 - 10.0);
        for (int64_t i = 0; i < nb; i++) set_f(dt, y, i, (double)(rng() % 2001) / 1000.0 - 1.0);
        kiln_tensor_desc ins[2] = {make_desc(x, dt, bc[c].ra, bc[c].da), make_desc(y, dt, bc[c].rb, bc[c].db)};
        kiln_tensor_desc out = make_desc(o, dt, 2, dout);
        size_t bytes = 700000 * kiln_dtype_size(dt);
        static const char *const counts[] = {"1", "2", "5"};
        for (int t = 0; t < 3; t++) {
            setenv("KILN_CPU_THREADS", counts[t], 1);
            memset(o, 0xab, bytes);
            CHECK_OK(run_op(KILN_OP_BINARY, bc[c].subop, 0, 2, ins, &out));
            if (t == 0) memcpy(first, o, bytes);
            else CHECK(memcmp(first, o, bytes) == 0);
        }
        /* And the rows are right: spot-check against the scalar definition. */
        for (int64_t i = 0; i < 700; i += 97)
            for (int64_t j = 0; j < 1000; j += 131) {
                int64_t ia = broadcast_index(bc[c].ra, bc[c].da, i, j), ib = broadcast_index(bc[c].rb, bc[c].db, i, j);
                double xa = get_f(dt, x, ia), yb = get_f(dt, y, ib);
                double want = bc[c].subop == KILN_BINARY_ADD ? xa + yb : bc[c].subop == KILN_BINARY_MUL ? xa * yb : xa - yb;
                double got = get_f(dt, first, i * 1000 + j);
                CHECK(fabs(got - want) <= 0.01 * fabs(want) + 1e-6);
            }
        free(x);
        free(y);
        free(o);
        free(first);
    }
    /* An op the dtype lacks fails with its message, threads or not. */
    int32_t *ix = calloc(700000, sizeof *ix), *io = calloc(700000, sizeof *io);
    REQUIRE(ix && io);
    kiln_tensor_desc iin = make_desc(ix, KILN_INT32, 2, dims), iout = make_desc(io, KILN_INT32, 2, dims);
    setenv("KILN_CPU_THREADS", "4", 1);
    CHECK_FAILS(run_op(KILN_OP_UNARY, KILN_UNARY_RELU, 0, 1, &iin, &iout), KILN_ERROR_UNSUPPORTED,
                "unary relu on int32");
    unsetenv("KILN_CPU_THREADS");
    free(ix);
    free(io);
}

/* Large products run on several threads ($KILN_CPU_THREADS caps them), cut
 * along N or M: every thread count gives the same bits, and
 * the exact-integer reference holds under threads too. */
static void test_matmul_threads(void) {
    /* AVX2 path cut by columns and by rows; portable path (under 6 rows) by columns. */
    static const struct { int64_t M, K, N; } shapes[] = {{192, 256, 390}, {390, 256, 96}, {1, 2048, 4200},
                                                         {3, 1024, 4100}};
    const kiln_dtype floats[] = {KILN_FLOAT32, KILN_BFLOAT16};
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        for (int d = 0; d < 2; d++) {
            kiln_dtype dt = floats[d];
            int64_t M = shapes[sh].M, K = shapes[sh].K, N = shapes[sh].N;
            int64_t da[2] = {M, K}, db[2] = {K, N}, dout[2] = {M, N};
            void *a = alloc_elems(dt, M * K), *b = alloc_elems(dt, K * N), *o = alloc_elems(dt, M * N),
                 *first = alloc_elems(dt, M * N);
            REQUIRE(a && b && o && first);
            for (int64_t i = 0; i < M * K; i++) set_f(dt, a, i, (double)(rng() % 20001) / 10000.0 - 1.0);
            for (int64_t i = 0; i < K * N; i++) set_f(dt, b, i, (double)(rng() % 20001) / 10000.0 - 1.0);
            /* Each transpose moves where a thread's rows or columns start
             * in the stored operand: every combination, the same buffers
             * read with their shapes swapped. */
            const int ta = (int)(sh & 1), tb = d;
            int64_t sa_dims[2] = {ta ? K : M, ta ? M : K}, sb_dims[2] = {tb ? N : K, tb ? K : N};
            kiln_tensor_desc ins[2] = {make_desc(a, dt, 2, sa_dims), make_desc(b, dt, 2, sb_dims)};
            kiln_tensor_desc out = make_desc(o, dt, 2, dout);
            static const char *const counts[] = {"1", "2", "3", "7"};
            for (int c = 0; c < 4; c++) {
                setenv("KILN_CPU_THREADS", counts[c], 1);
                memset(o, 0, (size_t)(M * N) * kiln_dtype_size(dt));
                CHECK_OK(run_matmul(ta, tb, ins, &out));
                if (c == 0) memcpy(first, o, (size_t)(M * N) * kiln_dtype_size(dt));
                else CHECK(memcmp(first, o, (size_t)(M * N) * kiln_dtype_size(dt)) == 0);
            }
            free(a);
            free(b);
            free(o);
            free(first);
            setenv("KILN_CPU_THREADS", "3", 1);
            check_matmul_flags(dt, 0, 0, 2, da, 2, db, 1);
            check_matmul_flags(dt, ta, tb, 2, da, 2, db, 1);
        }
    }
    unsetenv("KILN_CPU_THREADS");
}

/* ------------------------------------------------------------------------ */
/* The backend loader                                                       */
/* ------------------------------------------------------------------------ */

/* With KILN_CUDA_BACKEND pointing nowhere, CUDA fails cleanly, naming the path. */
static void test_cuda_backend_missing(void) {
    setenv("KILN_CUDA_BACKEND", "/nonexistent/libkiln-cuda.so", 1);
    const kiln_backend_iface *iface = (const kiln_backend_iface *)1;
    CHECK_FAILS(kiln_backend_get(KILN_DEVICE_CUDA, &iface), KILN_ERROR_UNSUPPORTED,
                "KILN_CUDA_BACKEND=/nonexistent/libkiln-cuda.so");
    CHECK(iface == NULL);
    /* The outcome is cached: a second call gives the same answer. */
    CHECK_FAILS(kiln_backend_get(KILN_DEVICE_CUDA, &iface), KILN_ERROR_UNSUPPORTED, "CUDA backend unavailable");
    /* The queries do not disturb the caller's last error. */
    kiln_plugin_set_error("marker");
    CHECK(!kiln_cuda_available());
    CHECK(kiln_cuda_device_count() == 0);
    CHECK(strcmp(kiln_last_error(), "marker") == 0);

    CHECK_OK(kiln_backend_get(KILN_DEVICE_CPU, &iface));
    CHECK(iface == kiln_backend_cpu());
    CHECK_FAILS(kiln_backend_get((kiln_device_type)7, &iface), KILN_ERROR_INVALID_ARGUMENT, "unknown device type 7");
    CHECK_FAILS(kiln_backend_get(KILN_DEVICE_CPU, NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL");
}

/* Without the variable, the default search runs (in a child, since the
 * outcome is cached per process).  On a machine without CUDA it must fail
 * with a message; where a GPU and the backend exist it must see a device. */
static void test_cuda_backend_default_search(void) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        unsetenv("KILN_CUDA_BACKEND");
        const kiln_backend_iface *iface = NULL;
        kiln_status st = kiln_backend_get(KILN_DEVICE_CUDA, &iface);
        char msg[512];
        int code;
        if (st == KILN_OK) code = kiln_cuda_available() && kiln_cuda_device_count() > 0 ? 10 : 11;
        else code = !kiln_cuda_available() && kiln_cuda_device_count() == 0 && st == KILN_ERROR_UNSUPPORTED &&
                    strstr(kiln_last_error(), "CUDA backend unavailable") ? 0 : 1;
        snprintf(msg, sizeof msg, "%s", st == KILN_OK ? "(loaded)" : kiln_last_error());
        ssize_t w = write(fds[1], msg, strlen(msg));
        (void)w;
        close(fds[1]);
        _exit(code);
    }
    close(fds[1]);
    char msg[513] = "";
    ssize_t got = read(fds[0], msg, sizeof msg - 1);
    if (got > 0) msg[got] = '\0';
    close(fds[0]);
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    fprintf(stderr, "  default CUDA search: %s\n", msg);
    CHECK(WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 10);
    CHECK(strlen(msg) > 0);
}

/* ------------------------------------------------------------------------ */
/* ROTARY_EMBEDDING                                                         */
/* ------------------------------------------------------------------------ */

/* A random value in ±[0.01, 4]: products then span few enough binades that
 * the reference's difference of two rounded products is exact in double. */
static double rotary_value(void) {
    double v = 0.01 + (double)(rng() % 1000000) * (3.99 / 1000000.0);
    return rng() & 1 ? -v : v;
}

/* One case: x 4-D [B, H, S, D] (four_d) or 3-D [B, S, H*D]; caches [P, R/2]
 * picked by ids of pos_dt (KILN_BOOL: no ids, caches [B, S, R/2]); rot 0 is
 * the whole head.  The reference follows ONNX's definition element by
 * element: float32 products, each rounded, their difference or sum rounded,
 * then rounded to the dtype; compared bit for bit. */
static void check_rotary(kiln_dtype dt, int four_d, int64_t B, int64_t S, int64_t H, int64_t D, int64_t rot,
                         int interleaved, kiln_dtype pos_dt, int64_t P) {
    const int64_t R = rot ? rot : D, half = R / 2, nx = B * S * H * D;
    const int has_pos = pos_dt != KILN_BOOL;
    const int64_t rows = has_pos ? P : B * S, nc = rows * half;
    void *x = alloc_elems(dt, nx), *y = alloc_elems(dt, nx), *c = alloc_elems(dt, nc), *sn = alloc_elems(dt, nc);
    void *pos = alloc_elems(KILN_INT64, B * S);
    REQUIRE(x && y && c && sn && pos);
    for (int64_t i = 0; i < nx; i++) set_f(dt, x, i, rotary_value());
    for (int64_t i = 0; i < nc; i++) {
        set_f(dt, c, i, rotary_value());
        set_f(dt, sn, i, rotary_value());
    }
    for (int64_t i = 0; has_pos && i < B * S; i++) {
        int64_t v = (int64_t)(rng() % (uint64_t)P);
        if (pos_dt == KILN_INT32) ((int32_t *)pos)[i] = (int32_t)v;
        else ((int64_t *)pos)[i] = v;
    }
    int64_t xd[4], cd[3], pd[2] = {B, S};
    int xr = four_d ? 4 : 3;
    if (four_d) memcpy(xd, (int64_t[]){B, H, S, D}, sizeof(int64_t) * 4);
    else memcpy(xd, (int64_t[]){B, S, H * D}, sizeof(int64_t) * 3);
    if (has_pos) memcpy(cd, (int64_t[]){P, half}, sizeof(int64_t) * 2);
    else memcpy(cd, (int64_t[]){B, S, half}, sizeof(int64_t) * 3);
    kiln_tensor_desc ins[4] = {make_desc(x, dt, xr, xd), make_desc(c, dt, has_pos ? 2 : 3, cd),
                               make_desc(sn, dt, has_pos ? 2 : 3, cd), make_desc(pos, pos_dt, 2, pd)};
    kiln_tensor_desc out = make_desc(y, dt, xr, xd);
    int64_t attrs[3] = {interleaved, rot, four_d ? 0 : H};
    kiln_layer_launch l = {.op = KILN_OP_ROTARY_EMBEDDING, .attrs = attrs, .attr_count = 3,
                           .input_count = has_pos ? 4 : 3, .output_count = 1, .inputs = ins, .outputs = &out};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    const float_format f32 = format_of(KILN_FLOAT32), f = format_of(dt);
    const size_t es = kiln_dtype_size(dt);
    int64_t bad = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            int64_t row = !has_pos ? b * S + s : pos_dt == KILN_INT32 ? ((int32_t *)pos)[b * S + s]
                                                                      : ((int64_t *)pos)[b * S + s];
            for (int64_t h = 0; h < H; h++) {
                int64_t base = four_d ? ((b * H + h) * S + s) * D : ((b * S + s) * H + h) * D;
                for (int64_t d = 0; d < D; d++) {
                    int64_t at = base + d;
                    if (d >= R) {   /* passed through: the same bits */
                        bad += memcmp((char *)y + at * (int64_t)es, (char *)x + at * (int64_t)es, es) != 0;
                        continue;
                    }
                    /* d's pair i, and whether d is its first element */
                    int64_t i = interleaved ? d / 2 : d % half;
                    int first = interleaved ? d % 2 == 0 : d < half;
                    int64_t e1 = base + (interleaved ? 2 * i : i), e2 = base + (interleaved ? 2 * i + 1 : half + i);
                    double x1 = get_f(dt, x, e1), x2 = get_f(dt, x, e2);
                    double cv = get_f(dt, c, row * half + i), sv = get_f(dt, sn, row * half + i);
                    double want = first ? ref_round(ref_round(x1 * cv, f32) - ref_round(x2 * sv, f32), f32)
                                        : ref_round(ref_round(x1 * sv, f32) + ref_round(x2 * cv, f32), f32);
                    want = ref_round(want, f);
                    bad += get_f(dt, y, at) != want;
                }
            }
        }
    if (bad)
        fprintf(stderr, "rotary %s %s B %lld S %lld H %lld D %lld rot %lld interleaved %d ids %s: %lld wrong\n",
                kiln_dtype_name(dt), four_d ? "4-D" : "3-D", (long long)B, (long long)S, (long long)H, (long long)D,
                (long long)rot, interleaved, has_pos ? kiln_dtype_name(pos_dt) : "none", (long long)bad);
    CHECK(bad == 0);
    free(x);
    free(y);
    free(c);
    free(sn);
    free(pos);
}

static void test_rotary_embedding(void) {
    const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int t = 0; t < 3; t++)
        for (int four_d = 0; four_d < 2; four_d++)
            for (int il = 0; il < 2; il++) {
                check_rotary(dts[t], four_d, 2, 3, 4, 8, 0, il, KILN_INT64, 11);    /* whole heads, int64 ids */
                check_rotary(dts[t], four_d, 2, 3, 4, 8, 4, il, KILN_INT32, 5);     /* partial, int32 ids */
                check_rotary(dts[t], four_d, 3, 5, 2, 6, 2, il, KILN_BOOL, 0);      /* per-token caches */
                check_rotary(dts[t], four_d, 1, 1, 3, 10, 6, il, KILN_INT64, 1);    /* a decode step */
                check_rotary(dts[t], four_d, 2, 2, 1, 2, 0, il, KILN_BOOL, 0);      /* one pair per head */
            }
    /* A long prompt: large enough to run on several threads (when there are cores). */
    check_rotary(KILN_FLOAT32, 1, 1, 1024, 8, 128, 0, 0, KILN_INT64, 2048);
    check_rotary(KILN_BFLOAT16, 0, 2, 512, 8, 128, 64, 1, KILN_INT32, 4096);

    /* By hand: x [1, 1, 2, 4] (one head, two positions) = 0..7, ids {0, 2};
     * cache row 0 is the identity, row 2 turns the first pair by 90 degrees
     * and keeps the second.  Then a position id out of range fails before
     * anything is written, naming it and where it is; negative ids do not
     * count from the end. */
    float x[8] = {0, 1, 2, 3, 4, 5, 6, 7}, y[8], c[3 * 2] = {1, 1, 9, 9, 0, 1}, sn[3 * 2] = {0, 0, 9, 9, 1, 0};
    int64_t pos[2] = {0, 2}, xd[4] = {1, 1, 2, 4}, cd[2] = {3, 2}, pd[2] = {1, 2};
    kiln_tensor_desc ins[4] = {make_desc(x, KILN_FLOAT32, 4, xd), make_desc(c, KILN_FLOAT32, 2, cd),
                               make_desc(sn, KILN_FLOAT32, 2, cd), make_desc(pos, KILN_INT64, 2, pd)};
    kiln_tensor_desc out = make_desc(y, KILN_FLOAT32, 4, xd);
    int64_t attrs[3] = {0, 0, 0};
    kiln_layer_launch l = {.op = KILN_OP_ROTARY_EMBEDDING, .attrs = attrs, .attr_count = 3, .input_count = 4,
                           .output_count = 1, .inputs = ins, .outputs = &out};
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    const float want[8] = {0, 1, 2, 3, -6, 5, 4, 7};   /* pair (4, 6) -> (-6, 4); pair (5, 7) kept */
    CHECK(memcmp(y, want, sizeof want) == 0);
    attrs[0] = 1;   /* interleaved: pairs (4, 5) -> (-5, 4), (6, 7) kept */
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    const float want_il[8] = {0, 1, 2, 3, -5, 4, 6, 7};
    CHECK(memcmp(y, want_il, sizeof want_il) == 0);
    attrs[0] = 0;
    memset(y, 0x5A, sizeof y);
    pos[1] = 3;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "rotary_embedding: position id 3 at [0, 1] of position_ids is out of range [0, 3)");
    pos[1] = -1;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "position id -1 at [0, 1] of position_ids is out of range [0, 3)");
    unsigned char poison[sizeof y];
    memset(poison, 0x5A, sizeof poison);
    CHECK(memcmp(y, poison, sizeof y) == 0);
    pos[1] = 2;
    /* Launches the kernel cannot take: refused, not run. */
    attrs[0] = 2;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "rotary_embedding: x, the caches, position_ids and the attributes do not fit together");
    attrs[0] = 0;
    ins[2].dtype = KILN_FLOAT16;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_UNSUPPORTED, "rotary_embedding of float32 x");
    ins[2].dtype = KILN_FLOAT32;
    ins[3].dtype = KILN_FLOAT32;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    ins[3].dtype = KILN_INT64;
    l.input_count = 2;
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT, "rotary_embedding takes");
}

/* RESIZE against a literal reading of onnx's reference in double precision,
 * one axis at a time (its separable recursion): the source coordinate by
 * the transformation's formula, ratio in (0, 1], the coefficients, and the
 * n taps nearest to x in the input padded by ceil(n/2) edge copies
 * (preferring smaller indices), with exclude_outside zeroing and
 * renormalizing the taps outside the input. */
typedef struct resize_case {
    int     rank;
    int64_t x[4], out[4];
    int64_t mode, coord, nearest, exclude;
    double  a, scale[4];   /* 0: out/in */
} resize_case;

static void ref_resize_axis(const double *src, double *dst, int rank, const int64_t *dims, int axis, int64_t out_n,
                            const resize_case *c, double scale) {
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++) outer *= dims[i];
    for (int i = axis + 1; i < rank; i++) inner *= dims[i];
    const int64_t in_n = dims[axis];
    const double len = scale * (double)in_n;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t xo = 0; xo < out_n; xo++)
            for (int64_t q = 0; q < inner; q++) {
                const double xd = (double)xo;
                double xi;
                switch (c->coord) {
                case KILN_RESIZE_ALIGN_CORNERS: xi = len == 1 ? 0 : xd * (double)(in_n - 1) / (len - 1); break;
                case KILN_RESIZE_ASYMMETRIC: xi = xd / scale; break;
                case KILN_RESIZE_PYTORCH_HALF_PIXEL: xi = len == 1 ? -0.5 : (xd + 0.5) / scale - 0.5; break;
                case KILN_RESIZE_HALF_PIXEL_SYMMETRIC:
                    xi = (double)in_n / 2 * (1 - (double)out_n / len) + (xd + 0.5) / scale - 0.5;
                    break;
                default: xi = (xd + 0.5) / scale - 0.5;
                }
                const double ratio = xi == floor(xi) ? 1 : xi - floor(xi);
                double co[4];
                int n;
                if (c->mode == KILN_RESIZE_NEAREST) {
                    n = 2;
                    int right = ratio == 1 || (c->nearest == KILN_RESIZE_ROUND_PREFER_FLOOR && ratio > 0.5) ||
                                (c->nearest == KILN_RESIZE_ROUND_PREFER_CEIL && ratio >= 0.5) ||
                                c->nearest == KILN_RESIZE_CEIL;
                    co[0] = !right;
                    co[1] = right;
                } else if (c->mode == KILN_RESIZE_LINEAR) {
                    n = 2;
                    co[0] = 1 - ratio;
                    co[1] = ratio;
                } else {
                    const double A = c->a, r = ratio;
                    n = 4;
                    co[0] = ((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A;
                    co[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
                    co[2] = ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1;
                    co[3] = ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A;
                }
                /* The n nearest of [0, in + 2·pad) to x + pad, by (distance, index), in order. */
                const int64_t pad = (n + 1) / 2, limit = in_n + 2 * pad;
                const double xp = xi + (double)pad;
                int64_t idx[4];
                int taken = 0;
                int64_t lo = (int64_t)floor(xp), hi = lo + 1;   /* grow a window around x */
                while (taken < n) {
                    int64_t pick;
                    int lo_ok = lo >= 0 && lo < limit, hi_ok = hi >= 0 && hi < limit;
                    if (lo_ok && (!hi_ok || fabs(xp - (double)lo) <= fabs(xp - (double)hi))) pick = lo--;
                    else if (hi_ok) pick = hi++;
                    else break;
                    idx[taken++] = pick;
                }
                for (int i = 0; i < taken; i++)   /* ascending */
                    for (int j = i + 1; j < taken; j++)
                        if (idx[j] < idx[i]) {
                            int64_t t = idx[i];
                            idx[i] = idx[j];
                            idx[j] = t;
                        }
                if (c->exclude && c->mode != KILN_RESIZE_NEAREST) {
                    double sum = 0;
                    for (int t = 0; t < n; t++) {
                        if (idx[t] - pad < 0 || idx[t] - pad >= in_n) co[t] = 0;
                        sum += co[t];
                    }
                    for (int t = 0; t < n; t++) co[t] /= sum;
                }
                double v = 0;
                for (int t = 0; t < n; t++) {
                    int64_t j = idx[t] - pad;
                    j = j < 0 ? 0 : j >= in_n ? in_n - 1 : j;
                    v += co[t] * src[(o * in_n + j) * inner + q];
                }
                dst[(o * out_n + xo) * inner + q] = v;
            }
}

static void check_resize(kiln_dtype dt, const resize_case *c) {
    int64_t attrs[5 + 2 * 4];
    int32_t na = 0;
    attrs[na++] = c->mode;
    attrs[na++] = c->coord;
    attrs[na++] = c->nearest;
    attrs[na++] = c->exclude;
    memcpy(&attrs[na++], &c->a, sizeof c->a);
    for (int i = 0; i < c->rank; i++) memcpy(&attrs[na++], &c->scale[i], sizeof(double));
    for (int i = 0; i < c->rank; i++) attrs[na++] = c->out[i];
    const int64_t nx = numel_of(c->rank, c->x), no = numel_of(c->rank, c->out);
    void *x = alloc_elems(dt, nx), *y = alloc_elems(dt, no);
    REQUIRE(x && y);
    fill_values(dt, x, nx, 0);
    kiln_tensor_desc in = make_desc(x, dt, c->rank, c->x), out = make_desc(y, dt, c->rank, c->out);
    kiln_layer_launch l = {.op = KILN_OP_RESIZE, .attrs = attrs, .attr_count = na, .input_count = 1,
                           .output_count = 1, .inputs = &in, .outputs = &out};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    /* The reference: the axes one after another, in double. */
    int64_t dims[4], total = nx, most = nx;
    for (int i = 0; i < c->rank; i++) {
        dims[i] = c->x[i];
        total = total / (c->x[i] ? c->x[i] : 1) * c->out[i];
        most = total > most ? total : most;
    }
    double *a = malloc(sizeof(double) * (size_t)(most + no + 1)), *b = malloc(sizeof(double) * (size_t)(most + no + 1));
    REQUIRE(a && b);
    for (int64_t i = 0; i < nx; i++) a[i] = get_f(dt, x, i);
    for (int i = 0; i < c->rank; i++) {
        double sc = c->scale[i] != 0 ? c->scale[i] : (double)c->out[i] / (double)c->x[i];
        ref_resize_axis(a, b, c->rank, dims, i, c->out[i], c, sc);
        dims[i] = c->out[i];
        double *t = a;
        a = b;
        b = t;
    }
    const double rtol = dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 2e-3 : 1.6e-2;
    int64_t bad = 0;
    for (int64_t e = 0; e < no; e++) {
        const double want = a[e], got = get_f(dt, y, e);
        const int ok = c->mode == KILN_RESIZE_NEAREST ? got == want : fabs(got - want) <= rtol * (1 + fabs(want));
        if (!ok && bad++ < 3)
            fprintf(stderr, "  resize mode %lld coord %lld %s: element %lld: got %g, want %g\n", (long long)c->mode,
                    (long long)c->coord, kiln_dtype_name(dt), (long long)e, got, want);
    }
    CHECK(bad == 0);
    free(a);
    free(b);
    free(x);
    free(y);
}

static void test_resize(void) {
    static const resize_case cases[] = {
        {4, {2, 3, 5, 7}, {2, 3, 10, 14}, KILN_RESIZE_NEAREST, KILN_RESIZE_ASYMMETRIC, KILN_RESIZE_FLOOR, 0, -0.75,
         {1, 1, 2, 2}},
        {2, {9, 10}, {4, 23}, KILN_RESIZE_NEAREST, KILN_RESIZE_HALF_PIXEL, KILN_RESIZE_ROUND_PREFER_FLOOR, 0, 0, {0}},
        {2, {9, 10}, {4, 23}, KILN_RESIZE_NEAREST, KILN_RESIZE_ALIGN_CORNERS, KILN_RESIZE_ROUND_PREFER_CEIL, 0, 0, {0}},
        {2, {9, 10}, {5, 13}, KILN_RESIZE_NEAREST, KILN_RESIZE_HALF_PIXEL_SYMMETRIC, KILN_RESIZE_CEIL, 0, 0,
         {0.6, 1.35}},
        {3, {2, 6, 7}, {2, 13, 4}, KILN_RESIZE_LINEAR, KILN_RESIZE_HALF_PIXEL, 0, 0, 0, {0}},
        {3, {2, 6, 7}, {2, 13, 4}, KILN_RESIZE_LINEAR, KILN_RESIZE_ALIGN_CORNERS, 0, 0, 0, {0}},
        {3, {2, 6, 7}, {2, 9, 4}, KILN_RESIZE_LINEAR, KILN_RESIZE_PYTORCH_HALF_PIXEL, 0, 1, 0, {1, 1.5, 0.6}},
        {3, {3, 4, 5}, {5, 7, 3}, KILN_RESIZE_LINEAR, KILN_RESIZE_HALF_PIXEL_SYMMETRIC, 0, 0, 0, {0}},
        {2, {7, 8}, {15, 5}, KILN_RESIZE_CUBIC, KILN_RESIZE_HALF_PIXEL, 0, 0, -0.75, {0}},
        {2, {7, 8}, {15, 5}, KILN_RESIZE_CUBIC, KILN_RESIZE_ASYMMETRIC, 0, 1, -0.5, {0}},
        {2, {7, 8}, {10, 12}, KILN_RESIZE_CUBIC, KILN_RESIZE_ALIGN_CORNERS, 0, 1, -0.75, {1.5, 1.5}},
        /* every axis cubic: 64 source rows per output row, past the row slots (the direct loop) */
        {4, {3, 4, 5, 6}, {5, 3, 7, 4}, KILN_RESIZE_CUBIC, KILN_RESIZE_HALF_PIXEL, 0, 0, -0.75, {0}},
        {4, {4, 16, 40, 40}, {4, 16, 80, 60}, KILN_RESIZE_LINEAR, KILN_RESIZE_HALF_PIXEL, 0, 0, 0, {0}},   /* threads */
        {4, {2, 16, 30, 30}, {2, 16, 67, 45}, KILN_RESIZE_CUBIC, KILN_RESIZE_PYTORCH_HALF_PIXEL, 0, 0, -0.75, {0}},
    };
    const kiln_dtype floats[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    for (int d = 0; d < 3; d++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_resize(floats[d], &cases[i]);
    /* Nearest copies any dtype; interpolation of int32 and launches that do
     * not fit the rule are refused. */
    int64_t dims[2] = {2, 3}, odims[2] = {4, 6}, attrs[9] = {0, KILN_RESIZE_ASYMMETRIC, KILN_RESIZE_FLOOR, 0, 0,
                                                            0, 0, 4, 6};
    int32_t xi[6] = {1, 2, 3, 4, 5, 6}, yi[24];
    kiln_tensor_desc in = make_desc(xi, KILN_INT32, 2, dims), out = make_desc(yi, KILN_INT32, 2, odims);
    kiln_layer_launch l = {.op = KILN_OP_RESIZE, .attrs = attrs, .attr_count = 9, .input_count = 1, .output_count = 1,
                           .inputs = &in, .outputs = &out};
    CHECK(kiln_backend_cpu()->supports_op(&l));
    CHECK_OK(kiln_backend_cpu()->run_layer(0, &l, NULL));
    CHECK(yi[0] == 1 && yi[1] == 1 && yi[2] == 2 && yi[6] == 1 && yi[12] == 4 && yi[23] == 6);
    attrs[0] = KILN_RESIZE_LINEAR;
    CHECK(!kiln_backend_cpu()->supports_op(&l));
    attrs[0] = KILN_RESIZE_NEAREST;
    attrs[8] = 5;   /* a size that is not the output's */
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "resize of rank 2 with 9 attributes");
    attrs[8] = 6;
    const double nan = NAN;
    memcpy(&attrs[5], &nan, sizeof nan);
    CHECK_FAILS(kiln_backend_cpu()->run_layer(0, &l, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "resize of rank 2 with 9 attributes");
}

int main(void) {
    TEST_RUN(test_backend_table);
    TEST_RUN(test_dispatch_errors);
    TEST_RUN(test_bulk_conversions);
    TEST_RUN(test_cast_all_pairs);
    TEST_RUN(test_cast_edges);
    TEST_RUN(test_binary_all);
    TEST_RUN(test_binary_integer_edges);
    TEST_RUN(test_binary_in_place);
    TEST_RUN(test_unary_all);
    TEST_RUN(test_unary_exp_sweep);
    TEST_RUN(test_gather);
    TEST_RUN(test_scatter);
    TEST_RUN(test_reshape);
    TEST_RUN(test_topk);
    TEST_RUN(test_rotary_embedding);
    TEST_RUN(test_conv);
    TEST_RUN(test_pool);
    TEST_RUN(test_resize);
    TEST_RUN(test_matmul);
    TEST_RUN(test_matmul_out_of_memory);
    TEST_RUN(test_matmul_threads);
    TEST_RUN(test_elementwise_threads);
    TEST_RUN(test_cuda_backend_default_search);
    TEST_RUN(test_cuda_backend_missing);
    return test_summary();
}
