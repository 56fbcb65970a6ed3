/* context.c — execution contexts: binding shapes and buffers, running layers.
 *
 * Shapes are resolved lazily: kiln_context_set_input_shape records a shape
 * (checking it against the dimension ranges at once, so the error points at
 * the call that caused it); the first kiln_context_tensor_shape or enqueue
 * afterwards evaluates the expression program once, picks a profile, runs
 * the engine's checks, re-derives every layer's shapes and prepares the
 * launch descriptors.  Enqueue then only patches data pointers and calls
 * kernels, which keeps per-layer overhead small. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "ops/op_table.h"
#include "plugin/plugin_failure.h"
#include "runtime/engine_impl.h"

static kiln_status upload_weights(kiln_context *ctx) {
    kiln_engine *e = ctx->engine;
    if (ctx->device.type == KILN_DEVICE_CPU) {
        ctx->weights = (uint8_t *)e->desc.weights;
        return KILN_OK;
    }
    int32_t dev = ctx->device.index;
    if (dev < 0 || dev >= KILN_MAX_CUDA_DEVICES)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "CUDA device %d is out of range", dev);
    kiln_status s = KILN_OK;
    pthread_mutex_lock(&e->device_lock);
    if (!e->device_weights[dev] && e->desc.weights_size) {
        void *p = NULL;
        s = ctx->backend->alloc(dev, (size_t)e->desc.weights_size, &p);
        if (!s) s = ctx->backend->copy(dev, p, e->desc.weights, (size_t)e->desc.weights_size, KILN_COPY_HOST_TO_DEVICE,
                                       NULL);
        if (!s) {
            e->device_weights[dev] = p;
            e->device_backend = ctx->backend;
        } else if (p) {
            ctx->backend->free(dev, p);
        }
    }
    ctx->weights = e->device_weights[dev];
    pthread_mutex_unlock(&e->device_lock);
    return s ? kiln_error_prefix(s, "uploading %llu bytes of weights", (unsigned long long)e->desc.weights_size) : s;
}

static kiln_status create_instances(kiln_context *ctx) {
    kiln_engine *e = ctx->engine;
    uint32_t need = ctx->device.type == KILN_DEVICE_CPU ? KILN_PLUGIN_SUPPORTS_CPU : KILN_PLUGIN_SUPPORTS_CUDA;
    for (int32_t i = 0; i < e->desc.plugin_count; i++) {
        const kiln_plugin_creator *c = e->creators[i];
        if (!(c->flags & need))
            return kiln_error(KILN_ERROR_UNSUPPORTED, "plugin %s::%s version %s does not run on %s", c->plugin_namespace,
                              c->name, c->version, ctx->device.type == KILN_DEVICE_CPU ? "the CPU" : "CUDA devices");
        uint64_t serial = kiln_error_serial();
        kiln_status s = c->create(c, e->plugin_fields[i], &ctx->instances[i]);
        if (s)
            return kiln_plugin_failure(s, serial, "plugin %s::%s version %s: create", c->plugin_namespace, c->name,
                                       c->version);
    }
    return KILN_OK;
}

/* Every built-in layer must be one the backend can run: asked here, with the
 * layer's op and dtypes, so that a gap fails now, by name, not mid-run. */
kiln_status kiln_engine_check_backend(const kiln_engine *e, const kiln_backend_iface *backend) {
    const kiln_engine_desc *d = &e->desc;
    kiln_tensor_desc descs[KILN_OP_MAX_INPUTS + KILN_OP_MAX_OUTPUTS];
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        if (r->op == KILN_OP_PLUGIN) continue;
        int32_t n = r->input_count + r->output_count;
        if (n > KILN_OP_MAX_INPUTS + KILN_OP_MAX_OUTPUTS) return kiln_error(KILN_ERROR_CORRUPT, "layer %d has %d inputs and outputs", l, n);
        for (int32_t i = 0; i < n; i++) {
            int32_t t = i < r->input_count ? r->inputs[i] : r->outputs[i - r->input_count];
            descs[i] = (kiln_tensor_desc){.dtype = (kiln_dtype)d->tensors[t].dtype, .rank = d->tensors[t].rank};
        }
        kiln_layer_launch launch = {.op = r->op, .subop = r->subop, .axis = r->axis, .attrs = r->attrs.ints,
                                    .attr_count = r->attrs.int_count, .input_count = r->input_count,
                                    .output_count = r->output_count, .inputs = descs,
                                    .outputs = descs + r->input_count, .rank = d->parallel.rank,
                                    .world_size = d->parallel.world_size};
        bool supported = backend->supports_op(&launch);
        if (kiln_op_is_collective(r->op) && d->parallel.world_size > 1) {
            /* A group of several ranks needs the backend's communicators. */
            if (!backend->comm_available)
                return kiln_error(KILN_ERROR_UNSUPPORTED, "layer %d (%s %s): the %s backend runs collective layers "
                                  "only at world size 1, and this engine is rank %d of world size %d (run it on "
                                  "CUDA devices, with NCCL)", l, kiln_op_name(r->op), e->layer_details[l],
                                  backend->name, (int)d->parallel.rank, (int)d->parallel.world_size);
            kiln_status s = backend->comm_available();
            if (s) return kiln_error_prefix(s, "layer %d (%s %s) at world size %d", l, kiln_op_name(r->op),
                                            e->layer_details[l], (int)d->parallel.world_size);
        }
        if (supported) continue;
        char dtypes[128];
        size_t used = 0;
        for (int32_t i = 0; i < n && used < sizeof dtypes; i++)
            used += (size_t)snprintf(dtypes + used, sizeof dtypes - used, "%s%s", i == 0 ? "" : i == r->input_count ?
                                     " -> " : ", ", kiln_dtype_name(descs[i].dtype));
        return kiln_error(KILN_ERROR_UNSUPPORTED, "layer %d (%s%s%s): the %s backend cannot run it with dtypes %s", l,
                          kiln_op_name(r->op), e->layer_details[l][0] ? " " : "", e->layer_details[l], backend->name,
                          dtypes);
    }
    return KILN_OK;
}

kiln_status kiln_context_create(kiln_engine *e, const kiln_context_options *options, kiln_context **out) {
    if (!e || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_create: NULL argument");
    *out = NULL;
    for (int32_t i = 0; i < e->desc.plugin_count; i++)
        if (!e->creators[i]) {
            const kiln_plugin_record *r = &e->desc.plugins[i];
            return kiln_error(KILN_ERROR_NOT_FOUND,
                              "the engine was loaded with KILN_LOAD_NO_PLUGINS, so plugin %s::%s version %s is not "
                              "resolved: it can be described but not run (register the plugin%s and load it again)",
                              r->plugin_namespace, r->name, r->version,
                              r->flags & KILN_PLUGIN_NEEDS_PYTHON ? ", which needs Python," : "");
        }
    kiln_device device = {KILN_DEVICE_CPU, 0};
    if (options) {
        if (options->struct_size < sizeof(uint32_t) + sizeof(kiln_device))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_create: options.struct_size is wrong");
        device = options->device;
    }
    uint64_t cap = options && options->struct_size >= offsetof(kiln_context_options, max_activation_bytes) +
                                                         sizeof options->max_activation_bytes
                       ? options->max_activation_bytes : 0;
    if (device.type != KILN_DEVICE_CPU && device.type != KILN_DEVICE_CUDA)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_create: unknown device type %d", (int)device.type);
    const kiln_backend_iface *backend;
    kiln_status s = kiln_backend_get(device.type, &backend);
    if (s) return s;
    if (device.index < 0 || device.index >= backend->device_count())
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "device %s:%d does not exist (%d available)", backend->name,
                          device.index, backend->device_count());

    if ((s = kiln_engine_check_backend(e, backend))) return s;
    kiln_log(KILN_LOG_INFO, "context: backend %s, device %s:%d, activation arena %llu bytes, %d layers, %d plugins",
             backend->name, backend->name, (int)device.index, (unsigned long long)e->desc.arena_bytes,
             (int)e->desc.layer_count, (int)e->desc.plugin_count);

    const kiln_engine_desc *d = &e->desc;
    kiln_context *ctx = kiln_calloc(1, sizeof *ctx);
    if (!ctx) return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_context_create: out of memory");
    atomic_fetch_add(&e->refcount, 1);
    ctx->engine = e;
    atomic_init(&ctx->busy, 0);
    ctx->device = device;
    ctx->backend = backend;
    kiln_device_service_init(&ctx->device_service, backend, device);
    ctx->memory_cap = cap;
    ctx->profile = -1;
    ctx->needs_comm = -1;
    for (int32_t l = 0; l < d->layer_count && d->parallel.world_size > 1; l++)
        if (kiln_op_is_collective(d->layers[l].op)) {
            ctx->needs_comm = l;
            break;
        }
    size_t nt = d->tensor_count ? (size_t)d->tensor_count : 1, nio = d->io_count ? (size_t)d->io_count : 1;
    ctx->instances = kiln_calloc(d->plugin_count ? (size_t)d->plugin_count : 1, sizeof *ctx->instances);
    ctx->input_shapes = kiln_calloc(nio, sizeof *ctx->input_shapes);
    ctx->input_ranks = kiln_calloc(nio, sizeof *ctx->input_ranks);
    ctx->input_set = kiln_calloc(nio, sizeof *ctx->input_set);
    ctx->expr_values = kiln_calloc(d->exprs->count ? d->exprs->count : 1, sizeof *ctx->expr_values);
    ctx->dim_values = kiln_calloc(d->dim_count ? (size_t)d->dim_count : 1, sizeof *ctx->dim_values);
    ctx->data = kiln_calloc(nt, sizeof *ctx->data);
    ctx->tensor_descs = kiln_calloc(nt, sizeof *ctx->tensor_descs);
    ctx->tensor_bytes = kiln_calloc(nt, sizeof *ctx->tensor_bytes);
    ctx->layers = kiln_calloc(d->layer_count ? (size_t)d->layer_count : 1, sizeof *ctx->layers);
    kiln_layer_profile_init(&ctx->layer_profile, d->layer_count);
    if (!ctx->instances || !ctx->input_shapes || !ctx->input_ranks || !ctx->input_set || !ctx->expr_values || !ctx->dim_values ||
        !ctx->data || !ctx->tensor_descs || !ctx->tensor_bytes || !ctx->layers ||
        kiln_activation_plan_init(d, &ctx->plan) != KILN_OK) {
        kiln_context_free(ctx);
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_context_create: out of memory");
    }
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        size_t n = (size_t)r->input_count + (size_t)r->output_count;
        kiln_prepared_layer *p = &ctx->layers[l];
        p->descs = kiln_calloc(n ? n : 1, sizeof *p->descs);
        p->tensor_ids = kiln_malloc((n ? n : 1) * sizeof *p->tensor_ids);
        if (!p->descs || !p->tensor_ids) {
            kiln_context_free(ctx);
            return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_context_create: out of memory");
        }
        memcpy(p->tensor_ids, r->inputs, sizeof(int32_t) * (size_t)r->input_count);
        memcpy(p->tensor_ids + r->input_count, r->outputs, sizeof(int32_t) * (size_t)r->output_count);
    }
    /* Outputs written in place are their input's memory, for the layer that
     * writes them and for every layer that reads them. */
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        if (r->op != KILN_OP_PLUGIN) continue;
        for (int32_t k = 0; k < r->attrs.int_count; k++) {
            if (r->attrs.ints[k] < 0) continue;
            int32_t alias = r->outputs[k], source = r->inputs[r->attrs.ints[k]];
            for (int32_t m = l; m < d->layer_count; m++) {
                kiln_prepared_layer *q = &ctx->layers[m];
                int32_t n = d->layers[m].input_count + d->layers[m].output_count;
                for (int32_t x = 0; x < n; x++)
                    if (q->tensor_ids[x] == alias) q->tensor_ids[x] = source;
            }
        }
    }
    s = backend->set_device ? backend->set_device(device.index) : KILN_OK;
    if (!s) s = upload_weights(ctx);
    if (!s) s = create_instances(ctx);
    if (s) {
        kiln_context_free(ctx);
        return s;
    }
    for (int32_t t = 0; t < d->tensor_count; t++) {
        const kiln_tensor_record *r = &d->tensors[t];
        if (r->kind == KILN_TENSOR_CONSTANT) ctx->data[t] = ctx->weights + r->offset;
    }
    *out = ctx;
    return KILN_OK;
}

/* A layer's name in the profile: its op and what inspect shows beside it. */
static const char *profile_name(void *user, int32_t l) {
    kiln_context *ctx = user;
    static _Thread_local char name[96];
    const kiln_layer_record *r = &ctx->engine->desc.layers[l];
    const char *detail = ctx->engine->layer_details[l];
    if (r->op == KILN_OP_BINARY || r->op == KILN_OP_UNARY || r->op == KILN_OP_PLUGIN || r->op == KILN_OP_REDUCE ||
        r->op == KILN_OP_COMPARE || kiln_op_is_collective(r->op))
        snprintf(name, sizeof name, "%s %s", kiln_op_name(r->op), detail);
    else
        snprintf(name, sizeof name, "%s", kiln_op_name(r->op));
    return name;
}

void kiln_context_free(kiln_context *ctx) {
    if (!ctx) return;
    kiln_engine *e = ctx->engine;
    kiln_layer_profile_finish(&ctx->layer_profile, profile_name, ctx);
    if (ctx->instances)
        for (int32_t i = 0; i < e->desc.plugin_count; i++)
            if (ctx->instances[i] && e->creators[i]->destroy) e->creators[i]->destroy(e->creators[i], ctx->instances[i]);
    if (ctx->graph) ctx->backend->graph_free(ctx->device.index, ctx->graph);
    if (ctx->comm) ctx->backend->comm_free(ctx->device.index, ctx->comm);
    if (ctx->arena) ctx->backend->free(ctx->device.index, ctx->arena);
    if (ctx->input_shapes)
        for (int32_t i = 0; i < e->desc.io_count; i++) kiln_free(ctx->input_shapes[i]);
    if (ctx->layers)
        for (int32_t l = 0; l < e->desc.layer_count; l++) {
            kiln_free(ctx->layers[l].descs);
            kiln_free(ctx->layers[l].tensor_ids);
        }
    kiln_free(ctx->layers);
    kiln_free(ctx->instances);
    kiln_free(ctx->input_shapes);
    kiln_free(ctx->input_ranks);
    kiln_free(ctx->input_set);
    kiln_free(ctx->expr_values);
    kiln_free(ctx->dim_values);
    kiln_free(ctx->data);
    kiln_free(ctx->tensor_descs);
    kiln_free(ctx->tensor_bytes);
    kiln_activation_plan_clear(&ctx->plan);
    kiln_free(ctx);
    kiln_engine_free(e);
}

kiln_engine *kiln_context_engine(kiln_context *ctx) { return ctx ? ctx->engine : NULL; }
kiln_device kiln_context_device(const kiln_context *ctx) {
    kiln_device cpu = {KILN_DEVICE_CPU, 0};
    return ctx ? ctx->device : cpu;
}

uint64_t kiln_context_memory_bytes(const kiln_context *ctx) {
    if (!ctx) return 0;
    uint64_t n = ctx->arena_capacity;
    if (ctx->device.type != KILN_DEVICE_CPU) n += ctx->engine->desc.weights_size;
    return n;
}

static kiln_status find_io(kiln_context *ctx, const char *name, const char *what, int32_t *io) {
    if (!ctx || !name) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: NULL argument", what);
    *io = kiln_engine_io_index(ctx->engine, name);
    if (*io < 0) return kiln_error(KILN_ERROR_NOT_FOUND, "%s: the engine has no input or output named '%s'", what, name);
    return KILN_OK;
}

/* A context serves one thread at a time (kiln.h).  Concurrent use is a bug
 * in the caller that would corrupt shared state; it is refused, naming the
 * call, rather than raced. */
static kiln_status context_enter(kiln_context *ctx, const char *what) {
    if (!ctx) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: context is NULL", what);
    int idle = 0;
    if (!atomic_compare_exchange_strong(&ctx->busy, &idle, 1))
        return kiln_error(KILN_ERROR_STATE, "%s: the context is in use by another thread (a context serves one "
                          "thread at a time: create one context per thread)", what);
    return KILN_OK;
}

static void context_leave(kiln_context *ctx) { atomic_store(&ctx->busy, 0); }

/* Is value inside the range of `dim` in any profile?  Also describes the ranges. */
static int dim_in_some_profile(const kiln_engine_desc *d, int32_t dim, int64_t value, char *ranges, size_t size) {
    int ok = 0;
    size_t used = 0;
    ranges[0] = '\0';
    for (int32_t p = 0; p < d->profile_count; p++) {
        const kiln_dim_range *r = &d->dims[dim].ranges[p];
        ok |= value >= r->min && value <= r->max;
        if (used < size)
            used += (size_t)snprintf(ranges + used, size - used, "%s[%lld, %lld]", p ? " or " : "",
                                     (long long)r->min, (long long)r->max);
    }
    return ok;
}

static kiln_status context_set_input_shape(kiln_context *ctx, const char *name, int32_t rank, const int64_t *dims) {
    int32_t io = -1;
    kiln_status s = find_io(ctx, name, "kiln_context_set_input_shape", &io);
    if (s) return s;
    const kiln_engine_desc *d = &ctx->engine->desc;
    const kiln_tensor_record *t = &d->tensors[d->io[io]];
    if (t->kind != KILN_TENSOR_INPUT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "'%s' is an output; only inputs take a shape", name);
    if (rank != t->rank)
        return kiln_error(KILN_ERROR_SHAPE, "input '%s' has rank %d, not %d", name, t->rank, rank);
    if (rank && !dims) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_set_input_shape: dims is NULL");
    for (int32_t a = 0; a < rank; a++) {
        const kiln_expr_node *node = &d->exprs->nodes[t->shape[a]];
        if (dims[a] < 0)
            return kiln_error(KILN_ERROR_SHAPE, "input '%s' axis %d: size %lld is negative", name, a, (long long)dims[a]);
        if (node->op == KILN_EXPR_CONST && node->value != dims[a])
            return kiln_error(KILN_ERROR_SHAPE, "input '%s' axis %d must be %lld, got %lld", name, a,
                              (long long)node->value, (long long)dims[a]);
        if (node->op == KILN_EXPR_DIM) {
            char ranges[512];
            if (!dim_in_some_profile(d, (int32_t)node->value, dims[a], ranges, sizeof ranges))
                return kiln_error(KILN_ERROR_SHAPE, "input '%s' axis %d ('%s') = %lld is outside the profile range %s",
                                  name, a, d->dims[node->value].name, (long long)dims[a], ranges);
        }
    }
    if (!ctx->input_shapes[io] && !(ctx->input_shapes[io] = kiln_calloc(KILN_MAX_RANK, sizeof(int64_t))))
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_context_set_input_shape: out of memory");
    /* The same shape again (the usual case in a serving loop) keeps the
     * prepared launch descriptors and any captured graph. */
    if (ctx->input_set[io] && ctx->input_ranks[io] == rank &&
        memcmp(ctx->input_shapes[io], dims, sizeof(int64_t) * (size_t)rank) == 0)
        return KILN_OK;
    memcpy(ctx->input_shapes[io], dims, sizeof(int64_t) * (size_t)rank);
    ctx->input_ranks[io] = rank;
    ctx->input_set[io] = 1;
    ctx->graph_stale = 1;
    ctx->prepared = 0;
    return KILN_OK;
}

/* Give every dimension its value from the input shapes; one name on two inputs must agree. */
static kiln_status resolve_dims(kiln_context *ctx) {
    const kiln_engine_desc *d = &ctx->engine->desc;
    int32_t *source = kiln_malloc(sizeof(int32_t) * (d->dim_count ? (size_t)d->dim_count : 1));
    if (!source) return kiln_error(KILN_ERROR_NO_MEMORY, "resolving shapes: out of memory");
    for (int32_t i = 0; i < d->dim_count; i++) source[i] = -1;
    kiln_status s = KILN_OK;
    for (int32_t io = 0; io < d->io_count && !s; io++) {
        const kiln_tensor_record *t = &d->tensors[d->io[io]];
        if (t->kind != KILN_TENSOR_INPUT) continue;
        if (!ctx->input_shapes[io]) {
            /* An input whose every axis is a constant has one possible shape. */
            int fixed = 1;
            for (int32_t a = 0; a < t->rank; a++) fixed &= d->exprs->nodes[t->shape[a]].op == KILN_EXPR_CONST;
            if (fixed) continue;
            s = kiln_error(KILN_ERROR_STATE, "input '%s' has no shape: call kiln_context_set_input_shape first",
                           t->name);
            break;
        }
        for (int32_t a = 0; a < t->rank && !s; a++) {
            const kiln_expr_node *node = &d->exprs->nodes[t->shape[a]];
            if (node->op != KILN_EXPR_DIM) continue;
            int32_t dim = (int32_t)node->value;
            int64_t v = ctx->input_shapes[io][a];
            if (source[dim] < 0) {
                source[dim] = io;
                ctx->dim_values[dim] = v;
            } else if (ctx->dim_values[dim] != v) {
                s = kiln_error(KILN_ERROR_SHAPE, "dimension '%s' is %lld in input '%s' but %lld in input '%s'",
                               d->dims[dim].name, (long long)ctx->dim_values[dim],
                               d->tensors[d->io[source[dim]]].name, (long long)v, t->name);
            }
        }
    }
    for (int32_t i = 0; i < d->dim_count && !s; i++)
        if (source[i] < 0)
            s = kiln_error(KILN_ERROR_SHAPE, "dimension '%s' is not the size of any input axis", d->dims[i].name);
    kiln_free(source);
    if (s) return s;
    /* The first profile that holds every dimension. */
    for (int32_t p = 0; p < d->profile_count; p++) {
        int fits = 1;
        for (int32_t i = 0; i < d->dim_count && fits; i++)
            fits = ctx->dim_values[i] >= d->dims[i].ranges[p].min && ctx->dim_values[i] <= d->dims[i].ranges[p].max;
        if (fits) {
            ctx->profile = p;
            return KILN_OK;
        }
    }
    char text[1024];
    size_t used = 0;
    for (int32_t i = 0; i < d->dim_count && used < sizeof text; i++)
        used += (size_t)snprintf(text + used, sizeof text - used, "%s%s = %lld", i ? ", " : "", d->dims[i].name,
                                 (long long)ctx->dim_values[i]);
    return kiln_error(KILN_ERROR_SHAPE, "no optimization profile holds all input dimensions together (%s)", text);
}

/* The dims an input's shape expressions evaluate to must be the ones the
 * caller set: kernels size their reads by the evaluated shape, the caller's
 * buffer by its own.  The reader already refuses inputs whose entries are not
 * constants or named dimensions, so this holds for every engine it accepts;
 * checked again here because a mismatch would read past a caller's buffer. */
static kiln_status check_input_dims(const kiln_context *ctx) {
    const kiln_engine_desc *d = &ctx->engine->desc;
    for (int32_t io = 0; io < d->io_count; io++) {
        int32_t t = d->io[io];
        if (d->tensors[t].kind != KILN_TENSOR_INPUT || !ctx->input_shapes[io]) continue;   /* never set: all constant */
        const kiln_tensor_desc *desc = &ctx->tensor_descs[t];
        for (int32_t a = 0; a < desc->rank; a++)
            if (desc->dims[a] != ctx->input_shapes[io][a])
                return kiln_error(KILN_ERROR_SHAPE, "input '%s' axis %d: the engine's shape gives %lld but the caller "
                                  "set %lld (inconsistent engine)", d->tensors[t].name, a, (long long)desc->dims[a],
                                  (long long)ctx->input_shapes[io][a]);
    }
    return KILN_OK;
}

/* Offsets of the activations for the current shapes, in an arena grown (never
 * shrunk) to what they need; refused past the caller's cap. */
/* Alignment of the backend workspace after the activations (backend.h). */
#define KILN_WORKSPACE_ALIGN 256u

/* Lay the activations out for the current shapes, then `workspace` bytes of
 * backend scratch after them (ctx->workspace), growing the arena when they
 * do not fit. */
static kiln_status place_activations(kiln_context *ctx, uint64_t workspace) {
    uint64_t need = 0, planned = 0;
    kiln_status s = kiln_activation_plan_place(&ctx->plan, ctx->tensor_bytes, &planned);
    if (s) return s;
    need = planned;
    if (workspace) {
        need = (planned + KILN_WORKSPACE_ALIGN - 1) / KILN_WORKSPACE_ALIGN * KILN_WORKSPACE_ALIGN;
        if (__builtin_add_overflow(need, workspace, &need))
            return kiln_error(KILN_ERROR_NO_MEMORY, "the backend's workspace of %llu bytes does not fit in 64 bits",
                              (unsigned long long)workspace);
    }
    if (need > ctx->arena_capacity) {
        if (ctx->memory_cap && need > ctx->memory_cap) {
            char part[96] = "";
            if (workspace)
                snprintf(part, sizeof part, "; %llu of them the backend's workspace", (unsigned long long)workspace);
            return kiln_error(KILN_ERROR_NO_MEMORY, "these input shapes need %llu bytes of activation memory, more "
                              "than the context's cap of %llu bytes (kiln_context_options.max_activation_bytes)%s",
                              (unsigned long long)need, (unsigned long long)ctx->memory_cap, part);
        }
        void *grown = NULL;
        if ((s = ctx->backend->alloc(ctx->device.index, (size_t)need, &grown)))
            return kiln_error_prefix(s, "allocating %llu bytes of activation memory", (unsigned long long)need);
        if (ctx->arena) ctx->backend->free(ctx->device.index, ctx->arena);
        ctx->arena = grown;
        ctx->arena_capacity = need;
        ctx->graph_stale = 1;
        kiln_log(KILN_LOG_INFO, "context: activation arena grown to %llu bytes (the engine's plan at the profiles' "
                 "maxima: %llu)", (unsigned long long)need, (unsigned long long)ctx->engine->desc.arena_bytes);
    }
    /* No arena yet when every activation is empty so far: no pointer to offset. */
    for (size_t i = 0; i < ctx->plan.count; i++)
        ctx->data[ctx->plan.tensors[i]] = ctx->arena ? (uint8_t *)ctx->arena + ctx->plan.items[i].offset : NULL;
    ctx->workspace = workspace ? (uint8_t *)ctx->arena + (need - workspace) : NULL;
    ctx->workspace_size = workspace;
    return KILN_OK;
}

static kiln_status prepare(kiln_context *ctx) {
    const kiln_engine_desc *d = &ctx->engine->desc;
    ctx->prepared = 0;
    kiln_status s = resolve_dims(ctx);
    if (s) return s;
    s = kiln_exprs_eval_all(d->exprs, ctx->dim_values, d->dim_count, ctx->expr_values);
    if (s) return kiln_error_prefix(s, "evaluating shapes");
    for (int32_t c = 0; c < d->check_count; c++)
        if (ctx->expr_values[d->checks[c].cond] == 0) return kiln_error(KILN_ERROR_SHAPE, "%s", d->checks[c].message);
    for (int32_t t = 0; t < d->tensor_count; t++) {
        const kiln_tensor_record *r = &d->tensors[t];
        kiln_tensor_desc *desc = &ctx->tensor_descs[t];
        desc->dtype = (kiln_dtype)r->dtype;
        desc->rank = r->rank;
        desc->device = ctx->device;
        /* Size first, strides after: every stride is a partial product of
         * the dims, so once the byte count is known to fit in int64 none of
         * them can overflow. */
        uint64_t bytes = kiln_dtype_size(desc->dtype);
        for (int32_t a = 0; a < r->rank; a++) {
            int64_t v = ctx->expr_values[r->shape[a]];
            if (v < 0) return kiln_error(KILN_ERROR_SHAPE, "tensor '%s' axis %d has negative size %lld", r->name, a,
                                         (long long)v);
            desc->dims[a] = v;
            if (__builtin_mul_overflow(bytes, (uint64_t)v, &bytes) || bytes > (uint64_t)INT64_MAX)
                return kiln_error(KILN_ERROR_SHAPE, "tensor '%s' is too large (more than 2^63 bytes)", r->name);
        }
        for (int32_t a = r->rank - 1; a >= 0; a--)
            desc->strides[a] = a == r->rank - 1 ? 1 : desc->strides[a + 1] * desc->dims[a + 1];
        ctx->tensor_bytes[t] = bytes;
        if ((r->kind == KILN_TENSOR_ACTIVATION || r->kind == KILN_TENSOR_CONSTANT) && bytes > r->size)
            return kiln_error(KILN_ERROR_SHAPE,
                              "tensor '%s' needs %llu bytes for these shapes but the engine planned %llu (shapes "
                              "outside what the profiles' maxima imply)", r->name, (unsigned long long)bytes,
                              (unsigned long long)r->size);
    }
    if ((s = check_input_dims(ctx))) return s;
    /* Built-in launches first: the backend's workspace is the most any of
     * them asks for (backend.h), placed with the activations. */
    uint64_t workspace = 0;
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        kiln_prepared_layer *p = &ctx->layers[l];
        int32_t n = r->input_count + r->output_count;
        for (int32_t i = 0; i < n; i++) p->descs[i] = ctx->tensor_descs[p->tensor_ids[i]];
        if (r->op == KILN_OP_PLUGIN) continue;
        const kiln_layer_attrs *a = &r->attrs;
        memcpy(p->attr_values, a->ints, sizeof(int64_t) * (size_t)a->int_count);
        for (int32_t k = 0; k < a->expr_count; k++) p->attr_values[a->int_count + k] = ctx->expr_values[a->exprs[k]];
        p->launch = (kiln_layer_launch){.op = r->op, .subop = r->subop, .axis = r->axis,
                                        .attrs = p->attr_values, .attr_count = a->int_count + a->expr_count,
                                        .input_count = r->input_count, .output_count = r->output_count,
                                        .inputs = p->descs, .outputs = p->descs + r->input_count,
                                        .rank = d->parallel.rank, .world_size = d->parallel.world_size,
                                        .comm = ctx->comm};
        if (ctx->backend->layer_workspace) {
            uint64_t want = ctx->backend->layer_workspace(&p->launch);
            if (want > workspace) workspace = want;
        }
    }
    if ((s = place_activations(ctx, workspace))) return s;
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        kiln_prepared_layer *p = &ctx->layers[l];
        if (r->op != KILN_OP_PLUGIN) {
            p->launch.workspace = ctx->workspace;
            p->launch.workspace_size = ctx->workspace_size;
            continue;
        }
        p->plugin = (kiln_plugin_launch){.input_count = r->input_count, .inputs = p->descs,
                                         .output_count = r->output_count, .outputs = p->descs + r->input_count,
                                         .device = ctx->device, .expr_values = ctx->expr_values,
                                         .expr_count = (int64_t)d->exprs->count,
                                         .device_service = &ctx->device_service};
        if (r->workspace >= 0) {
            p->plugin.workspace_size = (uint64_t)ctx->expr_values[d->tensors[r->workspace].shape[0]];
            p->plugin.workspace = p->plugin.workspace_size ? ctx->data[r->workspace] : NULL;
        }
    }
    ctx->prepared = 1;
    return KILN_OK;
}

static kiln_status context_tensor_shape(kiln_context *ctx, const char *name, int32_t *rank, int64_t *dims) {
    int32_t io = -1;
    kiln_status s = find_io(ctx, name, "kiln_context_tensor_shape", &io);
    if (s) return s;
    if (!rank || !dims) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_tensor_shape: NULL argument");
    if (!ctx->prepared && (s = prepare(ctx))) return s;
    const kiln_tensor_desc *desc = &ctx->tensor_descs[ctx->engine->desc.io[io]];
    *rank = desc->rank;
    memcpy(dims, desc->dims, sizeof(int64_t) * (size_t)desc->rank);
    return KILN_OK;
}

static kiln_status context_set_tensor(kiln_context *ctx, const char *name, void *data) {
    int32_t io = -1;
    kiln_status s = find_io(ctx, name, "kiln_context_set_tensor", &io);
    if (s) return s;
    if (ctx->data[ctx->engine->desc.io[io]] != data) ctx->graph_stale = 1;
    ctx->data[ctx->engine->desc.io[io]] = data;
    return KILN_OK;
}

static kiln_status context_enqueue(kiln_context *ctx, void *stream) {
    if (!ctx) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_enqueue: context is NULL");
    const kiln_engine_desc *d = &ctx->engine->desc;
    kiln_status s;
    if (!ctx->prepared && (s = prepare(ctx))) return s;
    /* The calling thread may have another GPU current. */
    if (ctx->backend->set_device && (s = ctx->backend->set_device(ctx->device.index))) return s;
    for (int32_t i = 0; i < d->io_count; i++) {
        int32_t t = d->io[i];
        if (!ctx->data[t] && ctx->tensor_descs[t].rank >= 0) {
            uint64_t n = 1;
            for (int32_t a = 0; a < ctx->tensor_descs[t].rank; a++) n *= (uint64_t)ctx->tensor_descs[t].dims[a];
            if (n) return kiln_error(KILN_ERROR_STATE, "%s '%s' has no buffer: call kiln_context_set_tensor",
                                     d->tensors[t].kind == KILN_TENSOR_INPUT ? "input" : "output", d->tensors[t].name);
        }
    }
    if (ctx->needs_comm >= 0 && !ctx->comm)
        return kiln_error(KILN_ERROR_STATE, "layer %d (%s %s): the engine is rank %d of world size %d but the context "
                          "has joined no communicator: call kiln_context_set_communicator first", (int)ctx->needs_comm,
                          kiln_op_name(d->layers[ctx->needs_comm].op), ctx->engine->layer_details[ctx->needs_comm],
                          (int)d->parallel.rank, (int)d->parallel.world_size);
    kiln_layer_profile *prof = &ctx->layer_profile;
    if (prof->seconds) prof->runs++;
    for (int32_t l = 0; l < d->layer_count; l++) {
        kiln_prepared_layer *p = &ctx->layers[l];
        const kiln_layer_record *r = &d->layers[l];
        int32_t n = r->input_count + r->output_count;
        double t0 = prof->seconds ? kiln_layer_profile_now() : 0;
        for (int32_t i = 0; i < n; i++) p->descs[i].data = ctx->data[p->tensor_ids[i]];
        if (r->op == KILN_OP_PLUGIN) {
            p->plugin.stream = stream;
            uint64_t serial = kiln_error_serial();
            s = ctx->engine->creators[r->subop]->enqueue(ctx->instances[r->subop], &p->plugin);
            if (s) {
                const kiln_plugin_record *pr = &d->plugins[r->subop];
                return kiln_plugin_failure(s, serial, "layer %d (plugin %s::%s version %s)", l, pr->plugin_namespace,
                                           pr->name, pr->version);
            }
        } else {
            s = ctx->backend->run_layer(ctx->device.index, &p->launch, stream);
            if (s) return kiln_error_prefix(s, "layer %d (%s)", l, ctx->engine->layer_details[l][0]
                                                                       ? ctx->engine->layer_details[l] : "built-in");
        }
        if (prof->seconds && ctx->backend->synchronize(ctx->device.index, stream) == KILN_OK)
            prof->seconds[l] += kiln_layer_profile_now() - t0;
    }
    return KILN_OK;
}

static kiln_status context_capture(kiln_context *ctx, void *stream) {
    if (!ctx) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_capture: context is NULL");
    const kiln_backend_iface *b = ctx->backend;
    if (!b->capture_begin || !b->capture_end || !b->graph_launch || !b->graph_free)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "CUDA graphs need a CUDA device; this context runs on %s", b->name);
    if (!stream)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "kiln_context_capture: a stream is required (the default stream cannot be captured)");
    kiln_status s;
    /* One ordinary run first: errors surface outside the capture, and lazy
     * one-time work (cuBLAS handles, Triton JIT compilation in Python
     * plugins) happens before recording, where it would be illegal. */
    if ((s = context_enqueue(ctx, stream))) return s;
    if ((s = ctx->backend->synchronize(ctx->device.index, stream))) return s;
    if (b->set_device && (s = b->set_device(ctx->device.index))) return s;
    if ((s = b->capture_begin(ctx->device.index, stream))) return kiln_error_prefix(s, "starting graph capture");
    double *profiling = ctx->layer_profile.seconds;   /* no per-layer waits inside a capture */
    ctx->layer_profile.seconds = NULL;
    kiln_status run = context_enqueue(ctx, stream);
    ctx->layer_profile.seconds = profiling;
    char run_error[1024] = "";
    if (run) snprintf(run_error, sizeof run_error, "%s", kiln_last_error());
    void *graph = NULL;
    s = b->capture_end(ctx->device.index, stream, &graph);
    if (run) {
        if (graph) b->graph_free(ctx->device.index, graph);
        return kiln_error(run, "during graph capture: %s", run_error);
    }
    if (s) return kiln_error_prefix(s, "finishing graph capture (a plugin may have synchronized or allocated "
                                       "memory while capturing)");
    if (ctx->graph) b->graph_free(ctx->device.index, ctx->graph);
    ctx->graph = graph;
    ctx->graph_stale = 0;
    return KILN_OK;
}

bool kiln_context_graph_ready(const kiln_context *ctx) { return ctx && ctx->graph && !ctx->graph_stale; }

static kiln_status context_replay(kiln_context *ctx, void *stream) {
    if (!ctx) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_context_replay: context is NULL");
    if (!ctx->graph) return kiln_error(KILN_ERROR_STATE, "no graph captured: call kiln_context_capture first");
    if (ctx->graph_stale)
        return kiln_error(KILN_ERROR_STATE, "the captured graph is stale: input shapes or buffers changed since "
                                            "capture; call kiln_context_capture again");
    return ctx->backend->graph_launch(ctx->device.index, ctx->graph, stream);
}

/* The public calls that read or change a context's state: each holds the
 * context for its duration, so a second thread is refused instead of racing. */
kiln_status kiln_context_set_input_shape(kiln_context *ctx, const char *name, int32_t rank, const int64_t *dims) {
    kiln_status s = context_enter(ctx, "kiln_context_set_input_shape");
    if (s) return s;
    s = context_set_input_shape(ctx, name, rank, dims);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_tensor_shape(kiln_context *ctx, const char *name, int32_t *rank, int64_t *dims) {
    kiln_status s = context_enter(ctx, "kiln_context_tensor_shape");
    if (s) return s;
    s = context_tensor_shape(ctx, name, rank, dims);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_set_tensor(kiln_context *ctx, const char *name, void *data) {
    kiln_status s = context_enter(ctx, "kiln_context_set_tensor");
    if (s) return s;
    s = context_set_tensor(ctx, name, data);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_enqueue(kiln_context *ctx, void *stream) {
    kiln_status s = context_enter(ctx, "kiln_context_enqueue");
    if (s) return s;
    s = context_enqueue(ctx, stream);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_capture(kiln_context *ctx, void *stream) {
    kiln_status s = context_enter(ctx, "kiln_context_capture");
    if (s) return s;
    s = context_capture(ctx, stream);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_replay(kiln_context *ctx, void *stream) {
    kiln_status s = context_enter(ctx, "kiln_context_replay");
    if (s) return s;
    s = context_replay(ctx, stream);
    context_leave(ctx);
    return s;
}

/* ---- communicators ----------------------------------------------------------- */

static kiln_status context_set_communicator(kiln_context *ctx, int32_t rank, int32_t world_size,
                                            const kiln_comm_id *id) {
    const char *api = "kiln_context_set_communicator";
    const kiln_parallel_record *par = &ctx->engine->desc.parallel;
    if (rank != par->rank || world_size != par->world_size)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: rank %d of world size %d given, but the engine was built "
                          "for rank %d of world size %d (kiln_network_set_parallel): load each rank's own engine",
                          api, (int)rank, (int)world_size, (int)par->rank, (int)par->world_size);
    if (ctx->comm) return kiln_error(KILN_ERROR_STATE, "%s: rank %d has joined a communicator already", api, (int)rank);
    /* A group of one: collectives are copies, unless an id asks for a
     * one-rank NCCL communicator (the NCCL path on a single GPU). */
    if (world_size == 1 && (!id || !ctx->backend->comm_create)) return KILN_OK;
    if (!id) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: rank %d: id is NULL", api, (int)rank);
    if (!ctx->backend->comm_create)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "%s: rank %d of %d: the %s backend has no communicators (run on "
                          "CUDA devices, with NCCL)", api, (int)rank, (int)world_size, ctx->backend->name);
    void *comm = NULL;
    kiln_status s = ctx->backend->comm_create(ctx->device.index, rank, world_size, id->bytes,
                                              kiln_comm_timeout_seconds(), &comm);
    if (s) return s;
    ctx->comm = comm;
    ctx->prepared = 0;   /* the launches carry the communicator */
    ctx->graph_stale = 1;
    return KILN_OK;
}

kiln_status kiln_context_set_communicator(kiln_context *ctx, int32_t rank, int32_t world_size, const kiln_comm_id *id) {
    kiln_status s = context_enter(ctx, "kiln_context_set_communicator");
    if (s) return s;
    s = context_set_communicator(ctx, rank, world_size, id);
    context_leave(ctx);
    return s;
}

kiln_status kiln_context_synchronize(kiln_context *ctx, void *stream) {
    kiln_status s = context_enter(ctx, "kiln_context_synchronize");
    if (s) return s;
    if (ctx->backend->set_device) s = ctx->backend->set_device(ctx->device.index);
    if (!s)
        s = ctx->comm ? ctx->backend->comm_synchronize(ctx->device.index, ctx->comm, stream, kiln_comm_timeout_seconds())
                      : ctx->backend->synchronize(ctx->device.index, stream);
    context_leave(ctx);
    return s;
}
