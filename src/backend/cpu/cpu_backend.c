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

static kiln_status cpu_run_layer(int32_t device, const kiln_layer_launch *l, void *stream) {
    if (!l) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: run_layer: NULL launch");
    int want_inputs;
    kiln_status (*kernel)(const kiln_layer_launch *);
    switch ((kiln_op)l->op) {
    case KILN_OP_CAST:    want_inputs = 1; kernel = kiln_cpu_cast;    break;
    case KILN_OP_BINARY:  want_inputs = 2; kernel = kiln_cpu_binary;  break;
    case KILN_OP_UNARY:   want_inputs = 1; kernel = kiln_cpu_unary;   break;
    case KILN_OP_GATHER:  want_inputs = 2; kernel = kiln_cpu_gather;  break;
    case KILN_OP_RESHAPE: want_inputs = 1; kernel = kiln_cpu_reshape; break;
    case KILN_OP_MATMUL:  want_inputs = 2; kernel = kiln_cpu_matmul;  break;
    default:
        /* Plugins are run by the runtime through their own enqueue. */
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: op %d (%s) is not a built-in layer it can run",
                          (int)l->op, kiln_op_name(l->op));
    }
    if (l->input_count != want_inputs || l->output_count != 1 || !l->inputs || !l->outputs)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: %s takes %d input(s) and 1 output, got %d and %d",
                          kiln_op_name(l->op), want_inputs, (int)l->input_count, (int)l->output_count);
    /* Elementwise layers may be cut into flat pieces run on several threads. */
    if (l->op == KILN_OP_CAST || l->op == KILN_OP_UNARY || l->op == KILN_OP_BINARY) return kiln_cpu_run_split(l, kernel);
    return kernel(l);
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
    .synchronize  = cpu_synchronize,
    .set_device   = NULL,
};

const kiln_backend_iface *kiln_backend_cpu(void) { return &cpu_backend; }
