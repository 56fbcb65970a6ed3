/* test_add_layer.c — the flat public ops (kiln_layer_op) and
 * kiln_network_add_layer, all read from the one op table:
 *   - every op has one distinct name, found again by kiln_layer_op_from_name;
 *     unknown names and numbers are refused, naming them;
 *   - input counts and attribute schemas come from the table's rows;
 *   - adding any op through kiln_network_add_layer builds an engine byte for
 *     byte equal to the one its bespoke call builds (same op, sub-op,
 *     attributes, shapes and run-time checks, dynamic shapes included);
 *   - a loaded engine describes layers (what `kiln inspect` prints) by the
 *     table's op and attribute names;
 *   - wrong inputs and attributes (unknown, repeated, mistyped, missing, out of
 *     range) are refused naming the op and the attribute. */
#include <stdlib.h>

#include "ops/op_table.h"
#include "test.h"

static void test_names(void) {
    for (int op = 0; op < KILN_LAYER_OP_COUNT; op++) {
        const char *name = kiln_layer_op_name((kiln_layer_op)op);
        REQUIRE(name != NULL && name[0] && strcmp(name, "?") != 0);
        for (int other = 0; other < op; other++) CHECK(strcmp(name, kiln_layer_op_name((kiln_layer_op)other)) != 0);
        kiln_layer_op found = KILN_LAYER_OP_COUNT;
        CHECK_OK(kiln_layer_op_from_name(name, &found));
        CHECK((int)found == op);
    }
    /* The numbers are the public ABI. */
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_CAST), "cast") == 0);
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_DIV), "div") == 0);
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_GELU), "gelu") == 0);
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_SQRT), "sqrt") == 0);
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_GATHER), "gather") == 0);
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_MATMUL), "matmul") == 0);
    CHECK(kiln_layer_op_name(KILN_LAYER_OP_COUNT) == NULL && kiln_layer_op_name((kiln_layer_op)-1) == NULL);
    kiln_layer_op op;
    CHECK_FAILS(kiln_layer_op_from_name("no_such_op", &op), KILN_ERROR_NOT_FOUND, "no built-in op named 'no_such_op'");
    CHECK_FAILS(kiln_layer_op_from_name("binary", &op), KILN_ERROR_NOT_FOUND, "'binary'");  /* not flat */
    CHECK_FAILS(kiln_layer_op_from_name(NULL, &op), KILN_ERROR_INVALID_ARGUMENT, "NULL");
}

/* Every op and sub-op an engine can hold (but plugins) is a flat public op:
 * an op added to the table without its kiln_layer_op is caught here. */
static void test_every_engine_op_is_public(void) {
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        if (op == KILN_OP_PLUGIN) continue;
        if (op == KILN_OP_BINARY) {
            for (int sub = 0; sub < KILN_BINARY_OP_COUNT; sub++) CHECK(kiln_layer_op_of(op, sub) >= 0);
        } else if (op == KILN_OP_UNARY) {
            for (int sub = 0; sub < KILN_UNARY_OP_COUNT; sub++) CHECK(kiln_layer_op_of(op, sub) >= 0);
        } else if (op == KILN_OP_REDUCE) {
            for (int sub = 0; sub < KILN_REDUCE_OP_COUNT; sub++) CHECK(kiln_layer_op_of(op, sub) >= 0);
        } else if (op == KILN_OP_SOFTMAX) {
            CHECK(kiln_layer_op_of(op, 0) >= 0 && kiln_layer_op_of(op, 1) >= 0);
        } else {
            CHECK(kiln_layer_op_of(op, 0) >= 0);
        }
    }
    CHECK(kiln_layer_op_of(KILN_OP_PLUGIN, 0) == -1 && kiln_layer_op_of(KILN_OP_BINARY, KILN_BINARY_OP_COUNT) == -1);
}

static void test_schemas(void) {
    int32_t inputs = -1, attrs = -1;
    for (int op = KILN_LAYER_ADD; op <= KILN_LAYER_MAX; op++) {
        CHECK_OK(kiln_layer_op_info((kiln_layer_op)op, &inputs, &attrs));
        CHECK(inputs == 2 && attrs == 0);
    }
    for (int op = KILN_LAYER_RELU; op <= KILN_LAYER_SQRT; op++) {
        CHECK_OK(kiln_layer_op_info((kiln_layer_op)op, &inputs, &attrs));
        CHECK(inputs == 1 && attrs == 0);
    }
    const char *name = NULL;
    kiln_attr_kind kind = KILN_ATTR_INT;
    int required = -1;
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_CAST, &inputs, &attrs));
    CHECK(inputs == 1 && attrs == 1);
    CHECK_OK(kiln_layer_op_attr(KILN_LAYER_CAST, 0, &name, &kind, &required));
    CHECK(strcmp(name, "to") == 0 && kind == KILN_ATTR_DTYPE && required == 1);
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_GATHER, &inputs, &attrs));
    CHECK(inputs == 2 && attrs == 1);
    CHECK_OK(kiln_layer_op_attr(KILN_LAYER_GATHER, 0, &name, &kind, &required));
    CHECK(strcmp(name, "axis") == 0 && kind == KILN_ATTR_INT && required == 0);
    CHECK_OK(kiln_layer_op_attr(KILN_LAYER_RESHAPE, 0, &name, &kind, &required));
    CHECK(strcmp(name, "shape") == 0 && kind == KILN_ATTR_EXPRS && required == 1);
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_MATMUL, &inputs, &attrs));
    CHECK(inputs == 2 && attrs == 2);
    CHECK_OK(kiln_layer_op_attr(KILN_LAYER_MATMUL, 0, &name, &kind, &required));
    CHECK(strcmp(name, "transpose_a") == 0 && kind == KILN_ATTR_INT && required == 0);
    CHECK_OK(kiln_layer_op_attr(KILN_LAYER_MATMUL, 1, &name, &kind, &required));
    CHECK(strcmp(name, "transpose_b") == 0 && kind == KILN_ATTR_INT && required == 0);
    /* rotary_embedding: up to 4 inputs (position_ids, the last, optional), three optional INTs. */
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_ROTARY_EMBEDDING, &inputs, &attrs));
    CHECK(inputs == 4 && attrs == 3);
    static const char *const rotary_attrs[3] = {"interleaved", "rotary_embedding_dim", "num_heads"};
    for (int32_t k = 0; k < 3; k++) {
        CHECK_OK(kiln_layer_op_attr(KILN_LAYER_ROTARY_EMBEDDING, k, &name, &kind, &required));
        CHECK(strcmp(name, rotary_attrs[k]) == 0 && kind == KILN_ATTR_INT && required == 0);
    }
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_ROTARY_EMBEDDING), "rotary_embedding") == 0);
    CHECK_FAILS(kiln_layer_op_attr(KILN_LAYER_GATHER, 1, &name, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "gather has 1 attributes; 1 is out of range");
    CHECK_FAILS(kiln_layer_op_info(KILN_LAYER_OP_COUNT, NULL, NULL), KILN_ERROR_INVALID_ARGUMENT, "unknown op");
    /* conv: 3 inputs at most (the bias optional), group then the required strides and dilations, then pads. */
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_CONV, &inputs, &attrs));
    CHECK(inputs == 3 && attrs == 4);
    static const char *const conv_attrs[4] = {"group", "strides", "dilations", "pads"};
    static const int conv_required[4] = {0, 1, 1, 0};
    for (int32_t k = 0; k < 4; k++) {
        CHECK_OK(kiln_layer_op_attr(KILN_LAYER_CONV, k, &name, &kind, &required));
        CHECK(strcmp(name, conv_attrs[k]) == 0 && required == conv_required[k]);
    }
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_CONV), "conv") == 0);
    /* max_pool and avg_pool: one input; avg_pool's extra count_include_pad. */
    static const char *const pool_attrs[6] = {"ceil_mode", "count_include_pad", "kernel_shape", "strides",
                                              "dilations", "pads"};
    static const int pool_required[6] = {0, 0, 1, 1, 1, 0};
    for (int avg = 0; avg < 2; avg++) {
        kiln_layer_op op = avg ? KILN_LAYER_AVG_POOL : KILN_LAYER_MAX_POOL;
        CHECK_OK(kiln_layer_op_info(op, &inputs, &attrs));
        CHECK(inputs == 1 && attrs == (avg ? 6 : 5));
        for (int32_t k = 0; k < attrs; k++) {
            int32_t want = avg || k == 0 ? k : k + 1;   /* max_pool has no count_include_pad */
            CHECK_OK(kiln_layer_op_attr(op, k, &name, &kind, &required));
            CHECK(strcmp(name, pool_attrs[want]) == 0 && required == pool_required[want]);
        }
        CHECK(strcmp(kiln_layer_op_name(op), avg ? "avg_pool" : "max_pool") == 0);
    }
    /* resize: one input; only sizes required; scales are FLOATS. */
    static const char *const resize_attrs[7] = {"sizes", "mode", "coordinate_transformation_mode", "nearest_mode",
                                                "exclude_outside", "cubic_coeff_a", "scales"};
    static const kiln_attr_kind resize_kinds[7] = {KILN_ATTR_EXPRS, KILN_ATTR_INT, KILN_ATTR_INT, KILN_ATTR_INT,
                                                   KILN_ATTR_INT, KILN_ATTR_FLOAT, KILN_ATTR_FLOATS};
    CHECK_OK(kiln_layer_op_info(KILN_LAYER_RESIZE, &inputs, &attrs));
    CHECK(inputs == 1 && attrs == 7);
    for (int32_t k = 0; k < attrs; k++) {
        CHECK_OK(kiln_layer_op_attr(KILN_LAYER_RESIZE, k, &name, &kind, &required));
        CHECK(strcmp(name, resize_attrs[k]) == 0 && kind == resize_kinds[k] && required == (k == 0));
    }
    CHECK(strcmp(kiln_layer_op_name(KILN_LAYER_RESIZE), "resize") == 0);
}

/* One network, built twice: through the bespoke call (generic = 0) or through
 * kiln_network_add_layer (generic = 1).  Inputs have a dynamic batch so the
 * rules record run-time checks (broadcasting, reshape counts, matmul sizes). */
/* The kiln_unary_op of a flat unary op, or -1: the first six follow RELU,
 * the ones added later follow TANH (flat numbers are appended, never moved). */
static int unary_of(kiln_layer_op op) {
    if (op >= KILN_LAYER_RELU && op <= KILN_LAYER_SQRT) return KILN_UNARY_RELU + (op - KILN_LAYER_RELU);
    if (op >= KILN_LAYER_TANH && op <= KILN_LAYER_SIGN) return KILN_UNARY_TANH + (op - KILN_LAYER_TANH);
    return -1;
}

static kiln_blob *build(kiln_layer_op op, int generic) {
    kiln_network *net = NULL;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch, n = kiln_expr_const(p, 6);
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    /* A second dim, only for ops with a second input (a dim must size an input). */
    kiln_expr other = n;
    int two_inputs = (op >= KILN_LAYER_ADD && op <= KILN_LAYER_MAX) || op == KILN_LAYER_GATHER || op == KILN_LAYER_MATMUL;
    if (two_inputs) kiln_network_add_dim(net, "other", &range, 1, &other);
    kiln_dtype dtype = op == KILN_LAYER_NEG ? KILN_INT32 : KILN_FLOAT32;
    kiln_tensor a, b, y = KILN_TENSOR_INVALID;
    kiln_network_add_input(net, "a", dtype, 2, (kiln_expr[]){batch, n}, &a);
    kiln_status s;
    if (op >= KILN_LAYER_ADD && op <= KILN_LAYER_MAX) {
        kiln_network_add_input(net, "b", dtype, 2, (kiln_expr[]){other, n}, &b);
        s = generic ? kiln_network_add_layer(net, op, 2, (kiln_tensor[]){a, b}, 0, NULL, &y)
                    : kiln_network_add_binary(net, (kiln_binary_op)(op - KILN_LAYER_ADD), a, b, &y);
    } else if (unary_of(op) >= 0) {
        s = generic ? kiln_network_add_layer(net, op, 1, &a, 0, NULL, &y)
                    : kiln_network_add_unary(net, (kiln_unary_op)unary_of(op), a, &y);
    } else if (op == KILN_LAYER_CAST) {
        kiln_layer_attr to = {.name = "to", .kind = KILN_ATTR_DTYPE, .i = KILN_FLOAT16};
        s = generic ? kiln_network_add_layer(net, op, 1, &a, 1, &to, &y)
                    : kiln_network_add_cast(net, a, KILN_FLOAT16, &y);
    } else if (op == KILN_LAYER_GATHER) {
        kiln_network_add_input(net, "ix", KILN_INT64, 1, (kiln_expr[]){other}, &b);
        kiln_layer_attr axis = {.name = "axis", .kind = KILN_ATTR_INT, .i = -1};
        s = generic ? kiln_network_add_layer(net, op, 2, (kiln_tensor[]){a, b}, 1, &axis, &y)
                    : kiln_network_add_gather(net, a, b, -1, &y);
    } else if (op == KILN_LAYER_RESHAPE) {
        kiln_expr shape[3] = {kiln_expr_const(p, 3), kiln_expr_const(p, -1), kiln_expr_const(p, 2)};
        kiln_layer_attr attr = {.name = "shape", .kind = KILN_ATTR_EXPRS, .count = 3, .exprs = shape};
        s = generic ? kiln_network_add_layer(net, op, 1, &a, 1, &attr, &y)
                    : kiln_network_add_reshape(net, a, 3, shape, &y);
    } else {   /* MATMUL */
        kiln_network_add_input(net, "b", dtype, 2, (kiln_expr[]){other, batch}, &b);
        s = generic ? kiln_network_add_layer(net, op, 2, (kiln_tensor[]){b, a}, 0, NULL, &y)
                    : kiln_network_add_matmul(net, b, a, &y);
    }
    kiln_blob *blob = NULL;
    kiln_dtype out_dtype;
    if (s == KILN_OK && kiln_network_tensor_info(net, y, &out_dtype, NULL, NULL) == KILN_OK &&
        kiln_network_mark_output(net, y, "y", out_dtype) == KILN_OK)
        kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static void test_same_engine_as_bespoke_calls(void) {
    /* Ops with attribute lists have no bespoke call: test_attribute_ops. */
    for (int op = 0; op <= KILN_LAYER_SIGN; op++) {
        kiln_blob *bespoke = build((kiln_layer_op)op, 0), *generic = build((kiln_layer_op)op, 1);
        if (!bespoke || !generic) fprintf(stderr, "%s: %s\n", kiln_layer_op_name((kiln_layer_op)op), kiln_last_error());
        CHECK(bespoke != NULL && generic != NULL);
        if (bespoke && generic) {
            int same = kiln_blob_size(bespoke) == kiln_blob_size(generic) &&
                       memcmp(kiln_blob_data(bespoke), kiln_blob_data(generic), kiln_blob_size(bespoke)) == 0;
            if (!same) fprintf(stderr, "%s: engines differ\n", kiln_layer_op_name((kiln_layer_op)op));
            CHECK(same);
            /* The loaded engine names its layer with the table's names. */
            kiln_engine *e = NULL;
            CHECK_OK(kiln_engine_load_memory(kiln_blob_data(generic), kiln_blob_size(generic), 0, &e));
            const char *kind = NULL, *detail = NULL;
            CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
            const char *name = kiln_layer_op_name((kiln_layer_op)op);
            CHECK(strcmp(kind, name) == 0 || strcmp(detail, name) == 0);
            /* Attributes are shown by their schema names (kiln inspect's detail column). */
            if (op == KILN_LAYER_GATHER) CHECK(strcmp(detail, "axis 1") == 0);   /* -1 of rank 2 */
            if (op == KILN_LAYER_CAST) CHECK(strcmp(detail, "to float16") == 0);
            if (op == KILN_LAYER_RESHAPE || op == KILN_LAYER_MATMUL) CHECK(strcmp(detail, "") == 0);
            kiln_engine_free(e);
        }
        kiln_blob_free(bespoke);
        kiln_blob_free(generic);
    }
}

/* x [6, batch] → topk(k 4, axis -2, smallest): the bespoke and the generic call. */
static kiln_blob *build_topk(int generic) {
    kiln_network *net = NULL;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_tensor x, outs[2];
    kiln_network_add_input(net, "x", KILN_FLOAT16, 2, (kiln_expr[]){kiln_expr_const(p, 6), batch}, &x);
    kiln_expr k = kiln_expr_const(p, 4);
    kiln_layer_attr attrs[3] = {{.name = "k", .kind = KILN_ATTR_EXPRS, .count = 1, .exprs = &k},
                                {.name = "axis", .kind = KILN_ATTR_INT, .i = -2},
                                {.name = "largest", .kind = KILN_ATTR_INT, .i = 0}};
    kiln_status s = generic ? kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 3, attrs, 2, outs)
                            : kiln_network_add_topk(net, x, k, -2, 0, 1, &outs[0], &outs[1]);
    if (!s) s = kiln_network_mark_output(net, outs[0], "values", KILN_FLOAT16);
    if (!s) s = kiln_network_mark_output(net, outs[1], "indices", KILN_INT64);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static void test_topk_same_engine(void) {
    kiln_blob *bespoke = build_topk(0), *generic = build_topk(1);
    CHECK(bespoke != NULL && generic != NULL);
    if (bespoke && generic)
        CHECK(kiln_blob_size(bespoke) == kiln_blob_size(generic) &&
              memcmp(kiln_blob_data(bespoke), kiln_blob_data(generic), kiln_blob_size(bespoke)) == 0);
    kiln_blob_free(bespoke);
    kiln_blob_free(generic);
}

/* a [M, K] (stored [K, M] when ta) x b [K, N] (stored [N, K] when tb), with
 * M and K dynamic: through kiln_network_add_matmul (how = 0, no flags),
 * kiln_network_add_matmul_transposed (1) or kiln_network_add_layer (2). */
static kiln_blob *build_matmul(int how, int ta, int tb) {
    kiln_network *net = NULL;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr m, k, n = kiln_expr_const(p, 5);
    kiln_network_add_dim(net, "m", &range, 1, &m);
    kiln_network_add_dim(net, "k", &range, 1, &k);
    kiln_tensor a, b, y = KILN_TENSOR_INVALID;
    kiln_network_add_input(net, "a", KILN_FLOAT16, 2, ta ? (kiln_expr[]){k, m} : (kiln_expr[]){m, k}, &a);
    kiln_network_add_input(net, "b", KILN_FLOAT16, 2, tb ? (kiln_expr[]){n, k} : (kiln_expr[]){k, n}, &b);
    kiln_layer_attr flags[2] = {{.name = "transpose_a", .kind = KILN_ATTR_INT, .i = ta},
                                {.name = "transpose_b", .kind = KILN_ATTR_INT, .i = tb}};
    kiln_status s = how == 0   ? kiln_network_add_matmul(net, a, b, &y)
                    : how == 1 ? kiln_network_add_matmul_transposed(net, a, b, ta, tb, &y)
                               : kiln_network_add_layer(net, KILN_LAYER_MATMUL, 2, (kiln_tensor[]){a, b}, 2, flags, &y);
    /* The output is [M, N] whichever way the operands are stored. */
    int32_t rank = 0;
    kiln_expr shape[KILN_MAX_RANK];
    if (!s) s = kiln_network_tensor_info(net, y, NULL, &rank, shape);
    if (!s && (rank != 2 || shape[0] != m || shape[1] != n)) s = KILN_ERROR_INVALID_NETWORK;
    if (!s) s = kiln_network_mark_output(net, y, "y", KILN_FLOAT16);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static int same_blob(const kiln_blob *x, const kiln_blob *y) {
    return x && y && kiln_blob_size(x) == kiln_blob_size(y) &&
           memcmp(kiln_blob_data(x), kiln_blob_data(y), kiln_blob_size(x)) == 0;
}

/* Every flag combination builds one engine through either call, and loads
 * showing its flags; (0, 0) is the plain matmul's engine, byte for byte (an
 * empty attribute list, as engines from before the flags store it). */
static void test_matmul_transposes(void) {
    kiln_blob *plain = build_matmul(0, 0, 0);
    CHECK(plain != NULL);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            kiln_blob *bespoke = build_matmul(1, ta, tb), *generic = build_matmul(2, ta, tb);
            if (!bespoke || !generic) fprintf(stderr, "matmul %d %d: %s\n", ta, tb, kiln_last_error());
            CHECK(same_blob(bespoke, generic));
            CHECK(same_blob(bespoke, plain) == (!ta && !tb));
            kiln_engine *e = NULL;
            if (bespoke) CHECK_OK(kiln_engine_load_memory(kiln_blob_data(bespoke), kiln_blob_size(bespoke), 0, &e));
            const char *kind = NULL, *detail = NULL;
            if (e) {
                CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
                char want[64] = "";
                if (ta || tb) snprintf(want, sizeof want, "transpose_a %d transpose_b %d", ta, tb);
                if (strcmp(kind, "matmul") != 0 || strcmp(detail, want) != 0)
                    fprintf(stderr, "matmul %d %d: '%s' '%s'\n", ta, tb, kind, detail);
                CHECK(strcmp(kind, "matmul") == 0 && strcmp(detail, want) == 0);
            }
            kiln_engine_free(e);
            kiln_blob_free(bespoke);
            kiln_blob_free(generic);
        }
    kiln_blob_free(plain);

    /* Flags other than 0 and 1 are refused by name, through either call; an
     * inner-size mismatch says which operand was transposed. */
    kiln_network *net = NULL;
    CHECK_OK(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_tensor a, b, y;
    CHECK_OK(kiln_network_add_input(net, "a", KILN_FLOAT32, 2, (kiln_expr[]){kiln_expr_const(p, 2),
                                                                            kiln_expr_const(p, 3)}, &a));
    CHECK_OK(kiln_network_add_input(net, "b", KILN_FLOAT32, 2, (kiln_expr[]){kiln_expr_const(p, 4),
                                                                            kiln_expr_const(p, 3)}, &b));
    CHECK_FAILS(kiln_network_add_matmul_transposed(net, a, b, 2, 1, &y), KILN_ERROR_INVALID_NETWORK,
                "matmul of 'a' and 'b': transpose_a is 2; must be 0 or 1");
    kiln_layer_attr flag = {.name = "transpose_b", .kind = KILN_ATTR_INT, .i = -1};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_MATMUL, 2, (kiln_tensor[]){a, b}, 1, &flag, &y),
                KILN_ERROR_INVALID_NETWORK, "transpose_b is -1; must be 0 or 1");
    CHECK_FAILS(kiln_network_add_matmul(net, a, b, &y), KILN_ERROR_INVALID_NETWORK,
                "matmul of 'a' and 'b': inner sizes 3 and 4 differ");
    CHECK_FAILS(kiln_network_add_matmul_transposed(net, a, b, 1, 1, &y), KILN_ERROR_INVALID_NETWORK,
                "matmul of 'a' (transposed) and 'b' (transposed): inner sizes 2 and 3 differ");
    CHECK_OK(kiln_network_add_matmul_transposed(net, a, b, 0, 1, &y));   /* [2, 3] x [4, 3]ᵀ */
    int32_t rank = 0;
    kiln_expr shape[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, y, NULL, &rank, shape));
    int64_t d0 = 0, d1 = 0;
    CHECK(rank == 2 && kiln_expr_is_const(p, shape[0], &d0) && kiln_expr_is_const(p, shape[1], &d1) && d0 == 2 &&
          d1 == 4);
    kiln_network_free(net);
}

static void test_refusals(void) {
    kiln_network *net = NULL;
    CHECK_OK(kiln_network_create(&net));
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_tensor x, ix, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_FLOAT32, 2, (kiln_expr[]){kiln_expr_const(p, 2),
                                                                            kiln_expr_const(p, 3)}, &x));
    CHECK_OK(kiln_network_add_input(net, "ix", KILN_INT32, 1, (kiln_expr[]){kiln_expr_const(p, 4)}, &ix));
    kiln_tensor two[2] = {x, ix};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_OP_COUNT, 1, &x, 0, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "kiln_network_add_layer: unknown op");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_ADD, 1, &x, 0, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "add takes 2 inputs, got 1");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RELU, 1, NULL, 0, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "relu takes 1 inputs");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RELU, 1, &x, 1, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "attr_count 1 without attributes");
    kiln_layer_attr bogus = {.name = "alpha", .kind = KILN_ATTR_INT, .i = 1};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RELU, 1, &x, 1, &bogus, &y), KILN_ERROR_INVALID_ARGUMENT,
                "relu has no attribute 'alpha' (it takes none)");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 1, &bogus, &y), KILN_ERROR_INVALID_ARGUMENT,
                "gather has no attribute 'alpha' (it takes 'axis')");
    kiln_layer_attr axes[2] = {{.name = "axis", .kind = KILN_ATTR_INT, .i = 0},
                               {.name = "axis", .kind = KILN_ATTR_INT, .i = 1}};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 2, axes, &y), KILN_ERROR_INVALID_ARGUMENT,
                "gather: attribute 'axis' is given twice");
    axes[0].kind = KILN_ATTR_DTYPE;
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 1, axes, &y), KILN_ERROR_INVALID_ARGUMENT,
                "gather: attribute 'axis' must be INT, not DTYPE");
    axes[0] = (kiln_layer_attr){.name = "axis", .kind = KILN_ATTR_INT, .i = 2};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 1, axes, &y), KILN_ERROR_INVALID_NETWORK,
                "gather: axis 2 is out of range for 'x' of rank 2");
    axes[0].i = (int64_t)1 << 40;   /* not truncated to an int32 axis */
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 1, axes, &y), KILN_ERROR_INVALID_NETWORK,
                "out of range");
    CHECK_OK(kiln_network_add_layer(net, KILN_LAYER_GATHER, 2, two, 0, NULL, &y));   /* axis defaults to 0 */
    int32_t rank = 0;
    CHECK_OK(kiln_network_tensor_info(net, y, NULL, &rank, NULL));
    CHECK(rank == 2);
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CAST, 1, &x, 0, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "cast needs attribute 'to'");
    kiln_layer_attr to = {.name = "to", .kind = KILN_ATTR_DTYPE, .i = KILN_DTYPE_COUNT};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CAST, 1, &x, 1, &to, &y), KILN_ERROR_INVALID_ARGUMENT,
                "attribute 'to' is");
    to.i = (int64_t)1 << 32;   /* would be KILN_FLOAT32 if truncated */
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CAST, 1, &x, 1, &to, &y), KILN_ERROR_INVALID_ARGUMENT,
                "not a kiln_dtype");
    kiln_expr shape[KILN_MAX_RANK + 1] = {0};
    kiln_layer_attr sh = {.name = "shape", .kind = KILN_ATTR_EXPRS, .count = KILN_MAX_RANK + 1, .exprs = shape};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RESHAPE, 1, &x, 1, &sh, &y), KILN_ERROR_INVALID_ARGUMENT,
                "reshape: attribute 'shape' has 9 entries");
    sh.count = 1;
    sh.exprs = NULL;
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RESHAPE, 1, &x, 1, &sh, &y), KILN_ERROR_INVALID_ARGUMENT,
                "attribute 'shape'");
    shape[0] = kiln_expr_const(p, 5);
    sh.exprs = shape;
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RESHAPE, 1, &x, 1, &sh, &y), KILN_ERROR_INVALID_NETWORK,
                "reshape of 'x'");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_MATMUL, 2, two, 0, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "matmul");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_SQRT, 1, &ix, 0, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "sqrt of 'ix': dtype int32 is not supported");
    kiln_network_free(net);
}

int main(void) {
    TEST_RUN(test_names);
    TEST_RUN(test_every_engine_op_is_public);
    TEST_RUN(test_schemas);
    TEST_RUN(test_same_engine_as_bespoke_calls);
    TEST_RUN(test_refusals);
    TEST_RUN(test_topk_same_engine);
    TEST_RUN(test_matmul_transposes);
    return test_summary();
}
