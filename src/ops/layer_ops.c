/* layer_ops.c — the flat public ops (kiln_layer_op): their rows, names and
 * attribute schemas (see op_table.h).  Names are not written here: a flat op
 * is named by its sub-op (binary, unary) or its op, from ops/op_list.h. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"

_Static_assert(KILN_LAYER_OP_COUNT == 4 + KILN_BINARY_OP_COUNT + KILN_UNARY_OP_COUNT + 4 + KILN_REDUCE_OP_COUNT + 2 + 3 +
                                         KILN_COMPARE_OP_COUNT + 4 + KILN_COLLECTIVE_OP_COUNT + 2 + 2 + 1 + 1 + 2 + 2 + 1,
               "every kiln_layer_op needs a row: cast, the binary and unary sub-ops, gather, reshape, matmul, "
               "transpose, slice, concat, expand, the reductions, softmax and log-softmax, the norms, where, "
               "the comparisons, gather_elements, cumsum, pad, attention, the all-reduces, all_gather, "
               "reduce_scatter, scatter_nd, scatter_elements, topk, rotary_embedding, "
               "conv, conv_transpose, max_pool, avg_pool, resize");

#define BINARY_ROW(suffix, name) [KILN_LAYER_##suffix] = {KILN_OP_BINARY, KILN_BINARY_##suffix, 0, {{0}}},
#define UNARY_ROW(suffix, name)  [KILN_LAYER_##suffix] = {KILN_OP_UNARY, KILN_UNARY_##suffix, 0, {{0}}},
#define COMPARE_ROW(suffix, name) [KILN_LAYER_##suffix] = {KILN_OP_COMPARE, KILN_COMPARE_##suffix, 0, {{0}}},
#define ALL_REDUCE_ROW(suffix, name) \
    [KILN_LAYER_ALL_REDUCE_##suffix] = {KILN_OP_ALL_REDUCE, KILN_COLLECTIVE_##suffix, 0, {{0}}},

/* One schema entry (designated: a compiler may warn about omitted fields). */
#define ATTR(n, k, req, pl, di, df) \
    {.name = (n), .kind = (k), .required = (req), .place = (pl), .default_int = (di), .default_float = (df)}

/* Reductions: keepdims (default 1) first in the integer list, then the axes
 * (argmax/argmin: the one axis, default 0). */
#define REDUCE_ROW(flat, reduce, axes_name, axes_kind)                                              \
    [flat] = {KILN_OP_REDUCE, reduce, 2, {ATTR("keepdims", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 1, 0), \
                                          ATTR(axes_name, axes_kind, false, KILN_ATTR_TO_INTS, 0, 0)}},

static const kiln_layer_op_row rows[KILN_LAYER_OP_COUNT] = {
    [KILN_LAYER_CAST] = {KILN_OP_CAST, 0, 1, {ATTR("to", KILN_ATTR_DTYPE, true, KILN_ATTR_IN_OUTPUT_DTYPE, 0, 0)}},
    KILN_BINARY_OP_LIST(BINARY_ROW)
    KILN_UNARY_OP_LIST(UNARY_ROW)
    [KILN_LAYER_GATHER] = {KILN_OP_GATHER, 0, 1, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0)}},
    [KILN_LAYER_RESHAPE] = {KILN_OP_RESHAPE, 0, 1, {ATTR("shape", KILN_ATTR_EXPRS, true, KILN_ATTR_IN_OUTPUT_SHAPE, 0, 0)}},
    [KILN_LAYER_MATMUL] = {KILN_OP_MATMUL, 0, 2, {ATTR("transpose_a", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                                                  ATTR("transpose_b", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0)}},
    [KILN_LAYER_TRANSPOSE] = {KILN_OP_TRANSPOSE, 0, 1, {ATTR("perm", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0)}},
    [KILN_LAYER_SLICE] = {KILN_OP_SLICE, 0, 3, {ATTR("steps", KILN_ATTR_INTS, false, KILN_ATTR_TO_INTS, 0, 0),
                                                ATTR("starts", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0),
                                                ATTR("ends", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0)}},
    [KILN_LAYER_CONCAT] = {KILN_OP_CONCAT, 0, 1, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0)}},
    [KILN_LAYER_EXPAND] = {KILN_OP_EXPAND, 0, 1, {ATTR("shape", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0)}},
    REDUCE_ROW(KILN_LAYER_REDUCE_SUM, KILN_REDUCE_SUM, "axes", KILN_ATTR_INTS)
    REDUCE_ROW(KILN_LAYER_REDUCE_MEAN, KILN_REDUCE_MEAN, "axes", KILN_ATTR_INTS)
    REDUCE_ROW(KILN_LAYER_REDUCE_MAX, KILN_REDUCE_MAX, "axes", KILN_ATTR_INTS)
    REDUCE_ROW(KILN_LAYER_REDUCE_MIN, KILN_REDUCE_MIN, "axes", KILN_ATTR_INTS)
    REDUCE_ROW(KILN_LAYER_REDUCE_PROD, KILN_REDUCE_PROD, "axes", KILN_ATTR_INTS)
    REDUCE_ROW(KILN_LAYER_ARGMAX, KILN_REDUCE_ARGMAX, "axis", KILN_ATTR_INT)
    REDUCE_ROW(KILN_LAYER_ARGMIN, KILN_REDUCE_ARGMIN, "axis", KILN_ATTR_INT)
    [KILN_LAYER_SOFTMAX] = {KILN_OP_SOFTMAX, 0, 1, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, -1, 0)}},
    [KILN_LAYER_LOG_SOFTMAX] = {KILN_OP_SOFTMAX, 1, 1, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, -1, 0)}},
    [KILN_LAYER_LAYER_NORM] = {KILN_OP_LAYER_NORM, 0, 2, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, -1, 0),
                                                          ATTR("epsilon", KILN_ATTR_FLOAT, false, KILN_ATTR_TO_INTS, 0, 1e-5)}},
    [KILN_LAYER_RMS_NORM] = {KILN_OP_RMS_NORM, 0, 2, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, -1, 0),
                                                      ATTR("epsilon", KILN_ATTR_FLOAT, false, KILN_ATTR_TO_INTS, 0, 1e-6)}},
    [KILN_LAYER_WHERE] = {KILN_OP_WHERE, 0, 0, {{0}}},
    KILN_COMPARE_OP_LIST(COMPARE_ROW)
    [KILN_LAYER_GATHER_ELEMENTS] = {KILN_OP_GATHER_ELEMENTS, 0, 1,
                                    {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0)}},
    [KILN_LAYER_CUMSUM] = {KILN_OP_CUMSUM, 0, 3, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0),
                                                  ATTR("exclusive", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                                                  ATTR("reverse", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0)}},
    [KILN_LAYER_ATTENTION] = {KILN_OP_ATTENTION, 0, 2,
                              {ATTR("causal", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                               ATTR("scale", KILN_ATTR_FLOAT, false, KILN_ATTR_TO_INTS, 0, 0)}},
    [KILN_LAYER_PAD] = {KILN_OP_PAD, 0, 3, {ATTR("pads", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0),
                                            ATTR("value", KILN_ATTR_FLOAT, false, KILN_ATTR_TO_INTS, 0, 0),
                                            ATTR("mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0)}},
    KILN_COLLECTIVE_OP_LIST(ALL_REDUCE_ROW)
    [KILN_LAYER_ALL_GATHER] = {KILN_OP_ALL_GATHER, 0, 1, {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0)}},
    [KILN_LAYER_REDUCE_SCATTER] = {KILN_OP_REDUCE_SCATTER, KILN_COLLECTIVE_SUM, 1,
                                   {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0)}},
    [KILN_LAYER_SCATTER_ND] = {KILN_OP_SCATTER_ND, 0, 1,
                               {ATTR("reduction", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, KILN_SCATTER_NONE, 0)}},
    [KILN_LAYER_SCATTER_ELEMENTS] = {KILN_OP_SCATTER_ELEMENTS, 0, 2,
                                     {ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, 0, 0),
                                      ATTR("reduction", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, KILN_SCATTER_NONE, 0)}},
    [KILN_LAYER_TOPK] = {KILN_OP_TOPK, 0, 4, {ATTR("k", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0),
                                              ATTR("axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS, -1, 0),
                                              ATTR("largest", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 1, 0),
                                              ATTR("sorted", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 1, 0)}},
    /* ints: interleaved, rotary_embedding_dim, num_heads (every one always stored). */
    [KILN_LAYER_ROTARY_EMBEDDING] = {KILN_OP_ROTARY_EMBEDDING, 0, 3,
                                     {ATTR("interleaved", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                                      ATTR("rotary_embedding_dim", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                                      ATTR("num_heads", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0)}},
    /* ints: group, then strides and dilations (so both are required: an
     * absent one would leave the other's entries ambiguous); exprs: pads. */
    [KILN_LAYER_CONV] = {KILN_OP_CONV, 0, 4, {ATTR("group", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 1, 0),
                                              ATTR("strides", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                                              ATTR("dilations", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                                              ATTR("pads", KILN_ATTR_EXPRS, false, KILN_ATTR_TO_EXPRS, 0, 0)}},
    [KILN_LAYER_CONV_TRANSPOSE] = {KILN_OP_CONV_TRANSPOSE, 0, 4,
                                   {ATTR("group", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 1, 0),
                                    ATTR("strides", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                                    ATTR("dilations", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                                    ATTR("pads", KILN_ATTR_EXPRS, false, KILN_ATTR_TO_EXPRS, 0, 0)}},
    /* ints: ceil_mode, count_include_pad (max_pool has none: the rule
     * stores 0), then kernel_shape, strides and dilations (all three
     * required: an absent one would leave the others' entries ambiguous);
     * exprs: pads. */
    [KILN_LAYER_MAX_POOL] = {KILN_OP_POOL, KILN_POOL_MAX, 5,
                             {ATTR("ceil_mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("kernel_shape", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("strides", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("dilations", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("pads", KILN_ATTR_EXPRS, false, KILN_ATTR_TO_EXPRS, 0, 0)}},
    [KILN_LAYER_AVG_POOL] = {KILN_OP_POOL, KILN_POOL_AVERAGE, 6,
                             {ATTR("ceil_mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("count_include_pad", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("kernel_shape", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("strides", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("dilations", KILN_ATTR_INTS, true, KILN_ATTR_TO_INTS, 0, 0),
                              ATTR("pads", KILN_ATTR_EXPRS, false, KILN_ATTR_TO_EXPRS, 0, 0)}},
    /* ints: mode, coordinate transformation, nearest rounding,
     * exclude_outside, cubic_coeff_a's bits, then the scales' bits (the
     * rule puts in zeros, "out/in", when they are left out); exprs: the
     * output sizes. */
    [KILN_LAYER_RESIZE] = {KILN_OP_RESIZE, 0, 7,
                           {ATTR("sizes", KILN_ATTR_EXPRS, true, KILN_ATTR_TO_EXPRS, 0, 0),
                            ATTR("mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, KILN_RESIZE_NEAREST, 0),
                            ATTR("coordinate_transformation_mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS,
                                 KILN_RESIZE_HALF_PIXEL, 0),
                            ATTR("nearest_mode", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS,
                                 KILN_RESIZE_ROUND_PREFER_FLOOR, 0),
                            ATTR("exclude_outside", KILN_ATTR_INT, false, KILN_ATTR_TO_INTS, 0, 0),
                            ATTR("cubic_coeff_a", KILN_ATTR_FLOAT, false, KILN_ATTR_TO_INTS, 0, -0.75),
                            ATTR("scales", KILN_ATTR_FLOATS, false, KILN_ATTR_TO_INTS, 0, 0)}},
};

const kiln_layer_op_row *kiln_layer_op_row_get(int op) {
    return op >= 0 && op < KILN_LAYER_OP_COUNT ? &rows[op] : NULL;
}

int kiln_layer_op_of(int op, int32_t subop) {
    for (int i = 0; i < KILN_LAYER_OP_COUNT; i++)
        if ((int)rows[i].op == op && rows[i].subop == subop) return i;
    return -1;
}

const char *kiln_layer_op_name(kiln_layer_op op) {
    const kiln_layer_op_row *r = kiln_layer_op_row_get(op);
    if (!r) return NULL;
    if (r->op == KILN_OP_BINARY) return kiln_binary_op_name(r->subop);
    if (r->op == KILN_OP_UNARY) return kiln_unary_op_name(r->subop);
    if (r->op == KILN_OP_REDUCE) return kiln_reduce_op_name(r->subop);
    if (r->op == KILN_OP_COMPARE) return kiln_compare_op_name(r->subop);
    if (r->op == KILN_OP_SOFTMAX) return r->subop ? "log_softmax" : "softmax";
    if (r->op == KILN_OP_POOL) return r->subop == KILN_POOL_MAX ? "max_pool" : "avg_pool";
    if (r->op == KILN_OP_ALL_REDUCE) {
        static const char *const names[] = {
#define ALL_REDUCE_NAME(suffix, name) [KILN_COLLECTIVE_##suffix] = "all_reduce_" name,
            KILN_COLLECTIVE_OP_LIST(ALL_REDUCE_NAME)
#undef ALL_REDUCE_NAME
        };
        return r->subop >= 0 && r->subop < KILN_COLLECTIVE_OP_COUNT ? names[r->subop] : "?";
    }
    return kiln_op_name(r->op);
}

kiln_status kiln_layer_op_from_name(const char *name, kiln_layer_op *out) {
    if (!name || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_layer_op_from_name: NULL argument");
    for (int i = 0; i < KILN_LAYER_OP_COUNT; i++)
        if (strcmp(kiln_layer_op_name((kiln_layer_op)i), name) == 0) {
            *out = (kiln_layer_op)i;
            return KILN_OK;
        }
    return kiln_error(KILN_ERROR_NOT_FOUND, "no built-in op named '%s'", name);
}

kiln_status kiln_layer_op_info(kiln_layer_op op, int32_t *input_count, int32_t *attr_count) {
    const kiln_layer_op_row *r = kiln_layer_op_row_get(op);
    if (!r) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_layer_op_info: unknown op %d", (int)op);
    if (input_count) *input_count = kiln_op_info_get(r->op)->input_count;
    if (attr_count) *attr_count = r->attr_count;
    return KILN_OK;
}

kiln_status kiln_layer_op_outputs(kiln_layer_op op, int32_t *output_count) {
    const kiln_layer_op_row *r = kiln_layer_op_row_get(op);
    if (!r) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_layer_op_outputs: unknown op %d", (int)op);
    if (output_count) *output_count = kiln_op_info_get(r->op)->output_count;
    return KILN_OK;
}

kiln_status kiln_layer_op_attr(kiln_layer_op op, int32_t index, const char **name, kiln_attr_kind *kind,
                               int *required) {
    const kiln_layer_op_row *r = kiln_layer_op_row_get(op);
    if (!r) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_layer_op_attr: unknown op %d", (int)op);
    if (index < 0 || index >= r->attr_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_layer_op_attr: %s has %d attributes; %d is out of range",
                          kiln_layer_op_name(op), (int)r->attr_count, (int)index);
    if (name) *name = r->attrs[index].name;
    if (kind) *kind = r->attrs[index].kind;
    if (required) *required = r->attrs[index].required;
    return KILN_OK;
}

/* Append to out[*len...size). */
static void put(char *out, size_t size, size_t *len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void put(char *out, size_t size, size_t *len, const char *fmt, ...) {
    if (*len >= size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + *len, size - *len, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n;
}

static void put_ints(char *out, size_t size, size_t *len, const char *name, const int64_t *v, int32_t n) {
    put(out, size, len, "%s%s [", *len ? " " : "", name);
    for (int32_t i = 0; i < n; i++) put(out, size, len, "%s%lld", i ? ", " : "", (long long)v[i]);
    put(out, size, len, "]");
}

static void put_exprs(char *out, size_t size, size_t *len, const kiln_exprs *pool, const char *name,
                      const kiln_expr *v, int32_t n) {
    put(out, size, len, "%s%s [", *len ? " " : "", name);
    for (int32_t i = 0; i < n; i++) {
        char text[128];
        kiln_expr_format(pool, v[i], text, sizeof text);
        put(out, size, len, "%s%s", i ? ", " : "", text);
    }
    put(out, size, len, "]");
}

void kiln_layer_describe(const kiln_engine_desc *desc, const kiln_layer_record *layer, char *out, size_t size) {
    if (!size) return;
    out[0] = '\0';
    int flat = kiln_layer_op_of(layer->op, kiln_op_has_subop(layer->op) ? layer->subop : 0);
    const kiln_layer_op_row *r = kiln_layer_op_row_get(flat);
    if (!r) return;
    size_t len = 0;
    const kiln_layer_attrs *a = &layer->attrs;
    if (r->op == KILN_OP_BINARY || r->op == KILN_OP_UNARY || r->op == KILN_OP_REDUCE || r->op == KILN_OP_SOFTMAX ||
        r->op == KILN_OP_COMPARE || r->op == KILN_OP_POOL)
        put(out, size, &len, "%s", kiln_layer_op_name((kiln_layer_op)flat));
    switch (r->op) {
    case KILN_OP_TRANSPOSE:
        put_ints(out, size, &len, "perm", a->ints, a->int_count);
        return;
    case KILN_OP_MATMUL:   /* the flags when any is set (an empty list: none) */
        if (a->int_count == 2)
            put(out, size, &len, "transpose_a %lld transpose_b %lld", (long long)a->ints[0], (long long)a->ints[1]);
        return;
    case KILN_OP_SLICE:
        put_exprs(out, size, &len, desc->exprs, "starts", a->exprs, a->expr_count / 2);
        put_exprs(out, size, &len, desc->exprs, "ends", a->exprs + a->expr_count / 2, a->expr_count / 2);
        put_ints(out, size, &len, "steps", a->ints, a->int_count);
        return;
    case KILN_OP_REDUCE:
        if (a->int_count >= 1) {
            put_ints(out, size, &len, "axes", a->ints + 1, a->int_count - 1);
            put(out, size, &len, " keepdims %lld", (long long)a->ints[0]);
        }
        return;
    case KILN_OP_LAYER_NORM:
    case KILN_OP_RMS_NORM:
        if (a->int_count == 1) {
            double eps;
            memcpy(&eps, &a->ints[0], sizeof eps);
            put(out, size, &len, "axis %lld epsilon %g", (long long)layer->axis, eps);
        }
        return;
    case KILN_OP_SOFTMAX:
        put(out, size, &len, " axis %lld", (long long)layer->axis);
        return;
    case KILN_OP_TOPK:   /* "k [n] axis 1 largest 1 sorted 1" */
        if (a->int_count == 2 && a->expr_count == 1) {
            put_exprs(out, size, &len, desc->exprs, "k", a->exprs, 1);
            put(out, size, &len, " axis %lld largest %lld sorted %lld", (long long)layer->axis, (long long)a->ints[0],
                (long long)a->ints[1]);
        }
        return;
    case KILN_OP_CONV:
    case KILN_OP_CONV_TRANSPOSE:   /* "group 1 strides [1, 1] dilations [1, 1] pads [0, 0, 0, 0]" */
        if (a->int_count >= 1 && a->int_count % 2 == 1) {
            int32_t k = (a->int_count - 1) / 2;
            put(out, size, &len, "group %lld", (long long)a->ints[0]);
            put_ints(out, size, &len, "strides", a->ints + 1, k);
            put_ints(out, size, &len, "dilations", a->ints + 1 + k, k);
            put_exprs(out, size, &len, desc->exprs, "pads", a->exprs, a->expr_count);
        }
        return;
    case KILN_OP_POOL:   /* "max_pool kernel [3, 3] strides [2, 2] dilations [1, 1] pads [1, 1, 1, 1] ceil_mode 0" */
        if (a->int_count >= 2 && (a->int_count - 2) % 3 == 0) {
            int32_t k = (a->int_count - 2) / 3;
            put_ints(out, size, &len, "kernel", a->ints + 2, k);
            put_ints(out, size, &len, "strides", a->ints + 2 + k, k);
            put_ints(out, size, &len, "dilations", a->ints + 2 + 2 * k, k);
            put_exprs(out, size, &len, desc->exprs, "pads", a->exprs, a->expr_count);
            put(out, size, &len, " ceil_mode %lld", (long long)a->ints[0]);
            if (layer->subop == KILN_POOL_AVERAGE)
                put(out, size, &len, " count_include_pad %lld", (long long)a->ints[1]);
        }
        return;
    case KILN_OP_RESIZE:   /* "nearest half_pixel round_prefer_floor sizes [1, 3, 2*H, 2*W] scales [1, 1, 2, 2]" */
        if (a->int_count >= 5) {
            static const char *const modes[KILN_RESIZE_MODE_COUNT] = {"nearest", "linear", "cubic"};
            static const char *const coords[KILN_RESIZE_COORD_COUNT] = {
                "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"};
            static const char *const nearest[KILN_RESIZE_NEAREST_COUNT] = {
                "round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
            const int64_t *v = a->ints;
            put(out, size, &len, "%s %s", v[0] >= 0 && v[0] < KILN_RESIZE_MODE_COUNT ? modes[v[0]] : "?",
                v[1] >= 0 && v[1] < KILN_RESIZE_COORD_COUNT ? coords[v[1]] : "?");
            if (v[0] == KILN_RESIZE_NEAREST)
                put(out, size, &len, " %s", v[2] >= 0 && v[2] < KILN_RESIZE_NEAREST_COUNT ? nearest[v[2]] : "?");
            if (v[0] == KILN_RESIZE_CUBIC) {
                double ca;
                memcpy(&ca, &v[4], sizeof ca);
                put(out, size, &len, " a %g%s", ca, v[3] ? " exclude_outside" : "");
            } else if (v[3]) {
                put(out, size, &len, " exclude_outside");
            }
            put_exprs(out, size, &len, desc->exprs, "sizes", a->exprs, a->expr_count);
            put(out, size, &len, " scales [");
            for (int32_t i = 5; i < a->int_count; i++) {
                double sc;
                memcpy(&sc, &v[i], sizeof sc);
                if (sc == 0) put(out, size, &len, "%sout/in", i > 5 ? ", " : "");
                else put(out, size, &len, "%s%g", i > 5 ? ", " : "", sc);
            }
            put(out, size, &len, "]");
        }
        return;
    case KILN_OP_PAD: {   /* ints: the value's bits, then the mode (absent in older engines: constant) */
        static const char *const modes[KILN_PAD_MODE_COUNT] = {"constant", "edge", "reflect", "wrap"};
        int64_t mode = a->int_count >= 2 ? a->ints[1] : (int64_t)KILN_PAD_CONSTANT;
        put_exprs(out, size, &len, desc->exprs, "pads", a->exprs, a->expr_count);
        put(out, size, &len, " mode %s", mode >= 0 && mode < KILN_PAD_MODE_COUNT ? modes[mode] : "?");
        if (mode == KILN_PAD_CONSTANT && a->int_count >= 1) {
            double value;
            memcpy(&value, &a->ints[0], sizeof value);
            put(out, size, &len, " value %g", value);
        }
        return;
    }
    case KILN_OP_ALL_REDUCE:
    case KILN_OP_ALL_GATHER:
    case KILN_OP_REDUCE_SCATTER: {
        /* The reduction, the axis, and the group: "sum axis 1 rank 0 of 2". */
        int32_t world = desc->parallel.world_size ? desc->parallel.world_size : 1;
        if (r->op != KILN_OP_ALL_GATHER) put(out, size, &len, "%s", kiln_collective_op_name(layer->subop));
        if (r->op != KILN_OP_ALL_REDUCE) put(out, size, &len, "%saxis %lld", len ? " " : "", (long long)layer->axis);
        put(out, size, &len, " rank %d of %d", (int)desc->parallel.rank, (int)world);
        return;
    }
    case KILN_OP_SCATTER_ND:
    case KILN_OP_SCATTER_ELEMENTS:
        if (r->op == KILN_OP_SCATTER_ELEMENTS) put(out, size, &len, "axis %lld", (long long)layer->axis);
        if (a->int_count == 1)
            put(out, size, &len, "%sreduction %s", len ? " " : "", kiln_scatter_reduction_list_name((int)a->ints[0]));
        return;
    case KILN_OP_ROTARY_EMBEDDING:   /* "interleaved 0 rotary_embedding_dim 0 num_heads 8", the schema's names */
        for (int32_t k = 0; k < r->attr_count && k < a->int_count; k++)
            put(out, size, &len, "%s%s %lld", k ? " " : "", r->attrs[k].name, (long long)a->ints[k]);
        return;
    case KILN_OP_BINARY:
    case KILN_OP_UNARY:
    case KILN_OP_COMPARE:
        return;
    default:
        break;
    }
    for (int32_t k = 0; k < r->attr_count; k++) {
        const kiln_attr_schema *s = &r->attrs[k];
        if (s->place == KILN_ATTR_IN_AXIS)
            put(out, size, &len, "%s%s %lld", len ? " " : "", s->name, (long long)layer->axis);
        else if (s->place == KILN_ATTR_IN_OUTPUT_DTYPE)
            put(out, size, &len, "%s%s %s", len ? " " : "", s->name,
                kiln_dtype_name((kiln_dtype)desc->tensors[layer->outputs[0]].dtype));
        else if (s->place == KILN_ATTR_TO_EXPRS)
            put_exprs(out, size, &len, desc->exprs, s->name, a->exprs, a->expr_count);
    }
}
