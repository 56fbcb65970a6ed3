/* fuzz_engine_exec.c — libFuzzer target that loads and RUNS mutated engines.
 *
 * The reader fuzzer (fuzz_engine_reader.c) proves that parsing is safe; this
 * one proves the promise behind it: whatever engine the loader accepts can be
 * run without touching memory kiln does not own.  Each input is resealed
 * (every checksum recomputed, as docs/engine-format.md specifies, so that
 * mutations reach the checks behind the checksums), then:
 *   load from memory (plugin fields decoded, native plugins resolved: the
 *   example library's ScaleShift and SplitHalves are linked in) → CPU context
 *   → a shape for every input, chosen inside profile 0 → buffers of exactly
 *   the bytes each input and output needs, so AddressSanitizer sees any read
 *   or write past them → run.
 * Every failure must be a status with a message; nothing may crash.  Seeds
 * come from kiln_make_exec_corpus (engines built through the public API with
 * every built-in op, native plugins and dynamic shapes), generated at test
 * time so that they follow the format version. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dtype.h"
#include "format/engine_format.h"
#include "kiln/plugin.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
kiln_status kiln_plugin_library_init(void);   /* examples/native_plugin/scale_plugin.c */

enum {
    MAX_AXIS = 24,                    /* a dynamic axis is at most this long here: runs stay fast */
    MAX_BUFFER = 16 << 20,            /* larger inputs/outputs are skipped, not allocated */
    MAX_ARENA = 256 << 20,            /* engines planning more are loaded but not run (libFuzzer's RSS limit) */
};

/* A huge allocation kiln asks for must fail as NO_MEMORY, not abort. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

static void require(int cond) {
    if (!cond) abort();
}

/* A failure is a status with a message (the contract of every kiln call). */
static void failed_cleanly(kiln_status s) { require(s != KILN_OK && kiln_last_error()[0] != '\0'); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    require(kiln_plugin_library_init() == KILN_OK);
    return 0;
}

/* A size for one input axis: the constant, or the dim's opt clamped into
 * [min, min(max, MAX_AXIS)] of profile 0.  0 when the axis cannot be given. */
static int axis_size(const kiln_engine *e, kiln_expr axis, int64_t *out) {
    const kiln_exprs *pool = kiln_engine_exprs(e);
    int64_t value;
    int32_t dim;
    if (!kiln_expr_is_valid(pool, axis)) return 0;
    if (kiln_expr_is_const(pool, axis, &value)) {
        *out = value;
        return value >= 0 && value <= (int64_t)MAX_BUFFER;
    }
    if (!kiln_expr_is_dim(pool, axis, &dim)) return 1;   /* the loader should have refused it: let set_input_shape say so */
    int32_t profiles = kiln_engine_profile_count(e);
    if (profiles < 1 || profiles > 64) return 0;
    kiln_dim_range ranges[64];
    const char *name;
    if (kiln_engine_dim_info(e, dim, &name, ranges) != KILN_OK) return 0;
    int64_t hi = ranges[0].max < MAX_AXIS ? ranges[0].max : MAX_AXIS;
    int64_t v = ranges[0].opt < hi ? ranges[0].opt : hi;
    if (v < ranges[0].min) v = ranges[0].min;
    *out = v;
    return 1;
}


/* Inputs hold small values (-1 … 5), so that indices are mostly in range and
 * sometimes not, and float math stays finite. */
static void fill_input(void *buffer, kiln_dtype dtype, uint64_t bytes) {
    uint64_t n = bytes / kiln_dtype_size(dtype);
    for (uint64_t k = 0; k < n; k++) {
        int v = (int)(k % 7) - 1;
        switch (dtype) {
        case KILN_FLOAT32: ((float *)buffer)[k] = (float)v * 0.5f; break;
        case KILN_INT32: ((int32_t *)buffer)[k] = v; break;
        case KILN_INT64: ((int64_t *)buffer)[k] = v; break;
        case KILN_FLOAT16: case KILN_BFLOAT16: ((uint16_t *)buffer)[k] = (uint16_t)(0x3c00 + 0x100 * (k % 4)); break;
        default: ((int8_t *)buffer)[k] = (int8_t)v; break;
        }
    }
}

static void run_engine(kiln_engine *e) {
    if (kiln_engine_arena_bytes(e) > MAX_ARENA) return;
    kiln_context *ctx;
    kiln_status s = kiln_context_create(e, NULL, &ctx);
    if (s) { failed_cleanly(s); return; }
    int32_t n = kiln_engine_io_count(e);
    void **buffers = calloc((size_t)(n > 0 ? n : 1), sizeof *buffers);
    require(buffers != NULL);
    int ok = 1;
    for (int32_t i = 0; i < n && ok; i++) {
        kiln_io_info info;
        require(kiln_engine_io_info(e, i, &info) == KILN_OK);
        if (info.kind != KILN_IO_INPUT) continue;
        int64_t dims[KILN_MAX_RANK];
        for (int32_t a = 0; a < info.rank && ok; a++) ok = axis_size(e, info.shape[a], &dims[a]);
        if (!ok) break;
        s = kiln_context_set_input_shape(ctx, info.name, info.rank, dims);
        if (s) { failed_cleanly(s); ok = 0; }
    }
    /* Every input and output gets exactly the bytes its shape needs. */
    for (int32_t i = 0; i < n && ok; i++) {
        kiln_io_info info;
        require(kiln_engine_io_info(e, i, &info) == KILN_OK);
        int32_t rank;
        int64_t dims[KILN_MAX_RANK];
        s = kiln_context_tensor_shape(ctx, info.name, &rank, dims);
        if (s) { failed_cleanly(s); ok = 0; break; }
        uint64_t bytes = kiln_dtype_size(info.dtype);
        for (int32_t a = 0; a < rank && ok; a++)
            ok = dims[a] >= 0 && !__builtin_mul_overflow(bytes, (uint64_t)dims[a], &bytes) && bytes <= MAX_BUFFER;
        if (!ok) break;
        buffers[i] = malloc(bytes ? bytes : 1);
        require(buffers[i] != NULL);
        if (info.kind == KILN_IO_INPUT) fill_input(buffers[i], info.dtype, bytes);
        require(kiln_context_set_tensor(ctx, info.name, bytes ? buffers[i] : NULL) == KILN_OK);
    }
    if (ok) {
        s = kiln_context_enqueue(ctx, NULL);
        if (s) failed_cleanly(s);
    }
    for (int32_t i = 0; i < n; i++) free(buffers[i]);
    free(buffers);
    kiln_context_free(ctx);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* An exact-size copy: the reader must not read past it either. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    if (size) memcpy(copy, data, size);
    kiln_format_seal(copy, size);
    kiln_engine *e = NULL;
    kiln_status s = kiln_engine_load_memory(copy, size, 0, &e);
    free(copy);   /* the engine keeps its own copy */
    if (s) {
        failed_cleanly(s);
        return 0;
    }
    run_engine(e);
    kiln_engine_free(e);
    return 0;
}
