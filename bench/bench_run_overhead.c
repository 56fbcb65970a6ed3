/* bench_run_overhead.c — run overhead of a CPU context per layer.
 *
 * A chain of N tiny layers (alternating add-with-a-constant and relu on 4
 * float32 elements) runs many times; time per enqueue / N is the cost kiln
 * adds per layer, since the kernels themselves touch 16 bytes.
 * Target (issue 2): under 1 µs per layer for N = 1000. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_clock.h"
#include "bench_engine.h"
#include "kiln/kiln.h"

static double run_chain(int layers, int iterations) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_expr shape[1] = {kiln_expr_const(kiln_network_exprs(net), 4)};
    kiln_tensor x, c, t;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 1, shape, &x));
    float one[4] = {0.001f, 0.001f, 0.001f, 0.001f};
    int64_t dims[1] = {4};
    TRY(kiln_network_add_constant(net, "c", KILN_FLOAT32, 1, dims, one, &c));
    t = x;
    for (int i = 0; i < layers; i++) {
        if (i % 2 == 0) TRY(kiln_network_add_binary(net, KILN_BINARY_ADD, t, c, &t));
        else TRY(kiln_network_add_unary(net, KILN_UNARY_RELU, t, &t));
    }
    TRY(kiln_network_mark_output(net, t, "y", KILN_FLOAT32));
    bench_engine be = bench_engine_open(net);
    kiln_context *ctx = be.ctx;
    float in[4] = {1, -1, 2, -2}, out[4];
    int64_t s = 4;
    TRY(kiln_context_set_input_shape(ctx, "x", 1, &s));
    TRY(kiln_context_set_tensor(ctx, "x", in));
    TRY(kiln_context_set_tensor(ctx, "y", out));
    for (int i = 0; i < 100; i++) TRY(kiln_context_enqueue(ctx, NULL));   /* warm-up */
    double best = 1e30;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = bench_now();
        for (int i = 0; i < iterations; i++) kiln_context_enqueue(ctx, NULL);
        double per_layer = (bench_now() - t0) / iterations / layers;
        if (per_layer < best) best = per_layer;
    }
    if (out[0] < 1.0f) { fprintf(stderr, "wrong result %f\n", out[0]); exit(1); }
    bench_engine_close(&be);
    return best;
}

int main(void) {
    printf("| layers | runs | time per layer (best of 5) | target |\n|---:|---:|---:|---|\n");
    int sizes[] = {10, 100, 1000};
    for (int i = 0; i < 3; i++) {
        int iterations = 200000 / sizes[i];
        double t = run_chain(sizes[i], iterations);
        printf("| %d | %d | %.3f µs | %s |\n", sizes[i], iterations, t * 1e6,
               sizes[i] == 1000 ? (t < 1e-6 ? "< 1 µs: met" : "< 1 µs: MISSED") : "");
    }
    return 0;
}
