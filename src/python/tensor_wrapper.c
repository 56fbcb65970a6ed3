/*
 * tensor_wrapper.c — TensorWrapper: a kiln_tensor_desc shown to Python.
 *
 * A plugin's forward() receives TensorWrappers.  They carry no memory of
 * their own: during forward they point at the engine's buffers, which stay
 * valid only until forward returns.  The bridge makes one wrapper per plugin
 * input/output per context and repoints it on every call (no allocation per
 * call); shape/strides tuples are cached and rebuilt only when they change.
 *
 * Consumers reach the memory without a copy through:
 *   data_ptr(), shape, strides (elements), dtype, device;
 *   __array_interface__ (CPU) and __cuda_array_interface__ (CUDA), v3;
 *   __dlpack__ / __dlpack_device__ (a versioned capsule when asked for one).
 *
 * A read-only wrapper (every plugin input: activations the engine still
 * needs and weights, which may be a read-only mapping of the engine file)
 * says so in each protocol: the array interfaces' data is (ptr, True), so
 * numpy gives writeable=False arrays; a versioned DLPack capsule carries
 * DLPACK_FLAG_BITMASK_READ_ONLY; a legacy (unversioned) capsule has no such
 * flag, so one is refused unless the caller passes copy=False explicitly. 
 */
#include "kiln_py.h"
#include "dlpack_abi.h"

#include <string.h>
#include <structmember.h>

static kiln_py_state *state_of(PyObject *self) { return kiln_py_state_of_type(Py_TYPE(self)); }

PyObject *kiln_py_wrapper_new(kiln_py_state *st, int readonly) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)st->wrapper_type->tp_alloc(st->wrapper_type, 0);
    if (!w) return NULL;
    w->desc.device = (kiln_device){KILN_DEVICE_CPU, 0};
    w->readonly = readonly != 0;
    return (PyObject *)w;
}

void kiln_py_wrapper_set(kiln_py_wrapper *w, const kiln_tensor_desc *d) {
    int same_shape = w->desc.rank == d->rank &&
                     memcmp(w->desc.dims, d->dims, (size_t)d->rank * sizeof d->dims[0]) == 0;
    int same_strides = same_shape && memcmp(w->desc.strides, d->strides, (size_t)d->rank * sizeof d->strides[0]) == 0;
    w->desc = *d;
    if (!same_shape) Py_CLEAR(w->shape);
    if (!same_strides) Py_CLEAR(w->strides);
}

/* TensorWrapper(data_ptr, dtype, shape, strides=None, device="cpu", owner=None,
 *               readonly=False)
 * dtype: a kiln dtype code (kiln.DataType is an index).  device: "cpu",
 * "cuda" or "cuda:N".  owner: an object kept alive with the wrapper. */
static PyObject *wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"data_ptr", "dtype", "shape", "strides", "device", "owner", "readonly", NULL};
    PyObject *ptr_obj, *dtype_obj, *shape_obj, *strides_obj = Py_None, *owner = Py_None;
    const char *device = "cpu";
    int readonly = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|OsOp:TensorWrapper", kwlist, &ptr_obj, &dtype_obj,
                                     &shape_obj, &strides_obj, &device, &owner, &readonly))
        return NULL;
    kiln_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.data = PyLong_AsVoidPtr(ptr_obj);
    if (!d.data && PyErr_Occurred()) return NULL;
    PyObject *idx = PyNumber_Index(dtype_obj);
    if (!idx) return NULL;
    int rc = kiln_py_dtype_arg(idx, &d.dtype);
    Py_DECREF(idx);
    if (rc < 0) return NULL;
    PyObject *shape = PySequence_Fast(shape_obj, "shape must be a sequence of ints");
    if (!shape) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(shape);
    if (n > KILN_MAX_RANK) {
        Py_DECREF(shape);
        PyErr_Format(PyExc_ValueError, "rank %zd exceeds kiln's maximum of %d", n, KILN_MAX_RANK);
        return NULL;
    }
    d.rank = (int32_t)n;
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(shape, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(shape);
            return NULL;
        }
        if (v < 0) {
            Py_DECREF(shape);
            PyErr_Format(PyExc_ValueError, "shape[%zd] = %lld is negative", i, v);
            return NULL;
        }
        d.dims[i] = v;
    }
    Py_DECREF(shape);
    if (strides_obj == Py_None) {
        int64_t s = 1;
        for (int32_t i = d.rank - 1; i >= 0; i--) {
            d.strides[i] = s;
            s *= d.dims[i];
        }
    } else {
        PyObject *st = PySequence_Fast(strides_obj, "strides must be a sequence of ints");
        if (!st) return NULL;
        if (PySequence_Fast_GET_SIZE(st) != n) {
            Py_DECREF(st);
            PyErr_Format(PyExc_ValueError, "%zd strides for %zd dimensions", PySequence_Fast_GET_SIZE(st), n);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(st, i));
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(st);
                return NULL;
            }
            d.strides[i] = v;
        }
        Py_DECREF(st);
    }
    if (strcmp(device, "cpu") == 0) {
        d.device = (kiln_device){KILN_DEVICE_CPU, 0};
    } else if (strncmp(device, "cuda", 4) == 0 && (device[4] == 0 || device[4] == ':')) {
        long index = 0;
        if (device[4] == ':') {
            char *end;
            index = strtol(device + 5, &end, 10);
            if (*end || end == device + 5 || index < 0) {
                PyErr_Format(PyExc_ValueError, "bad device '%s'", device);
                return NULL;
            }
        }
        d.device = (kiln_device){KILN_DEVICE_CUDA, (int32_t)index};
    } else {
        PyErr_Format(PyExc_ValueError, "bad device '%s' (expected 'cpu', 'cuda' or 'cuda:N')", device);
        return NULL;
    }
    kiln_py_wrapper *w = (kiln_py_wrapper *)type->tp_alloc(type, 0);
    if (!w) return NULL;
    w->desc = d;
    w->readonly = readonly;
    if (owner != Py_None) w->owner = Py_NewRef(owner);
    return (PyObject *)w;
}

/* TensorWrapper.from_tensor(obj, readonly=False): wrap a torch tensor / numpy
 * array / DLPack producer, aliasing its memory (obj is kept alive by the
 * wrapper).  The wrapper is read-only when asked or when obj is. */
static PyObject *wrapper_from_tensor(PyObject *cls, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"tensor", "readonly", NULL};
    PyObject *obj;
    int readonly = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|$p:from_tensor", kwlist, &obj, &readonly)) return NULL;
    kiln_py_state *st = kiln_py_state_of_type((PyTypeObject *)cls);
    kiln_py_view view;
    if (kiln_py_view_get(st, obj, "tensor", 0, NULL, &view) < 0) return NULL;
    kiln_py_wrapper *w = (kiln_py_wrapper *)((PyTypeObject *)cls)->tp_alloc((PyTypeObject *)cls, 0);
    if (w) {
        w->desc = view.desc;
        w->readonly = readonly || view.readonly;
        w->owner = Py_NewRef(obj);
    }
    /* obj keeps the memory alive (a torch tensor's storage, an ndarray's
     * buffer); the DLPack reference or buffer export is no longer needed. */
    kiln_py_view_release(&view);
    return (PyObject *)w;
}

static int wrapper_traverse(PyObject *self, visitproc visit, void *arg) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    Py_VISIT(w->owner);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int wrapper_clear(PyObject *self) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    Py_CLEAR(w->owner);
    Py_CLEAR(w->shape);
    Py_CLEAR(w->strides);
    return 0;
}

static void wrapper_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (((kiln_py_wrapper *)self)->weakreflist) PyObject_ClearWeakRefs(self);
    wrapper_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* --- attributes ---------------------------------------------------------- */

static PyObject *int64_tuple(const int64_t *v, int32_t n, int64_t scale) {
    PyObject *t = PyTuple_New(n);
    if (!t) return NULL;
    for (int32_t i = 0; i < n; i++) {
        PyObject *x = PyLong_FromLongLong((long long)(v[i] * scale));
        if (!x) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, x);
    }
    return t;
}

static PyObject *wrapper_data_ptr(PyObject *self, PyObject *unused) {
    return PyLong_FromVoidPtr(((kiln_py_wrapper *)self)->desc.data);
}

static PyObject *wrapper_get_shape(PyObject *self, void *closure) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    if (!w->shape) w->shape = int64_tuple(w->desc.dims, w->desc.rank, 1);
    return Py_XNewRef(w->shape);
}

static PyObject *wrapper_get_strides(PyObject *self, void *closure) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    if (!w->strides) w->strides = int64_tuple(w->desc.strides, w->desc.rank, 1);
    return Py_XNewRef(w->strides);
}

/* Attributes the wrapper lacks come from the module's fallback (torch's,
 * python/kiln/tensor.py), dunder names excepted: protocols stay the wrapper's. */
static PyObject *wrapper_getattro(PyObject *self, PyObject *name) {
    PyObject *r = PyObject_GenericGetAttr(self, name);
    if (r || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
    kiln_py_state *st = state_of(self);
    const char *text = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
    if (!st->wrapper_fallback || !text || (text[0] == '_' && text[1] == '_')) return NULL;
    PyErr_Clear();
    return PyObject_CallFunctionObjArgs(st->wrapper_fallback, self, name, NULL);
}

static PyObject *wrapper_get_dtype(PyObject *self, void *closure) {
    kiln_py_state *st = state_of(self);
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    if (st->wrapper_dtypes && !PyTuple_Check(st->wrapper_dtypes)) {   /* the factory: first use */
        PyObject *table = PyObject_CallNoArgs(st->wrapper_dtypes);
        if (!table) return NULL;
        if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != KILN_DTYPE_COUNT) {
            Py_DECREF(table);
            PyErr_Format(PyExc_TypeError, "the wrapper dtype factory must return a tuple of %d dtypes",
                         KILN_DTYPE_COUNT);
            return NULL;
        }
        Py_XSETREF(st->wrapper_dtypes, table);
    }
    if (st->wrapper_dtypes && (unsigned)w->desc.dtype < KILN_DTYPE_COUNT)
        return Py_NewRef(PyTuple_GET_ITEM(st->wrapper_dtypes, w->desc.dtype));
    return PyLong_FromLong((long)w->desc.dtype);
}

static PyObject *wrapper_get_kiln_dtype(PyObject *self, void *closure) {
    return PyLong_FromLong((long)((kiln_py_wrapper *)self)->desc.dtype);
}

static PyObject *wrapper_get_device(PyObject *self, void *closure) {
    kiln_device d = ((kiln_py_wrapper *)self)->desc.device;
    if (d.type == KILN_DEVICE_CPU) return PyUnicode_FromString("cpu");
    return PyUnicode_FromFormat("cuda:%d", (int)d.index);
}

static PyObject *wrapper_get_ndim(PyObject *self, void *closure) {
    return PyLong_FromLong(((kiln_py_wrapper *)self)->desc.rank);
}

static PyObject *wrapper_get_readonly(PyObject *self, void *closure) {
    return PyBool_FromLong(((kiln_py_wrapper *)self)->readonly);
}

static const char *typestr_of(kiln_dtype t) {
    switch (t) {
    case KILN_FLOAT32: return "<f4";
    case KILN_FLOAT16: return "<f2";
    case KILN_INT8: return "|i1";
    case KILN_UINT8: return "|u1";
    case KILN_INT32: return "<i4";
    case KILN_INT64: return "<i8";
    case KILN_BOOL: return "|b1";
    default: return NULL;   /* bfloat16: no array-interface spelling */
    }
}

static PyObject *array_interface(kiln_py_wrapper *w, int cuda) {
    const char *typestr = typestr_of(w->desc.dtype);
    if (!typestr) {
        PyErr_SetString(PyExc_TypeError, "a bfloat16 tensor has no array-interface dtype: "
                                         "use kiln.convert_to_torch_tensor (DLPack) instead");
        return NULL;
    }
    PyObject *shape = wrapper_get_shape((PyObject *)w, NULL);
    if (!shape) return NULL;
    PyObject *strides;
    if (kiln_py_desc_is_contiguous(&w->desc)) strides = Py_NewRef(Py_None);
    else strides = int64_tuple(w->desc.strides, w->desc.rank, (int64_t)kiln_dtype_size(w->desc.dtype));
    if (!strides) {
        Py_DECREF(shape);
        return NULL;
    }
    PyObject *data = Py_BuildValue("(NO)", PyLong_FromVoidPtr(w->desc.data), w->readonly ? Py_True : Py_False);
    if (!data) {
        Py_DECREF(shape);
        Py_DECREF(strides);
        return NULL;
    }
    if (cuda)  /* stream None: the producer promises the data is ready (forward runs in stream order) */
        return Py_BuildValue("{sNsssNsNsisO}", "shape", shape, "typestr", typestr, "data", data, "strides", strides,
                             "version", 3, "stream", Py_None);
    return Py_BuildValue("{sNsssNsNsi}", "shape", shape, "typestr", typestr, "data", data, "strides", strides,
                         "version", 3);
}

static PyObject *wrapper_get_array_interface(PyObject *self, void *closure) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    if (w->desc.device.type != KILN_DEVICE_CPU) {
        PyErr_SetString(PyExc_AttributeError, "__array_interface__: the tensor is on a CUDA device "
                                              "(use __cuda_array_interface__)");
        return NULL;
    }
    return array_interface(w, 0);
}

static PyObject *wrapper_get_cuda_array_interface(PyObject *self, void *closure) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    if (w->desc.device.type != KILN_DEVICE_CUDA) {
        PyErr_SetString(PyExc_AttributeError, "__cuda_array_interface__: the tensor is in CPU memory");
        return NULL;
    }
    return array_interface(w, 1);
}

/* --- DLPack producer ----------------------------------------------------- */

typedef struct dl_export {
    union {
        kiln_dl_managed plain;
        kiln_dl_managed_versioned versioned;
    } m;
    int64_t   shape[KILN_MAX_RANK], strides[KILN_MAX_RANK];
    PyObject *wrapper;   /* keeps the wrapper (and its owner) alive */
} dl_export;

static void release_export(dl_export *e) {
    /* A consumer may call the deleter without the GIL. */
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF(e->wrapper);
    PyGILState_Release(g);
    PyMem_RawFree(e);
}

static void dl_deleter_plain(kiln_dl_managed *m) { release_export((dl_export *)m->manager_ctx); }
static void dl_deleter_versioned(kiln_dl_managed_versioned *m) { release_export((dl_export *)m->manager_ctx); }

static void capsule_destructor_plain(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "dltensor")) return;   /* consumed: the consumer calls the deleter */
    kiln_dl_managed *m = PyCapsule_GetPointer(capsule, "dltensor");
    if (m && m->deleter) m->deleter(m);
}

static void capsule_destructor_versioned(PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "dltensor_versioned")) return;
    kiln_dl_managed_versioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
    if (m && m->deleter) m->deleter(m);
}

static int dl_device_of(const kiln_py_wrapper *w, int32_t *type, int32_t *id) {
    if (w->desc.device.type == KILN_DEVICE_CPU) {
        *type = KILN_DL_CPU;
        *id = 0;
    } else {
        *type = KILN_DL_CUDA;
        *id = w->desc.device.index;
    }
    return 0;
}

static PyObject *wrapper_dlpack(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"stream", "max_version", "dl_device", "copy", NULL};
    PyObject *stream = Py_None, *max_version = Py_None, *dl_device = Py_None, *copy = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$OOOO:__dlpack__", kwlist, &stream, &max_version, &dl_device,
                                     &copy))
        return NULL;
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    kiln_dl_dtype dt;
    if (kiln_dl_from_dtype((int)w->desc.dtype, &dt) < 0) {
        PyErr_Format(PyExc_BufferError, "dtype %d cannot be exported", (int)w->desc.dtype);
        return NULL;
    }
    if (copy == Py_True) {
        PyErr_SetString(PyExc_BufferError, "TensorWrapper never copies: __dlpack__(copy=True) is not supported");
        return NULL;
    }
    int32_t dev_type, dev_id;
    dl_device_of(w, &dev_type, &dev_id);
    if (dl_device != Py_None) {
        int want_type, want_id;
        if (!PyArg_ParseTuple(dl_device, "ii", &want_type, &want_id)) return NULL;
        if (want_type != dev_type || want_id != dev_id) {
            PyErr_SetString(PyExc_BufferError, "TensorWrapper cannot export to another device (no copies)");
            return NULL;
        }
    }
    int versioned = 0;
    if (max_version != Py_None) {
        int major, minor;
        if (!PyArg_ParseTuple(max_version, "ii", &major, &minor)) return NULL;
        versioned = major >= 1;
    }
    /* A legacy capsule cannot say "read-only": its consumer would hand out
     * writable memory, so only a caller that asked for no copy explicitly
     * (and so takes the aliasing on itself) gets one. */
    if (w->readonly && !versioned && copy != Py_False) {
        PyErr_SetString(PyExc_BufferError,
                        "this TensorWrapper is read-only (a plugin input) and the consumer asked for an "
                        "unversioned DLPack capsule, which cannot carry a read-only flag: use a consumer that "
                        "speaks DLPack 1.0 (numpy >= 2.1, torch via kiln.convert_to_torch_tensor)");
        return NULL;
    }
    dl_export *e = PyMem_RawCalloc(1, sizeof *e);
    if (!e) return PyErr_NoMemory();
    memcpy(e->shape, w->desc.dims, sizeof e->shape);
    memcpy(e->strides, w->desc.strides, sizeof e->strides);
    kiln_dl_tensor t = {
        .data = w->desc.data,
        .device = {dev_type, dev_id},
        .ndim = w->desc.rank,
        .dtype = dt,
        .shape = e->shape,
        .strides = e->strides,
        .byte_offset = 0,
    };
    e->wrapper = Py_NewRef(self);
    PyObject *capsule;
    if (versioned) {
        e->m.versioned.version = (kiln_dl_version){1, 0};
        e->m.versioned.manager_ctx = e;
        e->m.versioned.deleter = dl_deleter_versioned;
        e->m.versioned.flags = w->readonly ? KILN_DL_FLAG_READ_ONLY : 0;
        e->m.versioned.dl_tensor = t;
        capsule = PyCapsule_New(&e->m.versioned, "dltensor_versioned", capsule_destructor_versioned);
    } else {
        e->m.plain.dl_tensor = t;
        e->m.plain.manager_ctx = e;
        e->m.plain.deleter = dl_deleter_plain;
        capsule = PyCapsule_New(&e->m.plain, "dltensor", capsule_destructor_plain);
    }
    if (!capsule) {
        Py_DECREF(self);
        PyMem_RawFree(e);
    }
    return capsule;
}

static PyObject *wrapper_dlpack_device(PyObject *self, PyObject *unused) {
    int32_t type, id;
    dl_device_of((kiln_py_wrapper *)self, &type, &id);
    return Py_BuildValue("(ii)", (int)type, (int)id);
}

static PyObject *wrapper_repr(PyObject *self) {
    kiln_py_wrapper *w = (kiln_py_wrapper *)self;
    PyObject *shape = wrapper_get_shape(self, NULL);
    if (!shape) return NULL;
    const char *dn = kiln_dtype_name(w->desc.dtype);
    PyObject *r = PyUnicode_FromFormat("TensorWrapper(data_ptr=%p, dtype=%s, shape=%R, device=%s)", w->desc.data,
                                       dn ? dn : "?", shape, w->desc.device.type == KILN_DEVICE_CPU ? "cpu" : "cuda");
    Py_DECREF(shape);
    return r;
}

static PyMethodDef wrapper_methods[] = {
    {"data_ptr", wrapper_data_ptr, METH_NOARGS, "address of the first element"},
    {"from_tensor", (PyCFunction)(void (*)(void))wrapper_from_tensor, METH_VARARGS | METH_KEYWORDS | METH_CLASS,
     "TensorWrapper.from_tensor(t, *, readonly=False): alias a torch tensor / numpy array / DLPack producer"},
    {"__dlpack__", (PyCFunction)(void (*)(void))wrapper_dlpack, METH_VARARGS | METH_KEYWORDS,
     "DLPack export (never copies)"},
    {"__dlpack_device__", wrapper_dlpack_device, METH_NOARGS, "(device_type, device_id)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef wrapper_getset[] = {
    {"shape", wrapper_get_shape, NULL, "dimensions (tuple of ints)", NULL},
    {"strides", wrapper_get_strides, NULL, "strides in elements (tuple of ints)", NULL},
    {"dtype", wrapper_get_dtype, NULL, "a torch dtype when torch is importable, else a kiln dtype", NULL},
    {"kiln_dtype", wrapper_get_kiln_dtype, NULL, "the kiln dtype code", NULL},
    {"device", wrapper_get_device, NULL, "'cpu' or 'cuda:N'", NULL},
    {"ndim", wrapper_get_ndim, NULL, "rank", NULL},
    {"readonly", wrapper_get_readonly, NULL, "True for a plugin input: forward() must not write it", NULL},
    {"__array_interface__", wrapper_get_array_interface, NULL, "numpy array interface v3 (CPU)", NULL},
    {"__cuda_array_interface__", wrapper_get_cuda_array_interface, NULL, "CUDA array interface v3", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef wrapper_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(kiln_py_wrapper, weakreflist), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot wrapper_slots[] = {
    {Py_tp_doc, "A view of a tensor handed to a plugin's forward(); aliases memory, never copies."},
    {Py_tp_new, wrapper_new},
    {Py_tp_methods, wrapper_methods},
    {Py_tp_getset, wrapper_getset},
    {Py_tp_members, wrapper_members},
    {Py_tp_repr, wrapper_repr},
    {Py_tp_getattro, wrapper_getattro},
    {Py_tp_traverse, wrapper_traverse},
    {Py_tp_clear, wrapper_clear},
    {Py_tp_dealloc, wrapper_dealloc},
    {0, NULL},
};

PyType_Spec kiln_py_wrapper_spec = {
    .name = "kiln.TensorWrapper",
    .basicsize = sizeof(kiln_py_wrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = wrapper_slots,
};
