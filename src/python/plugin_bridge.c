/*
 * plugin_bridge.c — Python plugin classes as kiln plugin creators.
 *
 * Registering a class (kiln.plugin decorator → register_plugin) allocates a
 * kiln_plugin_creator whose user_data is the class and registers it in the
 * process-wide registry.  From then on the C core drives it like any native
 * plugin:
 *
 *   create       takes the GIL, decodes the fields into a dict and rebuilds
 *                the instance with object.__new__ + setattr (no __init__, no
 *                pickle: the engine carries data, never code);
 *   (no infer_*) the creator has no shape rule in C: kiln.plugin traces
 *                shape_dtype_inference once, on the network's pool, and adds
 *                the layer with its results (kiln_network_add_plugin_traced),
 *                so building runs no plugin code from C;
 *   enqueue      takes the GIL, repoints the instance's reused TensorWrappers,
 *                sets self.workspace / self.current_stream and calls
 *                forward(inputs, outputs).  An exception becomes
 *                KILN_ERROR_PLUGIN with a message naming the plugin and
 *                carrying the formatted traceback; nothing is left raised, so
 *                the session stays usable;
 *   destroy      takes the GIL and drops the instance.
 *
 * A creator is never freed: the registry and live contexts may still point
 * at it after deregistration, and its strings must outlive both.
 */
#include "kiln_py.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct py_creator {
    kiln_plugin_creator base;    /* first: the core hands us &base */
    PyObject *module;            /* the _kiln module (its state), strong */
    PyObject *cls;               /* the plugin class, strong */
    PyObject *key;               /* (namespace, name, version) */
    char     *ns, *name, *version, *modname;
} py_creator;

typedef struct py_instance {
    py_creator *creator;
    PyObject   *obj;                     /* the plugin object */
    int32_t     n_in, n_out;             /* wrapper counts (-1 before the first enqueue) */
    PyObject   *in_list, *out_list;      /* lists handed to forward() */
    PyObject  **in_w, **out_w;           /* the wrappers themselves, owned */
    PyObject   *workspace_obj;  void *workspace_ptr;
    PyObject   *ws_bytes_obj;   void *ws_bytes;      /* workspace size, cached like the pointers */
    int         device_set;                          /* self.device set (a context's device never changes) */
    PyObject   *stream_obj;     void *stream_ptr;
} py_instance;

static kiln_py_state *creator_state(const py_creator *pc) {
    return (kiln_py_state *)PyModule_GetState(pc->module);
}

static char *raw_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = PyMem_RawMalloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* Report the raised Python exception as the plugin's failure.  Keeps the
 * exception for kiln.Error's __cause__ when the failing call returns to
 * Python on this thread. */
static kiln_status bridge_fail(py_creator *pc, const char *where) {
    kiln_py_state *st = creator_state(pc);
    PyObject *exc = kiln_py_fetch_exception();
    PyObject *text = NULL;
    if (exc) {
        if (!st->format_exception) {
            PyObject *tb = PyImport_ImportModule("traceback");
            if (tb) {
                st->format_exception = PyObject_GetAttrString(tb, "format_exception");
                Py_DECREF(tb);
            }
            PyErr_Clear();
        }
        if (st->format_exception) {
            PyObject *tbo = PyException_GetTraceback(exc);
            PyObject *lines = PyObject_CallFunctionObjArgs(st->format_exception, (PyObject *)Py_TYPE(exc), exc,
                                                           tbo ? tbo : Py_None, NULL);
            Py_XDECREF(tbo);
            if (lines) {
                PyObject *empty = PyUnicode_FromString("");
                if (empty) text = PyUnicode_Join(empty, lines);
                Py_XDECREF(empty);
                Py_DECREF(lines);
            }
        }
        if (!text) {
            PyErr_Clear();
            text = PyObject_Str(exc);
        }
        PyErr_Clear();
    }
    const char *msg = text ? PyUnicode_AsUTF8(text) : NULL;
    if (!msg) {
        PyErr_Clear();
        msg = "(the exception could not be formatted)";
    }
    kiln_plugin_set_error("Python plugin %s::%s (version %s, module %s) failed in %s:\n%s", pc->ns, pc->name,
                          pc->version, pc->modname, where, msg);
    Py_XDECREF(text);
    if (exc) {
        Py_XSETREF(st->pending_exception, exc);
        st->pending_thread = PyThread_get_thread_ident();
    }
    return KILN_ERROR_PLUGIN;
}

/* A failure without a Python exception (the fields are not a dict, memory). */
static kiln_status bridge_fail_msg(py_creator *pc, const char *where, const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    kiln_plugin_set_error("Python plugin %s::%s (version %s, module %s): %s: %s", pc->ns, pc->name, pc->version,
                          pc->modname, where, buf);
    return KILN_ERROR_PLUGIN;
}

/* --- create / destroy ---------------------------------------------------- */

static kiln_status bridge_create(const kiln_plugin_creator *creator, const kiln_value *fields, void **out) {
    py_creator *pc = (py_creator *)creator;
    *out = NULL;
    PyGILState_STATE g = PyGILState_Ensure();
    kiln_py_state *st = creator_state(pc);
    kiln_status status = KILN_OK;
    PyObject *dict = NULL, *obj = NULL;
    py_instance *inst = NULL;

    if (!fields || kiln_value_get_type(fields) != KILN_VALUE_MAP) {
        status = bridge_fail_msg(pc, "create", "fields are not a map");
        goto done;
    }
    dict = kiln_py_value_to_object(st, fields);
    if (!dict) {
        status = bridge_fail(pc, "create (decoding fields)");
        goto done;
    }
    if (!PyDict_Check(dict)) {
        status = bridge_fail_msg(pc, "create", "fields decoded to a %s, not a dict", Py_TYPE(dict)->tp_name);
        goto done;
    }
    /* object.__new__(cls): the state is restored without running __init__. */
    obj = PyObject_CallMethodOneArg((PyObject *)&PyBaseObject_Type, st->str_new, pc->cls);
    if (!obj) {
        status = bridge_fail(pc, "create (object.__new__)");
        goto done;
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (PyObject_SetAttr(obj, key, value) < 0) {
            status = bridge_fail(pc, "create (restoring attributes)");
            goto done;
        }
    }
    inst = PyMem_RawCalloc(1, sizeof *inst);
    if (!inst) {
        status = bridge_fail_msg(pc, "create", "out of memory");
        goto done;
    }
    inst->creator = pc;
    inst->obj = obj;
    obj = NULL;
    inst->n_in = inst->n_out = -1;
    *out = inst;
done:
    Py_XDECREF(dict);
    Py_XDECREF(obj);
    PyGILState_Release(g);
    return status;
}

static void drop_wrappers(py_instance *inst) {
    for (int32_t i = 0; inst->in_w && i < inst->n_in; i++) Py_XDECREF(inst->in_w[i]);
    for (int32_t i = 0; inst->out_w && i < inst->n_out; i++) Py_XDECREF(inst->out_w[i]);
    PyMem_RawFree(inst->in_w);
    PyMem_RawFree(inst->out_w);
    inst->in_w = inst->out_w = NULL;
    Py_CLEAR(inst->in_list);
    Py_CLEAR(inst->out_list);
    inst->n_in = inst->n_out = -1;
}

static void bridge_destroy(const kiln_plugin_creator *creator, void *instance) {
    py_instance *inst = instance;
    if (!inst) return;
    /* At interpreter exit the objects are gone with the interpreter. */
    if (Py_IsInitialized()) {
        PyGILState_STATE g = PyGILState_Ensure();
        drop_wrappers(inst);
        Py_CLEAR(inst->obj);
        Py_CLEAR(inst->workspace_obj);
        Py_CLEAR(inst->stream_obj);
        Py_CLEAR(inst->ws_bytes_obj);
        PyGILState_Release(g);
    } else {
        /* The Python objects went with the interpreter; the arrays that held
         * them are raw memory of ours. */
        PyMem_RawFree(inst->in_w);
        PyMem_RawFree(inst->out_w);
    }
    PyMem_RawFree(inst);
}

/* --- enqueue -------------------------------------------------------------- */

static int make_wrappers(kiln_py_state *st, int32_t n, int readonly, PyObject ***arr, PyObject **list) {
    *arr = PyMem_RawCalloc((size_t)n + 1, sizeof **arr);
    *list = PyList_New(n);
    if (!*arr || !*list) return -1;
    for (int32_t i = 0; i < n; i++) {
        PyObject *w = kiln_py_wrapper_new(st, readonly);
        if (!w) return -1;
        (*arr)[i] = w;
        PyList_SET_ITEM(*list, i, Py_NewRef(w));
    }
    return 0;
}

/* Point the wrappers at this call's tensors.  forward() may have changed the
 * lists it was given; put our wrappers back if so. */
static int refresh(PyObject *list, PyObject **w, int32_t n, const kiln_tensor_desc *descs) {
    for (int32_t i = 0; i < n; i++) kiln_py_wrapper_set((kiln_py_wrapper *)w[i], &descs[i]);
    int intact = PyList_GET_SIZE(list) == n;
    for (int32_t i = 0; intact && i < n; i++) intact = PyList_GET_ITEM(list, i) == w[i];
    if (intact) return 0;
    PyObject *fresh = PyList_New(n);
    if (!fresh) return -1;
    for (int32_t i = 0; i < n; i++) PyList_SET_ITEM(fresh, i, Py_NewRef(w[i]));
    int rc = PyList_SetSlice(list, 0, PyList_GET_SIZE(list), fresh);
    Py_DECREF(fresh);
    return rc;
}

static int set_pointer_attr(PyObject *obj, PyObject *name, PyObject **cache, void **cached_ptr, void *ptr) {
    if (!*cache || *cached_ptr != ptr) {
        PyObject *v = PyLong_FromVoidPtr(ptr);
        if (!v) return -1;
        Py_XSETREF(*cache, v);
        *cached_ptr = ptr;
    }
    return PyObject_GenericSetAttr(obj, name, *cache);
}

/* self.device: "cpu" or "cuda:N", where forward's tensors (and its workspace) live. */
static int set_device_attr(kiln_py_state *st, py_instance *inst, kiln_device device) {
    PyObject *name = device.type == KILN_DEVICE_CPU ? PyUnicode_FromString("cpu")
                                                    : PyUnicode_FromFormat("cuda:%d", (int)device.index);
    if (!name) return -1;
    int r = PyObject_GenericSetAttr(inst->obj, st->str_device, name);
    Py_DECREF(name);
    inst->device_set = r == 0;
    return r;
}

/* 1 unless torch's current stream on the launch's device is known to be the
 * launch's stream already (the usual case: a session keeps one stream). */
static int stream_is_not_current(kiln_py_state *st, const kiln_plugin_launch *launch) {
    if (!st->current_stream) return 1;
    PyObject *index = PyLong_FromLong(launch->device.index);   /* small ints are cached: no allocation */
    if (!index) {
        PyErr_Clear();
        return 1;
    }
    PyObject *r = PyObject_CallOneArg(st->current_stream, index);
    Py_DECREF(index);
    if (!r) {   /* then set it: use_stream reports what is wrong with torch */
        PyErr_Clear();
        return 1;
    }
    void *current = PyLong_AsVoidPtr(r);
    Py_DECREF(r);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 1;
    }
    return current != launch->stream;
}

static int set_current_stream(kiln_py_state *st, const kiln_plugin_launch *launch) {
    PyObject *ok = PyObject_CallFunction(st->use_stream, "Ki", (unsigned long long)(uintptr_t)launch->stream,
                                         (int)launch->device.index);
    Py_XDECREF(ok);
    return ok ? 0 : -1;
}

static kiln_status bridge_enqueue(void *instance, const kiln_plugin_launch *launch) {
    py_instance *inst = instance;
    py_creator *pc = inst->creator;
    PyGILState_STATE g = PyGILState_Ensure();
    kiln_py_state *st = creator_state(pc);
    kiln_status status = KILN_OK;

    if (inst->n_in != launch->input_count || inst->n_out != launch->output_count) {
        drop_wrappers(inst);
        /* inputs are read-only: weights may be a read-only mapping of the engine */
        if (make_wrappers(st, launch->input_count, 1, &inst->in_w, &inst->in_list) < 0 ||
            make_wrappers(st, launch->output_count, 0, &inst->out_w, &inst->out_list) < 0) {
            /* partially built: counts below let drop_wrappers free what exists */
            inst->n_in = inst->in_w ? launch->input_count : 0;
            inst->n_out = inst->out_w ? launch->output_count : 0;
            status = bridge_fail(pc, "enqueue (wrapping tensors)");
            drop_wrappers(inst);
            goto done;
        }
        inst->n_in = launch->input_count;
        inst->n_out = launch->output_count;
    }
    if (refresh(inst->in_list, inst->in_w, inst->n_in, launch->inputs) < 0 ||
        refresh(inst->out_list, inst->out_w, inst->n_out, launch->outputs) < 0 ||
        set_pointer_attr(inst->obj, st->str_workspace, &inst->workspace_obj, &inst->workspace_ptr,
                         launch->workspace) < 0 ||
        set_pointer_attr(inst->obj, st->str_workspace_bytes, &inst->ws_bytes_obj, &inst->ws_bytes,
                         (void *)(uintptr_t)launch->workspace_size) < 0 ||
        set_pointer_attr(inst->obj, st->str_current_stream, &inst->stream_obj, &inst->stream_ptr, launch->stream) < 0 ||
        (!inst->device_set && set_device_attr(st, inst, launch->device) < 0)) {
        status = bridge_fail(pc, "enqueue");
        goto done;
    }
    /* Triton (and torch) launch on torch's current stream: make it ours. */
    if (launch->device.type == KILN_DEVICE_CUDA && st->use_stream && stream_is_not_current(st, launch) &&
        set_current_stream(st, launch) < 0) {
        status = bridge_fail(pc, "setting torch's current stream");
        goto done;
    }
    PyObject *args[4] = {NULL, inst->obj, inst->in_list, inst->out_list};
    PyObject *r = PyObject_VectorcallMethod(st->str_forward, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    if (!r) status = bridge_fail(pc, "forward");
    Py_XDECREF(r);
done:
    PyGILState_Release(g);
    return status;
}

/* --- registration --------------------------------------------------------- */

/* register_plugin(cls, namespace, name, version, module, num_outputs) */
PyObject *kiln_py_register_plugin(PyObject *module, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"cls", "namespace", "name", "version", "module", "num_outputs", NULL};
    kiln_py_state *st = (kiln_py_state *)PyModule_GetState(module);
    PyObject *cls;
    const char *ns, *name, *version, *modname;
    int num_outputs;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Ossssi:register_plugin", kwlist, &cls, &ns, &name, &version,
                                     &modname, &num_outputs))
        return NULL;
    if (!PyType_Check(cls)) {
        PyErr_SetString(PyExc_TypeError, "register_plugin: cls must be a class");
        return NULL;
    }
    if (num_outputs < 1 || num_outputs > 1024) {
        PyErr_Format(PyExc_ValueError, "plugin %s::%s: num_outputs must be 1..1024, got %d", ns, name, num_outputs);
        return NULL;
    }
    py_creator *pc = PyMem_RawCalloc(1, sizeof *pc);
    if (!pc) return PyErr_NoMemory();
    pc->ns = raw_strdup(ns);
    pc->name = raw_strdup(name);
    pc->version = raw_strdup(version);
    pc->modname = raw_strdup(modname);
    pc->key = Py_BuildValue("(sss)", ns, name, version);
    if (!pc->ns || !pc->name || !pc->version || !pc->modname || !pc->key) {
        Py_XDECREF(pc->key);
        PyMem_RawFree(pc->ns);
        PyMem_RawFree(pc->name);
        PyMem_RawFree(pc->version);
        PyMem_RawFree(pc->modname);
        PyMem_RawFree(pc);
        return PyErr_Occurred() ? NULL : PyErr_NoMemory();
    }
    pc->module = Py_NewRef(module);
    pc->cls = Py_NewRef(cls);
    pc->base = (kiln_plugin_creator){
        .abi_version = KILN_PLUGIN_ABI_VERSION,
        .plugin_namespace = pc->ns,
        .name = pc->name,
        .version = pc->version,
        .module = pc->modname,
        .flags = KILN_PLUGIN_NEEDS_PYTHON | KILN_PLUGIN_SUPPORTS_CPU | KILN_PLUGIN_SUPPORTS_CUDA,
        .output_count = num_outputs,
        .user_data = cls,
        .create = bridge_create,
        .destroy = bridge_destroy,
        .enqueue = bridge_enqueue,   /* no infer_*: layers are added traced (see the top) */
    };
    kiln_status s = kiln_plugin_register(&pc->base);
    if (s != KILN_OK) {
        /* Not registered: nobody else can point at it. */
        Py_DECREF(pc->module);
        Py_DECREF(pc->cls);
        Py_DECREF(pc->key);
        PyMem_RawFree(pc->ns);
        PyMem_RawFree(pc->name);
        PyMem_RawFree(pc->version);
        PyMem_RawFree(pc->modname);
        PyMem_RawFree(pc);
        return kiln_py_raise(st, s);
    }
    Py_RETURN_NONE;
}

PyObject *kiln_py_deregister_plugin(PyObject *module, PyObject *args) {
    const char *ns, *name, *version;
    if (!PyArg_ParseTuple(args, "sss:deregister_plugin", &ns, &name, &version)) return NULL;
    kiln_status s = kiln_plugin_deregister(ns, name, version);
    if (s != KILN_OK) return kiln_py_raise((kiln_py_state *)PyModule_GetState(module), s);
    Py_RETURN_NONE;
}

/* plugin_creator_info(namespace, name, version) -> dict or None */
PyObject *kiln_py_plugin_creator_info(PyObject *module, PyObject *args) {
    const char *ns, *name, *version;
    if (!PyArg_ParseTuple(args, "sss:plugin_creator_info", &ns, &name, &version)) return NULL;
    const kiln_plugin_creator *c = kiln_plugin_find(ns, name, version);
    kiln_clear_error();
    if (!c) Py_RETURN_NONE;
    int is_python = c->create == bridge_create;
    return Py_BuildValue("{sssssssssIsisOsO}", "namespace", c->plugin_namespace, "name", c->name, "version",
                         c->version, "module", c->module ? c->module : "", "flags", (unsigned)c->flags,
                         "output_count", (int)c->output_count, "python", is_python ? Py_True : Py_False, "cls",
                         is_python ? ((const py_creator *)c)->cls : Py_None);
}
