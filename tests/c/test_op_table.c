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
    /* Every row but PLUGIN has a rule, one output, and an exact arity but CONCAT's. */
    for (int op = 0; op < KILN_OP_COUNT; op++) {
        const kiln_op_info *info = kiln_op_info_get(op);
        CHECK((op == KILN_OP_PLUGIN) == (info->infer == NULL));
        CHECK(op == KILN_OP_PLUGIN || info->output_count == 1);
        CHECK(op == KILN_OP_PLUGIN || op == KILN_OP_CONCAT || info->input_count >= 1);
    }
    CHECK(kiln_op_takes_inputs(KILN_OP_CONCAT, 1) && kiln_op_takes_inputs(KILN_OP_CONCAT, KILN_OP_MAX_INPUTS));
    CHECK(!kiln_op_takes_inputs(KILN_OP_CONCAT, 0) && !kiln_op_takes_inputs(KILN_OP_CONCAT, KILN_OP_MAX_INPUTS + 1));
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

int main(void) {
    TEST_RUN(test_names_and_rows);
    TEST_RUN(test_cpu_covers_the_rules);
    TEST_RUN(test_table_refuses_engines);
    return test_summary();
}
