/*
 * blob_object.c — Blob: the bytes of a built engine.
 *
 * Exposes the kiln_blob through the buffer protocol (read-only), so
 * `f.write(engine)`, `bytes(engine)` and `memoryview(engine)` work without a
 * copy, and adds save(path).  While a memoryview is exported the blob stays
 * alive (the buffer holds a reference to this object).
 */
#include "kiln_py.h"

typedef struct blob_object {
    PyObject_HEAD
    kiln_blob *blob;
} blob_object;

PyObject *kiln_py_blob_new(kiln_py_state *st, kiln_blob *blob) {
    blob_object *b = PyObject_New(blob_object, st->blob_type);
    if (!b) {
        kiln_blob_free(blob);
        return NULL;
    }
    b->blob = blob;
    return (PyObject *)b;
}

static void blob_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    kiln_blob_free(((blob_object *)self)->blob);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int blob_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    kiln_blob *b = ((blob_object *)self)->blob;
    return PyBuffer_FillInfo(view, self, (void *)kiln_blob_data(b), (Py_ssize_t)kiln_blob_size(b), 1, flags);
}

static Py_ssize_t blob_length(PyObject *self) {
    return (Py_ssize_t)kiln_blob_size(((blob_object *)self)->blob);
}

static PyObject *blob_save(PyObject *self, PyObject *arg) {
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path)) return NULL;
    kiln_status s;
    kiln_blob *b = ((blob_object *)self)->blob;
    const char *p = PyBytes_AS_STRING(path);
    Py_BEGIN_ALLOW_THREADS
    s = kiln_blob_save(b, p);
    Py_END_ALLOW_THREADS
    Py_DECREF(path);
    if (s != KILN_OK) return kiln_py_raise(kiln_py_state_of_type(Py_TYPE(self)), s);
    Py_RETURN_NONE;
}

static PyObject *blob_tobytes(PyObject *self, PyObject *unused) {
    kiln_blob *b = ((blob_object *)self)->blob;
    return PyBytes_FromStringAndSize((const char *)kiln_blob_data(b), (Py_ssize_t)kiln_blob_size(b));
}

static PyObject *blob_repr(PyObject *self) {
    return PyUnicode_FromFormat("<kiln engine, %zd bytes>", blob_length(self));
}

static PyMethodDef blob_methods[] = {
    {"save", blob_save, METH_O, "save(path): write the engine to a file"},
    {"tobytes", blob_tobytes, METH_NOARGS, "a bytes copy"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot blob_slots[] = {
    {Py_tp_doc, "Serialized engine bytes (buffer protocol; save(path))."},
    {Py_tp_dealloc, blob_dealloc},
    {Py_tp_methods, blob_methods},
    {Py_tp_repr, blob_repr},
    {Py_bf_getbuffer, blob_getbuffer},
    {Py_sq_length, blob_length},
    {Py_mp_length, blob_length},
    {0, NULL},
};

PyType_Spec kiln_py_blob_spec = {
    .name = "_kiln.Blob",
    .basicsize = sizeof(blob_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = blob_slots,
};
