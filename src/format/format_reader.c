/* format_reader.c — engine bytes → kiln_engine_desc, trusting nothing.
 *
 * The order of the checks is the order in which each one becomes possible:
 *   1. the stable prefix (magic, header size) and the header checksum, so
 *      that a flipped bit anywhere in the header reads as corruption;
 *   2. the format version (a newer one is KILN_ERROR_VERSION, not CORRUPT);
 *   3. the rest of the header: check block, sizes, samples, file size;
 *   4. the section table: its checksum, then each entry's bounds, order,
 *      alignment and checksum, and that every byte between regions is zero;
 *   5. each section's records: exact sizes, string references, reserved
 *      bytes, canonical zeros (so every byte of a file has one meaning);
 *   6. the desc's meaning (kiln_format_check_desc);
 *   7. every built-in layer against its op's rule (kiln_format_verify_layers).
 * All arithmetic on values from the file is done in uint64_t after checking
 * that it cannot overflow; every failure names what is wrong. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/section_checksum.h"
#include "format/engine_format.h"
#include "format/format_layout.h"
#include "ops/op_table.h"

typedef struct reader {
    const uint8_t *data;
    size_t         size;
    const uint8_t *sec[KILN_SECTION_ID_COUNT];    /* known sections, by id */
    uint64_t       sec_size[KILN_SECTION_ID_COUNT];
    uint32_t       version;                        /* the file's format version */
} reader;

#define CORRUPT(...) kiln_error(KILN_ERROR_CORRUPT, __VA_ARGS__)

static kiln_status no_memory(const char *what) {
    return kiln_error(KILN_ERROR_NO_MEMORY, "out of memory loading the engine's %s", what);
}

/* Offset of the first non-zero byte in [p, p+n), or n. */
static size_t first_nonzero(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return i;
    return n;
}

/* Padding between regions must be zero, so that no byte escapes every check. */
static kiln_status check_padding(const reader *r, uint64_t from, uint64_t to) {
    size_t bad = first_nonzero(r->data + from, (size_t)(to - from));
    if (bad < to - from)
        return CORRUPT("padding byte at offset %" PRIu64 " is 0x%02x, not zero", from + bad, r->data[from + bad]);
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Header                                                                   */
/* ------------------------------------------------------------------------ */

static kiln_status check_prefix_and_checksum(const reader *r) {
    const uint8_t *h = r->data;
    size_t magic_len = r->size < KILN_FORMAT_MAGIC_SIZE ? r->size : KILN_FORMAT_MAGIC_SIZE;
    if (magic_len && memcmp(h, KILN_FORMAT_MAGIC, magic_len) != 0)
        return CORRUPT("not a kiln engine: the file does not start with \"KILN\"");
    if (r->size < KILN_FORMAT_PREFIX_SIZE)
        return CORRUPT("engine is truncated: %zu bytes, less than the %d-byte format prefix", r->size,
                       KILN_FORMAT_PREFIX_SIZE);
    uint32_t header_size = kiln_load_u32le(h + KILN_HDR_HEADER_SIZE);
    if (header_size < KILN_FORMAT_MIN_HEADER_SIZE || header_size % 8 != 0)
        return CORRUPT("header size %" PRIu32 " is invalid (a multiple of 8, at least %d)", header_size,
                       KILN_FORMAT_MIN_HEADER_SIZE);
    if (header_size > r->size)
        return CORRUPT("engine is truncated: %zu bytes, but the header alone is %" PRIu32 " bytes", r->size,
                       header_size);
    uint64_t stored = kiln_load_u64le(h + header_size - 8);
    uint64_t computed = kiln_checksum(h, header_size - 8);
    if (stored != computed)
        return CORRUPT("header checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")", stored,
                       computed);
    return KILN_OK;
}

static kiln_status check_header(const reader *r) {
    const uint8_t *h = r->data;
    uint32_t version = kiln_load_u32le(h + KILN_HDR_VERSION);
    if (version == 0) return CORRUPT("format version 0 is invalid");
    if (version > KILN_FORMAT_VERSION)
        return kiln_error(KILN_ERROR_VERSION,
                          "engine format version %" PRIu32 " is newer than this kiln reads (format version %d): "
                          "rebuild the engine with this kiln, or upgrade kiln", version, KILN_FORMAT_VERSION);
    uint32_t header_size = kiln_load_u32le(h + KILN_HDR_HEADER_SIZE);
    if (header_size != KILN_FORMAT_HEADER_SIZE)
        return CORRUPT("header size is %" PRIu32 ", format version %" PRIu32 " has %d", header_size, version,
                       KILN_FORMAT_HEADER_SIZE);
    if (kiln_load_u32le(h + KILN_HDR_FLAGS) != 0)
        return CORRUPT("header flags are 0x%08" PRIx32 ", must be 0", kiln_load_u32le(h + KILN_HDR_FLAGS));
    if (memcmp(h + KILN_HDR_CHECK_BYTES, KILN_FORMAT_CHECK_BYTES, KILN_FORMAT_CHECK_BYTES_SIZE) != 0)
        return CORRUPT("header check bytes are mangled (was the file copied in text mode?)");

    static const struct { const char *what; uint8_t size; } sizes[KILN_FORMAT_SIZES_COUNT] = {
        {"integer", KILN_FMT_INT_SIZE},           {"index", KILN_FMT_INDEX_SIZE},
        {"float", KILN_FMT_FLOAT_SIZE},           {"section entry", KILN_FMT_SECTION_ENTRY_SIZE},
        {"expression node", KILN_FMT_EXPR_NODE_SIZE}, {"dim record", KILN_FMT_DIM_SIZE},
        {"tensor record", KILN_FMT_TENSOR_SIZE},  {"layer record", KILN_FMT_LAYER_SIZE},
        {"plugin record", KILN_FMT_PLUGIN_SIZE},  {"check record", KILN_FMT_CHECK_SIZE},
    };
    for (int i = 0; i < KILN_FORMAT_SIZES_COUNT; i++)
        if (h[KILN_HDR_SIZES + i] != sizes[i].size)
            return CORRUPT("header size block: %s size is %u bytes, this kiln's is %u", sizes[i].what,
                           h[KILN_HDR_SIZES + i], sizes[i].size);

    uint64_t sample_int = kiln_load_u64le(h + KILN_HDR_SAMPLE_INT);
    if (sample_int != KILN_FORMAT_SAMPLE_INT)
        return CORRUPT("header sample integer is 0x%016" PRIx64 ", want 0x%016" PRIx64 " (byte order mismatch)",
                       sample_int, KILN_FORMAT_SAMPLE_INT);
    uint64_t sample_bits = kiln_load_u64le(h + KILN_HDR_SAMPLE_FLOAT);
    double sample_float;
    memcpy(&sample_float, &sample_bits, sizeof sample_float);
    if (sample_float != KILN_FORMAT_SAMPLE_FLOAT)
        return CORRUPT("header sample float has bits 0x%016" PRIx64 ", not %.1f (float format mismatch)",
                       sample_bits, KILN_FORMAT_SAMPLE_FLOAT);
    if (kiln_load_u32le(h + KILN_HDR_RESERVED0) != 0)
        return CORRUPT("header reserved bytes are not zero");
    if (version < KILN_FORMAT_VERSION_PARALLEL) {
        if (first_nonzero(h + KILN_HDR_RESERVED1, KILN_HDR_RESERVED1_SIZE) != KILN_HDR_RESERVED1_SIZE)
            return CORRUPT("header reserved bytes are not zero");
    } else {
        /* The parallel record: a rank of a group of a sane size. */
        uint32_t rank = kiln_load_u32le(h + KILN_HDR_RANK), world = kiln_load_u32le(h + KILN_HDR_WORLD_SIZE);
        if (world < 1 || world > KILN_MAX_WORLD_SIZE)
            return CORRUPT("header parallel record: world size %" PRIu32 " is outside [1, %d]", world,
                           KILN_MAX_WORLD_SIZE);
        if (rank >= world)
            return CORRUPT("header parallel record: rank %" PRIu32 " is not below the world size %" PRIu32, rank,
                           world);
        if (first_nonzero(h + KILN_HDR_RESERVED2, KILN_HDR_RESERVED2_SIZE) != KILN_HDR_RESERVED2_SIZE)
            return CORRUPT("header reserved bytes are not zero");
    }

    uint64_t file_size = kiln_load_u64le(h + KILN_HDR_FILE_SIZE);
    if (r->size < file_size)
        return CORRUPT("engine is truncated: file size %zu but header says %" PRIu64, r->size, file_size);
    if (r->size > file_size)
        return CORRUPT("engine has %" PRIu64 " bytes of trailing data: file size %zu but header says %" PRIu64,
                       (uint64_t)r->size - file_size, r->size, file_size);
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Section table                                                            */
/* ------------------------------------------------------------------------ */

static kiln_status load_sections(reader *r, uint32_t flags) {
    const uint8_t *h = r->data;
    uint64_t size = r->size;
    uint64_t table = kiln_load_u64le(h + KILN_HDR_TABLE_OFFSET);
    uint64_t count = kiln_load_u32le(h + KILN_HDR_SECTION_COUNT);
    uint64_t table_bytes = count * KILN_FMT_SECTION_ENTRY_SIZE;   /* < 2^37: no overflow */
    if (table < KILN_FORMAT_HEADER_SIZE || table % KILN_FORMAT_SECTION_ALIGN != 0)
        return CORRUPT("section table offset %" PRIu64 " is invalid (8-aligned, after the header)", table);
    if (table > size || table_bytes > size - table)
        return CORRUPT("section table (%" PRIu64 " entries at offset %" PRIu64 ") runs past the end of the "
                       "%" PRIu64 "-byte engine", count, table, size);
    uint64_t stored = kiln_load_u64le(h + KILN_HDR_TABLE_CHECKSUM);
    uint64_t computed = kiln_checksum(h + table, (size_t)table_bytes);
    if (stored != computed)
        return CORRUPT("section table checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
                       stored, computed);
    kiln_status st = check_padding(r, KILN_FORMAT_HEADER_SIZE, table);
    if (st != KILN_OK) return st;

    /* Sections are listed by increasing offset and do not overlap; the bytes
     * between them (and after the last) are zero padding. */
    uint64_t end = table + table_bytes;
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *e = h + table + i * KILN_FMT_SECTION_ENTRY_SIZE;
        uint32_t id = kiln_load_u32le(e + KILN_SEC_ID);
        uint32_t sflags = kiln_load_u32le(e + KILN_SEC_FLAGS);
        uint64_t offset = kiln_load_u64le(e + KILN_SEC_OFFSET);
        uint64_t length = kiln_load_u64le(e + KILN_SEC_SIZE);
        const char *name = kiln_format_section_name(id);
        char unknown[32];
        if (!name) {
            snprintf(unknown, sizeof unknown, "%" PRIu32, id);
            name = unknown;
        }
        if (sflags & ~KILN_SECTION_OPTIONAL)
            return CORRUPT("section '%s' has unknown flags 0x%08" PRIx32, name, sflags);
        if (kiln_format_section_name(id)) {
            if (sflags) return CORRUPT("section '%s' is marked optional but is required", name);
            if (r->sec[id]) return CORRUPT("section '%s' appears twice in the section table", name);
        } else if (!(sflags & KILN_SECTION_OPTIONAL)) {
            return CORRUPT("section %" PRIu32 " is unknown to this kiln and not marked optional", id);
        }
        uint64_t align = id == KILN_SECTION_WEIGHTS ? KILN_FORMAT_WEIGHTS_ALIGN : KILN_FORMAT_SECTION_ALIGN;
        if (offset % align != 0)
            return CORRUPT("section '%s' offset %" PRIu64 " is not %" PRIu64 "-byte aligned", name, offset, align);
        if (offset < end)
            return CORRUPT("section '%s' at offset %" PRIu64 " overlaps what precedes it (which ends at %" PRIu64 ")",
                           name, offset, end);
        if (offset > size || length > size - offset)
            return CORRUPT("section '%s' (offset %" PRIu64 ", size %" PRIu64 ") runs past the end of the "
                           "%" PRIu64 "-byte engine", name, offset, length, size);
        if ((st = check_padding(r, end, offset)) != KILN_OK) return st;
        end = offset + length;

        int skip = id == KILN_SECTION_WEIGHTS && (flags & KILN_LOAD_SKIP_WEIGHT_CHECKSUM);
        if (!skip) {
            stored = kiln_load_u64le(e + KILN_SEC_CHECKSUM);
            if (!kiln_section_checksum(h + offset, (size_t)length, &computed))
                return kiln_error(KILN_ERROR_NO_MEMORY, "loading engine: out of memory checking section '%s'", name);
            if (stored != computed)
                return CORRUPT("section '%s' checksum mismatch (stored 0x%016" PRIx64 ", computed 0x%016" PRIx64 ")",
                               name, stored, computed);
        }
        if (kiln_format_section_name(id)) {
            r->sec[id] = h + offset;
            r->sec_size[id] = length;
        }
    }
    if ((st = check_padding(r, end, size)) != KILN_OK) return st;
    for (uint32_t id = 1; id < KILN_SECTION_ID_COUNT; id++)
        if (!r->sec[id]) return CORRUPT("section '%s' is missing", kiln_format_section_name(id));
    return KILN_OK;
}

/* ------------------------------------------------------------------------ */
/* Section contents                                                         */
/* ------------------------------------------------------------------------ */

/* A section of a head (count, second word) and count records of rec_size,
 * then extra_per * extra bytes: check its size is exactly that. */
static kiln_status section_head(const reader *r, int id, uint64_t rec_size, uint32_t *count, uint32_t *second) {
    const char *name = kiln_format_section_name((uint32_t)id);
    if (r->sec_size[id] < KILN_FMT_SECTION_HEAD_SIZE)
        return CORRUPT("section '%s' is %" PRIu64 " bytes, too small for its count", name, r->sec_size[id]);
    *count = kiln_load_u32le(r->sec[id]);
    *second = kiln_load_u32le(r->sec[id] + 4);
    if (*count > INT32_MAX) return CORRUPT("section '%s' count %" PRIu32 " is too large", name, *count);
    if ((uint64_t)*count * rec_size > r->sec_size[id] - KILN_FMT_SECTION_HEAD_SIZE)
        return CORRUPT("section '%s' is %" PRIu64 " bytes, too small for its %" PRIu32 " records", name,
                       r->sec_size[id], *count);
    return KILN_OK;
}

static kiln_status exact_size(const reader *r, int id, uint64_t want) {
    if (r->sec_size[id] != want)
        return CORRUPT("section '%s' is %" PRIu64 " bytes, its contents need %" PRIu64,
                       kiln_format_section_name((uint32_t)id), r->sec_size[id], want);
    return KILN_OK;
}

static kiln_status zero_word(uint32_t value, const char *what) {
    if (value != 0) return CORRUPT("%s is %" PRIu32 ", must be 0", what, value);
    return KILN_OK;
}

/* Copy the string a reference at ref names into *out (fresh allocation).
 * The string must lie inside the strings section, end with NUL and hold none.
 * fmt and index name the reference in messages ("tensor %d name"). */
static kiln_status read_string(const reader *r, const uint8_t *ref, char **out, const char *fmt, int32_t index) {
    uint64_t offset = kiln_load_u32le(ref), length = kiln_load_u32le(ref + 4);
    uint64_t avail = r->sec_size[KILN_SECTION_STRINGS];
    const char *problem = NULL;
    if (offset >= avail || length >= avail - offset)   /* length + the NUL must fit */
        problem = "runs past the end of the strings section";
    else if (r->sec[KILN_SECTION_STRINGS][offset + length] != 0)
        problem = "is not NUL-terminated";
    else if (memchr(r->sec[KILN_SECTION_STRINGS] + offset, 0, (size_t)length))
        problem = "contains a NUL byte";
    if (problem) {
        char what[64];
        snprintf(what, sizeof what, fmt, index);
        return CORRUPT("%s (offset %" PRIu64 ", length %" PRIu64 ") %s (%" PRIu64 " bytes)", what, offset, length,
                       problem, avail);
    }
    *out = kiln_malloc((size_t)length + 1);
    if (!*out) return no_memory("strings");
    memcpy(*out, r->sec[KILN_SECTION_STRINGS] + offset, (size_t)length + 1);
    return KILN_OK;
}

static kiln_status read_dims(const reader *r, kiln_engine_desc *d) {
    uint32_t count, profiles;
    kiln_status st = section_head(r, KILN_SECTION_DIMS, KILN_FMT_DIM_SIZE, &count, &profiles);
    if (st != KILN_OK) return st;
    if (profiles > INT32_MAX) return CORRUPT("profile count %" PRIu32 " is too large", profiles);
    uint64_t ranges;
    if (__builtin_mul_overflow((uint64_t)count, (uint64_t)profiles, &ranges) || ranges > r->sec_size[KILN_SECTION_DIMS])
        return CORRUPT("section 'dims' is %" PRIu64 " bytes, too small for %" PRIu32 " dims x %" PRIu32 " profiles",
                       r->sec_size[KILN_SECTION_DIMS], count, profiles);
    uint64_t want = KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_DIM_SIZE + ranges * KILN_FMT_RANGE_SIZE;
    if ((st = exact_size(r, KILN_SECTION_DIMS, want)) != KILN_OK) return st;

    d->profile_count = (int32_t)profiles;
    if (!count) return KILN_OK;
    d->dims = kiln_calloc(count, sizeof *d->dims);
    if (!d->dims) return no_memory("dims");
    d->dim_count = (int32_t)count;
    const uint8_t *rec = r->sec[KILN_SECTION_DIMS] + KILN_FMT_SECTION_HEAD_SIZE;
    const uint8_t *range = rec + (size_t)count * KILN_FMT_DIM_SIZE;
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_DIM_SIZE) {
        kiln_dim_record *dim = &d->dims[i];
        if ((st = read_string(r, rec, &dim->name, "dim %d name", (int32_t)i)) != KILN_OK) return st;
        if (!profiles) continue;
        dim->ranges = kiln_malloc((size_t)profiles * sizeof *dim->ranges);
        if (!dim->ranges) return no_memory("dim ranges");
        for (uint32_t p = 0; p < profiles; p++, range += KILN_FMT_RANGE_SIZE) {
            dim->ranges[p].min = kiln_load_i64le(range);
            dim->ranges[p].opt = kiln_load_i64le(range + 8);
            dim->ranges[p].max = kiln_load_i64le(range + 16);
        }
    }
    return KILN_OK;
}

static kiln_status read_exprs(const reader *r, kiln_engine_desc *d) {
    uint32_t count, second;
    kiln_status st = section_head(r, KILN_SECTION_EXPRS, KILN_FMT_EXPR_NODE_SIZE, &count, &second);
    if (st != KILN_OK) return st;
    if ((st = zero_word(second, "section 'exprs' reserved word")) != KILN_OK) return st;
    if ((st = exact_size(r, KILN_SECTION_EXPRS, KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_EXPR_NODE_SIZE))
        != KILN_OK) return st;

    kiln_expr_node *nodes = NULL;
    if (count) {
        nodes = kiln_malloc((size_t)count * sizeof *nodes);
        if (!nodes) return no_memory("expression program");
    }
    const uint8_t *rec = r->sec[KILN_SECTION_EXPRS] + KILN_FMT_SECTION_HEAD_SIZE;
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_EXPR_NODE_SIZE) {
        if (rec[1] || rec[2] || rec[3] || kiln_load_u32le(rec + KILN_EXPR_OFF_PAD)) {
            kiln_free(nodes);
            return CORRUPT("expression node %" PRIu32 " has non-zero reserved bytes", i);
        }
        nodes[i].op = rec[KILN_EXPR_OFF_OP];
        nodes[i].a = kiln_load_i32le(rec + KILN_EXPR_OFF_A);
        nodes[i].b = kiln_load_i32le(rec + KILN_EXPR_OFF_B);
        nodes[i].value = kiln_load_i64le(rec + KILN_EXPR_OFF_VALUE);
    }
    st = kiln_exprs_from_nodes(nodes, count, d->dim_count, &d->exprs);
    kiln_free(nodes);
    if (st != KILN_OK) return st;
    /* Names make expressions readable in the runtime's shape errors. */
    for (int32_t i = 0; i < d->dim_count; i++)
        if ((st = kiln_exprs_name_dim(d->exprs, i, d->dims[i].name)) != KILN_OK) return st;
    return KILN_OK;
}

static kiln_status read_tensors(const reader *r, kiln_engine_desc *d) {
    uint32_t count, second;
    kiln_status st = section_head(r, KILN_SECTION_TENSORS, KILN_FMT_TENSOR_SIZE, &count, &second);
    if (st != KILN_OK) return st;
    if ((st = zero_word(second, "section 'tensors' reserved word")) != KILN_OK) return st;
    if ((st = exact_size(r, KILN_SECTION_TENSORS, KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_TENSOR_SIZE))
        != KILN_OK) return st;
    if (!count) return KILN_OK;
    d->tensors = kiln_calloc(count, sizeof *d->tensors);
    if (!d->tensors) return no_memory("tensors");
    d->tensor_count = (int32_t)count;
    const uint8_t *rec = r->sec[KILN_SECTION_TENSORS] + KILN_FMT_SECTION_HEAD_SIZE;
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_TENSOR_SIZE) {
        kiln_tensor_record *t = &d->tensors[i];
        if ((st = read_string(r, rec + KILN_TENSOR_OFF_NAME, &t->name, "tensor %d name", (int32_t)i)) != KILN_OK)
            return st;
        t->kind = rec[KILN_TENSOR_OFF_KIND];
        t->dtype = rec[KILN_TENSOR_OFF_DTYPE];
        if (rec[KILN_TENSOR_OFF_DTYPE + 1] || rec[KILN_TENSOR_OFF_DTYPE + 2])
            return CORRUPT("tensor %" PRIu32 " '%s' has non-zero reserved bytes", i, t->name);
        uint32_t rank = kiln_load_u32le(rec + KILN_TENSOR_OFF_RANK);
        if (rank > KILN_MAX_RANK)
            return CORRUPT("tensor %" PRIu32 " '%s' rank %" PRIu32 " is more than KILN_MAX_RANK (%d)", i, t->name,
                           rank, KILN_MAX_RANK);
        t->rank = (int32_t)rank;
        for (uint32_t k = 0; k < KILN_MAX_RANK; k++) {
            t->shape[k] = kiln_load_i32le(rec + KILN_TENSOR_OFF_SHAPE + 4 * k);
            if (k >= rank && t->shape[k] != KILN_EXPR_INVALID)
                return CORRUPT("tensor %" PRIu32 " '%s' shape entry %" PRIu32 " beyond its rank %" PRIu32
                               " is %d, must be -1", i, t->name, k, rank, t->shape[k]);
        }
        t->offset = kiln_load_u64le(rec + KILN_TENSOR_OFF_OFFSET);
        t->size = kiln_load_u64le(rec + KILN_TENSOR_OFF_SIZE);
        if ((t->kind == KILN_TENSOR_INPUT || t->kind == KILN_TENSOR_OUTPUT) && (t->offset || t->size))
            return CORRUPT("tensor %" PRIu32 " '%s' is an %s but has offset %" PRIu64 " and size %" PRIu64
                           " (must be 0)", i, t->name, t->kind == KILN_TENSOR_INPUT ? "input" : "output",
                           t->offset, t->size);
    }
    return KILN_OK;
}

static int32_t *read_indices(const uint8_t *p, uint32_t n) {
    int32_t *out = kiln_malloc((size_t)n * sizeof *out);
    if (out)
        for (uint32_t k = 0; k < n; k++) out[k] = kiln_load_i32le(p + 4 * (size_t)k);
    return out;
}

/* Version 2 stores each layer's attribute lists after the index list: zero
 * padding to 8 bytes, (u32 int_count, u32 expr_count) per layer, every
 * layer's integers (i64), then every layer's expression ids (i32).  Checks
 * the counts and the section's exact size; what the values mean is the op
 * rule's to check (format/layer_verify.c), and the expression ids are
 * desc_check's. */
static kiln_status read_layer_attrs_head(const reader *r, uint32_t count, uint64_t lists_end) {
    const uint8_t *s = r->sec[KILN_SECTION_LAYERS];
    uint64_t size = r->sec_size[KILN_SECTION_LAYERS], at = lists_end + (8 - lists_end % 8) % 8;
    uint64_t need = at + (uint64_t)count * KILN_FMT_LAYER_ATTR_COUNTS_SIZE;
    if (size < need)
        return CORRUPT("section 'layers' is %" PRIu64 " bytes, its attribute counts need %" PRIu64, size, need);
    if (first_nonzero(s + lists_end, (size_t)(at - lists_end)) != (size_t)(at - lists_end))
        return CORRUPT("section 'layers' has non-zero padding before its attribute counts");
    uint64_t ints = 0, exprs = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *c = s + at + (size_t)i * KILN_FMT_LAYER_ATTR_COUNTS_SIZE;
        uint32_t ni = kiln_load_u32le(c), ne = kiln_load_u32le(c + 4);
        if (ni > KILN_MAX_LAYER_INTS || ne > KILN_MAX_LAYER_EXPRS)
            return CORRUPT("layer %" PRIu32 " has %" PRIu32 " integer and %" PRIu32 " expression attributes (at "
                           "most %d and %d)", i, ni, ne, KILN_MAX_LAYER_INTS, KILN_MAX_LAYER_EXPRS);
        ints += ni;
        exprs += ne;
    }
    return exact_size(r, KILN_SECTION_LAYERS, need + ints * KILN_FMT_INT_SIZE + exprs * KILN_FMT_INDEX_SIZE);
}

/* Fill each layer's attrs; read_layer_attrs_head has checked the sizes. */
static void read_layer_attrs(const reader *r, kiln_engine_desc *d, uint64_t lists_end) {
    const uint8_t *s = r->sec[KILN_SECTION_LAYERS];
    const uint8_t *counts = s + lists_end + (8 - lists_end % 8) % 8;
    const uint8_t *ints = counts + (size_t)d->layer_count * KILN_FMT_LAYER_ATTR_COUNTS_SIZE;
    uint64_t total_ints = 0;
    for (int32_t i = 0; i < d->layer_count; i++)
        total_ints += kiln_load_u32le(counts + (size_t)i * KILN_FMT_LAYER_ATTR_COUNTS_SIZE);
    const uint8_t *exprs = ints + total_ints * KILN_FMT_INT_SIZE;
    for (int32_t i = 0; i < d->layer_count; i++, counts += KILN_FMT_LAYER_ATTR_COUNTS_SIZE) {
        kiln_layer_attrs *a = &d->layers[i].attrs;
        a->int_count = (int32_t)kiln_load_u32le(counts);
        a->expr_count = (int32_t)kiln_load_u32le(counts + 4);
        for (int32_t k = 0; k < a->int_count; k++, ints += KILN_FMT_INT_SIZE) a->ints[k] = kiln_load_i64le(ints);
        for (int32_t k = 0; k < a->expr_count; k++, exprs += KILN_FMT_INDEX_SIZE) a->exprs[k] = kiln_load_i32le(exprs);
    }
}

static kiln_status read_layers(const reader *r, kiln_engine_desc *d) {
    uint32_t count, index_count;
    kiln_status st = section_head(r, KILN_SECTION_LAYERS, KILN_FMT_LAYER_SIZE, &count, &index_count);
    if (st != KILN_OK) return st;
    uint64_t lists_end = KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_LAYER_SIZE
                         + (uint64_t)index_count * KILN_FMT_INDEX_SIZE;
    if (r->version < 2) {
        if ((st = exact_size(r, KILN_SECTION_LAYERS, lists_end)) != KILN_OK) return st;
    } else if ((st = read_layer_attrs_head(r, count, lists_end)) != KILN_OK) {
        return st;
    }
    const uint8_t *rec = r->sec[KILN_SECTION_LAYERS] + KILN_FMT_SECTION_HEAD_SIZE;
    const uint8_t *indices = rec + (size_t)count * KILN_FMT_LAYER_SIZE;
    if (count) {
        d->layers = kiln_calloc(count, sizeof *d->layers);
        if (!d->layers) return no_memory("layers");
        d->layer_count = (int32_t)count;
    }
    uint64_t next = 0;   /* index lists are stored back to back, in layer order */
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_LAYER_SIZE) {
        kiln_layer_record *l = &d->layers[i];
        if (rec[1] || rec[2] || rec[3]) return CORRUPT("layer %" PRIu32 " has non-zero reserved bytes", i);
        l->op = rec[KILN_LAYER_OFF_OP];
        l->subop = kiln_load_i32le(rec + KILN_LAYER_OFF_SUBOP);
        l->axis = kiln_load_i64le(rec + KILN_LAYER_OFF_AXIS);
        uint32_t inputs = kiln_load_u32le(rec + KILN_LAYER_OFF_INPUT_COUNT);
        uint32_t outputs = kiln_load_u32le(rec + KILN_LAYER_OFF_OUTPUT_COUNT);
        uint32_t first = kiln_load_u32le(rec + KILN_LAYER_OFF_FIRST_INDEX);
        l->workspace = kiln_load_i32le(rec + KILN_LAYER_OFF_WORKSPACE);
        l->input_count = l->output_count = 0;
        if (first != next)
            return CORRUPT("layer %" PRIu32 " index list starts at %" PRIu32 ", expected %" PRIu64, i, first, next);
        if ((uint64_t)inputs + outputs > index_count - next)
            return CORRUPT("layer %" PRIu32 " has %" PRIu32 " inputs and %" PRIu32 " outputs, but only %" PRIu64
                           " of the %" PRIu32 " layer indices are left", i, inputs, outputs, index_count - next,
                           index_count);
        if (l->op < KILN_OP_COUNT && !kiln_op_has_subop(l->op) && l->subop != 0)
            return CORRUPT("layer %" PRIu32 " subop is %d but its op takes none (must be 0)", i, l->subop);
        if (l->op < KILN_OP_COUNT && !kiln_op_has_axis(l->op) && l->axis != 0)
            return CORRUPT("layer %" PRIu32 " axis is %" PRId64 " but its op takes none (must be 0)", i, l->axis);
        if (inputs && !(l->inputs = read_indices(indices + 4 * next, inputs))) return no_memory("layers");
        l->input_count = (int32_t)inputs;
        next += inputs;
        if (outputs && !(l->outputs = read_indices(indices + 4 * next, outputs))) return no_memory("layers");
        l->output_count = (int32_t)outputs;
        next += outputs;
    }
    if (next != index_count)
        return CORRUPT("section 'layers' holds %" PRIu32 " indices but its layers use %" PRIu64, index_count, next);
    if (r->version >= 2) read_layer_attrs(r, d, lists_end);
    return KILN_OK;
}

static kiln_status read_plugins(const reader *r, kiln_engine_desc *d) {
    uint32_t count, second;
    kiln_status st = section_head(r, KILN_SECTION_PLUGINS, KILN_FMT_PLUGIN_SIZE, &count, &second);
    if (st != KILN_OK) return st;
    if ((st = zero_word(second, "section 'plugins' reserved word")) != KILN_OK) return st;
    const uint8_t *rec = r->sec[KILN_SECTION_PLUGINS] + KILN_FMT_SECTION_HEAD_SIZE;
    const uint8_t *fields = rec + (size_t)count * KILN_FMT_PLUGIN_SIZE;
    uint64_t fields_avail = r->sec_size[KILN_SECTION_PLUGINS] - KILN_FMT_SECTION_HEAD_SIZE
                            - (uint64_t)count * KILN_FMT_PLUGIN_SIZE;
    if (count) {
        d->plugins = kiln_calloc(count, sizeof *d->plugins);
        if (!d->plugins) return no_memory("plugins");
        d->plugin_count = (int32_t)count;
    }
    uint64_t next = 0;   /* fields are stored back to back, in plugin order */
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_PLUGIN_SIZE) {
        kiln_plugin_record *p = &d->plugins[i];
        int32_t n = (int32_t)i;
        if ((st = read_string(r, rec + KILN_PLUGIN_OFF_NAMESPACE, &p->plugin_namespace, "plugin %d namespace", n))
            || (st = read_string(r, rec + KILN_PLUGIN_OFF_NAME, &p->name, "plugin %d name", n))
            || (st = read_string(r, rec + KILN_PLUGIN_OFF_VERSION, &p->version, "plugin %d version", n))
            || (st = read_string(r, rec + KILN_PLUGIN_OFF_MODULE, &p->module, "plugin %d module", n)))
            return st;
        p->flags = kiln_load_u32le(rec + KILN_PLUGIN_OFF_FLAGS);
        if ((st = zero_word(kiln_load_u32le(rec + KILN_PLUGIN_OFF_PAD), "plugin reserved word")) != KILN_OK)
            return st;
        uint64_t offset = kiln_load_u64le(rec + KILN_PLUGIN_OFF_FIELDS_OFFSET);
        uint64_t size = kiln_load_u64le(rec + KILN_PLUGIN_OFF_FIELDS_SIZE);
        if (offset != next)
            return CORRUPT("plugin %" PRIu32 " '%s' fields start at %" PRIu64 ", expected %" PRIu64, i, p->name,
                           offset, next);
        if (size > fields_avail - next)
            return CORRUPT("plugin %" PRIu32 " '%s' fields (%" PRIu64 " bytes at %" PRIu64 ") run past the end of "
                           "section 'plugins'", i, p->name, size, offset);
        if (size) {
            p->fields = kiln_malloc((size_t)size);
            if (!p->fields) return no_memory("plugin fields");
            memcpy(p->fields, fields + offset, (size_t)size);
        }
        p->fields_size = (size_t)size;
        next += size;
    }
    if (next != fields_avail)
        return CORRUPT("section 'plugins' has %" PRIu64 " bytes of fields but its plugins use %" PRIu64,
                       fields_avail, next);
    return KILN_OK;
}

static kiln_status read_checks(const reader *r, kiln_engine_desc *d) {
    uint32_t count, second;
    kiln_status st = section_head(r, KILN_SECTION_CHECKS, KILN_FMT_CHECK_SIZE, &count, &second);
    if (st != KILN_OK) return st;
    if ((st = zero_word(second, "section 'checks' reserved word")) != KILN_OK) return st;
    if ((st = exact_size(r, KILN_SECTION_CHECKS, KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_CHECK_SIZE))
        != KILN_OK) return st;
    if (!count) return KILN_OK;
    d->checks = kiln_calloc(count, sizeof *d->checks);
    if (!d->checks) return no_memory("checks");
    d->check_count = (int32_t)count;
    const uint8_t *rec = r->sec[KILN_SECTION_CHECKS] + KILN_FMT_SECTION_HEAD_SIZE;
    for (uint32_t i = 0; i < count; i++, rec += KILN_FMT_CHECK_SIZE) {
        d->checks[i].cond = kiln_load_i32le(rec + KILN_CHECK_OFF_COND);
        if ((st = zero_word(kiln_load_u32le(rec + KILN_CHECK_OFF_PAD), "check reserved word")) != KILN_OK)
            return st;
        if ((st = read_string(r, rec + KILN_CHECK_OFF_MESSAGE, &d->checks[i].message, "check %d message",
                              (int32_t)i)) != KILN_OK)
            return st;
    }
    return KILN_OK;
}

static kiln_status read_io(const reader *r, kiln_engine_desc *d) {
    uint32_t count, second;
    kiln_status st = section_head(r, KILN_SECTION_IO, KILN_FMT_INDEX_SIZE, &count, &second);
    if (st != KILN_OK) return st;
    if ((st = zero_word(second, "section 'io' reserved word")) != KILN_OK) return st;
    if ((st = exact_size(r, KILN_SECTION_IO, KILN_FMT_SECTION_HEAD_SIZE + (uint64_t)count * KILN_FMT_INDEX_SIZE))
        != KILN_OK) return st;
    if (!count) return KILN_OK;
    d->io = read_indices(r->sec[KILN_SECTION_IO] + KILN_FMT_SECTION_HEAD_SIZE, count);
    if (!d->io) return no_memory("io list");
    d->io_count = (int32_t)count;
    return KILN_OK;
}

static kiln_status read_all(const uint8_t *data, size_t size, uint32_t flags, kiln_engine_desc *out) {
    if (!data && size) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_read: data is NULL");
    reader r;
    memset(&r, 0, sizeof r);
    r.data = data;
    r.size = size;
    kiln_status st;
    if ((st = check_prefix_and_checksum(&r)) || (st = check_header(&r)) || (st = load_sections(&r, flags)))
        return st;
    r.version = kiln_load_u32le(data + KILN_HDR_VERSION);
    out->format_version = r.version;
    out->parallel = (kiln_parallel_record){0, 1};
    if (r.version >= KILN_FORMAT_VERSION_PARALLEL)
        out->parallel = (kiln_parallel_record){.rank = (int32_t)kiln_load_u32le(data + KILN_HDR_RANK),
                                               .world_size = (int32_t)kiln_load_u32le(data + KILN_HDR_WORLD_SIZE)};
    out->arena_bytes = kiln_load_u64le(data + KILN_HDR_ARENA_BYTES);
    out->weights = r.sec[KILN_SECTION_WEIGHTS];
    out->weights_size = r.sec_size[KILN_SECTION_WEIGHTS];
    out->weights_owned = 0;
    if ((st = read_dims(&r, out)) || (st = read_exprs(&r, out)) || (st = read_tensors(&r, out))
        || (st = read_plugins(&r, out)) || (st = read_layers(&r, out)) || (st = read_checks(&r, out))
        || (st = read_io(&r, out)))
        return st;
    if ((st = kiln_format_check_desc(out))) return st;
    return kiln_format_verify_layers(out);
}

kiln_status kiln_format_read(const uint8_t *data, size_t size, uint32_t flags, kiln_engine_desc *out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_format_read: out is NULL");
    memset(out, 0, sizeof *out);
    kiln_status st = read_all(data, size, flags, out);
    if (st != KILN_OK) kiln_engine_desc_clear(out);
    return st;
}
