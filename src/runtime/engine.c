/* engine.c — loading engines (from memory or a mapped file) and describing them. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "format/engine_format.h"
#include "runtime/engine_impl.h"
#include "ops/op_table.h"

static void engine_destroy(kiln_engine *e) {
    for (int i = 0; i < KILN_MAX_CUDA_DEVICES; i++)
        if (e->device_weights[i] && e->device_backend) e->device_backend->free(i, e->device_weights[i]);
    for (int32_t i = 0; i < e->desc.plugin_count; i++)
        if (e->plugin_fields) kiln_value_free(e->plugin_fields[i]);
    kiln_free(e->plugin_fields);
    kiln_free(e->creators);
    if (e->layer_details)
        for (int32_t i = 0; i < e->desc.layer_count; i++) kiln_free(e->layer_details[i]);
    kiln_free(e->layer_details);
    kiln_engine_desc_clear(&e->desc);
    if (e->mapping) munmap(e->mapping, e->mapping_size);
    kiln_aligned_free(e->bytes);
    pthread_mutex_destroy(&e->device_lock);
    kiln_free(e);
}

void kiln_engine_free(kiln_engine *e) {
    if (e && atomic_fetch_sub(&e->refcount, 1) == 1) engine_destroy(e);
}

/* Decode plugin fields, find each creator (unless KILN_LOAD_NO_PLUGINS: the
 * creators stay NULL and kiln_context_create refuses the engine), name layers. */
static kiln_status resolve(kiln_engine *e, uint32_t flags) {
    kiln_engine_desc *d = &e->desc;
    size_t np = d->plugin_count ? (size_t)d->plugin_count : 1;
    e->plugin_fields = kiln_calloc(np, sizeof *e->plugin_fields);
    e->creators = kiln_calloc(np, sizeof *e->creators);
    e->layer_details = kiln_calloc(d->layer_count ? (size_t)d->layer_count : 1, sizeof *e->layer_details);
    if (!e->plugin_fields || !e->creators || !e->layer_details)
        return kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory");
    for (int32_t i = 0; i < d->plugin_count; i++) {
        const kiln_plugin_record *r = &d->plugins[i];
        kiln_status s = kiln_value_decode(r->fields, r->fields_size, &e->plugin_fields[i]);
        if (s) return kiln_error_prefix(KILN_ERROR_CORRUPT, "plugin %s::%s version %s fields", r->plugin_namespace,
                                        r->name, r->version);
        if (kiln_value_get_type(e->plugin_fields[i]) != KILN_VALUE_MAP)
            return kiln_error(KILN_ERROR_CORRUPT, "plugin %s::%s version %s: fields are not a map",
                              r->plugin_namespace, r->name, r->version);
        if (flags & KILN_LOAD_NO_PLUGINS) continue;
        e->creators[i] = kiln_plugin_find(r->plugin_namespace, r->name, r->version);
        if (!e->creators[i]) {
            int py = (r->flags & KILN_PLUGIN_NEEDS_PYTHON) != 0;
            if (r->module[0])
                return kiln_error(KILN_ERROR_NOT_FOUND,
                                  "engine needs plugin %s::%s version %s, which is not registered; it is defined in "
                                  "%s '%s': %s it before loading the engine",
                                  r->plugin_namespace, r->name, r->version, py ? "Python module" : "library",
                                  r->module, py ? "import" : "load");
            return kiln_error(KILN_ERROR_NOT_FOUND,
                              "engine needs plugin %s::%s version %s, which is not registered", r->plugin_namespace,
                              r->name, r->version);
        }
        if ((flags & KILN_LOAD_NO_MACHINE_CODE) && (e->creators[i]->flags & KILN_PLUGIN_RUNS_ENGINE_CODE))
            return kiln_error(KILN_ERROR_UNSUPPORTED,
                              "engine carries machine code (plugin %s::%s version %s runs code stored in the engine) "
                              "and was loaded with KILN_LOAD_NO_MACHINE_CODE", r->plugin_namespace, r->name,
                              r->version);
        if (e->creators[i]->output_count != 0) {
            for (int32_t l = 0; l < d->layer_count; l++)
                if (d->layers[l].op == KILN_OP_PLUGIN && d->layers[l].subop == i &&
                    d->layers[l].output_count != e->creators[i]->output_count)
                    return kiln_error(KILN_ERROR_CORRUPT,
                                      "layer %d uses plugin %s::%s version %s with %d outputs, but the registered "
                                      "plugin produces %d", l, r->plugin_namespace, r->name, r->version,
                                      d->layers[l].output_count, e->creators[i]->output_count);
        }
    }
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *layer = &d->layers[l];
        char detail[1024] = "";
        if (layer->op == KILN_OP_PLUGIN) {
            const kiln_plugin_record *r = &d->plugins[layer->subop];
            snprintf(detail, sizeof detail, "%s::%s v%s", r->plugin_namespace, r->name, r->version);
            for (int32_t k = 0; k < layer->attrs.int_count; k++)
                if (layer->attrs.ints[k] >= 0) {
                    size_t len = strlen(detail);
                    snprintf(detail + len, sizeof detail - len, " [writes out%d into in%lld]", (int)k,
                             (long long)layer->attrs.ints[k]);
                }
            /* The plugin's first field view, when it has one (kiln::TritonAOT:
             * "AOT of ns::name vN", the plugin it was compiled from). */
            const kiln_plugin_creator *c = kiln_plugin_find(r->plugin_namespace, r->name, r->version);
            if (c && c->field_view_count > 0 && c->field_views) {
                char text[400];
                kiln_plugin_field_view_format(&c->field_views[0], e->plugin_fields[layer->subop], text, sizeof text);
                size_t len = strlen(detail);
                if (text[0]) snprintf(detail + len, sizeof detail - len, " (%s %s)", c->field_views[0].label, text);
            }
        } else {
            kiln_layer_describe(d, layer, detail, sizeof detail);   /* names from the op table */
        }
        if (!(e->layer_details[l] = kiln_strdup(detail)))
            return kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory");
    }
    return KILN_OK;
}

static kiln_status engine_new(kiln_engine **out) {
    kiln_engine *e = kiln_calloc(1, sizeof *e);
    if (!e) return kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory");
    atomic_init(&e->refcount, 1);
    pthread_mutex_init(&e->device_lock, NULL);
    *out = e;
    return KILN_OK;
}

static kiln_status engine_finish(kiln_engine *e, const uint8_t *data, size_t size, uint32_t flags,
                                 kiln_engine **out) {
    kiln_status s = kiln_format_read(data, size, flags, &e->desc);
    if (!s) s = resolve(e, flags);
    if (!s && !(flags & KILN_LOAD_NO_PLUGINS)) s = kiln_engine_verify_plugin_layers(e);
    if (s) {
        engine_destroy(e);
        return s;
    }
    *out = e;
    return KILN_OK;
}

static kiln_status check_load_flags(const char *what, uint32_t flags) {
    if (flags & ~(uint32_t)KILN_LOAD_KNOWN_FLAGS)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "%s: unknown flag bits 0x%x (known: 0x%x)", what,
                          (unsigned)(flags & ~(uint32_t)KILN_LOAD_KNOWN_FLAGS), (unsigned)KILN_LOAD_KNOWN_FLAGS);
    return KILN_OK;
}

kiln_status kiln_engine_load_memory(const void *data, size_t size, uint32_t flags, kiln_engine **out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_load_memory: out is NULL");
    *out = NULL;
    kiln_status fs = check_load_flags("kiln_engine_load_memory", flags);
    if (fs) return fs;
    if (!data && size) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_load_memory: data is NULL");
    kiln_engine *e = NULL;
    kiln_status s = engine_new(&e);
    if (s) return s;
    /* Copy to a 64-byte aligned buffer so weights are aligned in place. */
    e->bytes = kiln_aligned_alloc(size ? size : 1);
    if (!e->bytes) {
        engine_destroy(e);
        return kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory for %zu bytes", size);
    }
    if (size) memcpy(e->bytes, data, size);
    return engine_finish(e, e->bytes, size, flags, out);
}

kiln_status kiln_engine_load_file(const char *path, uint32_t flags, kiln_engine **out) {
    if (!path || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_load_file: NULL argument");
    *out = NULL;
    kiln_status fs = check_load_flags("kiln_engine_load_file", flags);
    if (fs) return fs;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer before the regular-file check below could refuse it.  It has
     * no effect on the regular files that pass that check. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return kiln_error(KILN_ERROR_IO, "cannot open engine '%s': %m", path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return kiln_error(KILN_ERROR_IO, "engine '%s' is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        close(fd);
        return kiln_error(KILN_ERROR_CORRUPT, "engine '%s' is empty", path);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return kiln_error(KILN_ERROR_IO, "cannot map engine '%s': %m", path);
    kiln_engine *e = NULL;
    kiln_status s = engine_new(&e);
    if (s) {
        munmap(map, size);
        return s;
    }
    e->mapping = map;
    e->mapping_size = size;
    s = engine_finish(e, map, size, flags, out);
    if (s) return kiln_error_prefix(s, "loading '%s'", path);
    return KILN_OK;
}

/* ---- description ---------------------------------------------------------- */

int32_t kiln_engine_io_count(const kiln_engine *e) { return e ? e->desc.io_count : 0; }

kiln_status kiln_engine_io_info(const kiln_engine *e, int32_t index, kiln_io_info *out) {
    if (!e || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_io_info: NULL argument");
    if (index < 0 || index >= e->desc.io_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_io_info: index %d is outside [0, %d)", index,
                          e->desc.io_count);
    const kiln_tensor_record *t = &e->desc.tensors[e->desc.io[index]];
    out->name = t->name;
    out->kind = t->kind == KILN_TENSOR_INPUT ? KILN_IO_INPUT : KILN_IO_OUTPUT;
    out->dtype = (kiln_dtype)t->dtype;
    out->rank = t->rank;
    memcpy(out->shape, t->shape, sizeof out->shape);
    return KILN_OK;
}

int32_t kiln_engine_io_index(const kiln_engine *e, const char *name) {
    if (!e || !name) {
        kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_io_index: NULL argument");
        return -1;
    }
    for (int32_t i = 0; i < e->desc.io_count; i++)
        if (strcmp(e->desc.tensors[e->desc.io[i]].name, name) == 0) return i;
    kiln_error(KILN_ERROR_NOT_FOUND, "the engine has no input or output named '%s'", name);
    return -1;
}

const kiln_exprs *kiln_engine_exprs(const kiln_engine *e) { return e ? e->desc.exprs : NULL; }
int32_t kiln_engine_profile_count(const kiln_engine *e) { return e ? e->desc.profile_count : 0; }
int32_t kiln_engine_dim_count(const kiln_engine *e) { return e ? e->desc.dim_count : 0; }

kiln_status kiln_engine_dim_info(const kiln_engine *e, int32_t dim, const char **name, kiln_dim_range *ranges) {
    if (!e) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_dim_info: engine is NULL");
    if (dim < 0 || dim >= e->desc.dim_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_dim_info: dimension %d is outside [0, %d)", dim,
                          e->desc.dim_count);
    if (name) *name = e->desc.dims[dim].name;
    if (ranges) memcpy(ranges, e->desc.dims[dim].ranges, sizeof *ranges * (size_t)e->desc.profile_count);
    return KILN_OK;
}

int32_t kiln_engine_layer_count(const kiln_engine *e) { return e ? e->desc.layer_count : 0; }

kiln_status kiln_engine_layer_info(const kiln_engine *e, int32_t index, const char **kind, const char **detail,
                                   int32_t *input_count, const int32_t **inputs, int32_t *output_count,
                                   const int32_t **outputs) {
    if (!e) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_layer_info: engine is NULL");
    if (index < 0 || index >= e->desc.layer_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_layer_info: layer %d is outside [0, %d)", index,
                          e->desc.layer_count);
    const kiln_layer_record *l = &e->desc.layers[index];
    if (kind) *kind = kiln_op_name(l->op);
    if (detail) *detail = e->layer_details[index];
    if (input_count) *input_count = l->input_count;
    if (inputs) *inputs = l->inputs;
    if (output_count) *output_count = l->output_count;
    if (outputs) *outputs = l->outputs;
    return KILN_OK;
}

int32_t kiln_engine_tensor_count(const kiln_engine *e) { return e ? e->desc.tensor_count : 0; }

const char *kiln_engine_tensor_name(const kiln_engine *e, int32_t t) {
    return e && t >= 0 && t < e->desc.tensor_count ? e->desc.tensors[t].name : NULL;
}

kiln_status kiln_engine_tensor_info(const kiln_engine *e, int32_t t, kiln_dtype *dtype, int32_t *rank,
                                    kiln_expr *shape) {
    if (!e) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_tensor_info: engine is NULL");
    if (t < 0 || t >= e->desc.tensor_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_tensor_info: tensor %d is outside [0, %d)", t,
                          e->desc.tensor_count);
    const kiln_tensor_record *r = &e->desc.tensors[t];
    if (dtype) *dtype = (kiln_dtype)r->dtype;
    if (rank) *rank = r->rank;
    if (shape) memcpy(shape, r->shape, sizeof *shape * (size_t)r->rank);
    return KILN_OK;
}

uint64_t kiln_engine_arena_bytes(const kiln_engine *e) { return e ? e->desc.arena_bytes : 0; }
uint64_t kiln_engine_weight_bytes(const kiln_engine *e) { return e ? e->desc.weights_size : 0; }
uint32_t kiln_engine_format_version(const kiln_engine *e) { return e ? e->desc.format_version : 0; }

kiln_status kiln_engine_parallel(const kiln_engine *e, int32_t *rank, int32_t *world_size) {
    if (!e) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_parallel: engine is NULL");
    if (rank) *rank = e->desc.parallel.rank;
    if (world_size) *world_size = e->desc.parallel.world_size;
    return KILN_OK;
}
int32_t kiln_engine_plugin_count(const kiln_engine *e) { return e ? e->desc.plugin_count : 0; }

kiln_status kiln_engine_plugin_info(const kiln_engine *e, int32_t index, const char **ns, const char **name,
                                    const char **version, const char **module) {
    if (!e) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_info: engine is NULL");
    if (index < 0 || index >= e->desc.plugin_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_info: plugin %d is outside [0, %d)", index,
                          e->desc.plugin_count);
    const kiln_plugin_record *r = &e->desc.plugins[index];
    if (ns) *ns = r->plugin_namespace;
    if (name) *name = r->name;
    if (version) *version = r->version;
    if (module) *module = r->module;
    return KILN_OK;
}

kiln_status kiln_engine_plugin_fields(const kiln_engine *e, int32_t index, const kiln_value **fields) {
    if (!e || !fields) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_fields: NULL argument");
    if (index < 0 || index >= e->desc.plugin_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_fields: plugin %d is outside [0, %d)",
                          index, e->desc.plugin_count);
    *fields = e->plugin_fields[index];
    return KILN_OK;
}

kiln_status kiln_engine_plugin_flags(const kiln_engine *e, int32_t index, uint32_t *flags) {
    if (!e || !flags) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_flags: NULL argument");
    if (index < 0 || index >= e->desc.plugin_count)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_plugin_flags: plugin %d is outside [0, %d)", index,
                          e->desc.plugin_count);
    *flags = e->desc.plugins[index].flags;
    return KILN_OK;
}

int32_t kiln_engine_layer_plugin(const kiln_engine *e, int32_t layer) {
    if (!e || layer < 0 || layer >= e->desc.layer_count || e->desc.layers[layer].op != KILN_OP_PLUGIN) return -1;
    return e->desc.layers[layer].subop;
}

kiln_status kiln_engine_activation_bytes(const kiln_engine *e, int32_t profile, bool at_max, uint64_t *bytes) {
    if (!e || !bytes) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_activation_bytes: NULL argument");
    const kiln_engine_desc *d = &e->desc;
    if (profile < 0 || profile >= (d->profile_count ? d->profile_count : 1))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_engine_activation_bytes: profile %d is outside [0, %d)",
                          profile, d->profile_count ? d->profile_count : 1);
    size_t nt = d->tensor_count ? (size_t)d->tensor_count : 1;
    int64_t *dims = kiln_malloc(sizeof(int64_t) * (d->dim_count ? (size_t)d->dim_count : 1));
    int64_t *values = kiln_malloc(sizeof(int64_t) * (d->exprs->count ? d->exprs->count : 1));
    uint64_t *tensor_bytes = kiln_calloc(nt, sizeof *tensor_bytes);
    kiln_activation_plan plan = {0};
    kiln_status s = dims && values && tensor_bytes ? KILN_OK : kiln_error(KILN_ERROR_NO_MEMORY, "out of memory");
    for (int32_t i = 0; i < d->dim_count && !s; i++)
        dims[i] = at_max ? d->dims[i].ranges[profile].max : d->dims[i].ranges[profile].opt;
    if (!s) s = kiln_exprs_eval_all(d->exprs, dims, d->dim_count, values);
    for (int32_t t = 0; t < d->tensor_count && !s; t++) {
        const kiln_tensor_record *r = &d->tensors[t];
        if (r->kind != KILN_TENSOR_ACTIVATION) continue;
        uint64_t n = kiln_dtype_size((kiln_dtype)r->dtype);
        for (int32_t a = 0; a < r->rank && !s; a++) {
            int64_t v = values[r->shape[a]];
            if (v < 0 || __builtin_mul_overflow(n, (uint64_t)v, &n))
                s = kiln_error(KILN_ERROR_SHAPE, "tensor '%s' has no size at profile %d's %s", r->name, profile,
                               at_max ? "maxima" : "opt values");
        }
        tensor_bytes[t] = n;
    }
    if (!s) s = kiln_activation_plan_init(d, &plan);
    if (!s) s = kiln_activation_plan_place(&plan, tensor_bytes, bytes);
    kiln_activation_plan_clear(&plan);
    kiln_free(dims);
    kiln_free(values);
    kiln_free(tensor_bytes);
    return s;
}

int kiln_engine_input_is_written(const kiln_engine *e, const char *name) {
    if (!e || !name) return 0;
    const kiln_engine_desc *d = &e->desc;
    for (int32_t l = 0; l < d->layer_count; l++) {
        const kiln_layer_record *r = &d->layers[l];
        if (r->op != KILN_OP_PLUGIN) continue;
        for (int32_t k = 0; k < r->attrs.int_count; k++)
            if (r->attrs.ints[k] >= 0 && strcmp(d->tensors[r->inputs[r->attrs.ints[k]]].name, name) == 0) return 1;
    }
    return 0;
}
