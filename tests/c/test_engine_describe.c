/* test_engine_describe.c — the API the kiln tool added: describing an engine
 * whose plugins are missing (KILN_LOAD_NO_PLUGINS), plugin flags, tensor
 * info, and the device-memory calls (on the CPU). */
#include <stdlib.h>

#include "kiln/plugin.h"
#include "test.h"

/* A plugin that says it needs Python, as the Python bridge's creators do. */
static kiln_status twice_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    *out = NULL;
    return KILN_OK;
}
static kiln_status twice_shapes(void *inst, kiln_exprs *pool, int32_t ni, const kiln_shape_expr *in, int32_t no,
                                kiln_shape_expr *out) {
    out[0] = in[0];
    return KILN_OK;
}
static kiln_status twice_enqueue(void *inst, const kiln_plugin_launch *l) {
    const float *x = l->inputs[0].data;
    float *y = l->outputs[0].data;
    int64_t n = 1;
    for (int32_t a = 0; a < l->inputs[0].rank; a++) n *= l->inputs[0].dims[a];
    for (int64_t i = 0; i < n; i++) y[i] = 2 * x[i];
    return KILN_OK;
}
static const kiln_plugin_creator twice = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "describe", .name = "Twice", .version = "3", .module = "describe_plugins",
    .flags = KILN_PLUGIN_NEEDS_PYTHON | KILN_PLUGIN_SUPPORTS_CPU, .output_count = 1,
    .create = twice_create, .infer_shapes = twice_shapes, .enqueue = twice_enqueue,
};

/* y = Twice(x) + c, x: [n, 3] with n in 1..4; c a [3] constant. */
static kiln_blob *build(void) {
    kiln_network *net;
    if (kiln_network_create(&net)) return NULL;
    kiln_dim_range r = {1, 2, 4};
    kiln_expr n;
    kiln_network_add_dim(net, "n", &r, 1, &n);
    kiln_expr shape[2] = {n, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, t, c, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &x);
    kiln_value *fields = kiln_value_map();
    kiln_value_map_set(fields, "times", kiln_value_int64(2));
    kiln_network_add_plugin(net, "describe", "Twice", "3", NULL, fields, 1, &x, 1, &t);
    kiln_value_free(fields);
    int64_t cd[1] = {3};
    float cv[3] = {1, 2, 3};
    kiln_network_add_constant(net, "c", KILN_FLOAT32, 1, cd, cv, &c);
    kiln_network_add_binary(net, KILN_BINARY_ADD, t, c, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob) != KILN_OK) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

static kiln_blob *blob;

static void test_describe_without_plugins(void) {
    REQUIRE(blob);
    /* Not registered: a plain load fails naming the plugin; a describe-only load works. */
    kiln_engine *e;
    CHECK_FAILS(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e), KILN_ERROR_NOT_FOUND,
                "describe::Twice version 3");
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), KILN_LOAD_NO_PLUGINS, &e));
    CHECK(kiln_engine_plugin_count(e) == 1);
    const char *ns, *name, *version, *module;
    CHECK_OK(kiln_engine_plugin_info(e, 0, &ns, &name, &version, &module));
    CHECK(strcmp(ns, "describe") == 0 && strcmp(name, "Twice") == 0 && strcmp(version, "3") == 0);
    uint32_t flags = 0;
    CHECK_OK(kiln_engine_plugin_flags(e, 0, &flags));
    CHECK(flags == (KILN_PLUGIN_NEEDS_PYTHON | KILN_PLUGIN_SUPPORTS_CPU));
    CHECK_FAILS(kiln_engine_plugin_flags(e, 1, &flags), KILN_ERROR_INVALID_ARGUMENT, "plugin 1");
    CHECK_FAILS(kiln_engine_plugin_flags(e, 0, NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    const kiln_value *fields = NULL;
    CHECK_OK(kiln_engine_plugin_fields(e, 0, &fields));
    CHECK(fields && kiln_value_get_type(fields) == KILN_VALUE_MAP);
    CHECK(kiln_value_as_int64(kiln_value_map_get(fields, "times")) == 2);
    CHECK_FAILS(kiln_engine_plugin_fields(e, 1, &fields), KILN_ERROR_INVALID_ARGUMENT, "plugin 1");
    CHECK_FAILS(kiln_engine_plugin_fields(NULL, 0, &fields), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    /* Layers still have their details. */
    const char *kind, *detail;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "plugin") == 0 && strcmp(detail, "describe::Twice v3") == 0);
    /* It cannot run: the error names the plugin and says it needs Python. */
    kiln_context *ctx = NULL;
    CHECK_FAILS(kiln_context_create(e, NULL, &ctx), KILN_ERROR_NOT_FOUND, "describe::Twice version 3");
    CHECK(strstr(kiln_last_error(), "needs Python") != NULL);
    CHECK(ctx == NULL);
    kiln_engine_free(e);
}

static void test_tensor_info(void) {
    REQUIRE(blob);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), KILN_LOAD_NO_PLUGINS, &e));
    int found = 0;
    for (int32_t t = 0; t < kiln_engine_tensor_count(e); t++) {
        kiln_dtype dtype;
        int32_t rank;
        kiln_expr shape[KILN_MAX_RANK];
        CHECK_OK(kiln_engine_tensor_info(e, t, &dtype, &rank, shape));
        CHECK(dtype == KILN_FLOAT32);
        const char *name = kiln_engine_tensor_name(e, t);
        int64_t v;
        if (strcmp(name, "c") == 0) {
            found++;
            CHECK(rank == 1 && kiln_expr_is_const(kiln_engine_exprs(e), shape[0], &v) && v == 3);
        } else if (strcmp(name, "x") == 0 || strcmp(name, "y") == 0) {
            found++;
            char text[64];
            CHECK(rank == 2);
            kiln_expr_format(kiln_engine_exprs(e), shape[0], text, sizeof text);
            CHECK(strcmp(text, "n") == 0);
            CHECK(kiln_expr_is_const(kiln_engine_exprs(e), shape[1], &v) && v == 3);
        }
    }
    CHECK(found == 3);
    CHECK_OK(kiln_engine_tensor_info(e, 0, NULL, NULL, NULL));
    CHECK_FAILS(kiln_engine_tensor_info(e, kiln_engine_tensor_count(e), NULL, NULL, NULL),
                KILN_ERROR_INVALID_ARGUMENT, "outside");
    CHECK_FAILS(kiln_engine_tensor_info(NULL, 0, NULL, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    kiln_engine_free(e);
}

static void test_run_with_device_memory(void) {
    REQUIRE(blob);
    CHECK_OK(kiln_plugin_register(&twice));
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    kiln_context_options options = {.struct_size = sizeof options, .device = {KILN_DEVICE_CPU, 0}};
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, &options, &ctx));
    kiln_device cpu = {KILN_DEVICE_CPU, 0};
    float x[6] = {1, 2, 3, -1, -2, -3}, y[6] = {0};
    void *dx = NULL, *dy = NULL;
    CHECK_OK(kiln_device_malloc(cpu, sizeof x, &dx));
    CHECK_OK(kiln_device_malloc(cpu, sizeof y, &dy));
    CHECK(dx && dy && ((uintptr_t)dx % 64) == 0);
    CHECK_OK(kiln_device_memcpy(cpu, dx, x, sizeof x, KILN_MEMCPY_HOST_TO_DEVICE, NULL));
    int64_t shape[2] = {2, 3};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x", 2, shape));
    CHECK_OK(kiln_context_set_tensor(ctx, "x", dx));
    CHECK_OK(kiln_context_set_tensor(ctx, "y", dy));
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    CHECK_OK(kiln_device_synchronize(cpu, NULL));
    CHECK_OK(kiln_device_memcpy(cpu, y, dy, sizeof y, KILN_MEMCPY_DEVICE_TO_HOST, NULL));
    const float want[6] = {3, 6, 9, -1, -2, -3};
    for (int i = 0; i < 6; i++) CHECK(y[i] == want[i]);
    /* Device to device, then back. */
    CHECK_OK(kiln_device_memcpy(cpu, dx, dy, sizeof y, KILN_MEMCPY_DEVICE_TO_DEVICE, NULL));
    float back[6];
    CHECK_OK(kiln_device_memcpy(cpu, back, dx, sizeof back, KILN_MEMCPY_DEVICE_TO_HOST, NULL));
    CHECK(memcmp(back, want, sizeof back) == 0);
    kiln_device_free(cpu, dx);
    kiln_device_free(cpu, dy);
    kiln_context_free(ctx);
    kiln_engine_free(e);
    CHECK_OK(kiln_plugin_deregister("describe", "Twice", "3"));
}

static void test_device_memory_errors(void) {
    kiln_device cpu = {KILN_DEVICE_CPU, 0}, cpu1 = {KILN_DEVICE_CPU, 1}, bogus = {(kiln_device_type)7, 0};
    void *p = (void *)1;
    CHECK_FAILS(kiln_device_malloc(cpu1, 16, &p), KILN_ERROR_INVALID_ARGUMENT, "cpu:1 does not exist");
    CHECK(p == NULL);
    CHECK_FAILS(kiln_device_malloc(bogus, 16, &p), KILN_ERROR_INVALID_ARGUMENT, "unknown device type 7");
    CHECK_FAILS(kiln_device_malloc(cpu, 16, NULL), KILN_ERROR_INVALID_ARGUMENT, "out is NULL");
    CHECK_OK(kiln_device_malloc(cpu, 0, &p));       /* zero bytes still gives a distinct buffer */
    CHECK(p != NULL);
    char host[4] = "abc";
    CHECK_OK(kiln_device_memcpy(cpu, p, host, 0, KILN_MEMCPY_HOST_TO_DEVICE, NULL));   /* nothing to copy */
    CHECK_FAILS(kiln_device_memcpy(cpu, NULL, host, 4, KILN_MEMCPY_HOST_TO_DEVICE, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "NULL pointer");
    CHECK_FAILS(kiln_device_memcpy(cpu, p, host, 1, (kiln_memcpy_kind)9, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "unknown copy kind 9");
    CHECK_FAILS(kiln_device_synchronize(cpu1, NULL), KILN_ERROR_INVALID_ARGUMENT, "does not exist");
    kiln_device_free(cpu, p);
    kiln_device_free(cpu, NULL);                    /* ignored */
    kiln_device_free(cpu1, (void *)1);              /* a bad device frees nothing (and does not crash) */
}

int main(void) {
    if (kiln_plugin_register(&twice) != KILN_OK) fprintf(stderr, "register: %s\n", kiln_last_error());
    blob = build();
    kiln_plugin_deregister("describe", "Twice", "3");
    TEST_RUN(test_describe_without_plugins);
    TEST_RUN(test_tensor_info);
    TEST_RUN(test_run_with_device_memory);
    TEST_RUN(test_device_memory_errors);
    kiln_blob_free(blob);
    return test_summary();
}
