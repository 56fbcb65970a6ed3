/* engine_desc.h — the in-memory description of an engine.
 *
 * The builder fills one in and hands it to the format writer; the format
 * reader parses engine bytes back into one, which the runtime then uses.
 * Everything the engine file holds is here and nothing else: see
 * docs/engine-format.md for the byte layout. */
#ifndef KILN_ENGINE_DESC_H
#define KILN_ENGINE_DESC_H

#include "kiln/kiln.h"
#include "shape/exprs.h"

/* Layer operations: stored in engine files, never renumber. */
typedef enum kiln_op {
    KILN_OP_CAST    = 0,   /* param: unused; output dtype is the target */
    KILN_OP_BINARY  = 1,   /* subop: kiln_binary_op */
    KILN_OP_UNARY   = 2,   /* subop: kiln_unary_op */
    KILN_OP_GATHER  = 3,   /* axis */
    KILN_OP_RESHAPE = 4,   /* also used as a plain copy */
    KILN_OP_MATMUL  = 5,   /* ints (added later, in version 2's lists): none, or transpose_a, transpose_b
                              (0/1, not both 0) */
    KILN_OP_PLUGIN  = 6,   /* plugin: index into plugins */
    /* Ops with attributes (format version 2): each layer's attribute lists
     * (kiln_layer_attrs) in the canonical form its op rule gives. */
    KILN_OP_TRANSPOSE  = 7,   /* ints: perm (one per axis) */
    KILN_OP_SLICE      = 8,   /* ints: steps; exprs: starts, then ends (one each per axis) */
    KILN_OP_CONCAT     = 9,   /* axis; 1 or more inputs */
    KILN_OP_EXPAND     = 10,  /* exprs: the target shape (the output's) */
    KILN_OP_REDUCE     = 11,  /* subop: kiln_reduce_op; ints: keepdims, then the reduced axes (ascending) */
    KILN_OP_SOFTMAX    = 12,  /* subop: 0 softmax, 1 log-softmax; axis */
    KILN_OP_LAYER_NORM = 13,  /* inputs x, scale, bias; axis (first normalized); ints: epsilon's binary64 bits */
    KILN_OP_RMS_NORM   = 14,  /* inputs x, scale; axis; ints: epsilon's binary64 bits */
    KILN_OP_WHERE      = 15,  /* inputs cond (bool), a, b; numpy broadcasting */
    KILN_OP_COMPARE    = 16,  /* subop: kiln_compare_op; two operands of one dtype → bool; numpy broadcasting */
    KILN_OP_GATHER_ELEMENTS = 17,  /* inputs data, indices (same rank); axis; output shaped like indices */
    KILN_OP_CUMSUM     = 18,  /* axis; ints: exclusive (0/1), reverse (0/1) */
    KILN_OP_PAD        = 19,  /* exprs: pads before each axis, then after (>= 0); ints: the value's binary64 bits */
    KILN_OP_ATTENTION  = 20,  /* inputs q [B,Hq,Sq,D], k [B,Hkv,Skv,D], v [B,Hkv,Skv,Dv]; ints: causal, the
                                 scale's binary64 bits (0: 1/sqrt(D)) */
    /* Collectives over the engine's group (kiln_parallel_record): the same
     * layer on every rank, combining the ranks' tensors. */
    KILN_OP_ALL_REDUCE     = 21,  /* subop: kiln_collective_op; output shaped like the input */
    KILN_OP_ALL_GATHER     = 22,  /* axis; output axis = input axis × world_size (ranks in order) */
    KILN_OP_REDUCE_SCATTER = 23,  /* subop: kiln_collective_op; axis; output axis = input axis / world_size
                                     (a check that it divides) */
    KILN_OP_SCATTER_ND       = 24,  /* inputs data, indices (last axis k, a constant <= data's rank), updates;
                                       ints: the reduction (kiln_scatter_reduction); output shaped like data */
    KILN_OP_SCATTER_ELEMENTS = 25,  /* inputs data, indices (data's rank), updates (indices' shape); axis; ints: the
                                       reduction (kiln_scatter_reduction); output shaped like data */
    KILN_OP_TOPK             = 26,  /* two outputs: values (x's dtype), indices (int64), x's shape with axis
                                     of size k; axis; ints: largest (0/1), sorted (0/1); exprs: k */
    KILN_OP_ROTARY_EMBEDDING = 27,  /* inputs x ([B,S,H*D] or [B,H,S,D]), cos_cache, sin_cache ([P, R/2] with
                                       position_ids [B,S], the optional 4th input; [B,S,R/2] without); ints:
                                       interleaved (0/1), rotary_embedding_dim (0: R = D), num_heads (3-D x);
                                       output shaped like x (ONNX RotaryEmbedding) */
    KILN_OP_CONV             = 28,  /* inputs x [N, C, D1..Dk] (k = 1..3), w [M, C/group, K1..Kk], optional bias [M];
                                       ints: group, strides (k), dilations (k); exprs: pads (k begins, then k
                                       ends); output [N, M, O1..Ok], Oi = floor((Di + pad_bi + pad_ei -
                                       dil_i*(Ki-1) - 1) / stride_i) + 1 (ONNX Conv) */
    KILN_OP_CONV_TRANSPOSE   = 29,  /* inputs x [N, C, D1..Dk], w [C, M/group, K1..Kk], optional bias [M]; lists as
                                       CONV's, the pads possibly negative; output [N, M, O1..Ok], Oi =
                                       stride_i*(Di-1) + dil_i*(Ki-1) + 1 - pad_bi - pad_ei (ONNX ConvTranspose;
                                       a negative end pad is its output_padding) */
    KILN_OP_POOL             = 30,  /* input x [N, C, D1..Dk] (k = 1..3); subop kiln_pool_mode (max, average);
                                       ints: ceil_mode, count_include_pad, kernel (k), strides (k), dilations
                                       (k); exprs: pads (k begins, then k ends); output [N, C, O1..Ok], Oi =
                                       floor or ceil((Di + pad_bi + pad_ei - dil_i*(Ki-1) - 1) / stride_i) + 1,
                                       less one when ceil's last window would start in the end padding (ONNX
                                       MaxPool / AveragePool) */
    KILN_OP_RESIZE           = 31,  /* input x of rank r >= 1; ints: mode (kiln_resize_mode), coordinate
                                       transformation (kiln_resize_coord), nearest rounding (kiln_resize_nearest),
                                       exclude_outside, cubic_coeff_a (binary64 bits), then r scales (binary64
                                       bits; 0: out/in of the axis); exprs: the r output sizes, which are the
                                       output's shape (ONNX Resize) */
    KILN_OP_COUNT
} kiln_op;

/* POOL's sub-op (stored in engine files: append only). */
typedef enum kiln_pool_mode {
    KILN_POOL_MAX     = 0,   /* the largest element of the window; NaN when any is NaN */
    KILN_POOL_AVERAGE = 1,   /* the mean of the window's input elements (count_include_pad: of its padded taps) */
    KILN_POOL_MODE_COUNT
} kiln_pool_mode;

/* RESIZE's integers (stored in engine files: append only). */
typedef enum kiln_resize_mode {
    KILN_RESIZE_NEAREST = 0,
    KILN_RESIZE_LINEAR  = 1,
    KILN_RESIZE_CUBIC   = 2,
    KILN_RESIZE_MODE_COUNT
} kiln_resize_mode;

typedef enum kiln_resize_coord {   /* x_in from x_out, scale s, lengths in and out (ONNX's names) */
    KILN_RESIZE_HALF_PIXEL           = 0,   /* (x + 0.5) / s - 0.5 */
    KILN_RESIZE_HALF_PIXEL_SYMMETRIC = 1,   /* the same, centred: + in/2 · (1 - out / (s·in)) */
    KILN_RESIZE_PYTORCH_HALF_PIXEL   = 2,   /* half_pixel, but -0.5 when s·in is 1 */
    KILN_RESIZE_ALIGN_CORNERS        = 3,   /* x · (in - 1) / (s·in - 1), 0 when s·in is 1 */
    KILN_RESIZE_ASYMMETRIC           = 4,   /* x / s */
    KILN_RESIZE_COORD_COUNT
} kiln_resize_coord;

typedef enum kiln_resize_nearest {
    KILN_RESIZE_ROUND_PREFER_FLOOR = 0,
    KILN_RESIZE_ROUND_PREFER_CEIL  = 1,
    KILN_RESIZE_FLOOR              = 2,
    KILN_RESIZE_CEIL               = 3,
    KILN_RESIZE_NEAREST_COUNT
} kiln_resize_nearest;

/* Does the op combine the tensors of every rank of the engine's group? */
static inline int kiln_op_is_collective(int op) {
    return op == KILN_OP_ALL_REDUCE || op == KILN_OP_ALL_GATHER || op == KILN_OP_REDUCE_SCATTER;
}

/* Most inputs or outputs one plugin layer may have. */
#define KILN_PLUGIN_MAX_IO 1024

typedef enum kiln_tensor_kind {   /* stored in engine files */
    KILN_TENSOR_INPUT      = 0,   /* bound by the caller */
    KILN_TENSOR_OUTPUT     = 1,   /* bound by the caller */
    KILN_TENSOR_CONSTANT   = 2,   /* in the weights section */
    KILN_TENSOR_ACTIVATION = 3,   /* in the activation arena */
} kiln_tensor_kind;

typedef struct kiln_tensor_record {
    char       *name;
    uint8_t     kind;              /* kiln_tensor_kind */
    uint8_t     dtype;             /* kiln_dtype */
    int32_t     rank;
    kiln_expr   shape[KILN_MAX_RANK];
    uint64_t    offset;            /* ACTIVATION: arena offset; CONSTANT: weights offset (64-aligned) */
    uint64_t    size;              /* ACTIVATION: planned bytes (max over profiles); CONSTANT: bytes */
} kiln_tensor_record;

/* Attribute lists of a layer, beyond subop and axis (format version 2): a
 * list of integers and a list of expressions of the engine's pool.  Each op
 * says what its lists hold (kiln_op above); the op rule checks them and gives
 * their canonical form, the form stored.  At run time the expressions are
 * evaluated and handed to the kernel after the integers
 * (kiln_layer_launch.attrs). */
#define KILN_MAX_LAYER_INTS  16
#define KILN_MAX_LAYER_EXPRS 16
typedef struct kiln_layer_attrs {
    int32_t   int_count, expr_count;
    int64_t   ints[KILN_MAX_LAYER_INTS];
    kiln_expr exprs[KILN_MAX_LAYER_EXPRS];
} kiln_layer_attrs;

typedef struct kiln_layer_record {
    uint8_t   op;                  /* kiln_op */
    int32_t   subop;               /* binary/unary op; plugin index for KILN_OP_PLUGIN */
    int64_t   axis;                /* gather axis */
    int32_t   input_count, output_count;
    int32_t  *inputs, *outputs;    /* tensor indices */
    int32_t   workspace;           /* tensor index of the plugin workspace (ACTIVATION, uint8) or -1 */
    kiln_layer_attrs attrs;        /* empty for ops without attribute lists */
} kiln_layer_record;

typedef struct kiln_plugin_record {
    char      *plugin_namespace, *name, *version;
    char      *module;             /* "" when unknown */
    uint32_t   flags;              /* kiln_plugin_flags the creator had at build time */
    uint8_t   *fields;             /* kiln_value_encode() of the fields map */
    size_t     fields_size;
} kiln_plugin_record;

typedef struct kiln_dim_record {
    char           *name;
    kiln_dim_range *ranges;        /* profile_count entries */
} kiln_dim_record;

/* A condition that must hold at run time (e.g. broadcast compatibility of two
 * dynamic dimensions); a zero value fails with the message. */
typedef struct kiln_check_record {
    kiln_expr  cond;
    char      *message;
} kiln_check_record;

/* The engine's place in a group of processes (format version 3; older
 * engines are rank 0 of 1).  Collective layers name their group by it. */
typedef struct kiln_parallel_record {
    int32_t rank;                  /* 0 <= rank < world_size */
    int32_t world_size;            /* 1..KILN_MAX_WORLD_SIZE; 0 in a zeroed desc means 1 */
} kiln_parallel_record;

typedef struct kiln_engine_desc {
    kiln_exprs         *exprs;                 /* the whole expression program */
    kiln_parallel_record parallel;
    uint32_t            format_version;        /* the file's (set by the reader; the writer chooses its own) */
    int32_t             dim_count, profile_count;
    kiln_dim_record    *dims;
    int32_t             tensor_count;
    kiln_tensor_record *tensors;
    int32_t             layer_count;
    kiln_layer_record  *layers;
    int32_t             plugin_count;
    kiln_plugin_record *plugins;
    int32_t             check_count;
    kiln_check_record  *checks;
    int32_t             io_count;              /* inputs then outputs, in declaration order */
    int32_t            *io;                    /* tensor indices */
    uint64_t            arena_bytes;
    /* Weights: 64-byte aligned.  The builder and a memory load own them
     * (weights_owned); a file load points into the mapping. */
    const uint8_t      *weights;
    uint64_t            weights_size;
    int                 weights_owned;
} kiln_engine_desc;

/* Free everything a desc owns (not the struct itself). */
void kiln_engine_desc_clear(kiln_engine_desc *desc);

#endif
