/* network_impl.h — the network definition (private).
 *
 * A network is append-only: tensors and layers are added in order, and a
 * layer may only use tensors that already exist, so the layer array is
 * always in topological order.  Shapes are kiln_exprs of the network's pool,
 * inferred when each layer is added (so Python sees symbolic shapes at once).
 * Conditions that can only be checked with concrete shapes (broadcasting of
 * two dynamic dims, reshape element counts) become check records. */
#ifndef KILN_GRAPH_NETWORK_IMPL_H
#define KILN_GRAPH_NETWORK_IMPL_H

#include "engine/engine_desc.h"
#include "kiln/plugin.h"

typedef enum kiln_net_tensor_kind {
    KILN_NET_INPUT = 0,
    KILN_NET_CONSTANT = 1,
    KILN_NET_LAYER_OUTPUT = 2,
} kiln_net_tensor_kind;

typedef struct kiln_net_tensor {
    char      *name;
    uint8_t    kind;            /* kiln_net_tensor_kind */
    kiln_dtype dtype;
    int32_t    rank;
    kiln_expr  shape[KILN_MAX_RANK];
    int32_t    producer;        /* layer index, -1 for inputs and constants */
    uint8_t   *data;            /* constants: owned copy of the data */
    uint64_t   size;            /* constants: bytes */
} kiln_net_tensor;

typedef struct kiln_net_layer {
    uint8_t   op;               /* kiln_op */
    int32_t   subop;            /* binary/unary op, or plugin index */
    int64_t   axis;
    kiln_layer_attrs attrs;     /* canonical, as the op rule gave them */
    int32_t   input_count, output_count;
    int32_t  *inputs, *outputs;
} kiln_net_layer;

typedef struct kiln_net_plugin {
    kiln_plugin_record record;  /* strings, flags, encoded fields */
    kiln_expr          workspace;  /* bytes, or KILN_EXPR_INVALID for none */
} kiln_net_plugin;

typedef struct kiln_net_output {
    int32_t    tensor;
    char      *name;
    kiln_dtype dtype;
} kiln_net_output;

struct kiln_network {
    kiln_exprs       *exprs;
    kiln_dim_record  *dims;      size_t dim_count, dim_capacity;
    int32_t           profile_count;       /* 0 until the first dim */
    kiln_net_tensor  *tensors;   size_t tensor_count, tensor_capacity;
    kiln_net_layer   *layers;    size_t layer_count, layer_capacity;
    kiln_net_plugin  *plugins;   size_t plugin_count, plugin_capacity;
    kiln_check_record *checks;   size_t check_count, check_capacity;
    kiln_net_output  *outputs;   size_t output_count, output_capacity;
    int32_t           input_count;
    kiln_build_report report;
    int               built;
    int32_t           rank, world_size;    /* kiln_network_set_parallel (0 of 1 by default) */
    int32_t           collective_layers;   /* how many; world_size is fixed once there is one */
};

/* Append a layer; takes over nothing, copies the index arrays.  On success
 * *outs receives output_count new LAYER_OUTPUT tensors with the given dtypes
 * and shapes. */
kiln_status kiln_net_add_layer(kiln_network *net, kiln_op op, int32_t subop, int64_t axis,
                               const kiln_layer_attrs *attrs /* NULL: none */, int32_t input_count, const kiln_tensor *inputs, int32_t output_count,
                               const kiln_dtype *dtypes, const kiln_shape_expr *shapes, kiln_tensor *outs);
/* Record a runtime check; message is formatted and copied. */
kiln_status kiln_net_add_check(kiln_network *net, kiln_expr cond, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Validate a tensor handle, with the calling function's name in the error. */
kiln_status kiln_net_tensor_get(kiln_network *net, kiln_tensor t, const char *what, kiln_net_tensor **out);
/* The name used in error messages for a tensor ('x', or 'layer3.out0'). */
const char *kiln_net_tensor_label(const kiln_network *net, kiln_tensor t);

#endif
