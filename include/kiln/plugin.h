/*
 * plugin.h — kiln's plugin ABI and registry.
 *
 * A plugin is a layer whose shape rule and compute live outside kiln.  It is
 * described by a kiln_plugin_creator: a versioned table of functions, keyed
 * in a process-wide registry by (namespace, name, version).
 *
 * Life of a plugin layer
 *   build time   either data-first: kiln_network_add_plugin_traced() takes
 *                the output dtypes, shapes and workspace size already traced
 *                as expressions of the network's pool (how kiln's Python
 *                layer adds Python plugins: it runs shape_dtype_inference
 *                once, on the pool) and calls no plugin code; or
 *                kiln_network_add_plugin() asks the creator's own C rule:
 *                create(fields) → infer_dtypes → infer_shapes (building
 *                symbolic expressions) → workspace_size → destroy.
 *                The engine stores the fields and the resulting expressions:
 *                shape inference at run time calls no plugin code.  Fields
 *                may name further expressions of the pool (a launch grid, a
 *                scalar argument: KILN_FIELD_EXPR); the runtime evaluates
 *                them with everything else (kiln_plugin_launch.expr_values).
 *   load time    the runtime looks the creator up again by key; a missing
 *                one is an error naming namespace::name, version and module.
 *   run time     each context creates its own instance (create(fields)) and
 *                calls enqueue() with concrete tensor descriptors, the values
 *                of the engine's expressions and the context's device
 *                service (load and launch compiled kernels, allocate).
 *
 * Example: a native plugin library (see examples/native_plugin/).
 *
 *     static kiln_status scale_enqueue(void *inst, const kiln_plugin_launch *l) { ... }
 *     static const kiln_plugin_creator scale_creator = {
 *         .abi_version = KILN_PLUGIN_ABI_VERSION,
 *         .plugin_namespace = "example", .name = "Scale", .version = "1",
 *         .output_count = 1,
 *         .create = scale_create, .destroy = scale_destroy,
 *         .infer_dtypes = scale_dtypes, .infer_shapes = scale_shapes,
 *         .enqueue = scale_enqueue,
 *     };
 *     KILN_PLUGIN_EXPORT kiln_status kiln_plugin_library_init(void) {
 *         return kiln_plugin_register(&scale_creator);
 *     }
 */
#ifndef KILN_PLUGIN_H
#define KILN_PLUGIN_H

#include "kiln/kiln.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 2: kiln_plugin_launch gained expr_values, expr_count and device_service,
 * and creators a field schema.  The registry refuses creators of another
 * version (rebuild the plugin against this header). */
#define KILN_PLUGIN_ABI_VERSION 2u
#define KILN_PLUGIN_EXPORT __attribute__((visibility("default")))

/* A concrete tensor handed to enqueue: contiguous unless strides say otherwise. */
typedef struct kiln_tensor_desc {
    void       *data;
    kiln_dtype  dtype;
    int32_t     rank;
    int64_t     dims[KILN_MAX_RANK];
    int64_t     strides[KILN_MAX_RANK];   /* in elements */
    kiln_device device;
} kiln_tensor_desc;

/*
 * The device service: what a plugin may ask of the device its context runs
 * on, without linking a GPU runtime or including a backend header.  The
 * runtime implements it on top of the context's backend; every enqueue gets
 * the context's service (launch->device_service), which stays valid while
 * the instance lives, so destroy may use a pointer kept from enqueue to
 * release what the instance loaded or allocated.  Calls fail with a status
 * and a message (kiln_last_error) like any kiln call; on a device that
 * cannot run machine code (the CPU) kernel_load fails with
 * KILN_ERROR_UNSUPPORTED.  Not thread-safe beyond the context's own rule:
 * one thread at a time.
 *
 *     kiln_device_kernel *k;
 *     const kiln_device_service *dev = launch->device_service;
 *     if ((s = dev->kernel_load(dev, cubin, cubin_size, "my_kernel", 0, &k))) return s;
 *     void *args[] = {&x_ptr, &n};
 *     s = dev->kernel_launch(dev, k, (uint32_t[3]){blocks, 1, 1}, (uint32_t[3]){128, 1, 1}, 0, args,
 *                            launch->stream);
 */
typedef struct kiln_device_kernel  kiln_device_kernel;    /* a loaded kernel (opaque) */
typedef struct kiln_device_service kiln_device_service;

#define KILN_DEVICE_SERVICE_VERSION 1u

struct kiln_device_service {
    uint32_t    version;            /* KILN_DEVICE_SERVICE_VERSION; fields are only ever appended */
    kiln_device device;             /* the context's device */
    const void *runtime;            /* the runtime's own state: do not touch */
    /* Load a module image (a cubin, a fatbin, or PTX text NUL-terminated
     * within size) and get its function `name`.  shared_bytes is the dynamic
     * shared memory its launches use (the limit is raised when above 48 KiB).
     * Loading is not capturable: load at the first enqueue, which
     * kiln_context_capture's warm-up run makes before recording. */
    kiln_status (*kernel_load)  (const kiln_device_service *svc, const void *image, size_t size, const char *name,
                                 uint32_t shared_bytes, kiln_device_kernel **kernel);
    /* Launch on stream; args as for cuLaunchKernel (one pointer per parameter
     * to its value).  The runtime has made the device current. */
    kiln_status (*kernel_launch)(const kiln_device_service *svc, kiln_device_kernel *kernel, const uint32_t grid[3],
                                 const uint32_t block[3], uint32_t shared_bytes, void **args, void *stream);
    /* Release a loaded kernel and its module; NULL is ignored. */
    void        (*kernel_unload)(const kiln_device_service *svc, kiln_device_kernel *kernel);
    /* Device memory (at least 256-byte aligned on CUDA); free ignores NULL. */
    kiln_status (*alloc)        (const kiln_device_service *svc, size_t size, void **out);
    void        (*free)         (const kiln_device_service *svc, void *p);
    /* Wait for the work queued on stream. */
    kiln_status (*synchronize)  (const kiln_device_service *svc, void *stream);
};

typedef struct kiln_plugin_launch {
    int32_t                 input_count;
    const kiln_tensor_desc *inputs;
    int32_t                 output_count;
    const kiln_tensor_desc *outputs;
    void                   *workspace;       /* NULL when workspace_size is 0 */
    uint64_t                workspace_size;
    void                   *stream;          /* cudaStream_t on CUDA, NULL on the CPU */
    kiln_device             device;
    /* The engine's expressions evaluated at this run's shapes: expr_values[e]
     * is the value of kiln_expr e of the engine's pool, for 0 <= e <
     * expr_count.  The engine stores the network's pool as is, so a plugin
     * whose fields name expressions of the network it was added to (as
     * kiln::TritonAOT's grids and scalar arguments do) reads their values
     * here; it must check an index against expr_count before using it. */
    const int64_t          *expr_values;
    int64_t                 expr_count;
    const kiln_device_service *device_service;   /* the context's; never NULL */
} kiln_plugin_launch;

/* Symbolic shapes handed to infer_shapes: one per input or output. */
typedef struct kiln_shape_expr {
    int32_t   rank;
    kiln_expr dims[KILN_MAX_RANK];
} kiln_shape_expr;

enum kiln_plugin_flags {
    /* The plugin runs Python code (set by the Python bridge): an engine using
     * it needs a Python interpreter with the plugin's module imported. */
    KILN_PLUGIN_NEEDS_PYTHON = 1u << 0,
    /* enqueue may run on the CPU device. */
    KILN_PLUGIN_SUPPORTS_CPU = 1u << 1,
    /* enqueue may run on CUDA devices. */
    KILN_PLUGIN_SUPPORTS_CUDA = 1u << 2,
    /* enqueue runs machine code that the engine's fields carry (kiln::TritonAOT
     * launches the cubins stored in the engine).  Loading such an engine is
     * safe; running it runs that code.  kiln_engine_load_* with
     * KILN_LOAD_NO_MACHINE_CODE refuses engines whose plugins have this flag. */
    KILN_PLUGIN_RUNS_ENGINE_CODE = 1u << 3,
};

/*
 * A field schema: the layout of a plugin's fields (a KILN_VALUE_MAP),
 * described once, next to the plugin, for tools (`kiln inspect`) and tests.
 * A path names map keys joined by '.', with "[]" after a list's key for each
 * of its items: "kernels[].images[].target".
 */
enum kiln_plugin_field_flags {
    KILN_FIELD_REQUIRED = 1u << 0,  /* present in every valid fields map (else optional) */
    KILN_FIELD_EXPR     = 1u << 1,  /* ints naming expressions of the engine's pool (kiln_plugin_launch.expr_values) */
};

typedef struct kiln_plugin_field {
    const char     *path;
    kiln_value_type type;
    uint32_t        flags;           /* kiln_plugin_field_flags */
    const char     *doc;             /* one line */
} kiln_plugin_field;

/* One line `kiln inspect` shows for a layer of the plugin: label, then the
 * format with each {path} replaced by the value there ({a,b}: every value
 * at a, then at b, ", "-separated).  With `each` (the path of a list) the
 * format is applied to every item of that list, paths relative to the item,
 * and the texts are "; "-separated. */
typedef struct kiln_plugin_field_view {
    const char *label;               /* "AOT kernels"; in JSON lower case, '_' for ' ': "aot_kernels" */
    const char *each;                /* NULL, or a list path: "kernels" */
    const char *format;              /* "{name} ({target,images[].target})" */
} kiln_plugin_field_view;

/* The text of view for fields into buf (NUL-terminated, cut to size);
 * returns the length it needed.  A path with no value gives nothing; a
 * placeholder with no value at all gives "?". */
KILN_API size_t kiln_plugin_field_view_format(const kiln_plugin_field_view *view, const kiln_value *fields,
                                              char *buf, size_t size);

typedef struct kiln_plugin_creator kiln_plugin_creator;

/*
 * Every callback returns KILN_OK or a failure status; on failure it should
 * call kiln_plugin_set_error() with a message (kiln prefixes the plugin's
 * key).  Optional callbacks may be NULL, with the default stated.
 */
struct kiln_plugin_creator {
    uint32_t    abi_version;        /* KILN_PLUGIN_ABI_VERSION; the registry refuses others */
    const char *plugin_namespace;   /* e.g. "kiln"; strings must outlive the registration */
    const char *name;
    const char *version;
    const char *module;             /* where it is defined, for error messages; may be NULL */
    uint32_t    flags;              /* kiln_plugin_flags */
    int32_t     output_count;       /* outputs every instance produces (>= 1); 0: each layer says
                                     * (its fields), and create/infer_shapes check the count */
    void       *user_data;          /* the creator's own data (e.g. a Python class) */
    /* Optional: the fields' schema and what tools show of them (NULL, 0: none). */
    const kiln_plugin_field      *field_schema;
    int32_t                       field_count;
    const kiln_plugin_field_view *field_views;
    int32_t                       field_view_count;

    /* Make an instance from fields (a KILN_VALUE_MAP). */
    kiln_status (*create)(const kiln_plugin_creator *creator, const kiln_value *fields, void **instance);
    /* Release an instance.  May be NULL when instances own nothing. */
    void        (*destroy)(const kiln_plugin_creator *creator, void *instance);
    /* Output dtypes from input dtypes.  NULL: every output has input 0's dtype. */
    kiln_status (*infer_dtypes)(void *instance, int32_t input_count, const kiln_dtype *inputs,
                                int32_t output_count, kiln_dtype *outputs);
    /* Output shapes from input shapes, building expressions in pool.  NULL:
     * the plugin has no rule in C (a data-first plugin, such as every Python
     * plugin): its layers are added with kiln_network_add_plugin_traced, and
     * loading an engine does not re-check them against a rule. */
    kiln_status (*infer_shapes)(void *instance, kiln_exprs *pool, int32_t input_count,
                                const kiln_shape_expr *inputs, int32_t output_count,
                                kiln_shape_expr *outputs);
    /* Workspace bytes as an expression of the input shapes.  NULL: none. */
    kiln_status (*workspace_size)(void *instance, kiln_exprs *pool, int32_t input_count,
                                  const kiln_shape_expr *inputs, kiln_expr *bytes);
    /* Run.  Called from the context's thread; may launch on launch->stream. */
    kiln_status (*enqueue)(void *instance, const kiln_plugin_launch *launch);
};

/*
 * Add a plugin layer from already-traced results, running no plugin code
 * (data-first).  The creator (namespace, name, version) must be registered
 * (its flags are recorded and its output count checked).  output_dtypes and
 * output_shapes give output_count entries; every dimension is an expression
 * of the network's pool (kiln_network_exprs) and workspace is the workspace
 * size in bytes as one, or KILN_EXPR_INVALID for none.  fields (a
 * KILN_VALUE_MAP, copied) is what create() receives at run time.  Errors
 * name the plugin and the output or expression at fault.
 */
KILN_API kiln_status kiln_network_add_plugin_traced(kiln_network *net, const char *plugin_namespace,
                                                    const char *name, const char *version, const char *module,
                                                    const kiln_value *fields, int32_t input_count,
                                                    const kiln_tensor *inputs, int32_t output_count,
                                                    const kiln_dtype *output_dtypes,
                                                    const kiln_shape_expr *output_shapes, kiln_expr workspace,
                                                    kiln_tensor *outputs);

/* Register a creator (the pointer is kept: it must outlive the registration).
 * A second creator with the same key is refused with an error naming it. */
KILN_API kiln_status kiln_plugin_register  (const kiln_plugin_creator *creator);
/* Remove a registration; engines loaded before keep working only if their
 * contexts were created before (they hold instances, not the creator). */
KILN_API kiln_status kiln_plugin_deregister(const char *plugin_namespace, const char *name, const char *version);
/* Look a creator up; NULL if none. */
KILN_API const kiln_plugin_creator *kiln_plugin_find(const char *plugin_namespace, const char *name,
                                                    const char *version);
/* For plugin callbacks: set the message kiln_last_error() will report. */
KILN_API void        kiln_plugin_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Load a shared library of plugins: dlopen it and call its exported
 * `kiln_status kiln_plugin_library_init(void)`. */
KILN_API kiln_status kiln_plugin_library_load(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* KILN_PLUGIN_H */
