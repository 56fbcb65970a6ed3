/* network.c — creating a network: dims, inputs, constants, outputs, layer bookkeeping. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/network_impl.h"

#define NAME_MAX_BYTES 1024

kiln_status kiln_network_create(kiln_network **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_create: out is NULL");
    *out = NULL;
    kiln_network *net = kiln_calloc(1, sizeof *net);
    if (!net) return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_create: out of memory");
    net->exprs = kiln_exprs_create();
    if (!net->exprs) {
        kiln_free(net);
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_create: out of memory");
    }
    net->world_size = 1;
    *out = net;
    return KILN_OK;
}

kiln_status kiln_network_set_parallel(kiln_network *net, int32_t rank, int32_t world_size) {
    if (!net) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_set_parallel: net is NULL");
    if (world_size < 1 || world_size > KILN_MAX_WORLD_SIZE)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_set_parallel: world size %d is outside [1, %d]",
                          (int)world_size, KILN_MAX_WORLD_SIZE);
    if (rank < 0 || rank >= world_size)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_set_parallel: rank %d is outside [0, %d) (world "
                          "size %d)", (int)rank, (int)world_size, (int)world_size);
    if (net->collective_layers && world_size != net->world_size)
        return kiln_error(KILN_ERROR_STATE, "kiln_network_set_parallel: the network already has %d collective "
                          "layer%s shaped for world size %d; set the world size (%d) before adding them",
                          (int)net->collective_layers, net->collective_layers == 1 ? "" : "s", (int)net->world_size,
                          (int)world_size);
    net->rank = rank;
    net->world_size = world_size;
    return KILN_OK;
}

kiln_status kiln_network_parallel(const kiln_network *net, int32_t *rank, int32_t *world_size) {
    if (!net) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_parallel: net is NULL");
    if (rank) *rank = net->rank;
    if (world_size) *world_size = net->world_size;
    return KILN_OK;
}

void kiln_network_free(kiln_network *net) {
    if (!net) return;
    kiln_exprs_free(net->exprs);
    for (size_t i = 0; i < net->dim_count; i++) {
        kiln_free(net->dims[i].name);
        kiln_free(net->dims[i].ranges);
    }
    kiln_free(net->dims);
    for (size_t i = 0; i < net->tensor_count; i++) {
        kiln_free(net->tensors[i].name);
        kiln_free(net->tensors[i].data);
    }
    kiln_free(net->tensors);
    for (size_t i = 0; i < net->layer_count; i++) {
        kiln_free(net->layers[i].inputs);
        kiln_free(net->layers[i].outputs);
    }
    kiln_free(net->layers);
    for (size_t i = 0; i < net->plugin_count; i++) {
        kiln_plugin_record *r = &net->plugins[i].record;
        kiln_free(r->plugin_namespace); kiln_free(r->name); kiln_free(r->version);
        kiln_free(r->module); kiln_free(r->fields);
    }
    kiln_free(net->plugins);
    for (size_t i = 0; i < net->check_count; i++) kiln_free(net->checks[i].message);
    kiln_free(net->checks);
    for (size_t i = 0; i < net->output_count; i++) kiln_free(net->outputs[i].name);
    kiln_free(net->outputs);
    kiln_free(net);
}

kiln_exprs *kiln_network_exprs(kiln_network *net) { return net ? net->exprs : NULL; }

static kiln_status check_name(const char *name, const char *what) {
    if (!name || !name[0]) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: name is empty or NULL", what);
    if (strlen(name) >= NAME_MAX_BYTES)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: name '%.40s...' is longer than %d bytes", what, name,
                          NAME_MAX_BYTES - 1);
    return KILN_OK;
}

kiln_status kiln_network_add_dim(kiln_network *net, const char *name, const kiln_dim_range *ranges,
                                 int32_t profile_count, kiln_expr *out) {
    if (!net || !ranges || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_dim: NULL argument");
    kiln_status s = check_name(name, "kiln_network_add_dim");
    if (s) return s;
    for (size_t i = 0; i < net->dim_count; i++)
        if (strcmp(net->dims[i].name, name) == 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "dimension '%s' is already declared", name);
    if (profile_count < 1 || profile_count > 64)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "dimension '%s': %d ranges given; need one range per profile (1..64)", name, profile_count);
    if (net->profile_count && profile_count != net->profile_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "dimension '%s' has %d ranges but earlier dimensions have %d (one per profile)", name,
                          profile_count, net->profile_count);
    for (int32_t p = 0; p < profile_count; p++) {
        const kiln_dim_range *r = &ranges[p];
        if (r->min < 0 || r->min > r->opt || r->opt > r->max)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                              "dimension '%s' profile %d: range (min %lld, opt %lld, max %lld) is empty or inverted "
                              "(need 0 <= min <= opt <= max)",
                              name, p, (long long)r->min, (long long)r->opt, (long long)r->max);
    }
    if (!kiln_grow((void **)&net->dims, &net->dim_capacity, net->dim_count + 1, sizeof *net->dims))
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_add_dim: out of memory");
    kiln_dim_record *d = &net->dims[net->dim_count];
    d->name = kiln_strdup(name);
    d->ranges = kiln_malloc(sizeof *ranges * (size_t)profile_count);
    if (!d->name || !d->ranges) {
        kiln_free(d->name); kiln_free(d->ranges);
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_add_dim: out of memory");
    }
    memcpy(d->ranges, ranges, sizeof *ranges * (size_t)profile_count);
    int32_t index = (int32_t)net->dim_count;
    kiln_expr e = kiln_exprs_dim(net->exprs, index);
    if (e < 0 || kiln_exprs_name_dim(net->exprs, index, name) != KILN_OK) {
        kiln_free(d->name); kiln_free(d->ranges);
        return e < 0 ? KILN_ERROR_NO_MEMORY : kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_add_dim: out of memory");
    }
    net->dim_count++;
    net->profile_count = profile_count;
    *out = e;
    return KILN_OK;
}

kiln_status kiln_network_find_dim(kiln_network *net, const char *name, kiln_expr *out) {
    if (!net || !name || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_find_dim: NULL argument");
    for (size_t i = 0; i < net->dim_count; i++)
        if (strcmp(net->dims[i].name, name) == 0) {
            *out = kiln_exprs_dim(net->exprs, (int32_t)i);
            return *out < 0 ? KILN_ERROR_NO_MEMORY : KILN_OK;
        }
    return kiln_error(KILN_ERROR_NOT_FOUND, "no dimension named '%s'", name);
}

static int tensor_name_taken(const kiln_network *net, const char *name) {
    for (size_t i = 0; i < net->tensor_count; i++)
        if (net->tensors[i].name && strcmp(net->tensors[i].name, name) == 0) return 1;
    return 0;
}

/* Append a tensor; name is copied (NULL: generated later from the producer). */
static kiln_status push_tensor(kiln_network *net, const kiln_net_tensor *t, const char *name, kiln_tensor *out) {
    if (net->tensor_count >= INT32_MAX - 1)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "network has too many tensors");
    if (!kiln_grow((void **)&net->tensors, &net->tensor_capacity, net->tensor_count + 1, sizeof *net->tensors))
        return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a tensor");
    kiln_net_tensor *slot = &net->tensors[net->tensor_count];
    *slot = *t;
    slot->name = NULL;
    if (name && !(slot->name = kiln_strdup(name)))
        return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a tensor");
    *out = (kiln_tensor)net->tensor_count++;
    net->built = 0;
    return KILN_OK;
}

kiln_status kiln_network_add_input(kiln_network *net, const char *name, kiln_dtype dtype, int32_t rank,
                                   const kiln_expr *shape, kiln_tensor *out) {
    if (!net || !out || (rank > 0 && !shape))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_input: NULL argument");
    kiln_status s = check_name(name, "kiln_network_add_input");
    if (s) return s;
    if (!kiln_dtype_name(dtype))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "input '%s': unknown dtype %d", name, (int)dtype);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "input '%s': rank %d is outside [0, %d]", name, rank,
                          KILN_MAX_RANK);
    if (tensor_name_taken(net, name))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "duplicate tensor name '%s'", name);
    kiln_net_tensor t = {.kind = KILN_NET_INPUT, .dtype = dtype, .rank = rank, .producer = -1};
    for (int32_t i = 0; i < rank; i++) {
        kiln_expr e = shape[i];
        int64_t v;
        if (!kiln_exprs_valid(net->exprs, e))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "input '%s' axis %d: invalid expression %d", name, i, e);
        if (kiln_expr_is_const(net->exprs, e, &v)) {
            if (v < 0)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                                  "input '%s' axis %d: size %lld is negative (declare dynamic axes with "
                                  "kiln_network_add_dim)", name, i, (long long)v);
        } else if (net->exprs->nodes[e].op != KILN_EXPR_DIM) {
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                              "input '%s' axis %d: an input's size must be a constant or a declared dimension, "
                              "not a compound expression", name, i);
        }
        t.shape[i] = e;
    }
    s = push_tensor(net, &t, name, out);
    if (s == KILN_OK) net->input_count++;
    return s;
}

kiln_status kiln_network_add_constant(kiln_network *net, const char *name, kiln_dtype dtype, int32_t rank,
                                      const int64_t *dims, const void *data, kiln_tensor *out) {
    if (!net || !out || (rank > 0 && !dims))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_add_constant: NULL argument");
    kiln_status s = check_name(name, "kiln_network_add_constant");
    if (s) return s;
    if (!kiln_dtype_name(dtype))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "constant '%s': unknown dtype %d", name, (int)dtype);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "constant '%s': rank %d is outside [0, %d]", name, rank,
                          KILN_MAX_RANK);
    if (tensor_name_taken(net, name))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "duplicate tensor name '%s'", name);
    kiln_net_tensor t = {.kind = KILN_NET_CONSTANT, .dtype = dtype, .rank = rank, .producer = -1};
    uint64_t count = 1;
    for (int32_t i = 0; i < rank; i++) {
        if (dims[i] < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "constant '%s' axis %d: size %lld is negative", name, i,
                              (long long)dims[i]);
        if (__builtin_mul_overflow(count, (uint64_t)dims[i], &count) || count > (UINT64_C(1) << 48))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "constant '%s' is too large", name);
        t.shape[i] = kiln_expr_const(net->exprs, dims[i]);
        if (t.shape[i] < 0) return KILN_ERROR_NO_MEMORY;
    }
    t.size = count * kiln_dtype_size(dtype);
    if (t.size && !data)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "constant '%s': data is NULL", name);
    t.data = kiln_malloc((size_t)t.size);
    if (!t.data) return kiln_error(KILN_ERROR_NO_MEMORY, "constant '%s': out of memory copying %llu bytes", name,
                                   (unsigned long long)t.size);
    if (t.size) memcpy(t.data, data, (size_t)t.size);
    s = push_tensor(net, &t, name, out);
    if (s) kiln_free(t.data);
    return s;
}

kiln_status kiln_net_tensor_get(kiln_network *net, kiln_tensor t, const char *what, kiln_net_tensor **out) {
    if (!net) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: network is NULL", what);
    if (t < 0 || (size_t)t >= net->tensor_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: tensor %d does not belong to this network", what, t);
    *out = &net->tensors[t];
    return KILN_OK;
}

const char *kiln_net_tensor_label(const kiln_network *net, kiln_tensor t) {
    static _Thread_local char labels[4][64];
    static _Thread_local int next;
    const kiln_net_tensor *x = &net->tensors[t];
    if (x->name) return x->name;
    char *buf = labels[next++ & 3];
    snprintf(buf, sizeof labels[0], "layer%d.out", x->producer);
    for (int32_t i = 0; i < net->layers[x->producer].output_count; i++)
        if (net->layers[x->producer].outputs[i] == t)
            snprintf(buf, sizeof labels[0], "layer%d.out%d", x->producer, i);
    return buf;
}

kiln_status kiln_net_add_check(kiln_network *net, kiln_expr cond, const char *fmt, ...) {
    int64_t v;
    if (cond < 0) return KILN_ERROR_NO_MEMORY;
    if (kiln_expr_is_const(net->exprs, cond, &v) && v != 0) return KILN_OK;   /* holds always */
    if (!kiln_grow((void **)&net->checks, &net->check_capacity, net->check_count + 1, sizeof *net->checks))
        return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a check");
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (kiln_expr_is_const(net->exprs, cond, &v))   /* v == 0: can never hold */
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "%s", message);
    char *copy = kiln_strdup(message);
    if (!copy) return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a check");
    net->checks[net->check_count++] = (kiln_check_record){.cond = cond, .message = copy};
    return KILN_OK;
}

kiln_status kiln_net_add_layer(kiln_network *net, kiln_op op, int32_t subop, int64_t axis,
                               const kiln_layer_attrs *attrs, int32_t input_count,
                               const kiln_tensor *inputs, int32_t output_count, const kiln_dtype *dtypes,
                               const kiln_shape_expr *shapes, kiln_tensor *outs) {
    if (!kiln_grow((void **)&net->layers, &net->layer_capacity, net->layer_count + 1, sizeof *net->layers))
        return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a layer");
    kiln_net_layer *l = &net->layers[net->layer_count];
    *l = (kiln_net_layer){.op = (uint8_t)op, .subop = subop, .axis = axis, .input_count = input_count,
                          .output_count = output_count};
    if (attrs) l->attrs = *attrs;
    l->inputs = kiln_malloc(sizeof(int32_t) * (size_t)(input_count ? input_count : 1));
    l->outputs = kiln_malloc(sizeof(int32_t) * (size_t)output_count);
    if (!l->inputs || !l->outputs) goto oom;
    if (input_count) memcpy(l->inputs, inputs, sizeof(int32_t) * (size_t)input_count);
    size_t first = net->tensor_count;
    for (int32_t i = 0; i < output_count; i++) {
        kiln_net_tensor t = {.kind = KILN_NET_LAYER_OUTPUT, .dtype = dtypes[i], .rank = shapes[i].rank,
                             .producer = (int32_t)net->layer_count};
        memcpy(t.shape, shapes[i].dims, sizeof(kiln_expr) * (size_t)shapes[i].rank);
        if (push_tensor(net, &t, NULL, &l->outputs[i]) != KILN_OK) {
            net->tensor_count = first;   /* drop the outputs added so far */
            goto oom;
        }
    }
    memcpy(outs, l->outputs, sizeof(int32_t) * (size_t)output_count);
    net->layer_count++;
    return KILN_OK;
oom:
    kiln_free(l->inputs);
    kiln_free(l->outputs);
    return kiln_error(KILN_ERROR_NO_MEMORY, "network: out of memory adding a layer");
}

kiln_status kiln_network_mark_output(kiln_network *net, kiln_tensor t, const char *name, kiln_dtype dtype) {
    kiln_net_tensor *x = NULL;
    kiln_status s = kiln_net_tensor_get(net, t, "kiln_network_mark_output", &x);
    if (s) return s;
    if ((s = check_name(name, "kiln_network_mark_output"))) return s;
    if (x->dtype != dtype)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "output '%s': dtype %s given but tensor '%s' is %s (add a cast layer to convert)", name,
                          kiln_dtype_name(dtype) ? kiln_dtype_name(dtype) : "(unknown)",
                          kiln_net_tensor_label(net, t), kiln_dtype_name(x->dtype));
    if (x->kind == KILN_NET_LAYER_OUTPUT && net->layers[x->producer].op == KILN_OP_PLUGIN) {
        const kiln_net_layer *l = &net->layers[x->producer];
        for (int32_t k = 0; k < l->output_count && k < l->attrs.int_count; k++)
            if (l->outputs[k] == t && l->attrs.ints[k] >= 0)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "output '%s': tensor '%s' is written in place into "
                                  "input '%s'; read that input's buffer instead", name, kiln_net_tensor_label(net, t),
                                  kiln_net_tensor_label(net, l->inputs[l->attrs.ints[k]]));
    }
    for (size_t i = 0; i < net->output_count; i++)
        if (strcmp(net->outputs[i].name, name) == 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "duplicate output name '%s'", name);
    for (size_t i = 0; i < net->tensor_count; i++)
        if (net->tensors[i].kind == KILN_NET_INPUT && strcmp(net->tensors[i].name, name) == 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "output name '%s' is already the name of an input", name);
    if (!kiln_grow((void **)&net->outputs, &net->output_capacity, net->output_count + 1, sizeof *net->outputs))
        return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_mark_output: out of memory");
    char *copy = kiln_strdup(name);
    if (!copy) return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_mark_output: out of memory");
    net->outputs[net->output_count++] = (kiln_net_output){.tensor = t, .name = copy, .dtype = dtype};
    net->built = 0;
    return KILN_OK;
}

kiln_status kiln_network_tensor_info(kiln_network *net, kiln_tensor t, kiln_dtype *dtype, int32_t *rank,
                                     kiln_expr *shape) {
    kiln_net_tensor *x = NULL;
    kiln_status s = kiln_net_tensor_get(net, t, "kiln_network_tensor_info", &x);
    if (s) return s;
    if (dtype) *dtype = x->dtype;
    if (rank) *rank = x->rank;
    if (shape) memcpy(shape, x->shape, sizeof(kiln_expr) * (size_t)x->rank);
    return KILN_OK;
}

const char *kiln_network_tensor_name(kiln_network *net, kiln_tensor t) {
    kiln_net_tensor *x = NULL;
    if (kiln_net_tensor_get(net, t, "kiln_network_tensor_name", &x)) return NULL;
    return kiln_net_tensor_label(net, t);
}

kiln_status kiln_network_set_tensor_name(kiln_network *net, kiln_tensor t, const char *name) {
    kiln_net_tensor *x = NULL;
    kiln_status s = kiln_net_tensor_get(net, t, "kiln_network_set_tensor_name", &x);
    if (s) return s;
    if ((s = check_name(name, "kiln_network_set_tensor_name"))) return s;
    if (x->kind != KILN_NET_LAYER_OUTPUT)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "tensor '%s' is an input or constant; its name is fixed",
                          x->name);
    if (tensor_name_taken(net, name))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "duplicate tensor name '%s'", name);
    char *copy = kiln_strdup(name);
    if (!copy) return kiln_error(KILN_ERROR_NO_MEMORY, "kiln_network_set_tensor_name: out of memory");
    kiln_free(x->name);
    x->name = copy;
    return KILN_OK;
}
