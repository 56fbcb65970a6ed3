/*
 * network_object.c — Network: a kiln_network seen from Python.
 *
 * The methods are one-to-one with kiln_network_* and speak in plain ints
 * (tensor ids, expression ids, dtype codes); kiln.network builds the
 * friendly Tensor/operator layer on top.  Every failure raises kiln.Error
 * with the core's message, which names the tensor or dimension at fault.
 */
#include "kiln_py.h"
#include "ops/op_list.h"   /* KILN_OP_MAX_INPUTS */

#include <stdio.h>
#include <string.h>

static kiln_py_state *state_of(PyObject *self) { return kiln_py_state_of_type(Py_TYPE(self)); }
static kiln_network *net_of(PyObject *self) { return ((kiln_py_network *)self)->net; }

static PyObject *check(PyObject *self, kiln_status s) {
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

static PyObject *tensor_result(PyObject *self, kiln_status s, kiln_tensor t) {
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return PyLong_FromLong((long)t);
}

static int tensor_arg(PyObject *obj, kiln_tensor *out) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < INT32_MIN || v > INT32_MAX) {
        PyErr_Format(PyExc_ValueError, "invalid tensor id %ld", v);
        return -1;
    }
    *out = (kiln_tensor)v;
    return 0;
}

/* A sequence of ints into an int64 array of at most `max` entries. */
static int int_list(PyObject *obj, const char *what, int64_t *out, int32_t max, int32_t *count) {
    PyObject *seq = PySequence_Fast(obj, "expected a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > max) {
        Py_DECREF(seq);
        PyErr_Format(PyExc_ValueError, "%s has %zd entries; kiln takes at most %d", what, n, (int)max);
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return -1;
        }
        out[i] = (int64_t)v;
    }
    Py_DECREF(seq);
    *count = (int32_t)n;
    return 0;
}

/* Dims: a sequence of at most KILN_MAX_RANK ints. */
static int int64_list(PyObject *obj, const char *what, int64_t *out, int32_t *count) {
    PyObject *seq = PySequence_Fast(obj, "expected a sequence of ints");
    if (!seq) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_DECREF(seq);
    if (n > KILN_MAX_RANK) {
        PyErr_Format(PyExc_ValueError, "%s has %zd dimensions; kiln supports at most %d", what, n, KILN_MAX_RANK);
        return -1;
    }
    return int_list(obj, what, out, KILN_MAX_RANK, count);
}

/* A sequence of expression ids, at most `max`. */
static int expr_list_n(PyObject *obj, const char *what, kiln_expr *out, int32_t max, int32_t *count) {
    int64_t tmp[2 * KILN_MAX_RANK];
    if (max > 2 * KILN_MAX_RANK) max = 2 * KILN_MAX_RANK;
    if (int_list(obj, what, tmp, max, count) < 0) return -1;
    for (int32_t i = 0; i < *count; i++) {
        if (tmp[i] < 0 || tmp[i] > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "%s: invalid expression id %lld", what, (long long)tmp[i]);
            return -1;
        }
        out[i] = (kiln_expr)tmp[i];
    }
    return 0;
}

/* A shape: at most KILN_MAX_RANK expression ids. */
static int expr_list(PyObject *obj, const char *what, kiln_expr *out, int32_t *count) {
    return expr_list_n(obj, what, out, KILN_MAX_RANK, count);
}

/* --- construction -------------------------------------------------------- */

static PyObject *network_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) || (kwargs && PyDict_GET_SIZE(kwargs))) {
        PyErr_SetString(PyExc_TypeError, "Network() takes no arguments");
        return NULL;
    }
    kiln_py_network *self = (kiln_py_network *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    kiln_status s = kiln_network_create(&self->net);
    if (s != KILN_OK) {
        Py_DECREF(self);
        return kiln_py_raise(kiln_py_state_of_type(type), s);
    }
    return (PyObject *)self;
}

static int network_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((kiln_py_network *)self)->pool);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int network_clear(PyObject *self) {
    Py_CLEAR(((kiln_py_network *)self)->pool);
    return 0;
}

static void network_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    network_clear(self);
    kiln_network_free(net_of(self));
    tp->tp_free(self);
    Py_DECREF(tp);
}

/* The pool handle owns a reference to the network, and the network caches
 * the handle: a cycle the GC collects. */
static PyObject *network_exprs(PyObject *self, void *closure) {
    kiln_py_network *n = (kiln_py_network *)self;
    if (!n->pool) {
        n->pool = kiln_py_pool_new(state_of(self), kiln_network_exprs(n->net), self);
        if (!n->pool) return NULL;
    }
    return Py_NewRef(n->pool);
}

/* --- dimensions, inputs, constants -------------------------------------- */

/* add_dim(name, ranges) with ranges a sequence of (min, opt, max), one per profile. */
static PyObject *network_add_dim(PyObject *self, PyObject *args) {
    const char *name;
    PyObject *ranges_obj;
    if (!PyArg_ParseTuple(args, "sO:add_dim", &name, &ranges_obj)) return NULL;
    PyObject *seq = PySequence_Fast(ranges_obj, "ranges must be a sequence of (min, opt, max)");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    kiln_dim_range *ranges = PyMem_Calloc(n ? (size_t)n : 1, sizeof *ranges);
    if (!ranges) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        long long lo, opt, hi;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "LLL", &lo, &opt, &hi)) {
            PyMem_Free(ranges);
            Py_DECREF(seq);
            return NULL;
        }
        ranges[i] = (kiln_dim_range){lo, opt, hi};
    }
    Py_DECREF(seq);
    kiln_expr e = KILN_EXPR_INVALID;
    kiln_status s = kiln_network_add_dim(net_of(self), name, ranges, (int32_t)n, &e);
    PyMem_Free(ranges);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return PyLong_FromLong((long)e);
}

/* find_dim(name) -> expression id, or None when not declared. */
static PyObject *network_find_dim(PyObject *self, PyObject *arg) {
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    kiln_expr e;
    kiln_status s = kiln_network_find_dim(net_of(self), name, &e);
    if (s == KILN_ERROR_NOT_FOUND || s == KILN_ERROR_INVALID_ARGUMENT) {
        kiln_clear_error();
        Py_RETURN_NONE;
    }
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return PyLong_FromLong((long)e);
}

static PyObject *network_add_input(PyObject *self, PyObject *args) {
    const char *name;
    int dtype;
    PyObject *shape_obj;
    if (!PyArg_ParseTuple(args, "siO:add_input", &name, &dtype, &shape_obj)) return NULL;
    kiln_expr shape[KILN_MAX_RANK];
    int32_t rank;
    if (expr_list(shape_obj, name, shape, &rank) < 0) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_input(net_of(self), name, (kiln_dtype)dtype, rank, shape, &t);
    return tensor_result(self, s, t);
}

/* add_constant(name, dtype, dims, data): data is any C-contiguous buffer of
 * exactly prod(dims) * itemsize bytes (the Python layer makes it so). */
static PyObject *network_add_constant(PyObject *self, PyObject *args) {
    const char *name;
    int dtype;
    PyObject *dims_obj;
    Py_buffer buf;
    if (!PyArg_ParseTuple(args, "siOy*:add_constant", &name, &dtype, &dims_obj, &buf)) return NULL;
    int64_t dims[KILN_MAX_RANK];
    int32_t rank;
    if (int64_list(dims_obj, name, dims, &rank) < 0) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    size_t itemsize = kiln_dtype_size((kiln_dtype)dtype);
    uint64_t count = 1;
    for (int32_t i = 0; i < rank; i++) count *= (uint64_t)(dims[i] < 0 ? 0 : dims[i]);
    if (itemsize == 0 || (uint64_t)buf.len != count * itemsize) {
        PyBuffer_Release(&buf);
        return kiln_py_raise_msg(state_of(self), KILN_ERROR_INVALID_ARGUMENT,
                                 "constant '%s': %zd bytes of data for %llu elements of %zu bytes", name,
                                 buf.len, (unsigned long long)count, itemsize);
    }
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_constant(net_of(self), name, (kiln_dtype)dtype, rank, dims, buf.buf, &t);
    PyBuffer_Release(&buf);
    return tensor_result(self, s, t);
}

/* --- layers -------------------------------------------------------------- */

static PyObject *network_add_cast(PyObject *self, PyObject *args) {
    int x, dtype;
    if (!PyArg_ParseTuple(args, "ii:add_cast", &x, &dtype)) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_cast(net_of(self), x, (kiln_dtype)dtype, &t);
    return tensor_result(self, s, t);
}

static PyObject *network_add_binary(PyObject *self, PyObject *args) {
    int op, a, b;
    if (!PyArg_ParseTuple(args, "iii:add_binary", &op, &a, &b)) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_binary(net_of(self), (kiln_binary_op)op, a, b, &t);
    return tensor_result(self, s, t);
}

static PyObject *network_add_unary(PyObject *self, PyObject *args) {
    int op, x;
    if (!PyArg_ParseTuple(args, "ii:add_unary", &op, &x)) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_unary(net_of(self), (kiln_unary_op)op, x, &t);
    return tensor_result(self, s, t);
}

static PyObject *network_add_gather(PyObject *self, PyObject *args) {
    int data, indices, axis;
    if (!PyArg_ParseTuple(args, "iii:add_gather", &data, &indices, &axis)) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_gather(net_of(self), data, indices, axis, &t);
    return tensor_result(self, s, t);
}

static PyObject *network_add_reshape(PyObject *self, PyObject *args) {
    int x;
    PyObject *shape_obj;
    if (!PyArg_ParseTuple(args, "iO:add_reshape", &x, &shape_obj)) return NULL;
    kiln_expr shape[KILN_MAX_RANK];
    int32_t rank;
    if (expr_list(shape_obj, "reshape", shape, &rank) < 0) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_reshape(net_of(self), x, rank, shape, &t);
    return tensor_result(self, s, t);
}

static PyObject *network_alias_output(PyObject *self, PyObject *args) {
    int out, in;
    if (!PyArg_ParseTuple(args, "ii:alias_output", &out, &in)) return NULL;
    kiln_status s = kiln_network_alias_output(net_of(self), out, in);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

/* add_matmul(a, b, transpose_a=0, transpose_b=0): the flags go to the C
 * call as given, which refuses anything but 0 and 1, naming the flag. */
static PyObject *network_add_matmul(PyObject *self, PyObject *args) {
    int a, b, transpose_a = 0, transpose_b = 0;
    if (!PyArg_ParseTuple(args, "ii|ii:add_matmul", &a, &b, &transpose_a, &transpose_b)) return NULL;
    kiln_tensor t = KILN_TENSOR_INVALID;
    kiln_status s = kiln_network_add_matmul_transposed(net_of(self), a, b, transpose_a, transpose_b, &t);
    return tensor_result(self, s, t);
}

/*
 * add_layer(op_name, inputs, attrs=None) -> tensor, or a tuple of tensors for
 * an op of several outputs (topk: values, indices): any built-in op of the
 * table by name (kiln_network_add_layer_outputs); attrs maps the op's attribute names
 * to ints (INT, DTYPE codes), floats (FLOAT), sequences of ints (INTS), of floats (FLOATS) or
 * sequences of expression ids (EXPRS), as the op's schema says.
 */
static PyObject *network_add_layer(PyObject *self, PyObject *args) {
    const char *name;
    PyObject *inputs_obj, *attrs_obj = Py_None;
    if (!PyArg_ParseTuple(args, "sO|O:add_layer", &name, &inputs_obj, &attrs_obj)) return NULL;
    kiln_layer_op op;
    if (kiln_layer_op_from_name(name, &op) != KILN_OK) return kiln_py_raise(state_of(self), KILN_ERROR_NOT_FOUND);
    PyObject *seq = PySequence_Fast(inputs_obj, "add_layer: inputs must be a sequence of tensor ids");
    if (!seq) return NULL;
    kiln_tensor inputs[KILN_OP_MAX_INPUTS];
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > KILN_OP_MAX_INPUTS) {
        Py_DECREF(seq);
        return PyErr_Format(PyExc_ValueError, "add_layer: %s given %zd inputs", name, n);
    }
    for (Py_ssize_t i = 0; i < n; i++)
        if (tensor_arg(PySequence_Fast_GET_ITEM(seq, i), &inputs[i]) < 0) {
            Py_DECREF(seq);
            return NULL;
        }
    Py_DECREF(seq);
    if (attrs_obj != Py_None && !PyDict_Check(attrs_obj))
        return PyErr_Format(PyExc_TypeError, "add_layer: attrs must be a dict, not %s", Py_TYPE(attrs_obj)->tp_name);
    /* The most attributes a layer op has (resize: 7). */
    enum { MAX_ATTRS = 7 };
    kiln_layer_attr attrs[MAX_ATTRS];
    kiln_expr exprs[MAX_ATTRS][2 * KILN_MAX_RANK];
    int64_t ints[MAX_ATTRS][2 * KILN_MAX_RANK];
    double floats[MAX_ATTRS][2 * KILN_MAX_RANK];
    int32_t attr_count = 0, schema_count = 0;
    kiln_layer_op_info(op, NULL, &schema_count);
    /* The schema says each attribute's kind; names the schema lacks pass
     * through so that the core refuses them by name. */
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (attrs_obj != Py_None && PyDict_Next(attrs_obj, &pos, &key, &value)) {
        if (attr_count == MAX_ATTRS)
            return PyErr_Format(PyExc_ValueError, "add_layer: %s given too many attributes", name);
        const char *attr = PyUnicode_AsUTF8(key);
        if (!attr) return NULL;
        kiln_layer_attr *a = &attrs[attr_count];
        *a = (kiln_layer_attr){.name = attr, .kind = KILN_ATTR_INT};
        for (int32_t k = 0; k < schema_count; k++) {
            const char *schema_name;
            kiln_attr_kind kind;
            if (kiln_layer_op_attr(op, k, &schema_name, &kind, NULL) == KILN_OK && !strcmp(schema_name, attr))
                a->kind = kind;
        }
        if (a->kind == KILN_ATTR_EXPRS) {
            if (expr_list_n(value, attr, exprs[attr_count], 2 * KILN_MAX_RANK, &a->count) < 0) return NULL;
            a->exprs = exprs[attr_count];
        } else if (a->kind == KILN_ATTR_INTS) {
            if (int_list(value, attr, ints[attr_count], 2 * KILN_MAX_RANK, &a->count) < 0) return NULL;
            a->ints = ints[attr_count];
        } else if (a->kind == KILN_ATTR_FLOATS) {
            PyObject *fs = PySequence_Fast(value, "add_layer: a FLOATS attribute must be a sequence of numbers");
            if (!fs) return NULL;
            Py_ssize_t m = PySequence_Fast_GET_SIZE(fs);
            if (m > 2 * KILN_MAX_RANK) {
                Py_DECREF(fs);
                return PyErr_Format(PyExc_ValueError, "add_layer: attribute '%s' has %zd entries", attr, m);
            }
            for (Py_ssize_t j = 0; j < m; j++) {
                floats[attr_count][j] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fs, j));
                if (floats[attr_count][j] == -1.0 && PyErr_Occurred()) {
                    Py_DECREF(fs);
                    return NULL;
                }
            }
            Py_DECREF(fs);
            a->count = (int32_t)m;
            a->floats = floats[attr_count];
        } else if (a->kind == KILN_ATTR_FLOAT) {
            a->f = PyFloat_AsDouble(value);
            if (a->f == -1.0 && PyErr_Occurred()) return NULL;
        } else {
            long long v = PyLong_AsLongLong(value);
            if (v == -1 && PyErr_Occurred()) return NULL;
            a->i = (int64_t)v;
        }
        attr_count++;
    }
    /* One output: its id; several (topk): a tuple of ids, in the op's order. */
    int32_t output_count = 1;
    kiln_layer_op_outputs(op, &output_count);
    kiln_tensor outs[KILN_OP_MAX_OUTPUTS] = {KILN_TENSOR_INVALID, KILN_TENSOR_INVALID};
    if (output_count < 1 || output_count > KILN_OP_MAX_OUTPUTS)
        return PyErr_Format(PyExc_ValueError, "add_layer: %s has %d outputs", name, (int)output_count);
    kiln_status s = kiln_network_add_layer_outputs(net_of(self), op, (int32_t)n, inputs, attr_count, attrs,
                                                   output_count, outs);
    if (s != KILN_OK || output_count == 1) return tensor_result(self, s, outs[0]);
    PyObject *ids = PyTuple_New(output_count);
    for (int32_t i = 0; ids && i < output_count; i++) {
        PyObject *id = PyLong_FromLong((long)outs[i]);
        if (!id) {
            Py_CLEAR(ids);
            break;
        }
        PyTuple_SET_ITEM(ids, i, id);
    }
    return ids;
}

/* What the core accepts (KILN_PLUGIN_MAX_IO); kiln.plugin checks it too. */
enum { MAX_PLUGIN_OUTPUTS = 1024 };

/* trace = (dtype codes, shapes as sequences of expression ids, workspace
 * expression id or None) for num_outputs outputs. */
static int trace_arg(PyObject *trace, int num_outputs, kiln_dtype *dtypes, kiln_shape_expr *shapes,
                     kiln_expr *workspace) {
    if (!PyTuple_Check(trace) || PyTuple_GET_SIZE(trace) != 3) {
        PyErr_SetString(PyExc_TypeError, "trace must be (dtype codes, shapes, workspace expression or None)");
        return -1;
    }
    PyObject *codes = PySequence_Fast(PyTuple_GET_ITEM(trace, 0), "trace dtypes must be a sequence");
    PyObject *shape_list = codes ? PySequence_Fast(PyTuple_GET_ITEM(trace, 1), "trace shapes must be a sequence")
                                 : NULL;
    int rc = -1;
    if (!shape_list) goto done;
    if (PySequence_Fast_GET_SIZE(codes) != num_outputs || PySequence_Fast_GET_SIZE(shape_list) != num_outputs) {
        PyErr_Format(PyExc_ValueError, "trace gives %zd dtypes and %zd shapes for %d outputs",
                     PySequence_Fast_GET_SIZE(codes), PySequence_Fast_GET_SIZE(shape_list), num_outputs);
        goto done;
    }
    for (int i = 0; i < num_outputs; i++) {
        long code = PyLong_AsLong(PySequence_Fast_GET_ITEM(codes, i));
        if (code == -1 && PyErr_Occurred()) goto done;
        dtypes[i] = (kiln_dtype)(code < 0 || code > INT32_MAX ? -1 : code);   /* the core names a bad code */
        PyObject *dims = PySequence_Fast(PySequence_Fast_GET_ITEM(shape_list, i), "a traced shape must be a sequence");
        if (!dims) goto done;
        Py_ssize_t rank = PySequence_Fast_GET_SIZE(dims);
        if (rank > KILN_MAX_RANK) {
            PyErr_Format(PyExc_ValueError, "output %d has rank %zd (at most %d)", i, rank, KILN_MAX_RANK);
            Py_DECREF(dims);
            goto done;
        }
        shapes[i].rank = (int32_t)rank;
        for (Py_ssize_t k = 0; k < rank; k++)
            if (kiln_py_expr_arg(PySequence_Fast_GET_ITEM(dims, k), &shapes[i].dims[k]) < 0) {
                Py_DECREF(dims);
                goto done;
            }
        Py_DECREF(dims);
    }
    PyObject *ws = PyTuple_GET_ITEM(trace, 2);
    if (ws == Py_None) *workspace = KILN_EXPR_INVALID;
    else if (kiln_py_expr_arg(ws, workspace) < 0) goto done;
    rc = 0;
done:
    Py_XDECREF(codes);
    Py_XDECREF(shape_list);
    return rc;
}

/*
 * add_plugin(namespace, name, version, module, fields, inputs, num_outputs, trace=None)
 *
 * fields: a dict of plain data (the plugin's state).  trace: what the Python
 * layer computed by tracing shape_dtype_inference on this network's pool,
 * (dtype codes, shapes as expression ids, workspace expression or None):
 * the layer is added data-first (kiln_network_add_plugin_traced) and no
 * plugin code runs here.  Without it the creator's C rule is asked
 * (kiln_network_add_plugin: native plugins, kiln::TritonAOT).  Returns the
 * output tensor ids.
 */
static PyObject *network_add_plugin(PyObject *self, PyObject *args) {
    kiln_py_state *st = state_of(self);
    const char *ns, *name, *version, *module = NULL;
    PyObject *fields_obj, *inputs_obj, *trace = Py_None;
    int num_outputs;
    if (!PyArg_ParseTuple(args, "sssz" "OOi|O:add_plugin", &ns, &name, &version, &module, &fields_obj,
                          &inputs_obj, &num_outputs, &trace))
        return NULL;
    if (num_outputs < 1 || num_outputs > MAX_PLUGIN_OUTPUTS) {
        PyErr_Format(PyExc_ValueError, "plugin %s::%s: num_outputs must be 1..%d, got %d", ns, name,
                     MAX_PLUGIN_OUTPUTS, num_outputs);
        return NULL;
    }
    if (!PyDict_Check(fields_obj)) {
        PyErr_Format(PyExc_TypeError, "plugin %s::%s: fields must be a dict", ns, name);
        return NULL;
    }
    /* Errors name the plugin and the attribute: "plugin ns::name (version 1):
     * attribute 'table'[2]: ..." */
    char root[300];
    snprintf(root, sizeof root, "plugin %s::%s (version %s): attribute", ns, name, version);
    kiln_value *fields = kiln_py_value_from_object(st, fields_obj, root);
    if (!fields) return NULL;
    PyObject *seq = PySequence_Fast(inputs_obj, "inputs must be a sequence of tensor ids");
    if (!seq) {
        kiln_value_free(fields);
        return NULL;
    }
    Py_ssize_t n_in = PySequence_Fast_GET_SIZE(seq);
    kiln_tensor *ins = PyMem_Calloc((size_t)n_in + 1, sizeof *ins);
    kiln_tensor *outs = PyMem_Calloc((size_t)num_outputs, sizeof *outs);
    kiln_shape_expr *shapes = PyMem_Calloc((size_t)num_outputs, sizeof *shapes);
    kiln_dtype dtypes[MAX_PLUGIN_OUTPUTS];
    kiln_expr workspace = KILN_EXPR_INVALID;
    PyObject *result = NULL;
    if (!ins || !outs || !shapes) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n_in; i++)
        if (tensor_arg(PySequence_Fast_GET_ITEM(seq, i), &ins[i]) < 0) goto done;
    for (int i = 0; i < num_outputs; i++) outs[i] = KILN_TENSOR_INVALID;
    if (trace != Py_None && trace_arg(trace, num_outputs, dtypes, shapes, &workspace) < 0) goto done;

    Py_CLEAR(st->pending_exception);
    kiln_status s = trace == Py_None
                        ? kiln_network_add_plugin(net_of(self), ns, name, version, module, fields, (int32_t)n_in, ins,
                                                  num_outputs, outs)
                        : kiln_network_add_plugin_traced(net_of(self), ns, name, version, module, fields,
                                                         (int32_t)n_in, ins, num_outputs, dtypes, shapes, workspace,
                                                         outs);
    if (s != KILN_OK) {
        kiln_py_raise(st, s);
        goto done;
    }
    Py_CLEAR(st->pending_exception);
    result = PyList_New(num_outputs);
    if (!result) goto done;
    for (int i = 0; i < num_outputs; i++) {
        PyObject *v = PyLong_FromLong((long)outs[i]);
        if (!v) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, i, v);
    }
done:
    PyMem_Free(ins);
    PyMem_Free(outs);
    PyMem_Free(shapes);
    Py_DECREF(seq);
    kiln_value_free(fields);
    return result;
}

static PyObject *network_mark_output(PyObject *self, PyObject *args) {
    int t, dtype;
    const char *name;
    if (!PyArg_ParseTuple(args, "isi:mark_output", &t, &name, &dtype)) return NULL;
    return check(self, kiln_network_mark_output(net_of(self), t, name, (kiln_dtype)dtype));
}

/* tensor_info(t) -> (dtype code, tuple of expression ids) */
static PyObject *network_tensor_info(PyObject *self, PyObject *arg) {
    kiln_tensor t;
    if (tensor_arg(arg, &t) < 0) return NULL;
    kiln_dtype dtype;
    int32_t rank;
    kiln_expr shape[KILN_MAX_RANK];
    kiln_status s = kiln_network_tensor_info(net_of(self), t, &dtype, &rank, shape);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_py_raise_msg(state_of(self), KILN_ERROR_STATE, "tensor %d: rank %d out of range", t, rank);
    PyObject *dims = PyTuple_New(rank);
    if (!dims) return NULL;
    for (int32_t i = 0; i < rank; i++) {
        PyObject *v = PyLong_FromLong((long)shape[i]);
        if (!v) {
            Py_DECREF(dims);
            return NULL;
        }
        PyTuple_SET_ITEM(dims, i, v);
    }
    return Py_BuildValue("(iN)", (int)dtype, dims);
}

static PyObject *network_tensor_name(PyObject *self, PyObject *arg) {
    kiln_tensor t;
    if (tensor_arg(arg, &t) < 0) return NULL;
    const char *name = kiln_network_tensor_name(net_of(self), t);
    if (!name) return kiln_py_raise(state_of(self), KILN_ERROR_INVALID_ARGUMENT);
    return PyUnicode_FromString(name);
}

static PyObject *network_set_tensor_name(PyObject *self, PyObject *args) {
    int t;
    const char *name;
    if (!PyArg_ParseTuple(args, "is:set_tensor_name", &t, &name)) return NULL;
    return check(self, kiln_network_set_tensor_name(net_of(self), t, name));
}

/* build() -> Blob.  Plugins' Python callbacks may run (with the GIL held:
 * the build is short and plugin tracing needs it anyway). */
static PyObject *network_build(PyObject *self, PyObject *unused) {
    kiln_py_state *st = state_of(self);
    kiln_blob *blob = NULL;
    Py_CLEAR(st->pending_exception);
    kiln_status s = kiln_network_build(net_of(self), NULL, &blob);
    if (s != KILN_OK) return kiln_py_raise(st, s);
    return kiln_py_blob_new(st, blob);
}

static PyObject *network_build_report(PyObject *self, PyObject *unused) {
    kiln_build_report r;
    kiln_status s = kiln_network_build_report(net_of(self), &r);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return Py_BuildValue("{sKsKsKsi}", "arena_bytes", (unsigned long long)r.arena_bytes, "activation_bytes",
                         (unsigned long long)r.activation_bytes, "weight_bytes", (unsigned long long)r.weight_bytes,
                         "layer_count", (int)r.layer_count);
}

static PyObject *network_set_parallel(PyObject *self, PyObject *args) {
    int rank, world_size;
    if (!PyArg_ParseTuple(args, "ii:set_parallel", &rank, &world_size)) return NULL;
    kiln_status s = kiln_network_set_parallel(net_of(self), rank, world_size);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

static PyObject *network_get_parallel(PyObject *self, void *closure) {
    int32_t rank = 0, world_size = 1;
    kiln_status s = kiln_network_parallel(net_of(self), &rank, &world_size);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    return Py_BuildValue("(ii)", (int)rank, (int)world_size);
}

static PyMethodDef network_methods[] = {
    {"set_parallel", network_set_parallel, METH_VARARGS, "set_parallel(rank, world_size)"},
    {"add_dim", network_add_dim, METH_VARARGS, "add_dim(name, [(min, opt, max), ...]) -> expr"},
    {"find_dim", network_find_dim, METH_O, "find_dim(name) -> expr or None"},
    {"add_input", network_add_input, METH_VARARGS, "add_input(name, dtype, shape_exprs) -> tensor"},
    {"add_constant", network_add_constant, METH_VARARGS, "add_constant(name, dtype, dims, data) -> tensor"},
    {"add_cast", network_add_cast, METH_VARARGS, "add_cast(x, dtype) -> tensor"},
    {"add_binary", network_add_binary, METH_VARARGS, "add_binary(op, a, b) -> tensor"},
    {"add_unary", network_add_unary, METH_VARARGS, "add_unary(op, x) -> tensor"},
    {"add_gather", network_add_gather, METH_VARARGS, "add_gather(data, indices, axis) -> tensor"},
    {"alias_output", network_alias_output, METH_VARARGS,
     "alias_output(out, in): the plugin output out is written in place into the network input in"},
    {"add_reshape", network_add_reshape, METH_VARARGS, "add_reshape(x, shape_exprs) -> tensor"},
    {"add_matmul", network_add_matmul, METH_VARARGS, "add_matmul(a, b, transpose_a=0, transpose_b=0) -> tensor"},
    {"add_layer", network_add_layer, METH_VARARGS,
     "add_layer(op_name, inputs, attrs=None) -> tensor (a tuple of tensors for an op of several outputs)"},
    {"add_plugin", network_add_plugin, METH_VARARGS,
     "add_plugin(namespace, name, version, module, fields, inputs, num_outputs, trace=None) -> [tensor]"},
    {"mark_output", network_mark_output, METH_VARARGS, "mark_output(tensor, name, dtype)"},
    {"tensor_info", network_tensor_info, METH_O, "tensor_info(tensor) -> (dtype, shape_exprs)"},
    {"tensor_name", network_tensor_name, METH_O, "tensor_name(tensor) -> str"},
    {"set_tensor_name", network_set_tensor_name, METH_VARARGS, "set_tensor_name(tensor, name)"},
    {"build", network_build, METH_NOARGS, "build() -> Blob (the serialized engine)"},
    {"build_report", network_build_report, METH_NOARGS, "report of the last build"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef network_getset[] = {
    {"exprs", network_exprs, NULL, "the network's expression pool", NULL},
    {"parallel", network_get_parallel, NULL, "(rank, world_size) of the network", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot network_slots[] = {
    {Py_tp_doc, "Network() — a kiln_network under construction."},
    {Py_tp_new, network_new},
    {Py_tp_methods, network_methods},
    {Py_tp_getset, network_getset},
    {Py_tp_traverse, network_traverse},
    {Py_tp_clear, network_clear},
    {Py_tp_dealloc, network_dealloc},
    {0, NULL},
};

PyType_Spec kiln_py_network_spec = {
    .name = "_kiln.Network",
    .basicsize = sizeof(kiln_py_network),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = network_slots,
};
