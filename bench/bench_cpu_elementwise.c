/* bench_cpu_elementwise.c — large elementwise CPU layers, one thread against
 * all of them (KILN_CPU_THREADS).  Each engine has one layer on a
 * 4096 x 4096 input: relu (memory-bound), gelu (compute-bound), add of two
 * same-shape tensors, add of a bias row (broadcast), and a float32 → float16
 * cast.  GB/s counts the bytes
 * read and written; outputs of both runs are compared. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_clock.h"
#include "bench_engine.h"
#include "kiln/kiln.h"

enum { ROWS = 4096, COLS = 4096 };
typedef enum { RELU, GELU, ADD, BIAS, CAST } which;
static const char *const names[] = {"relu float32", "gelu float32", "add float32", "add a [4096] bias row float32",
                                    "cast float32 -> float16"};

static double run(which w, float *x, float *y, void *out) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_expr shape[2] = {kiln_expr_const(pool, ROWS), kiln_expr_const(pool, COLS)};
    kiln_tensor tx, ty, t;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &tx));
    if (w == ADD) TRY(kiln_network_add_input(net, "y", KILN_FLOAT32, 2, shape, &ty));
    if (w == BIAS) TRY(kiln_network_add_input(net, "y", KILN_FLOAT32, 1, shape + 1, &ty));
    if (w == RELU) TRY(kiln_network_add_unary(net, KILN_UNARY_RELU, tx, &t));
    if (w == GELU) TRY(kiln_network_add_unary(net, KILN_UNARY_GELU, tx, &t));
    if (w == ADD || w == BIAS) TRY(kiln_network_add_binary(net, KILN_BINARY_ADD, tx, ty, &t));
    if (w == CAST) TRY(kiln_network_add_cast(net, tx, KILN_FLOAT16, &t));
    TRY(kiln_network_mark_output(net, t, "out", w == CAST ? KILN_FLOAT16 : KILN_FLOAT32));
    bench_engine be = bench_engine_open(net);
    kiln_context *ctx = be.ctx;
    TRY(kiln_context_set_tensor(ctx, "x", x));
    if (w == ADD || w == BIAS) TRY(kiln_context_set_tensor(ctx, "y", y));
    TRY(kiln_context_set_tensor(ctx, "out", out));
    TRY(kiln_context_enqueue(ctx, NULL));
    double best = 1e30;
    for (int i = 0; i < 7; i++) {
        double t0 = bench_now();
        TRY(kiln_context_enqueue(ctx, NULL));
        double dt = bench_now() - t0;
        if (dt < best) best = dt;
    }
    bench_engine_close(&be);
    return best;
}

int main(void) {
    size_t n = (size_t)ROWS * COLS;
    float *x = malloc(n * 4), *y = malloc(n * 4);
    void *o1 = malloc(n * 4), *on = malloc(n * 4);
    if (!x || !y || !o1 || !on) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)((i * 2654435761u) % 20001) / 1000.0f - 10.0f;
        y[i] = (float)(i % 977) / 977.0f;
    }
    const char *given = getenv("KILN_CPU_THREADS");
    char saved[32] = "";
    if (given) snprintf(saved, sizeof saved, "%s", given);
    int all_ok = 1;
    printf("| layer on 4096 x 4096 | ms, 1 thread | ms, all threads (%ld CPUs) | GB/s, all | same output |\n"
           "|---|---:|---:|---:|---|\n", sysconf(_SC_NPROCESSORS_ONLN));
    for (which w = RELU; w <= CAST; w++) {
        size_t out_bytes = n * (w == CAST ? 2 : 4), moved = n * 4 * (w == ADD ? 2 : 1) + out_bytes;
        setenv("KILN_CPU_THREADS", "1", 1);
        double t1 = run(w, x, y, o1);
        if (given) setenv("KILN_CPU_THREADS", saved, 1);
        else unsetenv("KILN_CPU_THREADS");
        double tn = run(w, x, y, on);
        int same = memcmp(o1, on, out_bytes) == 0;
        all_ok &= same;
        printf("| %s | %.2f | %.2f | %.1f | %s |\n", names[w], t1 * 1e3, tn * 1e3, (double)moved / tn / 1e9,
               same ? "yes" : "NO");
    }
    free(x);
    free(y);
    free(o1);
    free(on);
    return all_ok ? 0 : 1;
}
