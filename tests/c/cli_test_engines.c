/* cli_test_engines.c — engines for tests/c/test_cli.sh that kiln_demo does not make.
 *
 *   cli_test_engines python.engine dtypes.engine
 *
 * python.engine  y = pytest::Echo(x): a plugin registered here, in C, but
 *                flagged KILN_PLUGIN_NEEDS_PYTHON with module
 *                'kiln_test_pyplugins', as the Python bridge would record it;
 *                in another process it is missing and needs Python.
 * dtypes.engine  one input of every dtype, each with the dynamic dimension n
 *                (1..8, opt 4), cast to float32 ("<input>_f32"), plus a
 *                bfloat16 output ("f_bf16", f cast to bfloat16) and an
 *                int64 output ("i64_copy", the i64 input itself). */
#include <stdio.h>
#include <string.h>

#include "kiln/plugin.h"

#define TRY(call) do { kiln_status s_ = (call); if (s_ != KILN_OK) { \
    fprintf(stderr, "cli_test_engines: %s: %s\n", #call, kiln_last_error()); return 1; } } while (0)

static kiln_status echo_create(const kiln_plugin_creator *c, const kiln_value *fields, void **out) {
    *out = NULL;
    return KILN_OK;
}

static kiln_status echo_shapes(void *inst, kiln_exprs *pool, int32_t ni, const kiln_shape_expr *in, int32_t no,
                               kiln_shape_expr *out) {
    out[0] = in[0];
    return KILN_OK;
}

static kiln_status echo_enqueue(void *inst, const kiln_plugin_launch *l) { return KILN_ERROR_UNSUPPORTED; }

static const kiln_plugin_creator echo_creator = {
    .abi_version = KILN_PLUGIN_ABI_VERSION,
    .plugin_namespace = "pytest", .name = "Echo", .version = "1",
    .module = "kiln_test_pyplugins",
    .flags = KILN_PLUGIN_NEEDS_PYTHON | KILN_PLUGIN_SUPPORTS_CPU,
    .output_count = 1,
    .create = echo_create, .infer_shapes = echo_shapes, .enqueue = echo_enqueue,
};

static int save(kiln_network *net, const char *path) {
    kiln_blob *blob;
    TRY(kiln_network_build(net, NULL, &blob));
    TRY(kiln_blob_save(blob, path));
    kiln_blob_free(blob);
    kiln_network_free(net);
    return 0;
}

static int python_engine(const char *path) {
    TRY(kiln_plugin_register(&echo_creator));
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_dim_range range = {1, 2, 4};
    kiln_expr batch;
    TRY(kiln_network_add_dim(net, "batch", &range, 1, &batch));
    kiln_expr shape[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, y;
    TRY(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &x));
    kiln_value *fields = kiln_value_map();
    TRY(kiln_network_add_plugin(net, "pytest", "Echo", "1", "kiln_test_pyplugins", fields, 1, &x, 1, &y));
    kiln_value_free(fields);
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    return save(net, path);
}

static int dtypes_engine(const char *path) {
    static const struct { const char *name; kiln_dtype dtype; } inputs[] = {
        {"f", KILN_FLOAT32}, {"h", KILN_FLOAT16}, {"bf", KILN_BFLOAT16}, {"i8", KILN_INT8},
        {"u8", KILN_UINT8},  {"i32", KILN_INT32}, {"i64", KILN_INT64},   {"b", KILN_BOOL},
    };
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_dim_range range = {1, 4, 8};
    kiln_expr n;
    TRY(kiln_network_add_dim(net, "n", &range, 1, &n));
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        kiln_tensor t, c;
        TRY(kiln_network_add_input(net, inputs[i].name, inputs[i].dtype, 1, &n, &t));
        TRY(kiln_network_add_cast(net, t, KILN_FLOAT32, &c));
        char out[32];
        snprintf(out, sizeof out, "%s_f32", inputs[i].name);
        TRY(kiln_network_mark_output(net, c, out, KILN_FLOAT32));
        if (inputs[i].dtype == KILN_FLOAT32) {
            kiln_tensor bf;
            TRY(kiln_network_add_cast(net, t, KILN_BFLOAT16, &bf));
            TRY(kiln_network_mark_output(net, bf, "f_bf16", KILN_BFLOAT16));
        }
        if (inputs[i].dtype == KILN_INT64) TRY(kiln_network_mark_output(net, t, "i64_copy", KILN_INT64));
    }
    return save(net, path);
}

/* Names holding terminal escapes (clear screen, a C1 CSI, a bare byte that
 * is not UTF-8) in a dim, an input, an output and a plugin's module: the
 * tool must print them escaped. */
static int escapes_engine(const char *path) {
    kiln_network *net;
    TRY(kiln_network_create(&net));
    kiln_dim_range range = {1, 2, 4};
    kiln_expr batch;
    TRY(kiln_network_add_dim(net, "b\033[2J", &range, 1, &batch));
    kiln_expr shape[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 3)};
    kiln_tensor x, y, z;
    TRY(kiln_network_add_input(net, "x\033]0;owned\007", KILN_FLOAT32, 2, shape, &x));
    kiln_value *fields = kiln_value_map();
    TRY(kiln_network_add_plugin(net, "pytest", "Echo", "1", "mod\xc2\x9b" "31m", fields, 1, &x, 1, &y));
    kiln_value_free(fields);
    TRY(kiln_network_add_unary(net, KILN_UNARY_RELU, x, &z));
    TRY(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    TRY(kiln_network_mark_output(net, z, "z\xff", KILN_FLOAT32));
    return save(net, path);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: cli_test_engines PYTHON_ENGINE DTYPES_ENGINE [ESCAPES_ENGINE]\n");
        return 2;
    }
    return python_engine(argv[1]) || dtypes_engine(argv[2]) || (argc == 4 && escapes_engine(argv[3]));
}
