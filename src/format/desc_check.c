/* desc_check.c — the meaning of an engine desc, checked so the runtime need not.
 *
 * The byte reader proves the file is well formed; this proves the desc it
 * produced makes sense: every index points at something of the right kind,
 * every dtype, op and expression exists, constants lie inside the weights
 * and activations inside the arena, and each op gets the arity and dtypes
 * its kernels assume.  After this, the runtime can index arrays with values
 * from the desc without checking them again.  Every failure is
 * KILN_ERROR_CORRUPT and names the record at fault. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "format/engine_format.h"
#include "format/unique_names.h"
#include "ops/op_table.h"

#define CORRUPT(...) kiln_error(KILN_ERROR_CORRUPT, __VA_ARGS__)

static const char *const kind_names[] = {"input", "output", "constant", "activation"};
#define KIND_COUNT 4


static kiln_status no_memory(void) {
    return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking the engine");
}

/* Report the first repeated name among count records (name at name_of(i)). */
static kiln_status check_unique(const char *what, int32_t count, const char *(*name_of)(const kiln_engine_desc *, int32_t),
                                const kiln_engine_desc *d) {
    if (count < 2) return KILN_OK;
    const char **names = kiln_malloc((size_t)count * sizeof *names);
    if (!names) return no_memory();
    for (int32_t i = 0; i < count; i++) names[i] = name_of(d, i);
    int32_t a = 0, b = 0;
    int found = kiln_names_find_duplicate(names, count, &a, &b);
    kiln_free(names);
    if (found < 0) return no_memory();
    if (found) return CORRUPT("%s %d and %s %d have the same name '%s'", what, a, what, b, name_of(d, a));
    return KILN_OK;
}

static const char *dim_name(const kiln_engine_desc *d, int32_t i) { return d->dims[i].name; }
static const char *tensor_name(const kiln_engine_desc *d, int32_t i) { return d->tensors[i].name; }

static kiln_status check_counts(const kiln_engine_desc *d) {
    if (!d->exprs) return CORRUPT("engine has no expression program");
    struct { const char *what; int32_t count; const void *array; } counts[] = {
        {"dims", d->dim_count, d->dims},         {"tensors", d->tensor_count, d->tensors},
        {"layers", d->layer_count, d->layers},   {"plugins", d->plugin_count, d->plugins},
        {"checks", d->check_count, d->checks},   {"io entries", d->io_count, d->io},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        if (counts[i].count < 0 || (counts[i].count > 0 && !counts[i].array))
            return CORRUPT("engine has %d %s", counts[i].count, counts[i].what);
    if (d->profile_count < 0 || (d->dim_count > 0 && d->profile_count < 1))
        return CORRUPT("engine has %d dims but %d optimization profiles", d->dim_count, d->profile_count);
    if (d->weights_size && !d->weights) return CORRUPT("engine has weights of %" PRIu64 " bytes but no data",
                                                      d->weights_size);
    return KILN_OK;
}

static kiln_status check_dims(const kiln_engine_desc *d) {
    for (int32_t i = 0; i < d->dim_count; i++) {
        const kiln_dim_record *dim = &d->dims[i];
        if (!dim->name || !dim->name[0]) return CORRUPT("dim %d has no name", i);
        if (!dim->ranges) return CORRUPT("dim %d '%s' has no ranges", i, dim->name);
        for (int32_t p = 0; p < d->profile_count; p++) {
            kiln_dim_range rg = dim->ranges[p];
            if (rg.min < 0 || rg.min > rg.opt || rg.opt > rg.max)
                return CORRUPT("dim %d '%s' profile %d range (min %" PRId64 ", opt %" PRId64 ", max %" PRId64
                               ") is not 0 <= min <= opt <= max", i, dim->name, p, rg.min, rg.opt, rg.max);
        }
    }
    if (kiln_exprs_max_dim(d->exprs) > d->dim_count)
        return CORRUPT("expression program refers to dim %d but there are %d dims", kiln_exprs_max_dim(d->exprs) - 1,
                       d->dim_count);
    return check_unique("dim", d->dim_count, dim_name, d);
}

static kiln_status bad_expr(const kiln_engine_desc *d, const char *what, kiln_expr e) {
    return CORRUPT("%s refers to expression %d but the expression program has %zu nodes", what, e, d->exprs->count);
}

/* A constant's byte size from its (constant) shape; 0 when it does not fit. */
static int constant_bytes(const kiln_engine_desc *d, const kiln_tensor_record *t, int32_t index, uint64_t *bytes,
                          kiln_status *st) {
    uint64_t n = kiln_dtype_size((kiln_dtype)t->dtype);
    for (int32_t k = 0; k < t->rank; k++) {
        int64_t v;
        if (!kiln_expr_is_const(d->exprs, t->shape[k], &v)) {
            *st = CORRUPT("constant tensor %d '%s' dimension %d is not a constant expression", index, t->name, k);
            return 0;
        }
        if (v < 0) {
            *st = CORRUPT("constant tensor %d '%s' dimension %d is %" PRId64, index, t->name, k, v);
            return 0;
        }
        if (__builtin_mul_overflow(n, (uint64_t)v, &n)) {
            *st = CORRUPT("constant tensor %d '%s' is larger than 2^64 bytes", index, t->name);
            return 0;
        }
    }
    *bytes = n;
    return 1;
}

static kiln_status check_tensors(const kiln_engine_desc *d) {
    kiln_status st;
    for (int32_t i = 0; i < d->tensor_count; i++) {
        const kiln_tensor_record *t = &d->tensors[i];
        if (!t->name || !t->name[0]) return CORRUPT("tensor %d has no name", i);
        if (t->kind >= KIND_COUNT) return CORRUPT("tensor %d '%s' has unknown kind %u", i, t->name, t->kind);
        if (t->dtype >= KILN_DTYPE_COUNT) return CORRUPT("tensor %d '%s' has unknown dtype %u", i, t->name, t->dtype);
        if (t->rank < 0 || t->rank > KILN_MAX_RANK)
            return CORRUPT("tensor %d '%s' rank %d is more than KILN_MAX_RANK (%d)", i, t->name, t->rank,
                           KILN_MAX_RANK);
        for (int32_t k = 0; k < t->rank; k++) {
            if (kiln_exprs_valid(d->exprs, t->shape[k])) continue;
            char what[128];
            snprintf(what, sizeof what, "tensor %d '%.64s' dimension %d", i, t->name, k);
            return bad_expr(d, what, t->shape[k]);
        }
        if (t->kind == KILN_TENSOR_INPUT) {
            /* The caller gives an input's size axis by axis; an entry that is
             * an expression (batch*4) would let the kernels' idea of the size
             * differ from the caller's buffer. */
            for (int32_t k = 0; k < t->rank; k++) {
                const kiln_expr_node *n = &d->exprs->nodes[t->shape[k]];
                if (n->op == KILN_EXPR_DIM || (n->op == KILN_EXPR_CONST && n->value >= 0)) continue;
                return CORRUPT("input tensor %d '%s' dimension %d is neither a constant size nor a named dimension", i,
                               t->name, k);
            }
        }
        if (t->kind == KILN_TENSOR_CONSTANT) {
            uint64_t bytes;
            if (!constant_bytes(d, t, i, &bytes, &st)) return st;
            if (t->size != bytes)
                return CORRUPT("constant tensor %d '%s' has size %" PRIu64 " but its shape and dtype need %" PRIu64,
                               i, t->name, t->size, bytes);
            if (t->offset % KILN_FORMAT_WEIGHT_ALIGNMENT != 0)
                return CORRUPT("constant tensor %d '%s' weights offset %" PRIu64 " is not %u-byte aligned", i,
                               t->name, t->offset, KILN_FORMAT_WEIGHT_ALIGNMENT);
            if (t->offset > d->weights_size || t->size > d->weights_size - t->offset)
                return CORRUPT("constant tensor %d '%s' bytes [%" PRIu64 ", +%" PRIu64 ") lie outside the %" PRIu64
                               "-byte weights section", i, t->name, t->offset, t->size, d->weights_size);
        } else if (t->kind == KILN_TENSOR_ACTIVATION) {
            if (t->offset % KILN_FORMAT_ARENA_ALIGNMENT != 0)
                return CORRUPT("activation tensor %d '%s' arena offset %" PRIu64 " is not %u-byte aligned", i,
                               t->name, t->offset, KILN_FORMAT_ARENA_ALIGNMENT);
            if (t->offset > d->arena_bytes || t->size > d->arena_bytes - t->offset)
                return CORRUPT("activation tensor %d '%s' bytes [%" PRIu64 ", +%" PRIu64 ") lie outside the %" PRIu64
                               "-byte activation arena", i, t->name, t->offset, t->size, d->arena_bytes);
        }
    }
    return check_unique("tensor", d->tensor_count, tensor_name, d);
}

static kiln_status check_plugins(const kiln_engine_desc *d) {
    for (int32_t i = 0; i < d->plugin_count; i++) {
        const kiln_plugin_record *p = &d->plugins[i];
        if (!p->plugin_namespace || !p->version || !p->module)
            return CORRUPT("plugin %d is missing its namespace, version or module", i);
        if (!p->name || !p->name[0]) return CORRUPT("plugin %d has no name", i);
        if (p->fields_size && !p->fields) return CORRUPT("plugin %d '%s' has no fields data", i, p->name);
    }
    return KILN_OK;
}

/* Shorthands for the layer checks' messages. */
#define LAYER_FAIL(fmt, ...) CORRUPT("layer %d (%s): " fmt, li, kiln_op_name(l->op), __VA_ARGS__)

/* Arity from the op table; sub-op and plugin indices in range.  Dtypes and
 * shapes are the op rules' to check (layer_verify.c). */
static kiln_status check_arity(const kiln_engine_desc *d, const kiln_layer_record *l, int32_t li) {
    const kiln_op_info *info = kiln_op_info_get(l->op);
    if (l->op == KILN_OP_BINARY && (l->subop < 0 || l->subop >= KILN_BINARY_OP_COUNT))
        return LAYER_FAIL("unknown binary op %d", l->subop);
    if (l->op == KILN_OP_UNARY && (l->subop < 0 || l->subop >= KILN_UNARY_OP_COUNT))
        return LAYER_FAIL("unknown unary op %d", l->subop);
    if (l->op == KILN_OP_PLUGIN && (l->subop < 0 || l->subop >= d->plugin_count))
        return LAYER_FAIL("refers to plugin %d but there are %d plugins", l->subop, d->plugin_count);
    int32_t want_in = info->input_count, want_out = info->output_count;
    if (!kiln_op_takes_inputs(l->op, l->input_count) || (want_out > 0 && l->output_count != want_out)) {
        if (l->op == KILN_OP_ROTARY_EMBEDDING)   /* its last input, position_ids, is optional */
            return LAYER_FAIL("has %d inputs and %d outputs, wants 3 or 4 and %d", l->input_count, l->output_count,
                              want_out);
        return LAYER_FAIL("has %d inputs and %d outputs, wants %d and %d", l->input_count, l->output_count, want_in,
                          want_out);
    }
    if (l->op == KILN_OP_REDUCE && (l->subop < 0 || l->subop >= KILN_REDUCE_OP_COUNT))
        return LAYER_FAIL("unknown reduction %d", l->subop);
    if (l->op == KILN_OP_COMPARE && (l->subop < 0 || l->subop >= KILN_COMPARE_OP_COUNT))
        return LAYER_FAIL("unknown comparison %d", l->subop);
    const kiln_layer_attrs *a = &l->attrs;
    /* A plugin layer's integers: per output, the input written in place or -1. */
    if (l->op == KILN_OP_PLUGIN && (a->int_count || a->expr_count)) {
        if (a->int_count != l->output_count || a->expr_count)
            return LAYER_FAIL("has %d in-place entries for %d outputs", a->int_count, l->output_count);
        for (int32_t k = 0; k < a->int_count; k++) {
            int64_t j = a->ints[k];
            if (j == -1) continue;
            if (j < 0 || j >= l->input_count)
                return LAYER_FAIL("output %d is written into input %lld of %d", k, (long long)j, l->input_count);
            for (int32_t m = 0; m < k; m++)
                if (a->ints[m] == j) return LAYER_FAIL("outputs %d and %d both write into input %lld", m, k, (long long)j);
            int32_t ti = l->inputs[j], to = l->outputs[k];
            if (ti < 0 || ti >= d->tensor_count || to < 0 || to >= d->tensor_count)
                return LAYER_FAIL("in-place output %d refers to a tensor out of range", k);
            const kiln_tensor_record *in = &d->tensors[ti], *out = &d->tensors[to];
            if (in->kind != KILN_TENSOR_INPUT || out->kind != KILN_TENSOR_ACTIVATION || in->dtype != out->dtype ||
                in->rank != out->rank || memcmp(in->shape, out->shape, sizeof(kiln_expr) * (size_t)in->rank) != 0)
                return LAYER_FAIL("output %d ('%s') is written into input '%s', which must be an engine input of its "
                                  "dtype and shape", k, out->name, in->name);
        }
    }
    /* Attribute expressions must be nodes of the pool before any rule reads them. */
    if (a->int_count < 0 || a->int_count > KILN_MAX_LAYER_INTS || a->expr_count < 0 ||
        a->expr_count > KILN_MAX_LAYER_EXPRS)
        return LAYER_FAIL("has %d integer and %d expression attributes", a->int_count, a->expr_count);
    for (int32_t k = 0; k < a->expr_count; k++)
        if (!kiln_exprs_valid(d->exprs, a->exprs[k]))
            return LAYER_FAIL("attribute expression %d is %d but the engine has %zu expressions", k, a->exprs[k],
                              d->exprs->count);
    if (want_out == 0 && l->output_count < 1)
        return LAYER_FAIL("has %d outputs, a plugin needs at least 1", l->output_count);
    return KILN_OK;
}

/* writer[t]: index of the layer that writes tensor t, or -1.  Layers run in
 * order, so a layer may only read activations an earlier layer wrote. */
static kiln_status check_layers(const kiln_engine_desc *d) {
    kiln_status st = KILN_OK;
    int32_t *writer = NULL;
    if (d->tensor_count) {
        writer = kiln_malloc((size_t)d->tensor_count * sizeof *writer);
        if (!writer) return no_memory();
        for (int32_t t = 0; t < d->tensor_count; t++) writer[t] = -1;
    }
    for (int32_t li = 0; li < d->layer_count && st == KILN_OK; li++) {
        const kiln_layer_record *l = &d->layers[li];
        if (!kiln_op_info_get(l->op)) { st = CORRUPT("layer %d has unknown op %u", li, l->op); break; }
        if (l->input_count < 0 || l->output_count < 0 || (l->input_count && !l->inputs)
            || (l->output_count && !l->outputs)) {
            st = LAYER_FAIL("has %d inputs and %d outputs", l->input_count, l->output_count);
            break;
        }
        if ((st = check_arity(d, l, li)) != KILN_OK) break;
        for (int32_t k = 0; k < l->input_count && st == KILN_OK; k++) {
            int32_t t = l->inputs[k];
            if (t < 0 || t >= d->tensor_count)
                st = CORRUPT("layer %d input %d refers to tensor %d but there are %d tensors", li, k, t,
                             d->tensor_count);
            else if ((d->tensors[t].kind == KILN_TENSOR_ACTIVATION || d->tensors[t].kind == KILN_TENSOR_OUTPUT)
                     && writer[t] < 0)
                st = CORRUPT("layer %d input %d reads tensor %d '%s' before any layer writes it", li, k, t,
                             d->tensors[t].name);
        }
        for (int32_t k = 0; k < l->output_count && st == KILN_OK; k++) {
            int32_t t = l->outputs[k];
            if (t < 0 || t >= d->tensor_count)
                st = CORRUPT("layer %d output %d refers to tensor %d but there are %d tensors", li, k, t,
                             d->tensor_count);
            else if (d->tensors[t].kind != KILN_TENSOR_ACTIVATION && d->tensors[t].kind != KILN_TENSOR_OUTPUT)
                st = CORRUPT("layer %d output %d is tensor %d '%s', a%s %s, not an activation or output", li, k, t,
                             d->tensors[t].name, d->tensors[t].kind == KILN_TENSOR_INPUT ? "n" : "",
                             kind_names[d->tensors[t].kind]);
            else if (writer[t] >= 0)
                st = CORRUPT("layer %d output %d writes tensor %d '%s', already written by layer %d", li, k, t,
                             d->tensors[t].name, writer[t]);
            else
                writer[t] = li;
        }
        if (st != KILN_OK) break;
        if (l->workspace != -1) {
            if (l->workspace < 0 || l->workspace >= d->tensor_count)
                st = CORRUPT("layer %d workspace refers to tensor %d but there are %d tensors", li, l->workspace,
                             d->tensor_count);
            else if (d->tensors[l->workspace].kind != KILN_TENSOR_ACTIVATION)
                st = CORRUPT("layer %d workspace is tensor %d '%s', a %s, not an activation", li, l->workspace,
                             d->tensors[l->workspace].name, kind_names[d->tensors[l->workspace].kind]);
            if (st != KILN_OK) break;
        }
    }
    for (int32_t t = 0; t < d->tensor_count && st == KILN_OK; t++)
        if (d->tensors[t].kind == KILN_TENSOR_OUTPUT && writer[t] < 0)
            st = CORRUPT("output tensor %d '%s' is not written by any layer", t, d->tensors[t].name);
    kiln_free(writer);
    return st;
}

static kiln_status check_checks(const kiln_engine_desc *d) {
    for (int32_t i = 0; i < d->check_count; i++) {
        if (!kiln_exprs_valid(d->exprs, d->checks[i].cond)) {
            char what[32];
            snprintf(what, sizeof what, "check %d condition", i);
            return bad_expr(d, what, d->checks[i].cond);
        }
        if (!d->checks[i].message) return CORRUPT("check %d has no message", i);
    }
    return KILN_OK;
}

/* Inputs then outputs; every input and output tensor exactly once. */
static kiln_status check_io(const kiln_engine_desc *d) {
    kiln_status st = KILN_OK;
    uint8_t *listed = d->tensor_count ? kiln_calloc((size_t)d->tensor_count, 1) : NULL;
    if (d->tensor_count && !listed) return no_memory();
    int seen_output = 0;
    for (int32_t i = 0; i < d->io_count && st == KILN_OK; i++) {
        int32_t t = d->io[i];
        if (t < 0 || t >= d->tensor_count) {
            st = CORRUPT("io entry %d refers to tensor %d but there are %d tensors", i, t, d->tensor_count);
            break;
        }
        const kiln_tensor_record *rec = &d->tensors[t];
        if (rec->kind != KILN_TENSOR_INPUT && rec->kind != KILN_TENSOR_OUTPUT)
            st = CORRUPT("io entry %d is tensor %d '%s', a %s, not an input or output", i, t, rec->name,
                         kind_names[rec->kind]);
        else if (listed[t])
            st = CORRUPT("io entry %d lists tensor %d '%s' a second time", i, t, rec->name);
        else if (rec->kind == KILN_TENSOR_INPUT && seen_output)
            st = CORRUPT("io entry %d is input '%s' after an output (inputs come first)", i, rec->name);
        listed[t] = 1;
        seen_output |= rec->kind == KILN_TENSOR_OUTPUT;
    }
    for (int32_t t = 0; t < d->tensor_count && st == KILN_OK; t++) {
        int io_kind = d->tensors[t].kind == KILN_TENSOR_INPUT || d->tensors[t].kind == KILN_TENSOR_OUTPUT;
        if (io_kind && !listed[t])
            st = CORRUPT("%s tensor %d '%s' is missing from the io list", kind_names[d->tensors[t].kind], t,
                         d->tensors[t].name);
    }
    kiln_free(listed);
    return st;
}

kiln_status kiln_format_check_desc(const kiln_engine_desc *desc) {
    if (!desc) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_check_desc: desc is NULL");
    kiln_status st;
    if ((st = check_counts(desc)) || (st = check_dims(desc)) || (st = check_tensors(desc))
        || (st = check_plugins(desc)) || (st = check_layers(desc)) || (st = check_checks(desc))
        || (st = check_io(desc)))
        return st;
    return KILN_OK;
}
