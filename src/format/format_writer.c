/* format_writer.c — kiln_engine_desc → engine bytes.
 *
 * Two passes: the first sizes every section (overflow-checked, since the
 * format's fields have fixed widths), the second fills one zeroed buffer,
 * and kiln_format_seal computes the checksums.  The writer does not judge
 * the desc's meaning: that is the reader's job, and tests write bad descs
 * on purpose to prove the reader catches them.  Layout: header, section
 * table, then the sections in id order, each 8-aligned, weights last and
 * 64-aligned. */
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "format/byte_order.h"
#include "format/engine_format.h"
#include "format/format_layout.h"
#include "ops/op_table.h"

#define SECTION_COUNT (KILN_SECTION_ID_COUNT - 1)

typedef struct section_plan {
    uint64_t offset, size;
} section_plan;

typedef struct writer {
    const kiln_engine_desc *desc;
    section_plan sec[KILN_SECTION_ID_COUNT];   /* indexed by section id */
    uint64_t     index_count;                  /* layer input/output indices */
    uint64_t     fields_bytes;                 /* plugin fields */
    uint64_t     attr_ints, attr_exprs;        /* layer attribute words, over all layers */
    uint8_t     *buf;
    uint64_t     strings_used;                 /* next free byte of the strings section */
} writer;

/* *total += n; 0 on overflow of the format's 64-bit sizes. */
static int add_u64(uint64_t *total, uint64_t n) {
    if (n > UINT64_MAX - *total) return 0;
    *total += n;
    return 1;
}

static int add_mul_u64(uint64_t *total, uint64_t count, uint64_t item) {
    uint64_t n;
    if (__builtin_mul_overflow(count, item, &n)) return 0;
    return add_u64(total, n);
}

static uint64_t string_bytes(const char *s) { return (s ? (uint64_t)strlen(s) : 0) + 1; }

/* Reject what cannot be written at all: negative counts and missing arrays. */
static kiln_status check_shape_of_desc(const kiln_engine_desc *d) {
    struct { const char *what; int32_t count; const void *array; } counts[] = {
        {"dim", d->dim_count, d->dims},         {"tensor", d->tensor_count, d->tensors},
        {"layer", d->layer_count, d->layers},   {"plugin", d->plugin_count, d->plugins},
        {"check", d->check_count, d->checks},   {"io", d->io_count, d->io},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        if (counts[i].count < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %s count %d is negative",
                              counts[i].what, counts[i].count);
        if (counts[i].count > 0 && !counts[i].array)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %d %ss but the array is NULL",
                              counts[i].count, counts[i].what);
    }
    if (d->profile_count < 0)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: profile count %d is negative",
                          d->profile_count);
    for (int32_t i = 0; i < d->dim_count; i++)
        if (d->profile_count > 0 && !d->dims[i].ranges)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: dim %d has no ranges", i);
    for (int32_t i = 0; i < d->layer_count; i++) {
        const kiln_layer_record *l = &d->layers[i];
        if (l->input_count < 0 || l->output_count < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: layer %d has %d inputs and %d outputs",
                              i, l->input_count, l->output_count);
        if ((l->input_count && !l->inputs) || (l->output_count && !l->outputs))
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: layer %d index array is NULL", i);
    }
    for (int32_t i = 0; i < d->plugin_count; i++)
        if (d->plugins[i].fields_size && !d->plugins[i].fields)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: plugin %d fields are NULL", i);
    if (d->weights_size && !d->weights)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %llu weight bytes but weights is NULL",
                          (unsigned long long)d->weights_size);
    return KILN_OK;
}

/* Pass 1: the size of every section and where it goes. */
static kiln_status plan(writer *w, uint64_t *file_size) {
    const kiln_engine_desc *d = w->desc;
    uint64_t *size[KILN_SECTION_ID_COUNT];
    for (int id = 1; id < KILN_SECTION_ID_COUNT; id++) {
        size[id] = &w->sec[id].size;
        *size[id] = id == KILN_SECTION_STRINGS || id == KILN_SECTION_WEIGHTS ? 0 : KILN_FMT_SECTION_HEAD_SIZE;
    }
    int ok = 1;

    uint64_t strings = 0;
    for (int32_t i = 0; i < d->dim_count; i++) ok &= add_u64(&strings, string_bytes(d->dims[i].name));
    for (int32_t i = 0; i < d->tensor_count; i++) ok &= add_u64(&strings, string_bytes(d->tensors[i].name));
    for (int32_t i = 0; i < d->plugin_count; i++) {
        const kiln_plugin_record *p = &d->plugins[i];
        ok &= add_u64(&strings, string_bytes(p->plugin_namespace));
        ok &= add_u64(&strings, string_bytes(p->name));
        ok &= add_u64(&strings, string_bytes(p->version));
        ok &= add_u64(&strings, string_bytes(p->module));
        ok &= add_u64(&w->fields_bytes, p->fields_size);
    }
    for (int32_t i = 0; i < d->check_count; i++) ok &= add_u64(&strings, string_bytes(d->checks[i].message));
    /* String references are 32-bit offsets. */
    if (!ok || strings > UINT32_MAX)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: strings exceed the format's 4 GiB limit");
    *size[KILN_SECTION_STRINGS] = strings;

    uint64_t expr_count = d->exprs ? d->exprs->count : 0;
    if (expr_count > INT32_MAX)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %llu expression nodes (at most %d)",
                          (unsigned long long)expr_count, INT32_MAX);
    for (int32_t i = 0; i < d->layer_count; i++)
        w->index_count += (uint64_t)d->layers[i].input_count + (uint64_t)d->layers[i].output_count;
    if (w->index_count > UINT32_MAX)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %llu layer indices (at most %u)",
                          (unsigned long long)w->index_count, UINT32_MAX);

    ok &= add_mul_u64(size[KILN_SECTION_DIMS], (uint64_t)d->dim_count, KILN_FMT_DIM_SIZE);
    uint64_t range_count;
    ok &= !__builtin_mul_overflow((uint64_t)d->dim_count, (uint64_t)d->profile_count, &range_count);
    ok &= add_mul_u64(size[KILN_SECTION_DIMS], range_count, KILN_FMT_RANGE_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_EXPRS], expr_count, KILN_FMT_EXPR_NODE_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_TENSORS], (uint64_t)d->tensor_count, KILN_FMT_TENSOR_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_LAYERS], (uint64_t)d->layer_count, KILN_FMT_LAYER_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_LAYERS], w->index_count, KILN_FMT_INDEX_SIZE);
    /* Version 2: the attribute lists after the index list (8-aligned). */
    for (int32_t i = 0; i < d->layer_count; i++) {
        const kiln_layer_attrs *a = &d->layers[i].attrs;
        if (a->int_count < 0 || a->int_count > KILN_MAX_LAYER_INTS || a->expr_count < 0 ||
            a->expr_count > KILN_MAX_LAYER_EXPRS)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: layer %d has %d integer and %d "
                              "expression attributes (at most %d and %d)", (int)i, (int)a->int_count,
                              (int)a->expr_count, KILN_MAX_LAYER_INTS, KILN_MAX_LAYER_EXPRS);
        w->attr_ints += (uint64_t)a->int_count;
        w->attr_exprs += (uint64_t)a->expr_count;
    }
    ok &= add_u64(size[KILN_SECTION_LAYERS], (8 - *size[KILN_SECTION_LAYERS] % 8) % 8);
    ok &= add_mul_u64(size[KILN_SECTION_LAYERS], (uint64_t)d->layer_count, KILN_FMT_LAYER_ATTR_COUNTS_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_LAYERS], w->attr_ints, KILN_FMT_INT_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_LAYERS], w->attr_exprs, KILN_FMT_INDEX_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_PLUGINS], (uint64_t)d->plugin_count, KILN_FMT_PLUGIN_SIZE);
    ok &= add_u64(size[KILN_SECTION_PLUGINS], w->fields_bytes);
    ok &= add_mul_u64(size[KILN_SECTION_CHECKS], (uint64_t)d->check_count, KILN_FMT_CHECK_SIZE);
    ok &= add_mul_u64(size[KILN_SECTION_IO], (uint64_t)d->io_count, KILN_FMT_INDEX_SIZE);
    *size[KILN_SECTION_WEIGHTS] = d->weights_size;

    uint64_t at = KILN_FORMAT_HEADER_SIZE + SECTION_COUNT * KILN_FMT_SECTION_ENTRY_SIZE;
    for (int id = 1; ok && id < KILN_SECTION_ID_COUNT; id++) {
        uint64_t align = id == KILN_SECTION_WEIGHTS ? KILN_FORMAT_WEIGHTS_ALIGN : KILN_FORMAT_SECTION_ALIGN;
        ok &= add_u64(&at, (align - at % align) % align);
        w->sec[id].offset = at;
        ok &= add_u64(&at, w->sec[id].size);
    }
    if (!ok || at > SIZE_MAX)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: the engine does not fit in memory");
    *file_size = at;
    return KILN_OK;
}

/* Copy s (NULL as "") into the strings section; write its reference at ref. */
static void put_string(writer *w, uint8_t *ref, const char *s) {
    size_t len = s ? strlen(s) : 0;
    uint8_t *dst = w->buf + w->sec[KILN_SECTION_STRINGS].offset + w->strings_used;
    if (len) memcpy(dst, s, len);
    dst[len] = 0;
    kiln_store_u32le(ref, (uint32_t)w->strings_used);
    kiln_store_u32le(ref + 4, (uint32_t)len);
    w->strings_used += len + 1;
}

static uint8_t *section(writer *w, int id) { return w->buf + w->sec[id].offset; }

static void write_header(writer *w, uint64_t file_size) {
    uint8_t *h = w->buf;
    static const uint8_t sizes[KILN_FORMAT_SIZES_COUNT] = {
        KILN_FMT_INT_SIZE, KILN_FMT_INDEX_SIZE, KILN_FMT_FLOAT_SIZE, KILN_FMT_SECTION_ENTRY_SIZE,
        KILN_FMT_EXPR_NODE_SIZE, KILN_FMT_DIM_SIZE, KILN_FMT_TENSOR_SIZE, KILN_FMT_LAYER_SIZE,
        KILN_FMT_PLUGIN_SIZE, KILN_FMT_CHECK_SIZE,
    };
    double sample = KILN_FORMAT_SAMPLE_FLOAT;
    uint64_t sample_bits;
    memcpy(&sample_bits, &sample, sizeof sample_bits);

    /* Version 3 only for an engine that is not rank 0 of 1 (engine_format.h);
     * a zeroed desc's world size 0 is 1.  Other values are written as they
     * are: the reader judges them. */
    const kiln_parallel_record *par = &w->desc->parallel;
    int parallel = par->rank != 0 || par->world_size > 1 || par->world_size < 0;
    memcpy(h + KILN_HDR_MAGIC, KILN_FORMAT_MAGIC, KILN_FORMAT_MAGIC_SIZE);
    kiln_store_u32le(h + KILN_HDR_VERSION, parallel ? KILN_FORMAT_VERSION_PARALLEL : 2);
    if (parallel) {
        kiln_store_u32le(h + KILN_HDR_RANK, (uint32_t)par->rank);
        kiln_store_u32le(h + KILN_HDR_WORLD_SIZE, (uint32_t)par->world_size);
    }
    kiln_store_u32le(h + KILN_HDR_HEADER_SIZE, KILN_FORMAT_HEADER_SIZE);
    memcpy(h + KILN_HDR_CHECK_BYTES, KILN_FORMAT_CHECK_BYTES, KILN_FORMAT_CHECK_BYTES_SIZE);
    memcpy(h + KILN_HDR_SIZES, sizes, sizeof sizes);
    kiln_store_u64le(h + KILN_HDR_SAMPLE_INT, KILN_FORMAT_SAMPLE_INT);
    kiln_store_u64le(h + KILN_HDR_SAMPLE_FLOAT, sample_bits);
    kiln_store_u64le(h + KILN_HDR_FILE_SIZE, file_size);
    kiln_store_u64le(h + KILN_HDR_TABLE_OFFSET, KILN_FORMAT_HEADER_SIZE);
    kiln_store_u32le(h + KILN_HDR_SECTION_COUNT, SECTION_COUNT);
    kiln_store_u64le(h + KILN_HDR_ARENA_BYTES, w->desc->arena_bytes);

    for (int id = 1; id < KILN_SECTION_ID_COUNT; id++) {
        uint8_t *e = h + KILN_FORMAT_HEADER_SIZE + (size_t)(id - 1) * KILN_FMT_SECTION_ENTRY_SIZE;
        kiln_store_u32le(e + KILN_SEC_ID, (uint32_t)id);
        kiln_store_u64le(e + KILN_SEC_OFFSET, w->sec[id].offset);
        kiln_store_u64le(e + KILN_SEC_SIZE, w->sec[id].size);
    }
}

static void write_dims(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_DIMS);
    kiln_store_u32le(s, (uint32_t)d->dim_count);
    kiln_store_u32le(s + 4, (uint32_t)d->profile_count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    uint8_t *range = rec + (size_t)d->dim_count * KILN_FMT_DIM_SIZE;
    for (int32_t i = 0; i < d->dim_count; i++, rec += KILN_FMT_DIM_SIZE) {
        put_string(w, rec, d->dims[i].name);
        for (int32_t p = 0; p < d->profile_count; p++, range += KILN_FMT_RANGE_SIZE) {
            kiln_store_i64le(range, d->dims[i].ranges[p].min);
            kiln_store_i64le(range + 8, d->dims[i].ranges[p].opt);
            kiln_store_i64le(range + 16, d->dims[i].ranges[p].max);
        }
    }
}

static void write_exprs(writer *w) {
    const kiln_exprs *pool = w->desc->exprs;
    size_t count = pool ? pool->count : 0;
    uint8_t *s = section(w, KILN_SECTION_EXPRS);
    kiln_store_u32le(s, (uint32_t)count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    for (size_t i = 0; i < count; i++, rec += KILN_FMT_EXPR_NODE_SIZE) {
        const kiln_expr_node *n = &pool->nodes[i];
        rec[KILN_EXPR_OFF_OP] = n->op;
        kiln_store_i32le(rec + KILN_EXPR_OFF_A, n->a);
        kiln_store_i32le(rec + KILN_EXPR_OFF_B, n->b);
        kiln_store_i64le(rec + KILN_EXPR_OFF_VALUE, n->value);
    }
}

static void write_tensors(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_TENSORS);
    kiln_store_u32le(s, (uint32_t)d->tensor_count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    for (int32_t i = 0; i < d->tensor_count; i++, rec += KILN_FMT_TENSOR_SIZE) {
        const kiln_tensor_record *t = &d->tensors[i];
        put_string(w, rec + KILN_TENSOR_OFF_NAME, t->name);
        rec[KILN_TENSOR_OFF_KIND] = t->kind;
        rec[KILN_TENSOR_OFF_DTYPE] = t->dtype;
        kiln_store_u32le(rec + KILN_TENSOR_OFF_RANK, (uint32_t)t->rank);
        for (int32_t k = 0; k < KILN_MAX_RANK; k++)
            kiln_store_i32le(rec + KILN_TENSOR_OFF_SHAPE + 4 * k, k < t->rank ? t->shape[k] : KILN_EXPR_INVALID);
        /* Inputs and outputs live in caller buffers: their offset and size mean nothing. */
        int placed = t->kind != KILN_TENSOR_INPUT && t->kind != KILN_TENSOR_OUTPUT;
        kiln_store_u64le(rec + KILN_TENSOR_OFF_OFFSET, placed ? t->offset : 0);
        kiln_store_u64le(rec + KILN_TENSOR_OFF_SIZE, placed ? t->size : 0);
    }
}

static void write_layers(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_LAYERS);
    kiln_store_u32le(s, (uint32_t)d->layer_count);
    kiln_store_u32le(s + 4, (uint32_t)w->index_count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    uint8_t *idx = rec + (size_t)d->layer_count * KILN_FMT_LAYER_SIZE;
    uint32_t first = 0;
    for (int32_t i = 0; i < d->layer_count; i++, rec += KILN_FMT_LAYER_SIZE) {
        const kiln_layer_record *l = &d->layers[i];
        /* Ops past KILN_OP_COUNT: written as given (the tests' way to make
         * engines that a reader must refuse). */
        int has_subop = l->op >= KILN_OP_COUNT || kiln_op_has_subop(l->op);
        int has_axis = l->op >= KILN_OP_COUNT || kiln_op_has_axis(l->op);
        rec[KILN_LAYER_OFF_OP] = l->op;
        kiln_store_i32le(rec + KILN_LAYER_OFF_SUBOP, has_subop ? l->subop : 0);
        kiln_store_i64le(rec + KILN_LAYER_OFF_AXIS, has_axis ? l->axis : 0);
        kiln_store_u32le(rec + KILN_LAYER_OFF_INPUT_COUNT, (uint32_t)l->input_count);
        kiln_store_u32le(rec + KILN_LAYER_OFF_OUTPUT_COUNT, (uint32_t)l->output_count);
        kiln_store_u32le(rec + KILN_LAYER_OFF_FIRST_INDEX, first);
        kiln_store_i32le(rec + KILN_LAYER_OFF_WORKSPACE, l->workspace);
        for (int32_t k = 0; k < l->input_count; k++, idx += 4) kiln_store_i32le(idx, l->inputs[k]);
        for (int32_t k = 0; k < l->output_count; k++, idx += 4) kiln_store_i32le(idx, l->outputs[k]);
        first += (uint32_t)l->input_count + (uint32_t)l->output_count;
    }
    /* The attribute lists: per layer (u32 int_count, u32 expr_count), then
     * every layer's integers, then every layer's expression ids. */
    size_t at = (size_t)(idx - s);
    uint8_t *counts = s + at + (8 - at % 8) % 8;   /* the padding is zero: the buffer starts zeroed */
    uint8_t *ints = counts + (size_t)d->layer_count * KILN_FMT_LAYER_ATTR_COUNTS_SIZE;
    uint8_t *exprs = ints + (size_t)w->attr_ints * KILN_FMT_INT_SIZE;
    for (int32_t i = 0; i < d->layer_count; i++, counts += KILN_FMT_LAYER_ATTR_COUNTS_SIZE) {
        const kiln_layer_attrs *a = &d->layers[i].attrs;
        kiln_store_u32le(counts, (uint32_t)a->int_count);
        kiln_store_u32le(counts + 4, (uint32_t)a->expr_count);
        for (int32_t k = 0; k < a->int_count; k++, ints += KILN_FMT_INT_SIZE) kiln_store_i64le(ints, a->ints[k]);
        for (int32_t k = 0; k < a->expr_count; k++, exprs += KILN_FMT_INDEX_SIZE) kiln_store_i32le(exprs, a->exprs[k]);
    }
}

static void write_plugins(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_PLUGINS);
    kiln_store_u32le(s, (uint32_t)d->plugin_count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    uint8_t *fields = rec + (size_t)d->plugin_count * KILN_FMT_PLUGIN_SIZE;
    uint64_t at = 0;
    for (int32_t i = 0; i < d->plugin_count; i++, rec += KILN_FMT_PLUGIN_SIZE) {
        const kiln_plugin_record *p = &d->plugins[i];
        put_string(w, rec + KILN_PLUGIN_OFF_NAMESPACE, p->plugin_namespace);
        put_string(w, rec + KILN_PLUGIN_OFF_NAME, p->name);
        put_string(w, rec + KILN_PLUGIN_OFF_VERSION, p->version);
        put_string(w, rec + KILN_PLUGIN_OFF_MODULE, p->module);
        kiln_store_u32le(rec + KILN_PLUGIN_OFF_FLAGS, p->flags);
        kiln_store_u64le(rec + KILN_PLUGIN_OFF_FIELDS_OFFSET, at);
        kiln_store_u64le(rec + KILN_PLUGIN_OFF_FIELDS_SIZE, p->fields_size);
        if (p->fields_size) memcpy(fields + at, p->fields, p->fields_size);
        at += p->fields_size;
    }
}

static void write_checks(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_CHECKS);
    kiln_store_u32le(s, (uint32_t)d->check_count);
    uint8_t *rec = s + KILN_FMT_SECTION_HEAD_SIZE;
    for (int32_t i = 0; i < d->check_count; i++, rec += KILN_FMT_CHECK_SIZE) {
        kiln_store_i32le(rec + KILN_CHECK_OFF_COND, d->checks[i].cond);
        put_string(w, rec + KILN_CHECK_OFF_MESSAGE, d->checks[i].message);
    }
}

static void write_io(writer *w) {
    const kiln_engine_desc *d = w->desc;
    uint8_t *s = section(w, KILN_SECTION_IO);
    kiln_store_u32le(s, (uint32_t)d->io_count);
    for (int32_t i = 0; i < d->io_count; i++)
        kiln_store_i32le(s + KILN_FMT_SECTION_HEAD_SIZE + 4 * (size_t)i, d->io[i]);
}

kiln_status kiln_format_write(const kiln_engine_desc *desc, uint8_t **out, size_t *out_size) {
    if (out) *out = NULL;
    if (out_size) *out_size = 0;
    if (!desc || !out || !out_size)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_write: %s is NULL",
                          !desc ? "desc" : !out ? "out" : "out_size");
    kiln_status st = check_shape_of_desc(desc);
    if (st != KILN_OK) return st;

    writer w;
    memset(&w, 0, sizeof w);
    w.desc = desc;
    uint64_t file_size = 0;
    if ((st = plan(&w, &file_size)) != KILN_OK) return st;

    w.buf = kiln_aligned_alloc((size_t)file_size);
    if (!w.buf)
        return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory writing an engine of %llu bytes",
                          (unsigned long long)file_size);
    memset(w.buf, 0, (size_t)file_size);   /* padding and reserved fields are zero */

    write_header(&w, file_size);
    write_dims(&w);
    write_exprs(&w);
    write_tensors(&w);
    write_layers(&w);
    write_plugins(&w);
    write_checks(&w);
    write_io(&w);
    if (desc->weights_size) memcpy(section(&w, KILN_SECTION_WEIGHTS), desc->weights, desc->weights_size);
    if (!kiln_format_seal(w.buf, (size_t)file_size)) {
        kiln_aligned_free(w.buf);
        return kiln_error(KILN_ERROR_NO_MEMORY, "writing engine: out of memory for the weights checksum");
    }

    *out = w.buf;
    *out_size = (size_t)file_size;
    return KILN_OK;
}
