/* cpu_kernels.h — the CPU backend's kernels, one per built-in op.
 *
 * cpu_backend.c dispatches a kiln_layer_launch to one of these after checking
 * the input and output counts.  The runtime has already checked shapes and
 * dtypes against the op's rules; kernels trust them except where the data
 * itself can be wrong (gather indices) or where a wrong dtype would make them
 * read out of bounds (they then answer KILN_ERROR_UNSUPPORTED).
 *
 * Tensors are contiguous row-major; `strides` in the descriptors is ignored. */
#ifndef KILN_CPU_KERNELS_H
#define KILN_CPU_KERNELS_H

#include "backend/backend.h"

/* Elements in a tensor (1 for rank 0). */
static inline int64_t kiln_cpu_numel(const kiln_tensor_desc *t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

/* Bulk conversions, bit-identical to core/dtype.h's scalar ones but written
 * so that the compiler vectorizes them (cpu_convert.c). */
void kiln_cpu_f16_to_f32 (const uint16_t *src, float *dst, int64_t n);
void kiln_cpu_f32_to_f16 (const float *src, uint16_t *dst, int64_t n);
void kiln_cpu_bf16_to_f32(const uint16_t *src, float *dst, int64_t n);
void kiln_cpu_f32_to_bf16(const float *src, uint16_t *dst, int64_t n);

/* Each op's kernel, and whether it takes the launch's op and dtypes (the
 * backend's supports_op; shapes are not looked at). */

/* inputs[0] → outputs[0]: any dtype to any dtype, same shape. */
kiln_status kiln_cpu_cast   (const kiln_layer_launch *l);
bool        kiln_cpu_cast_supports   (const kiln_layer_launch *l);
/* inputs[0] (op) inputs[1] → outputs[0], numpy broadcasting; l->subop is a kiln_binary_op. */
kiln_status kiln_cpu_binary (const kiln_layer_launch *l);
bool        kiln_cpu_binary_supports (const kiln_layer_launch *l);
/* op(inputs[0]) → outputs[0]; l->subop is a kiln_unary_op. */
kiln_status kiln_cpu_unary  (const kiln_layer_launch *l);
bool        kiln_cpu_unary_supports  (const kiln_layer_launch *l);
/* take(inputs[0], inputs[1], l->axis) → outputs[0]. */
kiln_status kiln_cpu_gather (const kiln_layer_launch *l);
bool        kiln_cpu_gather_supports (const kiln_layer_launch *l);
/* Copy inputs[0]'s bytes to outputs[0] (a no-op when they are one buffer). */
kiln_status kiln_cpu_reshape(const kiln_layer_launch *l);
bool        kiln_cpu_reshape_supports(const kiln_layer_launch *l);
/* inputs[0] [..., M, K] x inputs[1] [..., K, N] → outputs[0] [..., M, N]. */
kiln_status kiln_cpu_matmul (const kiln_layer_launch *l);
bool        kiln_cpu_matmul_supports (const kiln_layer_launch *l);

/* TRANSPOSE, SLICE, EXPAND, CONCAT: strided copies (ops/op_views.h), any dtype. */
kiln_status kiln_cpu_copy_view(const kiln_layer_launch *l);
bool        kiln_cpu_copy_view_supports(const kiln_layer_launch *l);
/* REDUCE; l->subop is a kiln_reduce_op, attrs keepdims then the axes. */
kiln_status kiln_cpu_reduce (const kiln_layer_launch *l);
bool        kiln_cpu_reduce_supports (const kiln_layer_launch *l);
/* SOFTMAX over l->axis (subop 1: log-softmax). */
kiln_status kiln_cpu_softmax(const kiln_layer_launch *l);
bool        kiln_cpu_softmax_supports(const kiln_layer_launch *l);
/* LAYER_NORM (x, scale, bias) and RMS_NORM (x, scale) over axes l->axis…. */
kiln_status kiln_cpu_norm   (const kiln_layer_launch *l);
bool        kiln_cpu_norm_supports   (const kiln_layer_launch *l);
/* WHERE: inputs cond (bool), a, b, broadcast. */
kiln_status kiln_cpu_where  (const kiln_layer_launch *l);
bool        kiln_cpu_where_supports  (const kiln_layer_launch *l);

/* COMPARE: inputs[0] (op) inputs[1] → bool, broadcast; l->subop is a kiln_compare_op. */
kiln_status kiln_cpu_compare(const kiln_layer_launch *l);
bool        kiln_cpu_compare_supports(const kiln_layer_launch *l);

/* GATHER_ELEMENTS: data, indices (same rank) along l->axis. */
kiln_status kiln_cpu_gather_elements(const kiln_layer_launch *l);
bool        kiln_cpu_gather_elements_supports(const kiln_layer_launch *l);

/* ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER at world size 1: a copy
 * (cpu_collective.c); larger groups are not supported on the CPU. */
kiln_status kiln_cpu_collective(const kiln_layer_launch *l);
bool        kiln_cpu_collective_supports(const kiln_layer_launch *l);

/* CUMSUM along l->axis; attrs exclusive, reverse. */
kiln_status kiln_cpu_cumsum(const kiln_layer_launch *l);
bool        kiln_cpu_cumsum_supports(const kiln_layer_launch *l);

/* ATTENTION: q, k, v [batch, heads, seq, dim] → softmax(q kᵀ · scale) v; attrs causal, scale bits. */
kiln_status kiln_cpu_attention(const kiln_layer_launch *l);
bool        kiln_cpu_attention_supports(const kiln_layer_launch *l);

/* SCATTER_ND and SCATTER_ELEMENTS (cpu_scatter.c): data, indices, updates;
 * attrs[0] the reduction (kiln_scatter_reduction). */
kiln_status kiln_cpu_scatter_nd(const kiln_layer_launch *l);
kiln_status kiln_cpu_scatter_elements(const kiln_layer_launch *l);
bool        kiln_cpu_scatter_supports(const kiln_layer_launch *l);
/* TOPK along l->axis: outputs values, indices (int64); attrs largest, sorted, k. */
kiln_status kiln_cpu_topk(const kiln_layer_launch *l);
bool        kiln_cpu_topk_supports(const kiln_layer_launch *l);
/* ROTARY_EMBEDDING (cpu_rotary.c): x, cos_cache, sin_cache, optional position_ids; attrs interleaved,
 * rotary_embedding_dim, num_heads.  A position id out of range fails the run. */
kiln_status kiln_cpu_rotary_embedding(const kiln_layer_launch *l);
bool        kiln_cpu_rotary_supports(const kiln_layer_launch *l);
/* CONV: x, w, optional bias; attrs group, strides, dilations, pads (cpu_conv.c: im2col + matmul). */
kiln_status kiln_cpu_conv(const kiln_layer_launch *l);
/* Bytes of scratch kiln_cpu_conv uses for this launch (im2col matrix, float32
 * copies of half inputs): the backend's layer_workspace. */
uint64_t    kiln_cpu_conv_workspace(const kiln_layer_launch *l);
bool        kiln_cpu_conv_supports(const kiln_layer_launch *l);
/* POOL: x; subop kiln_pool_mode; attrs as ops/pool_view.h reads them (cpu_pool.c). */
kiln_status kiln_cpu_pool(const kiln_layer_launch *l);
bool        kiln_cpu_pool_supports(const kiln_layer_launch *l);
/* CONV_TRANSPOSE: as CONV (and its supports), matmul then col2im (cpu_conv.c). */
kiln_status kiln_cpu_conv_transpose(const kiln_layer_launch *l);

/* kernel(l) for an elementwise layer (cast, unary, binary), cut into pieces
 * run on several threads when it is large (cpu_split.c): flat pieces when
 * every input has the output's element count, else pieces of the output's
 * first axis; small layers run as they are. */
kiln_status kiln_cpu_run_split(const kiln_layer_launch *l, kiln_status (*kernel)(const kiln_layer_launch *));

#endif
