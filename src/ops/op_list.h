/* op_list.h — every built-in layer op, once, as X-macro lists.
 *
 * The enums (kiln_op in engine/engine_desc.h; kiln_binary_op and
 * kiln_unary_op in kiln/kiln.h) give the numbers stored in engine files; these
 * lists give the names, in the same order, checked against the enums' counts
 * by static assertions in op_table.c.  Header-only on purpose: the CUDA
 * module (libkiln-cuda.so) may not call into libkiln, so it reads the names
 * from here rather than from op_table.c.  Everything else about an op —
 * arity, attributes, dtype and shape rule — is its row in op_table.c.
 *
 * Adding an elementwise op (docs/architecture.md, "Adding a built-in op"):
 * one enum value, one row here, one row in op_table.c's dtype table, one CPU
 * kernel case, one CUDA kernel case, one test row. */
#ifndef KILN_OPS_OP_LIST_H
#define KILN_OPS_OP_LIST_H

/* Most inputs of a built-in layer (CONCAT is the variadic one). */
#define KILN_OP_MAX_INPUTS 64
/* Most outputs of a built-in layer (TOPK: values and indices); op_table.c
 * asserts that every op's count (KILN_OP_LIST below) is at most this. */
#define KILN_OP_MAX_OUTPUTS 2

/* X(enum suffix, name, outputs) — layer ops, in kiln_op order.  outputs is
 * how many outputs a layer of the op gives (0: any >= 1, PLUGIN), the one
 * place it is written: op_table.c's rows and the CUDA module read it from
 * here (KILN_OP_OUTPUTS_<suffix>, kiln_op_list_outputs). */
#define KILN_OP_LIST(X) \
    X(CAST, "cast", 1)                       \
    X(BINARY, "binary", 1)                   \
    X(UNARY, "unary", 1)                     \
    X(GATHER, "gather", 1)                   \
    X(RESHAPE, "reshape", 1)                 \
    X(MATMUL, "matmul", 1)                   \
    X(PLUGIN, "plugin", 0)                   \
    X(TRANSPOSE, "transpose", 1)             \
    X(SLICE, "slice", 1)                     \
    X(CONCAT, "concat", 1)                   \
    X(EXPAND, "expand", 1)                   \
    X(REDUCE, "reduce", 1)                   \
    X(SOFTMAX, "softmax", 1)                 \
    X(LAYER_NORM, "layer_norm", 1)           \
    X(RMS_NORM, "rms_norm", 1)               \
    X(WHERE, "where", 1)                     \
    X(COMPARE, "compare", 1)                 \
    X(GATHER_ELEMENTS, "gather_elements", 1) \
    X(CUMSUM, "cumsum", 1)                   \
    X(PAD, "pad", 1)                         \
    X(ATTENTION, "attention", 1)             \
    X(ALL_REDUCE, "all_reduce", 1)           \
    X(ALL_GATHER, "all_gather", 1)           \
    X(REDUCE_SCATTER, "reduce_scatter", 1)   \
    X(SCATTER_ND, "scatter_nd", 1)           \
    X(SCATTER_ELEMENTS, "scatter_elements", 1) \
    X(TOPK, "topk", 2)                       \
    X(ROTARY_EMBEDDING, "rotary_embedding", 1) \
    X(CONV, "conv", 1)                       \
    X(CONV_TRANSPOSE, "conv_transpose", 1)   \
    X(POOL, "pool", 1)                       \
    X(RESIZE, "resize", 1)

/* Elementwise ops of two operands (numpy broadcasting), in kiln_binary_op order. */
#define KILN_BINARY_OP_LIST(X) \
    X(ADD, "add")              \
    X(SUB, "sub")              \
    X(MUL, "mul")              \
    X(DIV, "div")              \
    X(MIN, "min")              \
    X(MAX, "max")              \
    X(POW, "pow")              \
    X(MOD, "mod")              \
    X(FMOD, "fmod")

/* Elementwise ops of one operand, in kiln_unary_op order.  gelu is the tanh
 * approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
#define KILN_UNARY_OP_LIST(X) \
    X(RELU, "relu")           \
    X(GELU, "gelu")           \
    X(SILU, "silu")           \
    X(EXP, "exp")             \
    X(NEG, "neg")             \
    X(SQRT, "sqrt")           \
    X(TANH, "tanh")             \
    X(SIGMOID, "sigmoid")             \
    X(ERF, "erf")             \
    X(GELU_ERF, "gelu_erf")             \
    X(RSQRT, "rsqrt")             \
    X(ABS, "abs")             \
    X(LOG, "log")             \
    X(SIN, "sin")             \
    X(COS, "cos")             \
    X(FLOOR, "floor")             \
    X(CEIL, "ceil")             \
    X(RECIPROCAL, "reciprocal")             \
    X(SIGN, "sign")

/* Reductions over axes, in kiln_reduce_op order. */
#define KILN_REDUCE_OP_LIST(X) \
    X(SUM, "reduce_sum")       \
    X(MEAN, "reduce_mean")     \
    X(MAX, "reduce_max")       \
    X(MIN, "reduce_min")       \
    X(PROD, "reduce_prod")     \
    X(ARGMAX, "argmax")        \
    X(ARGMIN, "argmin")

/* Comparisons (bool results), in kiln_compare_op order. */
#define KILN_COMPARE_OP_LIST(X)          \
    X(EQUAL, "equal")                    \
    X(NOT_EQUAL, "not_equal")            \
    X(LESS, "less")                      \
    X(LESS_EQUAL, "less_equal")          \
    X(GREATER, "greater")                \
    X(GREATER_EQUAL, "greater_equal")

/* How collectives combine the ranks' values, in kiln_collective_op order. */
#define KILN_COLLECTIVE_OP_LIST(X) \
    X(SUM, "sum")                  \
    X(PROD, "prod")                \
    X(MAX, "max")                  \
    X(MIN, "min")

/* How a scatter combines an update with its element, in kiln_scatter_reduction order. */
#define KILN_SCATTER_REDUCTION_LIST(X) \
    X(NONE, "none")                    \
    X(ADD, "add")                      \
    X(MUL, "mul")                      \
    X(MAX, "max")                      \
    X(MIN, "min")

#define KILN_OP_LIST_NAME_(suffix, name) name,
#define KILN_OP_LIST_COUNT_(suffix, name) +1
#define KILN_OP_ROW_NAME_(suffix, name, outputs) name,
#define KILN_OP_ROW_COUNT_(suffix, name, outputs) +1
#define KILN_OP_ROW_OUTPUTS_(suffix, name, outputs) KILN_OP_OUTPUTS_##suffix = (outputs),
#define KILN_OP_ROW_OUTPUT_COUNT_(suffix, name, outputs) outputs,

/* KILN_OP_OUTPUTS_TOPK == 2 and so on: integer constants for tables. */
enum { KILN_OP_LIST(KILN_OP_ROW_OUTPUTS_) };

/* Names by number, for code that cannot link op_table.c; "?" out of range. */
static inline const char *kiln_op_list_name(int op) {
    static const char *const names[] = {KILN_OP_LIST(KILN_OP_ROW_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}
/* How many outputs a layer of op gives (0: any >= 1, PLUGIN); -1 out of range. */
static inline int kiln_op_list_outputs(int op) {
    static const int counts[] = {KILN_OP_LIST(KILN_OP_ROW_OUTPUT_COUNT_)};
    return op >= 0 && op < (int)(sizeof counts / sizeof counts[0]) ? counts[op] : -1;
}
static inline const char *kiln_binary_op_list_name(int op) {
    static const char *const names[] = {KILN_BINARY_OP_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}
static inline const char *kiln_unary_op_list_name(int op) {
    static const char *const names[] = {KILN_UNARY_OP_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}

static inline const char *kiln_compare_op_list_name(int op) {
    static const char *const names[] = {KILN_COMPARE_OP_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}
static inline const char *kiln_collective_op_list_name(int op) {
    static const char *const names[] = {KILN_COLLECTIVE_OP_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}
static inline const char *kiln_scatter_reduction_list_name(int op) {
    static const char *const names[] = {KILN_SCATTER_REDUCTION_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}
static inline const char *kiln_reduce_op_list_name(int op) {
    static const char *const names[] = {KILN_REDUCE_OP_LIST(KILN_OP_LIST_NAME_)};
    return op >= 0 && op < (int)(sizeof names / sizeof names[0]) ? names[op] : "?";
}

#endif
