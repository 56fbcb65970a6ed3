/* op_names.c — see op_names.h. */
#include "engine/op_names.h"

static const char *const op_names[KILN_OP_COUNT] = {"cast", "binary", "unary", "gather", "reshape", "matmul",
                                                     "plugin"};
static const char *const binary_names[KILN_BINARY_OP_COUNT] = {"add", "sub", "mul", "div", "min", "max"};
static const char *const unary_names[KILN_UNARY_OP_COUNT] = {"relu", "gelu", "silu", "exp", "neg", "sqrt"};

const char *kiln_op_name(int op) { return op >= 0 && op < KILN_OP_COUNT ? op_names[op] : "?"; }
const char *kiln_binary_op_name(int op) { return op >= 0 && op < KILN_BINARY_OP_COUNT ? binary_names[op] : "?"; }
const char *kiln_unary_op_name(int op) { return op >= 0 && op < KILN_UNARY_OP_COUNT ? unary_names[op] : "?"; }
