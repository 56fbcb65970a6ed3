/* test_plugin_traced.c — data-first plugin layers (kiln_network_add_plugin_traced):
 * a plugin with no shape rule in C is added from traced dtypes, shape
 * expressions and a workspace expression, runs with the values the runtime
 * evaluated, and every bad trace is refused naming the plugin and the output
 * or expression at fault. */
#include "kiln/plugin.h"
#include "test.h"

/* "Tile2": y = [x, x] along axis 0 (2n rows), its workspace n*4 bytes used as
 * scratch.  The creator has no infer_* callbacks at all. */
static int creates, enqueues;
static uint64_t seen_workspace;

static kiln_status tile_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    static int instance;
    creates++;
    *out = &instance;
    return KILN_OK;
}

static kiln_status tile_enqueue(void *inst, const kiln_plugin_launch *l) {
    enqueues++;
    seen_workspace = l->workspace_size;
    const float *x = l->inputs[0].data;
    float *y = l->outputs[0].data, *scratch = l->workspace;
    int64_t n = l->inputs[0].dims[0];
    if (l->outputs[0].dims[0] != 2 * n || (uint64_t)n * sizeof(float) > l->workspace_size) {
        kiln_plugin_set_error("output has %lld rows for %lld input rows, workspace %llu bytes",
                              (long long)l->outputs[0].dims[0], (long long)n, (unsigned long long)l->workspace_size);
        return KILN_ERROR_SHAPE;
    }
    for (int64_t i = 0; i < n; i++) scratch[i] = x[i];
    for (int64_t i = 0; i < n; i++) y[i] = y[n + i] = scratch[i];
    return KILN_OK;
}

static const kiln_plugin_creator tile = {
    .abi_version = KILN_PLUGIN_ABI_VERSION, .plugin_namespace = "test", .name = "Tile2", .version = "1",
    .flags = KILN_PLUGIN_SUPPORTS_CPU, .output_count = 1,
    .create = tile_create, .enqueue = tile_enqueue,
};

/* A network x[n] (n in 1..8) → Tile2 with the given trace; the output marked. */
static kiln_status add_tile(kiln_network *net, kiln_dtype dtype, const kiln_shape_expr *shape, kiln_expr workspace,
                            kiln_tensor *y) {
    kiln_value *none = kiln_value_map();
    kiln_tensor x = 0;   /* the first tensor of every network made here */
    kiln_status s = kiln_network_add_plugin_traced(net, "test", "Tile2", "1", "tests", none, 1, &x, 1, &dtype, shape,
                                                   workspace, y);
    kiln_value_free(none);
    return s;
}

static kiln_network *network_with_input(kiln_expr *n) {
    kiln_network *net = NULL;
    if (kiln_network_create(&net)) return NULL;
    kiln_dim_range range = {.min = 1, .opt = 4, .max = 8};
    kiln_tensor x;
    if (kiln_network_add_dim(net, "n", &range, 1, n)) {
        kiln_network_free(net);
        return NULL;
    }
    if (kiln_network_add_input(net, "x", KILN_FLOAT32, 1, n, &x) || x != 0) {
        kiln_network_free(net);
        return NULL;
    }
    return net;
}

static void test_traced_layer_runs(void) {
    kiln_expr n;
    kiln_network *net = network_with_input(&n);
    REQUIRE(net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_shape_expr shape = {.rank = 1, .dims = {kiln_expr_binary(pool, KILN_EXPR_MUL, kiln_expr_const(pool, 2), n)}};
    kiln_tensor y;
    creates = enqueues = 0;
    CHECK_OK(add_tile(net, KILN_FLOAT32, &shape, kiln_expr_binary(pool, KILN_EXPR_MUL, n, kiln_expr_const(pool, 4)), &y));
    CHECK(creates == 0);   /* data-first: no plugin code ran to build the layer */
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
    CHECK(dt == KILN_FLOAT32 && rank == 1 && dims[0] == shape.dims[0]);
    CHECK_OK(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);

    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_blob_free(blob);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    for (int64_t rows = 1; rows <= 8; rows += 7) {
        float in[8], out[16];
        for (int i = 0; i < 8; i++) in[i] = (float)(i + 1) * 0.5f;
        CHECK_OK(kiln_context_set_input_shape(ctx, "x", 1, &rows));
        CHECK_OK(kiln_context_set_tensor(ctx, "x", in));
        CHECK_OK(kiln_context_set_tensor(ctx, "y", out));
        CHECK_OK(kiln_context_enqueue(ctx, NULL));
        CHECK(seen_workspace >= (uint64_t)rows * 4);
        int same = 1;
        for (int64_t i = 0; i < rows; i++) same &= out[i] == in[i] && out[rows + i] == in[i];
        CHECK(same);
    }
    CHECK(creates == 1 && enqueues == 2);
    kiln_context_free(ctx);
    kiln_engine_free(e);
}

static void test_bad_traces_refused(void) {
    kiln_expr n;
    kiln_network *net = network_with_input(&n);
    REQUIRE(net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_tensor y;
    kiln_shape_expr good = {.rank = 1, .dims = {n}};
    kiln_shape_expr bad_rank = {.rank = KILN_MAX_RANK + 1};
    kiln_shape_expr foreign = {.rank = 1, .dims = {(kiln_expr)1000000}};
    kiln_shape_expr negative = {.rank = 1, .dims = {kiln_expr_const(pool, -3)}};
    CHECK_FAILS(add_tile(net, (kiln_dtype)99, &good, KILN_EXPR_INVALID, &y), KILN_ERROR_PLUGIN,
                "plugin test::Tile2 version 1: output 0 has unknown dtype 99");
    CHECK_FAILS(add_tile(net, KILN_FLOAT32, &bad_rank, KILN_EXPR_INVALID, &y), KILN_ERROR_PLUGIN,
                "output 0 has rank 9");
    CHECK_FAILS(add_tile(net, KILN_FLOAT32, &foreign, KILN_EXPR_INVALID, &y), KILN_ERROR_PLUGIN,
                "output 0 axis 0 is not a valid expression");
    CHECK_FAILS(add_tile(net, KILN_FLOAT32, &negative, KILN_EXPR_INVALID, &y), KILN_ERROR_PLUGIN,
                "output 0 axis 0 has size -3");
    CHECK_FAILS(add_tile(net, KILN_FLOAT32, &good, (kiln_expr)1000000, &y), KILN_ERROR_PLUGIN,
                "test::Tile2 version 1: the workspace size is not a valid expression");

    kiln_value *none = kiln_value_map();
    kiln_tensor x = 0, two[2];
    kiln_dtype dts[2] = {KILN_FLOAT32, KILN_FLOAT32};
    kiln_shape_expr shapes[2] = {good, good};
    CHECK_FAILS(kiln_network_add_plugin_traced(net, "test", "Tile2", "1", NULL, none, 1, &x, 2, dts, shapes,
                                               KILN_EXPR_INVALID, two),
                KILN_ERROR_INVALID_ARGUMENT, "plugin test::Tile2 version 1 produces 1 outputs, not 2");
    CHECK_FAILS(kiln_network_add_plugin_traced(net, "test", "Nope", "1", "my.module", none, 1, &x, 1, dts, shapes,
                                               KILN_EXPR_INVALID, &y),
                KILN_ERROR_NOT_FOUND, "plugin test::Nope version 1 is not registered (defined in module 'my.module')");
    CHECK_FAILS(kiln_network_add_plugin_traced(net, "test", "Tile2", "1", NULL, none, 1, &x, 1, NULL, shapes,
                                               KILN_EXPR_INVALID, &y),
                KILN_ERROR_INVALID_ARGUMENT, "NULL output dtypes or shapes");
    kiln_tensor stranger = 77;
    CHECK_FAILS(kiln_network_add_plugin_traced(net, "test", "Tile2", "1", NULL, none, 1, &stranger, 1, dts, shapes,
                                               KILN_EXPR_INVALID, &y),
                KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_plugin_traced");
    /* Without a rule in C the other entry point says which one to use. */
    CHECK_FAILS(kiln_network_add_plugin(net, "test", "Tile2", "1", NULL, none, 1, &x, 1, &y), KILN_ERROR_PLUGIN,
                "has no shape rule in C (no infer_shapes): add its layers with kiln_network_add_plugin_traced");
    kiln_value_free(none);
    /* Nothing refused was added: the network still has only its input. */
    kiln_tensor z;
    CHECK_OK(add_tile(net, KILN_FLOAT32, &good, KILN_EXPR_INVALID, &z));
    CHECK(z == 1);
    kiln_network_free(net);
}

int main(void) {
    if (kiln_plugin_register(&tile) != KILN_OK) {
        fprintf(stderr, "register: %s\n", kiln_last_error());
        return 1;
    }
    TEST_RUN(test_traced_layer_runs);
    TEST_RUN(test_bad_traces_refused);
    kiln_plugin_deregister("test", "Tile2", "1");
    return test_summary();
}
