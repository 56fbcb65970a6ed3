/*
 * module.c — the _kiln module: definition (multi-phase init, PEP 489),
 * state, the kiln.Error exception and a few module-level functions.
 */
#include "kiln_py.h"

#include <stdarg.h>

static kiln_py_state *module_state(PyObject *module) {
    return (kiln_py_state *)PyModule_GetState(module);
}

kiln_py_state *kiln_py_state_of_type(PyTypeObject *type) {
    return (kiln_py_state *)PyType_GetModuleState(type);
}

/* Attach a pending plugin exception (if any) as __cause__ of the current one. */
static void chain_pending(kiln_py_state *st) {
    if (!st->pending_exception) return;
    PyObject *cause = st->pending_exception;
    st->pending_exception = NULL;
    if (st->pending_thread != PyThread_get_thread_ident()) {   /* another thread's failure */
        Py_DECREF(cause);
        return;
    }
    PyObject *exc = kiln_py_fetch_exception();
    if (!exc) {
        Py_DECREF(cause);
        return;
    }
    PyException_SetCause(exc, cause);  /* steals cause */
    kiln_py_restore_exception(exc);
}

static PyObject *raise_with(kiln_py_state *st, kiln_status status, PyObject *message) {
    if (!message) return NULL;
    PyObject *exc = PyObject_CallOneArg(st->error, message);
    Py_DECREF(message);
    if (!exc) return NULL;
    PyObject *code = PyLong_FromLong((long)status);
    PyObject *name = PyUnicode_FromString(kiln_status_string(status));
    if (code && name) {
        PyObject_SetAttrString(exc, "status", code);
        PyObject_SetAttrString(exc, "status_name", name);
    }
    Py_XDECREF(code);
    Py_XDECREF(name);
    PyErr_SetObject(st->error, exc);
    Py_DECREF(exc);
    chain_pending(st);
    return NULL;
}

PyObject *kiln_py_raise(kiln_py_state *st, kiln_status status) {
    const char *msg = kiln_last_error();
    if (!msg || !*msg) msg = kiln_status_string(status);
    PyObject *m = PyUnicode_DecodeUTF8(msg, (Py_ssize_t)strlen(msg), "replace");
    return raise_with(st, status, m);
}

PyObject *kiln_py_raise_msg(kiln_py_state *st, kiln_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    PyObject *m = PyUnicode_FromFormatV(fmt, ap);
    va_end(ap);
    return raise_with(st, status, m);
}

PyObject *kiln_py_numpy(kiln_py_state *st) {
    if (!st->numpy) st->numpy = PyImport_ImportModule("numpy");
    return st->numpy;
}

PyObject *kiln_py_type_label(PyObject *obj) {
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject *mod = PyObject_GetAttrString((PyObject *)tp, "__module__");
    PyObject *qual = PyObject_GetAttrString((PyObject *)tp, "__qualname__");
    PyObject *r = NULL;
    if (mod && qual && PyUnicode_Check(mod) && PyUnicode_Check(qual)) {
        r = PyUnicode_CompareWithASCIIString(mod, "builtins") == 0 ? Py_NewRef(qual)
                                                                   : PyUnicode_FromFormat("%U.%U", mod, qual);
    }
    Py_XDECREF(mod);
    Py_XDECREF(qual);
    if (!r) {
        PyErr_Clear();
        r = PyUnicode_FromString(tp->tp_name);
    }
    return r;
}

int kiln_py_dtype_arg(PyObject *obj, kiln_dtype *out) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v >= KILN_DTYPE_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown kiln dtype code %ld", v);
        return -1;
    }
    *out = (kiln_dtype)v;
    return 0;
}

/* --- module functions ---------------------------------------------------- */

static PyObject *mod_version(PyObject *m, PyObject *unused) {
    return PyUnicode_FromString(kiln_version());
}

static PyObject *mod_dtype_info(PyObject *m, PyObject *arg) {
    kiln_dtype d;
    if (kiln_py_dtype_arg(arg, &d) < 0) return NULL;
    return Py_BuildValue("(sn)", kiln_dtype_name(d), (Py_ssize_t)kiln_dtype_size(d));
}

static PyObject *mod_dtype_from_name(PyObject *m, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    kiln_dtype d;
    kiln_status s = kiln_dtype_from_name(name, &d);
    if (s != KILN_OK) {
        kiln_clear_error();
        Py_RETURN_NONE;
    }
    return PyLong_FromLong((long)d);
}

static PyObject *mod_status_string(PyObject *m, PyObject *arg) {
    long v = PyLong_AsLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return PyUnicode_FromString(kiln_status_string((kiln_status)v));
}

static PyObject *mod_cuda_available(PyObject *m, PyObject *unused) {
    PyObject *r;
    Py_BEGIN_ALLOW_THREADS
    r = kiln_cuda_available() ? Py_True : Py_False;
    Py_END_ALLOW_THREADS
    kiln_clear_error();
    return Py_NewRef(r);
}

static PyObject *mod_cuda_device_count(PyObject *m, PyObject *unused) {
    int32_t n;
    Py_BEGIN_ALLOW_THREADS
    n = kiln_cuda_device_count();
    Py_END_ALLOW_THREADS
    kiln_clear_error();
    return PyLong_FromLong(n);
}

/* _set_wrapper_fallback(callable | None): fn(wrapper, name), asked for an
 * attribute a TensorWrapper does not have (python/kiln/tensor.py answers with
 * the same attribute of a torch tensor aliasing the wrapper's memory, so a
 * wrapper goes wherever a torch tensor does: Triton's interpreter, torch
 * functions that take tensors). */
static PyObject *mod_set_wrapper_fallback(PyObject *m, PyObject *arg) {
    kiln_py_state *st = module_state(m);
    if (arg != Py_None && !PyCallable_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "expected a callable or None");
        return NULL;
    }
    Py_XSETREF(st->wrapper_fallback, arg == Py_None ? NULL : Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* _set_wrapper_dtypes(tuple | callable | None): what TensorWrapper.dtype
 * returns per kiln dtype.  A callable is called on the first use and must
 * return the tuple: that keeps `import kiln` from importing torch. */
static PyObject *mod_set_wrapper_dtypes(PyObject *m, PyObject *arg) {
    kiln_py_state *st = module_state(m);
    if (arg != Py_None && !PyCallable_Check(arg) &&
        (!PyTuple_Check(arg) || PyTuple_GET_SIZE(arg) != KILN_DTYPE_COUNT)) {
        PyErr_Format(PyExc_TypeError, "expected a tuple of %d dtype objects, a callable returning one, or None",
                     KILN_DTYPE_COUNT);
        return NULL;
    }
    Py_XSETREF(st->wrapper_dtypes, arg == Py_None ? NULL : Py_NewRef(arg));
    Py_RETURN_NONE;
}

/* _set_stream_hook(use_stream, current_stream) or _set_stream_hook(None, None) */
static PyObject *mod_set_stream_hook(PyObject *m, PyObject *args) {
    kiln_py_state *st = module_state(m);
    PyObject *use, *current;
    if (!PyArg_ParseTuple(args, "OO:_set_stream_hook", &use, &current)) return NULL;
    if ((use != Py_None && !PyCallable_Check(use)) || (current != Py_None && !PyCallable_Check(current))) {
        PyErr_SetString(PyExc_TypeError, "_set_stream_hook: use_stream and current_stream must be callables or None");
        return NULL;
    }
    Py_XSETREF(st->use_stream, use == Py_None ? NULL : Py_NewRef(use));
    Py_XSETREF(st->current_stream, current == Py_None ? NULL : Py_NewRef(current));
    Py_RETURN_NONE;
}

/* Encode / decode a plugin-fields object: used by tests to check round trips. */
static PyObject *mod_value_roundtrip(PyObject *m, PyObject *arg) {
    kiln_py_state *st = module_state(m);
    kiln_value *v = kiln_py_value_from_object(st, arg, "value");
    if (!v) return NULL;
    uint8_t *bytes = NULL;
    size_t size = 0;
    kiln_status s = kiln_value_encode(v, &bytes, &size);
    kiln_value_free(v);
    if (s != KILN_OK) return kiln_py_raise(st, s);
    kiln_value *back = NULL;
    s = kiln_value_decode(bytes, size, &back);
    kiln_free(bytes);
    if (s != KILN_OK) return kiln_py_raise(st, s);
    PyObject *r = kiln_py_value_to_object(st, back);
    kiln_value_free(back);
    return r;
}

/* comm_id_new() -> bytes: a fresh communicator id (NCCL unique id). */
static PyObject *mod_comm_id_new(PyObject *m, PyObject *unused) {
    kiln_comm_id id;
    kiln_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kiln_comm_id_new(&id);
    Py_END_ALLOW_THREADS
    if (s != KILN_OK) return kiln_py_raise(module_state(m), s);
    return PyBytes_FromStringAndSize((const char *)id.bytes, KILN_COMM_ID_BYTES);
}

/* comm_id_from_env(rank) -> bytes: $KILN_NCCL_ID or $KILN_NCCL_ID_FILE. */
static PyObject *mod_comm_id_from_env(PyObject *m, PyObject *arg) {
    long value = PyLong_AsLong(arg);
    if (value == -1 && PyErr_Occurred()) return NULL;
    if (value < 0 || value > INT32_MAX)
        return kiln_py_raise_msg(module_state(m), KILN_ERROR_INVALID_ARGUMENT, "comm_id_from_env: rank %ld is out of "
                                 "range", value);
    int32_t rank = (int32_t)value;
    kiln_comm_id id;
    kiln_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kiln_comm_id_from_env(rank, &id);
    Py_END_ALLOW_THREADS
    if (s != KILN_OK) return kiln_py_raise(module_state(m), s);
    return PyBytes_FromStringAndSize((const char *)id.bytes, KILN_COMM_ID_BYTES);
}

/* comm_env() -> (rank, world_size, local_rank) from the launcher's variables. */
static PyObject *mod_comm_env(PyObject *m, PyObject *unused) {
    int32_t rank, world_size, local_rank;
    kiln_status s = kiln_comm_env(&rank, &world_size, &local_rank);
    if (s != KILN_OK) return kiln_py_raise(module_state(m), s);
    return Py_BuildValue("(iii)", (int)rank, (int)world_size, (int)local_rank);
}

static PyMethodDef module_methods[] = {
    {"comm_id_new", mod_comm_id_new, METH_NOARGS, "comm_id_new() -> bytes: a fresh communicator id (needs NCCL)"},
    {"comm_id_from_env", mod_comm_id_from_env, METH_O,
     "comm_id_from_env(rank) -> bytes: from $KILN_NCCL_ID or $KILN_NCCL_ID_FILE"},
    {"comm_env", mod_comm_env, METH_NOARGS, "comm_env() -> (rank, world_size, local_rank) from the launcher"},
    {"version", mod_version, METH_NOARGS, "kiln library version string"},
    {"dtype_info", mod_dtype_info, METH_O, "dtype_info(code) -> (name, itemsize)"},
    {"dtype_from_name", mod_dtype_from_name, METH_O, "dtype code for a name, or None"},
    {"status_string", mod_status_string, METH_O, "description of a status code"},
    {"cuda_available", mod_cuda_available, METH_NOARGS, "whether the CUDA backend sees a GPU"},
    {"cuda_device_count", mod_cuda_device_count, METH_NOARGS, "number of GPUs kiln sees"},
    {"_set_wrapper_dtypes", mod_set_wrapper_dtypes, METH_O, "objects TensorWrapper.dtype returns"},
    {"_set_wrapper_fallback", mod_set_wrapper_fallback, METH_O, "fn(wrapper, name) for attributes a wrapper lacks"},
    {"cli_main", kiln_py_cli_main, METH_O, "cli_main(argv) -> exit code: the kiln tool run in this process"},
    {"_set_log_handler", kiln_py_set_log_handler, METH_O, "fn(level, message) for the C log, or None"},
    {"set_log_level", kiln_py_set_log_level, METH_O, "the C log's level: 0 error .. 3 debug"},
    {"get_log_level", kiln_py_get_log_level, METH_NOARGS, "the C log's level: 0 error .. 3 debug"},
    {"_set_stream_hook", mod_set_stream_hook, METH_VARARGS,
     "_set_stream_hook(use_stream, current_stream): kiln._streams's hooks, or (None, None)"},
    {"value_roundtrip", mod_value_roundtrip, METH_O, "encode then decode as plugin fields"},
    {"register_plugin", (PyCFunction)(void (*)(void))kiln_py_register_plugin, METH_VARARGS | METH_KEYWORDS,
     "register_plugin(cls, namespace, name, version, module, num_outputs)"},
    {"deregister_plugin", kiln_py_deregister_plugin, METH_VARARGS, "deregister_plugin(namespace, name, version)"},
    {"plugin_creator_info", kiln_py_plugin_creator_info, METH_VARARGS,
     "plugin_creator_info(namespace, name, version) -> dict or None"},
    {NULL, NULL, 0, NULL},
};

/* --- state lifetime ------------------------------------------------------ */

static int module_traverse(PyObject *m, visitproc visit, void *arg) {
    kiln_py_state *st = module_state(m);
    if (!st) return 0;
    Py_VISIT(st->error);
    Py_VISIT(st->pool_type);
    Py_VISIT(st->network_type);
    Py_VISIT(st->blob_type);
    Py_VISIT(st->engine_type);
    Py_VISIT(st->context_type);
    Py_VISIT(st->wrapper_type);
    Py_VISIT(st->wrapper_dtypes);
    Py_VISIT(st->wrapper_fallback);
    Py_VISIT(st->use_stream);
    Py_VISIT(st->current_stream);
    Py_VISIT(st->pending_exception);
    Py_VISIT(st->format_exception);
    Py_VISIT(st->numpy);
    Py_VISIT(st->torch_tensor_type);
    Py_VISIT(st->torch_dtypes);
    return 0;
}

static int module_clear(PyObject *m) {
    kiln_py_state *st = module_state(m);
    if (!st) return 0;
    Py_CLEAR(st->error);
    Py_CLEAR(st->pool_type);
    Py_CLEAR(st->network_type);
    Py_CLEAR(st->blob_type);
    Py_CLEAR(st->engine_type);
    Py_CLEAR(st->context_type);
    Py_CLEAR(st->wrapper_type);
    Py_CLEAR(st->wrapper_dtypes);
    Py_CLEAR(st->wrapper_fallback);
    Py_CLEAR(st->use_stream);
    Py_CLEAR(st->current_stream);
    Py_CLEAR(st->pending_exception);
    Py_CLEAR(st->format_exception);
    Py_CLEAR(st->numpy);
    Py_CLEAR(st->torch_tensor_type);
    Py_CLEAR(st->torch_dtypes);
    Py_CLEAR(st->str_data_ptr);
    Py_CLEAR(st->str_shape);
    Py_CLEAR(st->str_stride);
    Py_CLEAR(st->str_dtype);
    Py_CLEAR(st->str_get_device);
    Py_CLEAR(st->str_cuda_stream);
    Py_CLEAR(st->str_forward);
    Py_CLEAR(st->str_workspace);
    Py_CLEAR(st->str_workspace_bytes);
    Py_CLEAR(st->str_device);
    Py_CLEAR(st->str_current_stream);
    Py_CLEAR(st->str_dlpack);
    Py_CLEAR(st->str_dlpack_device);
    Py_CLEAR(st->str_new);
    Py_CLEAR(st->str_max_version);
    return 0;
}

static void module_free(void *m) { module_clear((PyObject *)m); }

static int add_type(PyObject *m, PyType_Spec *spec, PyTypeObject **slot) {
    PyObject *t = PyType_FromModuleAndSpec(m, spec, NULL);
    if (!t) return -1;
    *slot = (PyTypeObject *)t;
    return PyModule_AddType(m, (PyTypeObject *)t);
}

static int intern(PyObject **slot, const char *s) {
    *slot = PyUnicode_InternFromString(s);
    return *slot ? 0 : -1;
}

/* The C enums Python needs, as module constants, so python/kiln reads the
 * values from the headers instead of keeping copies (kiln.h says which of
 * these are stored in engine files). */
typedef struct int_constant {
    const char *name;
    long        value;
} int_constant;

static const int_constant enum_constants[] = {
    {"EXPR_CONST", KILN_EXPR_CONST},       {"EXPR_DIM", KILN_EXPR_DIM},
    {"EXPR_ADD", KILN_EXPR_ADD},           {"EXPR_SUB", KILN_EXPR_SUB},
    {"EXPR_MUL", KILN_EXPR_MUL},           {"EXPR_FLOORDIV", KILN_EXPR_FLOORDIV},
    {"EXPR_CEILDIV", KILN_EXPR_CEILDIV},   {"EXPR_MIN", KILN_EXPR_MIN},
    {"EXPR_MAX", KILN_EXPR_MAX},           {"EXPR_EQ", KILN_EXPR_EQ},
    {"EXPR_LT", KILN_EXPR_LT},             {"EXPR_OP_COUNT", KILN_EXPR_OP_COUNT},
    {"BINARY_ADD", KILN_BINARY_ADD},       {"BINARY_SUB", KILN_BINARY_SUB},
    {"BINARY_MUL", KILN_BINARY_MUL},       {"BINARY_DIV", KILN_BINARY_DIV},
    {"BINARY_MIN", KILN_BINARY_MIN},       {"BINARY_MAX", KILN_BINARY_MAX},
    {"BINARY_POW", KILN_BINARY_POW},       {"BINARY_MOD", KILN_BINARY_MOD},
    {"BINARY_FMOD", KILN_BINARY_FMOD},
    {"BINARY_OP_COUNT", KILN_BINARY_OP_COUNT},
    {"UNARY_RELU", KILN_UNARY_RELU},       {"UNARY_GELU", KILN_UNARY_GELU},
    {"UNARY_SILU", KILN_UNARY_SILU},       {"UNARY_EXP", KILN_UNARY_EXP},
    {"UNARY_NEG", KILN_UNARY_NEG},         {"UNARY_SQRT", KILN_UNARY_SQRT},
    {"UNARY_TANH", KILN_UNARY_TANH},
    {"UNARY_SIGMOID", KILN_UNARY_SIGMOID},
    {"UNARY_ERF", KILN_UNARY_ERF},
    {"UNARY_GELU_ERF", KILN_UNARY_GELU_ERF},
    {"UNARY_RSQRT", KILN_UNARY_RSQRT},
    {"UNARY_ABS", KILN_UNARY_ABS},
    {"UNARY_LOG", KILN_UNARY_LOG},
    {"UNARY_SIN", KILN_UNARY_SIN},
    {"UNARY_COS", KILN_UNARY_COS},
    {"UNARY_FLOOR", KILN_UNARY_FLOOR},
    {"UNARY_CEIL", KILN_UNARY_CEIL},
    {"UNARY_RECIPROCAL", KILN_UNARY_RECIPROCAL},
    {"UNARY_SIGN", KILN_UNARY_SIGN},
    {"UNARY_OP_COUNT", KILN_UNARY_OP_COUNT},
    {"LOAD_SKIP_WEIGHT_CHECKSUM", KILN_LOAD_SKIP_WEIGHT_CHECKSUM},
    {"LOAD_NO_PLUGINS", KILN_LOAD_NO_PLUGINS},
    {"LOAD_NO_MACHINE_CODE", KILN_LOAD_NO_MACHINE_CODE},
};

static int add_enum_constants(PyObject *m) {
    for (size_t i = 0; i < sizeof enum_constants / sizeof enum_constants[0]; i++)
        if (PyModule_AddIntConstant(m, enum_constants[i].name, enum_constants[i].value) < 0) return -1;
    return 0;
}

static int module_exec(PyObject *m) {
    kiln_py_state *st = module_state(m);
    st->error = PyErr_NewExceptionWithDoc(
        "kiln.Error",
        "A kiln call failed.  .status is the kiln_status code, .status_name its description.",
        PyExc_RuntimeError, NULL);
    if (!st->error || PyModule_AddObjectRef(m, "Error", st->error) < 0) return -1;
    if (add_type(m, &kiln_py_pool_spec, &st->pool_type) < 0) return -1;
    if (add_type(m, &kiln_py_network_spec, &st->network_type) < 0) return -1;
    if (add_type(m, &kiln_py_blob_spec, &st->blob_type) < 0) return -1;
    if (add_type(m, &kiln_py_engine_spec, &st->engine_type) < 0) return -1;
    if (add_type(m, &kiln_py_context_spec, &st->context_type) < 0) return -1;
    if (add_type(m, &kiln_py_wrapper_spec, &st->wrapper_type) < 0) return -1;
    if (intern(&st->str_data_ptr, "data_ptr") < 0 || intern(&st->str_shape, "shape") < 0 ||
        intern(&st->str_stride, "stride") < 0 || intern(&st->str_dtype, "dtype") < 0 ||
        intern(&st->str_get_device, "get_device") < 0 || intern(&st->str_cuda_stream, "cuda_stream") < 0)
        return -1;
    if (intern(&st->str_workspace_bytes, "workspace_bytes") < 0 || intern(&st->str_device, "device") < 0 ||
        intern(&st->str_forward, "forward") < 0 || intern(&st->str_workspace, "workspace") < 0 ||
        intern(&st->str_current_stream, "current_stream") < 0 || intern(&st->str_dlpack, "__dlpack__") < 0 ||
        intern(&st->str_dlpack_device, "__dlpack_device__") < 0 || intern(&st->str_new, "__new__") < 0 ||
        intern(&st->str_max_version, "max_version") < 0)
        return -1;
    if (PyModule_AddIntConstant(m, "MAX_RANK", KILN_MAX_RANK) < 0) return -1;
    if (PyModule_AddIntConstant(m, "DTYPE_COUNT", KILN_DTYPE_COUNT) < 0) return -1;
    return add_enum_constants(m);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
    {0, NULL},
};

static struct PyModuleDef kiln_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_kiln",
    .m_doc = "C half of the kiln package: networks, engines, contexts and the plugin bridge.",
    .m_size = sizeof(kiln_py_state),
    .m_methods = module_methods,
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__kiln(void) {
    return PyModuleDef_Init(&kiln_module);
}
