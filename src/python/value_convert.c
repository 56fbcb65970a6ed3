/*
 * value_convert.c — Python objects <-> kiln_value (plugin fields).
 *
 * A Python plugin's state is stored in the engine as typed values, never as
 * pickles: loading an engine cannot run code that came with it.  Mapping:
 *
 *   None  <-> NONE        bool  <-> BOOL        int   <-> INT64 (range-checked)
 *   float <-> FLOAT64     str   <-> STRING      bytes, bytearray -> BYTES -> bytes
 *   list  <-> LIST        dict with str keys <-> MAP (order kept)
 *   tuple  -> MAP {"__kiln_tuple__": LIST} -> tuple
 *   numpy array (any buffer with a kiln element format) <-> ARRAY -> numpy array
 *   numpy scalars (0-d buffers) -> BOOL / INT64 / FLOAT64 by their format
 *
 * A user dict whose only key is "__kiln_tuple__" would be ambiguous and is
 * refused.  Anything else (functions, torch tensors, objects) is a TypeError
 * whose message gives the path to the offending value ("plugin kiln::Foo
 * attribute 'cfg'['w'][2]").
 */
#include "kiln_py.h"

#include <stdio.h>
#include <string.h>

#define TUPLE_KEY "__kiln_tuple__"
#define MAX_DEPTH 64
#define PATH_MAX_LEN 400

static const char *allowed =
    "plugin state may hold None, bool, int, float, str, bytes, lists, tuples, dicts with str keys "
    "and numpy arrays";

static kiln_value *convert(kiln_py_state *st, PyObject *obj, const char *path, int depth);

static kiln_value *not_storable(PyObject *obj, const char *path) {
    PyObject *label = kiln_py_type_label(obj);
    PyErr_Format(PyExc_TypeError, "%s: a %U cannot be stored in an engine (%s)", path, label, allowed);
    Py_XDECREF(label);
    return NULL;
}

static kiln_value *kiln_fail(kiln_py_state *st, const char *path) {
    const char *msg = kiln_last_error();
    kiln_py_raise_msg(st, KILN_ERROR_NO_MEMORY, "%s: %s", path, (msg && *msg) ? msg : "out of memory");
    return NULL;
}

static void child_path(char *out, const char *path, int depth, const char *key, Py_ssize_t index) {
    if (key && depth == 0) snprintf(out, PATH_MAX_LEN, "%s '%.100s'", path, key);
    else if (key) snprintf(out, PATH_MAX_LEN, "%s['%.100s']", path, key);
    else snprintf(out, PATH_MAX_LEN, "%s[%zd]", path, index);
}

static kiln_value *convert_sequence(kiln_py_state *st, PyObject *obj, const char *path, int depth) {
    kiln_value *list = kiln_value_list();
    if (!list) return kiln_fail(st, path);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(obj);
    char sub[PATH_MAX_LEN];
    for (Py_ssize_t i = 0; i < n; i++) {
        child_path(sub, path, depth, NULL, i);
        kiln_value *item = convert(st, PySequence_Fast_GET_ITEM(obj, i), sub, depth + 1);
        if (!item) {
            kiln_value_free(list);
            return NULL;
        }
        if (kiln_value_list_append(list, item) != KILN_OK) {
            kiln_value_free(list);
            return kiln_fail(st, path);
        }
    }
    return list;
}

static kiln_value *convert_dict(kiln_py_state *st, PyObject *obj, const char *path, int depth) {
    if (PyDict_GET_SIZE(obj) == 1 && PyDict_GetItemString(obj, TUPLE_KEY)) {
        PyErr_Format(PyExc_ValueError, "%s: a dict whose only key is '%s' is reserved (kiln stores tuples that way)",
                     path, TUPLE_KEY);
        return NULL;
    }
    kiln_value *map = kiln_value_map();
    if (!map) return kiln_fail(st, path);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    char sub[PATH_MAX_LEN];
    while (PyDict_Next(obj, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) {
            PyErr_Format(PyExc_TypeError, "%s: dict key %R is not a str (%s)", path, key, allowed);
            kiln_value_free(map);
            return NULL;
        }
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
        if (!k) {
            kiln_value_free(map);
            return NULL;
        }
        if ((size_t)klen != strlen(k)) {
            PyErr_Format(PyExc_ValueError, "%s: dict key %R contains a NUL character", path, key);
            kiln_value_free(map);
            return NULL;
        }
        child_path(sub, path, depth, k, 0);
        Py_INCREF(value);   /* the dict may change under a __del__ */
        kiln_value *item = convert(st, value, sub, depth + 1);
        Py_DECREF(value);
        if (!item) {
            kiln_value_free(map);
            return NULL;
        }
        if (kiln_value_map_set(map, k, item) != KILN_OK) {
            kiln_value_free(map);
            return kiln_fail(st, path);
        }
    }
    return map;
}

/* A numpy scalar or array, or any other object with a typed buffer. */
static kiln_value *convert_buffer(kiln_py_state *st, PyObject *obj, const char *path) {
    Py_buffer b;
    if (PyObject_GetBuffer(obj, &b, PyBUF_RECORDS_RO) < 0) {
        PyErr_Clear();
        return not_storable(obj, path);
    }
    kiln_value *v = NULL;
    kiln_dtype dt;
    const char *fmt = b.format ? b.format : "B";
    const char *f = (fmt[0] == '<' || fmt[0] == '=' || fmt[0] == '@') ? fmt + 1 : fmt;
    if (b.ndim == 0 && strcmp(f, "d") == 0 && b.itemsize == 8) {   /* numpy.float64 scalar */
        double d;
        memcpy(&d, b.buf, 8);
        v = kiln_value_float64(d);
        if (!v) kiln_fail(st, path);
        PyBuffer_Release(&b);
        return v;
    }
    if (kiln_py_dtype_from_format(b.format, b.itemsize, &dt) < 0) {
        PyErr_Format(PyExc_TypeError,
                     "%s: an array of element format '%s' cannot be stored (kiln arrays hold float32, float16, "
                     "int8, uint8, int32, int64 or bool; convert it first, e.g. .astype('float32'))",
                     path, fmt);
        PyBuffer_Release(&b);
        return NULL;
    }
    if (b.ndim == 0) {   /* numpy scalar: store as the plain Python value */
        switch (dt) {
        case KILN_BOOL: v = kiln_value_bool(*(const uint8_t *)b.buf != 0); break;
        case KILN_INT8: v = kiln_value_int64(*(const int8_t *)b.buf); break;
        case KILN_UINT8: v = kiln_value_int64(*(const uint8_t *)b.buf); break;
        case KILN_INT32: { int32_t x; memcpy(&x, b.buf, 4); v = kiln_value_int64(x); break; }
        case KILN_INT64: { int64_t x; memcpy(&x, b.buf, 8); v = kiln_value_int64(x); break; }
        case KILN_FLOAT32: { float x; memcpy(&x, b.buf, 4); v = kiln_value_float64(x); break; }
        default: {
            PyBuffer_Release(&b);
            PyObject *f64 = PyNumber_Float(obj);
            if (!f64) return NULL;
            v = kiln_value_float64(PyFloat_AS_DOUBLE(f64));
            Py_DECREF(f64);
            if (!v) kiln_fail(st, path);
            return v;
        }
        }
        if (!v) kiln_fail(st, path);
        PyBuffer_Release(&b);
        return v;
    }
    if (b.ndim > KILN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%s: array rank %d exceeds %d", path, b.ndim, KILN_MAX_RANK);
        PyBuffer_Release(&b);
        return NULL;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < b.ndim; i++) dims[i] = b.shape[i];
    void *data = PyMem_Malloc(b.len ? (size_t)b.len : 1);
    if (!data) {
        PyBuffer_Release(&b);
        PyErr_NoMemory();
        return NULL;
    }
    if (PyBuffer_ToContiguous(data, &b, b.len, 'C') < 0) {
        PyMem_Free(data);
        PyBuffer_Release(&b);
        return NULL;
    }
    v = kiln_value_array(dt, b.ndim, dims, data);
    PyMem_Free(data);
    PyBuffer_Release(&b);
    if (!v) kiln_fail(st, path);
    return v;
}

static kiln_value *convert(kiln_py_state *st, PyObject *obj, const char *path, int depth) {
    if (depth > MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "%s: nested more than %d levels deep (a cycle?)", path, MAX_DEPTH);
        return NULL;
    }
    kiln_value *v = NULL;
    if (obj == Py_None) {
        v = kiln_value_none();
    } else if (PyBool_Check(obj)) {
        v = kiln_value_bool(obj == Py_True);
    } else if (PyLong_Check(obj)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) {
            PyErr_Format(PyExc_OverflowError, "%s: int %R does not fit in 64 bits", path, obj);
            return NULL;
        }
        if (x == -1 && PyErr_Occurred()) return NULL;
        v = kiln_value_int64((int64_t)x);
    } else if (PyFloat_Check(obj)) {
        v = kiln_value_float64(PyFloat_AS_DOUBLE(obj));
    } else if (PyUnicode_Check(obj)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (!s) return NULL;
        v = kiln_value_string(s, (size_t)n);
    } else if (PyBytes_Check(obj)) {
        v = kiln_value_bytes(PyBytes_AS_STRING(obj), (size_t)PyBytes_GET_SIZE(obj));
    } else if (PyByteArray_Check(obj)) {
        v = kiln_value_bytes(PyByteArray_AS_STRING(obj), (size_t)PyByteArray_GET_SIZE(obj));
    } else if (PyList_Check(obj) || PyTuple_Check(obj)) {
        PyObject *seq = PySequence_Fast(obj, "");
        if (!seq) return NULL;
        kiln_value *list = convert_sequence(st, seq, path, depth);
        Py_DECREF(seq);
        if (!list || !PyTuple_Check(obj)) return list;
        kiln_value *tagged = kiln_value_map();
        if (!tagged) {
            kiln_value_free(list);
            return kiln_fail(st, path);
        }
        if (kiln_value_map_set(tagged, TUPLE_KEY, list) != KILN_OK) {
            kiln_value_free(tagged);
            return kiln_fail(st, path);
        }
        return tagged;
    } else if (PyDict_Check(obj)) {
        return convert_dict(st, obj, path, depth);
    } else if (PyObject_CheckBuffer(obj) && !PyMemoryView_Check(obj)) {
        return convert_buffer(st, obj, path);
    } else if (PyMemoryView_Check(obj)) {
        return convert_buffer(st, obj, path);
    } else {
        return not_storable(obj, path);
    }
    if (!v) return kiln_fail(st, path);
    return v;
}

kiln_value *kiln_py_value_from_object(kiln_py_state *st, PyObject *obj, const char *path) {
    return convert(st, obj, path, 0);
}

/* --- kiln_value -> Python ------------------------------------------------ */

static PyObject *array_to_numpy(kiln_py_state *st, const kiln_value *v) {
    kiln_dtype dt;
    int32_t rank;
    const int64_t *dims;
    const void *data;
    if (kiln_value_array_info(v, &dt, &rank, &dims, &data) != KILN_OK) return kiln_py_raise(st, KILN_ERROR_CORRUPT);
    if (dt == KILN_BFLOAT16 || !kiln_dtype_name(dt)) {
        PyErr_Format(PyExc_TypeError, "array field of dtype %s has no numpy equivalent",
                     kiln_dtype_name(dt) ? kiln_dtype_name(dt) : "?");
        return NULL;
    }
    PyObject *np = kiln_py_numpy(st);
    if (!np) return NULL;
    uint64_t count = 1;
    for (int32_t i = 0; i < rank; i++) count *= (uint64_t)dims[i];
    PyObject *bytes = PyBytes_FromStringAndSize(data, (Py_ssize_t)(count * kiln_dtype_size(dt)));
    if (!bytes) return NULL;
    PyObject *flat = PyObject_CallMethod(np, "frombuffer", "Os", bytes, kiln_dtype_name(dt));
    Py_DECREF(bytes);
    if (!flat) return NULL;
    PyObject *shape = PyTuple_New(rank);
    if (!shape) {
        Py_DECREF(flat);
        return NULL;
    }
    for (int32_t i = 0; i < rank; i++) PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong((long long)dims[i]));
    PyObject *shaped = PyObject_CallMethod(flat, "reshape", "O", shape);
    Py_DECREF(shape);
    Py_DECREF(flat);
    if (!shaped) return NULL;
    PyObject *copy = PyObject_CallMethod(shaped, "copy", NULL);   /* writable, owns its memory */
    Py_DECREF(shaped);
    return copy;
}

PyObject *kiln_py_value_to_object(kiln_py_state *st, const kiln_value *v) {
    switch (kiln_value_get_type(v)) {
    case KILN_VALUE_NONE: Py_RETURN_NONE;
    case KILN_VALUE_BOOL: return PyBool_FromLong(kiln_value_as_bool(v));
    case KILN_VALUE_INT64: return PyLong_FromLongLong((long long)kiln_value_as_int64(v));
    case KILN_VALUE_FLOAT64: return PyFloat_FromDouble(kiln_value_as_float64(v));
    case KILN_VALUE_STRING: {
        size_t n = 0;
        const char *s = kiln_value_as_string(v, &n);
        return PyUnicode_DecodeUTF8(s, (Py_ssize_t)n, "surrogateescape");
    }
    case KILN_VALUE_BYTES: {
        size_t n = 0;
        const void *b = kiln_value_as_bytes(v, &n);
        return PyBytes_FromStringAndSize(b, (Py_ssize_t)n);
    }
    case KILN_VALUE_LIST: {
        size_t n = kiln_value_count(v);
        PyObject *list = PyList_New((Py_ssize_t)n);
        if (!list) return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *item = kiln_py_value_to_object(st, kiln_value_item(v, i));
            if (!item) {
                Py_DECREF(list);
                return NULL;
            }
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        }
        return list;
    }
    case KILN_VALUE_MAP: {
        size_t n = kiln_value_count(v);
        if (n == 1 && strcmp(kiln_value_key(v, 0), TUPLE_KEY) == 0 &&
            kiln_value_get_type(kiln_value_item(v, 0)) == KILN_VALUE_LIST) {
            PyObject *list = kiln_py_value_to_object(st, kiln_value_item(v, 0));
            if (!list) return NULL;
            PyObject *t = PyList_AsTuple(list);
            Py_DECREF(list);
            return t;
        }
        PyObject *d = PyDict_New();
        if (!d) return NULL;
        for (size_t i = 0; i < n; i++) {
            PyObject *item = kiln_py_value_to_object(st, kiln_value_item(v, i));
            if (!item || PyDict_SetItemString(d, kiln_value_key(v, i), item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(d);
                return NULL;
            }
            Py_DECREF(item);
        }
        return d;
    }
    case KILN_VALUE_ARRAY: return array_to_numpy(st, v);
    }
    return kiln_py_raise_msg(st, KILN_ERROR_CORRUPT, "plugin field of unknown value type %d",
                             (int)kiln_value_get_type(v));
}
