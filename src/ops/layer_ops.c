/* layer_ops.c — the flat public ops (kiln_layer_op): their rows, names and
 * attribute schemas (see op_table.h).  Names are not written here: a flat op
 * is named by its sub-op (binary, unary) or its op, from ops/op_list.h. */
#include <stdio.h>
#include <string.h>

#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_table.h"

_Static_assert(KILN_LAYER_OP_COUNT == 4 + KILN_BINARY_OP_COUNT + KILN_UNARY_OP_COUNT,
               "every kiln_layer_op needs a row: cast, the binary and unary sub-ops, gather, reshape, matmul");

#define BINARY_ROW(suffix, name) [KILN_LAYER_##suffix] = {KILN_OP_BINARY, KILN_BINARY_##suffix, 0, {{0}}},
#define UNARY_ROW(suffix, name)  [KILN_LAYER_##suffix] = {KILN_OP_UNARY, KILN_UNARY_##suffix, 0, {{0}}},

static const kiln_layer_op_row rows[KILN_LAYER_OP_COUNT] = {
    [KILN_LAYER_CAST] = {KILN_OP_CAST, 0, 1, {{"to", KILN_ATTR_DTYPE, true, KILN_ATTR_IN_OUTPUT_DTYPE}}},
    KILN_BINARY_OP_LIST(BINARY_ROW)
    KILN_UNARY_OP_LIST(UNARY_ROW)
    [KILN_LAYER_GATHER] = {KILN_OP_GATHER, 0, 1, {{"axis", KILN_ATTR_INT, false, KILN_ATTR_IN_AXIS}}},
    [KILN_LAYER_RESHAPE] = {KILN_OP_RESHAPE, 0, 1, {{"shape", KILN_ATTR_EXPRS, true, KILN_ATTR_IN_OUTPUT_SHAPE}}},
    [KILN_LAYER_MATMUL] = {KILN_OP_MATMUL, 0, 0, {{0}}},
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

void kiln_layer_describe(const kiln_engine_desc *desc, const kiln_layer_record *layer, char *out, size_t size) {
    if (!size) return;
    out[0] = '\0';
    int flat = kiln_layer_op_of(layer->op, layer->op == KILN_OP_BINARY || layer->op == KILN_OP_UNARY ? layer->subop : 0);
    const kiln_layer_op_row *r = kiln_layer_op_row_get(flat);
    if (!r) return;
    if (r->op == KILN_OP_BINARY || r->op == KILN_OP_UNARY) {
        snprintf(out, size, "%s", kiln_layer_op_name((kiln_layer_op)flat));
        return;
    }
    size_t len = 0;
    for (int32_t k = 0; k < r->attr_count && len < size; k++) {
        const kiln_attr_schema *a = &r->attrs[k];
        const char *sep = len ? " " : "";
        int n = 0;
        if (a->place == KILN_ATTR_IN_AXIS)
            n = snprintf(out + len, size - len, "%s%s %lld", sep, a->name, (long long)layer->axis);
        else if (a->place == KILN_ATTR_IN_OUTPUT_DTYPE)
            n = snprintf(out + len, size - len, "%s%s %s", sep, a->name,
                         kiln_dtype_name((kiln_dtype)desc->tensors[layer->outputs[0]].dtype));
        if (n > 0) len += (size_t)n;
    }
}
