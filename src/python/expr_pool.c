/*
 * expr_pool.c — ExprPool: a Python handle on a kiln_exprs pool.
 *
 * kiln.SymDim (python/kiln/plugin.py) holds a pool and a kiln_expr id and
 * builds new expressions through these methods.  A pool is a Network's (the
 * handle keeps the Network alive, so a SymDim kept after tracing stays
 * usable): plugin shape rules are traced by Python on the network's pool,
 * never called back from C on a pool of the core's.
 */
#include "kiln_py.h"

static kiln_py_state *state_of(PyObject *self) { return kiln_py_state_of_type(Py_TYPE(self)); }

PyObject *kiln_py_pool_new(kiln_py_state *st, kiln_exprs *pool, PyObject *owner) {
    kiln_py_pool *p = PyObject_GC_New(kiln_py_pool, st->pool_type);
    if (!p) return NULL;
    p->pool = pool;
    p->owner = Py_XNewRef(owner);
    PyObject_GC_Track(p);
    return (PyObject *)p;
}

/* A kiln_expr result: negative means the pool refused (bad id, overflow). */
static PyObject *expr_result(kiln_py_pool *p, kiln_expr e, const char *what) {
    if (e < 0) {
        const char *msg = kiln_last_error();
        return kiln_py_raise_msg(state_of((PyObject *)p), KILN_ERROR_INVALID_ARGUMENT, "%s: %s", what,
                                 (msg && *msg) ? msg : "invalid expression");
    }
    return PyLong_FromLong((long)e);
}

int kiln_py_expr_arg(PyObject *obj, kiln_expr *out) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "invalid expression id %ld", v);
        return -1;
    }
    *out = (kiln_expr)v;
    return 0;
}

static PyObject *pool_const(PyObject *self, PyObject *arg) {
    kiln_py_pool *p = (kiln_py_pool *)self;
    kiln_exprs *pool = p->pool;
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred()) return NULL;
    return expr_result(p, kiln_expr_const(pool, (int64_t)v), "constant dimension");
}

static PyObject *pool_binary(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    kiln_py_pool *p = (kiln_py_pool *)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "binary(op, a, b) takes 3 arguments");
        return NULL;
    }
    kiln_exprs *pool = p->pool;
    long op = PyLong_AsLong(args[0]);
    if (op == -1 && PyErr_Occurred()) return NULL;
    if (op < KILN_EXPR_ADD || op >= KILN_EXPR_OP_COUNT) {
        PyErr_Format(PyExc_ValueError, "unknown expression op %ld", op);
        return NULL;
    }
    kiln_expr a, b;
    if (kiln_py_expr_arg(args[1], &a) < 0 || kiln_py_expr_arg(args[2], &b) < 0) return NULL;
    return expr_result(p, kiln_expr_binary(pool, (kiln_expr_op)op, a, b), "symbolic dimension");
}

static PyObject *pool_is_const(PyObject *self, PyObject *arg) {
    kiln_py_pool *p = (kiln_py_pool *)self;
    kiln_exprs *pool = p->pool;
    kiln_expr e;
    if (kiln_py_expr_arg(arg, &e) < 0) return NULL;
    int64_t v;
    if (kiln_expr_is_const(pool, e, &v)) return PyLong_FromLongLong((long long)v);
    Py_RETURN_NONE;
}

static PyObject *pool_format(PyObject *self, PyObject *arg) {
    kiln_py_pool *p = (kiln_py_pool *)self;
    kiln_exprs *pool = p->pool;
    kiln_expr e;
    if (kiln_py_expr_arg(arg, &e) < 0) return NULL;
    char small[256];
    size_t n = kiln_expr_format(pool, e, small, sizeof small);
    if (n < sizeof small) return PyUnicode_FromStringAndSize(small, (Py_ssize_t)n);
    char *big = PyMem_Malloc(n + 1);
    if (!big) return PyErr_NoMemory();
    kiln_expr_format(pool, e, big, n + 1);
    PyObject *r = PyUnicode_FromStringAndSize(big, (Py_ssize_t)n);
    PyMem_Free(big);
    return r;
}

/* eval(e, dim_values): dim_values indexed like kiln_network_add_dim's dims. */
static PyObject *pool_eval(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    kiln_py_pool *p = (kiln_py_pool *)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "eval(e, dim_values) takes 2 arguments");
        return NULL;
    }
    kiln_exprs *pool = p->pool;
    kiln_expr e;
    if (kiln_py_expr_arg(args[0], &e) < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[1], "dim_values must be a sequence of ints");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    int64_t *vals = PyMem_Calloc(n ? (size_t)n : 1, sizeof *vals);
    if (!vals) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(vals);
            Py_DECREF(seq);
            return NULL;
        }
        vals[i] = (int64_t)v;
    }
    Py_DECREF(seq);
    int64_t out = 0;
    kiln_status s = kiln_expr_eval(pool, e, vals, (int32_t)n, &out);
    PyMem_Free(vals);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return PyLong_FromLongLong((long long)out);
}

static PyObject *pool_key(PyObject *self, void *closure) {
    /* Identity of the underlying pool (SymDims of one network share it). */
    return PyLong_FromVoidPtr(((kiln_py_pool *)self)->pool);
}

static int pool_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((kiln_py_pool *)self)->owner);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int pool_clear(PyObject *self) {
    Py_CLEAR(((kiln_py_pool *)self)->owner);
    return 0;
}

static void pool_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    pool_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyMethodDef pool_methods[] = {
    {"const", pool_const, METH_O, "const(value) -> expression id"},
    {"binary", (PyCFunction)(void (*)(void))pool_binary, METH_FASTCALL, "binary(op, a, b) -> expression id"},
    {"is_const", pool_is_const, METH_O, "the constant value of e, or None"},
    {"format", pool_format, METH_O, "e as text"},
    {"eval", (PyCFunction)(void (*)(void))pool_eval, METH_FASTCALL, "eval(e, dim_values) -> int"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef pool_getset[] = {
    {"key", pool_key, NULL, "identity of the underlying pool", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot pool_slots[] = {
    {Py_tp_doc, "A kiln expression pool (symbolic dimensions live in one)."},
    {Py_tp_methods, pool_methods},
    {Py_tp_getset, pool_getset},
    {Py_tp_traverse, pool_traverse},
    {Py_tp_clear, pool_clear},
    {Py_tp_dealloc, pool_dealloc},
    {0, NULL},
};

PyType_Spec kiln_py_pool_spec = {
    .name = "_kiln.ExprPool",
    .basicsize = sizeof(kiln_py_pool),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = pool_slots,
};
