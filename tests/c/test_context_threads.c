/* test_context_threads.c — kiln's threading contract (kiln.h): an engine is
 * shared, a context serves one thread at a time.
 *   - 8 threads × 1,000 runs on one engine, a context each, give outputs
 *     bit-identical to the same runs on one thread (built-in layers, threads
 *     inside large layers, and a native plugin);
 *   - a second thread calling into a context that is running is refused with
 *     a message, not raced.
 * KILN_THREAD_TEST_RUNS overrides the runs per thread (the sanitizer build
 * uses fewer: it is ~20× slower, and the races it looks for show up early). */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "kiln/plugin.h"
#include "test.h"

#define THREADS 8
#define HIDDEN 24
#define MAX_BATCH 16

static int runs_per_thread(void) {
    const char *v = getenv("KILN_THREAD_TEST_RUNS");
    int n = v ? atoi(v) : 0;
    return n > 0 ? n : 1000;
}

static float weights_w[HIDDEN * HIDDEN], weights_b[HIDDEN];

/* y = scaleshift(gelu(x @ W + b)) ; z = exp(-y) : batch dynamic. */
static kiln_engine *build_engine(void) {
    if (!kiln_plugin_find("example", "ScaleShift", "1") &&
        kiln_plugin_library_load(KILN_EXAMPLE_PLUGIN_PATH) != KILN_OK)
        return NULL;
    float *w = weights_w, *b = weights_b;
    for (int i = 0; i < HIDDEN * HIDDEN; i++) w[i] = (float)((i * 37 % 23) - 11) / 17.0f;
    for (int i = 0; i < HIDDEN; i++) b[i] = (float)(i % 5) / 7.0f - 0.3f;
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, MAX_BATCH};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_expr xs[2] = {batch, kiln_expr_const(pool, HIDDEN)};
    int64_t wd[2] = {HIDDEN, HIDDEN}, bd[1] = {HIDDEN};
    kiln_tensor x, wt, bt, mm, sum, act, scaled, neg, z;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    kiln_network_add_constant(net, "W", KILN_FLOAT32, 2, wd, w, &wt);
    kiln_network_add_constant(net, "b", KILN_FLOAT32, 1, bd, b, &bt);
    kiln_network_add_matmul(net, x, wt, &mm);
    kiln_network_add_binary(net, KILN_BINARY_ADD, mm, bt, &sum);
    kiln_network_add_unary(net, KILN_UNARY_GELU, sum, &act);
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "scale", kiln_value_float64(0.5));
    kiln_value_map_set(fields, "shift", kiln_value_float64(-0.25));
    kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &act, 1, &scaled);
    kiln_value_free(fields);
    kiln_network_add_unary(net, KILN_UNARY_NEG, scaled, &neg);
    kiln_network_add_unary(net, KILN_UNARY_EXP, neg, &z);
    kiln_network_mark_output(net, scaled, "y", KILN_FLOAT32);
    kiln_network_mark_output(net, z, "z", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_engine *engine = NULL;
    kiln_status s = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    if (s == KILN_OK) s = kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine);
    if (s != KILN_OK) fprintf(stderr, "build and load: %s\n", kiln_last_error());
    kiln_blob_free(blob);
    return engine;
}

static void fill_input(float *x, int batch, int seed) {
    for (int i = 0; i < batch * HIDDEN; i++) x[i] = (float)((i * 13 + seed * 7) % 41 - 20) / 9.0f;
}

static int run_once(kiln_context *ctx, int batch, const float *x, float *y, float *z) {
    int64_t shape[2] = {batch, HIDDEN};
    return kiln_context_set_input_shape(ctx, "x", 2, shape) == KILN_OK &&
           kiln_context_set_tensor(ctx, "x", (void *)x) == KILN_OK && kiln_context_set_tensor(ctx, "y", y) == KILN_OK &&
           kiln_context_set_tensor(ctx, "z", z) == KILN_OK && kiln_context_enqueue(ctx, NULL) == KILN_OK;
}

/* Reference outputs for every (batch, seed) a worker uses, from one thread. */
#define SEEDS 5
static float ref_y[MAX_BATCH + 1][SEEDS][MAX_BATCH * HIDDEN], ref_z[MAX_BATCH + 1][SEEDS][MAX_BATCH * HIDDEN];

typedef struct worker {
    kiln_engine *engine;
    int          id, runs;
    atomic_int   mismatches, failures;
} worker;

static void *worker_main(void *arg) {
    worker *w = arg;
    kiln_context *ctx;
    if (kiln_context_create(w->engine, NULL, &ctx) != KILN_OK) {
        atomic_fetch_add(&w->failures, 1);
        return NULL;
    }
    float x[MAX_BATCH * HIDDEN], y[MAX_BATCH * HIDDEN], z[MAX_BATCH * HIDDEN];
    for (int r = 0; r < w->runs; r++) {
        int batch = 1 + (r * 7 + w->id) % MAX_BATCH, seed = (r + w->id) % SEEDS;
        fill_input(x, batch, seed);
        if (!run_once(ctx, batch, x, y, z)) {
            atomic_fetch_add(&w->failures, 1);
            continue;
        }
        size_t n = (size_t)batch * HIDDEN * sizeof(float);
        if (memcmp(y, ref_y[batch][seed], n) || memcmp(z, ref_z[batch][seed], n)) atomic_fetch_add(&w->mismatches, 1);
    }
    kiln_context_free(ctx);
    return NULL;
}

static void test_threads_bit_identical(void) {
    kiln_engine *engine = build_engine();
    REQUIRE(engine != NULL);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    float x[MAX_BATCH * HIDDEN];
    for (int batch = 1; batch <= MAX_BATCH; batch++)
        for (int seed = 0; seed < SEEDS; seed++) {
            fill_input(x, batch, seed);
            REQUIRE(run_once(ctx, batch, x, ref_y[batch][seed], ref_z[batch][seed]));
        }
    kiln_context_free(ctx);
    /* The reference is right, not only repeatable: y = gelu(xW + b)/2 - 1/4
     * (gelu's tanh form) and z = exp(-y), against double precision. */
    fill_input(x, 1, 0);
    double worst = 0;
    for (int j = 0; j < HIDDEN; j++) {
        double u = weights_b[j];
        for (int k = 0; k < HIDDEN; k++) u += (double)x[k] * weights_w[k * HIDDEN + j];
        double g = 0.5 * u * (1 + tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
        double y = g * 0.5 - 0.25, z = exp(-y);
        worst = fmax(worst, fmax(fabs(y - ref_y[1][0][j]), fabs(z - ref_z[1][0][j]) / z));
    }
    CHECK(worst < 1e-5);
    int runs = runs_per_thread();
    pthread_t threads[THREADS];
    worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker){.engine = engine, .id = i, .runs = runs};
        atomic_init(&workers[i].mismatches, 0);
        atomic_init(&workers[i].failures, 0);
        REQUIRE(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
    }
    int mismatches = 0, failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        mismatches += atomic_load(&workers[i].mismatches);
        failures += atomic_load(&workers[i].failures);
    }
    if (mismatches || failures)
        fprintf(stderr, "%d threads x %d runs: %d mismatches, %d failed runs\n", THREADS, runs, mismatches, failures);
    CHECK(mismatches == 0);
    CHECK(failures == 0);
    kiln_engine_free(engine);
}

/* ---- a plugin that holds its context busy until told to go on ----------- */

static atomic_int block_entered, block_release;

static kiln_status block_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    static int instance;
    *out = &instance;
    return KILN_OK;
}

static kiln_status block_shapes(void *instance, kiln_exprs *pool, int32_t input_count, const kiln_shape_expr *inputs,
                                int32_t output_count, kiln_shape_expr *outputs) {
    outputs[0] = inputs[0];
    return KILN_OK;
}

static kiln_status block_enqueue(void *instance, const kiln_plugin_launch *l) {
    atomic_store(&block_entered, 1);
    while (!atomic_load(&block_release)) sched_yield();
    memcpy(l->outputs[0].data, l->inputs[0].data, 4 * sizeof(float));
    return KILN_OK;
}

static const kiln_plugin_creator block_creator = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "test", .name = "Block", .version = "1",
    .flags = KILN_PLUGIN_SUPPORTS_CPU,
    .output_count = 1,
    .create = block_create,
    .infer_shapes = block_shapes,
    .enqueue = block_enqueue,
};

typedef struct enqueue_job {
    kiln_context *ctx;
    kiln_status   status;
} enqueue_job;

static void *run_job(void *arg) {
    enqueue_job *job = arg;
    job->status = kiln_context_enqueue(job->ctx, NULL);
    return NULL;
}

static void test_shared_context_refused(void) {
    CHECK_OK(kiln_plugin_register(&block_creator));
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_expr shape[1] = {kiln_expr_const(pool, 4)};
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 1, shape, &x);
    kiln_value *none = kiln_value_map();
    CHECK_OK(kiln_network_add_plugin(net, "test", "Block", "1", NULL, none, 1, &x, 1, &y));
    kiln_value_free(none);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    kiln_blob_free(blob);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(engine, NULL, &ctx));
    float in[4] = {1, 2, 3, 4}, out[4] = {0}, other[4] = {0};
    kiln_context_set_tensor(ctx, "x", in);
    kiln_context_set_tensor(ctx, "y", out);

    atomic_store(&block_entered, 0);
    atomic_store(&block_release, 0);
    enqueue_job job = {.ctx = ctx};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, run_job, &job) == 0);
    while (!atomic_load(&block_entered)) sched_yield();
    /* The context is inside enqueue on the other thread: every call that
     * reads or changes its state is refused, and changes nothing. */
    int64_t four = 4;
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_STATE,
                "kiln_context_enqueue: the context is in use by another thread");
    CHECK_FAILS(kiln_context_set_tensor(ctx, "y", other), KILN_ERROR_STATE, "in use by another thread");
    CHECK_FAILS(kiln_context_set_input_shape(ctx, "x", 1, &four), KILN_ERROR_STATE, "in use by another thread");
    CHECK_FAILS(kiln_context_tensor_shape(ctx, "y", &rank, dims), KILN_ERROR_STATE, "in use by another thread");
    atomic_store(&block_release, 1);
    pthread_join(t, NULL);
    CHECK(job.status == KILN_OK);
    for (int i = 0; i < 4; i++) CHECK(out[i] == in[i] && other[i] == 0);
    /* Free again once the run is over. */
    atomic_store(&block_entered, 0);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    kiln_context_free(ctx);
    kiln_engine_free(engine);
    CHECK_OK(kiln_plugin_deregister("test", "Block", "1"));
}

int main(void) {
    TEST_RUN(test_threads_bit_identical);
    TEST_RUN(test_shared_context_refused);
    return test_summary();
}
