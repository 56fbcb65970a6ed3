/*
 * engine_object.c — Engine: a loaded, immutable kiln_engine and what it
 * says about itself (inputs/outputs, dimensions, layers, plugins).
 *
 * Loading verifies every byte and resolves plugins in the registry; a
 * missing plugin fails with the core's message naming namespace::name,
 * version and module, which is surfaced as is.
 */
#include "kiln_py.h"

static kiln_py_state *state_of(PyObject *self) { return kiln_py_state_of_type(Py_TYPE(self)); }
static kiln_engine *engine_of(PyObject *self) { return ((kiln_py_engine *)self)->engine; }

static PyObject *wrap(PyTypeObject *type, kiln_engine *engine) {
    kiln_py_engine *self = (kiln_py_engine *)type->tp_alloc(type, 0);
    if (!self) {
        kiln_engine_free(engine);
        return NULL;
    }
    self->engine = engine;
    return (PyObject *)self;
}

/* The load flags a caller passed: an int of known kiln_load_flags bits only
 * (the "I" converter would silently mask a bigger int, and an unknown bit may
 * be a flag this build does not honour). */
static int load_flags_arg(PyObject *obj, const char *fn, uint32_t *out) {
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "Engine.%s: flags must be an int of kiln.LOAD_* bits, not %s", fn,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(obj);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_ValueError, "Engine.%s: flags %R is not a 32-bit set of kiln.LOAD_* bits", fn, obj);
        return -1;
    }
    unsigned long long unknown = v & ~(unsigned long long)KILN_PY_LOAD_FLAGS_KNOWN;
    if (unknown) {
        /* PyErr_Format has no %llx: let Python spell the bits in hex */
        PyObject *bits = PyLong_FromUnsignedLongLong(unknown), *hex = bits ? PyNumber_ToBase(bits, 16) : NULL;
        Py_XDECREF(bits);
        if (!hex) return -1;
        PyErr_Format(PyExc_ValueError, "Engine.%s: unknown load flag bits %U (known: 0x%x, kiln.LOAD_*)", fn, hex,
                     (unsigned)KILN_PY_LOAD_FLAGS_KNOWN);
        Py_DECREF(hex);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* Engine.from_memory(buffer, flags=0): the bytes are copied by the core. */
static PyObject *engine_from_memory(PyObject *cls, PyObject *args) {
    Py_buffer buf;
    PyObject *flags_obj = NULL;
    uint32_t flags = 0;
    if (!PyArg_ParseTuple(args, "y*|O:from_memory", &buf, &flags_obj)) return NULL;
    if (flags_obj && load_flags_arg(flags_obj, "from_memory", &flags) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    kiln_engine *engine = NULL;
    kiln_status s;
    Py_BEGIN_ALLOW_THREADS
    s = kiln_engine_load_memory(buf.buf, (size_t)buf.len, flags, &engine);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    if (s != KILN_OK) return kiln_py_raise(kiln_py_state_of_type((PyTypeObject *)cls), s);
    return wrap((PyTypeObject *)cls, engine);
}

/* Engine.from_file(path, flags=0): mapped read-only. */
static PyObject *engine_from_file(PyObject *cls, PyObject *args) {
    PyObject *path_obj, *path = NULL;
    PyObject *flags_obj = NULL;
    uint32_t flags = 0;
    if (!PyArg_ParseTuple(args, "O|O:from_file", &path_obj, &flags_obj)) return NULL;
    if (flags_obj && load_flags_arg(flags_obj, "from_file", &flags) < 0) return NULL;
    if (!PyUnicode_FSConverter(path_obj, &path)) return NULL;
    kiln_engine *engine = NULL;
    kiln_status s;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    s = kiln_engine_load_file(p, flags, &engine);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != KILN_OK) return kiln_py_raise(kiln_py_state_of_type((PyTypeObject *)cls), s);
    return wrap((PyTypeObject *)cls, engine);
}

static void engine_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    kiln_engine_free(engine_of(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *expr_tuple(const kiln_exprs *pool, int32_t rank, const kiln_expr *shape) {
    /* Constant dims as ints, dynamic ones as their text ("batch"). */
    PyObject *t = PyTuple_New(rank);
    if (!t) return NULL;
    for (int32_t i = 0; i < rank; i++) {
        int64_t v;
        PyObject *item;
        if (kiln_expr_is_const(pool, shape[i], &v)) {
            item = PyLong_FromLongLong((long long)v);
        } else {
            char buf[256];
            size_t n = kiln_expr_format(pool, shape[i], buf, sizeof buf);
            if (n >= sizeof buf) n = sizeof buf - 1;
            item = PyUnicode_FromStringAndSize(buf, (Py_ssize_t)n);
        }
        if (!item) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, item);
    }
    return t;
}

/* io() -> [(name, is_output, dtype, shape)] in declaration order; shape
 * entries are ints or the text of a symbolic dimension. */
static PyObject *engine_io(PyObject *self, PyObject *unused) {
    kiln_engine *e = engine_of(self);
    int32_t n = kiln_engine_io_count(e);
    PyObject *list = PyList_New(0);
    if (!list) return NULL;
    for (int32_t i = 0; i < n; i++) {
        kiln_io_info info;
        kiln_status s = kiln_engine_io_info(e, i, &info);
        if (s != KILN_OK) {
            Py_DECREF(list);
            return kiln_py_raise(state_of(self), s);
        }
        PyObject *shape = expr_tuple(kiln_engine_exprs(e), info.rank, info.shape);
        PyObject *item = shape ? Py_BuildValue("(sOiN)", info.name, info.kind == KILN_IO_OUTPUT ? Py_True : Py_False,
                                               (int)info.dtype, shape)
                               : NULL;
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    return list;
}

/* dims() -> [(name, [(min, opt, max), ...])] */
static PyObject *engine_dims(PyObject *self, PyObject *unused) {
    kiln_engine *e = engine_of(self);
    int32_t n = kiln_engine_dim_count(e), profiles = kiln_engine_profile_count(e);
    if (profiles < 0) profiles = 0;
    kiln_dim_range *ranges = PyMem_Calloc((size_t)profiles + 1, sizeof *ranges);
    if (!ranges) return PyErr_NoMemory();
    PyObject *list = PyList_New(0);
    for (int32_t i = 0; list && i < n; i++) {
        const char *name = NULL;
        kiln_status s = kiln_engine_dim_info(e, i, &name, ranges);
        if (s != KILN_OK) {
            Py_CLEAR(list);
            kiln_py_raise(state_of(self), s);
            break;
        }
        PyObject *rl = PyList_New(profiles);
        for (int32_t p = 0; rl && p < profiles; p++) {
            PyObject *r = Py_BuildValue("(LLL)", (long long)ranges[p].min, (long long)ranges[p].opt,
                                        (long long)ranges[p].max);
            if (!r) Py_CLEAR(rl);
            else PyList_SET_ITEM(rl, p, r);
        }
        PyObject *item = rl ? Py_BuildValue("(sN)", name ? name : "", rl) : NULL;
        if (!item || PyList_Append(list, item) < 0) Py_CLEAR(list);
        Py_XDECREF(item);
    }
    PyMem_Free(ranges);
    return list;
}

/* plugins() -> [(namespace, name, version, module)] */
static PyObject *engine_plugins(PyObject *self, PyObject *unused) {
    kiln_engine *e = engine_of(self);
    int32_t n = kiln_engine_plugin_count(e);
    PyObject *list = PyList_New(0);
    for (int32_t i = 0; list && i < n; i++) {
        const char *ns = NULL, *name = NULL, *version = NULL, *module = NULL;
        kiln_status s = kiln_engine_plugin_info(e, i, &ns, &name, &version, &module);
        if (s != KILN_OK) {
            Py_DECREF(list);
            return kiln_py_raise(state_of(self), s);
        }
        PyObject *item = Py_BuildValue("(ssss)", ns ? ns : "", name ? name : "", version ? version : "",
                                       module ? module : "");
        if (!item || PyList_Append(list, item) < 0) Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

/* layers() -> [(kind, detail, inputs, outputs)] with tensor names */
static PyObject *engine_layers(PyObject *self, PyObject *unused) {
    kiln_engine *e = engine_of(self);
    int32_t n = kiln_engine_layer_count(e);
    PyObject *list = PyList_New(0);
    for (int32_t i = 0; list && i < n; i++) {
        const char *kind = NULL, *detail = NULL;
        int32_t nin = 0, nout = 0;
        const int32_t *ins = NULL, *outs = NULL;
        kiln_status s = kiln_engine_layer_info(e, i, &kind, &detail, &nin, &ins, &nout, &outs);
        if (s != KILN_OK) {
            Py_DECREF(list);
            return kiln_py_raise(state_of(self), s);
        }
        PyObject *li = PyList_New(0), *lo = PyList_New(0);
        for (int32_t k = 0; li && k < nin; k++) {
            const char *tn = kiln_engine_tensor_name(e, ins[k]);
            PyObject *v = PyUnicode_FromString(tn ? tn : "?");
            if (!v || PyList_Append(li, v) < 0) Py_CLEAR(li);
            Py_XDECREF(v);
        }
        for (int32_t k = 0; lo && k < nout; k++) {
            const char *tn = kiln_engine_tensor_name(e, outs[k]);
            PyObject *v = PyUnicode_FromString(tn ? tn : "?");
            if (!v || PyList_Append(lo, v) < 0) Py_CLEAR(lo);
            Py_XDECREF(v);
        }
        PyObject *item = (li && lo) ? Py_BuildValue("(ssNN)", kind ? kind : "", detail ? detail : "", li, lo) : NULL;
        if (!item) {
            Py_XDECREF(li);
            Py_XDECREF(lo);
        }
        if (!item || PyList_Append(list, item) < 0) Py_CLEAR(list);
        Py_XDECREF(item);
    }
    return list;
}

static PyObject *engine_get_int(PyObject *self, void *which) {
    kiln_engine *e = engine_of(self);
    switch ((intptr_t)which) {
    case 0: return PyLong_FromUnsignedLongLong(kiln_engine_arena_bytes(e));
    case 1: return PyLong_FromUnsignedLongLong(kiln_engine_weight_bytes(e));
    case 2: return PyLong_FromUnsignedLong(kiln_engine_format_version(e));
    case 3: return PyLong_FromLong(kiln_engine_profile_count(e));
    default: return PyLong_FromLong(kiln_engine_layer_count(e));
    }
}

static PyObject *engine_get_parallel(PyObject *self, void *closure) {
    int32_t rank = 0, world_size = 1;
    kiln_status s = kiln_engine_parallel(engine_of(self), &rank, &world_size);
    if (s != KILN_OK) return kiln_py_raise(kiln_py_state_of_type(Py_TYPE(self)), s);
    return Py_BuildValue("(ii)", (int)rank, (int)world_size);
}

static PyMethodDef engine_methods[] = {
    {"from_memory", engine_from_memory, METH_VARARGS | METH_CLASS, "Engine.from_memory(buffer, flags=0)"},
    {"from_file", engine_from_file, METH_VARARGS | METH_CLASS, "Engine.from_file(path, flags=0) (mapped)"},
    {"io", engine_io, METH_NOARGS, "[(name, is_output, dtype, shape)]"},
    {"dims", engine_dims, METH_NOARGS, "[(name, [(min, opt, max), ...])]"},
    {"plugins", engine_plugins, METH_NOARGS, "[(namespace, name, version, module)]"},
    {"layers", engine_layers, METH_NOARGS, "[(kind, detail, inputs, outputs)]"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef engine_getset[] = {
    {"arena_bytes", engine_get_int, NULL, "activation arena size", (void *)0},
    {"parallel", engine_get_parallel, NULL, "(rank, world_size) the engine was built for", NULL},
    {"weight_bytes", engine_get_int, NULL, "weights size", (void *)1},
    {"format_version", engine_get_int, NULL, "engine format version", (void *)2},
    {"profile_count", engine_get_int, NULL, "number of optimization profiles", (void *)3},
    {"layer_count", engine_get_int, NULL, "number of layers", (void *)4},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot engine_slots[] = {
    {Py_tp_doc, "A loaded kiln engine (Engine.from_memory / Engine.from_file)."},
    {Py_tp_dealloc, engine_dealloc},
    {Py_tp_methods, engine_methods},
    {Py_tp_getset, engine_getset},
    {0, NULL},
};

PyType_Spec kiln_py_engine_spec = {
    .name = "_kiln.Engine",
    .basicsize = sizeof(kiln_py_engine),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = engine_slots,
};
