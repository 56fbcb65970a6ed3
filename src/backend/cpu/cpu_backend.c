/* cpu_backend.c — the CPU backend's function table.
 *
 * Memory is ordinary 64-byte aligned host memory, copies are memcpy and work
 * is synchronous, so synchronize has nothing to wait for.  run_layer checks
 * the input/output counts (so that no kernel reads past `inputs`) and hands
 * the launch to the op's kernel in cpu_<op>.c. */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/error.h"
#include "ops/op_table.h"

static int32_t cpu_device_count(void) { return 1; }

static kiln_status cpu_alloc(int32_t device, size_t size, void **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: alloc: NULL output pointer");
    if (device != 0) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: alloc: no device %d (only 0)", device);
    *out = kiln_aligned_alloc(size);
    if (!*out) return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: cannot allocate %zu bytes", size);
    return KILN_OK;
}

static void cpu_free(int32_t device, void *p) { kiln_aligned_free(p); }

static kiln_status cpu_copy(int32_t device, void *dst, const void *src, size_t n, kiln_copy_kind kind,
                            void *stream) {
    if (n == 0 || dst == src) return KILN_OK;
    if (!dst || !src) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: copy of %zu bytes with a NULL pointer", n);
    /* On the host every kind is a plain copy; memmove tolerates overlap. */
    memmove(dst, src, n);
    return KILN_OK;
}

static kiln_status cpu_synchronize(int32_t device, void *stream) { return KILN_OK; }

/* The CPU kernel of each op (cpu_<op>.c): its run and supports functions,
 * and whether a large layer may be cut into pieces on several threads
 * (elementwise ops: cpu_split.c).  PLUGIN has none: plugins are run by the
 * runtime through their own enqueue. */
typedef struct cpu_op {
    kiln_status (*run)(const kiln_layer_launch *);
    bool        (*supports)(const kiln_layer_launch *);
    bool        split;
} cpu_op;

static const cpu_op cpu_ops[] = {
    [KILN_OP_CAST]    = {kiln_cpu_cast, kiln_cpu_cast_supports, true},
    [KILN_OP_BINARY]  = {kiln_cpu_binary, kiln_cpu_binary_supports, true},
    [KILN_OP_UNARY]   = {kiln_cpu_unary, kiln_cpu_unary_supports, true},
    [KILN_OP_GATHER]  = {kiln_cpu_gather, kiln_cpu_gather_supports, false},
    [KILN_OP_RESHAPE] = {kiln_cpu_reshape, kiln_cpu_reshape_supports, false},
    [KILN_OP_MATMUL]  = {kiln_cpu_matmul, kiln_cpu_matmul_supports, false},
    [KILN_OP_PLUGIN]  = {NULL, NULL, false},
    [KILN_OP_TRANSPOSE]  = {kiln_cpu_copy_view, kiln_cpu_copy_view_supports, false},
    [KILN_OP_SLICE]      = {kiln_cpu_copy_view, kiln_cpu_copy_view_supports, false},
    [KILN_OP_CONCAT]     = {kiln_cpu_copy_view, kiln_cpu_copy_view_supports, false},
    [KILN_OP_EXPAND]     = {kiln_cpu_copy_view, kiln_cpu_copy_view_supports, false},
    [KILN_OP_REDUCE]     = {kiln_cpu_reduce, kiln_cpu_reduce_supports, false},
    [KILN_OP_SOFTMAX]    = {kiln_cpu_softmax, kiln_cpu_softmax_supports, false},
    [KILN_OP_LAYER_NORM] = {kiln_cpu_norm, kiln_cpu_norm_supports, false},
    [KILN_OP_RMS_NORM]   = {kiln_cpu_norm, kiln_cpu_norm_supports, false},
    [KILN_OP_WHERE]      = {kiln_cpu_where, kiln_cpu_where_supports, false},
    [KILN_OP_COMPARE]    = {kiln_cpu_compare, kiln_cpu_compare_supports, false},
    [KILN_OP_GATHER_ELEMENTS] = {kiln_cpu_gather_elements, kiln_cpu_gather_elements_supports, false},
    [KILN_OP_CUMSUM]     = {kiln_cpu_cumsum, kiln_cpu_cumsum_supports, false},
    [KILN_OP_PAD]        = {kiln_cpu_copy_view, kiln_cpu_copy_view_supports, false},
    [KILN_OP_ATTENTION]  = {kiln_cpu_attention, kiln_cpu_attention_supports, false},
    [KILN_OP_ALL_REDUCE] = {kiln_cpu_collective, kiln_cpu_collective_supports, false},
    [KILN_OP_ALL_GATHER] = {kiln_cpu_collective, kiln_cpu_collective_supports, false},
    [KILN_OP_REDUCE_SCATTER] = {kiln_cpu_collective, kiln_cpu_collective_supports, false},
    [KILN_OP_SCATTER_ND] = {kiln_cpu_scatter_nd, kiln_cpu_scatter_supports, false},
    [KILN_OP_SCATTER_ELEMENTS] = {kiln_cpu_scatter_elements, kiln_cpu_scatter_supports, false},
    [KILN_OP_TOPK]       = {kiln_cpu_topk, kiln_cpu_topk_supports, false},
    [KILN_OP_ROTARY_EMBEDDING] = {kiln_cpu_rotary_embedding, kiln_cpu_rotary_supports, false},
    [KILN_OP_CONV]       = {kiln_cpu_conv, kiln_cpu_conv_supports, false},
    [KILN_OP_CONV_TRANSPOSE] = {kiln_cpu_conv_transpose, kiln_cpu_conv_supports, false},
    [KILN_OP_POOL]       = {kiln_cpu_pool, kiln_cpu_pool_supports, false},
};
_Static_assert(sizeof cpu_ops / sizeof cpu_ops[0] == KILN_OP_COUNT, "cpu_ops needs a row for every kiln_op");

/* The op's row when launch has the inputs and output its table row says. */
static const cpu_op *cpu_op_for(const kiln_layer_launch *l) {
    const kiln_op_info *info = kiln_op_info_get(l->op);
    if (!info || !cpu_ops[l->op].run || !kiln_op_takes_inputs(l->op, l->input_count) ||
        !kiln_op_gives_outputs(l->op, l->output_count) ||
        !l->inputs || !l->outputs)
        return NULL;
    return &cpu_ops[l->op];
}

static bool cpu_supports_op(const kiln_layer_launch *l) {
    const cpu_op *op = l ? cpu_op_for(l) : NULL;
    return op && op->supports(l);
}

static kiln_status cpu_run_layer(int32_t device, const kiln_layer_launch *l, void *stream) {
    if (!l) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: run_layer: NULL launch");
    const cpu_op *op = cpu_op_for(l);
    if (!op) {
        const kiln_op_info *info = kiln_op_info_get(l->op);
        if (!info || !cpu_ops[l->op].run)
            return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: op %d (%s) is not a built-in layer it can run",
                              (int)l->op, kiln_op_name(l->op));
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: %s takes %d input(s) and %d output(s), got %d and "
                          "%d", kiln_op_name(l->op), (int)info->input_count, (int)info->output_count,
                          (int)l->input_count, (int)l->output_count);
    }
    /* Elementwise layers may be cut into flat pieces run on several threads. */
    return op->split ? kiln_cpu_run_split(l, op->run) : op->run(l);
}

/* Scratch a launch wants (backend.h): the convolution's im2col matrix, so
 * that a run allocates (and faults in) nothing. */
static uint64_t cpu_layer_workspace(const kiln_layer_launch *l) {
    if (!l || !cpu_op_for(l)) return 0;
    return l->op == KILN_OP_CONV ? kiln_cpu_conv_workspace(l) : 0;
}

static const kiln_backend_iface cpu_backend = {
    .api_version  = KILN_BACKEND_API_VERSION,
    .name         = "cpu",
    .device_type  = KILN_DEVICE_CPU,
    .device_count = cpu_device_count,
    .alloc        = cpu_alloc,
    .free         = cpu_free,
    .copy         = cpu_copy,
    .run_layer    = cpu_run_layer,
    .supports_op  = cpu_supports_op,
    .synchronize  = cpu_synchronize,
    .set_device   = NULL,
    .layer_workspace = cpu_layer_workspace,
};

const kiln_backend_iface *kiln_backend_cpu(void) { return &cpu_backend; }
