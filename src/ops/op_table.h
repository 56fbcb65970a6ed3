/* op_table.h — the one table of built-in layer ops.
 *
 * Each op is one row: its name, how many inputs and outputs it takes, and one
 * rule that gives each output's dtype and symbolic shape from the inputs',
 * building expressions in a pool and reporting the conditions that only
 * concrete sizes can decide (two dynamic dims that must broadcast, element
 * counts of a reshape, matmul inner sizes) as checks.  The same rule serves:
 *   - the network (graph/layers.c), when a layer is added;
 *   - the engine reader (format/layer_verify.c), which re-runs it on every
 *     built-in layer of a loaded engine and refuses one whose stored outputs
 *     differ, and whose checks become the engine's run-time checks: what a
 *     kernel reads and writes is then exactly what the rule allows, however
 *     the file was made;
 *   - the names, arity and dtype rules that the reader, the runtime, both
 *     backends and the inspect tool report.
 * Elementwise sub-ops (binary add…max, unary relu…sqrt) are rows of their own
 * small tables below, with the dtypes each accepts. */
#ifndef KILN_OPS_OP_TABLE_H
#define KILN_OPS_OP_TABLE_H

#include "engine/engine_desc.h"
#include "kiln/plugin.h"   /* kiln_shape_expr */
#include "ops/op_list.h"

/* Where a rule reports a condition that must hold at run time (a zero value
 * fails the run with message).  Conditions that fold to a constant are not
 * reported: true ones hold always, false ones are an error at once. */
typedef struct kiln_op_check_sink {
    kiln_status (*add)(void *user, kiln_expr cond, const char *message);
    void        *user;
} kiln_op_check_sink;

/* One application of a rule: the layer's attributes and its inputs. */
typedef struct kiln_op_call {
    kiln_exprs            *pool;
    int32_t                subop;        /* BINARY: kiln_binary_op; UNARY: kiln_unary_op; REDUCE: kiln_reduce_op;
                                            SOFTMAX: 0 softmax, 1 log-softmax */
    int64_t                axis;         /* GATHER, CONCAT, SOFTMAX, norms: the axis (negative counts from the end);
                                            the rule normalizes it in place */
    kiln_layer_attrs      *attrs;        /* the attribute lists (engine_desc.h): read, then rewritten by the
                                            rule into their canonical form, the form stored */
    kiln_dtype             to;           /* CAST: the target dtype */
    const kiln_shape_expr *target;       /* RESHAPE: the shape asked for; one axis may be -1 (inferred) */
    int32_t                world_size;   /* collectives: the engine's group size (kiln_parallel_record), >= 1 */
    int32_t                input_count;
    const kiln_dtype      *dtypes;       /* per input */
    const kiln_shape_expr *shapes;       /* per input */
    const char *const     *labels;       /* per input: names for messages */
    kiln_op_check_sink     checks;
} kiln_op_call;

typedef struct kiln_op_info {
    int32_t     input_count;             /* exactly this many; -1 for any (PLUGIN), or any from 1 to
                                            KILN_OP_MAX_INPUTS for a built-in op (CONCAT) */
    int32_t     output_count;            /* exactly this many, 1 to KILN_OP_MAX_OUTPUTS; 0 for any >= 1
                                            (PLUGIN); written once, in op_list.h's KILN_OP_LIST */
    bool        has_subop, has_axis;     /* which of the layer record's fields the op uses (else 0) */
    bool        has_attrs;               /* whether it uses attribute lists (else empty) */
    /* Every output's dtype and shape: dtypes[i] and shapes[i] for i below
     * output_count (a one-output rule writes dtypes[0] and shapes[0] only).
     * This is the one place an output's dtype is decided (TOPK: values take
     * x's dtype, indices int64).  KILN_ERROR_INVALID_NETWORK, naming the
     * inputs, for a call that can never work (dtypes, ranks, sizes that are
     * constant and wrong); NULL for PLUGIN (plugins give their own). */
    kiln_status (*infer)(const kiln_op_call *call, kiln_dtype *dtypes, kiln_shape_expr *shapes);
    /* The outputs' names for messages and docs ("values", "indices"); NULL
     * for a one-output op (its output is "the output"). */
    const char *const *output_names;
} kiln_op_info;

/* The row of op, or NULL when op is not a kiln_op. */
const kiln_op_info *kiln_op_info_get(int op);
/* The row's has_subop / has_axis; false for an unknown op. */
bool kiln_op_has_subop(int op);
bool kiln_op_has_axis(int op);
/* Does a layer of this op take n inputs? */
bool kiln_op_takes_inputs(int op, int32_t n);
/* Does a layer of this op give n outputs (the row's count; PLUGIN: 1 to KILN_PLUGIN_MAX_IO)? */
bool kiln_op_gives_outputs(int op, int32_t n);
/* Names for messages and inspection; "?" out of range. */
const char *kiln_op_name(int op);
const char *kiln_binary_op_name(int op);
const char *kiln_unary_op_name(int op);
const char *kiln_reduce_op_name(int op);
const char *kiln_compare_op_name(int op);
const char *kiln_collective_op_name(int op);
/* Does the unary op take (and give) this dtype? */
bool        kiln_unary_op_accepts(int op, kiln_dtype dtype);
/* Does the reduction take this dtype? */
bool        kiln_reduce_op_accepts(int op, kiln_dtype dtype);
/* Does the binary op take (and give) this dtype? */
bool        kiln_binary_op_accepts(int op, kiln_dtype dtype);

/* ---- the flat public ops (kiln_layer_op in kiln/kiln.h) ---------------------
 *
 * The public API names every built-in op flat ("add", "gelu", "gather"); an
 * engine stores it as (kiln_op, sub-op).  Each kiln_layer_op has a row giving
 * that pair and its attribute schema: the attributes kiln_network_add_layer
 * takes, by name and kind.  Attributes that later ops need (transpose's perm,
 * slice's starts/ends as expressions, reduce axes and keepdims) are further
 * schema entries of these kinds, or a new kind. */
#define KILN_MAX_LAYER_ATTRS 7   /* resize has seven */

/* Where an engine's layer record keeps an attribute (format version 1 has
 * no attribute list: each attribute has its place). */
typedef enum kiln_attr_place {
    KILN_ATTR_IN_AXIS,            /* kiln_layer_record.axis */
    KILN_ATTR_IN_OUTPUT_DTYPE,    /* the dtype of output 0 */
    KILN_ATTR_IN_OUTPUT_SHAPE,    /* the shape of output 0 (the rule's result: not shown again) */
    KILN_ATTR_TO_INTS,            /* appended to the integer list (INT, INTS; FLOAT, FLOATS as binary64 bits) */
    KILN_ATTR_TO_EXPRS,           /* appended to the expression list (EXPRS) */
} kiln_attr_place;

typedef struct kiln_attr_schema {
    const char     *name;
    kiln_attr_kind  kind;
    bool            required;
    kiln_attr_place place;
    int64_t         default_int;     /* an optional INT's value when not given */
    double          default_float;   /* an optional FLOAT's value when not given */
} kiln_attr_schema;

typedef struct kiln_layer_op_row {
    kiln_op          op;
    int32_t          subop;              /* BINARY/UNARY/REDUCE/SOFTMAX: the sub-op; else 0 */
    int32_t          attr_count;
    kiln_attr_schema attrs[KILN_MAX_LAYER_ATTRS];
} kiln_layer_op_row;

/* The row of a flat op, or NULL when op is not a kiln_layer_op. */
const kiln_layer_op_row *kiln_layer_op_row_get(int op);
/* The flat op an engine's (op, sub-op) pair is, or -1 for none (PLUGIN, out of range). */
int kiln_layer_op_of(int op, int32_t subop);
/* What `kiln inspect` shows beside a built-in layer's op name: the sub-op's
 * name ("add"), or the attributes shown from the layer record, by their
 * schema names ("axis 1", "to float16"); "" when none.  The layer must have
 * passed the reader's checks. */
void kiln_layer_describe(const kiln_engine_desc *desc, const kiln_layer_record *layer, char *out, size_t size);

#endif
