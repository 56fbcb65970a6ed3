/*
 * kiln.h — the kiln engine's public C API.
 *
 * kiln builds a network of layers (built-in ones and plugins) into an engine:
 * a self-contained, checksummed byte image that holds the graph, symbolic
 * shape programs, the activation memory plan and the weights.  An engine is
 * loaded once (from memory or a mapped file) and run by one execution context
 * per thread, on the CPU or a CUDA GPU.
 *
 * Conventions
 *   - Every handle is opaque.  Names are kiln_<noun>_<verb>.
 *   - Every fallible call returns a kiln_status.  On failure a message naming
 *     the thing at fault is available from kiln_last_error(); it is owned by
 *     kiln, thread-local, and valid until the next kiln call on this thread.
 *   - Expression builders (kiln_expr_*) return a kiln_expr; a negative value
 *     (KILN_EXPR_INVALID) means failure and is accepted (and propagated) by
 *     the other expression calls, so chains need one check at the end.
 *   - Nothing here keeps a pointer you passed in unless it says so.
 *
 * Example: y = relu(x + b) with a dynamic batch dimension, built and run.
 *
 *     kiln_network *net;
 *     kiln_network_create(&net);
 *     kiln_dim_range batch_range = {1, 8, 64};          // min, opt, max
 *     kiln_expr batch;
 *     kiln_network_add_dim(net, "batch", &batch_range, 1, &batch);
 *     kiln_expr xshape[2] = {batch, kiln_expr_const(kiln_network_exprs(net), 16)};
 *     kiln_tensor x, b, s, y;
 *     kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xshape, &x);
 *     int64_t bdims[1] = {16};
 *     kiln_network_add_constant(net, "bias", KILN_FLOAT32, 1, bdims, bias_data, &b);
 *     kiln_network_add_binary(net, KILN_BINARY_ADD, x, b, &s);
 *     kiln_network_add_unary(net, KILN_UNARY_RELU, s, &y);
 *     kiln_network_mark_output(net, y, "y", KILN_FLOAT32);
 *
 *     kiln_blob *blob;
 *     if (kiln_network_build(net, NULL, &blob) != KILN_OK)
 *         fprintf(stderr, "build: %s\n", kiln_last_error());
 *     kiln_blob_save(blob, "relu.engine");
 *
 *     kiln_engine *engine;
 *     kiln_engine_load_file("relu.engine", 0, &engine);
 *     kiln_context *ctx;
 *     kiln_context_create(engine, NULL, &ctx);           // CPU by default
 *     int64_t shape[2] = {4, 16};
 *     kiln_context_set_input_shape(ctx, "x", 2, shape);
 *     kiln_context_set_tensor(ctx, "x", xbuf);
 *     kiln_context_set_tensor(ctx, "y", ybuf);
 *     kiln_context_enqueue(ctx, NULL);                   // NULL: no stream (CPU)
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(KILN_BUILDING_LIBRARY)
#  define KILN_API __attribute__((visibility("default")))
#else
#  define KILN_API
#endif

#define KILN_VERSION_MAJOR 0
#define KILN_VERSION_MINOR 1
#define KILN_VERSION_PATCH 0

/* Largest tensor rank kiln handles. */
#define KILN_MAX_RANK 8

/* ------------------------------------------------------------------------ */
/* Status codes                                                             */
/* ------------------------------------------------------------------------ */

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERROR_INVALID_ARGUMENT = 1, /* a call got a bad argument (NULL, out of range, unknown name) */
    KILN_ERROR_INVALID_NETWORK  = 2, /* the builder rejected the network */
    KILN_ERROR_CORRUPT          = 3, /* engine bytes failed verification */
    KILN_ERROR_VERSION          = 4, /* engine written by a newer format version */
    KILN_ERROR_NOT_FOUND        = 5, /* a plugin or named tensor is not known */
    KILN_ERROR_SHAPE            = 6, /* a shape is outside its profile or inconsistent */
    KILN_ERROR_NO_MEMORY        = 7, /* an allocation failed */
    KILN_ERROR_IO               = 8, /* a file could not be opened, read, mapped or written */
    KILN_ERROR_UNSUPPORTED      = 9, /* the backend cannot run this dtype, layer or device */
    KILN_ERROR_PLUGIN           = 10,/* a plugin callback reported failure */
    KILN_ERROR_BACKEND          = 11,/* the device (e.g. CUDA) reported failure */
    KILN_ERROR_STATE            = 12,/* the call is not valid now (e.g. run before shapes are set) */
} kiln_status;

/* A short constant description of a status ("invalid argument"). */
KILN_API const char *kiln_status_string(kiln_status status);

/* The message of the last failure on this thread, or "" if none. */
KILN_API const char *kiln_last_error(void);

/* Forget the last error on this thread. */
KILN_API void kiln_clear_error(void);

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */
/* What the library did, by level: a build reports each layer's dtype and
 * shapes (info) and the memory plan; a context the backend and device it runs
 * on and its memory.  The level is kiln_log_set_level's, else $KILN_LOG_LEVEL
 * ("error", "warning", "info", "debug", or 0-3), else warning.  Messages go
 * to stderr ("kiln [info] ...") unless a callback is installed; it may be
 * called from any thread that calls into kiln. */
typedef enum kiln_log_level {
    KILN_LOG_ERROR   = 0,
    KILN_LOG_WARNING = 1,
    KILN_LOG_INFO    = 2,
    KILN_LOG_DEBUG   = 3,
} kiln_log_level;
typedef void (*kiln_log_fn)(kiln_log_level level, const char *message, void *user);

KILN_API void           kiln_log_set_level(kiln_log_level level);
KILN_API kiln_log_level kiln_log_get_level(void);
KILN_API const char    *kiln_log_level_name(kiln_log_level level);   /* "info", ... */
/* Install fn as the sink (NULL: stderr again). */
KILN_API void           kiln_log_set_callback(kiln_log_fn fn, void *user);

/* Library version string, e.g. "0.1.0". */
KILN_API const char *kiln_version(void);

/* ------------------------------------------------------------------------ */
/* Data types                                                               */
/* ------------------------------------------------------------------------ */

/* Values are stored in engine files: never renumber. */
typedef enum kiln_dtype {
    KILN_FLOAT32  = 0,
    KILN_FLOAT16  = 1,
    KILN_BFLOAT16 = 2,
    KILN_INT8     = 3,
    KILN_UINT8    = 4,
    KILN_INT32    = 5,
    KILN_INT64    = 6,
    KILN_BOOL     = 7,
    KILN_DTYPE_COUNT
} kiln_dtype;

/* "float32", "float16", ...; NULL for an unknown value. */
KILN_API const char *kiln_dtype_name(kiln_dtype dtype);
/* Size of one element in bytes; 0 for an unknown value. */
KILN_API size_t      kiln_dtype_size(kiln_dtype dtype);
/* Parse a dtype name ("float32", "fp16", "bf16", "int32", "bool", ...). */
KILN_API kiln_status kiln_dtype_from_name(const char *name, kiln_dtype *out);

/* ------------------------------------------------------------------------ */
/* Devices                                                                  */
/* ------------------------------------------------------------------------ */

typedef enum kiln_device_type {
    KILN_DEVICE_CPU  = 0,
    KILN_DEVICE_CUDA = 1,
} kiln_device_type;

typedef struct kiln_device {
    kiln_device_type type;
    int32_t          index;  /* GPU ordinal; 0 for the CPU */
} kiln_device;

/* Whether the CUDA backend library loaded and sees at least one GPU. */
KILN_API bool        kiln_cuda_available(void);
/* Number of GPUs the CUDA backend sees (0 without one). */
KILN_API int32_t     kiln_cuda_device_count(void);

/*
 * Device memory.  Buffers bound with kiln_context_set_tensor must live on the
 * context's device; these calls let a caller allocate them and move data
 * without linking against CUDA itself.  On the CPU they are plain host
 * memory (64-byte aligned) and plain copies.
 */
typedef enum kiln_memcpy_kind {
    KILN_MEMCPY_HOST_TO_DEVICE   = 0,
    KILN_MEMCPY_DEVICE_TO_HOST   = 1,
    KILN_MEMCPY_DEVICE_TO_DEVICE = 2,
} kiln_memcpy_kind;

/* Allocate size bytes (at least 1) on device; free with kiln_device_free. */
KILN_API kiln_status kiln_device_malloc     (kiln_device device, size_t size, void **out);
/* Release kiln_device_malloc memory; NULL is ignored. */
KILN_API void        kiln_device_free       (kiln_device device, void *p);
/* Copy size bytes; stream is a cudaStream_t, or NULL for a synchronous copy. */
KILN_API kiln_status kiln_device_memcpy     (kiln_device device, void *dst, const void *src, size_t size,
                                             kiln_memcpy_kind kind, void *stream);
/* A stream of the caller's own on device (a cudaStream_t, non-blocking), for
 * kiln_context_enqueue and the CUDA graph calls (a graph cannot be captured
 * on the default stream); *out is NULL on the CPU, which has none.  Release
 * with kiln_device_stream_destroy (NULL is ignored). */
KILN_API kiln_status kiln_device_stream_create (kiln_device device, void **out);
KILN_API void        kiln_device_stream_destroy(kiln_device device, void *stream);
/* Wait until the work queued on stream (NULL: the default stream) is done. */
KILN_API kiln_status kiln_device_synchronize(kiln_device device, void *stream);

/* ------------------------------------------------------------------------ */
/* Symbolic dimension expressions                                           */
/* ------------------------------------------------------------------------ */

/*
 * A kiln_expr names a node of an expression DAG owned by a kiln_exprs pool
 * (every network has one).  Nodes are hash-consed: building the same
 * expression twice gives the same kiln_expr, and operations on constants fold
 * to constants.  Division is integer: FLOORDIV rounds towards -inf, CEILDIV
 * towards +inf.  EQ and LT give 1 or 0.
 */
typedef int32_t kiln_expr;
#define KILN_EXPR_INVALID ((kiln_expr)-1)

typedef enum kiln_expr_op {       /* stored in engine files: never renumber */
    KILN_EXPR_CONST    = 0,       /* leaf: a 64-bit constant */
    KILN_EXPR_DIM      = 1,       /* leaf: a named dynamic dimension */
    KILN_EXPR_ADD      = 2,
    KILN_EXPR_SUB      = 3,
    KILN_EXPR_MUL      = 4,
    KILN_EXPR_FLOORDIV = 5,
    KILN_EXPR_CEILDIV  = 6,
    KILN_EXPR_MIN      = 7,
    KILN_EXPR_MAX      = 8,
    KILN_EXPR_EQ       = 9,
    KILN_EXPR_LT       = 10,
    KILN_EXPR_OP_COUNT
} kiln_expr_op;

typedef struct kiln_exprs kiln_exprs;

KILN_API kiln_expr   kiln_expr_const (kiln_exprs *pool, int64_t value);
KILN_API kiln_expr   kiln_expr_binary(kiln_exprs *pool, kiln_expr_op op, kiln_expr a, kiln_expr b);
/* True, with *value set, when e folded to a constant. */
KILN_API bool        kiln_expr_is_const(const kiln_exprs *pool, kiln_expr e, int64_t *value);
/* Write e as text ("(batch * 16)") into buf; returns the length it needed. */
KILN_API size_t      kiln_expr_format(const kiln_exprs *pool, kiln_expr e, char *buf, size_t size);
/* Evaluate e given a value for each dimension (indexed as kiln_network_add_dim returned them). */
KILN_API kiln_status kiln_expr_eval(const kiln_exprs *pool, kiln_expr e, const int64_t *dim_values,
                                    int32_t dim_count, int64_t *out);
/* True when e names a node of pool (for code that keeps expression ids,
 * such as a plugin whose fields refer to expressions of the engine). */
KILN_API bool        kiln_expr_is_valid(const kiln_exprs *pool, kiln_expr e);
/* True, with *index set, when e is a dimension leaf (index as
 * kiln_network_add_dim numbered it; kiln_engine_dim_info takes the same). */
KILN_API bool        kiln_expr_is_dim(const kiln_exprs *pool, kiln_expr e, int32_t *index);

/* ------------------------------------------------------------------------ */
/* Typed values: plugin fields                                              */
/* ------------------------------------------------------------------------ */

/*
 * A kiln_value is an immutable-after-construction tree of plain data: the
 * only thing a plugin may store in an engine.  Lists own their items, maps
 * own their values (keys are strings, order kept), arrays own a copy of
 * their data.  Adding an item transfers ownership of it to the container.
 */
typedef enum kiln_value_type {    /* stored in engine files: never renumber */
    KILN_VALUE_NONE    = 0,
    KILN_VALUE_BOOL    = 1,
    KILN_VALUE_INT64   = 2,
    KILN_VALUE_FLOAT64 = 3,
    KILN_VALUE_STRING  = 4,
    KILN_VALUE_BYTES   = 5,
    KILN_VALUE_LIST    = 6,
    KILN_VALUE_MAP     = 7,
    KILN_VALUE_ARRAY   = 8,       /* n-d array: dtype, shape, contiguous data */
} kiln_value_type;

typedef struct kiln_value kiln_value;

/* Constructors return NULL (with kiln_last_error set) on failure. */
KILN_API kiln_value *kiln_value_none   (void);
KILN_API kiln_value *kiln_value_bool   (bool v);
KILN_API kiln_value *kiln_value_int64  (int64_t v);
KILN_API kiln_value *kiln_value_float64(double v);
KILN_API kiln_value *kiln_value_string (const char *s, size_t len);  /* UTF-8, copied */
KILN_API kiln_value *kiln_value_bytes  (const void *data, size_t len);
KILN_API kiln_value *kiln_value_list   (void);
KILN_API kiln_value *kiln_value_map    (void);
KILN_API kiln_value *kiln_value_array  (kiln_dtype dtype, int32_t rank, const int64_t *dims, const void *data);
KILN_API void        kiln_value_free   (kiln_value *v);
KILN_API kiln_value *kiln_value_copy   (const kiln_value *v);

/* Append item to a list; takes ownership of item (also on failure). */
KILN_API kiln_status kiln_value_list_append(kiln_value *list, kiln_value *item);
/* Set key in a map (replacing an earlier value); takes ownership of item. */
KILN_API kiln_status kiln_value_map_set    (kiln_value *map, const char *key, kiln_value *item);

KILN_API kiln_value_type   kiln_value_get_type(const kiln_value *v);
KILN_API bool              kiln_value_as_bool   (const kiln_value *v);
KILN_API int64_t           kiln_value_as_int64  (const kiln_value *v);
KILN_API double            kiln_value_as_float64(const kiln_value *v);
/* String and bytes: pointer to the data, length in *len. */
KILN_API const char       *kiln_value_as_string (const kiln_value *v, size_t *len);
KILN_API const void       *kiln_value_as_bytes  (const kiln_value *v, size_t *len);
/* List and map: number of items; items by index; map keys by index. */
KILN_API size_t            kiln_value_count     (const kiln_value *v);
KILN_API const kiln_value *kiln_value_item      (const kiln_value *v, size_t i);
KILN_API const char       *kiln_value_key       (const kiln_value *v, size_t i);
/* Map lookup by key; NULL if absent (the last error is not set: a missing key
 * is an answer, not a failure) or if v is not a map (an error). */
KILN_API const kiln_value *kiln_value_map_get   (const kiln_value *v, const char *key);
/* Array: dtype, rank, dims (rank entries) and data. */
KILN_API kiln_status       kiln_value_array_info(const kiln_value *v, kiln_dtype *dtype, int32_t *rank,
                                                 const int64_t **dims, const void **data);

/* Encode to / decode from kiln's binary value format (docs/value-format.md).
 * kiln_value_decode never reads outside [data, data+size). */
KILN_API kiln_status kiln_value_encode(const kiln_value *v, uint8_t **out, size_t *out_size); /* free with kiln_free */
KILN_API kiln_status kiln_value_decode(const void *data, size_t size, kiln_value **out);
/* Structural equality (arrays compare dtype, shape and bytes). */
KILN_API bool        kiln_value_equal (const kiln_value *a, const kiln_value *b);

/* Free memory that a kiln call returned for the caller to free. */
KILN_API void        kiln_free(void *p);

/* ------------------------------------------------------------------------ */
/* Networks                                                                 */
/* ------------------------------------------------------------------------ */

typedef struct kiln_network kiln_network;
typedef int32_t kiln_tensor;          /* a tensor of one network */
#define KILN_TENSOR_INVALID ((kiln_tensor)-1)

typedef struct kiln_dim_range {
    int64_t min, opt, max;
} kiln_dim_range;

/* PAD's "mode": what the new elements are (numpy.pad's modes of these names). */
typedef enum kiln_pad_mode {
    KILN_PAD_CONSTANT = 0,   /* the "value" */
    KILN_PAD_EDGE     = 1,   /* the nearest edge element */
    KILN_PAD_REFLECT  = 2,   /* mirrored without repeating the edge: [c b | a b c | b a] */
    KILN_PAD_WRAP     = 3,   /* the other end, periodically: [b c | a b c | a b] */
    KILN_PAD_MODE_COUNT
} kiln_pad_mode;

typedef enum kiln_binary_op {   /* stored in engine files: never renumber */
    KILN_BINARY_ADD = 0,
    KILN_BINARY_SUB = 1,
    KILN_BINARY_MUL = 2,
    KILN_BINARY_DIV = 3,        /* integer division truncates toward zero; by zero gives 0 */
    KILN_BINARY_MIN = 4,
    KILN_BINARY_MAX = 5,
    KILN_BINARY_POW  = 6,       /* floating-point only */
    KILN_BINARY_MOD  = 7,       /* numpy.mod: the result has the divisor's sign; integer x mod 0 is 0 */
    KILN_BINARY_FMOD = 8,       /* C fmod / numpy.fmod: the result has the dividend's sign; integer x fmod 0 is 0 */
    KILN_BINARY_OP_COUNT
} kiln_binary_op;

typedef enum kiln_unary_op {    /* stored in engine files: never renumber */
    KILN_UNARY_RELU = 0,
    KILN_UNARY_GELU = 1,        /* tanh approximation */
    KILN_UNARY_SILU = 2,
    KILN_UNARY_EXP  = 3,
    KILN_UNARY_NEG  = 4,
    KILN_UNARY_SQRT = 5,
    KILN_UNARY_TANH       = 6,    /* tanh */
    KILN_UNARY_SIGMOID    = 7,    /* 1 / (1 + e^-x) */
    KILN_UNARY_ERF        = 8,    /* the error function */
    KILN_UNARY_GELU_ERF   = 9,    /* exact gelu: 0.5 x (1 + erf(x / sqrt 2)) (BERT, torch's default gelu) */
    KILN_UNARY_RSQRT      = 10,    /* 1 / sqrt(x) */
    KILN_UNARY_ABS        = 11,    /* |x| */
    KILN_UNARY_LOG        = 12,    /* natural logarithm */
    KILN_UNARY_SIN        = 13,    /* sine */
    KILN_UNARY_COS        = 14,    /* cosine */
    KILN_UNARY_FLOOR      = 15,    /* round down */
    KILN_UNARY_CEIL       = 16,    /* round up */
    KILN_UNARY_RECIPROCAL = 17,    /* 1 / x */
    KILN_UNARY_SIGN       = 18,    /* -1, 0 or 1 (NaN stays NaN) */
    KILN_UNARY_OP_COUNT
} kiln_unary_op;

typedef enum kiln_reduce_op {   /* stored in engine files: never renumber */
    KILN_REDUCE_SUM    = 0,
    KILN_REDUCE_MEAN   = 1,     /* floating-point only */
    KILN_REDUCE_MAX    = 2,     /* NaN propagates (as numpy.max) */
    KILN_REDUCE_MIN    = 3,
    KILN_REDUCE_PROD   = 4,
    KILN_REDUCE_ARGMAX = 5,     /* one axis; int64 indices, the first of equal maxima */
    KILN_REDUCE_ARGMIN = 6,
    KILN_REDUCE_OP_COUNT
} kiln_reduce_op;

typedef enum kiln_compare_op {  /* stored in engine files: never renumber; results are bool */
    KILN_COMPARE_EQUAL         = 0,   /* NaN equals nothing */
    KILN_COMPARE_NOT_EQUAL     = 1,
    KILN_COMPARE_LESS          = 2,
    KILN_COMPARE_LESS_EQUAL    = 3,
    KILN_COMPARE_GREATER       = 4,
    KILN_COMPARE_GREATER_EQUAL = 5,
    KILN_COMPARE_OP_COUNT
} kiln_compare_op;

/* How a collective layer combines the ranks' values (all_reduce, reduce_scatter). */
typedef enum kiln_collective_op {  /* stored in engine files: never renumber */
    KILN_COLLECTIVE_SUM  = 0,
    KILN_COLLECTIVE_PROD = 1,
    KILN_COLLECTIVE_MAX  = 2,
    KILN_COLLECTIVE_MIN  = 3,
    KILN_COLLECTIVE_OP_COUNT
} kiln_collective_op;

/* How scatter_nd and scatter_elements combine an update with the element it
 * lands on (ONNX's "reduction"; the "reduction" attribute, INT). */
typedef enum kiln_scatter_reduction {  /* stored in engine files: never renumber */
    KILN_SCATTER_NONE = 0,   /* replace (any dtype); of duplicate indices the last update in index order wins on
                                the CPU, an unspecified one on CUDA (ONNX leaves it unspecified) */
    KILN_SCATTER_ADD  = 1,   /* floats, int32, int64: applied once per update, in any order */
    KILN_SCATTER_MUL  = 2,
    KILN_SCATTER_MAX  = 3,
    KILN_SCATTER_MIN  = 4,
    KILN_SCATTER_REDUCTION_COUNT
} kiln_scatter_reduction;

KILN_API kiln_status kiln_network_create(kiln_network **out);
KILN_API void        kiln_network_free  (kiln_network *net);
/* The network's expression pool (owned by the network). */
KILN_API kiln_exprs *kiln_network_exprs (kiln_network *net);

/*
 * Declare a named dynamic dimension with one range per optimization profile.
 * Every dimension of a network must have the same number of ranges (the
 * number of profiles).  Using one name on several inputs means one dimension:
 * declare it once and use the returned expression in each input's shape.
 */
KILN_API kiln_status kiln_network_add_dim(kiln_network *net, const char *name,
                                          const kiln_dim_range *ranges, int32_t profile_count,
                                          kiln_expr *out);
/*
 * The network's place in a group of processes (tensor parallelism): this
 * engine is rank `rank` of `world_size` (default 0 of 1).  Collective layers
 * (all_reduce, all_gather, reduce_scatter) combine the tensors of every rank
 * of that group; all_gather's and reduce_scatter's output shapes depend on
 * world_size, so it cannot change once a collective layer has been added
 * (KILN_ERROR_STATE).  Stored in the engine (docs/engine-format.md); a
 * context joins its group with kiln_context_set_communicator.  world_size is
 * 1 to KILN_MAX_WORLD_SIZE, 0 <= rank < world_size.
 */
#define KILN_MAX_WORLD_SIZE 65536
KILN_API kiln_status kiln_network_set_parallel(kiln_network *net, int32_t rank, int32_t world_size);
KILN_API kiln_status kiln_network_parallel    (const kiln_network *net, int32_t *rank, int32_t *world_size);

/* Find a declared dimension by name. */
KILN_API kiln_status kiln_network_find_dim(kiln_network *net, const char *name, kiln_expr *out);

/* An input; each shape entry is a constant or a dimension from kiln_network_add_dim. */
KILN_API kiln_status kiln_network_add_input(kiln_network *net, const char *name, kiln_dtype dtype,
                                            int32_t rank, const kiln_expr *shape, kiln_tensor *out);
/* A constant (weights); the data (contiguous, row-major) is copied. */
KILN_API kiln_status kiln_network_add_constant(kiln_network *net, const char *name, kiln_dtype dtype,
                                               int32_t rank, const int64_t *dims, const void *data,
                                               kiln_tensor *out);

KILN_API kiln_status kiln_network_add_cast  (kiln_network *net, kiln_tensor x, kiln_dtype dtype, kiln_tensor *out);
/* Elementwise with numpy broadcasting; both operands must have the same dtype. */
KILN_API kiln_status kiln_network_add_binary(kiln_network *net, kiln_binary_op op, kiln_tensor a, kiln_tensor b,
                                             kiln_tensor *out);
/* Floating-point dtypes only (NEG also takes signed integers). */
KILN_API kiln_status kiln_network_add_unary (kiln_network *net, kiln_unary_op op, kiln_tensor x, kiln_tensor *out);
/* out = take(data, indices, axis): indices int32/int64, out shape = data[:axis] + indices + data[axis+1:]. */
KILN_API kiln_status kiln_network_add_gather(kiln_network *net, kiln_tensor data, kiln_tensor indices,
                                             int32_t axis, kiln_tensor *out);
/* New shape as expressions; at most one entry may be the constant -1 (inferred). */
KILN_API kiln_status kiln_network_add_reshape(kiln_network *net, kiln_tensor x, int32_t rank,
                                              const kiln_expr *shape, kiln_tensor *out);
/* a [..., M, K] x b [..., K, N]; batch dims broadcast; float dtypes; both ranks >= 2. */
KILN_API kiln_status kiln_network_add_matmul(kiln_network *net, kiln_tensor a, kiln_tensor b, kiln_tensor *out);
/* The same with either operand's last two axes swapped first (0 or 1 each;
 * other values are refused): transpose_b = 1 is x @ W.T for a weight W
 * [N, K] stored as nn.Linear keeps it, transpose_a = 1 is ONNX Gemm's
 * transA.  No copy is made: the kernels read the operand as stored.
 * (0, 0) is kiln_network_add_matmul exactly, and builds the same engine. */
KILN_API kiln_status kiln_network_add_matmul_transposed(kiln_network *net, kiln_tensor a, kiln_tensor b,
                                                        int transpose_a, int transpose_b, kiln_tensor *out);

/*
 * Any built-in layer by op, for importers and bindings that should not need
 * one call per op.  The ops are flat (one value per op, "add" and "gelu"
 * alike); their names, input counts and attributes come from kiln's one op
 * table (docs/architecture.md, "The op table"), and the layer is checked by
 * the same rule as through the calls above, which are equivalent:
 *   kiln_network_add_binary(net, KILN_BINARY_ADD, a, b, &y)
 *     == kiln_network_add_layer(net, KILN_LAYER_ADD, 2, (kiln_tensor[]){a, b}, 0, NULL, &y).
 * Numbers are part of the C ABI: never renumbered, new ops are appended.
 */
typedef enum kiln_layer_op {
    KILN_LAYER_CAST    = 0,     /* attribute "to" (DTYPE) */
    KILN_LAYER_ADD     = 1,     /* binary ops: numpy broadcasting, same dtypes */
    KILN_LAYER_SUB     = 2,
    KILN_LAYER_MUL     = 3,
    KILN_LAYER_DIV     = 4,
    KILN_LAYER_MIN     = 5,
    KILN_LAYER_MAX     = 6,
    KILN_LAYER_RELU    = 7,     /* unary ops */
    KILN_LAYER_GELU    = 8,     /* tanh approximation */
    KILN_LAYER_SILU    = 9,
    KILN_LAYER_EXP     = 10,
    KILN_LAYER_NEG     = 11,
    KILN_LAYER_SQRT    = 12,
    KILN_LAYER_GATHER  = 13,    /* inputs data, indices; attribute "axis" (INT, optional, default 0) */
    KILN_LAYER_RESHAPE = 14,    /* attribute "shape" (EXPRS; one entry may be the constant -1) */
    KILN_LAYER_MATMUL  = 15,    /* "transpose_a", "transpose_b" (INT 0/1, default 0): swap that operand's
                                   last two axes first (kiln_network_add_matmul_transposed) */
    /* unary ops added later (appended: the numbers are ABI) */
    KILN_LAYER_TANH       = 16,
    KILN_LAYER_SIGMOID    = 17,
    KILN_LAYER_ERF        = 18,
    KILN_LAYER_GELU_ERF   = 19,
    KILN_LAYER_RSQRT      = 20,
    KILN_LAYER_ABS        = 21,
    KILN_LAYER_LOG        = 22,
    KILN_LAYER_SIN        = 23,
    KILN_LAYER_COS        = 24,
    KILN_LAYER_FLOOR      = 25,
    KILN_LAYER_CEIL       = 26,
    KILN_LAYER_RECIPROCAL = 27,
    KILN_LAYER_SIGN       = 28,
    /* Ops with attribute lists (engine format version 2). */
    KILN_LAYER_TRANSPOSE  = 29,    /* "perm" (INTS, required: output axis i is input axis perm[i]) */
    KILN_LAYER_SLICE      = 30,    /* "starts", "ends" (EXPRS, one per axis, required), "steps" (INTS, optional,
                                      nonzero constants, default 1): numpy/ONNX Slice, negative entries count
                                      from the end, out-of-range ones are clamped */
    KILN_LAYER_CONCAT     = 31,    /* 1 to 64 inputs; "axis" (INT, default 0) */
    KILN_LAYER_EXPAND     = 32,    /* "shape" (EXPRS): numpy broadcast of the input and shape (ONNX Expand) */
    KILN_LAYER_REDUCE_SUM  = 33,   /* reductions: "axes" (INTS, default all), "keepdims" (INT, default 1) */
    KILN_LAYER_REDUCE_MEAN = 34,
    KILN_LAYER_REDUCE_MAX  = 35,
    KILN_LAYER_REDUCE_MIN  = 36,
    KILN_LAYER_REDUCE_PROD = 37,
    KILN_LAYER_ARGMAX      = 38,   /* "axis" (INT, default 0), "keepdims" (INT, default 1); int64 output */
    KILN_LAYER_ARGMIN      = 39,
    KILN_LAYER_SOFTMAX     = 40,   /* "axis" (INT, default -1) */
    KILN_LAYER_LOG_SOFTMAX = 41,
    KILN_LAYER_LAYER_NORM  = 42,   /* inputs x, scale, bias; "axis" (INT, default -1: normalize over axes axis…),
                                      "epsilon" (FLOAT, default 1e-5) */
    KILN_LAYER_RMS_NORM    = 43,   /* inputs x, scale; "axis", "epsilon" as LAYER_NORM (default 1e-6) */
    KILN_LAYER_WHERE       = 44,   /* inputs cond (bool), a, b: cond ? a : b, numpy broadcasting */
    KILN_LAYER_POW         = 45,   /* binary ops added later */
    KILN_LAYER_MOD         = 46,
    KILN_LAYER_FMOD        = 47,
    KILN_LAYER_EQUAL         = 48,  /* comparisons: two operands of one dtype, numpy broadcasting, bool result */
    KILN_LAYER_NOT_EQUAL     = 49,
    KILN_LAYER_LESS          = 50,
    KILN_LAYER_LESS_EQUAL    = 51,
    KILN_LAYER_GREATER       = 52,
    KILN_LAYER_GREATER_EQUAL = 53,
    KILN_LAYER_GATHER_ELEMENTS = 54,  /* inputs data, indices (int32/int64, data's rank); "axis" (INT, default 0):
                                         out[i..] = data[i.. with axis i_axis replaced by indices[i..]]
                                         (torch.gather / ONNX GatherElements; negative indices count from the end) */
    KILN_LAYER_CUMSUM = 55,        /* "axis" (INT, default 0), "exclusive", "reverse" (INT 0/1, default 0): ONNX CumSum */
    KILN_LAYER_PAD    = 56,        /* "pads" (EXPRS: before each axis, then after; >= 0), "value" (FLOAT, default 0),
                                      "mode" (INT kiln_pad_mode, default constant): ONNX Pad / numpy.pad */
    KILN_LAYER_ATTENTION = 57,     /* inputs q [B,Hq,Sq,D], k [B,Hkv,Skv,D], v [B,Hkv,Skv,Dv] (Hq a multiple of Hkv:
                                      grouped-query heads); "causal" (INT 0/1: query i sees keys j <= i), "scale"
                                      (FLOAT, default 0: 1/sqrt(D)): softmax(q kᵀ · scale) v, one fused layer */
    /* Collective layers (kiln_network_set_parallel): every rank of the group
     * runs the same layer on its own tensor; any dtype but bool for the
     * reductions, any dtype for all_gather. */
    KILN_LAYER_ALL_REDUCE_SUM  = 58,  /* out = the elementwise sum over the ranks (shape unchanged) */
    KILN_LAYER_ALL_REDUCE_PROD = 59,
    KILN_LAYER_ALL_REDUCE_MAX  = 60,
    KILN_LAYER_ALL_REDUCE_MIN  = 61,
    KILN_LAYER_ALL_GATHER      = 62,  /* "axis" (INT, default 0): the ranks' tensors concatenated along axis, in
                                         rank order (that axis grows world_size times) */
    KILN_LAYER_REDUCE_SCATTER  = 63,  /* "axis" (INT, default 0): the sum over the ranks, cut into world_size
                                         equal parts along axis; rank r keeps part r (the axis must divide) */
    KILN_LAYER_SCATTER_ND       = 64, /* inputs data, indices (int32/int64, last axis k <= data's rank, a constant),
                                         updates (indices.shape[:-1] + data.shape[k:]); "reduction" (INT,
                                         kiln_scatter_reduction, default none): out = data with the slices
                                         data[indices[i..]] replaced by (or combined with) updates[i..] (ONNX
                                         ScatterND; negative indices count from the end; out of range fails the
                                         run on the CPU and is skipped on CUDA) */
    KILN_LAYER_SCATTER_ELEMENTS = 65, /* inputs data, indices (int32/int64, data's rank), updates (indices' shape);
                                         "axis" (INT, default 0), "reduction" (INT, as scatter_nd): out = data with
                                         out[i.. with axis i_axis replaced by indices[i..]] = updates[i..]
                                         (torch.scatter_ / scatter_reduce, ONNX ScatterElements) */
    KILN_LAYER_TOPK             = 66,  /* two outputs, values and indices (int64; kiln_network_add_layer_outputs):
                                         the k largest ("largest" 1) or smallest ("largest" 0) entries along
                                         "axis" (INT, default -1) and their positions, ONNX TopK / torch.topk;
                                         "k" (EXPRS, one entry, required; 0 <= k <= the axis), "largest",
                                         "sorted" (INT 0/1, default 1; the results are always sorted, best
                                         first).  Equal values: the lower index first; NaN ranks above every
                                         number (first when largest, last when smallest), as in torch.
                                         float32, float16, bfloat16, int32, int64 */
    KILN_LAYER_ROTARY_EMBEDDING = 67,  /* inputs x, cos_cache, sin_cache and optionally position_ids (int32/int64):
                                         rotary position embedding, ONNX RotaryEmbedding (opset 23).  x is
                                         [B, S, H*D] with "num_heads" H, or [B, H, S, D]; the caches are
                                         [P, R/2] rows picked by position_ids [B, S] (each in [0, P): out of
                                         range fails the run on the CPU; on CUDA the row reads as zeros), or
                                         [B, S, R/2] without position_ids.  Of each head's first R elements
                                         ("rotary_embedding_dim" R, INT, default 0: R = D, even), pairs (x1, x2)
                                         — halves, or even/odd elements with "interleaved" (INT 0/1, default
                                         0) — become (x1·cos − x2·sin, x1·sin + x2·cos); the other D − R pass
                                         unchanged.  Output shaped like x; float32, float16, bfloat16 (computed
                                         in float32) */
    KILN_LAYER_CONV             = 68,  /* inputs x [N, C, D1..Dk] (k = 1, 2, 3 spatial axes), w [M, C/group, K1..Kk],
                                         and optionally bias [M]; "strides", "dilations" (INTS, k entries >= 1,
                                         required), "pads" (EXPRS: k begins then k ends, >= 0; default 0),
                                         "group" (INT >= 1 dividing C and M, default 1): ONNX Conv / torch
                                         conv1d..conv3d (cross-correlation); out [N, M, O1..Ok] with
                                         Oi = floor((Di + pads - dilation*(Ki-1) - 1) / stride) + 1.
                                         float32, float16, bfloat16 (sums in float32) */
    KILN_LAYER_CONV_TRANSPOSE   = 69,  /* inputs x [N, C, D1..Dk], w [C, M/group, K1..Kk], optionally bias [M];
                                         attributes as conv's, but "pads" may be negative: a negative end pad
                                         extends the output (ONNX's output_padding): ONNX ConvTranspose / torch
                                         conv_transpose1d..3d; out [N, M, O1..Ok] with Oi = stride·(Di-1) +
                                         dilation·(Ki-1) + 1 - pads.  float32, float16, bfloat16 */
    KILN_LAYER_MAX_POOL         = 70,  /* input x [N, C, D1..Dk] (k = 1, 2, 3 spatial axes); "kernel_shape",
                                         "strides", "dilations" (INTS, k entries >= 1, required), "pads" (EXPRS: k
                                         begins then k ends, >= 0; default 0), "ceil_mode" (INT 0/1, default 0):
                                         ONNX MaxPool (no Indices output) / torch max_pool1d..3d; out [N, C,
                                         O1..Ok] with Oi = floor (or ceil) ((Di + pads - dilation*(Ki-1) - 1) /
                                         stride) + 1, less one when ceil's last window would start in the end
                                         padding.  NaN in a window gives NaN (numpy's max, torch); a window
                                         with no input element (pads or dilation stepping over the input) gives
                                         -inf.  float32, float16, bfloat16 */
    KILN_LAYER_AVG_POOL         = 71,  /* as max_pool, plus "count_include_pad" (INT 0/1, default 0): the mean of
                                         the window's input elements, or of all its taps inside the padded
                                         input when 1: ONNX AveragePool / torch avg_pool1d..3d; a window with
                                         nothing to count gives NaN (0/0).  Sums in float32 */
    KILN_LAYER_RESIZE           = 72,  /* input x of any rank >= 1; "sizes" (EXPRS, one per axis, >= 0, required:
                                         the output shape), "mode" (INT: 0 nearest, 1 linear, 2 cubic; default
                                         0), "coordinate_transformation_mode" (INT: 0 half_pixel, 1
                                         half_pixel_symmetric, 2 pytorch_half_pixel, 3 align_corners, 4
                                         asymmetric; default 0), "nearest_mode" (INT: 0 round_prefer_floor, 1
                                         round_prefer_ceil, 2 floor, 3 ceil; default 0), "exclude_outside"
                                         (INT 0/1), "cubic_coeff_a" (FLOAT, default -0.75), "scales" (FLOATS,
                                         one per axis: the scale the coordinate transform divides by, as
                                         ONNX's scales input; 0 or left out: out/in of the axis): ONNX Resize
                                         (no tf_crop_and_resize, no antialias) / torch interpolate.  Each
                                         output element is the separable (n-linear, n-cubic) interpolation of
                                         the input, edges repeated, in float32.  float32, float16, bfloat16;
                                         nearest also every other dtype */
    KILN_LAYER_OP_COUNT
} kiln_layer_op;

typedef enum kiln_attr_kind {   /* what a kiln_layer_attr holds */
    KILN_ATTR_INT   = 0,        /* an integer in i */
    KILN_ATTR_DTYPE = 1,        /* a kiln_dtype in i */
    KILN_ATTR_EXPRS = 2,        /* count expressions of the network's pool in exprs */
    KILN_ATTR_INTS  = 3,        /* count integers in ints */
    KILN_ATTR_FLOAT = 4,        /* a number in f */
    KILN_ATTR_FLOATS = 5,       /* count numbers in floats */
} kiln_attr_kind;

typedef struct kiln_layer_attr {
    const char      *name;      /* as the op's schema names it (kiln_layer_op_attr) */
    kiln_attr_kind   kind;      /* must be the schema's kind */
    int64_t          i;
    int32_t          count;
    const kiln_expr *exprs;
    const int64_t   *ints;
    double           f;
    const double    *floats;
} kiln_layer_attr;

/* The op's name ("add"), or NULL when op is not a kiln_layer_op. */
KILN_API const char *kiln_layer_op_name(kiln_layer_op op);
/* The op with that name; KILN_ERROR_NOT_FOUND (naming it) when there is none. */
KILN_API kiln_status kiln_layer_op_from_name(const char *name, kiln_layer_op *out);
/* How many inputs the op takes (the most: ROTARY_EMBEDDING's last, position_ids, may be left out) and how
 * many attributes its schema has; outputs may be NULL. */
KILN_API kiln_status kiln_layer_op_info(kiln_layer_op op, int32_t *input_count, int32_t *attr_count);
/* How many outputs a layer of the op gives (1 but for TOPK's 2). */
KILN_API kiln_status kiln_layer_op_outputs(kiln_layer_op op, int32_t *output_count);
/* Attribute index of op's schema: its name, kind and whether it must be given; outputs may be NULL. */
KILN_API kiln_status kiln_layer_op_attr(kiln_layer_op op, int32_t index, const char **name, kiln_attr_kind *kind,
                                        int *required);
/* Add a built-in layer of one output; attrs are checked against the op's
 * schema (unknown, repeated, missing or mistyped ones are refused, naming
 * them).  An op of several outputs (kiln_layer_op_outputs) is refused here. */
KILN_API kiln_status kiln_network_add_layer(kiln_network *net, kiln_layer_op op, int32_t input_count,
                                            const kiln_tensor *inputs, int32_t attr_count,
                                            const kiln_layer_attr *attrs, kiln_tensor *out);
/* The same for any op: outputs receives output_count tensors, which must be
 * the op's count (kiln_layer_op_outputs), in the op's order (TOPK: values,
 * indices). */
KILN_API kiln_status kiln_network_add_layer_outputs(kiln_network *net, kiln_layer_op op, int32_t input_count,
                                                    const kiln_tensor *inputs, int32_t attr_count,
                                                    const kiln_layer_attr *attrs, int32_t output_count,
                                                    kiln_tensor *outputs);
/* TOPK (see KILN_LAYER_TOPK): k an expression of the network's pool (a
 * constant or symbolic), axis negative from the end; largest and sorted 0/1. */
KILN_API kiln_status kiln_network_add_topk(kiln_network *net, kiln_tensor x, kiln_expr k, int32_t axis, int largest,
                                           int sorted, kiln_tensor *values, kiln_tensor *indices);

/*
 * Declare that a plugin layer writes its output `out` in place, into the
 * memory of its input `in` (TensorRT's aliased outputs, torch's
 * mutates_args): `in` must be a network input read by the layer that makes
 * `out`, with out's dtype and shape.  The engine then has no memory of its
 * own for `out`: later layers reading `out` read the caller's buffer for
 * `in`, which the run modifies (a KV cache updated where it lies).  An
 * aliased tensor cannot be marked as an output (read the input's buffer).
 */
KILN_API kiln_status kiln_network_alias_output(kiln_network *net, kiln_tensor out, kiln_tensor in);

/*
 * A plugin layer whose outputs the creator's own rule gives (infer_dtypes,
 * infer_shapes, workspace_size).  The plugin creator (namespace, name,
 * version) must be registered (kiln/plugin.h).  fields must be a
 * KILN_VALUE_MAP; it is copied.  module names where the plugin is defined
 * (e.g. the Python module) so that a load without it can say what to import;
 * may be NULL.  outputs receives output_count tensors, as many as the creator
 * declares.  A plugin without a rule in C (a Python plugin) is added with its
 * traced outputs instead: kiln_network_add_plugin_traced (kiln/plugin.h).
 */
KILN_API kiln_status kiln_network_add_plugin(kiln_network *net, const char *plugin_namespace,
                                             const char *name, const char *version, const char *module,
                                             const kiln_value *fields, int32_t input_count,
                                             const kiln_tensor *inputs, int32_t output_count,
                                             kiln_tensor *outputs);

/* Mark a tensor as a network output; dtype must equal the tensor's dtype. */
KILN_API kiln_status kiln_network_mark_output(kiln_network *net, kiln_tensor t, const char *name, kiln_dtype dtype);

/* What the network knows about a tensor so far. */
KILN_API kiln_status kiln_network_tensor_info(kiln_network *net, kiln_tensor t, kiln_dtype *dtype,
                                              int32_t *rank, kiln_expr *shape /* KILN_MAX_RANK entries */);
KILN_API const char *kiln_network_tensor_name(kiln_network *net, kiln_tensor t);
/* Give a layer output a readable name (default "layerN.outM"). */
KILN_API kiln_status kiln_network_set_tensor_name(kiln_network *net, kiln_tensor t, const char *name);

/* ------------------------------------------------------------------------ */
/* Building                                                                 */
/* ------------------------------------------------------------------------ */

/* Bytes owned by kiln (a serialized engine). */
typedef struct kiln_blob kiln_blob;
KILN_API const uint8_t *kiln_blob_data(const kiln_blob *b);
KILN_API size_t         kiln_blob_size(const kiln_blob *b);
KILN_API kiln_status    kiln_blob_save(const kiln_blob *b, const char *path);
KILN_API void           kiln_blob_free(kiln_blob *b);

typedef struct kiln_build_options {
    uint32_t struct_size;        /* sizeof(kiln_build_options), for evolution */
    uint32_t flags;              /* reserved, 0 */
} kiln_build_options;

typedef struct kiln_build_report {
    uint64_t arena_bytes;        /* activation arena, sized at the profiles' maxima */
    uint64_t activation_bytes;   /* sum of all activations without reuse */
    uint64_t weight_bytes;
    int32_t  layer_count;
} kiln_build_report;

/* Validate, infer, plan memory and serialize.  options may be NULL. */
KILN_API kiln_status kiln_network_build(kiln_network *net, const kiln_build_options *options,
                                        kiln_blob **out);
/* The report of the last successful build of net. */
KILN_API kiln_status kiln_network_build_report(const kiln_network *net, kiln_build_report *out);

/* ------------------------------------------------------------------------ */
/* Engines                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct kiln_engine kiln_engine;

enum kiln_load_flags {
    /* Skip verifying the weights section's checksum (metadata is always
     * verified).  For large mapped engines whose file is trusted. */
    KILN_LOAD_SKIP_WEIGHT_CHECKSUM = 1u << 0,
    /* Do not look plugins up in the registry: the engine can be described
     * (kiln_engine_*) but not run; kiln_context_create fails, naming the
     * first unresolved plugin.  For tools that inspect engines whose plugins
     * are not available in this process. */
    KILN_LOAD_NO_PLUGINS           = 1u << 1,
    /* Refuse (KILN_ERROR_UNSUPPORTED) an engine that carries machine code:
     * one whose plugins run code stored in the engine (ahead-of-time Triton
     * kernels, kiln::TritonAOT).  For callers that run engines from sources
     * they do not trust to run code (docs/security.md). */
    KILN_LOAD_NO_MACHINE_CODE      = 1u << 2,
};
/* Every flag above; a load with any other bit set is refused, since a flag
 * this version does not know could be one the caller relies on. */
#define KILN_LOAD_KNOWN_FLAGS 0x7u

/* Load from memory; the bytes are copied. */
KILN_API kiln_status kiln_engine_load_memory(const void *data, size_t size, uint32_t flags, kiln_engine **out);
/* Load from a file, mapped read-only: weights are used in place, not copied. */
KILN_API kiln_status kiln_engine_load_file  (const char *path, uint32_t flags, kiln_engine **out);
/* Engines are reference counted: contexts hold a reference. */
KILN_API void        kiln_engine_free       (kiln_engine *engine);

typedef enum kiln_io_kind { KILN_IO_INPUT = 0, KILN_IO_OUTPUT = 1 } kiln_io_kind;

typedef struct kiln_io_info {
    const char *name;            /* owned by the engine */
    kiln_io_kind kind;
    kiln_dtype  dtype;
    int32_t     rank;
    kiln_expr   shape[KILN_MAX_RANK];  /* in the engine's expression pool */
} kiln_io_info;

KILN_API int32_t     kiln_engine_io_count(const kiln_engine *e);
/* 1 when some layer of the engine writes into the input `name` in place
 * (kiln_network_alias_output), 0 when none does or there is no such input. */
KILN_API int kiln_engine_input_is_written(const kiln_engine *e, const char *name);
KILN_API kiln_status kiln_engine_io_info (const kiln_engine *e, int32_t index, kiln_io_info *out);
/* Index of an input or output by name, or -1 (with an error naming it). */
KILN_API int32_t     kiln_engine_io_index(const kiln_engine *e, const char *name);
KILN_API const kiln_exprs *kiln_engine_exprs(const kiln_engine *e);
KILN_API int32_t     kiln_engine_profile_count(const kiln_engine *e);
KILN_API int32_t     kiln_engine_dim_count(const kiln_engine *e);
KILN_API kiln_status kiln_engine_dim_info(const kiln_engine *e, int32_t dim, const char **name,
                                          kiln_dim_range *ranges /* profile_count entries */);
KILN_API int32_t     kiln_engine_layer_count(const kiln_engine *e);
/* Layer description: kind ("matmul", "plugin", ...), for a plugin "ns::name v1". */
KILN_API kiln_status kiln_engine_layer_info(const kiln_engine *e, int32_t index, const char **kind,
                                            const char **detail, int32_t *input_count, const int32_t **inputs,
                                            int32_t *output_count, const int32_t **outputs);
KILN_API int32_t     kiln_engine_tensor_count(const kiln_engine *e);
KILN_API const char *kiln_engine_tensor_name(const kiln_engine *e, int32_t tensor);
/* A tensor's dtype and symbolic shape (in kiln_engine_exprs); outputs may be NULL. */
KILN_API kiln_status kiln_engine_tensor_info(const kiln_engine *e, int32_t tensor, kiln_dtype *dtype,
                                             int32_t *rank, kiln_expr *shape /* KILN_MAX_RANK entries */);
KILN_API uint64_t    kiln_engine_arena_bytes(const kiln_engine *e);
KILN_API uint64_t    kiln_engine_weight_bytes(const kiln_engine *e);
/* The format version of the engine's file (docs/engine-format.md). */
KILN_API uint32_t    kiln_engine_format_version(const kiln_engine *e);
/* The rank and world size the engine was built for (kiln_network_set_parallel). */
KILN_API kiln_status kiln_engine_parallel(const kiln_engine *e, int32_t *rank, int32_t *world_size);
KILN_API int32_t     kiln_engine_plugin_count(const kiln_engine *e);
KILN_API kiln_status kiln_engine_plugin_info(const kiln_engine *e, int32_t index, const char **plugin_namespace,
                                             const char **name, const char **version, const char **module);
/* The kiln_plugin_flags (kiln/plugin.h) the plugin's creator had when the engine
 * was built: KILN_PLUGIN_NEEDS_PYTHON says running it needs Python. */
KILN_API kiln_status kiln_engine_plugin_flags(const kiln_engine *e, int32_t index, uint32_t *flags);
/* The plugin's fields (a map), as stored: owned by the engine, valid while it
 * is loaded.  For kiln::TritonAOT they describe the compiled kernels
 * (docs/plugin-guide.md); `kiln inspect` lists them. */
KILN_API kiln_status kiln_engine_plugin_fields(const kiln_engine *e, int32_t index, const kiln_value **fields);
/* Activation memory a context needs when every dimension is at its opt
 * (at_max false) or max (at_max true) of `profile`: contexts size their arena
 * for the shapes they run, so this, not kiln_engine_arena_bytes (the plan at
 * all profiles' maxima), is what a typical run holds. */
KILN_API kiln_status kiln_engine_activation_bytes(const kiln_engine *e, int32_t profile, bool at_max,
                                                  uint64_t *bytes);
/* The plugin record (index for kiln_engine_plugin_*) a plugin layer uses, or
 * -1 when the layer is not a plugin layer or does not exist. */
KILN_API int32_t     kiln_engine_layer_plugin(const kiln_engine *e, int32_t layer);

/* ------------------------------------------------------------------------ */
/* Execution contexts                                                       */
/* ------------------------------------------------------------------------ */

typedef struct kiln_context kiln_context;

typedef struct kiln_context_options {
    uint32_t    struct_size;     /* sizeof(kiln_context_options) */
    kiln_device device;          /* default: CPU */
    /* Most bytes of activation memory the context may hold; 0: no cap.  A
     * context sizes its activation arena for the shapes it runs (growing it
     * when shapes grow), not for the profiles' maxima the engine was planned
     * at; shapes that would need more than the cap fail with
     * KILN_ERROR_NO_MEMORY saying how much they need. */
    uint64_t    max_activation_bytes;
} kiln_context_options;

/* One context per thread; many contexts may run one engine concurrently. */
KILN_API kiln_status kiln_context_create(kiln_engine *engine, const kiln_context_options *options,
                                         kiln_context **out);
KILN_API void        kiln_context_free  (kiln_context *ctx);
KILN_API kiln_engine *kiln_context_engine(kiln_context *ctx);
KILN_API kiln_device kiln_context_device(const kiln_context *ctx);

/* Set an input's concrete shape.  Checked against the dimension ranges of the
 * engine's profiles; the error names the input, the dimension and the range. */
KILN_API kiln_status kiln_context_set_input_shape(kiln_context *ctx, const char *name, int32_t rank,
                                                  const int64_t *dims);
/* Shape of an input or output once every input shape is set (and checked). */
KILN_API kiln_status kiln_context_tensor_shape(kiln_context *ctx, const char *name, int32_t *rank,
                                               int64_t *dims /* KILN_MAX_RANK entries */);
/* Bind the buffer (contiguous, on the context's device) of an input or output. */
KILN_API kiln_status kiln_context_set_tensor(kiln_context *ctx, const char *name, void *data);
/* Run the engine.  stream: a cudaStream_t on CUDA, ignored (NULL) on the CPU. */
KILN_API kiln_status kiln_context_enqueue(kiln_context *ctx, void *stream);
/*
 * CUDA graphs.  kiln_context_capture runs the engine once on stream
 * eagerly (so one-time work such as JIT compilation happens outside the
 * capture), then runs it again while recording it into a graph (plugins
 * included: a Python plugin's kernels are recorded, its Python code runs only
 * during the capture), so
 * kiln_context_replay launches the whole run at once with no per-layer work
 * and no Python.  The graph is tied to the shapes and buffers bound at
 * capture: changing either makes it stale, and replay then fails with
 * KILN_ERROR_STATE until kiln_context_capture is called again.
 * KILN_ERROR_UNSUPPORTED on the CPU.
 */
KILN_API kiln_status kiln_context_capture(kiln_context *ctx, void *stream);
KILN_API kiln_status kiln_context_replay (kiln_context *ctx, void *stream);
/* True when a captured graph matches the current shapes and buffers. */
KILN_API bool        kiln_context_graph_ready(const kiln_context *ctx);

/*
 * Communicators: how the contexts of a tensor-parallel job reach each other
 * (NCCL on CUDA, loaded at run time from libnccl.so.2).  Rank 0 makes an id
 * and shares it with the others (a file, an environment variable,
 * torch.distributed, MPI); every rank then joins with its own rank:
 *
 *     kiln_comm_id id;
 *     if (rank == 0) kiln_comm_id_new(&id);              // then share it
 *     kiln_context_set_communicator(ctx, rank, world_size, &id);
 *
 * A context whose engine has collective layers and a world size above 1
 * needs one before it runs.  At world size 1 collectives are copies and no
 * communicator is needed; given an id there, a CUDA context joins a one-rank
 * NCCL communicator and its collectives go through NCCL (how the NCCL path
 * is exercised on a single GPU).  Joining waits until every rank has joined, at
 * most $KILN_NCCL_TIMEOUT_S seconds (default 300): a rank that never comes
 * fails the call, naming this rank, instead of hanging.
 */
#define KILN_COMM_ID_BYTES 128
typedef struct kiln_comm_id {
    uint8_t bytes[KILN_COMM_ID_BYTES];   /* an ncclUniqueId */
} kiln_comm_id;
/* The 256 hex digits of an id and its NUL. */
#define KILN_COMM_ID_HEX_SIZE (2 * KILN_COMM_ID_BYTES + 1)

/* A fresh id (ncclGetUniqueId): needs the CUDA backend and libnccl. */
KILN_API kiln_status kiln_comm_id_new     (kiln_comm_id *out);
/* Lower-case hex, NUL-terminated; size must be at least KILN_COMM_ID_HEX_SIZE. */
KILN_API kiln_status kiln_comm_id_to_hex  (const kiln_comm_id *id, char *out, size_t size);
/* Exactly 256 hex digits (surrounding white space is ignored). */
KILN_API kiln_status kiln_comm_id_from_hex(const char *hex, kiln_comm_id *out);
/*
 * The id of a job launched by mpirun, torchrun or a script: $KILN_NCCL_ID
 * (hex) when set; else $KILN_NCCL_ID_FILE, a path every rank sees: rank 0
 * makes a fresh id and writes it there (atomically; a file that already
 * exists is refused, since other ranks may have read a stale id from it), the
 * others wait for it (at most $KILN_NCCL_TIMEOUT_S seconds).  Use a fresh
 * path per job.
 */
KILN_API kiln_status kiln_comm_id_from_env(int32_t rank, kiln_comm_id *out);
/* The same file protocol for a path of the caller's (a job with several
 * communicators uses one fresh path for each): rank 0 writes a fresh id to
 * path, the others wait for it. */
KILN_API kiln_status kiln_comm_id_from_file(int32_t rank, const char *path, kiln_comm_id *out);
/* This process's rank, group size and rank on its node from the launcher's
 * environment: RANK/WORLD_SIZE/LOCAL_RANK (torchrun), OMPI_COMM_WORLD_RANK/
 * _SIZE/_LOCAL_RANK (Open MPI), PMI_RANK/PMI_SIZE (MPICH), SLURM_PROCID/
 * SLURM_NTASKS/SLURM_LOCALID; KILN_ERROR_NOT_FOUND when none is set.
 * Outputs may be NULL. */
KILN_API kiln_status kiln_comm_env(int32_t *rank, int32_t *world_size, int32_t *local_rank);

/* Join the group: rank and world_size must be the engine's
 * (kiln_engine_parallel).  At world size 1 an id is optional: without one
 * nothing is joined (collectives are copies); with one a CUDA context joins a
 * one-rank NCCL communicator.  Once per context. */
KILN_API kiln_status kiln_context_set_communicator(kiln_context *ctx, int32_t rank, int32_t world_size,
                                                   const kiln_comm_id *id);
/* Wait for the work enqueued on stream.  With a communicator it also watches
 * it: a peer that failed, or a wait longer than $KILN_NCCL_TIMEOUT_S, aborts
 * the communicator and fails naming this rank (never an endless hang); the
 * context cannot run collectives afterwards. */
KILN_API kiln_status kiln_context_synchronize(kiln_context *ctx, void *stream);

/* Device memory the context holds (activation arena, workspaces). */
KILN_API uint64_t    kiln_context_memory_bytes(const kiln_context *ctx);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
