/*
 * tensor_view.c — reading a Python array's memory without copying.
 *
 * Session.run and the eager plugin path accept torch tensors, numpy arrays
 * and anything else that speaks DLPack or the buffer protocol.  The cheapest
 * route is tried first:
 *   1. a kiln TensorWrapper: its descriptor is copied;
 *   2. the buffer protocol (numpy arrays, memoryviews, bytearrays): one call;
 *   3. __dlpack__ (torch, cupy, jax, numpy too): the capsule is consumed and
 *      its deleter called when the view is released.
 * A view is only valid while the caller holds the object it came from.
 */
#include "kiln_py.h"
#include "dlpack_abi.h"

#include <string.h>

int kiln_py_dtype_from_format(const char *format, Py_ssize_t itemsize, kiln_dtype *out) {
    if (!format) format = "B";
    char c = format[0];
    if (c == '@' || c == '=' || c == '<') c = format[1];
    else if (c == '>' || c == '!') return -1;        /* big-endian data */
    if (c == 0 || (format[0] != c && format[2] != 0) || (format[0] == c && format[1] != 0)) return -1;
    switch (c) {
    case 'f': if (itemsize == 4) { *out = KILN_FLOAT32; return 0; } return -1;
    case 'e': if (itemsize == 2) { *out = KILN_FLOAT16; return 0; } return -1;
    case 'b': *out = KILN_INT8; return 0;
    case 'B': *out = KILN_UINT8; return 0;
    case '?': *out = KILN_BOOL; return 0;
    case 'h': case 'i': case 'l': case 'q': case 'n':
        if (itemsize == 4) { *out = KILN_INT32; return 0; }
        if (itemsize == 8) { *out = KILN_INT64; return 0; }
        return -1;
    default: return -1;
    }
}

int kiln_py_desc_is_contiguous(const kiln_tensor_desc *d) {
    /* A tensor of no elements is any layout (torch gives [4, 0, 6] strides (6, 6, 1)). */
    for (int32_t i = 0; i < d->rank; i++)
        if (d->dims[i] == 0) return 1;
    int64_t expect = 1;
    for (int32_t i = d->rank - 1; i >= 0; i--) {
        if (d->dims[i] != 1 && d->strides[i] != expect) return 0;
        expect *= d->dims[i];
    }
    return 1;
}

static void contiguous_strides(kiln_tensor_desc *d) {
    int64_t s = 1;
    for (int32_t i = d->rank - 1; i >= 0; i--) {
        d->strides[i] = s;
        s *= d->dims[i];
    }
}

static int from_wrapper(kiln_py_wrapper *w, const char *what, int writable, kiln_py_view *view) {
    view->desc = w->desc;
    view->contiguous = kiln_py_desc_is_contiguous(&w->desc);
    view->readonly = w->readonly;
    return 0;
}

static int from_buffer(PyObject *obj, const char *what, int writable, kiln_py_view *view) {
    int flags = PyBUF_RECORDS_RO;
    if (writable) flags |= PyBUF_WRITABLE;
    if (PyObject_GetBuffer(obj, &view->buffer, flags) < 0) {
        PyObject *exc = kiln_py_fetch_exception();
        PyErr_Format(writable ? PyExc_ValueError : PyExc_TypeError, "%s: %s", what,
                     writable ? "is read-only or has no usable buffer" : "has no usable buffer");
        if (exc) {
            PyObject *now = kiln_py_fetch_exception();
            PyException_SetCause(now, exc);
            kiln_py_restore_exception(now);
        }
        return -1;
    }
    Py_buffer *b = &view->buffer;
    view->has_buffer = 1;
    if (b->ndim > KILN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%s: rank %d exceeds kiln's maximum of %d", what, b->ndim, KILN_MAX_RANK);
        goto fail;
    }
    if (kiln_py_dtype_from_format(b->format, b->itemsize, &view->desc.dtype) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: element format '%s' (%zd bytes) has no kiln dtype", what,
                     b->format ? b->format : "B", b->itemsize);
        goto fail;
    }
    view->desc.data = b->buf;
    view->desc.rank = b->ndim;
    view->desc.device = (kiln_device){KILN_DEVICE_CPU, 0};
    for (int i = 0; i < b->ndim; i++) {
        view->desc.dims[i] = b->shape[i];
        if (b->strides && b->strides[i] % b->itemsize != 0) {
            PyErr_Format(PyExc_ValueError, "%s: stride %zd of axis %d is not a multiple of the item size", what,
                         b->strides[i], i);
            goto fail;
        }
        view->desc.strides[i] = b->strides ? b->strides[i] / b->itemsize : 0;
    }
    if (!b->strides) contiguous_strides(&view->desc);
    view->contiguous = kiln_py_desc_is_contiguous(&view->desc);
    view->readonly = b->readonly;
    return 0;
fail:
    PyBuffer_Release(b);
    view->has_buffer = 0;
    return -1;
}

static int fill_from_dl(const kiln_dl_tensor *t, const char *what, kiln_py_view *view) {
    if (t->ndim < 0 || t->ndim > KILN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%s: rank %d is outside 0..%d", what, (int)t->ndim, KILN_MAX_RANK);
        return -1;
    }
    int dtype = kiln_dl_to_dtype(t->dtype);
    if (dtype < 0) {
        PyErr_Format(PyExc_TypeError, "%s: DLPack dtype (code %d, %d bits, %d lanes) has no kiln dtype", what,
                     t->dtype.code, t->dtype.bits, t->dtype.lanes);
        return -1;
    }
    switch (t->device.device_type) {
    case KILN_DL_CPU: case KILN_DL_CUDA_HOST:
        view->desc.device = (kiln_device){KILN_DEVICE_CPU, 0};
        break;
    case KILN_DL_CUDA: case KILN_DL_CUDA_MANAGED:
        view->desc.device = (kiln_device){KILN_DEVICE_CUDA, t->device.device_id};
        break;
    default:
        PyErr_Format(PyExc_ValueError, "%s: DLPack device type %d is neither CPU nor CUDA", what,
                     (int)t->device.device_type);
        return -1;
    }
    view->desc.dtype = (kiln_dtype)dtype;
    view->desc.rank = t->ndim;
    view->desc.data = (char *)t->data + t->byte_offset;
    for (int32_t i = 0; i < t->ndim; i++) {
        view->desc.dims[i] = t->shape[i];
        view->desc.strides[i] = t->strides ? t->strides[i] : 0;
    }
    if (!t->strides) contiguous_strides(&view->desc);
    view->contiguous = kiln_py_desc_is_contiguous(&view->desc);
    return 0;
}

/* DLPack's stream argument for a cudaStream_t: the spec reserves 0, and the
 * legacy default stream (handle 0 in the CUDA runtime) is spelled 1. */
static PyObject *dlpack_stream_arg(PyObject *stream) {
    if (!stream || stream == Py_None) return NULL;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(stream, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return Py_NewRef(stream);
    }
    return v == 0 && !overflow ? PyLong_FromLong(1) : Py_NewRef(stream);
}

static PyObject *call_dlpack(kiln_py_state *st, PyObject *obj, PyObject *stream_in) {
    /* Ask for a versioned capsule (it carries the read-only flag, so numpy
     * gives one for read-only arrays too); old producers reject the keyword. */
    PyObject *kwnames = NULL, *version = NULL, *r = NULL;
    version = Py_BuildValue("(ii)", 1, 0);
    if (!version) return NULL;
    PyObject *method = PyObject_GetAttr(obj, st->str_dlpack);
    if (!method) {
        Py_DECREF(version);
        return NULL;
    }
    PyObject *stream = dlpack_stream_arg(stream_in);
    if (stream && stream != Py_None) {
        PyObject *args[2] = {stream, version};
        kwnames = Py_BuildValue("(ss)", "stream", "max_version");
        if (kwnames) r = PyObject_Vectorcall(method, args, 0, kwnames);
    } else {
        PyObject *args[1] = {version};
        kwnames = Py_BuildValue("(s)", "max_version");
        if (kwnames) r = PyObject_Vectorcall(method, args, 0, kwnames);
    }
    Py_XDECREF(kwnames);
    if (!r && PyErr_ExceptionMatches(PyExc_TypeError)) {
        PyErr_Clear();
        if (stream && stream != Py_None) {
            PyObject *args[1] = {stream};
            kwnames = Py_BuildValue("(s)", "stream");
            if (kwnames) r = PyObject_Vectorcall(method, args, 0, kwnames);
            Py_XDECREF(kwnames);
        } else {
            r = PyObject_CallNoArgs(method);
        }
    }
    Py_DECREF(method);
    Py_DECREF(version);
    Py_XDECREF(stream);
    return r;
}

static int from_dlpack(kiln_py_state *st, PyObject *obj, const char *what, int writable, PyObject *stream,
                       kiln_py_view *view) {
    PyObject *capsule = call_dlpack(st, obj, stream);
    if (!capsule) return -1;
    int rc = -1;
    if (PyCapsule_IsValid(capsule, "dltensor_versioned")) {
        kiln_dl_managed_versioned *m = PyCapsule_GetPointer(capsule, "dltensor_versioned");
        if (m->version.major != 1) {
            PyErr_Format(PyExc_ValueError, "%s: DLPack version %u.%u is not supported (kiln reads 1.x)", what,
                         m->version.major, m->version.minor);
            goto done;   /* capsule destructor frees it: not renamed */
        }
        if (PyCapsule_SetName(capsule, "used_dltensor_versioned") < 0) goto done;
        view->managed = m;
        view->versioned = 1;
        view->readonly = (m->flags & KILN_DL_FLAG_READ_ONLY) != 0;
        rc = fill_from_dl(&m->dl_tensor, what, view);
    } else if (PyCapsule_IsValid(capsule, "dltensor")) {
        kiln_dl_managed *m = PyCapsule_GetPointer(capsule, "dltensor");
        if (PyCapsule_SetName(capsule, "used_dltensor") < 0) goto done;
        view->managed = m;
        view->versioned = 0;
        rc = fill_from_dl(&m->dl_tensor, what, view);
    } else {
        PyErr_Format(PyExc_TypeError, "%s: __dlpack__ did not return a DLPack capsule", what);
    }
    if (rc < 0 && view->managed) kiln_py_view_release(view);
done:
    Py_DECREF(capsule);
    return rc;
}

/* The torch.Tensor fast path.  torch's attributes are C getters: reading
 * data_ptr, shape, stride, dtype and device costs far less than making and
 * consuming a DLPack capsule, which matters for per-run overhead.  Exact
 * torch.Tensor only (subclasses may override these); no stream handshake:
 * as with TensorRT, the caller passes the stream its inputs are ready on. */
static PyTypeObject *torch_tensor_type(kiln_py_state *st) {
    if (st->torch_tensor_type) return (PyTypeObject *)st->torch_tensor_type;
    PyObject *name = PyUnicode_FromString("torch");
    PyObject *torch = name ? PyImport_GetModule(name) : NULL;   /* only if already imported */
    Py_XDECREF(name);
    if (!torch) {
        PyErr_Clear();
        return NULL;
    }
    static const struct { const char *name; kiln_dtype dtype; } map[] = {
        {"float32", KILN_FLOAT32}, {"float16", KILN_FLOAT16}, {"bfloat16", KILN_BFLOAT16}, {"int8", KILN_INT8},
        {"uint8", KILN_UINT8},     {"int32", KILN_INT32},     {"int64", KILN_INT64},       {"bool", KILN_BOOL},
    };
    PyObject *type = PyObject_GetAttrString(torch, "Tensor");
    PyObject *dtypes = PyDict_New();
    int ok = type && PyType_Check(type) && dtypes;
    for (size_t i = 0; ok && i < sizeof map / sizeof map[0]; i++) {
        PyObject *key = PyObject_GetAttrString(torch, map[i].name);
        PyObject *code = PyLong_FromLong(map[i].dtype);
        ok = key && code && PyDict_SetItem(dtypes, key, code) == 0;
        Py_XDECREF(key);
        Py_XDECREF(code);
    }
    Py_DECREF(torch);
    if (!ok) {   /* an unusual torch: use DLPack for it */
        PyErr_Clear();
        Py_XDECREF(type);
        Py_XDECREF(dtypes);
        return NULL;
    }
    st->torch_tensor_type = type;
    st->torch_dtypes = dtypes;
    return (PyTypeObject *)type;
}

/* Fills view from an exact torch.Tensor; returns 1 done, 0 "use DLPack", -1 error. */
static int from_torch(kiln_py_state *st, PyObject *obj, const char *what, kiln_py_view *view) {
    PyObject *dtype = PyObject_GetAttr(obj, st->str_dtype);
    if (!dtype) return -1;
    PyObject *code = PyDict_GetItemWithError(st->torch_dtypes, dtype);   /* borrowed */
    Py_DECREF(dtype);
    if (!code) return PyErr_Occurred() ? -1 : 0;   /* a dtype kiln lacks: DLPack reports it */
    PyObject *ptr = PyObject_CallMethodNoArgs(obj, st->str_data_ptr);
    PyObject *shape = ptr ? PyObject_GetAttr(obj, st->str_shape) : NULL;
    PyObject *strides = shape ? PyObject_CallMethodNoArgs(obj, st->str_stride) : NULL;
    PyObject *device = strides ? PyObject_CallMethodNoArgs(obj, st->str_get_device) : NULL;
    int rc = -1;
    if (!device) goto done;
    if (!PyTuple_Check(shape) || !PyTuple_Check(strides) || PyTuple_GET_SIZE(shape) != PyTuple_GET_SIZE(strides)) {
        rc = 0;
        goto done;
    }
    Py_ssize_t rank = PyTuple_GET_SIZE(shape);
    if (rank > KILN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%s: rank %zd is outside 0..%d", what, rank, KILN_MAX_RANK);
        goto done;
    }
    view->desc.rank = (int32_t)rank;
    for (Py_ssize_t i = 0; i < rank; i++) {
        view->desc.dims[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(shape, i));
        view->desc.strides[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(strides, i));
    }
    long dev = PyLong_AsLong(device);
    view->desc.data = PyLong_AsVoidPtr(ptr);
    if (PyErr_Occurred()) goto done;
    view->desc.dtype = (kiln_dtype)PyLong_AsLong(code);
    view->desc.device = dev < 0 ? (kiln_device){KILN_DEVICE_CPU, 0} : (kiln_device){KILN_DEVICE_CUDA, (int32_t)dev};
    view->contiguous = kiln_py_desc_is_contiguous(&view->desc);
    rc = 1;
done:
    Py_XDECREF(ptr);
    Py_XDECREF(shape);
    Py_XDECREF(strides);
    Py_XDECREF(device);
    return rc;
}

int kiln_py_view_get(kiln_py_state *st, PyObject *obj, const char *what, int writable, PyObject *stream,
                     kiln_py_view *view) {
    memset(view, 0, sizeof *view);
    int rc;
    PyTypeObject *tensor_type = torch_tensor_type(st);
    if (Py_IS_TYPE(obj, st->wrapper_type)) rc = from_wrapper((kiln_py_wrapper *)obj, what, writable, view);
    else if (tensor_type && Py_IS_TYPE(obj, tensor_type) && (rc = from_torch(st, obj, what, view)) != 0)
        rc = rc < 0 ? -1 : 0;
    else if (PyObject_CheckBuffer(obj)) {
        rc = from_buffer(obj, what, writable, view);
        /* Device arrays (CuPy, JAX) offer the buffer protocol only to refuse it:
         * their memory is reached through DLPack.  The refusal is set aside
         * while asking for __dlpack__ (no lookup may run with an exception
         * pending) and raised again when there is none. */
        if (rc < 0) {
            PyObject *refusal = kiln_py_fetch_exception();
            if (PyObject_HasAttr(obj, st->str_dlpack)) {
                Py_XDECREF(refusal);
                memset(view, 0, sizeof *view);
                rc = from_dlpack(st, obj, what, writable, stream, view);
            } else {
                kiln_py_restore_exception(refusal);
            }
        }
    }
    else if (PyObject_HasAttr(obj, st->str_dlpack)) rc = from_dlpack(st, obj, what, writable, stream, view);
    else {
        PyObject *label = kiln_py_type_label(obj);
        PyErr_Format(PyExc_TypeError,
                     "%s: a %U is not a tensor (expected a torch tensor, a numpy array or an object with "
                     "__dlpack__ or the buffer protocol)",
                     what, label);
        Py_XDECREF(label);
        return -1;
    }
    if (rc < 0) return -1;
    if (writable && view->readonly) {
        kiln_py_view_release(view);
        PyErr_Format(PyExc_ValueError, "%s: the array is read-only", what);
        return -1;
    }
    return 0;
}

void kiln_py_view_release(kiln_py_view *view) {
    if (view->has_buffer) {
        PyBuffer_Release(&view->buffer);
        view->has_buffer = 0;
    }
    if (view->managed) {
        if (view->versioned) {
            kiln_dl_managed_versioned *m = view->managed;
            if (m->deleter) m->deleter(m);
        } else {
            kiln_dl_managed *m = view->managed;
            if (m->deleter) m->deleter(m);
        }
        view->managed = NULL;
    }
}
