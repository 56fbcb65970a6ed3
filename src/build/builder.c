/* builder.c — turning a network into engine bytes:
 *   validate → prune to what the outputs need → name and number tensors →
 *   plan activation memory at every profile's maxima → lay out weights →
 *   serialize (src/format). */
#include <stdio.h>
#include <string.h>

#include "engine/activation_plan.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/log.h"
#include "ops/op_table.h"
#include "format/engine_format.h"
#include "graph/network_impl.h"

#define WEIGHT_ALIGNMENT KILN_FORMAT_WEIGHT_ALIGNMENT

struct kiln_blob {
    uint8_t *data;
    size_t   size;
};

const uint8_t *kiln_blob_data(const kiln_blob *b) { return b ? b->data : NULL; }
size_t kiln_blob_size(const kiln_blob *b) { return b ? b->size : 0; }

void kiln_blob_free(kiln_blob *b) {
    if (!b) return;
    kiln_aligned_free(b->data);
    kiln_free(b);
}

kiln_status kiln_blob_save(const kiln_blob *b, const char *path) {
    if (!b || !path) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_blob_save: NULL argument");
    /* Write to a temporary name and rename, so a failed save never leaves a
     * truncated engine where a good one was. */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_blob_save: path too long");
    FILE *f = fopen(tmp, "wb");
    if (!f) return kiln_error(KILN_ERROR_IO, "cannot write '%s': %m", tmp);
    size_t written = fwrite(b->data, 1, b->size, f);
    int closed = fclose(f);
    if (written != b->size || closed != 0) {
        remove(tmp);
        return kiln_error(KILN_ERROR_IO, "writing '%s' failed (disk full?)", path);
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return kiln_error(KILN_ERROR_IO, "cannot rename '%s' to '%s': %m", tmp, path);
    }
    return KILN_OK;
}

/* Working state of one build. */
typedef struct build_state {
    kiln_network     *net;
    int32_t          *new_index;     /* network tensor → engine tensor, -1 if pruned */
    uint8_t          *layer_live;
    kiln_engine_desc  desc;          /* arrays owned here; strings partly borrowed */
    char            **owned_names;   /* names this build generated, one per engine tensor (or NULL) */
    size_t            tensor_capacity, name_capacity, layer_capacity;
    uint8_t          *weights;
} build_state;

static void build_state_free(build_state *b) {
    for (int32_t i = 0; i < b->desc.tensor_count; i++) kiln_free(b->owned_names[i]);
    kiln_free(b->owned_names);
    for (int32_t i = 0; i < b->desc.layer_count; i++) {
        kiln_free(b->desc.layers[i].inputs);
        kiln_free(b->desc.layers[i].outputs);
    }
    kiln_free(b->desc.layers);
    kiln_free(b->desc.tensors);
    kiln_free(b->desc.plugins);
    kiln_free(b->desc.io);
    kiln_aligned_free(b->weights);
    kiln_free(b->new_index);
    kiln_free(b->layer_live);
}

static kiln_status validate(kiln_network *net) {
    if (net->output_count == 0)
        return kiln_error(KILN_ERROR_INVALID_NETWORK, "network has no outputs (mark at least one tensor as an output: mark_output)");
    /* A dimension must be an axis of some input, or nothing can give it a value. */
    for (size_t d = 0; d < net->dim_count; d++) {
        int bound = 0;
        kiln_expr e = kiln_exprs_dim(net->exprs, (int32_t)d);
        for (size_t t = 0; t < net->tensor_count && !bound; t++)
            if (net->tensors[t].kind == KILN_NET_INPUT)
                for (int32_t a = 0; a < net->tensors[t].rank; a++) bound |= net->tensors[t].shape[a] == e;
        if (!bound)
            return kiln_error(KILN_ERROR_INVALID_NETWORK, "dimension '%s' is not the size of any input axis",
                              net->dims[d].name);
    }
    return KILN_OK;
}

/* Mark the layers and tensors the outputs depend on. */
static kiln_status prune(build_state *b) {
    kiln_network *net = b->net;
    uint8_t *needed = kiln_calloc(net->tensor_count, 1);
    b->layer_live = kiln_calloc(net->layer_count ? net->layer_count : 1, 1);
    if (!needed || !b->layer_live) {
        kiln_free(needed);
        return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    }
    for (size_t o = 0; o < net->output_count; o++) needed[net->outputs[o].tensor] = 1;
    for (size_t l = net->layer_count; l-- > 0;) {
        const kiln_net_layer *layer = &net->layers[l];
        int live = 0;
        for (int32_t i = 0; i < layer->output_count; i++) live |= needed[layer->outputs[i]];
        /* A layer that writes into an input in place has an effect beyond its outputs. */
        if (layer->op == KILN_OP_PLUGIN)
            for (int32_t k = 0; k < layer->attrs.int_count; k++) live |= layer->attrs.ints[k] >= 0;
        if (!live) continue;
        b->layer_live[l] = 1;
        for (int32_t i = 0; i < layer->input_count; i++) needed[layer->inputs[i]] = 1;
        /* A live layer's outputs all exist, even those nobody reads. */
        for (int32_t i = 0; i < layer->output_count; i++) needed[layer->outputs[i]] = 1;
    }
    kiln_status s = KILN_OK;
    /* An input no output reads stays an input of the engine (callers bind it
     * as the model declares, e.g. an ONNX input only its shape is taken of);
     * it is likely a mistake in a hand-built network, hence the warning. */
    for (size_t t = 0; t < net->tensor_count; t++)
        if (net->tensors[t].kind == KILN_NET_INPUT && !needed[t]) {
            kiln_log(KILN_LOG_WARNING, "build: input '%s' is not used by any output (kept as an input)",
                     net->tensors[t].name);
            needed[t] = 1;
        }
    if (!s) {
        b->new_index = kiln_malloc(net->tensor_count * sizeof *b->new_index + 1);
        if (!b->new_index) s = kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
        for (size_t t = 0; t < net->tensor_count && !s; t++) b->new_index[t] = needed[t] ? 0 : -1;
    }
    kiln_free(needed);
    return s;
}

static kiln_status push_tensor(build_state *b, const kiln_tensor_record *r, int32_t *index) {
    kiln_engine_desc *d = &b->desc;
    if (!kiln_grow((void **)&d->tensors, &b->tensor_capacity, (size_t)d->tensor_count + 1, sizeof *d->tensors) ||
        !kiln_grow((void **)&b->owned_names, &b->name_capacity, (size_t)d->tensor_count + 1, sizeof(char *)))
        return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    d->tensors[d->tensor_count] = *r;
    b->owned_names[d->tensor_count] = NULL;
    *index = d->tensor_count++;
    return KILN_OK;
}

static kiln_status push_layer(build_state *b, const kiln_layer_record *r) {
    kiln_engine_desc *d = &b->desc;
    if (!kiln_grow((void **)&d->layers, &b->layer_capacity, (size_t)d->layer_count + 1, sizeof *d->layers))
        return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    d->layers[d->layer_count++] = *r;
    return KILN_OK;
}

static int32_t *copy_indices(const int32_t *src, int32_t n, const int32_t *map) {
    int32_t *dst = kiln_malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (dst)
        for (int32_t i = 0; i < n; i++) dst[i] = map ? map[src[i]] : src[i];
    return dst;
}

/* Output tensors: claim the producing activation, or add a copy layer when
 * the tensor is an input, a constant, or already another output. */
static kiln_status assign_outputs(build_state *b) {
    kiln_network *net = b->net;
    kiln_engine_desc *d = &b->desc;
    for (size_t o = 0; o < net->output_count; o++) {
        const kiln_net_output *out = &net->outputs[o];
        int32_t t = b->new_index[out->tensor];
        kiln_tensor_record *rec = &d->tensors[t];
        if (rec->kind == KILN_TENSOR_ACTIVATION) {
            rec->kind = KILN_TENSOR_OUTPUT;
            rec->name = out->name;
        } else {
            kiln_tensor_record copy = *rec;
            copy.kind = KILN_TENSOR_OUTPUT;
            copy.name = out->name;
            copy.offset = copy.size = 0;
            int32_t index;
            kiln_status s = push_tensor(b, &copy, &index);
            if (s) return s;
            kiln_layer_record layer = {.op = KILN_OP_RESHAPE, .input_count = 1, .output_count = 1, .workspace = -1};
            layer.inputs = copy_indices(&t, 1, NULL);
            layer.outputs = copy_indices(&index, 1, NULL);
            if (!layer.inputs || !layer.outputs || (s = push_layer(b, &layer))) {
                kiln_free(layer.inputs); kiln_free(layer.outputs);
                return s ? s : kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
            }
        }
    }
    return KILN_OK;
}

/* Input and output names are unique by construction; an internal tensor whose
 * name equals an io name or an earlier tensor's gets a "#index" suffix. */
static kiln_status name_tensors(build_state *b) {
    kiln_engine_desc *d = &b->desc;
    for (int32_t i = 0; i < d->tensor_count; i++) {
        kiln_tensor_record *r = &d->tensors[i];
        if (r->kind == KILN_TENSOR_INPUT || r->kind == KILN_TENSOR_OUTPUT) continue;
        int clash = 0;
        for (int32_t j = 0; j < d->tensor_count && !clash; j++) {
            const kiln_tensor_record *o = &d->tensors[j];
            int io = o->kind == KILN_TENSOR_INPUT || o->kind == KILN_TENSOR_OUTPUT;
            clash = j != i && (io || j < i) && strcmp(r->name, o->name) == 0;
        }
        if (!clash) continue;
        char name[1100];
        snprintf(name, sizeof name, "%s#%d", r->name, i);
        char *copy = kiln_strdup(name);
        if (!copy) return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
        kiln_free(b->owned_names[i]);
        b->owned_names[i] = copy;
        r->name = copy;
    }
    return KILN_OK;
}

static kiln_status assemble(build_state *b) {
    kiln_network *net = b->net;
    kiln_engine_desc *d = &b->desc;
    kiln_status s;
    /* Tensors, inputs first so the io list reads naturally. */
    for (int pass = 0; pass < 2; pass++)
        for (size_t t = 0; t < net->tensor_count; t++) {
            const kiln_net_tensor *x = &net->tensors[t];
            if (b->new_index[t] < 0 || (pass == 0) != (x->kind == KILN_NET_INPUT)) continue;
            kiln_tensor_record r = {.name = x->name, .dtype = (uint8_t)x->dtype, .rank = x->rank, .size = x->size};
            memcpy(r.shape, x->shape, sizeof r.shape);
            r.kind = x->kind == KILN_NET_INPUT ? KILN_TENSOR_INPUT
                   : x->kind == KILN_NET_CONSTANT ? KILN_TENSOR_CONSTANT : KILN_TENSOR_ACTIVATION;
            if (!r.name) r.name = (char *)kiln_net_tensor_label(net, (kiln_tensor)t);
            if ((s = push_tensor(b, &r, &b->new_index[t]))) return s;
            if (!x->name && !(b->owned_names[b->new_index[t]] = kiln_strdup(r.name)))
                return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
            if (!x->name) d->tensors[b->new_index[t]].name = b->owned_names[b->new_index[t]];
        }
    /* Plugins keep their records; only live ones are written. */
    d->plugins = kiln_calloc(net->plugin_count ? net->plugin_count : 1, sizeof *d->plugins);
    if (!d->plugins)
        return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    s = KILN_OK;
    for (size_t l = 0; l < net->layer_count && !s; l++) {
        if (!b->layer_live[l]) continue;
        const kiln_net_layer *x = &net->layers[l];
        kiln_layer_record r = {.op = x->op, .subop = x->subop, .axis = x->axis, .input_count = x->input_count,
                               .output_count = x->output_count, .workspace = -1, .attrs = x->attrs};
        if (x->op == KILN_OP_PLUGIN) {
            const kiln_net_plugin *p = &net->plugins[x->subop];
            r.subop = d->plugin_count;
            d->plugins[d->plugin_count++] = p->record;
            if (p->workspace >= 0) {
                kiln_tensor_record ws = {.kind = KILN_TENSOR_ACTIVATION, .dtype = KILN_UINT8, .rank = 1};
                ws.shape[0] = p->workspace;
                char name[64];
                snprintf(name, sizeof name, "layer%zu.workspace", l);
                if ((s = push_tensor(b, &ws, &r.workspace))) break;
                if (!(b->owned_names[r.workspace] = kiln_strdup(name))) {
                    s = kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
                    break;
                }
                d->tensors[r.workspace].name = b->owned_names[r.workspace];
            }
        }
        r.inputs = copy_indices(x->inputs, x->input_count, b->new_index);
        r.outputs = copy_indices(x->outputs, x->output_count, b->new_index);
        if (!r.inputs || !r.outputs || (s = push_layer(b, &r))) {
            kiln_free(r.inputs); kiln_free(r.outputs);
            if (!s) s = kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
        }
    }
    if (s || (s = assign_outputs(b)) || (s = name_tensors(b))) return s;
    /* io: inputs in declaration order, then outputs in marking order. */
    d->io = kiln_malloc(sizeof(int32_t) * ((size_t)net->input_count + net->output_count));
    if (!d->io) return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    for (int32_t t = 0; t < d->tensor_count; t++)
        if (d->tensors[t].kind == KILN_TENSOR_INPUT) d->io[d->io_count++] = t;
    for (size_t o = 0; o < net->output_count; o++)
        for (int32_t t = 0; t < d->tensor_count; t++)
            if (d->tensors[t].kind == KILN_TENSOR_OUTPUT && strcmp(d->tensors[t].name, net->outputs[o].name) == 0)
                d->io[d->io_count++] = t;
    return KILN_OK;
}

static uint64_t tensor_bytes(const kiln_tensor_record *t, const int64_t *values, int *ok) {
    uint64_t n = kiln_dtype_size((kiln_dtype)t->dtype);
    for (int32_t i = 0; i < t->rank; i++) {
        int64_t v = values[t->shape[i]];
        if (v < 0 || __builtin_mul_overflow(n, (uint64_t)v, &n)) *ok = 0;
    }
    return n;
}

/* Activation sizes at each profile's maxima; lifetimes from layer order
 * (engine/activation_plan.c: the same placement contexts make per shape). */
static kiln_status plan_memory(build_state *b) {
    kiln_network *net = b->net;
    kiln_engine_desc *d = &b->desc;
    size_t n = (size_t)d->tensor_count;
    uint64_t *bytes = kiln_calloc(n ? n : 1, sizeof *bytes);
    int64_t *values = kiln_malloc(sizeof(int64_t) * (net->exprs->count ? net->exprs->count : 1));
    int64_t *dims = kiln_malloc(sizeof(int64_t) * (net->dim_count ? net->dim_count : 1));
    kiln_activation_plan plan = {0};
    kiln_status s = KILN_OK;
    if (!bytes || !values || !dims) s = kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    int32_t profiles = net->profile_count ? net->profile_count : 1;
    for (int32_t p = 0; p < profiles && !s; p++) {
        for (size_t i = 0; i < net->dim_count; i++) dims[i] = net->dims[i].ranges[p].max;
        s = kiln_exprs_eval_all(net->exprs, dims, (int32_t)net->dim_count, values);
        if (s) { s = kiln_error_prefix(s, "evaluating shapes at profile %d maxima", p); break; }
        for (size_t t = 0; t < n; t++) {
            if (d->tensors[t].kind != KILN_TENSOR_ACTIVATION) continue;
            int ok = 1;
            uint64_t size = tensor_bytes(&d->tensors[t], values, &ok);
            if (!ok) { s = kiln_error(KILN_ERROR_INVALID_NETWORK, "tensor '%s' has a negative or overflowing size "
                                      "at profile %d maxima", d->tensors[t].name, p); break; }
            if (size > bytes[t]) bytes[t] = size;
        }
    }
    uint64_t total = 0;
    for (size_t t = 0; t < n && bytes; t++) total += bytes[t];
    if (!s) s = kiln_activation_plan_init(d, &plan);
    if (!s) s = kiln_activation_plan_place(&plan, bytes, &d->arena_bytes);
    for (size_t i = 0; i < plan.count && !s; i++) {
        kiln_tensor_record *r = &d->tensors[plan.tensors[i]];
        r->offset = plan.items[i].offset;
        r->size = plan.items[i].size;
    }
    net->report.activation_bytes = total;
    kiln_activation_plan_clear(&plan);
    kiln_free(bytes); kiln_free(values); kiln_free(dims);
    return s;
}

static kiln_status layout_weights(build_state *b) {
    kiln_engine_desc *d = &b->desc;
    uint64_t size = 0;
    for (int32_t t = 0; t < d->tensor_count; t++) {
        kiln_tensor_record *r = &d->tensors[t];
        if (r->kind != KILN_TENSOR_CONSTANT) continue;
        r->offset = size;
        size += (r->size + WEIGHT_ALIGNMENT - 1) & ~(uint64_t)(WEIGHT_ALIGNMENT - 1);
    }
    b->weights = kiln_aligned_alloc(size ? (size_t)size : 64);
    if (!b->weights) return kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory for %llu bytes of weights",
                                       (unsigned long long)size);
    memset(b->weights, 0, size);
    for (size_t t = 0; t < b->net->tensor_count; t++) {
        const kiln_net_tensor *x = &b->net->tensors[t];
        if (b->new_index[t] < 0 || x->kind != KILN_NET_CONSTANT) continue;
        if (x->size) memcpy(b->weights + d->tensors[b->new_index[t]].offset, x->data, x->size);
    }
    d->weights = b->weights;
    d->weights_size = size;
    return KILN_OK;
}

/* "tensor_name dtype [dims]" of tensor t, for the build log. */
static void tensor_text(const kiln_engine_desc *d, int32_t t, char *buf, size_t size) {
    const kiln_tensor_record *r = &d->tensors[t];
    size_t used = (size_t)snprintf(buf, size, "%s %s [", r->name, kiln_dtype_name((kiln_dtype)r->dtype));
    for (int32_t a = 0; a < r->rank && used < size; a++) {
        char dim[96];
        kiln_expr_format(d->exprs, r->shape[a], dim, sizeof dim);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", a ? ", " : "", dim);
    }
    if (used < size) snprintf(buf + used, size - used, "]");
}

/* What was built, for KILN_LOG_LEVEL=info: each layer's inputs and outputs
 * with their symbolic shapes, then the memory plan. */
static void log_build(const kiln_engine_desc *d, size_t engine_bytes, uint64_t activation_bytes) {
    if (!kiln_log_enabled(KILN_LOG_INFO)) return;
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        char text[1536];
        const kiln_plugin_record *pr = r->op == KILN_OP_PLUGIN ? &d->plugins[r->subop] : NULL;
        size_t used = (size_t)snprintf(text, sizeof text, "build: layer %d %s%s%s%s%s:", l, kiln_op_name(r->op),
                                       r->op == KILN_OP_BINARY || r->op == KILN_OP_UNARY || pr ? " " : "",
                                       r->op == KILN_OP_BINARY ? kiln_binary_op_name(r->subop)
                                       : r->op == KILN_OP_UNARY ? kiln_unary_op_name(r->subop)
                                       : pr ? pr->plugin_namespace : "",
                                       pr ? "::" : "", pr ? pr->name : "");
        for (int32_t i = 0; i < r->input_count + r->output_count && used < sizeof text; i++) {
            char t[384];
            tensor_text(d, i < r->input_count ? r->inputs[i] : r->outputs[i - r->input_count], t, sizeof t);
            used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", i == r->input_count ? " -> " :
                                     i ? ", " : " ", t);
        }
        kiln_log(KILN_LOG_INFO, "%s", text);
    }
    int32_t activations = 0;
    for (int32_t t = 0; t < d->tensor_count; t++) activations += d->tensors[t].kind == KILN_TENSOR_ACTIVATION;
    kiln_log(KILN_LOG_INFO,
             "build: memory plan: %d activation tensor(s), %llu bytes without reuse, arena %llu bytes (at the profiles' "
             "maxima); weights %llu bytes; engine %zu bytes", (int)activations,
             (unsigned long long)activation_bytes, (unsigned long long)d->arena_bytes,
             (unsigned long long)d->weights_size, engine_bytes);
}

kiln_status kiln_network_build(kiln_network *net, const kiln_build_options *options, kiln_blob **out) {
    if (!net || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_build: NULL argument");
    *out = NULL;
    if (options && options->struct_size < sizeof(uint32_t) * 2)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_build: options.struct_size is wrong");
    build_state b = {.net = net};
    kiln_status s = validate(net);
    if (!s) s = prune(&b);
    if (!s) s = assemble(&b);
    if (!s) {
        kiln_engine_desc *d = &b.desc;
        d->exprs = net->exprs;
        d->dim_count = (int32_t)net->dim_count;
        d->profile_count = net->profile_count ? net->profile_count : 1;
        d->dims = net->dims;
        d->check_count = (int32_t)net->check_count;
        d->checks = net->checks;
        d->parallel = (kiln_parallel_record){.rank = net->rank, .world_size = net->world_size};
        s = plan_memory(&b);
    }
    if (!s) s = layout_weights(&b);
    kiln_blob *blob = NULL;
    if (!s && !(blob = kiln_calloc(1, sizeof *blob))) s = kiln_error(KILN_ERROR_NO_MEMORY, "build: out of memory");
    if (!s) s = kiln_format_write(&b.desc, &blob->data, &blob->size);
    if (!s) log_build(&b.desc, blob->size, net->report.activation_bytes);
    if (!s) {
        net->report.arena_bytes = b.desc.arena_bytes;
        net->report.weight_bytes = b.desc.weights_size;
        net->report.layer_count = b.desc.layer_count;
        net->built = 1;
        *out = blob;
    } else {
        kiln_free(blob);
    }
    build_state_free(&b);
    return s;
}

kiln_status kiln_network_build_report(const kiln_network *net, kiln_build_report *out) {
    if (!net || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_network_build_report: NULL argument");
    if (!net->built) return kiln_error(KILN_ERROR_STATE, "the network has not been built since it last changed");
    *out = net->report;
    return KILN_OK;
}
