/* format_sample.h — small but complete engine descs built by hand, shared by
 * tests/c/test_format.c and tests/fuzz/make_corpus.c (the fuzzer's seeds).
 *
 * sample_full:  y = reshape(matmul(plugin(relu(x + gather(emb, ids))), w)),
 *               y16 = cast(that matmul, float16); two dynamic dims (batch,
 *               seq), two profiles, one check — every op and record kind.
 * sample_minimal: y = relu(x) on a static shape, no dims, no plugin. */
#ifndef KILN_TEST_FORMAT_SAMPLE_H
#define KILN_TEST_FORMAT_SAMPLE_H

#include <string.h>

#include "core/alloc.h"
#include "engine/engine_desc.h"

enum {
    SAMPLE_X, SAMPLE_IDS, SAMPLE_EMB, SAMPLE_W, SAMPLE_G, SAMPLE_S, SAMPLE_R, SAMPLE_WS, SAMPLE_P, SAMPLE_M,
    SAMPLE_Y, SAMPLE_Y16, SAMPLE_TENSOR_COUNT
};
#define SAMPLE_LAYER_COUNT 7
#define SAMPLE_WEIGHTS_SIZE 1664   /* emb [10,16] f32 at 0, w [16,16] f32 at 640 */

static int sample_tensor(kiln_engine_desc *d, int index, const char *name, kiln_tensor_kind kind, kiln_dtype dtype,
                         int32_t rank, const kiln_expr *shape, uint64_t offset, uint64_t size) {
    kiln_tensor_record *t = &d->tensors[index];
    if (!(t->name = kiln_strdup(name))) return 0;
    t->kind = (uint8_t)kind;
    t->dtype = (uint8_t)dtype;
    t->rank = rank;
    for (int k = 0; k < KILN_MAX_RANK; k++) t->shape[k] = k < rank ? shape[k] : KILN_EXPR_INVALID;
    t->offset = offset;
    t->size = size;
    return 1;
}

static int sample_layer(kiln_engine_desc *d, int index, kiln_op op, int32_t subop, int64_t axis, int32_t input_count,
                        const int32_t *inputs, int32_t output_count, const int32_t *outputs, int32_t workspace) {
    kiln_layer_record *l = &d->layers[index];
    l->op = (uint8_t)op;
    l->subop = subop;
    l->axis = axis;
    l->workspace = workspace;
    l->inputs = kiln_malloc((size_t)input_count * sizeof(int32_t));
    l->outputs = kiln_malloc((size_t)output_count * sizeof(int32_t));
    if (!l->inputs || !l->outputs) return 0;
    memcpy(l->inputs, inputs, (size_t)input_count * sizeof(int32_t));
    memcpy(l->outputs, outputs, (size_t)output_count * sizeof(int32_t));
    l->input_count = input_count;
    l->output_count = output_count;
    return 1;
}

/* Fills *d (owning everything, weights included); 0 on allocation failure. */
static int sample_full(kiln_engine_desc *d) {
    memset(d, 0, sizeof *d);
    kiln_exprs *x = d->exprs = kiln_exprs_create();
    if (!x) return 0;
    kiln_expr batch = kiln_exprs_dim(x, 0), seq = kiln_exprs_dim(x, 1);
    kiln_expr c16 = kiln_expr_const(x, 16), c10 = kiln_expr_const(x, 10), c256 = kiln_expr_const(x, 256);
    kiln_expr rows = kiln_expr_binary(x, KILN_EXPR_MUL, batch, seq);
    kiln_expr seq_ok = kiln_expr_binary(x, KILN_EXPR_LT, seq, kiln_expr_const(x, 513));
    if (rows < 0 || seq_ok < 0 || c256 < 0 || kiln_exprs_name_dim(x, 0, "batch") || kiln_exprs_name_dim(x, 1, "seq"))
        return 0;

    static const kiln_dim_range batch_ranges[2] = {{1, 4, 16}, {16, 32, 64}};
    static const kiln_dim_range seq_ranges[2] = {{1, 8, 128}, {1, 64, 512}};
    d->profile_count = 2;
    if (!(d->dims = kiln_calloc(2, sizeof *d->dims))) return 0;
    d->dim_count = 2;
    const char *dim_names[2] = {"batch", "seq"};
    const kiln_dim_range *dim_ranges[2] = {batch_ranges, seq_ranges};
    for (int i = 0; i < 2; i++) {
        if (!(d->dims[i].name = kiln_strdup(dim_names[i]))) return 0;
        if (!(d->dims[i].ranges = kiln_malloc(2 * sizeof(kiln_dim_range)))) return 0;
        memcpy(d->dims[i].ranges, dim_ranges[i], 2 * sizeof(kiln_dim_range));
    }

    const uint64_t act = 64ull * 512 * 16 * 4;   /* [batch, seq, 16] f32 at the maxima */
    kiln_expr bsh[3] = {batch, seq, c16}, ids_shape[2] = {batch, seq}, emb_shape[2] = {c10, c16};
    kiln_expr w_shape[2] = {c16, c16}, ws_shape[1] = {c256}, y_shape[2] = {rows, c16};
    if (!(d->tensors = kiln_calloc(SAMPLE_TENSOR_COUNT, sizeof *d->tensors))) return 0;
    d->tensor_count = SAMPLE_TENSOR_COUNT;
    if (!sample_tensor(d, SAMPLE_X, "x", KILN_TENSOR_INPUT, KILN_FLOAT32, 3, bsh, 0, 0)
        || !sample_tensor(d, SAMPLE_IDS, "ids", KILN_TENSOR_INPUT, KILN_INT32, 2, ids_shape, 0, 0)
        || !sample_tensor(d, SAMPLE_EMB, "emb", KILN_TENSOR_CONSTANT, KILN_FLOAT32, 2, emb_shape, 0, 640)
        || !sample_tensor(d, SAMPLE_W, "w", KILN_TENSOR_CONSTANT, KILN_FLOAT32, 2, w_shape, 640, 1024)
        || !sample_tensor(d, SAMPLE_G, "g", KILN_TENSOR_ACTIVATION, KILN_FLOAT32, 3, bsh, 0, act)
        || !sample_tensor(d, SAMPLE_S, "s", KILN_TENSOR_ACTIVATION, KILN_FLOAT32, 3, bsh, act, act)
        || !sample_tensor(d, SAMPLE_R, "r", KILN_TENSOR_ACTIVATION, KILN_FLOAT32, 3, bsh, 0, act)
        || !sample_tensor(d, SAMPLE_WS, "ws", KILN_TENSOR_ACTIVATION, KILN_UINT8, 1, ws_shape, 2 * act, 256)
        || !sample_tensor(d, SAMPLE_P, "p", KILN_TENSOR_ACTIVATION, KILN_FLOAT32, 3, bsh, act, act)
        || !sample_tensor(d, SAMPLE_M, "m", KILN_TENSOR_ACTIVATION, KILN_FLOAT32, 3, bsh, 0, act)
        || !sample_tensor(d, SAMPLE_Y, "y", KILN_TENSOR_OUTPUT, KILN_FLOAT32, 2, y_shape, 0, 0)
        || !sample_tensor(d, SAMPLE_Y16, "y16", KILN_TENSOR_OUTPUT, KILN_FLOAT16, 3, bsh, 0, 0))
        return 0;
    d->arena_bytes = 2 * act + 256;

    if (!(d->layers = kiln_calloc(SAMPLE_LAYER_COUNT, sizeof *d->layers))) return 0;
    d->layer_count = SAMPLE_LAYER_COUNT;
    const int32_t g_in[2] = {SAMPLE_EMB, SAMPLE_IDS}, g_out[1] = {SAMPLE_G};
    const int32_t s_in[2] = {SAMPLE_X, SAMPLE_G}, s_out[1] = {SAMPLE_S};
    const int32_t r_in[1] = {SAMPLE_S}, r_out[1] = {SAMPLE_R};
    const int32_t p_in[1] = {SAMPLE_R}, p_out[1] = {SAMPLE_P};
    const int32_t m_in[2] = {SAMPLE_P, SAMPLE_W}, m_out[1] = {SAMPLE_M};
    const int32_t y_in[1] = {SAMPLE_M}, y_out[1] = {SAMPLE_Y}, y16_out[1] = {SAMPLE_Y16};
    if (!sample_layer(d, 0, KILN_OP_GATHER, 0, 0, 2, g_in, 1, g_out, -1)
        || !sample_layer(d, 1, KILN_OP_BINARY, KILN_BINARY_ADD, 0, 2, s_in, 1, s_out, -1)
        || !sample_layer(d, 2, KILN_OP_UNARY, KILN_UNARY_RELU, 0, 1, r_in, 1, r_out, -1)
        || !sample_layer(d, 3, KILN_OP_PLUGIN, 0, 0, 1, p_in, 1, p_out, SAMPLE_WS)
        || !sample_layer(d, 4, KILN_OP_MATMUL, 0, 0, 2, m_in, 1, m_out, -1)
        || !sample_layer(d, 5, KILN_OP_RESHAPE, 0, 0, 1, y_in, 1, y_out, -1)
        || !sample_layer(d, 6, KILN_OP_CAST, 0, 0, 1, y_in, 1, y16_out, -1))
        return 0;

    static const uint8_t fields[12] = {7, 1, 0, 0, 0, 5, 's', 'c', 'a', 'l', 'e', 0xff};
    if (!(d->plugins = kiln_calloc(1, sizeof *d->plugins))) return 0;
    d->plugin_count = 1;
    kiln_plugin_record *p = &d->plugins[0];
    if (!(p->plugin_namespace = kiln_strdup("kiln_test")) || !(p->name = kiln_strdup("scale"))
        || !(p->version = kiln_strdup("1")) || !(p->module = kiln_strdup("tests.plugins.scale"))
        || !(p->fields = kiln_malloc(sizeof fields)))
        return 0;
    memcpy(p->fields, fields, sizeof fields);
    p->fields_size = sizeof fields;
    p->flags = 6;

    if (!(d->checks = kiln_calloc(1, sizeof *d->checks))) return 0;
    d->check_count = 1;
    d->checks[0].cond = seq_ok;
    if (!(d->checks[0].message = kiln_strdup("seq must be at most 512"))) return 0;

    if (!(d->io = kiln_malloc(4 * sizeof *d->io))) return 0;
    d->io_count = 4;
    d->io[0] = SAMPLE_X; d->io[1] = SAMPLE_IDS; d->io[2] = SAMPLE_Y; d->io[3] = SAMPLE_Y16;

    uint8_t *weights = kiln_aligned_alloc(SAMPLE_WEIGHTS_SIZE);
    if (!weights) return 0;
    for (int i = 0; i < SAMPLE_WEIGHTS_SIZE; i++) weights[i] = (uint8_t)(i * 37 + 11);
    d->weights = weights;
    d->weights_size = SAMPLE_WEIGHTS_SIZE;
    d->weights_owned = 1;
    return 1;
}

static int sample_minimal(kiln_engine_desc *d) {
    memset(d, 0, sizeof *d);
    kiln_exprs *x = d->exprs = kiln_exprs_create();
    if (!x) return 0;
    kiln_expr shape[1] = {kiln_expr_const(x, 4)};
    d->profile_count = 1;
    if (!(d->tensors = kiln_calloc(2, sizeof *d->tensors))) return 0;
    d->tensor_count = 2;
    if (!sample_tensor(d, 0, "x", KILN_TENSOR_INPUT, KILN_FLOAT32, 1, shape, 0, 0)
        || !sample_tensor(d, 1, "y", KILN_TENSOR_OUTPUT, KILN_FLOAT32, 1, shape, 0, 0))
        return 0;
    if (!(d->layers = kiln_calloc(1, sizeof *d->layers))) return 0;
    d->layer_count = 1;
    const int32_t in[1] = {0}, out[1] = {1};
    if (!sample_layer(d, 0, KILN_OP_UNARY, KILN_UNARY_RELU, 0, 1, in, 1, out, -1)) return 0;
    if (!(d->io = kiln_malloc(2 * sizeof *d->io))) return 0;
    d->io_count = 2;
    d->io[0] = 0; d->io[1] = 1;
    return 1;
}

#endif
