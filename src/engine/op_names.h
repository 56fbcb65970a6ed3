/* op_names.h — the names of layer operations, for messages and inspection.
 * One table for all of libkiln (the CUDA module keeps its own: it may not
 * call into libkiln).  Out-of-range values give "?". */
#ifndef KILN_ENGINE_OP_NAMES_H
#define KILN_ENGINE_OP_NAMES_H

#include "engine/engine_desc.h"

const char *kiln_op_name(int op);          /* kiln_op: "cast", "binary", ... */
const char *kiln_binary_op_name(int op);   /* kiln_binary_op: "add", ... */
const char *kiln_unary_op_name(int op);    /* kiln_unary_op: "relu", ... */

#endif
