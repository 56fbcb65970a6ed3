/*
 * context_object.c — Context: a kiln_context seen from Python.
 *
 * run() does the whole binding in C: for each given array it reads pointer,
 * dtype and shape (tensor_view.c), checks them against the engine's I/O
 * table (errors name the tensor), sets input shapes (the core checks them
 * against the profiles), binds buffers, then runs with the GIL released.
 * Python plugin layers take the GIL back in the bridge.
 *
 * A context is used by one thread at a time; a second concurrent run() on
 * the same object is refused rather than corrupting the bindings.
 */
#include "kiln_py.h"

#include <string.h>

typedef struct io_entry {
    const char *name;       /* owned by the engine */
    int         is_output;
    kiln_dtype  dtype;
    int32_t     rank;
} io_entry;

typedef struct context_object {
    PyObject_HEAD
    kiln_context *ctx;
    PyObject     *engine;   /* the Engine object (keeps io names alive) */
    int32_t       io_count;
    io_entry     *io;
    kiln_device   device;
    int           busy;
} context_object;

#define STACK_VIEWS 8

static kiln_py_state *state_of(PyObject *self) { return kiln_py_state_of_type(Py_TYPE(self)); }

/* Context(engine, device_type=0, device_index=0, max_activation_bytes=0) */
static PyObject *context_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"engine", "device_type", "device_index", "max_activation_bytes", NULL};
    kiln_py_state *st = kiln_py_state_of_type(type);
    PyObject *engine_obj;
    int device_type = KILN_DEVICE_CPU, device_index = 0;
    unsigned long long cap = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!|iiK:Context", kwlist, st->engine_type, &engine_obj,
                                     &device_type, &device_index, &cap))
        return NULL;
    kiln_engine *engine = ((kiln_py_engine *)engine_obj)->engine;
    context_object *self = (context_object *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    self->engine = Py_NewRef(engine_obj);
    int32_t n = kiln_engine_io_count(engine);
    self->io = PyMem_Calloc(n > 0 ? (size_t)n : 1, sizeof *self->io);
    if (!self->io) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (int32_t i = 0; i < n; i++) {
        kiln_io_info info;
        kiln_status s = kiln_engine_io_info(engine, i, &info);
        if (s != KILN_OK) {
            Py_DECREF(self);
            return kiln_py_raise(st, s);
        }
        self->io[i] = (io_entry){info.name, info.kind == KILN_IO_OUTPUT, info.dtype, info.rank};
    }
    self->io_count = n;
    kiln_context_options opts;
    memset(&opts, 0, sizeof opts);
    opts.struct_size = sizeof opts;
    opts.device = (kiln_device){(kiln_device_type)device_type, device_index};
    opts.max_activation_bytes = cap;
    kiln_status s;
    kiln_context *ctx = NULL;
    /* Creating a context creates plugin instances: Python plugins take the
     * GIL back in the bridge. */
    Py_CLEAR(st->pending_exception);
    Py_BEGIN_ALLOW_THREADS
    s = kiln_context_create(engine, &opts, &ctx);
    Py_END_ALLOW_THREADS
    if (s != KILN_OK) {
        Py_DECREF(self);
        return kiln_py_raise(st, s);
    }
    self->ctx = ctx;
    self->device = opts.device;
    return (PyObject *)self;
}

static int context_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(((context_object *)self)->engine);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void context_dealloc(PyObject *self) {
    context_object *c = (context_object *)self;
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (c->ctx) {
        /* Destroying plugin instances takes the GIL in the bridge. */
        kiln_context *ctx = c->ctx;
        c->ctx = NULL;
        Py_BEGIN_ALLOW_THREADS
        kiln_context_free(ctx);
        Py_END_ALLOW_THREADS
    }
    PyMem_Free(c->io);
    Py_CLEAR(c->engine);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static int find_io(context_object *c, const char *name) {
    for (int32_t i = 0; i < c->io_count; i++)
        if (strcmp(c->io[i].name, name) == 0) return i;
    return -1;
}

static PyObject *io_names(context_object *c, int outputs) {
    PyObject *parts = PyList_New(0);
    if (!parts) return NULL;
    for (int32_t i = 0; i < c->io_count; i++) {
        if (c->io[i].is_output != outputs) continue;
        PyObject *s = PyUnicode_FromFormat("'%s'", c->io[i].name);
        if (!s || PyList_Append(parts, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(parts);
            return NULL;
        }
        Py_DECREF(s);
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *r = sep ? PyUnicode_Join(sep, parts) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(parts);
    return r;
}

static PyObject *unknown_name(context_object *c, const char *name, int want_output) {
    kiln_py_state *st = state_of((PyObject *)c);
    int idx = find_io(c, name);
    if (idx >= 0)
        return kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "'%s' is an %s of the engine, not an %s", name,
                                 want_output ? "input" : "output", want_output ? "output" : "input");
    PyObject *names = io_names(c, want_output);
    if (!names) return NULL;
    kiln_py_raise_msg(st, KILN_ERROR_NOT_FOUND, "unknown %s '%s' (the engine's %ss are %U)",
                      want_output ? "output" : "input", name, want_output ? "output" : "input", names);
    Py_DECREF(names);
    return NULL;
}

static PyObject *shape_tuple(int32_t rank, const int64_t *dims) {
    PyObject *t = PyTuple_New(rank);
    if (!t) return NULL;
    for (int32_t i = 0; i < rank; i++) {
        PyObject *v = PyLong_FromLongLong((long long)dims[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

/* set_input_shape(name, dims) */
static PyObject *context_set_input_shape(PyObject *self, PyObject *args) {
    context_object *c = (context_object *)self;
    const char *name;
    PyObject *dims_obj;
    if (!PyArg_ParseTuple(args, "sO:set_input_shape", &name, &dims_obj)) return NULL;
    int idx = find_io(c, name);
    if (idx < 0 || c->io[idx].is_output) return unknown_name(c, name, 0);
    PyObject *seq = PySequence_Fast(dims_obj, "shape must be a sequence of ints");
    if (!seq) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (n > KILN_MAX_RANK) {
        Py_DECREF(seq);
        return kiln_py_raise_msg(state_of(self), KILN_ERROR_SHAPE, "input '%s': rank %zd exceeds %d", name, n,
                                 KILN_MAX_RANK);
    }
    int64_t dims[KILN_MAX_RANK];
    for (Py_ssize_t i = 0; i < n; i++) {
        long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            Py_DECREF(seq);
            return NULL;
        }
        dims[i] = (int64_t)v;
    }
    Py_DECREF(seq);
    kiln_status s = kiln_context_set_input_shape(c->ctx, name, (int32_t)n, dims);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

/* tensor_shape(name) -> tuple (once every input shape is set) */
static PyObject *context_tensor_shape(PyObject *self, PyObject *arg) {
    context_object *c = (context_object *)self;
    const char *name = PyUnicode_AsUTF8(arg);
    if (!name) return NULL;
    int32_t rank = 0;
    int64_t dims[KILN_MAX_RANK];
    kiln_status s = kiln_context_tensor_shape(c->ctx, name, &rank, dims);
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_py_raise_msg(state_of(self), KILN_ERROR_STATE, "tensor '%s': rank %d out of range", name, rank);
    return shape_tuple(rank, dims);
}

static int check_view(context_object *c, const io_entry *io, const kiln_py_view *v, const char *what) {
    kiln_py_state *st = state_of((PyObject *)c);
    if (v->desc.dtype != io->dtype) {
        kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "%s: dtype %s given, the engine expects %s", what,
                          kiln_dtype_name(v->desc.dtype), kiln_dtype_name(io->dtype));
        return -1;
    }
    if (v->desc.device.type != c->device.type ||
        (c->device.type == KILN_DEVICE_CUDA && v->desc.device.index != c->device.index)) {
        kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "%s: the tensor is on %s:%d, the session runs on %s:%d",
                          what, v->desc.device.type == KILN_DEVICE_CPU ? "cpu" : "cuda", (int)v->desc.device.index,
                          c->device.type == KILN_DEVICE_CPU ? "cpu" : "cuda", (int)c->device.index);
        return -1;
    }
    if (!v->contiguous) {
        kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT,
                          "%s: the tensor is not contiguous (kiln binds contiguous row-major buffers; "
                          "call .contiguous() / numpy.ascontiguousarray first)", what);
        return -1;
    }
    return 0;
}

/* Bind one output view: its shape must be what the engine computed. */
static int bind_output(context_object *c, const io_entry *io, kiln_py_view *v, const char *what) {
    kiln_py_state *st = state_of((PyObject *)c);
    if (check_view(c, io, v, what) < 0) return -1;
    int32_t rank = 0;
    int64_t dims[KILN_MAX_RANK];
    kiln_status s = kiln_context_tensor_shape(c->ctx, io->name, &rank, dims);
    if (s != KILN_OK) {
        kiln_py_raise(st, s);
        return -1;
    }
    if (rank != v->desc.rank || memcmp(dims, v->desc.dims, (size_t)rank * sizeof dims[0]) != 0) {
        PyObject *want = shape_tuple(rank, dims), *got = shape_tuple(v->desc.rank, v->desc.dims);
        if (want && got)
            kiln_py_raise_msg(st, KILN_ERROR_SHAPE, "%s: shape %R given, the engine computes %R", what, got, want);
        Py_XDECREF(want);
        Py_XDECREF(got);
        return -1;
    }
    s = kiln_context_set_tensor(c->ctx, io->name, v->desc.data);
    if (s != KILN_OK) {
        kiln_py_raise(st, s);
        return -1;
    }
    return 0;
}

/* "input 'x'": the label errors about a tensor start with.  Built for every
 * tensor of every run, so by hand: snprintf costs more than binding does. */
static void io_label(char *buf, size_t size, const char *kind, const char *name) {
    size_t k = strlen(kind), n = strlen(name);
    if (k + n + 4 > size) n = size - k - 4;   /* size is far larger than any kind */
    memcpy(buf, kind, k);
    buf[k] = ' ';
    buf[k + 1] = '\'';
    memcpy(buf + k + 2, name, n);
    buf[k + 2 + n] = '\'';
    buf[k + 3 + n] = 0;
}

/* A stream argument: None, an int (a cudaStream_t) or an object with an int
 * `cuda_stream` (torch.cuda.Stream).  *handle gets the int object (a new
 * reference, NULL for None), which DLPack producers are given too. */
static int stream_arg(kiln_py_state *st, PyObject *obj, void **stream, PyObject **handle) {
    *stream = NULL;
    *handle = NULL;
    if (obj == Py_None) return 0;
    PyObject *h = PyLong_Check(obj) ? Py_NewRef(obj) : PyObject_GetAttr(obj, st->str_cuda_stream);
    if (!h || !PyLong_Check(h)) {
        Py_XDECREF(h);
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "stream must be an int (a cudaStream_t), a torch.cuda.Stream or None, not %.100s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    *stream = PyLong_AsVoidPtr(h);
    if (!*stream && PyErr_Occurred()) {
        Py_DECREF(h);
        return -1;
    }
    *handle = h;
    return 0;
}

typedef enum { RUN_ENQUEUE, RUN_REPLAY, RUN_CAPTURE } run_mode;

static kiln_status run_in_mode(kiln_context *ctx, run_mode mode, void *stream) {
    switch (mode) {
    case RUN_ENQUEUE: return kiln_context_enqueue(ctx, stream);
    case RUN_REPLAY:  return kiln_context_replay(ctx, stream);
    default:          return kiln_context_capture(ctx, stream);
    }
}

/*
 * run(inputs, outputs=None, stream=None, allocator=None)
 *   inputs:    {name: array}
 *   outputs:   {name: array} or None
 *   stream:    int (a cudaStream_t), a torch.cuda.Stream or None
 *   allocator: allocator(name, dtype_code, shape) -> array, used for outputs
 *              not given (all of them when outputs is None)
 * Returns the outputs dict when anything was allocated, else True.
 */
static PyObject *context_run(PyObject *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"inputs", "outputs", "stream", "allocator", "graph", NULL};
    context_object *c = (context_object *)self;
    kiln_py_state *st = state_of(self);
    PyObject *inputs, *outputs = Py_None, *stream_obj = Py_None, *allocator = Py_None;
    /* graph: 0 run eagerly; 1 capture a CUDA graph (running once); 2 replay
     * the captured graph when it still matches the bindings, else capture. */
    int graph = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|OOOi:run", kwlist, &inputs, &outputs, &stream_obj, &allocator,
                                     &graph))
        return NULL;
    if (!PyDict_Check(inputs)) {
        PyErr_Format(PyExc_TypeError, "inputs must be a dict {name: tensor}, not %.100s", Py_TYPE(inputs)->tp_name);
        return NULL;
    }
    if (outputs != Py_None && !PyDict_Check(outputs)) {
        PyErr_Format(PyExc_TypeError, "outputs must be a dict {name: tensor} or None, not %.100s",
                     Py_TYPE(outputs)->tp_name);
        return NULL;
    }
    void *stream = NULL;
    PyObject *stream_handle = NULL;
    if (stream_arg(st, stream_obj, &stream, &stream_handle) < 0) return NULL;
    PyObject *dl_stream = c->device.type == KILN_DEVICE_CUDA ? (stream_handle ? stream_handle : Py_None) : NULL;
    if (c->busy) {
        Py_XDECREF(stream_handle);
        return kiln_py_raise_msg(st, KILN_ERROR_STATE,
                                 "this session is already running (one run at a time per session; "
                                 "use one Session per thread)");
    }
    c->busy = 1;

    /* Small engines (the common case) bind without allocating. */
    kiln_py_view stack_views[STACK_VIEWS];
    char stack_bound[STACK_VIEWS];
    kiln_py_view *views = stack_views;
    char *bound = stack_bound;
    if (c->io_count > STACK_VIEWS) {
        views = PyMem_Calloc((size_t)c->io_count, sizeof *views);
        bound = PyMem_Calloc((size_t)c->io_count, 1);
        if (!views || !bound) {
            PyMem_Free(views);
            PyMem_Free(bound);
            Py_XDECREF(stream_handle);
            c->busy = 0;
            return PyErr_NoMemory();
        }
    } else {
        memset(stack_bound, 0, sizeof stack_bound);
    }
    PyObject *result = NULL, *allocated = NULL;
    char what[320];
    PyObject *key, *value;
    Py_ssize_t pos = 0;

    /* Inputs: shapes first, so output shapes can be computed. */
    while (PyDict_Next(inputs, &pos, &key, &value)) {
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        if (!name) {
            if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "input names must be str, got %R", key);
            goto done;
        }
        int idx = find_io(c, name);
        if (idx < 0 || c->io[idx].is_output) {
            unknown_name(c, name, 0);
            goto done;
        }
        io_label(what, sizeof what, "input", name);
        if (kiln_py_view_get(st, value, what, 0, dl_stream, &views[idx]) < 0) goto done;
        bound[idx] = 1;
        if (check_view(c, &c->io[idx], &views[idx], what) < 0) goto done;
        kiln_status s = kiln_context_set_input_shape(c->ctx, name, views[idx].desc.rank, views[idx].desc.dims);
        if (s == KILN_OK) s = kiln_context_set_tensor(c->ctx, name, views[idx].desc.data);
        if (s != KILN_OK) {
            kiln_py_raise(st, s);
            goto done;
        }
    }
    for (int32_t i = 0; i < c->io_count; i++) {
        if (!c->io[i].is_output && !bound[i]) {
            kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "missing input '%s'", c->io[i].name);
            goto done;
        }
    }

    /* Outputs given by the caller. */
    if (outputs != Py_None) {
        pos = 0;
        while (PyDict_Next(outputs, &pos, &key, &value)) {
            const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
            if (!name) {
                if (!PyErr_Occurred()) PyErr_Format(PyExc_TypeError, "output names must be str, got %R", key);
                goto done;
            }
            int idx = find_io(c, name);
            if (idx < 0 || !c->io[idx].is_output) {
                unknown_name(c, name, 1);
                goto done;
            }
            io_label(what, sizeof what, "output", name);
            if (kiln_py_view_get(st, value, what, 1, dl_stream, &views[idx]) < 0) goto done;
            bound[idx] = 1;
            if (bind_output(c, &c->io[idx], &views[idx], what) < 0) goto done;
        }
    }

    /* Outputs to allocate. */
    for (int32_t i = 0; i < c->io_count; i++) {
        if (!c->io[i].is_output || bound[i]) continue;
        if (allocator == Py_None) {
            kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "missing output '%s'", c->io[i].name);
            goto done;
        }
        int32_t rank = 0;
        int64_t dims[KILN_MAX_RANK];
        kiln_status s = kiln_context_tensor_shape(c->ctx, c->io[i].name, &rank, dims);
        if (s != KILN_OK) {
            kiln_py_raise(st, s);
            goto done;
        }
        PyObject *shape = shape_tuple(rank, dims);
        if (!shape) goto done;
        PyObject *arr = PyObject_CallFunction(allocator, "siO", c->io[i].name, (int)c->io[i].dtype, shape);
        Py_DECREF(shape);
        if (!arr) goto done;
        if (!allocated) allocated = outputs != Py_None ? PyDict_Copy(outputs) : PyDict_New();
        if (!allocated || PyDict_SetItemString(allocated, c->io[i].name, arr) < 0) {
            Py_DECREF(arr);
            goto done;
        }
        io_label(what, sizeof what, "output", c->io[i].name);
        int rc = kiln_py_view_get(st, arr, what, 1, dl_stream, &views[i]);
        Py_DECREF(arr);   /* the dict holds it */
        if (rc < 0) goto done;
        bound[i] = 1;
        if (bind_output(c, &c->io[i], &views[i], what) < 0) goto done;
    }

    kiln_status s;
    kiln_context *ctx = c->ctx;
    Py_CLEAR(st->pending_exception);
    /* On the CPU the layers compute here: other Python threads run
     * meanwhile.  On a GPU a run or replay only queues launches, microseconds
     * that Python plugins would spend taking the GIL straight back (and, when
     * another thread is waiting for it, waiting for that thread): keep it.
     * Capture synchronizes with the GPU, so it lets go. */
    run_mode mode = graph == 0 ? RUN_ENQUEUE : graph == 2 && kiln_context_graph_ready(ctx) ? RUN_REPLAY : RUN_CAPTURE;
    if (c->device.type == KILN_DEVICE_CUDA && mode != RUN_CAPTURE) {
        s = run_in_mode(ctx, mode, stream);
    } else {
        Py_BEGIN_ALLOW_THREADS
        s = run_in_mode(ctx, mode, stream);
        Py_END_ALLOW_THREADS
    }
    if (s != KILN_OK) {
        kiln_py_raise(st, s);
        goto done;
    }
    result = allocated ? Py_NewRef(allocated) : Py_NewRef(Py_True);

done:
    for (int32_t i = 0; i < c->io_count; i++)
        if (bound[i]) kiln_py_view_release(&views[i]);
    if (views != stack_views) {
        PyMem_Free(views);
        PyMem_Free(bound);
    }
    Py_XDECREF(allocated);
    Py_XDECREF(stream_handle);
    c->busy = 0;
    return result;
}

/* replay(stream): launch the captured CUDA graph on its bindings. */
static PyObject *context_replay(PyObject *self, PyObject *stream_obj) {
    context_object *c = (context_object *)self;
    void *stream = NULL;
    PyObject *handle = NULL;
    if (stream_arg(state_of(self), stream_obj, &stream, &handle) < 0) return NULL;
    Py_XDECREF(handle);
    kiln_status s;
    kiln_context *ctx = c->ctx;
    s = kiln_context_replay(ctx, stream);   /* queues one graph launch: keeps the GIL (see context_run) */
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

/* set_communicator(rank, world_size, id) — id: the 128 bytes of a
 * kiln_comm_id (bytes-like), or None at world size 1.  Joining waits for
 * every rank (GIL released), at most $KILN_NCCL_TIMEOUT_S seconds. */
static PyObject *context_set_communicator(PyObject *self, PyObject *args) {
    context_object *c = (context_object *)self;
    kiln_py_state *st = state_of(self);
    int rank, world_size;
    PyObject *id_obj;
    if (!PyArg_ParseTuple(args, "iiO:set_communicator", &rank, &world_size, &id_obj)) return NULL;
    kiln_comm_id id;
    const kiln_comm_id *idp = NULL;
    if (id_obj != Py_None) {
        Py_buffer view;
        if (PyObject_GetBuffer(id_obj, &view, PyBUF_SIMPLE) < 0) return NULL;
        int ok = view.len == KILN_COMM_ID_BYTES;
        if (ok) memcpy(id.bytes, view.buf, KILN_COMM_ID_BYTES);
        Py_ssize_t len = view.len;
        PyBuffer_Release(&view);
        if (!ok)
            return kiln_py_raise_msg(st, KILN_ERROR_INVALID_ARGUMENT, "set_communicator: rank %d: the id has %zd bytes, "
                                     "a communicator id has %d", rank, len, KILN_COMM_ID_BYTES);
        idp = &id;
    }
    if (c->busy)
        return kiln_py_raise_msg(st, KILN_ERROR_STATE, "set_communicator: this session is running");
    c->busy = 1;
    kiln_status s;
    kiln_context *ctx = c->ctx;
    Py_BEGIN_ALLOW_THREADS
    s = kiln_context_set_communicator(ctx, rank, world_size, idp);
    Py_END_ALLOW_THREADS
    c->busy = 0;
    if (s != KILN_OK) return kiln_py_raise(st, s);
    Py_RETURN_NONE;
}

/* synchronize(stream) — wait for the run, watching the communicator. */
static PyObject *context_synchronize(PyObject *self, PyObject *stream_obj) {
    context_object *c = (context_object *)self;
    void *stream = NULL;
    PyObject *handle = NULL;
    if (stream_arg(state_of(self), stream_obj, &stream, &handle) < 0) return NULL;
    Py_XDECREF(handle);
    kiln_status s;
    kiln_context *ctx = c->ctx;
    Py_BEGIN_ALLOW_THREADS
    s = kiln_context_synchronize(ctx, stream);
    Py_END_ALLOW_THREADS
    if (s != KILN_OK) return kiln_py_raise(state_of(self), s);
    Py_RETURN_NONE;
}

static PyObject *context_get_graph_ready(PyObject *self, void *closure) {
    return PyBool_FromLong(kiln_context_graph_ready(((context_object *)self)->ctx));
}

static PyObject *context_get_memory(PyObject *self, void *closure) {
    return PyLong_FromUnsignedLongLong(kiln_context_memory_bytes(((context_object *)self)->ctx));
}

static PyObject *context_get_engine(PyObject *self, void *closure) {
    return Py_NewRef(((context_object *)self)->engine);
}

static PyObject *context_get_device(PyObject *self, void *closure) {
    kiln_device d = ((context_object *)self)->device;
    return Py_BuildValue("(ii)", (int)d.type, (int)d.index);
}

static PyMethodDef context_methods[] = {
    {"set_input_shape", context_set_input_shape, METH_VARARGS, "set_input_shape(name, dims)"},
    {"tensor_shape", context_tensor_shape, METH_O, "tensor_shape(name) -> tuple"},
    {"run", (PyCFunction)(void (*)(void))context_run, METH_VARARGS | METH_KEYWORDS,
     "run(inputs, outputs=None, stream=None, allocator=None, graph=0)"},
    {"replay", context_replay, METH_O, "replay(stream) — launch the captured CUDA graph"},
    {"set_communicator", context_set_communicator, METH_VARARGS,
     "set_communicator(rank, world_size, id) — join the engine's group (id: 128 bytes, or None at world size 1)"},
    {"synchronize", context_synchronize, METH_O, "synchronize(stream) — wait for the run, watching the communicator"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef context_getset[] = {
    {"memory_bytes", context_get_memory, NULL, "device memory the context holds", NULL},
    {"graph_ready", context_get_graph_ready, NULL, "a captured graph matches the current bindings", NULL},
    {"engine", context_get_engine, NULL, "the Engine", NULL},
    {"device", context_get_device, NULL, "(device_type, index)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot context_slots[] = {
    {Py_tp_doc, "Context(engine, device_type=0, device_index=0) — an execution context."},
    {Py_tp_new, context_new},
    {Py_tp_methods, context_methods},
    {Py_tp_getset, context_getset},
    {Py_tp_traverse, context_traverse},
    {Py_tp_dealloc, context_dealloc},
    {0, NULL},
};

PyType_Spec kiln_py_context_spec = {
    .name = "_kiln.Context",
    .basicsize = sizeof(context_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = context_slots,
};
