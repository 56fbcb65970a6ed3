/* cuda_backend.c — the CUDA backend's function table and its entry point.
 *
 * libkiln-cuda.so is loaded at run time by backend_registry.c, which looks up
 * kiln_backend_cuda_init (the one symbol the module exports) and calls it
 * with the host's error setter.  The CUDA runtime is linked statically and
 * finds the driver itself when first used, so on a machine without a driver
 * or a GPU the module still loads and init still returns the table: its
 * device_count reports 0 and the loader decides what to tell the user.
 *
 * Every function takes a device ordinal.  It makes that device current for
 * the call and puts the caller's device back afterwards (a device guard), so
 * that a thread working with several GPUs never finds its current device
 * changed behind its back. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

#include "backend/cuda/cuda_ops.h"
#include "ops/op_list.h"

const kiln_backend_host *kiln_cuda_host;

/* ---- errors ------------------------------------------------------------- */

kiln_status kiln_cuda_fail(kiln_status status, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (kiln_cuda_host && kiln_cuda_host->set_error) return kiln_cuda_host->set_error(status, "%s", msg);
    return status;
}

kiln_status kiln_cuda_check(cudaError_t err, const char *what) {
    if (err == cudaSuccess) return KILN_OK;
    (void)cudaGetLastError();   /* clear it, so it is not reported again by the next call */
    return kiln_cuda_fail(KILN_ERROR_BACKEND, "cuda: %s: %s", what, cudaGetErrorString(err));
}

kiln_status kiln_cuda_check_launch(const char *kernel) {
    return kiln_cuda_check(cudaGetLastError(), kernel);
}

kiln_status kiln_cuda_unsupported(const char *op, kiln_dtype dtype) {
    static const char *const names[KILN_DTYPE_COUNT] = {
        [KILN_FLOAT32] = "float32", [KILN_FLOAT16] = "float16", [KILN_BFLOAT16] = "bfloat16",
        [KILN_INT8] = "int8",       [KILN_UINT8] = "uint8",     [KILN_INT32] = "int32",
        [KILN_INT64] = "int64",     [KILN_BOOL] = "bool",
    };
    const char *name = (unsigned)dtype < KILN_DTYPE_COUNT ? names[dtype] : "an unknown dtype";
    return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: %s does not support %s", op, name);
}

/* ---- small helpers the kernels share ------------------------------------ */

int64_t kiln_cuda_numel(const kiln_tensor_desc *t) {
    int64_t n = 1;
    for (int32_t i = 0; i < t->rank; i++) n *= t->dims[i];
    return n;
}

/* SM count per device, asked once: every built-in layer's launch needs it. */
#define KC_CACHED_DEVICES 64
static _Atomic int sm_counts[KC_CACHED_DEVICES];

static int sm_count(void) {
    int dev = 0, sms = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) dev = -1;
    if (dev >= 0 && dev < KC_CACHED_DEVICES && (sms = atomic_load_explicit(&sm_counts[dev], memory_order_relaxed)))
        return sms;
    if (dev < 0 || cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || sms <= 0) {
        (void)cudaGetLastError();
        return 132;   /* an H100's: only sizes the grid-stride loop */
    }
    if (dev < KC_CACHED_DEVICES) atomic_store_explicit(&sm_counts[dev], sms, memory_order_relaxed);
    return sms;
}

unsigned kiln_cuda_grid(int64_t n, int threads) {
    int sms = sm_count();
    /* Enough resident blocks for every SM several times over; a grid-stride
     * loop covers the rest, so launch overhead stays flat for huge tensors. */
    int64_t cap = (int64_t)sms * (2048 / threads) * 4;
    int64_t need = (n + threads - 1) / threads;
    if (need < 1) need = 1;
    return (unsigned)(need < cap ? need : cap);
}

/* ---- device guard ------------------------------------------------------- */

typedef struct device_guard {
    int previous;
    int changed;
} device_guard;

static kiln_status guard_enter(device_guard *g, int32_t device, const char *what) {
    g->changed = 0;
    kiln_status st = kiln_cuda_check(cudaGetDevice(&g->previous), what);
    if (st != KILN_OK) return st;
    if (g->previous == device) return KILN_OK;
    st = kiln_cuda_check(cudaSetDevice(device), what);
    if (st == KILN_OK) g->changed = 1;
    return st;
}

static void guard_leave(device_guard *g) {
    if (g->changed && cudaSetDevice(g->previous) != cudaSuccess) (void)cudaGetLastError();
}

/* ---- the table ---------------------------------------------------------- */

/* 0 when CUDA has no driver or no device; the reason is left as the last
 * error, for the loader to report. */
static int32_t cuda_device_count(void) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        kiln_cuda_check(err, "cudaGetDeviceCount");
        return 0;
    }
    return n;
}

static kiln_status cuda_alloc(int32_t device, size_t size, void **out) {
    if (!out) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: alloc: NULL out");
    *out = NULL;
    if (size == 0) return KILN_OK;
    device_guard g;
    kiln_status st = guard_enter(&g, device, "alloc: cudaSetDevice");
    if (st != KILN_OK) return st;
    cudaError_t err = cudaMalloc(out, size);
    guard_leave(&g);
    if (err != cudaSuccess) {
        *out = NULL;
        char what[64];
        snprintf(what, sizeof what, "cudaMalloc(%zu bytes) on device %d", size, (int)device);
        return kiln_cuda_check(err, what);
    }
    return KILN_OK;
}

static void cuda_free(int32_t device, void *p) {
    if (!p) return;
    device_guard g;
    if (guard_enter(&g, device, "free: cudaSetDevice") != KILN_OK) return;
    if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
    guard_leave(&g);
}

static kiln_status cuda_copy(int32_t device, void *dst, const void *src, size_t n, kiln_copy_kind kind,
                             void *stream) {
    static const enum cudaMemcpyKind kinds[] = {
        [KILN_COPY_HOST_TO_DEVICE] = cudaMemcpyHostToDevice,
        [KILN_COPY_DEVICE_TO_HOST] = cudaMemcpyDeviceToHost,
        [KILN_COPY_DEVICE_TO_DEVICE] = cudaMemcpyDeviceToDevice,
    };
    if ((unsigned)kind > KILN_COPY_DEVICE_TO_DEVICE)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: copy: unknown copy kind %d", (int)kind);
    if (n == 0 || dst == src) return KILN_OK;
    if (!dst || !src) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: copy: NULL pointer");
    device_guard g;
    kiln_status st = guard_enter(&g, device, "copy: cudaSetDevice");
    if (st != KILN_OK) return st;
    if (stream)
        st = kiln_cuda_check(cudaMemcpyAsync(dst, src, n, kinds[kind], (cudaStream_t)stream), "cudaMemcpyAsync");
    else
        st = kiln_cuda_check(cudaMemcpy(dst, src, n, kinds[kind]), "cudaMemcpy");
    guard_leave(&g);
    return st;
}

static kiln_status run_reshape(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *in = &l->inputs[0], *out = &l->outputs[0];
    if (in->data == out->data) return KILN_OK;
    size_t bytes = (size_t)kiln_cuda_numel(out) * kiln_cuda_dtype_size(out->dtype);
    if (bytes == 0) return KILN_OK;
    return kiln_cuda_check(cudaMemcpyAsync(out->data, in->data, bytes, cudaMemcpyDeviceToDevice, stream),
                           "reshape: cudaMemcpyAsync");
}

static bool reshape_supports(const kiln_layer_launch *l) {
    return kiln_cuda_dtype_size(l->inputs[0].dtype) > 0 && l->outputs[0].dtype == l->inputs[0].dtype;
}

/* The kernels that need no device index (the guard made it current): an
 * adapter each, to the table's signature. */
#define KERNEL_ON_CURRENT_DEVICE(name)                                                              \
    static kiln_status run_##name(int32_t device, const kiln_layer_launch *l, cudaStream_t s) {    \
        (void)device;                                                                                \
        return kiln_cuda_##name##_run(l, s);                                                         \
    }
KERNEL_ON_CURRENT_DEVICE(cast)
KERNEL_ON_CURRENT_DEVICE(binary)
KERNEL_ON_CURRENT_DEVICE(unary)
KERNEL_ON_CURRENT_DEVICE(gather)
KERNEL_ON_CURRENT_DEVICE(copy_view)
KERNEL_ON_CURRENT_DEVICE(reduce)
KERNEL_ON_CURRENT_DEVICE(softmax)
KERNEL_ON_CURRENT_DEVICE(norm)
KERNEL_ON_CURRENT_DEVICE(where)
KERNEL_ON_CURRENT_DEVICE(gather_elements)
KERNEL_ON_CURRENT_DEVICE(attention)
KERNEL_ON_CURRENT_DEVICE(cumsum)
KERNEL_ON_CURRENT_DEVICE(collective)
KERNEL_ON_CURRENT_DEVICE(scatter_nd)
KERNEL_ON_CURRENT_DEVICE(scatter_elements)
KERNEL_ON_CURRENT_DEVICE(compare)
KERNEL_ON_CURRENT_DEVICE(topk)
KERNEL_ON_CURRENT_DEVICE(rotary)
KERNEL_ON_CURRENT_DEVICE(conv_transpose)
KERNEL_ON_CURRENT_DEVICE(pool)
KERNEL_ON_CURRENT_DEVICE(resize)
#undef KERNEL_ON_CURRENT_DEVICE
static kiln_status run_reshape_on(int32_t device, const kiln_layer_launch *l, cudaStream_t s) {
    (void)device;
    return run_reshape(l, s);
}

/* The CUDA kernel of each op (one .cu file per op): its launch, its supports
 * function and how many inputs it takes (its outputs: op_list.h's count).  Names
 * come from ops/op_list.h: this module may not call into libkiln. */
typedef struct cuda_op {
    kiln_status (*run)(int32_t device, const kiln_layer_launch *l, cudaStream_t stream);
    bool        (*supports)(const kiln_layer_launch *l);
    int32_t     inputs;              /* -1: 1 to KILN_OP_MAX_INPUTS (CONCAT) */
} cuda_op;

static const cuda_op cuda_ops[] = {
    [KILN_OP_CAST]    = {run_cast, kiln_cuda_cast_supports, 1},
    [KILN_OP_BINARY]  = {run_binary, kiln_cuda_binary_supports, 2},
    [KILN_OP_UNARY]   = {run_unary, kiln_cuda_unary_supports, 1},
    [KILN_OP_GATHER]  = {run_gather, kiln_cuda_gather_supports, 2},
    [KILN_OP_RESHAPE] = {run_reshape_on, reshape_supports, 1},
    [KILN_OP_MATMUL]  = {kiln_cuda_matmul_run, kiln_cuda_matmul_supports, 2},
    [KILN_OP_PLUGIN]  = {NULL, NULL, 0},
    [KILN_OP_TRANSPOSE]  = {run_copy_view, kiln_cuda_copy_view_supports, 1},
    [KILN_OP_SLICE]      = {run_copy_view, kiln_cuda_copy_view_supports, 1},
    [KILN_OP_CONCAT]     = {run_copy_view, kiln_cuda_copy_view_supports, -1},
    [KILN_OP_EXPAND]     = {run_copy_view, kiln_cuda_copy_view_supports, 1},
    [KILN_OP_REDUCE]     = {run_reduce, kiln_cuda_reduce_supports, 1},
    [KILN_OP_SOFTMAX]    = {run_softmax, kiln_cuda_softmax_supports, 1},
    [KILN_OP_LAYER_NORM] = {run_norm, kiln_cuda_norm_supports, 3},
    [KILN_OP_RMS_NORM]   = {run_norm, kiln_cuda_norm_supports, 2},
    [KILN_OP_WHERE]      = {run_where, kiln_cuda_where_supports, 3},
    [KILN_OP_COMPARE]    = {run_compare, kiln_cuda_compare_supports, 2},
    [KILN_OP_GATHER_ELEMENTS] = {run_gather_elements, kiln_cuda_gather_elements_supports, 2},
    [KILN_OP_CUMSUM]     = {run_cumsum, kiln_cuda_cumsum_supports, 1},
    [KILN_OP_PAD]        = {run_copy_view, kiln_cuda_copy_view_supports, 1},
    [KILN_OP_ATTENTION]  = {run_attention, kiln_cuda_attention_supports, 3},
    [KILN_OP_ALL_REDUCE] = {run_collective, kiln_cuda_collective_supports, 1},
    [KILN_OP_ALL_GATHER] = {run_collective, kiln_cuda_collective_supports, 1},
    [KILN_OP_REDUCE_SCATTER] = {run_collective, kiln_cuda_collective_supports, 1},
    [KILN_OP_SCATTER_ND] = {run_scatter_nd, kiln_cuda_scatter_supports, 3},
    [KILN_OP_SCATTER_ELEMENTS] = {run_scatter_elements, kiln_cuda_scatter_supports, 3},
    [KILN_OP_TOPK]       = {run_topk, kiln_cuda_topk_supports, 1},
    [KILN_OP_ROTARY_EMBEDDING] = {run_rotary, kiln_cuda_rotary_supports, 4},   /* or 3: position_ids optional */
    [KILN_OP_CONV]       = {kiln_cuda_conv_run, kiln_cuda_conv_supports, 3},   /* or 2: the bias is optional */
    [KILN_OP_CONV_TRANSPOSE] = {run_conv_transpose, kiln_cuda_conv_supports, 3},   /* ditto */
    [KILN_OP_POOL]       = {run_pool, kiln_cuda_pool_supports, 1},
    [KILN_OP_RESIZE]     = {run_resize, kiln_cuda_resize_supports, 1},
};
_Static_assert(sizeof cuda_ops / sizeof cuda_ops[0] == KILN_OP_COUNT, "cuda_ops needs a row for every kiln_op");

static const cuda_op *cuda_op_for(const kiln_layer_launch *l) {
    if (l->op >= KILN_OP_COUNT || !cuda_ops[l->op].run) return NULL;
    const cuda_op *op = &cuda_ops[l->op];
    bool inputs_ok = op->inputs >= 0 ? l->input_count == op->inputs
                                     : l->input_count >= 1 && l->input_count <= KILN_OP_MAX_INPUTS;
    if (l->op == KILN_OP_ROTARY_EMBEDDING) inputs_ok = l->input_count == 3 || l->input_count == 4;
    if (l->op == KILN_OP_CONV || l->op == KILN_OP_CONV_TRANSPOSE) inputs_ok = l->input_count == 2 || l->input_count == 3;   /* bias optional */
    if (!inputs_ok || l->output_count != kiln_op_list_outputs(l->op) || !l->inputs || !l->outputs) return NULL;
    return op;
}

static bool cuda_supports_op(const kiln_layer_launch *l) {
    const cuda_op *op = l ? cuda_op_for(l) : NULL;
    return op && op->supports(l);
}

static kiln_status cuda_run_layer(int32_t device, const kiln_layer_launch *l, void *stream) {
    if (!l) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: run_layer: NULL launch");
    const cuda_op *op = cuda_op_for(l);
    if (!op) {
        if (l->op >= KILN_OP_COUNT || !cuda_ops[l->op].run)
            return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: run_layer: op %s is not a built-in layer",
                                  kiln_op_list_name(l->op));
        if (l->op == KILN_OP_ROTARY_EMBEDDING)   /* position_ids, its last input, is optional */
            return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s: wants 3 or 4 inputs and %d output(s), got %d "
                                  "and %d", kiln_op_list_name(l->op), kiln_op_list_outputs(l->op),
                                  (int)l->input_count, (int)l->output_count);
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s: wants %d inputs and %d output(s), got %d and %d",
                              kiln_op_list_name(l->op), (int)cuda_ops[l->op].inputs, kiln_op_list_outputs(l->op),
                              (int)l->input_count, (int)l->output_count);
    }
    /* A tensor with no elements needs no launch (and a grid of 0 is an error). */
    if (kiln_cuda_numel(&l->outputs[0]) == 0) return KILN_OK;

    device_guard g;
    kiln_status st = guard_enter(&g, device, "run_layer: cudaSetDevice");
    if (st != KILN_OK) return st;
    st = op->run(device, l, (cudaStream_t)stream);
    guard_leave(&g);
    return st;
}

/* Scratch a launch wants (backend.h): a convolution's im2col matrix
 * (conv.cu); no other op asks for any. */
static uint64_t cuda_layer_workspace(const kiln_layer_launch *l) {
    if (l && l->op == KILN_OP_CONV) return kiln_cuda_conv_workspace(l);
    return 0;
}

static kiln_status cuda_synchronize(int32_t device, void *stream) {
    device_guard g;
    kiln_status st = guard_enter(&g, device, "synchronize: cudaSetDevice");
    if (st != KILN_OK) return st;
    st = kiln_cuda_check(cudaStreamSynchronize((cudaStream_t)stream), "cudaStreamSynchronize");
    guard_leave(&g);
    return st;
}

static kiln_status cuda_stream_create(int32_t device, void **out) {
    device_guard g;
    kiln_status st = guard_enter(&g, device, "stream_create: cudaSetDevice");
    if (st != KILN_OK) return st;
    cudaStream_t stream = NULL;
    st = kiln_cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    guard_leave(&g);
    *out = st == KILN_OK ? (void *)stream : NULL;
    return st;
}

static void cuda_stream_destroy(int32_t device, void *stream) {
    device_guard g;
    if (guard_enter(&g, device, "stream_destroy: cudaSetDevice") != KILN_OK) return;
    (void)cudaStreamDestroy((cudaStream_t)stream);
    guard_leave(&g);
}

/* Called before every run: asking first is a thread-local read, while
 * cudaSetDevice goes through the driver even when nothing changes. */
static kiln_status cuda_set_device(int32_t device) {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current == device) return KILN_OK;
    (void)cudaGetLastError();
    return kiln_cuda_check(cudaSetDevice(device), "cudaSetDevice");
}

static const kiln_backend_iface cuda_iface = {
    .api_version  = KILN_BACKEND_API_VERSION,
    .name         = "cuda",
    .device_type  = KILN_DEVICE_CUDA,
    .device_count = cuda_device_count,
    .alloc        = cuda_alloc,
    .free         = cuda_free,
    .copy         = cuda_copy,
    .run_layer    = cuda_run_layer,
    .supports_op  = cuda_supports_op,
    .synchronize  = cuda_synchronize,
    .set_device   = cuda_set_device,
    .stream_create  = cuda_stream_create,
    .stream_destroy = cuda_stream_destroy,
    .capture_begin = kiln_cuda_capture_begin,
    .capture_end   = kiln_cuda_capture_end,
    .graph_launch  = kiln_cuda_graph_launch,
    .graph_free    = kiln_cuda_graph_free,
    .kernel_load   = kiln_cuda_kernel_load,
    .kernel_launch = kiln_cuda_kernel_launch,
    .kernel_unload = kiln_cuda_kernel_unload,
    .comm_available   = kiln_cuda_comm_available,
    .comm_unique_id   = kiln_cuda_comm_unique_id,
    .comm_create      = kiln_cuda_comm_create,
    .comm_synchronize = kiln_cuda_comm_synchronize,
    .comm_free        = kiln_cuda_comm_free,
    .layer_workspace  = cuda_layer_workspace,
};

/* The module's only exported symbol.  NULL when the host is missing or was
 * built against another backend interface version (its struct may differ). */
__attribute__((visibility("default")))
const kiln_backend_iface *kiln_backend_cuda_init(const kiln_backend_host *host) {
    if (!host || host->api_version != KILN_BACKEND_API_VERSION || !host->set_error) return NULL;
    kiln_cuda_host = host;
    return &cuda_iface;
}
