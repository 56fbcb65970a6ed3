/* demo.c — build, save, load and run a small engine with a native plugin.
 *
 *   y      = relu(x @ W + b)                 built-in layers
 *   z      = ScaleShift(y, scale=2, shift=1)  plugin from libkiln_example_plugin.so
 *   lo, hi = SplitHalves(z)                   plugin with two outputs and a workspace
 *
 * x has a dynamic batch dimension (1..16).  The engine is written to a file,
 * loaded back (mapped), run for batch 3 and checked against a direct C
 * computation.  Usage: kiln_demo [plugin-library] [engine-path] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln/plugin.h"

#define IN 6
#define HID 4
#define BATCH 3

#define TRY(call) do { kiln_status s_ = (call); if (s_ != KILN_OK) { \
    fprintf(stderr, "kiln_demo: %s failed: %s: %s\n", #call, kiln_status_string(s_), kiln_last_error()); \
    return 1; } } while (0)

static int build(const char *path, const float *w, const float *b) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 16};
    kiln_expr batch;
    TRY(kiln_network_add_dim(net, "batch", &range, 1, &batch));
    kiln_expr xshape[2] = {batch, kiln_expr_const(pool, IN)};
    kiln_tensor x, wt, bt, mm, biased, y, z, halves[2];
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xshape, &x));
    int64_t wdims[2] = {IN, HID}, bdims[1] = {HID};
    TRY(kiln_network_add_constant(net, "W", KILN_FLOAT32, 2, wdims, w, &wt));
    TRY(kiln_network_add_constant(net, "b", KILN_FLOAT32, 1, bdims, b, &bt));
    TRY(kiln_network_add_matmul(net, x, wt, &mm));
    TRY(kiln_network_add_binary(net, KILN_BINARY_ADD, mm, bt, &biased));
    TRY(kiln_network_add_unary(net, KILN_UNARY_RELU, biased, &y));
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(2.0));
    kiln_value_map_set(fields, "shift", kiln_value_float64(1.0));
    TRY(kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &y, 1, &z));
    kiln_value_free(fields);
    kiln_value *none = kiln_value_map();
    TRY(kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, none, 1, &z, 2, halves));
    kiln_value_free(none);
    TRY(kiln_network_mark_output(net, halves[0], "lo", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, halves[1], "hi", KILN_FLOAT32));
    kiln_blob *blob;
    TRY(kiln_network_build(net, NULL, &blob));
    kiln_build_report report;
    TRY(kiln_network_build_report(net, &report));
    printf("built %d layers: %zu bytes, activation arena %llu bytes (%llu without reuse), weights %llu bytes\n",
           report.layer_count, kiln_blob_size(blob), (unsigned long long)report.arena_bytes,
           (unsigned long long)report.activation_bytes, (unsigned long long)report.weight_bytes);
    TRY(kiln_blob_save(blob, path));
    printf("saved %s\n", path);
    kiln_blob_free(blob);
    kiln_network_free(net);
    return 0;
}

static int run(const char *path, const float *x, float *lo, float *hi) {
    kiln_engine *engine;
    TRY(kiln_engine_load_file(path, 0, &engine));
    printf("loaded %s: %d layers, %d inputs/outputs, %d plugin(s)\n", path, kiln_engine_layer_count(engine),
           kiln_engine_io_count(engine), kiln_engine_plugin_count(engine));
    for (int32_t i = 0; i < kiln_engine_layer_count(engine); i++) {
        const char *kind, *detail;
        TRY(kiln_engine_layer_info(engine, i, &kind, &detail, NULL, NULL, NULL, NULL));
        printf("  layer %d: %s %s\n", i, kind, detail);
    }
    kiln_context *ctx;
    TRY(kiln_context_create(engine, NULL, &ctx));
    int64_t shape[2] = {BATCH, IN};
    TRY(kiln_context_set_input_shape(ctx, "x", 2, shape));
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    TRY(kiln_context_tensor_shape(ctx, "lo", &rank, dims));
    printf("output 'lo' has shape [%lld, %lld] for batch %d\n", (long long)dims[0], (long long)dims[1], BATCH);
    TRY(kiln_context_set_tensor(ctx, "x", (void *)x));
    TRY(kiln_context_set_tensor(ctx, "lo", lo));
    TRY(kiln_context_set_tensor(ctx, "hi", hi));
    TRY(kiln_context_enqueue(ctx, NULL));
    kiln_context_free(ctx);
    kiln_engine_free(engine);
    return 0;
}

/* kiln's own build passes the library it built; elsewhere give it on the
 * command line (or it is looked up by name, as dlopen does). */
#ifndef KILN_EXAMPLE_PLUGIN_PATH
#define KILN_EXAMPLE_PLUGIN_PATH "libkiln_example_plugin.so"
#endif

int main(int argc, char **argv) {
    const char *library = argc > 1 ? argv[1] : KILN_EXAMPLE_PLUGIN_PATH;
    const char *path = argc > 2 ? argv[2] : "demo.engine";
    TRY(kiln_plugin_library_load(library));
    float w[IN * HID], b[HID], x[BATCH * IN], lo[BATCH * HID / 2], hi[BATCH * HID / 2];
    for (int i = 0; i < IN * HID; i++) w[i] = (float)((i * 7) % 11 - 5) / 8.0f;
    for (int i = 0; i < HID; i++) b[i] = (float)i / 4.0f - 0.5f;
    for (int i = 0; i < BATCH * IN; i++) x[i] = (float)((i * 5) % 9 - 4) / 3.0f;
    if (build(path, w, b) || run(path, x, lo, hi)) return 1;
    double max_error = 0;
    for (int r = 0; r < BATCH; r++)
        for (int j = 0; j < HID; j++) {
            double acc = b[j];
            for (int k = 0; k < IN; k++) acc += (double)x[r * IN + k] * w[k * HID + j];
            double want = (acc > 0 ? acc : 0) * 2.0 + 1.0;
            double got = j < HID / 2 ? lo[r * (HID / 2) + j] : hi[r * (HID / 2) + j - HID / 2];
            printf("%s%8.4f", j ? " " : "  row: ", got);
            if (fabs(got - want) > max_error) max_error = fabs(got - want);
        }
    printf("\nmax |kiln - reference| = %.2g -> %s\n", max_error, max_error < 1e-5 ? "OK" : "MISMATCH");
    return max_error < 1e-5 ? 0 : 1;
}
