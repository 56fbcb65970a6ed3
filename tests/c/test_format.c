/* test_format.c — the engine file format: round trip, and refusal of every
 * truncation, bit flip, newer version and semantic corruption. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#include "format/byte_order.h"
#include "format/checksum.h"
#include "format/section_checksum.h"
#include "format/engine_format.h"
#include "format/format_layout.h"
#include "format_sample.h"
#include "ops/op_table.h"
#include "test.h"

/* --- helpers ------------------------------------------------------------------ */

static int write_sample(uint8_t **bytes, size_t *size) {
    kiln_engine_desc d;
    int ok = sample_full(&d) && kiln_format_write(&d, bytes, size) == KILN_OK;
    kiln_engine_desc_clear(&d);
    return ok;
}

/* Read a private, exact-size copy so that AddressSanitizer catches any read
 * past the end. */
static kiln_status read_copy(const uint8_t *bytes, size_t size, uint32_t flags) {
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, bytes, size);
    kiln_engine_desc d;
    kiln_status st = kiln_format_read(copy, size, flags, &d);
    kiln_engine_desc_clear(&d);
    free(copy);
    return st;
}

static int desc_is_clear(const kiln_engine_desc *d) {
    static const kiln_engine_desc zero;
    return memcmp(d, &zero, sizeof zero) == 0;
}

/* Offset of section id in engine bytes (from the section table). */
static size_t section_offset(const uint8_t *bytes, uint32_t id, size_t *size) {
    uint64_t table = kiln_load_u64le(bytes + KILN_HDR_TABLE_OFFSET);
    uint32_t count = kiln_load_u32le(bytes + KILN_HDR_SECTION_COUNT);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *e = bytes + table + i * KILN_FMT_SECTION_ENTRY_SIZE;
        if (kiln_load_u32le(e + KILN_SEC_ID) == id) {
            if (size) *size = (size_t)kiln_load_u64le(e + KILN_SEC_SIZE);
            return (size_t)kiln_load_u64le(e + KILN_SEC_OFFSET);
        }
    }
    return 0;
}

/* --- round trip --------------------------------------------------------------- */

static void compare_descs(const kiln_engine_desc *a, const kiln_engine_desc *b) {
    REQUIRE(b->exprs && a->exprs->count == b->exprs->count);
    for (size_t i = 0; i < a->exprs->count; i++) {
        const kiln_expr_node *x = &a->exprs->nodes[i], *y = &b->exprs->nodes[i];
        CHECK(x->op == y->op && x->a == y->a && x->b == y->b && x->value == y->value);
    }
    REQUIRE(a->dim_count == b->dim_count && a->profile_count == b->profile_count);
    for (int32_t i = 0; i < a->dim_count; i++) {
        CHECK(strcmp(a->dims[i].name, b->dims[i].name) == 0);
        CHECK(memcmp(a->dims[i].ranges, b->dims[i].ranges, (size_t)a->profile_count * sizeof(kiln_dim_range)) == 0);
    }
    REQUIRE(a->tensor_count == b->tensor_count);
    for (int32_t i = 0; i < a->tensor_count; i++) {
        const kiln_tensor_record *x = &a->tensors[i], *y = &b->tensors[i];
        CHECK(strcmp(x->name, y->name) == 0);
        CHECK(x->kind == y->kind && x->dtype == y->dtype && x->rank == y->rank);
        CHECK(memcmp(x->shape, y->shape, sizeof x->shape) == 0);
        CHECK(x->offset == y->offset && x->size == y->size);
    }
    REQUIRE(a->layer_count == b->layer_count);
    for (int32_t i = 0; i < a->layer_count; i++) {
        const kiln_layer_record *x = &a->layers[i], *y = &b->layers[i];
        CHECK(x->op == y->op && x->subop == y->subop && x->axis == y->axis && x->workspace == y->workspace);
        REQUIRE(x->input_count == y->input_count && x->output_count == y->output_count);
        CHECK(memcmp(x->inputs, y->inputs, (size_t)x->input_count * 4) == 0);
        CHECK(memcmp(x->outputs, y->outputs, (size_t)x->output_count * 4) == 0);
    }
    REQUIRE(a->plugin_count == b->plugin_count);
    for (int32_t i = 0; i < a->plugin_count; i++) {
        const kiln_plugin_record *x = &a->plugins[i], *y = &b->plugins[i];
        CHECK(strcmp(x->plugin_namespace, y->plugin_namespace) == 0 && strcmp(x->name, y->name) == 0);
        CHECK(strcmp(x->version, y->version) == 0 && strcmp(x->module, y->module) == 0);
        CHECK(x->flags == y->flags && x->fields_size == y->fields_size);
        CHECK(memcmp(x->fields, y->fields, x->fields_size) == 0);
    }
    REQUIRE(a->check_count == b->check_count);
    for (int32_t i = 0; i < a->check_count; i++) {
        CHECK(a->checks[i].cond == b->checks[i].cond);
        CHECK(strcmp(a->checks[i].message, b->checks[i].message) == 0);
    }
    REQUIRE(a->io_count == b->io_count);
    CHECK(memcmp(a->io, b->io, (size_t)a->io_count * 4) == 0);
    CHECK(a->arena_bytes == b->arena_bytes);
    REQUIRE(a->weights_size == b->weights_size);
    CHECK(a->weights_size == 0 || memcmp(a->weights, b->weights, a->weights_size) == 0);
}

static void test_roundtrip(void) {
    kiln_engine_desc orig, back;
    REQUIRE(sample_full(&orig));
    uint8_t *bytes;
    size_t size;
    CHECK_OK(kiln_format_write(&orig, &bytes, &size));
    CHECK(((uintptr_t)bytes & 63) == 0);
    CHECK(size == kiln_load_u64le(bytes + KILN_HDR_FILE_SIZE));
    /* Rank 0 of 1: version 2, which kilns before the parallel record read. */
    CHECK(memcmp(bytes, "KILN", 4) == 0 && kiln_load_u32le(bytes + KILN_HDR_VERSION) == 2);

    kiln_status st = kiln_format_read(bytes, size, 0, &back);
    if (st != KILN_OK) fprintf(stderr, "read: %s\n", kiln_last_error());
    REQUIRE(st == KILN_OK);
    compare_descs(&orig, &back);
    /* Weights are used in place, at a 64-aligned offset of the file. */
    size_t woff = section_offset(bytes, KILN_SECTION_WEIGHTS, NULL);
    CHECK(back.weights == bytes + woff && woff % 64 == 0 && !back.weights_owned);
    /* The loaded pool evaluates, with dims named. */
    char text[64];
    kiln_expr_format(back.exprs, back.tensors[SAMPLE_Y].shape[0], text, sizeof text);
    CHECK(strstr(text, "batch") && strstr(text, "seq"));

    /* Writing the loaded desc gives the same bytes: one representation per engine. */
    uint8_t *again;
    size_t again_size;
    CHECK_OK(kiln_format_write(&back, &again, &again_size));
    CHECK(again_size == size && memcmp(again, bytes, size) == 0);
    kiln_aligned_free(again);

    /* Any alignment of the input works (a user buffer need not be aligned). */
    uint8_t *shifted = malloc(size + 1);
    memcpy(shifted + 1, bytes, size);
    kiln_engine_desc other;
    CHECK_OK(kiln_format_read(shifted + 1, size, 0, &other));
    kiln_engine_desc_clear(&other);
    free(shifted);

    kiln_engine_desc_clear(&back);
    CHECK(desc_is_clear(&back));
    kiln_engine_desc_clear(&orig);
    kiln_aligned_free(bytes);

    /* The minimal engine round-trips too. */
    REQUIRE(sample_minimal(&orig));
    CHECK_OK(kiln_format_write(&orig, &bytes, &size));
    CHECK_OK(kiln_format_read(bytes, size, 0, &back));
    compare_descs(&orig, &back);
    kiln_engine_desc_clear(&back);
    kiln_engine_desc_clear(&orig);
    kiln_aligned_free(bytes);
}

/* --- damaged bytes --------------------------------------------------------------- */

/* The parallel record: written as version 3 only when it is not rank 0 of 1,
 * read back exactly; older versions read as rank 0 of 1. */
static void test_parallel_roundtrip(void) {
    kiln_engine_desc orig, back;
    REQUIRE(sample_full(&orig));
    uint8_t *bytes;
    size_t size;
    CHECK_OK(kiln_format_write(&orig, &bytes, &size));
    CHECK_OK(kiln_format_read(bytes, size, 0, &back));
    CHECK(back.parallel.rank == 0 && back.parallel.world_size == 1);
    kiln_engine_desc_clear(&back);
    kiln_aligned_free(bytes);

    orig.parallel = (kiln_parallel_record){.rank = 3, .world_size = 4};
    CHECK_OK(kiln_format_write(&orig, &bytes, &size));
    CHECK(kiln_load_u32le(bytes + KILN_HDR_VERSION) == 3);
    CHECK(kiln_load_u32le(bytes + KILN_HDR_RANK) == 3 && kiln_load_u32le(bytes + KILN_HDR_WORLD_SIZE) == 4);
    kiln_status st = kiln_format_read(bytes, size, 0, &back);
    if (st != KILN_OK) fprintf(stderr, "read: %s\n", kiln_last_error());
    REQUIRE(st == KILN_OK);
    CHECK(back.parallel.rank == 3 && back.parallel.world_size == 4);
    compare_descs(&orig, &back);
    kiln_engine_desc_clear(&back);

    /* The record's bytes mean nothing to a version 2 file: there they are
     * reserved, and must be zero. */
    uint8_t *copy = malloc(size);
    REQUIRE(copy != NULL);
    memcpy(copy, bytes, size);
    kiln_store_u32le(copy + KILN_HDR_VERSION, 2);
    kiln_format_seal(copy, size);
    CHECK_FAILS(read_copy(copy, size, 0), KILN_ERROR_CORRUPT, "reserved");
    /* Version 3: the bytes after the record stay reserved. */
    memcpy(copy, bytes, size);
    copy[KILN_HDR_RESERVED2 + 5] = 1;
    kiln_format_seal(copy, size);
    CHECK_FAILS(read_copy(copy, size, 0), KILN_ERROR_CORRUPT, "reserved");
    free(copy);
    kiln_aligned_free(bytes);
    orig.parallel = (kiln_parallel_record){0, 1};
    kiln_engine_desc_clear(&orig);
}

static void test_every_truncation(void) {
    uint8_t *bytes;
    size_t size;
    REQUIRE(write_sample(&bytes, &size));
    int refused = 0;
    for (size_t len = 0; len < size; len++) {
        kiln_status st = read_copy(bytes, len, 0);
        refused += st == KILN_ERROR_CORRUPT;
        if (st != KILN_ERROR_CORRUPT) fprintf(stderr, "truncation to %zu: %s\n", len, kiln_status_string(st));
    }
    CHECK(refused == (int)size);
    CHECK_FAILS(read_copy(bytes, size - 1, 0), KILN_ERROR_CORRUPT, "engine is truncated: file size");
    CHECK_FAILS(read_copy(bytes, 100, 0), KILN_ERROR_CORRUPT, "engine is truncated");
    CHECK_FAILS(read_copy(bytes, 3, 0), KILN_ERROR_CORRUPT, "truncated");
    /* And a longer file is refused as well. */
    uint8_t *longer = calloc(1, size + 8);
    memcpy(longer, bytes, size);
    CHECK_FAILS(read_copy(longer, size + 8, 0), KILN_ERROR_CORRUPT, "trailing");
    free(longer);
    kiln_aligned_free(bytes);
}

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;
static uint64_t rng_next(void) {          /* xorshift64: a fixed, portable sequence */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_random_flips(void) {
    uint8_t *bytes;
    size_t size;
    REQUIRE(write_sample(&bytes, &size));
    uint8_t *copy = malloc(size);
    int refused = 0;
    const int flips = 3000;
    for (int i = 0; i < flips; i++) {
        size_t at = (size_t)(rng_next() % size);
        uint8_t mask = (uint8_t)(rng_next() % 255 + 1);
        memcpy(copy, bytes, size);
        copy[at] ^= mask;
        kiln_engine_desc d;
        kiln_status st = kiln_format_read(copy, size, 0, &d);
        if (st == KILN_ERROR_CORRUPT && kiln_last_error()[0]) refused++;
        else fprintf(stderr, "flip 0x%02x at %zu: %s %s\n", mask, at, kiln_status_string(st), kiln_last_error());
        CHECK(desc_is_clear(&d));
        kiln_engine_desc_clear(&d);
    }
    CHECK(refused == flips);
    /* The message says where: a flip in a section names it. */
    memcpy(copy, bytes, size);
    copy[section_offset(bytes, KILN_SECTION_LAYERS, NULL) + 3] ^= 1;
    CHECK_FAILS(read_copy(copy, size, 0), KILN_ERROR_CORRUPT, "section 'layers' checksum mismatch");
    memcpy(copy, bytes, size);
    copy[KILN_HDR_ARENA_BYTES] ^= 1;
    CHECK_FAILS(read_copy(copy, size, 0), KILN_ERROR_CORRUPT, "header checksum mismatch");
    memcpy(copy, bytes, size);
    copy[0] = 'X';
    CHECK_FAILS(read_copy(copy, size, 0), KILN_ERROR_CORRUPT, "not a kiln engine");
    free(copy);
    kiln_aligned_free(bytes);
}

static void test_newer_version(void) {
    uint8_t *bytes;
    size_t size;
    REQUIRE(write_sample(&bytes, &size));
    kiln_store_u32le(bytes + KILN_HDR_VERSION, KILN_FORMAT_VERSION + 1);
    kiln_format_seal(bytes, size);
    CHECK_FAILS(read_copy(bytes, size, 0), KILN_ERROR_VERSION, "format version 4");
    CHECK_FAILS(read_copy(bytes, size, 0), KILN_ERROR_VERSION, "format version 3");
    /* A future version may grow its header: still "too new", not "corrupt". */
    kiln_store_u32le(bytes + KILN_HDR_HEADER_SIZE, 256);
    kiln_format_seal(bytes, size);
    CHECK_FAILS(read_copy(bytes, size, 0), KILN_ERROR_VERSION, "newer");
    /* Version 0 never existed. */
    kiln_store_u32le(bytes + KILN_HDR_HEADER_SIZE, KILN_FORMAT_HEADER_SIZE);
    kiln_store_u32le(bytes + KILN_HDR_VERSION, 0);
    kiln_format_seal(bytes, size);
    CHECK_FAILS(read_copy(bytes, size, 0), KILN_ERROR_CORRUPT, "version 0");
    kiln_aligned_free(bytes);
}

static void test_skip_weight_checksum(void) {
    uint8_t *bytes;
    size_t size, wsize;
    REQUIRE(write_sample(&bytes, &size));
    size_t woff = section_offset(bytes, KILN_SECTION_WEIGHTS, &wsize);
    REQUIRE(woff && wsize == SAMPLE_WEIGHTS_SIZE);
    bytes[woff + 700] ^= 0x40;
    CHECK_FAILS(read_copy(bytes, size, 0), KILN_ERROR_CORRUPT, "section 'weights' checksum mismatch");
    kiln_engine_desc d;
    CHECK_OK(kiln_format_read(bytes, size, KILN_LOAD_SKIP_WEIGHT_CHECKSUM, &d));
    CHECK(d.weights[700] == (uint8_t)((700 * 37 + 11) ^ 0x40));
    kiln_engine_desc_clear(&d);
    /* Metadata is still verified with the flag. */
    bytes[section_offset(bytes, KILN_SECTION_TENSORS, NULL) + 9] ^= 1;
    CHECK_FAILS(read_copy(bytes, size, KILN_LOAD_SKIP_WEIGHT_CHECKSUM), KILN_ERROR_CORRUPT,
                "section 'tensors' checksum mismatch");
    kiln_aligned_free(bytes);
}

/* Patches made on purpose and resealed: the structural checks must catch them. */
static void test_structural_patches(void) {
    uint8_t *bytes, *copy;
    size_t size;
    REQUIRE(write_sample(&bytes, &size));
    copy = malloc(size);
    size_t strings = section_offset(bytes, KILN_SECTION_STRINGS, NULL);
    size_t tensors = section_offset(bytes, KILN_SECTION_TENSORS, NULL);
    size_t layers = section_offset(bytes, KILN_SECTION_LAYERS, NULL);
    size_t exprs = section_offset(bytes, KILN_SECTION_EXPRS, NULL);
    size_t table = KILN_FORMAT_HEADER_SIZE;
    const uint8_t *emb = memmem(bytes + strings, size - strings, "emb", 4);
    REQUIRE(emb);

#define PATCH(stmt, status, text) do { memcpy(copy, bytes, size); stmt; kiln_format_seal(copy, size); \
        CHECK_FAILS(read_copy(copy, size, 0), status, text); } while (0)
    PATCH(copy[emb - bytes + 1] = 0, KILN_ERROR_CORRUPT, "tensor 2 name (offset");
    PATCH(copy[emb - bytes + 3] = 'x', KILN_ERROR_CORRUPT, "not NUL-terminated");
    PATCH(kiln_store_u32le(copy + tensors + 8 + 2 * KILN_FMT_TENSOR_SIZE + 4, 100000), KILN_ERROR_CORRUPT,
          "runs past the end of the");
    PATCH(copy[tensors + 8 + KILN_TENSOR_OFF_DTYPE + 1] = 1, KILN_ERROR_CORRUPT, "reserved");
    PATCH(kiln_store_u32le(copy + tensors + 8 + KILN_TENSOR_OFF_RANK, 9), KILN_ERROR_CORRUPT, "rank 9");
    PATCH(kiln_store_i32le(copy + tensors + 8 + KILN_TENSOR_OFF_SHAPE + 4 * 5, 0), KILN_ERROR_CORRUPT,
          "must be -1");
    PATCH(kiln_store_u64le(copy + tensors + 8 + KILN_TENSOR_OFF_OFFSET, 64), KILN_ERROR_CORRUPT,
          "is an input but has offset 64");
    PATCH(copy[exprs + 8 + KILN_EXPR_OFF_OP] = 99, KILN_ERROR_CORRUPT, "expression node 0: unknown op 99");
    PATCH(kiln_store_u32le(copy + exprs, 1000), KILN_ERROR_CORRUPT, "too small for its 1000 records");
    PATCH(kiln_store_u32le(copy + layers + 8 + KILN_LAYER_OFF_FIRST_INDEX, 1), KILN_ERROR_CORRUPT,
          "layer 0 index list starts at 1");
    PATCH(kiln_store_u32le(copy + layers + 8 + KILN_LAYER_OFF_INPUT_COUNT, 70000), KILN_ERROR_CORRUPT,
          "layer 0 has 70000 inputs");
    PATCH(kiln_store_u32le(copy + layers + 4, 3), KILN_ERROR_CORRUPT, "section 'layers' is");
    PATCH(kiln_store_u64le(copy + layers + 8 + 4 * KILN_FMT_LAYER_SIZE + KILN_LAYER_OFF_AXIS, 1),
          KILN_ERROR_CORRUPT, "layer 4 axis is 1");
    PATCH(kiln_store_u32le(copy + table + 6 * KILN_FMT_SECTION_ENTRY_SIZE, 77), KILN_ERROR_CORRUPT,
          "section 77 is unknown to this kiln and not marked optional");
    PATCH(kiln_store_u32le(copy + table + 6 * KILN_FMT_SECTION_ENTRY_SIZE, 5), KILN_ERROR_CORRUPT,
          "section 'layers' appears twice");
    PATCH(kiln_store_u32le(copy + table + 6 * KILN_FMT_SECTION_ENTRY_SIZE + KILN_SEC_FLAGS, 1), KILN_ERROR_CORRUPT,
          "marked optional");
    PATCH(kiln_store_u64le(copy + table + 8 * KILN_FMT_SECTION_ENTRY_SIZE + KILN_SEC_OFFSET,
                           kiln_load_u64le(bytes + table + 8 * KILN_FMT_SECTION_ENTRY_SIZE + KILN_SEC_OFFSET) - 8),
          KILN_ERROR_CORRUPT, "not 64-byte aligned");
    PATCH(kiln_store_u64le(copy + table + 8 * KILN_FMT_SECTION_ENTRY_SIZE + KILN_SEC_SIZE, 1u << 30),
          KILN_ERROR_CORRUPT, "section 'weights' (offset");
    PATCH(kiln_store_u64le(copy + table + KILN_SEC_OFFSET, 0), KILN_ERROR_CORRUPT, "overlaps");
    PATCH(kiln_store_u32le(copy + KILN_HDR_SECTION_COUNT, 1u << 30), KILN_ERROR_CORRUPT, "section table");
    PATCH(copy[KILN_HDR_CHECK_BYTES + 1] = '\n', KILN_ERROR_CORRUPT, "text mode");
    PATCH(copy[KILN_HDR_SIZES + 6] = 72, KILN_ERROR_CORRUPT, "tensor record size is 72");
    PATCH(kiln_store_u64le(copy + KILN_HDR_SAMPLE_INT, UINT64_C(0x0102030405060708)), KILN_ERROR_CORRUPT,
          "byte order");
    PATCH(copy[KILN_HDR_SAMPLE_FLOAT + 7] ^= 0x80, KILN_ERROR_CORRUPT, "float format");
    PATCH(copy[KILN_HDR_RESERVED1 + 5] = 1, KILN_ERROR_CORRUPT, "reserved");
    size_t gap = 0;   /* the first padding byte between two sections */
    for (uint32_t id = 1; id + 1 < KILN_SECTION_ID_COUNT && !gap; id++) {
        size_t len, at = section_offset(bytes, id, &len);
        if (at + len < section_offset(bytes, id + 1, NULL)) gap = at + len;
    }
    REQUIRE(gap);
    PATCH(copy[gap] = 1, KILN_ERROR_CORRUPT, "padding byte at offset");
#undef PATCH
    free(copy);
    kiln_aligned_free(bytes);
}

/* --- semantic corruption: bad descs written through the (non-validating) writer --- */

typedef void (*desc_patch)(kiln_engine_desc *d);

static void check_bad_desc(desc_patch patch, const char *expected, int case_index) {
    kiln_engine_desc d;
    if (!sample_full(&d)) { CHECK(!"sample_full"); return; }
    patch(&d);
    uint8_t *bytes;
    size_t size;
    kiln_status st = kiln_format_write(&d, &bytes, &size);
    kiln_engine_desc_clear(&d);
    test_checks++;
    if (st != KILN_OK) {
        test_failures++;
        fprintf(stderr, "case %d: writer refused: %s\n", case_index, kiln_last_error());
        return;
    }
    st = read_copy(bytes, size, 0);
    kiln_aligned_free(bytes);
    test_checks++;
    if (st != KILN_ERROR_CORRUPT || !strstr(kiln_last_error(), expected)) {
        test_failures++;
        fprintf(stderr, "case %d: got %s \"%s\", wanted corrupt engine containing \"%s\"\n", case_index,
                kiln_status_string(st), kiln_last_error(), expected);
    }
}

static void bad_input_index(kiln_engine_desc *d) { d->layers[1].inputs[1] = 99; }
static void bad_output_index(kiln_engine_desc *d) { d->layers[4].outputs[0] = -2; }
static void bad_weights_range(kiln_engine_desc *d) { d->tensors[SAMPLE_W].offset = 1024; }
static void bad_weights_align(kiln_engine_desc *d) { d->tensors[SAMPLE_W].offset = 600; }
static void bad_constant_size(kiln_engine_desc *d) { d->tensors[SAMPLE_EMB].size = 641; }
static void bad_constant_shape(kiln_engine_desc *d) { d->tensors[SAMPLE_EMB].shape[0] = d->tensors[SAMPLE_X].shape[0]; }
static void bad_arena(kiln_engine_desc *d) { d->tensors[SAMPLE_WS].size = 257; }
static void bad_dtype(kiln_engine_desc *d) { d->tensors[SAMPLE_G].dtype = 200; }
static void bad_kind(kiln_engine_desc *d) { d->tensors[SAMPLE_G].kind = 7; }
static void bad_rank(kiln_engine_desc *d) { d->tensors[SAMPLE_G].rank = 9; }
static void bad_expr_id(kiln_engine_desc *d) { d->tensors[SAMPLE_X].shape[1] = 5000; }
static void bad_dup_tensor(kiln_engine_desc *d) { d->tensors[SAMPLE_M].name[0] = 'p'; }
static void bad_empty_name(kiln_engine_desc *d) { d->tensors[SAMPLE_M].name[0] = 0; }
static void bad_dup_dim(kiln_engine_desc *d) { strcpy(d->dims[1].name, "bat"); strcpy(d->dims[0].name, "bat"); }
static void bad_range(kiln_engine_desc *d) { d->dims[1].ranges[1].opt = 1000; }
static void bad_negative_min(kiln_engine_desc *d) { d->dims[0].ranges[0].min = -1; }
static void bad_no_profiles(kiln_engine_desc *d) { d->profile_count = 0; }
static void bad_io_missing(kiln_engine_desc *d) { d->io_count = 3; }
static void bad_io_twice(kiln_engine_desc *d) { d->io[3] = SAMPLE_Y; }
static void bad_io_kind(kiln_engine_desc *d) { d->io[3] = SAMPLE_G; }
static void bad_io_order(kiln_engine_desc *d) { d->io[0] = SAMPLE_Y; d->io[2] = SAMPLE_X; }
static void bad_output_kind(kiln_engine_desc *d) { d->layers[0].outputs[0] = SAMPLE_W; }
static void bad_workspace(kiln_engine_desc *d) { d->layers[3].workspace = SAMPLE_X; }
static void bad_workspace_index(kiln_engine_desc *d) { d->layers[3].workspace = 12; }
static void bad_op(kiln_engine_desc *d) { d->layers[2].op = 42; }
static void bad_binary_subop(kiln_engine_desc *d) { d->layers[1].subop = KILN_BINARY_OP_COUNT; }   /* 9 */
static void bad_unary_subop(kiln_engine_desc *d) { d->layers[2].subop = -1; }
static void bad_plugin_index(kiln_engine_desc *d) { d->layers[3].subop = 1; }
static void bad_arity(kiln_engine_desc *d) { d->layers[6].input_count = 0; }
static void bad_binary_dtype(kiln_engine_desc *d) { d->tensors[SAMPLE_S].dtype = KILN_FLOAT16; }
static void bad_unary_dtype(kiln_engine_desc *d) {
    d->tensors[SAMPLE_S].dtype = KILN_INT32;  /* relu(int32) */
    d->tensors[SAMPLE_R].dtype = KILN_INT32;
    d->layers[1].op = KILN_OP_CAST;           /* keep the add from complaining first */
    d->layers[1].input_count = 1;
    d->layers[1].inputs[0] = SAMPLE_G;
}
static void bad_gather_indices(kiln_engine_desc *d) { d->tensors[SAMPLE_IDS].dtype = KILN_FLOAT32; }
static void bad_gather_axis(kiln_engine_desc *d) { d->layers[0].axis = 2; }
static void bad_matmul_dtype(kiln_engine_desc *d) {
    d->tensors[SAMPLE_W].dtype = KILN_INT32;
}
/* matmul's transpose flags: none, or two of 0/1 that are not both 0. */
static void bad_matmul_flag_value(kiln_engine_desc *d) { d->layers[4].attrs = (kiln_layer_attrs){.int_count = 2, .ints = {0, 2}}; }
static void bad_matmul_flags_zero(kiln_engine_desc *d) { d->layers[4].attrs = (kiln_layer_attrs){.int_count = 2}; }
static void bad_matmul_flag_count(kiln_engine_desc *d) { d->layers[4].attrs = (kiln_layer_attrs){.int_count = 1, .ints = {1}}; }
static void bad_matmul_flag_expr(kiln_engine_desc *d) { d->layers[4].attrs = (kiln_layer_attrs){.expr_count = 1}; }
/* p [batch, seq, 16] read transposed: the rule's output is [batch, 16, 16], not the stored one. */
static void bad_matmul_flag_shape(kiln_engine_desc *d) { d->layers[4].attrs = (kiln_layer_attrs){.int_count = 2, .ints = {1, 0}}; }
static void bad_reshape_dtype(kiln_engine_desc *d) { d->tensors[SAMPLE_Y].dtype = KILN_INT64; }
static void bad_check_cond(kiln_engine_desc *d) { d->checks[0].cond = -1; }
static void bad_read_before_write(kiln_engine_desc *d) { d->layers[0].inputs[0] = SAMPLE_M; }
static void bad_written_twice(kiln_engine_desc *d) { d->layers[2].outputs[0] = SAMPLE_S; }
static void bad_unwritten_output(kiln_engine_desc *d) { d->layers[6].outputs[0] = SAMPLE_WS; }
static void bad_plugin_name(kiln_engine_desc *d) { d->plugins[0].name[0] = 0; }

static void test_semantic_corruption(void) {
    static const struct { desc_patch patch; const char *expected; } cases[] = {
        {bad_input_index, "layer 1 input 1 refers to tensor 99 but there are 12 tensors"},
        {bad_output_index, "layer 4 output 0 refers to tensor -2 but there are 12 tensors"},
        {bad_weights_range, "constant tensor 3 'w' bytes [1024, +1024) lie outside the 1664-byte weights section"},
        {bad_weights_align, "weights offset 600 is not 64-byte aligned"},
        {bad_constant_size, "constant tensor 2 'emb' has size 641 but its shape and dtype need 640"},
        {bad_constant_shape, "constant tensor 2 'emb' dimension 0 is not a constant expression"},
        {bad_arena, "activation tensor 7 'ws' bytes [4194304, +257) lie outside the 4194560-byte activation arena"},
        {bad_dtype, "tensor 4 'g' has unknown dtype 200"},
        {bad_kind, "tensor 4 'g' has unknown kind 7"},
        {bad_rank, "rank 9 is more than KILN_MAX_RANK"},
        {bad_expr_id, "tensor 0 'x' dimension 1 refers to expression 5000"},
        {bad_dup_tensor, "tensor 8 and tensor 9 have the same name 'p'"},
        {bad_empty_name, "tensor 9 has no name"},
        {bad_dup_dim, "dim 0 and dim 1 have the same name 'bat'"},
        {bad_range, "dim 1 'seq' profile 1 range (min 1, opt 1000, max 512)"},
        {bad_negative_min, "dim 0 'batch' profile 0 range (min -1"},
        {bad_no_profiles, "2 dims but 0 optimization profiles"},
        {bad_io_missing, "output tensor 11 'y16' is missing from the io list"},
        {bad_io_twice, "io entry 3 lists tensor 10 'y' a second time"},
        {bad_io_kind, "io entry 3 is tensor 4 'g', a activation, not an input or output"},
        {bad_io_order, "io entry 1 is input 'ids' after an output"},
        {bad_output_kind, "layer 0 output 0 is tensor 3 'w', a constant, not an activation or output"},
        {bad_workspace, "layer 3 workspace is tensor 0 'x', a input, not an activation"},
        {bad_workspace_index, "layer 3 workspace refers to tensor 12 but there are 12 tensors"},
        {bad_op, "layer 2 has unknown op 42"},
        {bad_binary_subop, "layer 1 (binary): unknown binary op 9"},
        {bad_unary_subop, "layer 2 (unary): unknown unary op -1"},
        {bad_plugin_index, "layer 3 (plugin): refers to plugin 1 but there are 1 plugins"},
        {bad_arity, "layer 6 (cast): has 0 inputs and 1 outputs, wants 1 and 1"},
        {bad_binary_dtype, "layer 1 (binary): output 's' is stored as float16 [batch, seq, 16] but the op's rule gives float32"},
        {bad_unary_dtype, "layer 2 (unary): relu of 's': dtype int32 is not supported"},
        {bad_gather_indices, "layer 0 (gather): gather: indices 'ids' are float32; need int32 or int64"},
        {bad_gather_axis, "layer 0 (gather): gather: axis 2 is out of range for 'emb' of rank 2"},
        {bad_matmul_dtype, "layer 4 (matmul): matmul of 'p' (float32) and 'w' (int32): both must have the same floating-point dtype"},
        {bad_matmul_flag_value, "layer 4 (matmul): matmul of 'p' and 'w': transpose_b is 2; must be 0 or 1"},
        {bad_matmul_flags_zero, "layer 4 (matmul): its attribute lists are not in the canonical form its op's rule gives"},
        {bad_matmul_flag_count, "layer 4 (matmul): matmul of 'p' and 'w': 1 integer and 0 expression attributes; needs "
                                "none, or 2 integers (transpose_a, transpose_b)"},
        {bad_matmul_flag_expr, "layer 4 (matmul): matmul of 'p' and 'w': 0 integer and 1 expression attributes"},
        {bad_matmul_flag_shape, "layer 4 (matmul): output 'm' is stored as float32 [batch, seq, 16] but the op's rule "
                                "gives float32 [batch, 16, 16]"},
        {bad_reshape_dtype, "layer 5 (reshape): output 'y' is stored as int64 [(batch * seq), 16] but the op's rule gives float32"},
        {bad_check_cond, "check 0 condition refers to expression -1"},
        {bad_read_before_write, "layer 0 input 0 reads tensor 9 'm' before any layer writes it"},
        {bad_written_twice, "layer 2 output 0 writes tensor 5 's', already written by layer 1"},
        {bad_unwritten_output, "output tensor 11 'y16' is not written by any layer"},
        {bad_plugin_name, "plugin 0 has no name"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_bad_desc(cases[i].patch, cases[i].expected, (int)i);
}

/* --- allocation failures ------------------------------------------------------------ */

static void test_out_of_memory(void) {
    uint8_t *bytes;
    size_t size;
    REQUIRE(write_sample(&bytes, &size));
    int failures = 0;
    for (long n = 0; n < 10000; n++) {
        kiln_engine_desc d;
        kiln_alloc_fail_after(n);
        kiln_status st = kiln_format_read(bytes, size, 0, &d);
        kiln_alloc_fail_after(-1);
        if (st == KILN_OK) {
            kiln_engine_desc_clear(&d);
            break;
        }
        failures++;
        CHECK(st == KILN_ERROR_NO_MEMORY);
        CHECK(desc_is_clear(&d));
    }
    CHECK(failures > 20);   /* every allocation of the reader was made to fail once */

    kiln_engine_desc d;
    REQUIRE(sample_full(&d));
    uint8_t *out;
    size_t out_size;
    kiln_alloc_fail_after(0);
    CHECK(kiln_format_write(&d, &out, &out_size) == KILN_ERROR_NO_MEMORY && out == NULL);
    kiln_alloc_fail_after(-1);
    kiln_engine_desc_clear(&d);
    kiln_aligned_free(bytes);
}

/* --- the writer's own refusals ---------------------------------------------------- */

static void test_writer_arguments(void) {
    kiln_engine_desc d;
    uint8_t *out;
    size_t size;
    REQUIRE(sample_full(&d));
    CHECK_FAILS(kiln_format_write(NULL, &out, &size), KILN_ERROR_INVALID_ARGUMENT, "desc is NULL");
    d.tensor_count = -1;
    CHECK_FAILS(kiln_format_write(&d, &out, &size), KILN_ERROR_INVALID_ARGUMENT, "tensor count -1");
    d.tensor_count = SAMPLE_TENSOR_COUNT;
    int32_t *saved = d.layers[2].inputs;
    d.layers[2].inputs = NULL;
    CHECK_FAILS(kiln_format_write(&d, &out, &size), KILN_ERROR_INVALID_ARGUMENT, "layer 2");
    d.layers[2].inputs = saved;
    kiln_engine_desc_clear(&d);
    kiln_engine_desc back;
    CHECK_FAILS(kiln_format_read(NULL, 10, 0, &back), KILN_ERROR_INVALID_ARGUMENT, "data is NULL");
    CHECK_FAILS(kiln_format_read(NULL, 0, 0, &back), KILN_ERROR_CORRUPT, "truncated");
}

/* --- the checksum ------------------------------------------------------------------- */

/* A section past the parallel threshold: the same sum on any number of
 * threads, and the documented definition (block sums, then the length). */
static void test_section_checksum_threads(void) {
    size_t size = ((size_t)65 << 20) + 12345;   /* 17 blocks, the last one short */
    uint8_t *data = malloc(size);
    REQUIRE(data);
    for (size_t i = 0; i < size; i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
    size_t blocks = (size + KILN_CHECKSUM_BLOCK - 1) / KILN_CHECKSUM_BLOCK;
    uint8_t sums[8 * 32];
    for (size_t b = 0; b < blocks; b++) {
        size_t off = b * KILN_CHECKSUM_BLOCK, n = size - off < KILN_CHECKSUM_BLOCK ? size - off : KILN_CHECKSUM_BLOCK;
        kiln_store_u64le(sums + 8 * b, kiln_checksum(data + off, n));
    }
    kiln_store_u64le(sums + 8 * blocks, (uint64_t)size);
    uint64_t want = kiln_checksum(sums, 8 * blocks + 8);
    static const char *const counts[] = {"1", "3", "64"};
    for (int c = 0; c < 3; c++) {
        setenv("KILN_CPU_THREADS", counts[c], 1);
        uint64_t got = 0;
        CHECK(kiln_section_checksum(data, size, &got) == 1);
        CHECK(got == want);
    }
    unsetenv("KILN_CPU_THREADS");
    free(data);
}

static void test_checksum(void) {
    uint8_t buf[300], shifted[301];
    for (int i = 0; i < 300; i++) buf[i] = (uint8_t)(i * 7 + 3);
    CHECK(kiln_checksum(NULL, 0) == kiln_checksum(buf, 0));
    CHECK(kiln_checksum(buf, 0) != kiln_checksum(buf, 1));
    /* Every single-bit change of every length up to 300 changes the sum. */
    int same = 0;
    for (size_t len = 1; len <= 300; len += 7) {
        uint64_t base = kiln_checksum(buf, len);
        for (size_t at = 0; at < len; at++)
            for (int bit = 0; bit < 8; bit++) {
                buf[at] ^= (uint8_t)(1 << bit);
                same += kiln_checksum(buf, len) == base;
                buf[at] ^= (uint8_t)(1 << bit);
            }
    }
    CHECK(same == 0);
    /* Alignment does not matter; appending zeros does. */
    memcpy(shifted + 1, buf, 300);
    CHECK(kiln_checksum(shifted + 1, 300) == kiln_checksum(buf, 300));
    uint8_t zeros[64] = {0};
    CHECK(kiln_checksum(zeros, 32) != kiln_checksum(zeros, 40));
    /* Fixed values pin the definition: engines written today must verify
     * tomorrow, on any host (these are also in docs/engine-format.md). */
    uint8_t seq[100];
    for (int i = 0; i < 100; i++) seq[i] = (uint8_t)i;
    CHECK(kiln_checksum("", 0) == UINT64_C(0xeb3ed8d685c5fa50));
    CHECK(kiln_checksum("kiln", 4) == UINT64_C(0x52dbebd2f3d692b3));
    CHECK(kiln_checksum(seq, 100) == UINT64_C(0xa48fa43a3be3bd49));
}

/* A matmul with a transposed operand round-trips: its flags are the
 * layer's integer list (w is square, so transposing it keeps the shapes). */
static void test_matmul_flags_roundtrip(void) {
    kiln_engine_desc orig, back;
    REQUIRE(sample_full(&orig));
    REQUIRE(orig.layers[4].op == KILN_OP_MATMUL);
    orig.layers[4].attrs = (kiln_layer_attrs){.int_count = 2, .ints = {0, 1}};
    uint8_t *bytes;
    size_t size;
    CHECK_OK(kiln_format_write(&orig, &bytes, &size));
    kiln_status st = kiln_format_read(bytes, size, 0, &back);
    if (st != KILN_OK) fprintf(stderr, "read: %s\n", kiln_last_error());
    REQUIRE(st == KILN_OK);
    compare_descs(&orig, &back);
    const kiln_layer_attrs *a = &back.layers[4].attrs;
    CHECK(a->int_count == 2 && a->ints[0] == 0 && a->ints[1] == 1 && a->expr_count == 0);
    char detail[128];
    kiln_layer_describe(&back, &back.layers[4], detail, sizeof detail);
    CHECK(strcmp(detail, "transpose_a 0 transpose_b 1") == 0);
    kiln_engine_desc_clear(&back);
    kiln_engine_desc_clear(&orig);
    kiln_aligned_free(bytes);
}

/* --- the committed fuzz seeds load ----------------------------------------------------- */

static void test_corpus_seeds(void) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (!slash) return;
    snprintf(slash, sizeof dir - (size_t)(slash - dir), "/../fuzz/corpus");
    DIR *dp = opendir(dir);
    if (!dp) { fprintf(stderr, "(no corpus at %s)\n", dir); return; }
    int loaded = 0, old_matmuls = 0;
    struct dirent *ent;
    while ((ent = readdir(dp))) {
        size_t n = strlen(ent->d_name);
        if (n < 7 || strcmp(ent->d_name + n - 7, ".engine") != 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        uint8_t *data = malloc(1 << 20);
        size_t size = fread(data, 1, 1 << 20, f);
        fclose(f);
        kiln_engine_desc d;
        kiln_status st = kiln_format_read(data, size, 0, &d);
        if (st != KILN_OK) fprintf(stderr, "%s: %s\n", path, kiln_last_error());
        CHECK(st == KILN_OK);
        loaded += st == KILN_OK;
        /* The seeds are format version 1, from before matmul's transpose
         * flags: their matmuls have no attribute lists, which the rule takes
         * as no transpose. */
        for (int32_t i = 0; st == KILN_OK && i < d.layer_count; i++)
            if (d.layers[i].op == KILN_OP_MATMUL) {
                CHECK(d.layers[i].attrs.int_count == 0 && d.layers[i].attrs.expr_count == 0);
                old_matmuls++;
            }
        kiln_engine_desc_clear(&d);
        free(data);
    }
    closedir(dp);
    CHECK(loaded >= 2);
    CHECK(old_matmuls >= 1);
}

int main(void) {
    TEST_RUN(test_checksum);
    TEST_RUN(test_section_checksum_threads);
    TEST_RUN(test_roundtrip);
    TEST_RUN(test_parallel_roundtrip);
    TEST_RUN(test_every_truncation);
    TEST_RUN(test_random_flips);
    TEST_RUN(test_newer_version);
    TEST_RUN(test_skip_weight_checksum);
    TEST_RUN(test_structural_patches);
    TEST_RUN(test_semantic_corruption);
    TEST_RUN(test_out_of_memory);
    TEST_RUN(test_writer_arguments);
    TEST_RUN(test_matmul_flags_roundtrip);
    TEST_RUN(test_corpus_seeds);
    return test_summary();
}
