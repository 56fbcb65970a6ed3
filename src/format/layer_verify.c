/* layer_verify.c — every built-in layer of an engine is held to its op's rule.
 *
 * A file can claim any output shape for a layer; a kernel trusts the shapes it
 * is given.  So after the desc's structure is checked (desc_check.c), each
 * built-in layer's rule from the op table is run again on the stored input
 * shapes, in the engine's own expression pool (hash-consed: the same
 * construction gives the same ids), and each stored output must be exactly
 * what the rule gives for it: same dtype, same expression ids.  The conditions the
 * rule reports must be among the engine's checks; those that are missing
 * (a file that dropped them, or a reshape whose element count the file
 * states only through its output shape) are added to the engine's checks, so
 * a context evaluates them before any kernel runs.  The rules run on a copy
 * of the pool (they make helper nodes, constants 0 and 1 for instance), which
 * replaces the engine's only when checks had to be added: an engine the
 * builder wrote reads back unchanged.  Plugin layers are held to
 * their plugin's own rule by the runtime, which has the plugins
 * (runtime/engine.c). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "format/engine_format.h"
#include "ops/op_table.h"

typedef struct verify_sink {
    kiln_engine_desc *desc;
    kiln_exprs       *pool;          /* the copy the rules build in */
    kiln_check_record *added;        /* checks to append when done */
    int32_t           added_count;
    uint8_t          *is_check;      /* per pool node: a stored check's condition */
    size_t            is_check_size;
    int32_t           layer;
    kiln_status       failure;       /* set with the message when a check can never hold */
} verify_sink;

static kiln_status add_check(verify_sink *v, kiln_expr cond, const char *message) {
    char *copy = kiln_strdup(message);
    kiln_check_record *grown = copy ? kiln_realloc(v->added, sizeof *grown * ((size_t)v->added_count + 1)) : NULL;
    if (!grown) {
        kiln_free(copy);
        return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking the engine's layers");
    }
    v->added = grown;
    v->added[v->added_count++] = (kiln_check_record){.cond = cond, .message = copy};
    if ((size_t)cond < v->is_check_size) v->is_check[cond] = 1;
    return KILN_OK;
}

static kiln_status sink_add(void *user, kiln_expr cond, const char *message) {
    verify_sink *v = user;
    int64_t value;
    if (cond < 0) return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking the engine's layers");
    if (kiln_expr_is_const(v->pool, cond, &value)) {
        if (value) return KILN_OK;
        return kiln_error(KILN_ERROR_CORRUPT, "layer %d can never run: %s", v->layer, message);
    }
    if ((size_t)cond < v->is_check_size && v->is_check[cond]) return KILN_OK;
    return add_check(v, cond, message);
}

static void shape_text(const kiln_exprs *pool, kiln_dtype dtype, int32_t rank, const kiln_expr *dims, char *buf,
                       size_t size) {
    size_t used = (size_t)snprintf(buf, size, "%s [", kiln_dtype_name(dtype) ? kiln_dtype_name(dtype) : "?");
    for (int32_t a = 0; a < rank && used < size; a++) {
        char dim[96];
        kiln_expr_format(pool, dims[a], dim, sizeof dim);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", a ? ", " : "", dim);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* One stored output against the rule's dtype and shape. */
static kiln_status verify_output(verify_sink *v, int32_t li, const kiln_tensor_record *out, kiln_dtype dtype,
                                 const kiln_shape_expr *shape) {
    const kiln_layer_record *l = &v->desc->layers[li];
    int same = dtype == (kiln_dtype)out->dtype && shape->rank == out->rank;
    /* Each axis as the rule gives it, or simplified (what networks store
     * since kiln_expr_simplify; engines from before store the rule's).  A
     * simplified axis is also checked equal to the rule's at run time: the
     * two differ only where the rule's cannot be evaluated (a division by a
     * zero size), and the check makes such a run fail as the rule's would. */
    for (int32_t a = 0; same && a < shape->rank; a++) {
        if (shape->dims[a] == out->shape[a]) continue;
        same = kiln_expr_simplify(v->pool, shape->dims[a]) == out->shape[a];
        if (same) {
            char msg[256];
            snprintf(msg, sizeof msg, "layer %d (%s): output '%s' axis %d differs from its op's rule", li,
                     kiln_op_name(l->op), out->name, (int)a);
            kiln_status st = sink_add(v, kiln_expr_binary(v->pool, KILN_EXPR_EQ, shape->dims[a], out->shape[a]), msg);
            if (st) return st;
        }
    }
    if (same) return KILN_OK;
    char want[512], got[512];
    shape_text(v->pool, dtype, shape->rank, shape->dims, want, sizeof want);
    shape_text(v->pool, (kiln_dtype)out->dtype, out->rank, out->shape, got, sizeof got);
    return kiln_error(KILN_ERROR_CORRUPT, "layer %d (%s): output '%s' is stored as %s but the op's rule gives %s", li,
                      kiln_op_name(l->op), out->name, got, want);
}

static kiln_status verify_layer(verify_sink *v, int32_t li) {
    kiln_engine_desc *d = v->desc;
    const kiln_layer_record *l = &d->layers[li];
    const kiln_op_info *info = kiln_op_info_get(l->op);
    if (!info || !info->infer) return KILN_OK;   /* plugins: runtime/engine.c */
    if (!info->has_attrs && (l->attrs.int_count || l->attrs.expr_count))
        return kiln_error(KILN_ERROR_CORRUPT, "layer %d (%s) has attribute lists but its op takes none", li,
                          kiln_op_name(l->op));
    if (info->has_axis && l->axis < 0)
        return kiln_error(KILN_ERROR_CORRUPT, "layer %d (%s): axis %lld is negative (stored axes are normalized)", li,
                          kiln_op_name(l->op), (long long)l->axis);
    kiln_dtype dtypes[KILN_OP_MAX_INPUTS];
    kiln_shape_expr shapes[KILN_OP_MAX_INPUTS];
    const char *labels[KILN_OP_MAX_INPUTS];
    if (l->input_count > KILN_OP_MAX_INPUTS) return kiln_error(KILN_ERROR_CORRUPT, "layer %d: too many inputs", li);
    for (int32_t i = 0; i < l->input_count; i++) {
        const kiln_tensor_record *t = &d->tensors[l->inputs[i]];
        dtypes[i] = (kiln_dtype)t->dtype;
        shapes[i].rank = t->rank;
        memcpy(shapes[i].dims, t->shape, sizeof(kiln_expr) * (size_t)t->rank);
        labels[i] = t->name;
    }
    /* The reader has checked the output count against the row (desc_check.c). */
    if (l->output_count != info->output_count || l->output_count > KILN_OP_MAX_OUTPUTS)
        return kiln_error(KILN_ERROR_CORRUPT, "layer %d (%s) has %d outputs, its op gives %d", li, kiln_op_name(l->op),
                          (int)l->output_count, (int)info->output_count);
    const kiln_tensor_record *first = &d->tensors[l->outputs[0]];
    kiln_shape_expr stored = {.rank = first->rank};
    memcpy(stored.dims, first->shape, sizeof(kiln_expr) * (size_t)first->rank);
    v->layer = li;
    kiln_layer_attrs attrs = l->attrs;   /* the rule rewrites its copy into the canonical form */
    kiln_op_call call = {.pool = v->pool, .subop = l->subop, .axis = l->axis, .attrs = &attrs,
                         .to = (kiln_dtype)first->dtype, .target = &stored,
                         .world_size = d->parallel.world_size ? d->parallel.world_size : 1, .input_count = l->input_count,
                         .dtypes = dtypes, .shapes = shapes, .labels = labels, .checks = {sink_add, v}};
    kiln_dtype out_dtypes[KILN_OP_MAX_OUTPUTS];
    kiln_shape_expr out_shapes[KILN_OP_MAX_OUTPUTS];
    kiln_status s = info->infer(&call, out_dtypes, out_shapes);
    if (s == KILN_ERROR_NO_MEMORY || s == KILN_ERROR_CORRUPT) return s;
    if (s) return kiln_error_prefix(KILN_ERROR_CORRUPT, "layer %d (%s)", li, kiln_op_name(l->op));
    if (attrs.int_count != l->attrs.int_count || attrs.expr_count != l->attrs.expr_count ||
        memcmp(attrs.ints, l->attrs.ints, sizeof(int64_t) * (size_t)attrs.int_count) != 0 ||
        memcmp(attrs.exprs, l->attrs.exprs, sizeof(kiln_expr) * (size_t)attrs.expr_count) != 0)
        return kiln_error(KILN_ERROR_CORRUPT, "layer %d (%s): its attribute lists are not in the canonical form its "
                          "op's rule gives", li, kiln_op_name(l->op));
    for (int32_t o = 0; o < l->output_count; o++)
        if ((s = verify_output(v, li, &d->tensors[l->outputs[o]], out_dtypes[o], &out_shapes[o]))) return s;
    return KILN_OK;
}

kiln_status kiln_format_verify_layers(kiln_engine_desc *d) {
    verify_sink v = {.desc = d, .is_check_size = d->exprs->count};
    kiln_status s = kiln_exprs_from_nodes(d->exprs->nodes, d->exprs->count, d->dim_count, &v.pool);
    if (s) return s;
    for (int32_t i = 0; i < d->dim_count && !s; i++) s = kiln_exprs_name_dim(v.pool, i, d->dims[i].name);
    v.is_check = kiln_calloc(v.is_check_size ? v.is_check_size : 1, 1);
    if (!s && !v.is_check) s = kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking the engine's layers");
    for (int32_t c = 0; c < d->check_count && !s; c++) v.is_check[d->checks[c].cond] = 1;
    for (int32_t li = 0; li < d->layer_count && !s; li++) s = verify_layer(&v, li);
    if (!s && v.added_count) {
        kiln_check_record *all = kiln_realloc(d->checks, sizeof *all * ((size_t)d->check_count + v.added_count));
        if (!all) {
            s = kiln_error(KILN_ERROR_NO_MEMORY, "out of memory checking the engine's layers");
        } else {
            d->checks = all;
            memcpy(d->checks + d->check_count, v.added, sizeof *all * (size_t)v.added_count);
            d->check_count += v.added_count;
            v.added_count = 0;   /* the messages now belong to d */
            kiln_exprs_free(d->exprs);
            d->exprs = v.pool;
            v.pool = NULL;
        }
    }
    for (int32_t i = 0; i < v.added_count; i++) kiln_free(v.added[i].message);
    kiln_free(v.added);
    kiln_exprs_free(v.pool);
    kiln_free(v.is_check);
    return s;
}
