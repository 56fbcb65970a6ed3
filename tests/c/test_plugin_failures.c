/* test_plugin_failures.c — what a failing plugin callback becomes, from any
 * call site (plugin/plugin_failure.h): KILN_ERROR_PLUGIN unless the plugin ran
 * out of memory, its own message prefixed with where it was called, and a
 * message saying so when the plugin set none — never a stale message of the
 * caller's. */
#include "kiln/plugin.h"
#include "test.h"

typedef enum { FAIL_NONE, FAIL_SILENT, FAIL_WITH_MESSAGE, FAIL_NO_MEMORY } failure_mode;
static failure_mode mode;

static kiln_status toy_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    static int instance;
    *out = &instance;
    return KILN_OK;
}

static kiln_status toy_shapes(void *inst, kiln_exprs *pool, int32_t ni, const kiln_shape_expr *in, int32_t no,
                              kiln_shape_expr *out) {
    out[0] = in[0];
    return KILN_OK;
}

static kiln_status toy_enqueue(void *inst, const kiln_plugin_launch *l) {
    switch (mode) {
    case FAIL_SILENT: return KILN_ERROR_INVALID_ARGUMENT;
    case FAIL_WITH_MESSAGE: kiln_plugin_set_error("the toy is broken"); return KILN_ERROR_BACKEND;
    case FAIL_NO_MEMORY: return KILN_ERROR_NO_MEMORY;
    default: return KILN_OK;
    }
}

static const kiln_plugin_creator toy = {
    .abi_version = KILN_PLUGIN_ABI_VERSION, .plugin_namespace = "test", .name = "Toy", .version = "1",
    .flags = KILN_PLUGIN_SUPPORTS_CPU, .output_count = 1,
    .create = toy_create, .infer_shapes = toy_shapes, .enqueue = toy_enqueue,
};

static void test_enqueue_failures(void) {
    CHECK_OK(kiln_plugin_register(&toy));
    kiln_network *net;
    CHECK_OK(kiln_network_create(&net));
    kiln_expr shape[1] = {kiln_expr_const(kiln_network_exprs(net), 2)};
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 1, shape, &x);
    kiln_value *none = kiln_value_map();
    CHECK_OK(kiln_network_add_plugin(net, "test", "Toy", "1", NULL, none, 1, &x, 1, &y));
    kiln_value_free(none);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_blob_free(blob);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    float in[2] = {1, 2}, out[2];
    kiln_context_set_tensor(ctx, "x", in);
    kiln_context_set_tensor(ctx, "y", out);

    /* A message of the caller's own, left from an earlier failure, is not the plugin's. */
    kiln_engine *none_engine;
    CHECK(kiln_engine_load_memory("nope", 4, 0, &none_engine) != KILN_OK);
    mode = FAIL_SILENT;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_PLUGIN,
                "layer 0 (plugin test::Toy version 1): failed with status 1 (invalid argument) and no message");
    CHECK(!strstr(kiln_last_error(), "KILN"));
    mode = FAIL_WITH_MESSAGE;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_PLUGIN,
                "layer 0 (plugin test::Toy version 1): the toy is broken");
    mode = FAIL_NO_MEMORY;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_NO_MEMORY, "layer 0 (plugin test::Toy version 1)");
    mode = FAIL_NONE;
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    kiln_context_free(ctx);
    kiln_engine_free(e);
    CHECK_OK(kiln_plugin_deregister("test", "Toy", "1"));
}

int main(void) {
    TEST_RUN(test_enqueue_failures);
    return test_summary();
}
