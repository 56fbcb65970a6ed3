/* test_op_table.c — the op table (src/ops) is the one home of every built-in
 * op: names, arity and dtype rules come from it everywhere, and the backends
 * cover what it allows.
 *   - every op, binary and unary sub-op has a distinct name; numbers past the
 *     table are "?" and have no row;
 *   - the CPU backend supports exactly the (sub-op, dtype) pairs the table's
 *     dtype rules accept, so a gap between rule and kernel cannot hide;
 *   - an engine naming an op past the table, or a layer with another arity
 *     than its row's, is refused at load by the table, naming the layer;
 *   - a loaded engine describes its layers (kiln_engine_layer_info, which
 *     `kiln inspect` prints) with the table's names. */
#include <math.h>
#include <stdio.h>

#include "backend/backend.h"
#include "core/alloc.h"
#include "format/engine_format.h"
#include "ops/op_table.h"
#include "test.h"

static void test_names_and_rows(void) {
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        CHECK(kiln_op_info_get(op) != NULL);
        CHECK(strcmp(kiln_op_name(op), "?") != 0);
        for (int other = 0; other < op; other++) CHECK(strcmp(kiln_op_name(op), kiln_op_name(other)) != 0);
    }
    CHECK(kiln_op_info_get(KILN_OP_COUNT) == NULL && kiln_op_info_get(-1) == NULL);
    CHECK(strcmp(kiln_op_name(KILN_OP_COUNT), "?") == 0);
    for (int op = 0; op < KILN_BINARY_OP_COUNT; op++)
        for (int other = 0; other < op; other++)
            CHECK(strcmp(kiln_binary_op_name(op), kiln_binary_op_name(other)) != 0);
    for (int op = 0; op < KILN_UNARY_OP_COUNT; op++)
        for (int other = 0; other < op; other++)
            CHECK(strcmp(kiln_unary_op_name(op), kiln_unary_op_name(other)) != 0);
    CHECK(strcmp(kiln_unary_op_name(KILN_UNARY_OP_COUNT), "?") == 0);
    CHECK(strcmp(kiln_binary_op_name(-1), "?") == 0);
    /* Every row but PLUGIN has a rule, 1 to KILN_OP_MAX_OUTPUTS outputs (op_list.h's
     * count, which the CUDA module reads), names for them when there are
     * several, and an exact arity but CONCAT's. */
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        const kiln_op_info *info = kiln_op_info_get(op);
        CHECK((op == KILN_OP_PLUGIN) == (info->infer == NULL));
        CHECK(info->output_count == kiln_op_list_outputs(op));
        CHECK(op == KILN_OP_PLUGIN ? info->output_count == 0
                                   : info->output_count >= 1 && info->output_count <= KILN_OP_MAX_OUTPUTS);
        CHECK((info->output_count > 1) == (info->output_names != NULL));
        for (int32_t o = 0; info->output_names && o < info->output_count; o++) CHECK(info->output_names[o] != NULL);
        CHECK(op == KILN_OP_PLUGIN || op == KILN_OP_CONCAT || info->input_count >= 1);
        CHECK(kiln_op_gives_outputs(op, info->output_count ? info->output_count : 1));
        CHECK(!kiln_op_gives_outputs(op, op == KILN_OP_PLUGIN ? 0 : info->output_count + 1));
    }
    CHECK(kiln_op_info_get(KILN_OP_TOPK)->output_count == 2 && kiln_op_list_outputs(KILN_OP_COUNT) == -1);
    int32_t outputs = 0;
    CHECK_OK(kiln_layer_op_outputs(KILN_LAYER_TOPK, &outputs));
    CHECK(outputs == 2);
    CHECK_OK(kiln_layer_op_outputs(KILN_LAYER_ADD, &outputs));
    CHECK(outputs == 1);
    CHECK_FAILS(kiln_layer_op_outputs(KILN_LAYER_OP_COUNT, &outputs), KILN_ERROR_INVALID_ARGUMENT, "unknown op");
    CHECK(kiln_op_takes_inputs(KILN_OP_CONCAT, 1) && kiln_op_takes_inputs(KILN_OP_CONCAT, KILN_OP_MAX_INPUTS));
    CHECK(!kiln_op_takes_inputs(KILN_OP_CONCAT, 0) && !kiln_op_takes_inputs(KILN_OP_CONCAT, KILN_OP_MAX_INPUTS + 1));
    /* rotary_embedding's last input (position_ids) is optional; no other count passes. */
    CHECK(kiln_op_takes_inputs(KILN_OP_ROTARY_EMBEDDING, 3) && kiln_op_takes_inputs(KILN_OP_ROTARY_EMBEDDING, 4));
    CHECK(!kiln_op_takes_inputs(KILN_OP_ROTARY_EMBEDDING, 2) && !kiln_op_takes_inputs(KILN_OP_ROTARY_EMBEDDING, 5));
}

static void test_cpu_covers_the_rules(void) {
    const kiln_backend_iface *cpu = kiln_backend_cpu();
    int mismatches = 0;
    for (int dt = 0; dt < KILN_DTYPE_COUNT; dt++) {
        kiln_tensor_desc d = {.dtype = (kiln_dtype)dt};
        kiln_tensor_desc in[2] = {d, d}, out[1] = {d};
        kiln_layer_launch l = {.op = KILN_OP_UNARY, .input_count = 1, .output_count = 1, .inputs = in, .outputs = out};
        for (int op = 0; op < KILN_UNARY_OP_COUNT; op++) {
            l.subop = op;
            if (cpu->supports_op(&l) != kiln_unary_op_accepts(op, (kiln_dtype)dt)) {
                fprintf(stderr, "unary %s on %s: table and CPU backend disagree\n", kiln_unary_op_name(op),
                        kiln_dtype_name((kiln_dtype)dt));
                mismatches++;
            }
        }
        l.op = KILN_OP_BINARY;
        l.input_count = 2;
        for (int op = 0; op < KILN_BINARY_OP_COUNT; op++) {
            l.subop = op;
            if (cpu->supports_op(&l) != kiln_binary_op_accepts(op, (kiln_dtype)dt)) {
                fprintf(stderr, "binary %s on %s: table and CPU backend disagree\n", kiln_binary_op_name(op),
                        kiln_dtype_name((kiln_dtype)dt));
                mismatches++;
            }
        }
    }
    CHECK(mismatches == 0);
}

/* x → relu → y, as a desc to edit. */
static kiln_blob *relu_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_expr shape[1] = {kiln_expr_const(kiln_network_exprs(net), 4)};
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 1, shape, &x);
    kiln_network_add_unary(net, KILN_UNARY_RELU, x, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static kiln_status load_edited(const kiln_engine_desc *d) {
    uint8_t *bytes = NULL;
    size_t size = 0;
    kiln_engine *e = NULL;
    kiln_status s = kiln_format_write(d, &bytes, &size);
    if (s == KILN_OK) s = kiln_engine_load_memory(bytes, size, 0, &e);
    kiln_engine_free(e);
    kiln_aligned_free(bytes);
    return s;
}

static void test_table_refuses_engines(void) {
    kiln_blob *blob = relu_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, kiln_op_name(KILN_OP_UNARY)) == 0 && strcmp(detail, kiln_unary_op_name(KILN_UNARY_RELU)) == 0);
    kiln_engine_free(e);

    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    d.layers[0].op = KILN_OP_COUNT;
    char want[64];
    snprintf(want, sizeof want, "layer 0 has unknown op %d", KILN_OP_COUNT);
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, want);
    d.layers[0].op = KILN_OP_MATMUL;   /* a two-input op given one input */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "layer 0 (matmul): has 1 inputs and 1 outputs, wants 2 and 1");
    d.layers[0].op = KILN_OP_UNARY;
    d.layers[0].subop = KILN_UNARY_OP_COUNT;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "layer 0 (unary): unknown unary op");
    d.layers[0].subop = KILN_UNARY_SQRT;   /* a known sub-op: loads */
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* x [batch, 3] → transpose → slice(rows 1.., reversed columns) → y: layers
 * with integer and expression attributes. */
static kiln_blob *attrs_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_tensor x, t, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, (kiln_expr[]){batch, kiln_expr_const(p, 3)}, &x);
    int64_t perm[2] = {-1, 0};
    kiln_layer_attr pa = {.name = "perm", .kind = KILN_ATTR_INTS, .count = 2, .ints = perm};
    kiln_network_add_layer(net, KILN_LAYER_TRANSPOSE, 1, &x, 1, &pa, &t);
    kiln_expr starts[2] = {kiln_expr_const(p, 1), kiln_expr_const(p, -1)};
    kiln_expr ends[2] = {kiln_expr_const(p, INT64_MAX), kiln_expr_binary(p, KILN_EXPR_SUB, kiln_expr_const(p, 0),
                                                                         batch)};
    int64_t steps[2] = {1, -1};
    kiln_layer_attr sa[3] = {{.name = "starts", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = starts},
                             {.name = "ends", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = ends},
                             {.name = "steps", .kind = KILN_ATTR_INTS, .count = 2, .ints = steps}};
    kiln_network_add_layer(net, KILN_LAYER_SLICE, 1, &t, 3, sa, &y);
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

/* Attribute lists are held to their op's canonical form at load. */
static void test_attribute_lists_are_checked_at_load(void) {
    kiln_blob *blob = attrs_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "transpose") == 0 && strcmp(detail, "perm [1, 0]") == 0);   /* -1 stored normalized */
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    CHECK(d.layers[0].attrs.int_count == 2 && d.layers[1].attrs.int_count == 2 && d.layers[1].attrs.expr_count == 4);
    d.layers[0].attrs.ints[0] = -1;   /* valid, but not canonical */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "layer 0 (transpose): its attribute lists are not in the canonical");
    d.layers[0].attrs.ints[0] = 0;    /* not a permutation */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "perm is not a permutation");
    d.layers[0].attrs.ints[0] = 1;
    d.layers[0].attrs.int_count = 1;  /* too few */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "perm has 1 entries for rank 2");
    d.layers[0].attrs.int_count = 2;
    kiln_expr saved = d.layers[1].attrs.exprs[3];
    d.layers[1].attrs.exprs[3] = (kiln_expr)d.exprs->count;   /* not a node */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "attribute expression 3");
    d.layers[1].attrs.exprs[3] = saved;
    d.layers[1].attrs.ints[1] = 0;    /* a zero step */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "step of axis 1 is 0");
    d.layers[1].attrs.ints[1] = 2;    /* another step: the stored output shape no longer follows */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the op's rule gives");
    d.layers[1].attrs.ints[1] = -1;
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
    /* An op without attribute lists given one. */
    blob = relu_engine();
    REQUIRE(blob != NULL);
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    d.layers[0].attrs.int_count = 1;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "has attribute lists but its op takes none");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* x [batch, 8] → topk(k = batch, axis -1) → values, indices: the two-output
 * rule, through the generic and the bespoke call. */
static kiln_blob *topk_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 8};
    kiln_expr batch;
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_tensor x, outs[2];
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, (kiln_expr[]){batch, kiln_expr_const(p, 8)}, &x);
    kiln_layer_attr ka = {.name = "k", .kind = KILN_ATTR_EXPRS, .count = 1, .exprs = &batch};
    kiln_status s = kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 1, &ka, 2, outs);
    if (!s) s = kiln_network_mark_output(net, outs[0], "values", KILN_FLOAT32);
    if (!s) s = kiln_network_mark_output(net, outs[1], "indices", KILN_INT64);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static void test_two_output_rule(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 8};
    kiln_expr batch, three = kiln_expr_const(p, 3), nine = kiln_expr_const(p, 9), minus = kiln_expr_const(p, -1);
    kiln_network_add_dim(net, "batch", &range, 1, &batch);
    kiln_tensor x, ix, v, i, outs[3];
    CHECK_OK(kiln_network_add_input(net, "x", KILN_BFLOAT16, 3,
                                    (kiln_expr[]){batch, kiln_expr_const(p, 8), kiln_expr_const(p, 2)}, &x));
    CHECK_OK(kiln_network_add_input(net, "flags", KILN_BOOL, 1, &batch, &ix));
    /* One output asked of a two-output op, or three. */
    kiln_layer_attr ka = {.name = "k", .kind = KILN_ATTR_EXPRS, .count = 1, .exprs = &three};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_TOPK, 1, &x, 1, &ka, outs), KILN_ERROR_INVALID_ARGUMENT,
                "topk gives 2 outputs, not 1 (add it with kiln_network_add_layer_outputs)");
    CHECK_FAILS(kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 1, &ka, 3, outs),
                KILN_ERROR_INVALID_ARGUMENT, "topk gives 2 outputs, not 3");
    kiln_tensor y;
    CHECK_FAILS(kiln_network_add_layer_outputs(net, KILN_LAYER_RELU, 1, &x, 0, NULL, 2, outs),
                KILN_ERROR_INVALID_ARGUMENT, "unary gives 1 outputs, not 2");
    CHECK_OK(kiln_network_add_layer_outputs(net, KILN_LAYER_RELU, 1, &x, 0, NULL, 1, &y));
    /* The rule gives each output its dtype: values x's, indices int64. */
    kiln_layer_attr axis1[2] = {ka, {.name = "axis", .kind = KILN_ATTR_INT, .i = 1}};
    CHECK_OK(kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 2, axis1, 2, outs));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, outs[0], &dt, &rank, dims));
    CHECK(dt == KILN_BFLOAT16 && rank == 3 && dims[0] == batch && dims[1] == three);
    CHECK_OK(kiln_network_tensor_info(net, outs[1], &dt, &rank, dims));
    CHECK(dt == KILN_INT64 && rank == 3 && dims[1] == three);
    CHECK_OK(kiln_network_add_topk(net, x, three, -2, 0, 1, &v, &i));
    CHECK_OK(kiln_network_tensor_info(net, i, &dt, &rank, dims));
    CHECK(dt == KILN_INT64 && dims[1] == three && dims[2] == kiln_expr_const(p, 2));
    /* What can never work is refused now, naming the input. */
    CHECK_FAILS(kiln_network_add_topk(net, x, nine, 1, 1, 1, &v, &i), KILN_ERROR_INVALID_NETWORK,
                "topk of 'x': k is 9 but axis 1 has only 8 entries");
    CHECK_FAILS(kiln_network_add_topk(net, x, minus, 1, 1, 1, &v, &i), KILN_ERROR_INVALID_NETWORK,
                "topk of 'x': k is -1, not >= 0");
    CHECK_FAILS(kiln_network_add_topk(net, x, three, 3, 1, 1, &v, &i), KILN_ERROR_INVALID_NETWORK,
                "topk of 'x': axis 3 is out of range for rank 3");
    CHECK_FAILS(kiln_network_add_topk(net, ix, three, 0, 1, 1, &v, &i), KILN_ERROR_INVALID_NETWORK,
                "topk of 'flags': dtype bool is not supported");
    kiln_layer_attr bad[2] = {ka, {.name = "largest", .kind = KILN_ATTR_INT, .i = 2}};
    CHECK_FAILS(kiln_network_add_layer_outputs(net, KILN_LAYER_TOPK, 1, &x, 2, bad, 2, outs),
                KILN_ERROR_INVALID_NETWORK, "largest and sorted (0 or 1)");
    kiln_network_free(net);

    /* At load, every output is held to the rule, and the count to the row. */
    kiln_blob *blob = topk_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    int32_t ni = 0, no = 0;
    const int32_t *in = NULL, *out = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, &ni, &in, &no, &out));
    CHECK(strcmp(kind, "topk") == 0 && strcmp(detail, "k [batch] axis 1 largest 1 sorted 1") == 0);
    CHECK(ni == 1 && no == 2);
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    REQUIRE(d.layers[0].op == KILN_OP_TOPK && d.layers[0].output_count == 2);
    int32_t indices = d.layers[0].outputs[1];
    d.tensors[indices].dtype = KILN_INT32;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "layer 0 (topk): output 'indices' is stored as int32 [batch, "
                "batch] but the op's rule gives int64 [batch, batch]");
    d.tensors[indices].dtype = KILN_INT64;
    d.layers[0].op = KILN_OP_CUMSUM;   /* a one-output op with the same input */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "layer 0 (cumsum): has 1 inputs and 2 outputs, wants 1 and 1");
    d.layers[0].op = KILN_OP_TOPK;
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* PAD's mode: an integer of its attribute list, checked at load; engines
 * from before modes (the value alone) still load, as constant padding. */
static void test_pad_mode_at_load(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 1, (kiln_expr[]){kiln_expr_const(p, 3)}, &x);
    kiln_expr pads[2] = {kiln_expr_const(p, 2), kiln_expr_const(p, 1)};
    kiln_layer_attr pa[2] = {{.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = pads},
                             {.name = "mode", .kind = KILN_ATTR_INT, .i = 9}};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_PAD, 1, &x, 2, pa, &y), KILN_ERROR_INVALID_NETWORK,
                "mode 9 is not constant (0), edge (1), reflect (2) or wrap (3)");
    pa[1].i = KILN_PAD_REFLECT;
    CHECK_OK(kiln_network_add_layer(net, KILN_LAYER_PAD, 1, &x, 2, pa, &y));
    kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_status built = kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    CHECK_OK(built);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(detail, "pads [2, 1] mode reflect") == 0);
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    float in[3] = {1, 2, 3}, out[6];
    kiln_context_set_tensor(ctx, "x", in);
    kiln_context_set_tensor(ctx, "y", out);
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    CHECK(out[0] == 3 && out[1] == 2 && out[2] == 1 && out[3] == 2 && out[4] == 3 && out[5] == 2);   /* numpy.pad */
    kiln_context_free(ctx);
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    CHECK(d.layers[0].attrs.int_count == 2 && d.layers[0].attrs.ints[1] == KILN_PAD_REFLECT);
    d.layers[0].attrs.ints[1] = 4;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "mode 4 is not constant");
    d.layers[0].attrs.int_count = 1;   /* as an engine from before modes stores it: constant padding */
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

static kiln_status add_scatter(kiln_network *net, kiln_layer_op op, kiln_tensor d, kiln_tensor i, kiln_tensor u,
                               int64_t axis, int64_t reduction, kiln_tensor *out) {
    kiln_layer_attr a[2] = {{.name = "reduction", .kind = KILN_ATTR_INT, .i = reduction},
                            {.name = "axis", .kind = KILN_ATTR_INT, .i = axis}};
    return kiln_network_add_layer(net, op, 3, (kiln_tensor[]){d, i, u}, op == KILN_LAYER_SCATTER_ND ? 1 : 2, a, out);
}

/* scatter_nd and scatter_elements: the rules' refusals name the inputs,
 * symbolic sizes become checks, the reduction is stored canonical and shown
 * by inspect, and a stored reduction out of range is refused at load. */
static void test_scatter_rules(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 4, 8};
    kiln_expr n, m;
    CHECK_OK(kiln_network_add_dim(net, "n", &range, 1, &n));
    CHECK_OK(kiln_network_add_dim(net, "m", &range, 1, &m));
    kiln_expr c1 = kiln_expr_const(p, 1), c2 = kiln_expr_const(p, 2), c3 = kiln_expr_const(p, 3),
              c4 = kiln_expr_const(p, 4), c5 = kiln_expr_const(p, 5);
    kiln_tensor data, ix, upd, fix, d3, u5, flags, fu, wide, eix, eupd, y, z, t;
    CHECK_OK(kiln_network_add_input(net, "data", KILN_FLOAT32, 2, (kiln_expr[]){c4, n}, &data));
    CHECK_OK(kiln_network_add_input(net, "ix", KILN_INT64, 2, (kiln_expr[]){m, c1}, &ix));
    CHECK_OK(kiln_network_add_input(net, "upd", KILN_FLOAT32, 2, (kiln_expr[]){m, n}, &upd));
    CHECK_OK(kiln_network_add_input(net, "fix", KILN_FLOAT32, 2, (kiln_expr[]){m, c1}, &fix));
    CHECK_OK(kiln_network_add_input(net, "d3", KILN_FLOAT32, 2, (kiln_expr[]){c4, c3}, &d3));
    CHECK_OK(kiln_network_add_input(net, "u5", KILN_FLOAT32, 2, (kiln_expr[]){m, c5}, &u5));
    CHECK_OK(kiln_network_add_input(net, "flags", KILN_BOOL, 2, (kiln_expr[]){c4, n}, &flags));
    CHECK_OK(kiln_network_add_input(net, "fu", KILN_BOOL, 2, (kiln_expr[]){m, n}, &fu));
    CHECK_OK(kiln_network_add_input(net, "wide", KILN_INT64, 2, (kiln_expr[]){m, m}, &wide));
    CHECK_OK(kiln_network_add_input(net, "eix", KILN_INT32, 2, (kiln_expr[]){c2, n}, &eix));
    CHECK_OK(kiln_network_add_input(net, "eupd", KILN_FLOAT32, 2, (kiln_expr[]){c2, n}, &eupd));

    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, data, fix, upd, 0, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "scatter_nd: indices 'fix' are float32; need int32 or int64");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, d3, ix, u5, 0, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "scatter_nd: updates 'u5' axis 1 has size 5; data gives 3");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, data, ix, u5, 0, KILN_SCATTER_REDUCTION_COUNT, &t),
                KILN_ERROR_INVALID_NETWORK, "scatter_nd of 'data': needs one reduction, 0 to 4");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, flags, ix, fu, 0, KILN_SCATTER_ADD, &t),
                KILN_ERROR_INVALID_NETWORK, "scatter_nd of 'flags': reduction add does not take dtype bool");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, data, wide, upd, 0, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "the last axis of indices 'wide' must have a constant size");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ND, data, ix, eix, 0, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "updates 'eix' are int32 but data 'data' is float32");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ELEMENTS, d3, ix, u5, 0, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "scatter_elements: updates 'u5' axis 1 has size 5; indices gives 1");
    CHECK_FAILS(add_scatter(net, KILN_LAYER_SCATTER_ELEMENTS, data, eix, eupd, 2, 0, &t), KILN_ERROR_INVALID_NETWORK,
                "scatter_elements of 'data': axis 2 is out of range for rank 2");
    CHECK_OK(add_scatter(net, KILN_LAYER_SCATTER_ELEMENTS, d3, eix, eupd, 0, 0, &t));   /* n <= 3: a run-time check */

    CHECK_OK(add_scatter(net, KILN_LAYER_SCATTER_ND, data, ix, upd, 0, KILN_SCATTER_ADD, &y));
    CHECK_OK(add_scatter(net, KILN_LAYER_SCATTER_ELEMENTS, y, eix, eupd, -1, KILN_SCATTER_MAX, &z));
    CHECK_OK(kiln_network_mark_output(net, z, "z", KILN_FLOAT32));
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_network_free(net);
    REQUIRE(blob != NULL);

    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "scatter_nd") == 0 && strcmp(detail, "reduction add") == 0);
    CHECK_OK(kiln_engine_layer_info(e, 1, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "scatter_elements") == 0 && strcmp(detail, "axis 1 reduction max") == 0);   /* -1 normalized */
    kiln_engine_free(e);

    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    CHECK(d.layers[0].attrs.int_count == 1 && d.layers[0].attrs.ints[0] == KILN_SCATTER_ADD);
    d.layers[0].attrs.ints[0] = KILN_SCATTER_REDUCTION_COUNT;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "needs one reduction");
    d.layers[0].attrs.ints[0] = KILN_SCATTER_MIN;   /* another valid reduction loads */
    CHECK_OK(load_edited(&d));
    d.layers[1].attrs.int_count = 0;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "scatter_elements of");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* rotary_embedding with the given inputs (3, or 4 with position_ids) and attributes. */
static kiln_status add_rotary(kiln_network *net, int32_t n, const kiln_tensor *ins, int64_t interleaved, int64_t rot,
                              int64_t heads, kiln_tensor *out) {
    kiln_layer_attr a[3] = {{.name = "interleaved", .kind = KILN_ATTR_INT, .i = interleaved},
                            {.name = "rotary_embedding_dim", .kind = KILN_ATTR_INT, .i = rot},
                            {.name = "num_heads", .kind = KILN_ATTR_INT, .i = heads}};
    return kiln_network_add_layer(net, KILN_LAYER_ROTARY_EMBEDDING, n, ins, 3, a, out);
}

/* rotary_embedding: the rule refuses bad attributes, dtypes, ranks and sizes
 * naming them; sizes only run time knows become checks that fail the run
 * naming both sides; inspect shows the attributes; the reader refuses stored
 * attributes and input counts the rule does not allow; a position id out of
 * range fails the CPU run naming the layer, the id and where it is. */
static void test_rotary_rules(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {1, 2, 8};
    kiln_expr b, s, m;
    CHECK_OK(kiln_network_add_dim(net, "b", &range, 1, &b));
    CHECK_OK(kiln_network_add_dim(net, "s", &range, 1, &s));
    CHECK_OK(kiln_network_add_dim(net, "m", &range, 1, &m));
    kiln_expr c2 = kiln_expr_const(p, 2), c3 = kiln_expr_const(p, 3), c4 = kiln_expr_const(p, 4),
              c5 = kiln_expr_const(p, 5), c8 = kiln_expr_const(p, 8), c16 = kiln_expr_const(p, 16),
              c30 = kiln_expr_const(p, 30), c32 = kiln_expr_const(p, 32);
    kiln_tensor x4, x3, x30, x5, xi, xh, cc, sc, c22, s22, c5c, cq, sq, s3, ch, pos, pf, p3, pm, x4c, p25, y, t;
    CHECK_OK(kiln_network_add_input(net, "x4", KILN_FLOAT32, 4, (kiln_expr[]){b, c4, s, c8}, &x4));
    CHECK_OK(kiln_network_add_input(net, "x3", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c32}, &x3));
    CHECK_OK(kiln_network_add_input(net, "x30", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c30}, &x30));
    CHECK_OK(kiln_network_add_input(net, "x5", KILN_FLOAT32, 5, (kiln_expr[]){b, c4, s, c8, c2}, &x5));
    CHECK_OK(kiln_network_add_input(net, "xi", KILN_INT32, 4, (kiln_expr[]){b, c4, s, c8}, &xi));
    CHECK_OK(kiln_network_add_input(net, "xh", KILN_FLOAT16, 4, (kiln_expr[]){b, c4, s, c8}, &xh));
    CHECK_OK(kiln_network_add_input(net, "cc", KILN_FLOAT32, 2, (kiln_expr[]){c16, c4}, &cc));
    CHECK_OK(kiln_network_add_input(net, "sc", KILN_FLOAT32, 2, (kiln_expr[]){c16, c4}, &sc));
    CHECK_OK(kiln_network_add_input(net, "c22", KILN_FLOAT32, 2, (kiln_expr[]){c16, c2}, &c22));
    CHECK_OK(kiln_network_add_input(net, "s22", KILN_FLOAT32, 2, (kiln_expr[]){c16, c2}, &s22));
    CHECK_OK(kiln_network_add_input(net, "c5c", KILN_FLOAT32, 2, (kiln_expr[]){c16, c5}, &c5c));
    CHECK_OK(kiln_network_add_input(net, "cq", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c4}, &cq));
    CHECK_OK(kiln_network_add_input(net, "sq", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c4}, &sq));
    CHECK_OK(kiln_network_add_input(net, "s3", KILN_FLOAT32, 2, (kiln_expr[]){c16, c3}, &s3));
    CHECK_OK(kiln_network_add_input(net, "ch", KILN_FLOAT16, 2, (kiln_expr[]){c16, c4}, &ch));
    CHECK_OK(kiln_network_add_input(net, "pos", KILN_INT64, 2, (kiln_expr[]){b, s}, &pos));
    CHECK_OK(kiln_network_add_input(net, "pf", KILN_FLOAT32, 2, (kiln_expr[]){b, s}, &pf));
    CHECK_OK(kiln_network_add_input(net, "p3", KILN_INT64, 3, (kiln_expr[]){b, s, c2}, &p3));
    CHECK_OK(kiln_network_add_input(net, "pm", KILN_INT32, 2, (kiln_expr[]){m, s}, &pm));
    CHECK_OK(kiln_network_add_input(net, "x4c", KILN_FLOAT32, 4, (kiln_expr[]){c2, c4, c3, c8}, &x4c));
    CHECK_OK(kiln_network_add_input(net, "p25", KILN_INT64, 2, (kiln_expr[]){c2, c5}, &p25));
    const kiln_status invalid = KILN_ERROR_INVALID_NETWORK;

    /* Attributes. */
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pos}, 2, 0, 0, &t), invalid,
                "rotary_embedding of 'x4': interleaved is 2, not 0 or 1");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, c22, s22, pos}, 0, 3, 0, &t), invalid,
                "rotary_embedding_dim 3 is not an even number in [0, 2147483646]");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, c22, s22, pos}, 0, -4, 0, &t), invalid,
                "rotary_embedding_dim -4 is not an even number");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pos}, 0, 0, -1, &t), invalid,
                "num_heads -1 is not in [0, 2147483647]");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pos}, 0, 0, 3, &t), invalid,
                "x 'x4' axis 1 (the heads) is 4 but num_heads is 3");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x3, cc, sc, pos}, 0, 0, 0, &t), invalid,
                "rotary_embedding of 'x3': a 3-D input [batch, seq, hidden] needs num_heads (> 0)");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x30, cc, sc, pos}, 0, 0, 4, &t), invalid,
                "x 'x30' axis 2 (the hidden size) is 30 but num_heads 4 times the head size is 28");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pos}, 0, 10, 0, &t), invalid,
                "cos_cache 'cc' axis 1 (rotary_dim/2) is 4 but rotary_embedding_dim/2 is 5");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, c5c, c5c, pos}, 0, 10, 0, &t), invalid,
                "rotary_embedding of 'x4': rotary_embedding_dim 10 is larger than the head size 8");
    CHECK_OK(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pos}, 0, 8, 4, &t));   /* R = D, num_heads = H */
    /* Dtypes and ranks. */
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){xi, cc, sc, pos}, 0, 0, 0, &t), invalid,
                "rotary_embedding of 'xi': dtype int32 is not supported (float32, float16, bfloat16)");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){xh, ch, sc, pos}, 0, 0, 0, &t), invalid,
                "sin_cache 'sc' is float32, not float16 like x");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, pf}, 0, 0, 0, &t), invalid,
                "position_ids 'pf' are float32; need int64 or int32");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x5, cc, sc, pos}, 0, 0, 0, &t), invalid,
                "rotary_embedding of 'x5': x has rank 5; needs [batch, seq, num_heads*head] (3) or [batch, heads, "
                "seq, head] (4)");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cq, sq, pos}, 0, 0, 0, &t), invalid,
                "cos_cache 'cq' has rank 3; needs [max_position, rotary_dim/2] (2) with position_ids");
    CHECK_FAILS(add_rotary(net, 3, (kiln_tensor[]){x4, cc, sc}, 0, 0, 0, &t), invalid,
                "cos_cache 'cc' has rank 2; needs [batch, seq, rotary_dim/2] (3) without position_ids");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, s3, pos}, 0, 0, 0, &t), invalid,
                "sin_cache 's3' axis 1 is 3 but cos_cache 'cc' axis 1 is 4");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, c22, s22, pos}, 0, 0, 0, &t), invalid,
                "cos_cache 'c22' axis 1 (rotary_dim/2) times 2 is 4 but the head size (rotary_embedding_dim 0 "
                "rotates whole heads) is 8");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4, cc, sc, p3}, 0, 0, 0, &t), invalid,
                "position_ids 'p3' have rank 3; need [batch, seq] (2)");
    CHECK_FAILS(add_rotary(net, 4, (kiln_tensor[]){x4c, cc, sc, p25}, 0, 0, 0, &t), invalid,
                "position_ids 'p25' axis 1 is 5 but x's sequence length is 3");
    CHECK_FAILS(add_rotary(net, 2, (kiln_tensor[]){x4, cc}, 0, 0, 0, &t), KILN_ERROR_INVALID_ARGUMENT,
                "rotary_embedding takes 3 or 4 inputs (x, cos_cache, sin_cache, optional position_ids), got 2");
    CHECK_FAILS(add_rotary(net, 5, (kiln_tensor[]){x4, cc, sc, pos, pos}, 0, 0, 0, &t), KILN_ERROR_INVALID_ARGUMENT,
                "takes 3 or 4 inputs");

    kiln_network_free(net);

    /* Accepted: partial interleaved rotation of a 3-D x with int32 ids whose
     * batch (m) only run time can compare with x's (b); then a 4-D x with
     * per-token caches. */
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    p = kiln_network_exprs(net);
    CHECK_OK(kiln_network_add_dim(net, "b", &range, 1, &b));
    CHECK_OK(kiln_network_add_dim(net, "s", &range, 1, &s));
    CHECK_OK(kiln_network_add_dim(net, "m", &range, 1, &m));
    c2 = kiln_expr_const(p, 2), c4 = kiln_expr_const(p, 4), c8 = kiln_expr_const(p, 8);
    c16 = kiln_expr_const(p, 16), c32 = kiln_expr_const(p, 32);
    CHECK_OK(kiln_network_add_input(net, "x3", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c32}, &x3));
    CHECK_OK(kiln_network_add_input(net, "c22", KILN_FLOAT32, 2, (kiln_expr[]){c16, c2}, &c22));
    CHECK_OK(kiln_network_add_input(net, "s22", KILN_FLOAT32, 2, (kiln_expr[]){c16, c2}, &s22));
    CHECK_OK(kiln_network_add_input(net, "pm", KILN_INT32, 2, (kiln_expr[]){m, s}, &pm));
    CHECK_OK(kiln_network_add_input(net, "x4", KILN_FLOAT32, 4, (kiln_expr[]){b, c4, s, c8}, &x4));
    CHECK_OK(kiln_network_add_input(net, "cq", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c4}, &cq));
    CHECK_OK(kiln_network_add_input(net, "sq", KILN_FLOAT32, 3, (kiln_expr[]){b, s, c4}, &sq));
    CHECK_OK(add_rotary(net, 4, (kiln_tensor[]){x3, c22, s22, pm}, 1, 4, 4, &y));
    CHECK_OK(kiln_network_mark_output(net, y, "y", KILN_FLOAT32));
    CHECK_OK(add_rotary(net, 3, (kiln_tensor[]){x4, cq, sq}, 0, 0, 0, &t));
    CHECK_OK(kiln_network_mark_output(net, t, "t", KILN_FLOAT32));
    kiln_blob *blob = NULL;
    CHECK_OK(kiln_network_build(net, NULL, &blob));
    kiln_network_free(net);
    REQUIRE(blob != NULL);

    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    int32_t li = -1;
    for (int32_t l = 0; l < 2; l++) {   /* the builder may order the two independent layers either way */
        CHECK_OK(kiln_engine_layer_info(e, l, &kind, &detail, NULL, NULL, NULL, NULL));
        CHECK(strcmp(kind, "rotary_embedding") == 0);
        if (strcmp(detail, "interleaved 1 rotary_embedding_dim 4 num_heads 4") == 0) li = l;
        else CHECK(strcmp(detail, "interleaved 0 rotary_embedding_dim 0 num_heads 0") == 0);
    }
    REQUIRE(li >= 0);

    /* Run on the CPU: batch sizes that differ fail the check, naming both;
     * a position id past the caches' 16 rows fails the run naming it. */
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, NULL, &ctx));
    float x3v[2 * 3 * 32] = {0}, x4v[2 * 4 * 3 * 8] = {0}, c2v[16 * 2] = {0}, cqv[2 * 3 * 4] = {0}, yv[2 * 3 * 32],
          tv[2 * 4 * 3 * 8];
    int32_t pmv[2 * 3] = {0, 1, 2, 3, 4, 5};
    CHECK_OK(kiln_context_set_input_shape(ctx, "x3", 3, (int64_t[]){2, 3, 32}));
    CHECK_OK(kiln_context_set_input_shape(ctx, "x4", 4, (int64_t[]){2, 4, 3, 8}));
    CHECK_OK(kiln_context_set_input_shape(ctx, "cq", 3, (int64_t[]){2, 3, 4}));
    CHECK_OK(kiln_context_set_input_shape(ctx, "sq", 3, (int64_t[]){2, 3, 4}));
    CHECK_OK(kiln_context_set_input_shape(ctx, "pm", 2, (int64_t[]){1, 3}));
    void *bind[][2] = {{"x3", x3v}, {"x4", x4v}, {"c22", c2v}, {"s22", c2v}, {"cq", cqv}, {"sq", cqv}, {"pm", pmv},
                       {"y", yv}, {"t", tv}};
    for (size_t i = 0; i < sizeof bind / sizeof bind[0]; i++) CHECK_OK(kiln_context_set_tensor(ctx, bind[i][0], bind[i][1]));
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_SHAPE,
                "rotary_embedding of 'x3': position_ids 'pm' axis 0 (m) differs from x's batch (b)");
    CHECK_OK(kiln_context_set_input_shape(ctx, "pm", 2, (int64_t[]){2, 3}));
    CHECK_OK(kiln_context_enqueue(ctx, NULL));
    pmv[5] = 16;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_INVALID_ARGUMENT,
                "rotary_embedding: position id 16 at [1, 2] of position_ids is out of range [0, 16)");
    char want[64];
    snprintf(want, sizeof want, "layer %d (", (int)li);
    CHECK(strstr(kiln_last_error(), want) != NULL);
    pmv[5] = -1;
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_INVALID_ARGUMENT, "position id -1 at [1, 2]");
    kiln_context_free(ctx);
    kiln_engine_free(e);

    /* The reader holds stored layers to the rule. */
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    kiln_layer_record *r = &d.layers[li];
    CHECK(r->attrs.int_count == 3 && r->attrs.ints[0] == 1 && r->attrs.ints[1] == 4 && r->attrs.ints[2] == 4);
    r->attrs.ints[0] = 2;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "interleaved is 2, not 0 or 1");
    r->attrs.ints[0] = 0;   /* the other pairing loads */
    CHECK_OK(load_edited(&d));
    r->attrs.ints[1] = 6;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "is 2 but rotary_embedding_dim/2 is 3");
    r->attrs.ints[1] = 4;
    r->attrs.ints[2] = 5;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "(the hidden size) is 32 but num_heads 5 times the head size is "
                "30");
    r->attrs.ints[2] = 4;
    r->attrs.int_count = 2;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "needs interleaved, rotary_embedding_dim and num_heads");
    r->attrs.int_count = 3;
    r->input_count = 2;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "(rotary_embedding): has 2 inputs and 1 outputs, wants 3 or 4 "
                "and 1");
    r->input_count = 3;   /* without position_ids, [P, R/2] caches are the wrong rank */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "without position_ids");
    r->input_count = 4;
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* CONV: the shape rule (symbolic sizes, pads as expressions), refusals that
 * name the fault, and the reader holding a loaded layer's attributes to the
 * rule (an engine file is untrusted data). */
static kiln_status add_conv(kiln_network *net, int32_t n_inputs, const kiln_tensor *ins, int64_t group,
                            const int64_t *strides, const int64_t *dilations, int32_t k, const kiln_expr *pads,
                            kiln_tensor *y) {
    kiln_layer_attr a[4] = {{.name = "group", .kind = KILN_ATTR_INT, .i = group},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = k, .ints = strides},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = k, .ints = dilations},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 2 * k, .exprs = pads}};
    return kiln_network_add_layer(net, KILN_LAYER_CONV, n_inputs, ins, pads ? 4 : 3, a, y);
}

static kiln_blob *conv_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_dim_range range = {4, 8, 16};
    kiln_expr h;
    kiln_network_add_dim(net, "h", &range, 1, &h);
    kiln_tensor ins[3], y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 4,
                           (kiln_expr[]){kiln_expr_const(p, 1), kiln_expr_const(p, 4), h, kiln_expr_const(p, 10)},
                           &ins[0]);
    kiln_network_add_input(net, "w", KILN_FLOAT32, 4,
                           (kiln_expr[]){kiln_expr_const(p, 6), kiln_expr_const(p, 2), kiln_expr_const(p, 3),
                                         kiln_expr_const(p, 3)}, &ins[1]);
    kiln_network_add_input(net, "b", KILN_FLOAT32, 1, (kiln_expr[]){kiln_expr_const(p, 6)}, &ins[2]);
    kiln_expr pads[4] = {kiln_expr_const(p, 1), kiln_expr_const(p, 0), kiln_expr_const(p, 1), kiln_expr_const(p, 2)};
    kiln_status s = add_conv(net, 3, ins, 2, (int64_t[]){2, 1}, (int64_t[]){1, 2}, 2, pads, &y);
    if (!s) s = kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static void test_conv_rule(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
#define C(v) kiln_expr_const(p, v)
    kiln_dim_range range = {4, 8, 16};
    kiln_expr h;
    kiln_network_add_dim(net, "h", &range, 1, &h);
    kiln_tensor x, w, b, b5, wi, x1, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_FLOAT16, 4, (kiln_expr[]){C(2), C(4), h, C(10)}, &x));
    CHECK_OK(kiln_network_add_input(net, "w", KILN_FLOAT16, 4, (kiln_expr[]){C(6), C(2), C(3), C(3)}, &w));
    CHECK_OK(kiln_network_add_input(net, "b", KILN_FLOAT16, 1, (kiln_expr[]){C(6)}, &b));
    CHECK_OK(kiln_network_add_input(net, "b5", KILN_FLOAT16, 1, (kiln_expr[]){C(5)}, &b5));
    CHECK_OK(kiln_network_add_input(net, "wi", KILN_INT32, 4, (kiln_expr[]){C(6), C(2), C(3), C(3)}, &wi));
    CHECK_OK(kiln_network_add_input(net, "x1", KILN_FLOAT16, 3, (kiln_expr[]){C(2), C(4), C(7)}, &x1));
    const int64_t s21[2] = {2, 1}, d12[2] = {1, 2}, ones[2] = {1, 1};
    kiln_expr pads[4] = {C(1), C(0), C(1), C(2)};
    /* [2, 6, (h + 2 - 3) // 2 + 1, (10 + 2 - 5) // 1 + 1 = 8]: float16 in, float16 out. */
    CHECK_OK(add_conv(net, 3, (kiln_tensor[]){x, w, b}, 2, s21, d12, 2, pads, &y));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    int64_t v;
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
    CHECK(dt == KILN_FLOAT16 && rank == 4 && dims[0] == C(2) && dims[1] == C(6) && dims[3] == C(8));
    CHECK(!kiln_expr_is_const(p, dims[2], &v));   /* an expression of h */
    /* No pads and no bias: zeros, two inputs. */
    CHECK_OK(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, ones, ones, 2, NULL, &y));
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
    CHECK(dims[3] == C(8));
    /* What can never work is refused now, naming the tensors and the attribute. */
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 1, ones, ones, 2, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "conv of 'x' and 'w': input channels must equal the weight's channels per group times group 1 "
                "(4 vs 2)");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x1, w}, 2, ones, ones, 1, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "conv of 'x1': weight 'w' has rank 4; needs 3");
    CHECK_FAILS(add_conv(net, 3, (kiln_tensor[]){x, w, b5}, 2, ones, ones, 2, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "the bias length must equal the output channels (5 vs 6)");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, wi}, 2, ones, ones, 2, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "conv of 'x': weight 'wi' is int32, not float16 like the input");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 0, ones, ones, 2, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "conv of 'x': group 0 is not in [1, 2147483647]");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, (int64_t[]){1, 0}, ones, 2, NULL, &y),
                KILN_ERROR_INVALID_NETWORK, "conv of 'x': stride 0 of spatial axis 1 is not in [1, 2147483647]");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, ones, (int64_t[]){-3, 1}, 2, NULL, &y),
                KILN_ERROR_INVALID_NETWORK, "conv of 'x': dilation -3 of spatial axis 0 is not in");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, ones, ones, 2, (kiln_expr[]){C(0), C(0), C(0), C(-1)},
                         &y), KILN_ERROR_INVALID_NETWORK, "conv of 'x': end pad of spatial axis 1 is -1, not in [0, 2147483647]");
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, ones, ones, 1, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "conv of 'x' (2 spatial axes): needs group, 2 strides, 2 dilations and 4 pads; got 3 integers");
    /* The width, 10, is shorter than a kernel of 3 dilated by 5 (11). */
    CHECK_FAILS(add_conv(net, 2, (kiln_tensor[]){x, w}, 2, ones, (int64_t[]){1, 5}, 2, NULL, &y),
                KILN_ERROR_INVALID_NETWORK, "spatial axis 1 is 10 long padded, shorter than the dilated kernel (11)");
    CHECK_FAILS(add_conv(net, 1, &x, 2, ones, ones, 2, NULL, &y), KILN_ERROR_INVALID_ARGUMENT,
                "conv takes 2 or 3 inputs (x, w, optional bias), got 1");
    kiln_layer_attr no_strides[1] = {{.name = "dilations", .kind = KILN_ATTR_INTS, .count = 2, .ints = ones}};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV, 2, (kiln_tensor[]){x, w}, 1, no_strides, &y),
                KILN_ERROR_INVALID_ARGUMENT, "conv needs attribute 'strides'");
#undef C
    kiln_network_free(net);

    /* At load: the stored attributes must be the rule's canonical ones. */
    kiln_blob *blob = conv_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "conv") == 0 && strcmp(detail, "group 2 strides [2, 1] dilations [1, 2] pads [1, 0, 1, 2]") == 0);
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    kiln_layer_record *l = &d.layers[0];
    REQUIRE(l->op == KILN_OP_CONV && l->attrs.int_count == 5 && l->attrs.expr_count == 4 && l->input_count == 3);
    l->attrs.ints[0] = 3;   /* group 3: 4 channels are not 2 per group times 3 */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "input channels must equal");
    l->attrs.ints[0] = -2;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "group -2 is not in [1, 2147483647]");
    l->attrs.ints[0] = 2;
    l->attrs.ints[1] = (int64_t)1 << 40;   /* a stride no kernel's arithmetic should meet */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "stride 1099511627776 of spatial axis 0 is not in");
    l->attrs.ints[1] = 2;
    l->attrs.ints[4] = 0;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "dilation 0 of spatial axis 1");
    l->attrs.ints[4] = 1;   /* valid, but the stored output width (8) is not the rule's (10) */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the op's rule gives");
    l->attrs.ints[4] = 2;
    l->attrs.int_count = 4;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "needs group, 2 strides, 2 dilations and 4 pads");
    l->attrs.int_count = 5;
    l->attrs.expr_count = 0;   /* the pads may be left out when adding, never in a file */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "not in the canonical");
    l->attrs.expr_count = 4;
    l->input_count = 2;        /* without the bias: still a valid conv */
    CHECK_OK(load_edited(&d));
    l->input_count = 1;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "has 1 inputs");
    l->input_count = 3;
    CHECK_OK(load_edited(&d));
    l->op = KILN_OP_CONV_TRANSPOSE;   /* the same lists, but w [6, 2, 3, 3] is not [C = 4, ..] */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the weight's first axis must equal the input channels");
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* POOL: the shape rule (floor and ceil mode against ONNX's formula for every
 * size of a symbolic axis), refusals that name the fault, and the reader
 * holding a loaded layer's attributes to the rule. */
static kiln_status add_pool(kiln_network *net, kiln_layer_op op, kiln_tensor x, int32_t k, const int64_t *kernel,
                            const int64_t *strides, const int64_t *dilations, const kiln_expr *pads, int64_t ceil_mode,
                            kiln_tensor *y) {
    kiln_layer_attr a[6] = {{.name = "kernel_shape", .kind = KILN_ATTR_INTS, .count = k, .ints = kernel},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = k, .ints = strides},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = k, .ints = dilations},
                            {.name = "ceil_mode", .kind = KILN_ATTR_INT, .i = ceil_mode},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 2 * k, .exprs = pads}};
    return kiln_network_add_layer(net, op, 1, &x, pads ? 5 : 4, a, y);
}

/* ONNX's output size (onnx/reference/ops/op_pool_common.py). */
static int64_t onnx_pool_size(int64_t d, int64_t pb, int64_t pe, int64_t kernel, int64_t stride, int64_t dil,
                              bool ceil_mode) {
    /* Callers keep the numerator >= 0, so truncation is floor. */
    double size = (double)(d + pb + pe - dil * (kernel - 1) - 1) / (double)stride + 1;
    if (!ceil_mode) return (int64_t)size;
    int64_t out = (int64_t)size + (size != (double)(int64_t)size);
    if ((out - 1) * stride >= d + pb) out--;
    return out;
}

static kiln_blob *pool_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 4,
                           (kiln_expr[]){kiln_expr_const(p, 1), kiln_expr_const(p, 3), kiln_expr_const(p, 9),
                                         kiln_expr_const(p, 10)}, &x);
    kiln_expr pads[4] = {kiln_expr_const(p, 1), kiln_expr_const(p, 0), kiln_expr_const(p, 1), kiln_expr_const(p, 2)};
    kiln_layer_attr a[6] = {{.name = "kernel_shape", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){3, 2}},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){3, 3}},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 2, .ints = (int64_t[]){1, 2}},
                            {.name = "ceil_mode", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "count_include_pad", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = pads}};
    kiln_status s = kiln_network_add_layer(net, KILN_LAYER_AVG_POOL, 1, &x, 6, a, &y);
    if (!s) s = kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static void test_pool_rule(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
#define C(v) kiln_expr_const(p, v)
    kiln_dim_range range = {2, 8, 40};
    kiln_expr h;
    kiln_network_add_dim(net, "h", &range, 1, &h);
    kiln_tensor x, xi, x2, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_BFLOAT16, 3, (kiln_expr[]){C(2), C(4), h}, &x));
    CHECK_OK(kiln_network_add_input(net, "xi", KILN_INT32, 3, (kiln_expr[]){C(2), C(4), C(7)}, &xi));
    CHECK_OK(kiln_network_add_input(net, "x2", KILN_FLOAT32, 2, (kiln_expr[]){C(2), C(4)}, &x2));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    /* Every size of h, both modes, several geometries: the symbolic output
     * size is ONNX's (a ceil-mode window starting in the end padding dropped). */
    static const int64_t geoms[][5] = {{3, 2, 1, 1, 1}, {2, 2, 1, 0, 0}, {3, 3, 2, 1, 2}, {4, 3, 1, 2, 1}, {2, 5, 1, 0, 3}};
    for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++)
        for (int ceil_mode = 0; ceil_mode < 2; ceil_mode++) {
            const int64_t *g = geoms[gi];
            kiln_expr pads[2] = {C(g[3]), C(g[4])};
            CHECK_OK(add_pool(net, ceil_mode ? KILN_LAYER_MAX_POOL : KILN_LAYER_AVG_POOL, x, 1, &g[0], &g[1], &g[2],
                              pads, ceil_mode, &y));
            CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
            CHECK(dt == KILN_BFLOAT16 && rank == 3 && dims[0] == C(2) && dims[1] == C(4));
            for (int64_t hv = 2; hv <= 40; hv++) {
                int64_t got = -1, want = onnx_pool_size(hv, g[3], g[4], g[0], g[1], g[2], ceil_mode);
                if (hv + g[3] + g[4] < g[2] * (g[0] - 1) + 1) continue;   /* refused at run time */
                CHECK_OK(kiln_expr_eval(p, dims[2], &hv, 1, &got));
                if (got != want)
                    fprintf(stderr, "pool geometry %zu ceil %d h %lld: got %lld, want %lld\n", gi, ceil_mode,
                            (long long)hv, (long long)got, (long long)want);
                CHECK(got == want);
            }
        }
    /* What can never work is refused now, naming the tensor and the attribute. */
    const int64_t one[1] = {1}, two[1] = {2};
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, xi, 1, two, one, one, NULL, 0, &y), KILN_ERROR_INVALID_NETWORK,
                "max_pool of 'xi': dtype int32 is not supported (float32, float16, bfloat16)");
    CHECK_FAILS(add_pool(net, KILN_LAYER_AVG_POOL, x2, 1, two, one, one, NULL, 0, &y), KILN_ERROR_INVALID_NETWORK,
                "avg_pool of 'x2': input rank 2; needs [N, C, D1..Dk]");
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, x, 1, (int64_t[]){0}, one, one, NULL, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "max_pool of 'x': kernel size 0 of spatial axis 0 is not in [1, 2147483647]");
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, x, 1, two, (int64_t[]){(int64_t)1 << 33}, one, NULL, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "max_pool of 'x': stride 8589934592 of spatial axis 0 is not in");
    CHECK_FAILS(add_pool(net, KILN_LAYER_AVG_POOL, x, 1, two, one, (int64_t[]){-1}, NULL, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "avg_pool of 'x': dilation -1 of spatial axis 0");
    CHECK_FAILS(add_pool(net, KILN_LAYER_AVG_POOL, x, 1, two, one, one, (kiln_expr[]){C(0), C(-2)}, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "avg_pool of 'x': end pad of spatial axis 0 is -2, not in [0, 2147483647]");
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, x, 1, two, one, one, NULL, 2, &y), KILN_ERROR_INVALID_NETWORK,
                "max_pool of 'x': ceil_mode 2 is not 0 or 1");
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, xi, 1, (int64_t[]){9}, one, one, NULL, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "dtype int32");
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, x, 2, (int64_t[]){2, 2}, (int64_t[]){1, 1}, (int64_t[]){1, 1},
                         NULL, 0, &y), KILN_ERROR_INVALID_NETWORK,
                "max_pool of 'x' (1 spatial axes): needs ceil_mode, count_include_pad, 1 kernel sizes");
    kiln_layer_attr cip[5] = {{.name = "kernel_shape", .kind = KILN_ATTR_INTS, .count = 1, .ints = two},
                              {.name = "strides", .kind = KILN_ATTR_INTS, .count = 1, .ints = one},
                              {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 1, .ints = one},
                              {.name = "count_include_pad", .kind = KILN_ATTR_INT, .i = 1}};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_MAX_POOL, 1, &x, 4, cip, &y), KILN_ERROR_INVALID_ARGUMENT,
                "count_include_pad");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_AVG_POOL, 1, &x, 2, cip + 1, &y), KILN_ERROR_INVALID_ARGUMENT,
                "avg_pool needs attribute 'kernel_shape'");
    cip[3].i = 3;
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_AVG_POOL, 1, &x, 4, cip, &y), KILN_ERROR_INVALID_NETWORK,
                "avg_pool of 'x': count_include_pad 3 is not 0 or 1");
    /* A window longer than the padded axis: now when constant, at run time when symbolic. */
    kiln_tensor x7;
    CHECK_OK(kiln_network_add_input(net, "x7", KILN_FLOAT32, 3, (kiln_expr[]){C(1), C(1), C(7)}, &x7));
    CHECK_OK(add_pool(net, KILN_LAYER_MAX_POOL, x7, 1, (int64_t[]){4}, one, (int64_t[]){2}, NULL, 0, &y));
    CHECK_FAILS(add_pool(net, KILN_LAYER_MAX_POOL, x7, 1, (int64_t[]){5}, one, (int64_t[]){2}, NULL, 0, &y),
                KILN_ERROR_INVALID_NETWORK, "max_pool of 'x7': spatial axis 0 is 7 long padded, shorter than the "
                "dilated kernel (9)");
#undef C
    kiln_network_free(net);

    /* At load: the stored attributes must be the rule's canonical ones. */
    kiln_blob *blob = pool_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "pool") == 0);
    CHECK(strcmp(detail, "avg_pool kernel [3, 2] strides [3, 3] dilations [1, 2] pads [1, 0, 1, 2] ceil_mode 1 "
                         "count_include_pad 1") == 0);
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    kiln_layer_record *l = &d.layers[0];
    REQUIRE(l->op == KILN_OP_POOL && l->subop == KILN_POOL_AVERAGE && l->attrs.int_count == 8 &&
            l->attrs.expr_count == 4);
    l->subop = 7;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "unknown mode 7");
    l->subop = KILN_POOL_MAX;   /* max_pool has no count_include_pad */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "count_include_pad 1 is not 0 (max_pool has none)");
    l->subop = KILN_POOL_AVERAGE;
    l->attrs.ints[2] = (int64_t)1 << 40;   /* a kernel no index arithmetic should meet */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "kernel size 1099511627776 of spatial axis 0 is not in");
    l->attrs.ints[2] = 3;
    l->attrs.ints[5] = 0;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "stride 0 of spatial axis 1");
    l->attrs.ints[5] = 1;   /* valid, but the stored output width is not the rule's */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the op's rule gives");
    l->attrs.ints[5] = 3;
    l->attrs.ints[0] = 0;   /* floor mode: another output height (3, not 4) */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the op's rule gives");
    l->attrs.ints[0] = 1;
    l->attrs.int_count = 7;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "needs ceil_mode, count_include_pad, 2 kernel sizes");
    l->attrs.int_count = 8;
    l->attrs.expr_count = 0;   /* the pads may be left out when adding, never in a file */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "not in the canonical");
    l->attrs.expr_count = 4;
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

/* CONV_TRANSPOSE: the output grows by stride; negative pads (output_padding)
 * allowed within bounds; channels and the bias; at load, the same lists. */
static void test_conv_transpose_rule(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
#define C(v) kiln_expr_const(p, v)
    kiln_tensor x, w, b, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_BFLOAT16, 3, (kiln_expr[]){C(2), C(4), C(5)}, &x));
    CHECK_OK(kiln_network_add_input(net, "w", KILN_BFLOAT16, 3, (kiln_expr[]){C(4), C(3), C(3)}, &w));
    CHECK_OK(kiln_network_add_input(net, "b", KILN_BFLOAT16, 1, (kiln_expr[]){C(6)}, &b));
    kiln_layer_attr a[4] = {{.name = "group", .kind = KILN_ATTR_INT, .i = 2},
                            {.name = "strides", .kind = KILN_ATTR_INTS, .count = 1, .ints = (int64_t[]){2}},
                            {.name = "dilations", .kind = KILN_ATTR_INTS, .count = 1, .ints = (int64_t[]){2}},
                            {.name = "pads", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = (kiln_expr[]){C(1), C(-1)}}};
    /* [2, 3·2, 2·(5-1) + 2·(3-1) + 1 - 1 + 1 = 13] */
    CHECK_OK(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 3, (kiln_tensor[]){x, w, b}, 4, a, &y));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
    CHECK(dt == KILN_BFLOAT16 && rank == 3 && dims[0] == C(2) && dims[1] == C(6) && dims[2] == C(13));
    a[0].i = 3;
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 2, (kiln_tensor[]){x, w}, 4, a, &y),
                KILN_ERROR_INVALID_NETWORK, "conv_transpose of 'x' and 'w': group 3 must divide the input channels");
    a[0].i = 1;   /* 3 output channels, a bias of 6 */
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 3, (kiln_tensor[]){x, w, b}, 4, a, &y),
                KILN_ERROR_INVALID_NETWORK, "the bias length must equal the output channels (6 vs 3)");
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 2, (kiln_tensor[]){w, x}, 4, a, &y),
                KILN_ERROR_INVALID_NETWORK, "the weight's first axis must equal the input channels (2 vs 3)");
    a[3].exprs = (kiln_expr[]){C(7), C(7)};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 2, (kiln_tensor[]){x, w}, 4, a, &y),
                KILN_ERROR_INVALID_NETWORK, "the output size (after the pads) of spatial axis 0 is -1, not >= 1");
    a[3].exprs = (kiln_expr[]){C(0), C(-((int64_t)1 << 40))};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_CONV_TRANSPOSE, 2, (kiln_tensor[]){x, w}, 4, a, &y),
                KILN_ERROR_INVALID_NETWORK, "end pad of spatial axis 0 is -1099511627776, not in [-2147483647, "
                "2147483647]");
#undef C
    kiln_network_free(net);
}

/* RESIZE: sizes are the output shape; scales FLOATS (left out: out/in);
 * every enum, scale and size refused by name when out of range, at build
 * and at load. */
static kiln_blob *resize_engine(void) {
    kiln_network *net;
    if (kiln_network_create(&net) != KILN_OK) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_tensor x, y;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 4,
                           (kiln_expr[]){kiln_expr_const(p, 1), kiln_expr_const(p, 3), kiln_expr_const(p, 4),
                                         kiln_expr_const(p, 5)}, &x);
    kiln_expr sizes[4] = {kiln_expr_const(p, 1), kiln_expr_const(p, 3), kiln_expr_const(p, 6), kiln_expr_const(p, 3)};
    kiln_layer_attr a[4] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = 4, .exprs = sizes},
                            {.name = "mode", .kind = KILN_ATTR_INT, .i = KILN_RESIZE_CUBIC},
                            {.name = "exclude_outside", .kind = KILN_ATTR_INT, .i = 1},
                            {.name = "scales", .kind = KILN_ATTR_FLOATS, .count = 4,
                             .floats = (double[]){1, 1, 1.5, 0.6}}};
    kiln_status s = kiln_network_add_layer(net, KILN_LAYER_RESIZE, 1, &x, 4, a, &y);
    if (!s) s = kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (!s) kiln_network_build(net, NULL, &blob);
    kiln_network_free(net);
    return blob;
}

static kiln_status add_resize(kiln_network *net, kiln_tensor x, int32_t rank, const kiln_expr *sizes, int64_t mode,
                              const double *scales, kiln_tensor *y) {
    kiln_layer_attr a[3] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = rank, .exprs = sizes},
                            {.name = "mode", .kind = KILN_ATTR_INT, .i = mode},
                            {.name = "scales", .kind = KILN_ATTR_FLOATS, .count = rank, .floats = scales}};
    return kiln_network_add_layer(net, KILN_LAYER_RESIZE, 1, &x, scales ? 3 : 2, a, y);
}

static void test_resize_rule(void) {
    kiln_network *net;
    REQUIRE(kiln_network_create(&net) == KILN_OK);
    kiln_exprs *p = kiln_network_exprs(net);
#define C(v) kiln_expr_const(p, v)
    kiln_dim_range range = {0, 8, 40};
    kiln_expr h;
    kiln_network_add_dim(net, "h", &range, 1, &h);
    kiln_tensor x, xi, x0, y;
    CHECK_OK(kiln_network_add_input(net, "x", KILN_BFLOAT16, 2, (kiln_expr[]){C(2), h}, &x));
    CHECK_OK(kiln_network_add_input(net, "xi", KILN_INT32, 2, (kiln_expr[]){C(2), C(7)}, &xi));
    CHECK_OK(kiln_network_add_input(net, "x0", KILN_FLOAT32, 2, (kiln_expr[]){C(0), C(7)}, &x0));
    kiln_dtype dt;
    int32_t rank;
    kiln_expr dims[KILN_MAX_RANK];
    /* The output is the sizes, symbolic ones too. */
    kiln_expr h2 = kiln_expr_binary(p, KILN_EXPR_MUL, h, C(2));
    CHECK_OK(add_resize(net, x, 2, (kiln_expr[]){C(2), h2}, KILN_RESIZE_LINEAR, NULL, &y));
    CHECK_OK(kiln_network_tensor_info(net, y, &dt, &rank, dims));
    CHECK(dt == KILN_BFLOAT16 && rank == 2 && dims[0] == C(2) && dims[1] == h2);
    /* Nearest takes integers; interpolation does not. */
    CHECK_OK(add_resize(net, xi, 2, (kiln_expr[]){C(3), C(14)}, KILN_RESIZE_NEAREST, NULL, &y));
    CHECK_FAILS(add_resize(net, xi, 2, (kiln_expr[]){C(3), C(14)}, KILN_RESIZE_LINEAR, NULL, &y),
                KILN_ERROR_INVALID_NETWORK, "resize of 'xi': linear interpolation of dtype int32 is not supported");
    CHECK_FAILS(add_resize(net, x, 2, (kiln_expr[]){C(2), h}, 3, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "resize of 'x': mode 3 is not 0 nearest, 1 linear or 2 cubic");
    CHECK_FAILS(add_resize(net, x, 2, (kiln_expr[]){C(2), C(-1)}, 0, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "resize of 'x': size -1 of axis 1 is not in [0, 2147483647]");
    CHECK_FAILS(add_resize(net, x, 1, (kiln_expr[]){C(2)}, 0, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "resize of 'x' (rank 2): needs mode");
    CHECK_FAILS(add_resize(net, x, 2, (kiln_expr[]){C(2), h}, 0, (double[]){1, NAN}, &y), KILN_ERROR_INVALID_NETWORK,
                "resize of 'x': scale nan of axis 1 is not 0 (out/in) or in [2^-32, 2^32]");
    CHECK_FAILS(add_resize(net, x, 2, (kiln_expr[]){C(2), h}, 0, (double[]){1e300, 1}, &y),
                KILN_ERROR_INVALID_NETWORK, "scale 1e+300 of axis 0");
    CHECK_FAILS(add_resize(net, x0, 2, (kiln_expr[]){C(3), C(7)}, 0, NULL, &y), KILN_ERROR_INVALID_NETWORK,
                "resize of 'x0': axis 0 is empty and cannot be resized to 3");
    CHECK_OK(add_resize(net, x0, 2, (kiln_expr[]){C(0), C(9)}, 0, NULL, &y));
    /* FLOATS through the schema: a count without numbers, or integers for it, are refused by name. */
    kiln_layer_attr fa[2] = {{.name = "sizes", .kind = KILN_ATTR_EXPRS, .count = 2, .exprs = (kiln_expr[]){C(2), h}},
                             {.name = "scales", .kind = KILN_ATTR_FLOATS, .count = 2}};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RESIZE, 1, &x, 2, fa, &y), KILN_ERROR_INVALID_ARGUMENT,
                "resize: attribute 'scales' has count 2 and no values");
    fa[1].kind = KILN_ATTR_INTS;
    fa[1].ints = (int64_t[]){1, 2};
    CHECK_FAILS(kiln_network_add_layer(net, KILN_LAYER_RESIZE, 1, &x, 2, fa, &y), KILN_ERROR_INVALID_ARGUMENT,
                "attribute 'scales' must be FLOATS, not INTS");
#undef C
    kiln_network_free(net);

    /* At load: the stored attributes must be the rule's canonical ones. */
    kiln_blob *blob = resize_engine();
    REQUIRE(blob != NULL);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e));
    const char *kind = NULL, *detail = NULL;
    CHECK_OK(kiln_engine_layer_info(e, 0, &kind, &detail, NULL, NULL, NULL, NULL));
    CHECK(strcmp(kind, "resize") == 0);
    if (strcmp(detail, "cubic half_pixel a -0.75 exclude_outside sizes [1, 3, 6, 3] scales [1, 1, 1.5, 0.6]"))
        fprintf(stderr, "resize detail: %s\n", detail);
    CHECK(strcmp(detail, "cubic half_pixel a -0.75 exclude_outside sizes [1, 3, 6, 3] scales [1, 1, 1.5, 0.6]") == 0);
    kiln_engine_free(e);
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(kiln_blob_data(blob), kiln_blob_size(blob), 0, &d));
    kiln_layer_record *l = &d.layers[0];
    REQUIRE(l->op == KILN_OP_RESIZE && l->attrs.int_count == 9 && l->attrs.expr_count == 4);
    int64_t *v = l->attrs.ints;
    v[0] = 3;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "mode 3 is not 0 nearest");
    v[0] = KILN_RESIZE_CUBIC;
    v[1] = 5;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "coordinate_transformation_mode 5 is not");
    v[1] = -1;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "coordinate_transformation_mode -1 is not");
    v[1] = 0;
    v[2] = 4;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "nearest_mode 4 is not");
    v[2] = 0;
    v[3] = 2;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "exclude_outside 2 is not 0 or 1");
    v[3] = 1;
    const double nan = NAN, inf = INFINITY, neg = -2.0, ok = 0.6;
    int64_t keep = v[4];
    memcpy(&v[4], &nan, sizeof nan);
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "cubic_coeff_a nan is not a number");
    v[4] = keep;
    memcpy(&v[8], &inf, sizeof inf);
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "scale inf of axis 3");
    memcpy(&v[8], &neg, sizeof neg);
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "scale -2 of axis 3");
    memcpy(&v[8], &nan, sizeof nan);
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "scale nan of axis 3");
    memcpy(&v[8], &ok, sizeof ok);
    l->attrs.int_count = 5;   /* scales may be left out when adding, never in a file */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "not in the canonical");
    l->attrs.int_count = 8;
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "needs mode, coordinate_transformation_mode");
    l->attrs.int_count = 9;
    kiln_expr keep_size = l->attrs.exprs[2];
    l->attrs.exprs[2] = l->attrs.exprs[3];   /* valid, but the stored output is not the rule's */
    CHECK_FAILS(load_edited(&d), KILN_ERROR_CORRUPT, "the op's rule gives");
    l->attrs.exprs[2] = keep_size;
    CHECK_OK(load_edited(&d));
    kiln_engine_desc_clear(&d);
    kiln_blob_free(blob);
}

int main(void) {
    TEST_RUN(test_names_and_rows);
    TEST_RUN(test_cpu_covers_the_rules);
    TEST_RUN(test_table_refuses_engines);
    TEST_RUN(test_attribute_lists_are_checked_at_load);
    TEST_RUN(test_two_output_rule);
    TEST_RUN(test_pad_mode_at_load);
    TEST_RUN(test_scatter_rules);
    TEST_RUN(test_rotary_rules);
    TEST_RUN(test_conv_rule);
    TEST_RUN(test_conv_transpose_rule);
    TEST_RUN(test_pool_rule);
    TEST_RUN(test_resize_rule);
    return test_summary();
}
