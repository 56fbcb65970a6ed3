/* bench_cpu_matmul.c — the CPU backend's matmul layer in GFLOP/s.
 *
 * One-layer engines x [M, K] · w [K, N] (w a constant, as a weight is) in
 * float32, float16 and bfloat16, on one CPU thread (KILN_CPU_THREADS=1) and
 * on all the CPUs this process may use; and the same with w stored [N, K]
 * and read through the layer's transpose_b (x @ w.T, a weight as nn.Linear
 * keeps it).  Each result is checked against a double-precision dot product
 * at a few positions. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_clock.h"
#include "bench_engine.h"
#include "kiln/kiln.h"

static uint16_t to_half_bits(kiln_dtype dt, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if (dt == KILN_BFLOAT16) return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    /* float16 for values in the normal range used here (|f| < 2) */
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t exp = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    uint32_t man = u & 0x7fffffu;
    if (exp <= 0) return (uint16_t)sign;
    return (uint16_t)(sign | ((uint32_t)exp << 10) | ((man + 0x1000u) >> 13));
}

static float from_bits(kiln_dtype dt, const void *p, int64_t i) {
    if (dt == KILN_FLOAT32) return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    if (dt == KILN_BFLOAT16) {
        uint32_t u = (uint32_t)h << 16;
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float f = exp ? ldexpf(1.0f + (float)man / 1024.0f, exp - 15) : ldexpf((float)man / 1024.0f, -14);
    return (h & 0x8000) ? -f : f;
}

static void fill(kiln_dtype dt, void *p, int64_t n, unsigned seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        float f = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
        if (dt == KILN_FLOAT32) ((float *)p)[i] = f;
        else ((uint16_t *)p)[i] = to_half_bits(dt, f);
    }
}

static double run(kiln_dtype dt, int64_t M, int64_t K, int64_t N, int tb, int *ok) {
    size_t es = kiln_dtype_size(dt);
    void *x = malloc((size_t)(M * K) * es), *w = malloc((size_t)(K * N) * es), *y = malloc((size_t)(M * N) * es);
    if (!x || !w || !y) { fprintf(stderr, "out of memory\n"); exit(1); }
    fill(dt, x, M * K, 1);
    fill(dt, w, K * N, 2);
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_expr xs[2] = {kiln_expr_const(pool, M), kiln_expr_const(pool, K)};
    int64_t wd[2] = {tb ? N : K, tb ? K : N};
    kiln_tensor tx, tw, ty;
    TRY(kiln_network_add_input(net, "x", dt, 2, xs, &tx));
    TRY(kiln_network_add_constant(net, "w", dt, 2, wd, w, &tw));
    TRY(kiln_network_add_matmul_transposed(net, tx, tw, 0, tb, &ty));
    TRY(kiln_network_mark_output(net, ty, "y", dt));
    bench_engine be = bench_engine_open(net);
    kiln_context *ctx = be.ctx;
    TRY(kiln_context_set_tensor(ctx, "x", x));
    TRY(kiln_context_set_tensor(ctx, "y", y));
    TRY(kiln_context_enqueue(ctx, NULL));
    double flops = 2.0 * (double)M * (double)K * (double)N, best = 1e30;
    int reps = (int)(2e9 / flops) + 1;
    for (int round = 0; round < 3; round++) {
        double t0 = bench_now();
        for (int i = 0; i < reps; i++) TRY(kiln_context_enqueue(ctx, NULL));
        double t = (bench_now() - t0) / reps;
        if (t < best) best = t;
    }
    /* Check a few entries against a double-precision sum of the stored inputs. */
    *ok = 1;
    for (int probe = 0; probe < 16; probe++) {
        int64_t i = (probe * 7919) % M, j = (probe * 104729) % N;
        double want = 0, mag = 0;
        for (int64_t k = 0; k < K; k++) {
            double p = (double)from_bits(dt, x, i * K + k) * (double)from_bits(dt, w, tb ? j * K + k : k * N + j);
            want += p;
            mag += fabs(p);
        }
        double got = from_bits(dt, y, i * N + j);
        double tol = (dt == KILN_FLOAT32 ? 1e-5 : dt == KILN_FLOAT16 ? 2e-3 : 1e-2) * (mag + 1e-3);
        if (fabs(got - want) > tol) *ok = 0;
    }
    bench_engine_close(&be);
    free(x);
    free(w);
    free(y);
    return flops / best / 1e9;
}

/* GFLOP/s of run() with $KILN_CPU_THREADS set to `threads` (0: unset). */
static double run_with_threads(int threads, kiln_dtype dt, int64_t M, int64_t K, int64_t N, int tb, int *ok) {
    char n[16];
    snprintf(n, sizeof n, "%d", threads);
    if (threads) setenv("KILN_CPU_THREADS", n, 1);
    else unsetenv("KILN_CPU_THREADS");
    return run(dt, M, K, N, tb, ok);
}

int main(void) {
    static const struct { int64_t M, K, N; } sizes[] = {{1, 4096, 4096}, {64, 1024, 1024}, {512, 512, 512},
                                                         {1024, 1024, 1024}};
    static const kiln_dtype dts[] = {KILN_FLOAT32, KILN_FLOAT16, KILN_BFLOAT16};
    int all_ok = 1;
    const char *given = getenv("KILN_CPU_THREADS");
    char saved[32] = "";
    if (given) snprintf(saved, sizeof saved, "%s", given);
    printf("| M x K x N | dtype | w | GFLOP/s, 1 thread | GFLOP/s, all threads (%ld CPUs) | checked |\n"
           "|---|---|---|---:|---:|---|\n", sysconf(_SC_NPROCESSORS_ONLN));
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (size_t d = 0; d < sizeof dts / sizeof dts[0]; d++) {
            for (int tb = 0; tb < 2; tb++) {
                int ok1, okn;
                double g1 = run_with_threads(1, dts[d], sizes[s].M, sizes[s].K, sizes[s].N, tb, &ok1);
                double gn = run_with_threads(0, dts[d], sizes[s].M, sizes[s].K, sizes[s].N, tb, &okn);
                all_ok &= ok1 & okn;
                printf("| %lld x %lld x %lld | %s | %s | %.1f | %.1f | %s |\n", (long long)sizes[s].M,
                       (long long)sizes[s].K, (long long)sizes[s].N, kiln_dtype_name(dts[d]),
                       tb ? "[N, K], transpose_b" : "[K, N]", g1, gn, ok1 && okn ? "ok" : "WRONG");
            }
        }
    }
    if (given) setenv("KILN_CPU_THREADS", saved, 1);
    return all_ok ? 0 : 1;
}
