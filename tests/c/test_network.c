/* test_network.c — network construction and builder validation: every bad
 * input is refused with a message naming the thing at fault. */
#include <stdlib.h>

#include "kiln/plugin.h"
#include "test.h"
#include "core/alloc.h"

static kiln_network *net;
static kiln_exprs *pool;

static void fresh(void) {
    kiln_network_free(net);
    kiln_network_create(&net);
    pool = kiln_network_exprs(net);
}

static kiln_tensor input2(const char *name, kiln_dtype dtype, kiln_expr a, kiln_expr b) {
    kiln_expr shape[2] = {a, b};
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_network_add_input(net, name, dtype, 2, shape, &t);
    return t;
}

static void test_create_and_null_arguments(void) {
    CHECK_FAILS(kiln_network_create(NULL), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    fresh();
    kiln_tensor t;
    CHECK_FAILS(kiln_network_add_input(NULL, "x", KILN_FLOAT32, 0, NULL, &t), KILN_ERROR_INVALID_ARGUMENT, "NULL");
    CHECK_FAILS(kiln_network_add_input(net, "", KILN_FLOAT32, 0, NULL, &t), KILN_ERROR_INVALID_ARGUMENT, "empty");
    CHECK_FAILS(kiln_network_add_input(net, "x", (kiln_dtype)99, 0, NULL, &t), KILN_ERROR_INVALID_ARGUMENT,
                "input 'x': unknown dtype 99");
    kiln_expr shape[9] = {0};
    CHECK_FAILS(kiln_network_add_input(net, "x", KILN_FLOAT32, 9, shape, &t), KILN_ERROR_INVALID_ARGUMENT, "rank 9");
    CHECK(kiln_network_exprs(NULL) == NULL);
    kiln_network_free(NULL);   /* allowed */
}

static void test_dims(void) {
    fresh();
    kiln_dim_range good[2] = {{1, 2, 8}, {8, 16, 64}}, bad = {5, 2, 8}, neg = {-1, 0, 1};
    kiln_expr d, e;
    CHECK_OK(kiln_network_add_dim(net, "batch", good, 2, &d));
    CHECK_FAILS(kiln_network_add_dim(net, "batch", good, 2, &e), KILN_ERROR_INVALID_ARGUMENT,
                "dimension 'batch' is already declared");
    CHECK_FAILS(kiln_network_add_dim(net, "seq", good, 1, &e), KILN_ERROR_INVALID_ARGUMENT,
                "'seq' has 1 ranges but earlier dimensions have 2");
    CHECK_FAILS(kiln_network_add_dim(net, "seq", &bad, 2, &e), KILN_ERROR_INVALID_ARGUMENT, "inverted");
    fresh();
    CHECK_FAILS(kiln_network_add_dim(net, "seq", &bad, 1, &e), KILN_ERROR_INVALID_ARGUMENT,
                "dimension 'seq' profile 0: range (min 5, opt 2, max 8) is empty or inverted");
    CHECK_FAILS(kiln_network_add_dim(net, "seq", &neg, 1, &e), KILN_ERROR_INVALID_ARGUMENT, "'seq'");
    CHECK_FAILS(kiln_network_add_dim(net, "seq", good, 0, &e), KILN_ERROR_INVALID_ARGUMENT, "0 ranges");
    CHECK_OK(kiln_network_add_dim(net, "seq", good, 1, &e));
    kiln_expr found;
    CHECK_OK(kiln_network_find_dim(net, "seq", &found));
    CHECK(found == e);
    CHECK_FAILS(kiln_network_find_dim(net, "nope", &found), KILN_ERROR_NOT_FOUND, "'nope'");
}

static void test_inputs_and_constants(void) {
    fresh();
    kiln_dim_range r = {1, 2, 4};
    kiln_expr b;
    kiln_network_add_dim(net, "b", &r, 1, &b);
    kiln_tensor x = input2("x", KILN_FLOAT32, b, kiln_expr_const(pool, 3)), t;
    REQUIRE(x >= 0);
    kiln_expr shape[2] = {b, kiln_expr_const(pool, 3)};
    CHECK_FAILS(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, shape, &t), KILN_ERROR_INVALID_ARGUMENT,
                "duplicate tensor name 'x'");
    shape[1] = kiln_expr_const(pool, -2);
    CHECK_FAILS(kiln_network_add_input(net, "y", KILN_FLOAT32, 2, shape, &t), KILN_ERROR_INVALID_ARGUMENT,
                "input 'y' axis 1: size -2 is negative");
    shape[1] = kiln_expr_binary(pool, KILN_EXPR_MUL, b, kiln_expr_const(pool, 2));
    CHECK_FAILS(kiln_network_add_input(net, "y", KILN_FLOAT32, 2, shape, &t), KILN_ERROR_INVALID_ARGUMENT,
                "compound expression");
    shape[1] = 12345;
    CHECK_FAILS(kiln_network_add_input(net, "y", KILN_FLOAT32, 2, shape, &t), KILN_ERROR_INVALID_ARGUMENT,
                "input 'y' axis 1: invalid expression");
    int64_t dims[2] = {2, 2};
    float data[4] = {1, 2, 3, 4};
    CHECK_FAILS(kiln_network_add_constant(net, "w", KILN_FLOAT32, 2, dims, NULL, &t), KILN_ERROR_INVALID_ARGUMENT,
                "constant 'w': data is NULL");
    dims[0] = -1;
    CHECK_FAILS(kiln_network_add_constant(net, "w", KILN_FLOAT32, 2, dims, data, &t), KILN_ERROR_INVALID_ARGUMENT,
                "constant 'w' axis 0");
    dims[0] = 2;
    CHECK_OK(kiln_network_add_constant(net, "w", KILN_FLOAT32, 2, dims, data, &t));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr s[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, t, &dt, &rank, s));
    int64_t v;
    CHECK(dt == KILN_FLOAT32 && rank == 2 && kiln_expr_is_const(pool, s[0], &v) && v == 2);
    CHECK_FAILS(kiln_network_tensor_info(net, 99, &dt, &rank, s), KILN_ERROR_INVALID_ARGUMENT,
                "tensor 99 does not belong");
}

static void test_layer_errors(void) {
    fresh();
    kiln_expr c3 = kiln_expr_const(pool, 3), c4 = kiln_expr_const(pool, 4);
    kiln_tensor x = input2("x", KILN_FLOAT32, c3, c4), h = input2("h", KILN_FLOAT16, c3, c4);
    kiln_tensor y = input2("y", KILN_FLOAT32, c4, c3), i = input2("i", KILN_INT32, c3, c4), t;
    CHECK_FAILS(kiln_network_add_binary(net, KILN_BINARY_ADD, x, h, &t), KILN_ERROR_INVALID_NETWORK,
                "add: dtype mismatch: 'x' is float32 but 'h' is float16");
    CHECK_FAILS(kiln_network_add_binary(net, KILN_BINARY_MUL, x, y, &t), KILN_ERROR_INVALID_NETWORK,
                "mul of 'x' and 'y': sizes 3 and 4 cannot broadcast");
    CHECK_FAILS(kiln_network_add_binary(net, (kiln_binary_op)42, x, x, &t), KILN_ERROR_INVALID_ARGUMENT, "op 42");
    CHECK_FAILS(kiln_network_add_unary(net, KILN_UNARY_RELU, i, &t), KILN_ERROR_INVALID_NETWORK,
                "relu of 'i': dtype int32 is not supported");
    CHECK_OK(kiln_network_add_unary(net, KILN_UNARY_NEG, i, &t));
    CHECK_FAILS(kiln_network_add_matmul(net, x, x, &t), KILN_ERROR_INVALID_NETWORK,
                "matmul of 'x' and 'x': inner sizes 4 and 3 differ");
    CHECK_FAILS(kiln_network_add_matmul(net, i, i, &t), KILN_ERROR_INVALID_NETWORK, "floating-point");
    CHECK_FAILS(kiln_network_add_gather(net, x, x, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "gather: indices 'x' are float32; need int32 or int64");
    CHECK_FAILS(kiln_network_add_gather(net, x, i, 2, &t), KILN_ERROR_INVALID_NETWORK, "axis 2 is out of range");
    kiln_expr bad[2] = {kiln_expr_const(pool, -1), kiln_expr_const(pool, -1)};
    CHECK_FAILS(kiln_network_add_reshape(net, x, 2, bad, &t), KILN_ERROR_INVALID_NETWORK, "only one axis may be -1");
    kiln_expr five[2] = {kiln_expr_const(pool, 5), kiln_expr_const(pool, 2)};
    CHECK_FAILS(kiln_network_add_reshape(net, x, 2, five, &t), KILN_ERROR_INVALID_NETWORK,
                "reshape of 'x': 12 elements cannot take a shape of 10 elements");
    CHECK_FAILS(kiln_network_add_cast(net, x, (kiln_dtype)77, &t), KILN_ERROR_INVALID_ARGUMENT,
                "cast of 'x': unknown target dtype 77");
    CHECK_FAILS(kiln_network_add_cast(net, 1000, KILN_FLOAT16, &t), KILN_ERROR_INVALID_ARGUMENT,
                "tensor 1000 does not belong");
}

static void test_symbolic_shapes(void) {
    fresh();
    kiln_dim_range r = {1, 4, 8};
    kiln_expr b, s;
    kiln_network_add_dim(net, "b", &r, 1, &b);
    kiln_network_add_dim(net, "s", &r, 1, &s);
    kiln_tensor x = input2("x", KILN_FLOAT32, b, kiln_expr_const(pool, 6)), y = input2("y", KILN_FLOAT32, s,
                                                                                      kiln_expr_const(pool, 1));
    kiln_tensor sum, flat;
    CHECK_OK(kiln_network_add_binary(net, KILN_BINARY_ADD, x, y, &sum));
    kiln_expr shape[KILN_MAX_RANK];
    int32_t rank;
    CHECK_OK(kiln_network_tensor_info(net, sum, NULL, &rank, shape));
    CHECK(rank == 2);
    int64_t v, dims[2] = {3, 3};   /* b = 3, s = 3: broadcast gives 3 */
    CHECK_OK(kiln_expr_eval(pool, shape[0], dims, 2, &v));
    CHECK(v == 3);
    dims[1] = 1;                     /* s = 1 broadcasts to b */
    CHECK_OK(kiln_expr_eval(pool, shape[0], dims, 2, &v));
    CHECK(v == 3);
    CHECK(kiln_expr_is_const(pool, shape[1], &v) && v == 6);
    kiln_expr target[2] = {kiln_expr_const(pool, -1), kiln_expr_const(pool, 3)};
    CHECK_OK(kiln_network_add_reshape(net, x, 2, target, &flat));
    CHECK_OK(kiln_network_tensor_info(net, flat, NULL, &rank, shape));
    dims[0] = 5;
    CHECK_OK(kiln_expr_eval(pool, shape[0], dims, 2, &v));
    CHECK(v == 10);                 /* 5*6 / 3 */
    char text[128];
    kiln_expr_format(pool, shape[0], text, sizeof text);
    CHECK(strstr(text, "b") != NULL);
}

static void test_tensor_names(void) {
    fresh();
    kiln_expr c2 = kiln_expr_const(pool, 2);
    kiln_tensor x = input2("x", KILN_FLOAT32, c2, c2), y, z;
    kiln_network_add_unary(net, KILN_UNARY_EXP, x, &y);
    kiln_network_add_unary(net, KILN_UNARY_EXP, y, &z);
    CHECK(strcmp(kiln_network_tensor_name(net, x), "x") == 0);
    CHECK(strcmp(kiln_network_tensor_name(net, y), "layer0.out0") == 0);
    CHECK(kiln_network_tensor_name(net, 99) == NULL && strstr(kiln_last_error(), "tensor 99"));
    CHECK_OK(kiln_network_set_tensor_name(net, y, "hidden"));
    CHECK(strcmp(kiln_network_tensor_name(net, y), "hidden") == 0);
    CHECK_FAILS(kiln_network_set_tensor_name(net, z, "hidden"), KILN_ERROR_INVALID_ARGUMENT,
                "duplicate tensor name 'hidden'");
    CHECK_FAILS(kiln_network_set_tensor_name(net, x, "renamed"), KILN_ERROR_INVALID_ARGUMENT,
                "tensor 'x' is an input or constant");
    CHECK_FAILS(kiln_network_set_tensor_name(net, z, ""), KILN_ERROR_INVALID_ARGUMENT, "empty");
    /* A user name that clashes with an output name is renamed in the engine, not refused. */
    CHECK_OK(kiln_network_set_tensor_name(net, z, "out"));
    kiln_tensor w;
    kiln_network_add_unary(net, KILN_UNARY_NEG, z, &w);
    CHECK_OK(kiln_network_mark_output(net, w, "result", KILN_FLOAT32));
    kiln_blob *blob;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    int found_hidden = 0;
    for (int32_t t = 0; t < kiln_engine_tensor_count(e); t++)
        found_hidden |= strcmp(kiln_engine_tensor_name(e, t), "hidden") == 0;
    CHECK(found_hidden);
    kiln_engine_free(e);
    kiln_blob_free(blob);
}

static void test_build_validation(void) {
    fresh();
    kiln_blob *blob;
    CHECK_FAILS(kiln_network_build(net, NULL, &blob), KILN_ERROR_INVALID_NETWORK, "network has no outputs");
    kiln_expr c2 = kiln_expr_const(pool, 2);
    kiln_tensor x = input2("x", KILN_FLOAT32, c2, c2), unused = input2("unused", KILN_FLOAT32, c2, c2), y;
    (void)unused;
    kiln_network_add_unary(net, KILN_UNARY_EXP, x, &y);
    CHECK_FAILS(kiln_network_mark_output(net, y, "y", KILN_FLOAT16), KILN_ERROR_INVALID_ARGUMENT,
                "output 'y': dtype float16 given but tensor 'layer0.out0' is float32");
    CHECK_OK(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    CHECK_FAILS(kiln_network_mark_output(net, y, "y", KILN_FLOAT32), KILN_ERROR_INVALID_ARGUMENT,
                "duplicate output name 'y'");
    CHECK_FAILS(kiln_network_mark_output(net, y, "x", KILN_FLOAT32), KILN_ERROR_INVALID_ARGUMENT,
                "'x' is already the name of an input");
    /* An input nothing reads is kept (with a warning): callers bind it as declared. */
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_engine *unused_engine = NULL;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &unused_engine));
    CHECK(kiln_engine_io_count(unused_engine) == 3);
    kiln_engine_free(unused_engine);
    kiln_blob_free(blob);
    fresh();
    kiln_build_report report;
    CHECK_FAILS(kiln_network_build_report(net, &report), KILN_ERROR_STATE, "not been built");

    fresh();
    kiln_dim_range r = {1, 1, 4};
    kiln_expr lonely;
    kiln_network_add_dim(net, "lonely", &r, 1, &lonely);
    c2 = kiln_expr_const(pool, 2);
    x = input2("x", KILN_FLOAT32, c2, c2);
    kiln_network_mark_output(net, x, "out", KILN_FLOAT32);
    CHECK_FAILS(kiln_network_build(net, NULL, &blob), KILN_ERROR_INVALID_NETWORK,
                "dimension 'lonely' is not the size of any input axis");
}

static void test_plugin_layer_errors(void) {
    fresh();
    kiln_expr c2 = kiln_expr_const(pool, 2);
    kiln_tensor x = input2("x", KILN_FLOAT32, c2, c2), outs[2];
    kiln_value *fields = kiln_value_map();
    CHECK_FAILS(kiln_network_add_plugin(net, "nowhere", "Missing", "1", "some.module", fields, 1, &x, 1, outs),
                KILN_ERROR_NOT_FOUND, "plugin nowhere::Missing version 1 is not registered (defined in module "
                                      "'some.module')");
    kiln_status s = kiln_plugin_library_load(KILN_EXAMPLE_PLUGIN_PATH);
    CHECK(s == KILN_OK || strstr(kiln_last_error(), "already registered"));
    CHECK_FAILS(kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, fields, 1, &x, 1, outs),
                KILN_ERROR_PLUGIN, "plugin example::ScaleShift version 1: create: fields 'scale' and 'shift'");
    kiln_value *list = kiln_value_list();
    CHECK_FAILS(kiln_network_add_plugin(net, "example", "ScaleShift", "1", NULL, list, 1, &x, 1, outs),
                KILN_ERROR_INVALID_ARGUMENT, "fields must be a map");
    kiln_value_free(list);
    CHECK_FAILS(kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, fields, 1, &x, 1, outs),
                KILN_ERROR_INVALID_ARGUMENT, "produces 2 outputs, not 1");
    kiln_expr c3 = kiln_expr_const(pool, 3);
    kiln_tensor h = input2("h", KILN_FLOAT16, c3, c3);
    CHECK_FAILS(kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, fields, 1, &h, 2, outs),
                KILN_ERROR_PLUGIN, "infer_dtypes: takes exactly one float32 input");
    CHECK_OK(kiln_network_add_plugin(net, "example", "SplitHalves", "1", NULL, fields, 1, &x, 2, outs));
    kiln_value_free(fields);
}

static void test_allocation_failures(void) {
    /* Building a small network must fail cleanly at every allocation. */
    int succeeded = 0;
    for (long n = 0; n < 2000 && !succeeded; n++) {
        kiln_network *local = NULL;
        kiln_blob *blob = NULL;
        kiln_alloc_fail_after(n);
        kiln_status s = kiln_network_create(&local);
        kiln_tensor x = -1, y = -1;
        if (!s) {
            kiln_exprs *p = kiln_network_exprs(local);
            kiln_dim_range r = {1, 2, 4};
            kiln_expr b;
            s = kiln_network_add_dim(local, "b", &r, 1, &b);
            kiln_expr shape[2] = {b, kiln_expr_const(p, 4)};
            if (!s) s = kiln_network_add_input(local, "x", KILN_FLOAT32, 2, shape, &x);
            if (!s) s = kiln_network_add_unary(local, KILN_UNARY_RELU, x, &y);
            if (!s) s = kiln_network_add_binary(local, KILN_BINARY_ADD, y, x, &y);
            if (!s) s = kiln_network_mark_output(local, y, "y", KILN_FLOAT32);
            if (!s) s = kiln_network_build(local, NULL, &blob);
        }
        kiln_alloc_fail_after(-1);
        if (s == KILN_OK) succeeded = 1;
        else CHECK(s == KILN_ERROR_NO_MEMORY || s == KILN_ERROR_INVALID_ARGUMENT);
        kiln_blob_free(blob);
        kiln_network_free(local);
    }
    CHECK(succeeded);
}

int main(void) {
    TEST_RUN(test_create_and_null_arguments);
    TEST_RUN(test_dims);
    TEST_RUN(test_inputs_and_constants);
    TEST_RUN(test_layer_errors);
    TEST_RUN(test_symbolic_shapes);
    TEST_RUN(test_tensor_names);
    TEST_RUN(test_build_validation);
    TEST_RUN(test_plugin_layer_errors);
    TEST_RUN(test_allocation_failures);
    kiln_network_free(net);
    return test_summary();
}
