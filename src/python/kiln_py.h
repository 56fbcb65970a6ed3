/*
 * kiln_py.h — what the files of the _kiln extension module share.
 *
 * _kiln is the C half of the `kiln` Python package: it wraps the public C API
 * (include/kiln/kiln.h, include/kiln/plugin.h) in a few heap types and holds
 * the bridge that turns a Python plugin class into a kiln_plugin_creator.
 * Everything lives in the module state (PEP 573/630): no C globals, so the
 * module could be loaded in several interpreters (Python plugins registered
 * in the process-wide kiln registry still belong to the interpreter that
 * registered them).
 *
 * Files, one concept each:
 *   module.c          module definition, state, kiln.Error, small functions
 *   expr_pool.c       ExprPool: a handle on a kiln_exprs pool (symbolic dims)
 *   network_object.c  Network: kiln_network and its layers
 *   blob_object.c     Blob: serialized engine bytes (buffer protocol, save)
 *   engine_object.c   Engine: a loaded engine and its metadata
 *   context_object.c  Context: an execution context; run() binds and runs
 *   tensor_view.c     reading pointer/shape/dtype from Python arrays (DLPack, buffers)
 *   tensor_wrapper.c  TensorWrapper: a kiln_tensor_desc shown to Python
 *   value_convert.c   Python objects <-> kiln_value (plugin fields)
 *   plugin_bridge.c   Python plugin classes as kiln plugin creators
 */
#ifndef KILN_PYTHON_KILN_PY_H
#define KILN_PYTHON_KILN_PY_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "kiln/kiln.h"
#include "kiln/plugin.h"

/* Take the raised exception (normalized, traceback attached), or NULL.
 * PyErr_Fetch is deprecated from 3.12 on; both versions are supported. */
static inline PyObject *kiln_py_fetch_exception(void) {
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (!type) return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb && value) PyException_SetTraceback(value, tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise exc again (steals the reference). */
static inline void kiln_py_restore_exception(PyObject *exc) {
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
#endif
}

typedef struct kiln_py_state {
    PyObject     *error;            /* kiln.Error (a RuntimeError) */
    PyTypeObject *pool_type;
    PyTypeObject *network_type;
    PyTypeObject *blob_type;
    PyTypeObject *engine_type;
    PyTypeObject *context_type;
    PyTypeObject *wrapper_type;
    /* What TensorWrapper.dtype returns for each kiln_dtype (torch dtypes
     * when torch is importable); set by kiln.dtypes.  NULL: the int code. */
    PyObject     *wrapper_dtypes;
    PyObject     *wrapper_fallback;   /* fn(wrapper, name): attributes a TensorWrapper lacks (torch's), or NULL */
    /* kiln._streams.use_stream(handle, device): makes torch's current CUDA
     * stream the session's before a plugin's forward runs (NULL: no torch).
     * current_stream(device) -> int, torch's current raw stream, is asked
     * first so that the usual case (already current) stays in C. */
    PyObject     *use_stream, *current_stream;
    /* The first Python exception a plugin callback raised inside the kiln
     * call now running (re-raised as the cause of kiln.Error). */
    PyObject     *pending_exception;
    unsigned long pending_thread;   /* the thread it was raised on */
    PyObject     *format_exception; /* traceback.format_exception, loaded lazily */
    PyObject     *numpy;            /* numpy module, loaded lazily */
    /* Interned attribute names. */
    PyObject     *str_workspace_bytes, *str_device;
    PyObject     *str_forward, *str_workspace, *str_current_stream, *str_dlpack,
                 *str_dlpack_device, *str_new, *str_max_version;
    /* torch.Tensor fast path (tensor_view.c): the type once torch has been
     * imported by someone, and {torch dtype: kiln dtype code}. */
    PyObject     *torch_tensor_type, *torch_dtypes;
    PyObject     *str_data_ptr, *str_shape, *str_stride, *str_dtype, *str_get_device;
    PyObject     *str_cuda_stream;
} kiln_py_state;

/* --- module.c ----------------------------------------------------------- */
kiln_py_state *kiln_py_state_of_type(PyTypeObject *type);
/* Raise kiln.Error for a failed kiln call: message from kiln_last_error(),
 * attribute .status, chained to a pending plugin exception.  Returns NULL. */
PyObject *kiln_py_raise(kiln_py_state *st, kiln_status status);
/* Same with a message of our own. */
PyObject *kiln_py_raise_msg(kiln_py_state *st, kiln_status status, const char *fmt, ...);
/* Lazily imported numpy (NULL with an exception when missing). */
PyObject *kiln_py_numpy(kiln_py_state *st);
/* "module.QualName" of obj's type (e.g. "torch.Tensor"), for messages; never NULL. */
PyObject *kiln_py_type_label(PyObject *obj);
/* Parse a dtype given as an int code (the Python layer normalizes first). */
int kiln_py_dtype_arg(PyObject *obj, kiln_dtype *out);

/* --- expr_pool.c ------------------------------------------------------- */
typedef struct kiln_py_pool {
    PyObject_HEAD
    kiln_exprs *pool;     /* NULL once a borrowed pool's callback returned */
    PyObject   *owner;    /* keeps pool alive (a Network), or NULL when borrowed */
} kiln_py_pool;
extern PyType_Spec kiln_py_pool_spec;
/* A pool object; owner NULL means borrowed for the duration of a callback. */
PyObject *kiln_py_pool_new(kiln_py_state *st, kiln_exprs *pool, PyObject *owner);
/* An expression id from Python: an int in [0, INT32_MAX] (whether it names a
 * node of a pool is the core's check).  -1 with a Python exception set. */
int       kiln_py_expr_arg(PyObject *obj, kiln_expr *out);

/* --- network_object.c -------------------------------------------------- */
typedef struct kiln_py_network {
    PyObject_HEAD
    kiln_network *net;
    PyObject     *pool;   /* cached ExprPool */
} kiln_py_network;
extern PyType_Spec kiln_py_network_spec;

/* --- blob_object.c ----------------------------------------------------- */
extern PyType_Spec kiln_py_blob_spec;
PyObject *kiln_py_blob_new(kiln_py_state *st, kiln_blob *blob);

/* --- engine_object.c --------------------------------------------------- */
typedef struct kiln_py_engine {
    PyObject_HEAD
    kiln_engine *engine;
} kiln_py_engine;
extern PyType_Spec kiln_py_engine_spec;

/* --- context_object.c -------------------------------------------------- */
extern PyType_Spec kiln_py_context_spec;

/* --- tensor_view.c ----------------------------------------------------- */
/* A borrowed look at a Python array's memory, held for the length of a run. */
typedef struct kiln_py_view {
    kiln_tensor_desc desc;
    int        contiguous;
    int        readonly;
    Py_buffer  buffer;          /* when has_buffer */
    int        has_buffer;
    void      *managed;         /* consumed DLPack tensor whose deleter we owe */
    int        versioned;
} kiln_py_view;

/* Fill view from obj (a TensorWrapper, an object with the buffer protocol,
 * or one with __dlpack__).  what names the tensor in error messages.  stream
 * is passed to __dlpack__ for CUDA producers.  Returns 0, or -1 with an
 * exception set (the view then needs no release). */
int  kiln_py_view_get(kiln_py_state *st, PyObject *obj, const char *what, int writable,
                      PyObject *stream, kiln_py_view *view);
void kiln_py_view_release(kiln_py_view *view);
/* Buffer format ('f', '<e', 'q', ...) to a kiln dtype. */
int  kiln_py_dtype_from_format(const char *format, Py_ssize_t itemsize, kiln_dtype *out);
int  kiln_py_desc_is_contiguous(const kiln_tensor_desc *d);

/* The kiln_load_flags bits this build knows (Engine.from_memory/from_file
 * refuse others before the core sees them). */
#define KILN_PY_LOAD_FLAGS_KNOWN \
    ((uint32_t)(KILN_LOAD_SKIP_WEIGHT_CHECKSUM | KILN_LOAD_NO_PLUGINS | KILN_LOAD_NO_MACHINE_CODE))

/* --- tensor_wrapper.c -------------------------------------------------- */
typedef struct kiln_py_wrapper {
    PyObject_HEAD
    kiln_tensor_desc desc;
    PyObject *owner;      /* keeps the memory alive when wrapping a Python array */
    PyObject *shape;      /* cached tuple, NULL when stale */
    PyObject *strides;    /* cached tuple, NULL when stale */
    PyObject *weakreflist;
    int       readonly;   /* a plugin input or a read-only source: exported read-only everywhere */
} kiln_py_wrapper;
extern PyType_Spec kiln_py_wrapper_spec;
/* readonly: 1 for what forward() must not write (its inputs, weights among them). */
PyObject *kiln_py_wrapper_new(kiln_py_state *st, int readonly);
/* Point a wrapper at new memory (the bridge reuses wrappers across calls). */
void      kiln_py_wrapper_set(kiln_py_wrapper *w, const kiln_tensor_desc *desc);

/* --- value_convert.c --------------------------------------------------- */
/* Convert a plugin attribute to a kiln_value.  path names it in errors
 * ("attribute 'table'").  NULL with an exception set on failure. */
kiln_value *kiln_py_value_from_object(kiln_py_state *st, PyObject *obj, const char *path);
PyObject   *kiln_py_value_to_object(kiln_py_state *st, const kiln_value *v);

/* --- plugin_bridge.c --------------------------------------------------- */
PyObject *kiln_py_register_plugin(PyObject *module, PyObject *args, PyObject *kwargs);
PyObject *kiln_py_deregister_plugin(PyObject *module, PyObject *args);
PyObject *kiln_py_plugin_creator_info(PyObject *module, PyObject *args);

/* _kiln.cli_main(argv) -> exit code: the kiln tool in this process (cli_call.c). */
PyObject *kiln_py_cli_main(PyObject *module, PyObject *arg);

/* The C log into Python's logging (log_bridge.c). */
PyObject *kiln_py_set_log_handler(PyObject *module, PyObject *fn);
PyObject *kiln_py_set_log_level(PyObject *module, PyObject *level);
PyObject *kiln_py_get_log_level(PyObject *module, PyObject *unused);

#endif
