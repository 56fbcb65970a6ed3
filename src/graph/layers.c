/* layers.c — adding built-in layers to a network.
 *
 * Each kiln_network_add_<op> checks what only the API can get wrong (tensor
 * handles, enum values, argument ranges) and hands the rest to the op's row
 * in the op table (ops/op_table.c): its rule gives the output's dtype and
 * symbolic shape, and the conditions it reports become the network's check
 * records.  The engine reader runs the same rule again on every loaded
 * engine, so what is built here is what a loaded engine is held to. */
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "graph/network_impl.h"
#include "ops/op_table.h"

static kiln_status add_network_check(void *user, kiln_expr cond, const char *message) {
    return kiln_net_add_check(user, cond, "%s", message);
}

/* The layer's attributes; the inputs and the sink are filled by add_builtin. */
typedef struct builtin_layer {
    kiln_op                op;
    int32_t                subop;
    int64_t                axis;
    kiln_dtype             to;
    const kiln_shape_expr *target;
    kiln_layer_attrs       attrs;
} builtin_layer;

/* outs receives the op's outputs: output_count, which must be its row's count. */
static kiln_status add_builtin_outputs(kiln_network *net, const char *api, builtin_layer layer, int32_t input_count,
                                       const kiln_tensor *inputs, int32_t output_count, kiln_tensor *outs) {
    if (!outs) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: out is NULL", api);
    const kiln_op_info *info = kiln_op_info_get(layer.op);
    if (output_count != info->output_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s gives %d outputs, not %d%s", api,
                          kiln_op_name(layer.op), (int)info->output_count, (int)output_count,
                          output_count == 1 ? " (add it with kiln_network_add_layer_outputs)" : "");
    if (!kiln_op_takes_inputs(layer.op, input_count) || (input_count && !inputs))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s cannot take %d inputs", api, kiln_op_name(layer.op),
                          (int)input_count);
    kiln_dtype dtypes[KILN_OP_MAX_INPUTS];
    kiln_shape_expr shapes[KILN_OP_MAX_INPUTS];
    const char *labels[KILN_OP_MAX_INPUTS];
    for (int32_t i = 0; i < input_count; i++) {
        kiln_net_tensor *t = NULL;
        kiln_status s = kiln_net_tensor_get(net, inputs[i], api, &t);
        if (s) return s;
        /* Copies: the tensor array may move while the layer is added. */
        dtypes[i] = t->dtype;
        shapes[i].rank = t->rank;
        memcpy(shapes[i].dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
        labels[i] = kiln_net_tensor_label(net, inputs[i]);
    }
    kiln_op_call call = {.pool = net->exprs, .subop = layer.subop, .axis = layer.axis, .attrs = &layer.attrs,
                         .to = layer.to, .target = layer.target, .world_size = net->world_size,
                         .input_count = input_count, .dtypes = dtypes,
                         .shapes = shapes, .labels = labels, .checks = {add_network_check, net}};
    kiln_dtype out_dtypes[KILN_OP_MAX_OUTPUTS];
    kiln_shape_expr out_shapes[KILN_OP_MAX_OUTPUTS];
    kiln_status s = info->infer(&call, out_dtypes, out_shapes);
    if (s) return s;
    /* The stored shapes are the simplified ones (the reader accepts them). */
    for (int32_t o = 0; o < output_count; o++)
        for (int32_t a = 0; a < out_shapes[o].rank; a++)
            out_shapes[o].dims[a] = kiln_expr_simplify(net->exprs, out_shapes[o].dims[a]);
    /* Stored axes are normalized (the rule has checked the range). */
    int64_t axis = info->has_axis && layer.axis < 0 ? layer.axis + shapes[0].rank : layer.axis;
    s = kiln_net_add_layer(net, layer.op, layer.subop, axis, &layer.attrs, input_count, inputs, output_count,
                           out_dtypes, out_shapes, outs);
    if (!s && kiln_op_is_collective(layer.op)) net->collective_layers++;
    return s;
}

static kiln_status add_builtin(kiln_network *net, const char *api, builtin_layer layer, int32_t input_count,
                               const kiln_tensor *inputs, kiln_tensor *out) {
    return add_builtin_outputs(net, api, layer, input_count, inputs, 1, out);
}

kiln_status kiln_network_add_cast(kiln_network *net, kiln_tensor x, kiln_dtype dtype, kiln_tensor *out) {
    builtin_layer l = {.op = KILN_OP_CAST, .to = dtype};
    return add_builtin(net, "kiln_network_add_cast", l, 1, &x, out);
}

kiln_status kiln_network_add_binary(kiln_network *net, kiln_binary_op op, kiln_tensor a, kiln_tensor b,
                                    kiln_tensor *out) {
    if ((unsigned)op >= KILN_BINARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_binary: unknown op %d", (int)op);
    builtin_layer l = {.op = KILN_OP_BINARY, .subop = op};
    kiln_tensor ins[2] = {a, b};
    return add_builtin(net, "kiln_network_add_binary", l, 2, ins, out);
}

kiln_status kiln_network_add_unary(kiln_network *net, kiln_unary_op op, kiln_tensor x, kiln_tensor *out) {
    if ((unsigned)op >= KILN_UNARY_OP_COUNT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_unary: unknown op %d", (int)op);
    builtin_layer l = {.op = KILN_OP_UNARY, .subop = op};
    return add_builtin(net, "kiln_network_add_unary", l, 1, &x, out);
}

kiln_status kiln_network_add_gather(kiln_network *net, kiln_tensor data, kiln_tensor indices, int32_t axis,
                                    kiln_tensor *out) {
    builtin_layer l = {.op = KILN_OP_GATHER, .axis = axis};
    kiln_tensor ins[2] = {data, indices};
    return add_builtin(net, "kiln_network_add_gather", l, 2, ins, out);
}

kiln_status kiln_network_add_reshape(kiln_network *net, kiln_tensor x, int32_t rank, const kiln_expr *shape,
                                     kiln_tensor *out) {
    kiln_net_tensor *t = NULL;
    kiln_status s = kiln_net_tensor_get(net, x, "kiln_network_add_reshape", &t);
    if (s) return s;
    if (rank < 0 || rank > KILN_MAX_RANK || (rank && !shape))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "reshape of '%s': rank %d is outside [0, %d]",
                          kiln_net_tensor_label(net, x), rank, KILN_MAX_RANK);
    kiln_shape_expr target = {.rank = rank};
    if (rank) memcpy(target.dims, shape, sizeof(kiln_expr) * (size_t)rank);
    builtin_layer l = {.op = KILN_OP_RESHAPE, .target = &target};
    return add_builtin(net, "kiln_network_add_reshape", l, 1, &x, out);
}

kiln_status kiln_network_add_matmul(kiln_network *net, kiln_tensor a, kiln_tensor b, kiln_tensor *out) {
    builtin_layer l = {.op = KILN_OP_MATMUL};
    kiln_tensor ins[2] = {a, b};
    return add_builtin(net, "kiln_network_add_matmul", l, 2, ins, out);
}

/* The flags go to the rule as given: it refuses values other than 0 and 1,
 * naming the flag, and stores (0, 0) as the plain matmul's empty list. */
kiln_status kiln_network_add_matmul_transposed(kiln_network *net, kiln_tensor a, kiln_tensor b, int transpose_a,
                                               int transpose_b, kiln_tensor *out) {
    builtin_layer l = {.op = KILN_OP_MATMUL, .attrs = {.int_count = 2, .ints = {transpose_a, transpose_b}}};
    kiln_tensor ins[2] = {a, b};
    return add_builtin(net, "kiln_network_add_matmul_transposed", l, 2, ins, out);
}

/* ---- any built-in layer by its flat op ------------------------------------ */

/* The attribute of the schema named `name`, or -1. */
static int32_t schema_index(const kiln_layer_op_row *row, const char *name) {
    for (int32_t i = 0; i < row->attr_count; i++)
        if (strcmp(row->attrs[i].name, name) == 0) return i;
    return -1;
}

static const char *attr_kind_name(kiln_attr_kind kind) {
    switch (kind) {
    case KILN_ATTR_INT: return "INT";
    case KILN_ATTR_DTYPE: return "DTYPE";
    case KILN_ATTR_EXPRS: return "EXPRS";
    case KILN_ATTR_INTS: return "INTS";
    case KILN_ATTR_FLOAT: return "FLOAT";
    case KILN_ATTR_FLOATS: return "FLOATS";
    }
    return "?";
}

static kiln_status add_layer(kiln_network *net, const char *api, kiln_layer_op op, int32_t input_count,
                             const kiln_tensor *inputs, int32_t attr_count, const kiln_layer_attr *attrs,
                             int32_t output_count, kiln_tensor *outs) {
    const kiln_layer_op_row *row = kiln_layer_op_row_get(op);
    if (!row) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: unknown op %d", api, (int)op);
    const char *name = kiln_layer_op_name(op);
    int32_t arity = kiln_op_info_get(row->op)->input_count;
    if (!kiln_op_takes_inputs(row->op, input_count) || (input_count && !inputs)) {
        if (arity < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s takes 1 to %d inputs, got %d", api, name,
                              KILN_OP_MAX_INPUTS, (int)(inputs || !input_count ? input_count : 0));
        if (row->op == KILN_OP_ROTARY_EMBEDDING)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s takes 3 or 4 inputs (x, cos_cache, sin_cache, "
                              "optional position_ids), got %d", api, name,
                              (int)(inputs || !input_count ? input_count : 0));
        if (row->op == KILN_OP_CONV || row->op == KILN_OP_CONV_TRANSPOSE)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s takes 2 or 3 inputs (x, w, optional bias), got %d",
                              api, name, (int)(inputs || !input_count ? input_count : 0));
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s takes %d inputs, got %d", api, name, (int)arity,
                          (int)(inputs || !input_count ? input_count : 0));
    }
    if (attr_count < 0 || (attr_count && !attrs))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attr_count %d without attributes", api, name,
                          (int)attr_count);
    /* Each attribute once, named by the schema, of the schema's kind. */
    const kiln_layer_attr *given[KILN_MAX_LAYER_ATTRS] = {0};
    for (int32_t i = 0; i < attr_count; i++) {
        const kiln_layer_attr *a = &attrs[i];
        int32_t k = a->name ? schema_index(row, a->name) : -1;
        if (k < 0) {
            char takes[128] = "";
            for (int32_t j = 0; j < row->attr_count; j++)
                snprintf(takes + strlen(takes), sizeof takes - strlen(takes), "%s'%s'", j ? ", " : "",
                         row->attrs[j].name);
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s has no attribute '%s' (it takes %s)", api, name,
                              a->name ? a->name : "(null)", row->attr_count ? takes : "none");
        }
        if (given[k])
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' is given twice", api, name, a->name);
        if (a->kind != row->attrs[k].kind)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' must be %s, not %s", api, name,
                              a->name, attr_kind_name(row->attrs[k].kind), attr_kind_name(a->kind));
        given[k] = a;
    }
    for (int32_t k = 0; k < row->attr_count; k++)
        if (row->attrs[k].required && !given[k])
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s needs attribute '%s'", api, name,
                              row->attrs[k].name);
    /* The schema's attributes, onto the rule's call, in schema order. */
    builtin_layer l = {.op = row->op, .subop = row->subop};
    kiln_shape_expr target = {0};
    kiln_layer_attrs *la = &l.attrs;
    for (int32_t k = 0; k < row->attr_count; k++) {
        const kiln_attr_schema *schema = &row->attrs[k];
        const kiln_layer_attr *a = given[k];
        const char *attr = schema->name;
        const bool is_list = schema->kind == KILN_ATTR_INTS || schema->kind == KILN_ATTR_EXPRS ||
                             schema->kind == KILN_ATTR_FLOATS;
        int32_t count = a && is_list ? a->count : 0;
        if (count < 0 || (count && schema->kind == KILN_ATTR_INTS && !a->ints) ||
            (count && schema->kind == KILN_ATTR_EXPRS && !a->exprs) ||
            (count && schema->kind == KILN_ATTR_FLOATS && !a->floats))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' has count %d and no values", api,
                              name, attr, (int)count);
        switch (schema->place) {
        case KILN_ATTR_IN_OUTPUT_DTYPE:
            if (!a) break;
            if (a->i < 0 || a->i >= KILN_DTYPE_COUNT)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' is %lld, not a kiln_dtype", api,
                                  name, attr, (long long)a->i);
            l.to = (kiln_dtype)a->i;
            break;
        case KILN_ATTR_IN_AXIS:
            l.axis = a ? a->i : schema->default_int;
            break;
        case KILN_ATTR_IN_OUTPUT_SHAPE:
            if (!a) break;
            if (count > KILN_MAX_RANK)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' has %d entries; rank must be "
                                  "in [0, %d]", api, name, attr, (int)count, KILN_MAX_RANK);
            target.rank = count;
            if (count) memcpy(target.dims, a->exprs, sizeof(kiln_expr) * (size_t)count);
            l.target = &target;
            break;
        case KILN_ATTR_TO_INTS: {
            const bool many = schema->kind == KILN_ATTR_INTS || schema->kind == KILN_ATTR_FLOATS;
            int32_t n = many ? count : 1;
            if (many && !a) break;
            if (la->int_count + n > KILN_MAX_LAYER_INTS)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' has too many entries (%d)", api,
                                  name, attr, (int)n);
            if (schema->kind == KILN_ATTR_INTS) {
                memcpy(la->ints + la->int_count, a->ints, sizeof(int64_t) * (size_t)n);
            } else if (schema->kind == KILN_ATTR_FLOATS) {   /* each as its binary64 bits */
                memcpy(la->ints + la->int_count, a->floats, sizeof(double) * (size_t)n);
            } else if (schema->kind == KILN_ATTR_FLOAT) {
                double f = a ? a->f : schema->default_float;
                memcpy(&la->ints[la->int_count], &f, sizeof f);
            } else {
                la->ints[la->int_count] = a ? a->i : schema->default_int;
            }
            la->int_count += n;
            break;
        }
        case KILN_ATTR_TO_EXPRS:
            if (!a) break;
            if (la->expr_count + count > KILN_MAX_LAYER_EXPRS)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' has too many entries (%d)", api,
                                  name, attr, (int)count);
            for (int32_t i = 0; i < count; i++)
                if (!kiln_exprs_valid(net->exprs, a->exprs[i]))
                    return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: %s: attribute '%s' entry %d is not an "
                                      "expression of this network", api, name, attr, (int)i);
            memcpy(la->exprs + la->expr_count, a->exprs, sizeof(kiln_expr) * (size_t)count);
            la->expr_count += count;
            break;
        }
    }
    return add_builtin_outputs(net, api, l, input_count, inputs, output_count, outs);
}

kiln_status kiln_network_add_layer(kiln_network *net, kiln_layer_op op, int32_t input_count,
                                   const kiln_tensor *inputs, int32_t attr_count, const kiln_layer_attr *attrs,
                                   kiln_tensor *out) {
    return add_layer(net, "kiln_network_add_layer", op, input_count, inputs, attr_count, attrs, 1, out);
}

kiln_status kiln_network_add_layer_outputs(kiln_network *net, kiln_layer_op op, int32_t input_count,
                                           const kiln_tensor *inputs, int32_t attr_count,
                                           const kiln_layer_attr *attrs, int32_t output_count, kiln_tensor *outputs) {
    return add_layer(net, "kiln_network_add_layer_outputs", op, input_count, inputs, attr_count, attrs, output_count,
                     outputs);
}

kiln_status kiln_network_add_topk(kiln_network *net, kiln_tensor x, kiln_expr k, int32_t axis, int largest,
                                  int sorted, kiln_tensor *values, kiln_tensor *indices) {
    const char *api = "kiln_network_add_topk";
    if (!values || !indices) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: values or indices is NULL", api);
    if (!net) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: network is NULL", api);
    if (!kiln_exprs_valid(net->exprs, k))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: k is not an expression of this network", api);
    builtin_layer l = {.op = KILN_OP_TOPK, .axis = axis,
                       .attrs = {.int_count = 2, .ints = {largest != 0, sorted != 0}, .expr_count = 1, .exprs = {k}}};
    kiln_tensor outs[2];
    kiln_status s = add_builtin_outputs(net, api, l, 1, &x, 2, outs);
    if (!s) {
        *values = outs[0];
        *indices = outs[1];
    }
    return s;
}
