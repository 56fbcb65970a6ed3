/* backend.h — the interface every execution backend implements.
 *
 * A backend is a table of functions (ggml-style).  The CPU backend is part of
 * libkiln; the CUDA backend is its own shared library (libkiln-cuda.so),
 * loaded at run time by backend_registry.c, so a machine without CUDA still
 * loads and runs kiln.  The loader refuses a table whose api_version differs.
 *
 * Tensors handed to run_layer are contiguous row-major and already checked by
 * the runtime for the layer's shape rules: kernels need not re-validate
 * shapes, but must bounds-check data-dependent indices (gather). */
#ifndef KILN_BACKEND_H
#define KILN_BACKEND_H

#include "kiln/plugin.h"
#include "engine/engine_desc.h"

#define KILN_BACKEND_API_VERSION 8u   /* 2: kernel_load/kernel_launch/kernel_unload; 3: supports_op;
                                         4: kiln_layer_launch.attrs; 5: stream_create/stream_destroy;
                                         6: collectives (kiln_layer_launch's group and communicator, the
                                         comm_* functions); 7: MATMUL's attrs (transpose_a, transpose_b),
                                         which a backend from before would ignore, computing the wrong
                                         product; 8: layer_workspace and kiln_layer_launch's workspace */

typedef struct kiln_layer_launch {
    uint8_t                 op;          /* kiln_op (never KILN_OP_PLUGIN) */
    int32_t                 subop;       /* kiln_binary_op / kiln_unary_op */
    int64_t                 axis;        /* GATHER, CONCAT, SOFTMAX, norms: the axis, 0 <= axis < rank */
    /* The layer's attribute lists (engine_desc.h, kiln_op): its integers, then
     * its expressions evaluated for the current shapes, in the canonical form
     * the op rule checked. */
    const int64_t          *attrs;
    int32_t                 attr_count;
    int32_t                 input_count, output_count;
    const kiln_tensor_desc *inputs;
    const kiln_tensor_desc *outputs;
    /* Collectives (ALL_REDUCE, ALL_GATHER, REDUCE_SCATTER): the engine's
     * group, and the context's communicator from comm_create (NULL at world
     * size 1, where a collective is a copy, and in supports_op). */
    int32_t                 rank, world_size;
    void                   *comm;
    /* Device scratch of at least what layer_workspace asked for this launch
     * (NULL and 0 when it asked for none, or when the caller gives none: a
     * kernel then takes a path that needs none, or fails saying so).  One
     * region serves every layer of a context in turn: nothing in it
     * outlives the launch. */
    void                   *workspace;
    uint64_t                workspace_size;
} kiln_layer_launch;

typedef enum kiln_copy_kind {
    KILN_COPY_HOST_TO_DEVICE   = 0,
    KILN_COPY_DEVICE_TO_HOST   = 1,
    KILN_COPY_DEVICE_TO_DEVICE = 2,
} kiln_copy_kind;

/* What libkiln gives a dynamically loaded backend. */
typedef struct kiln_backend_host {
    uint32_t    api_version;
    kiln_status (*set_error)(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
} kiln_backend_host;

typedef struct kiln_backend_iface {
    uint32_t    api_version;             /* KILN_BACKEND_API_VERSION */
    const char *name;                    /* "cpu", "cuda" */
    kiln_device_type device_type;

    /* Number of devices; the CPU backend reports 1. */
    int32_t     (*device_count)(void);
    /* Device memory, aligned to at least 256 bytes on CUDA, 64 on the CPU. */
    kiln_status (*alloc)(int32_t device, size_t size, void **out);
    void        (*free)(int32_t device, void *p);
    /* Copy n bytes; stream may be NULL (synchronous on the default stream). */
    kiln_status (*copy)(int32_t device, void *dst, const void *src, size_t n, kiln_copy_kind kind,
                        void *stream);
    /* Run one built-in layer on stream.  KILN_ERROR_UNSUPPORTED, naming the
     * op and dtype, for combinations the backend lacks. */
    kiln_status (*run_layer)(int32_t device, const kiln_layer_launch *launch, void *stream);
    /* Can run_layer run this layer?  Looks at the op, the sub-op and the
     * dtypes of launch's inputs and outputs, not at shapes or data.  Asked for
     * every built-in layer when a context is created, so that a layer the
     * backend lacks fails there, naming the layer, op and dtypes, not mid-run.
     * Required. */
    bool        (*supports_op)(const kiln_layer_launch *launch);
    /* Wait for all work on stream. */
    kiln_status (*synchronize)(int32_t device, void *stream);
    /* Make `device` current for the calling thread (CUDA); NULL on the CPU. */
    kiln_status (*set_device)(int32_t device);
    /* A stream of its own on device (CUDA: non-blocking with respect to the
     * legacy default stream), and its release.  NULL on the CPU. */
    kiln_status (*stream_create)(int32_t device, void **stream);
    void        (*stream_destroy)(int32_t device, void *stream);

    /* Graph capture (CUDA graphs).  NULL on backends without graphs.
     * capture_begin starts capturing work enqueued on stream (thread-local
     * mode); capture_end stops it and instantiates an executable graph;
     * graph_launch replays it on stream; graph_free releases it. */
    kiln_status (*capture_begin)(int32_t device, void *stream);
    kiln_status (*capture_end)(int32_t device, void *stream, void **graph);
    kiln_status (*graph_launch)(int32_t device, void *graph, void *stream);
    void        (*graph_free)(int32_t device, void *graph);

    /* Compiled kernels (ahead-of-time plugins, e.g. Triton cubins).  NULL on
     * backends that cannot load machine code (the CPU).
     * kernel_load loads a module image (a cubin, or NUL-terminated PTX) on
     * device and finds the entry `name`; shared is the dynamic shared memory
     * its launches use (the limit is raised when above 48 KiB).  *kernel is
     * an opaque handle for kernel_launch and kernel_unload.  Load before any
     * graph capture: loading is not capturable.
     * kernel_launch launches on stream with params as for cuLaunchKernel (an
     * array of pointers to each argument's value); the calling thread must
     * have made device current (set_device), as every enqueue does. */
    kiln_status (*kernel_load)(int32_t device, const void *image, size_t size, const char *name,
                               uint32_t shared, void **kernel);
    kiln_status (*kernel_launch)(int32_t device, void *kernel, const uint32_t grid[3], const uint32_t block[3],
                                 uint32_t shared, void **params, void *stream);
    void        (*kernel_unload)(int32_t device, void *kernel);

    /* Communicators for collective layers across processes (NCCL on CUDA,
     * loaded at run time).  NULL on backends that run collectives only at
     * world size 1 (the CPU).
     * comm_available: can this process make communicators?  The error names
     * the library that is missing (asked when a context of an engine with
     * collectives at world size > 1 is created).
     * comm_unique_id: a fresh id for rank 0 to share (KILN_COMM_ID_BYTES).
     * comm_create: join the group on device; waits for every rank at most
     * timeout_s seconds, then fails naming the rank.
     * comm_synchronize: wait for stream while watching the communicator: a
     * failed peer or more than timeout_s seconds aborts it and fails.
     * comm_free: destroy (or abort, after a failure) and free. */
    kiln_status (*comm_available)(void);
    kiln_status (*comm_unique_id)(uint8_t *id);
    kiln_status (*comm_create)(int32_t device, int32_t rank, int32_t world_size, const uint8_t *id, double timeout_s,
                               void **comm);
    kiln_status (*comm_synchronize)(int32_t device, void *comm, void *stream, double timeout_s);
    void        (*comm_free)(int32_t device, void *comm);

    /* Bytes of device scratch a launch wants (an im2col matrix, say), asked
     * when a context prepares its shapes: the launch's op, attributes,
     * dtypes and dims are filled, its data pointers are not.  The runtime
     * sets aside the largest answer over the layers once, with the
     * activations (the same growth, cap and graph invalidation), before any
     * capture.  NULL, or 0 for a launch: none. */
    uint64_t    (*layer_workspace)(const kiln_layer_launch *launch);
} kiln_backend_iface;

/* The CPU backend (always present). */
const kiln_backend_iface *kiln_backend_cpu(void);
/* The backend for a device type: loads libkiln-cuda.so on first use.  Fails
 * with a message saying why (library missing, no driver, no GPU). */
kiln_status kiln_backend_get(kiln_device_type type, const kiln_backend_iface **out);

/* Symbol a dynamically loaded backend exports. */
typedef const kiln_backend_iface *(*kiln_backend_init_fn)(const kiln_backend_host *host);
#define KILN_BACKEND_CUDA_INIT_SYMBOL "kiln_backend_cuda_init"

#endif
