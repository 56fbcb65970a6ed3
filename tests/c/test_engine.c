/* test_engine.c — the whole path: build → bytes/file → load → contexts → run,
 * with dynamic shapes, profiles, plugins, output copies, concurrency and the
 * run-time errors a user meets. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kiln/plugin.h"
#include "test.h"

static void load_example_plugins(void) {
    static int loaded;
    if (!loaded) {
        kiln_status s = kiln_plugin_library_load(KILN_EXAMPLE_PLUGIN_PATH);
        if (s != KILN_OK) fprintf(stderr, "loading example plugins: %s\n", kiln_last_error());
        loaded = 1;
    }
}

/* y = relu(x @ W + b) * 2 + 1 (plugin), split in halves (plugin): batch is dynamic, two profiles. */
static kiln_blob *build_mlp(const float *w, const float *b) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range ranges[2] = {{1, 2, 4}, {5, 8, 32}};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", ranges, 2, &batch);
    kiln_expr xs[2] = {batch, kiln_expr_const(pool, 3)};
    kiln_tensor x, wt, bt, mm, sum, act, scaled, halves[2];
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    int64_t wd[2] = {3, 4}, bd[1] = {4};
    kiln_network_add_constant(net, "W", KILN_FLOAT32, 2, wd, w, &wt);
    kiln_network_add_constant(net, "b", KILN_FLOAT32, 1, bd, b, &bt);
    kiln_network_add_matmul(net, x, wt, &mm);
    kiln_network_add_binary(net, KILN_BINARY_ADD, mm, bt, &sum);
    kiln_network_add_unary(net, KILN_UNARY_RELU, sum, &act);
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(2.0));
    kiln_value_map_set(fields, "shift", kiln_value_float64(1.0));
    kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &act, 1, &scaled);
    kiln_value_free(fields);
    kiln_value *none = kiln_value_map();
    kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, none, 1, &scaled, 2, halves);
    kiln_value_free(none);
    kiln_network_mark_output(net, halves[0], "lo", KILN_FLOAT32);
    kiln_network_mark_output(net, halves[1], "hi", KILN_FLOAT32);
    kiln_network_mark_output(net, x, "x_copy", KILN_FLOAT32);     /* an input as output: copied */
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob) != KILN_OK) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

/* Build net (freed here) and load the engine from memory; NULL on failure. */
static kiln_engine *build_and_load(kiln_network *net) {
    kiln_blob *blob = NULL;
    kiln_engine *engine = NULL;
    kiln_status s = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    if (s == KILN_OK) s = kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine);
    if (s != KILN_OK) fprintf(stderr, "build and load: %s\n", kiln_last_error());
    kiln_blob_free(blob);
    return engine;
}

static const float W[12] = {0.5f, -1, 0.25f, 2, -0.5f, 1, 1.5f, -2, 1, 0.75f, -0.25f, 0.125f};
static const float B[4] = {0.1f, -0.2f, 0.3f, -0.4f};

static double mlp_reference(const float *x, int row, int j) {
    double acc = B[j];
    for (int k = 0; k < 3; k++) acc += (double)x[row * 3 + k] * W[k * 4 + j];
    return (acc > 0 ? acc : 0) * 2 + 1;
}

static int run_mlp(kiln_context *ctx, int batch, float *x, double *max_error) {
    float lo[64], hi[64], copy[96];
    int64_t shape[2] = {batch, 3};
    if (kiln_context_set_input_shape(ctx, "x", 2, shape) || kiln_context_set_tensor(ctx, "x", x) ||
        kiln_context_set_tensor(ctx, "lo", lo) || kiln_context_set_tensor(ctx, "hi", hi) ||
        kiln_context_set_tensor(ctx, "x_copy", copy) || kiln_context_enqueue(ctx, NULL))
        return 0;
    *max_error = 0;
    for (int r = 0; r < batch; r++)
        for (int j = 0; j < 4; j++) {
            double got = j < 2 ? lo[r * 2 + j] : hi[r * 2 + j - 2];
            double e = fabs(got - mlp_reference(x, r, j));
            if (e > *max_error) *max_error = e;
        }
    for (int i = 0; i < batch * 3; i++)
        if (copy[i] != x[i]) *max_error = 1e9;
    return 1;
}

static void test_build_load_run(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    CHECK(kiln_engine_io_count(engine) == 4);
    CHECK(kiln_engine_profile_count(engine) == 2);
    CHECK(kiln_engine_plugin_count(engine) == 2);
    CHECK(kiln_engine_weight_bytes(engine) >= 64);
    CHECK(kiln_engine_arena_bytes(engine) > 0);
    kiln_io_info info;
    CHECK_OK(kiln_engine_io_info(engine, 1, &info));
    CHECK(strcmp(info.name, "lo") == 0 && info.kind == KILN_IO_OUTPUT && info.rank == 2);
    char text[64];
    kiln_expr_format(kiln_engine_exprs(engine), info.shape[0], text, sizeof text);
    CHECK(strcmp(text, "batch") == 0);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    /* On the CPU a context holds the activation arena, sized for the shapes
     * it has run (nothing before the first); weights stay in the engine. */
    CHECK(kiln_context_memory_bytes(ctx) == 0);
    CHECK(kiln_context_memory_bytes(NULL) == 0);
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = (float)((i * 37) % 17 - 8) / 4.0f;
    double err;
    for (int batch = 1; batch <= 32; batch += (batch < 8 ? 1 : 7)) {
        REQUIRE(run_mlp(ctx, batch, x, &err));
        CHECK(err < 1e-5);
    }
    CHECK(kiln_context_memory_bytes(ctx) > 0 && kiln_context_memory_bytes(ctx) <= kiln_engine_arena_bytes(engine));
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t shape[2] = {7, 3};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    CHECK_OK(kiln_context_tensor_shape(ctx, "hi", &rank, dims));
    CHECK(rank == 2 && dims[0] == 7 && dims[1] == 2);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
    kiln_blob_free(blob);
}

static void test_file_round_trip(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/test_engine_%d.engine", KILN_TEST_TMPDIR, (int)getpid());
    CHECK_OK(kiln_blob_save(blob, path));
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_file(path, 0, &engine));
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    float x[12] = {1, 2, 3, -1, -2, -3, 0.5f, 0, 4, 2, 2, 2};
    double err;
    REQUIRE(run_mlp(ctx, 4, x, &err));
    CHECK(err < 1e-5);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
    CHECK_FAILS(kiln_engine_load_file("/nonexistent/dir/x.engine", 0, &engine), KILN_ERROR_IO,
                "cannot open engine '/nonexistent/dir/x.engine'");
    CHECK_FAILS(kiln_blob_save(blob, "/nonexistent/dir/x.engine"), KILN_ERROR_IO, "/nonexistent/dir/x.engine");
    remove(path);
    kiln_blob_free(blob);
}

static void test_shape_errors(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    int64_t shape[2] = {33, 3};
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "x", 2, shape), KILN_ERROR_SHAPE,
                "input 'x' axis 0 ('batch') = 33 is outside the profile range [1, 4] or [5, 32]");
    shape[0] = 2; shape[1] = 4;
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "x", 2, shape), KILN_ERROR_SHAPE, "input 'x' axis 1 must be 3, got 4");
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "x", 1, shape), KILN_ERROR_SHAPE, "input 'x' has rank 2, not 1");
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "nope", 2, shape), KILN_ERROR_NOT_FOUND, "'nope'");
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "lo", 2, shape), KILN_ERROR_INVALID_ARGUMENT, "'lo' is an output");
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK_FAILS(kiln_context_tensor_shape(ctx, "lo", &rank, dims), KILN_ERROR_STATE, "input 'x' has no shape");
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_STATE, "input 'x' has no shape");
    shape[1] = 3;
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_STATE, "input 'x' has no buffer");
    kiln_context_free(ctx);
    kiln_engine_free(engine);
    kiln_blob_free(blob);
}

/* Two inputs sharing one dimension, and dynamic broadcasting checked at run time. */
static void test_shared_dims_and_runtime_checks(void) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_dim_range r = {1, 4, 8};
    kiln_expr n, m;
    kiln_network_add_dim(net, "n", &r, 1, &n);
    kiln_network_add_dim(net, "m", &r, 1, &m);
    kiln_expr sa[1] = {n}, sb[1] = {n}, sc[1] = {m};
    kiln_tensor a, b, c, ab, abc;
    kiln_network_add_input(net, "a", KILN_INT32, 1, sa, &a);
    kiln_network_add_input(net, "b", KILN_INT32, 1, sb, &b);
    kiln_network_add_input(net, "c", KILN_INT32, 1, sc, &c);
    kiln_network_add_binary(net, KILN_BINARY_MUL, a, b, &ab);
    kiln_network_add_binary(net, KILN_BINARY_ADD, ab, c, &abc);   /* n vs m: checked at run time */
    kiln_network_mark_output(net, abc, "out", KILN_INT32);
    kiln_engine *engine = build_and_load(net);
    REQUIRE(engine != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    int32_t av[4] = {1, 2, 3, 4}, bv[4] = {5, 6, 7, 8}, cv[4] = {100, 200, 300, 400}, out[4];
    int64_t four = 4, three = 3, one = 1;
    CHECK_OK(kiln_context_set_input_shape(ctx, "a", 1, &four));
    CHECK_OK(kiln_context_set_input_shape(ctx, "b", 1, &three));
    CHECK_OK(kiln_context_set_input_shape(ctx, "c", 1, &four));
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_SHAPE, "dimension 'n' is 4 in input 'a' but 3 in input 'b'");
    CHECK_OK(kiln_context_set_input_shape(ctx, "b", 1, &four));
    CHECK_OK(kiln_context_set_input_shape(ctx, "c", 1, &three));
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_SHAPE, "add of 'layer0.out0' and 'c': sizes n and m cannot broadcast");
    CHECK_OK(kiln_context_set_input_shape(ctx, "c", 1, &one));   /* m = 1 broadcasts */
    kiln_context_set_tensor(ctx, "a", av);
    kiln_context_set_tensor(ctx, "b", bv);
    kiln_context_set_tensor(ctx, "c", cv);
    kiln_context_set_tensor(ctx, "out", out);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    for (int i = 0; i < 4; i++) CHECK(out[i] == av[i] * bv[i] + 100);
    CHECK_OK(kiln_context_set_input_shape(ctx, "c", 1, &four));
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    for (int i = 0; i < 4; i++) CHECK(out[i] == av[i] * bv[i] + cv[i]);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

/* Embedding lookup then reshape, cast, gelu: checks the built-in layers end to end. */
static void test_builtin_chain(void) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range r = {1, 2, 6};
    kiln_expr t;
    kiln_network_add_dim(net, "tokens", &r, 1, &t);
    float table[5 * 4];
    for (int i = 0; i < 20; i++) table[i] = (float)i / 10.0f - 1.0f;
    int64_t td[2] = {5, 4};
    kiln_tensor emb, ids, rows, flat, half, act;
    kiln_network_add_constant(net, "table", KILN_FLOAT32, 2, td, table, &emb);
    kiln_expr is[1] = {t};
    kiln_network_add_input(net, "ids", KILN_INT64, 1, is, &ids);
    CHECK_OK(kiln_network_add_gather(net, emb, ids, 0, &rows));
    kiln_expr fs[1] = {kiln_expr_const(pool, -1)};
    CHECK_OK(kiln_network_add_reshape(net, rows, 1, fs, &flat));
    CHECK_OK(kiln_network_add_cast(net, flat, KILN_FLOAT16, &half));
    CHECK_OK(kiln_network_add_unary(net, KILN_UNARY_GELU, half, &act));
    kiln_network_mark_output(net, act, "out", KILN_FLOAT16);
    kiln_engine *engine = build_and_load(net);
    REQUIRE(engine != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    int64_t idv[3] = {4, 0, 2}, n = 3;
    uint16_t out[12];
    CHECK_OK(kiln_context_set_input_shape(ctx, "ids", 1, &n));
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK_OK(kiln_context_tensor_shape(ctx, "out", &rank, dims));
    CHECK(rank == 1 && dims[0] == 12);
    kiln_context_set_tensor(ctx, "ids", idv);
    kiln_context_set_tensor(ctx, "out", out);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    for (int i = 0; i < 12; i++) {
        double v = table[idv[i / 4] * 4 + i % 4];
        double want = 0.5 * v * (1 + tanh(0.7978845608 * (v + 0.044715 * v * v * v)));
        uint16_t h = out[i];
        /* decode half */
        int e = (h >> 10) & 31, m = h & 1023;
        double got = (e == 0 ? m / 1024.0 * pow(2, -14) : (1 + m / 1024.0) * pow(2, e - 15)) * ((h >> 15) ? -1 : 1);
        CHECK(fabs(got - want) < 2e-3);
    }
    idv[1] = 5;   /* out of range for a table of 5 rows */
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_INVALID_ARGUMENT, "layer 0 (axis 0)");
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

/* An input with only constant axes needs no kiln_context_set_input_shape. */
static void test_static_inputs_need_no_shape(void) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range r = {1, 2, 4};
    kiln_expr n;
    kiln_network_add_dim(net, "n", &r, 1, &n);
    kiln_expr as[1] = {n}, bs[1] = {kiln_expr_const(pool, 1)};
    kiln_tensor a, b, sum;
    kiln_network_add_input(net, "a", KILN_INT64, 1, as, &a);
    kiln_network_add_input(net, "b", KILN_INT64, 1, bs, &b);
    kiln_network_add_binary(net, KILN_BINARY_ADD, a, b, &sum);
    kiln_network_mark_output(net, sum, "sum", KILN_INT64);
    kiln_engine *engine = build_and_load(net);
    REQUIRE(engine != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    int64_t av[3] = {1, 2, 3}, bv[1] = {10}, out[3], three = 3;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_STATE, "input 'a' has no shape");
    CHECK_OK(kiln_context_set_input_shape(ctx, "a", 1, &three));
    kiln_context_set_tensor(ctx, "a", av);
    kiln_context_set_tensor(ctx, "b", bv);
    kiln_context_set_tensor(ctx, "sum", out);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    for (int i = 0; i < 3; i++) CHECK(out[i] == av[i] + 10);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

typedef struct worker {
    kiln_engine *engine;
    int          id;
    int          ok;
} worker;

static void *run_worker(void *arg) {
    worker *w = arg;
    kiln_context *ctx;
    if (kiln_context_create(w->engine, NULL, &ctx) != KILN_OK) return NULL;
    float x[96];
    w->ok = 1;
    for (int iter = 0; iter < 200; iter++) {
        int batch = 1 + (iter + w->id) % 32;
        for (int i = 0; i < 96; i++) x[i] = (float)(i + iter + w->id) / 50.0f;
        double err;
        if (!run_mlp(ctx, batch, x, &err) || err > 1e-5) w->ok = 0;
    }
    kiln_context_free(ctx);
    return NULL;
}

static void test_concurrent_contexts(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    kiln_blob_free(blob);
    pthread_t threads[4];
    worker workers[4];
    for (int i = 0; i < 4; i++) {
        workers[i] = (worker){.engine = engine, .id = i};
        pthread_create(&threads[i], NULL, run_worker, &workers[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        CHECK(workers[i].ok);
    }
    kiln_engine_free(engine);
}

/* A context's activation memory follows the shapes it runs: small shapes take
 * little, it grows when they grow (never past the engine's plan at the
 * maxima), and a cap refuses shapes that would need more, saying how much. */
static void test_memory_follows_shapes(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    kiln_blob_free(blob);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    float x[96];
    for (int i = 0; i < 96; i++) x[i] = (float)(i % 7) - 3;
    double err;
    REQUIRE(run_mlp(ctx, 1, x, &err));
    uint64_t small = kiln_context_memory_bytes(ctx);
    REQUIRE(run_mlp(ctx, 32, x, &err));
    CHECK(err < 1e-5);
    uint64_t big = kiln_context_memory_bytes(ctx);
    CHECK(small > 0 && small < big && big <= kiln_engine_arena_bytes(engine));
    /* What the engine says a run at a profile's opt / max holds is what the context holds. */
    uint64_t at_max = 0, at_min_profile_opt = 0;
    CHECK_OK(kiln_engine_activation_bytes(engine, 1, true, &at_max));     /* batch 32: profile 1's max */
    CHECK(at_max == big);
    CHECK_OK(kiln_engine_activation_bytes(engine, 0, false, &at_min_profile_opt));
    CHECK(at_min_profile_opt >= small && at_min_profile_opt <= big);
    CHECK_FAILS(kiln_engine_activation_bytes(engine, 2, true, &at_max), KILN_ERROR_INVALID_ARGUMENT, "profile 2");
    REQUIRE(run_mlp(ctx, 2, x, &err));             /* shrinking shapes keep the arena */
    CHECK(err < 1e-5 && kiln_context_memory_bytes(ctx) == big);
    kiln_context_free(ctx);

    kiln_context_options options = {.struct_size = sizeof options, .max_activation_bytes = small};
    CHECK_OK(kiln_context_create(engine, &options, &ctx));
    REQUIRE(run_mlp(ctx, 1, x, &err));
    CHECK(err < 1e-5);
    int64_t shape[2] = {32, 3};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_NO_MEMORY,
                "bytes of activation memory, more than the context's cap");
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

/* Shapes whose activations are all empty (batch 0): no arena is needed, and
 * none is offset (the execution fuzzer found the NULL-pointer offset). */
static void test_empty_activations(void) {
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_dim_range range = {0, 2, 4};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_expr shape[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, h, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &x);
    kiln_network_add_unary(net, KILN_UNARY_RELU, x, &h);
    kiln_network_add_unary(net, KILN_UNARY_EXP, h, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_engine *engine = build_and_load(net);
    REQUIRE(engine != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    int64_t dims[2] = {0, 3};
    float x0[1], y0[1];
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, dims));
    kiln_context_set_tensor(ctx, "x", x0);
    kiln_context_set_tensor(ctx, "y", y0);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    CHECK(kiln_context_memory_bytes(ctx) == 0);
    dims[0] = 1;
    float x1[3] = {-1, 0, 1}, y1[3];
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, dims));
    kiln_context_set_tensor(ctx, "x", x1);
    kiln_context_set_tensor(ctx, "y", y1);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    CHECK(y1[0] == 1 && y1[1] == 1 && fabsf(y1[2] - 2.7182817f) < 1e-6f);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

static void test_missing_plugin_at_load(void) {
    load_example_plugins();
    kiln_blob *blob = build_mlp(W, B);
    REQUIRE(blob != NULL);
    CHECK_OK(kiln_plugin_deregister("example", "ScaleShift", "1"));
    kiln_engine *engine;
    CHECK_FAILS(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine), KILN_ERROR_NOT_FOUND,
                "engine needs plugin example::ScaleShift version 1, which is not registered; it is defined in "
                "library 'libkiln_example_plugin.so'");
    CHECK_FAILS(kiln_plugin_deregister("example", "ScaleShift", "1"), KILN_ERROR_NOT_FOUND, "not registered");
    kiln_blob_free(blob);
}

int main(void) {
    TEST_RUN(test_build_load_run);
    TEST_RUN(test_file_round_trip);
    TEST_RUN(test_shape_errors);
    TEST_RUN(test_shared_dims_and_runtime_checks);
    TEST_RUN(test_builtin_chain);
    TEST_RUN(test_static_inputs_need_no_shape);
    TEST_RUN(test_concurrent_contexts);
    TEST_RUN(test_memory_follows_shapes);
    TEST_RUN(test_empty_activations);
    TEST_RUN(test_missing_plugin_at_load);   /* last: it deregisters a plugin */
    return test_summary();
}
