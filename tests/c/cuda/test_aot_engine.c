/* test_aot_engine.c — an ahead-of-time engine run with no Python in the
 * process: the look-up engine written by examples/python_plugin/
 * build_lookup_aot.py (kiln::TritonAOT with the Triton kernel's cubin) is
 * loaded from KILN_AOT_DIR, run on the GPU, and its rows compared, byte for
 * byte, with the torch-computed rows stored next to it.  Also: a shorter
 * batch (the launch grid follows the shape), CUDA graph capture/replay, and
 * a CPU context refused with a message naming the plugin.
 * Skips (prints "skipped", passes) without KILN_AOT_DIR's files or a GPU. */
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"
#include "kiln/plugin.h"
#include "test.h"

static const char *dir;
static int tokens, vocab, hidden;
static kiln_dtype dtype;

static void *read_file(const char *name, size_t want) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    void *p = malloc(want ? want : 1);
    size_t got = p ? fread(p, 1, want, f) : 0;
    int extra = fgetc(f) != EOF;
    fclose(f);
    if (got != want || extra) {
        fprintf(stderr, "%s: expected %zu bytes\n", path, want);
        free(p);
        return NULL;
    }
    return p;
}

static int read_meta(void) {
    char path[4096], name[32];
    snprintf(path, sizeof path, "%s/meta.txt", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    int n = fscanf(f, "%d %d %d %31s", &tokens, &vocab, &hidden, name);
    fclose(f);
    return n == 4 && tokens > 0 && vocab > 0 && hidden > 0 && kiln_dtype_from_name(name, &dtype) == KILN_OK;
}

static void test_engine_needs_no_python(void) {
    /* Nothing in this process provides Python: the engine must load anyway. */
    CHECK(dlsym(RTLD_DEFAULT, "Py_Initialize") == NULL);
    char path[4096];
    snprintf(path, sizeof path, "%s/lookup_aot.engine", dir);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_file(path, 0, &e));
    REQUIRE(kiln_engine_plugin_count(e) == 1);
    const char *ns, *name, *version, *module;
    uint32_t flags = 0;
    CHECK_OK(kiln_engine_plugin_info(e, 0, &ns, &name, &version, &module));
    CHECK_OK(kiln_engine_plugin_flags(e, 0, &flags));
    CHECK(strcmp(ns, "kiln") == 0 && strcmp(name, "TritonAOT") == 0 && strcmp(version, "1") == 0);
    CHECK(!(flags & KILN_PLUGIN_NEEDS_PYTHON));
    CHECK(flags & KILN_PLUGIN_SUPPORTS_CUDA);
    kiln_context *cpu = NULL;
    CHECK_FAILS(kiln_context_create(e, NULL, &cpu), KILN_ERROR_UNSUPPORTED, "TritonAOT");
    kiln_engine_free(e);
}

/* Run n tokens through ctx (eagerly, or by graph replay) and compare with
 * the first n expected rows. */
static int run_and_compare(kiln_context *ctx, int n, const void *expected, void *d_out, void *host_out,
                           size_t row_bytes, cudaStream_t stream, int graph) {
    int64_t xs[1] = {n};
    if (kiln_context_set_input_shape(ctx, "x", 1, xs)) return fprintf(stderr, "shape: %s\n", kiln_last_error()), 0;
    int64_t rank_dims[KILN_MAX_RANK];
    int32_t rank;
    if (kiln_context_tensor_shape(ctx, "output", &rank, rank_dims) || rank != 2 || rank_dims[0] != n ||
        rank_dims[1] != hidden)
        return fprintf(stderr, "output shape wrong: %s\n", kiln_last_error()), 0;
    cudaMemsetAsync(d_out, 0xff, row_bytes * (size_t)tokens, stream);
    kiln_status s = graph ? kiln_context_capture(ctx, stream) : kiln_context_enqueue(ctx, stream);
    if (!s && graph) {
        cudaMemsetAsync(d_out, 0xff, row_bytes * (size_t)tokens, stream);   /* the replay must rewrite it */
        s = kiln_context_replay(ctx, stream);
    }
    if (s) return fprintf(stderr, "run: %s\n", kiln_last_error()), 0;
    if (cudaStreamSynchronize(stream) != cudaSuccess) return fprintf(stderr, "sync failed\n"), 0;
    if (cudaMemcpy(host_out, d_out, row_bytes * (size_t)n, cudaMemcpyDeviceToHost) != cudaSuccess) return 0;
    for (int r = 0; r < n; r++)
        if (memcmp((const char *)host_out + row_bytes * r, (const char *)expected + row_bytes * r, row_bytes)) {
            fprintf(stderr, "row %d differs from torch's\n", r);
            return 0;
        }
    return 1;
}

static void test_runs_on_gpu(void) {
    size_t esize = kiln_dtype_size(dtype), row = esize * (size_t)hidden;
    int32_t *index = read_file("index.bin", sizeof(int32_t) * (size_t)tokens);
    void *table = read_file("table.bin", row * (size_t)vocab);
    void *expected = read_file("expected.bin", row * (size_t)tokens);
    void *host_out = malloc(row * (size_t)tokens);
    REQUIRE(index && table && expected && host_out);

    char path[4096];
    snprintf(path, sizeof path, "%s/lookup_aot.engine", dir);
    kiln_engine *e;
    CHECK_OK(kiln_engine_load_file(path, 0, &e));
    kiln_context *ctx;
    kiln_context_options opt = {.struct_size = sizeof opt, .device = {KILN_DEVICE_CUDA, 0}};
    CHECK_OK(kiln_context_create(e, &opt, &ctx));

    void *d_index, *d_table, *d_out;
    cudaStream_t stream;
    REQUIRE(cudaMalloc(&d_index, sizeof(int32_t) * (size_t)tokens) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_table, row * (size_t)vocab) == cudaSuccess);
    REQUIRE(cudaMalloc(&d_out, row * (size_t)tokens) == cudaSuccess);
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    REQUIRE(cudaMemcpy(d_index, index, sizeof(int32_t) * (size_t)tokens, cudaMemcpyHostToDevice) == cudaSuccess);
    REQUIRE(cudaMemcpy(d_table, table, row * (size_t)vocab, cudaMemcpyHostToDevice) == cudaSuccess);
    CHECK_OK(kiln_context_set_tensor(ctx, "x", d_index));
    CHECK_OK(kiln_context_set_tensor(ctx, "y", d_table));
    CHECK_OK(kiln_context_set_tensor(ctx, "output", d_out));

    CHECK(run_and_compare(ctx, tokens, expected, d_out, host_out, row, stream, 0));
    if (tokens > 1) CHECK(run_and_compare(ctx, tokens - 1, expected, d_out, host_out, row, stream, 0));
    CHECK(run_and_compare(ctx, tokens, expected, d_out, host_out, row, stream, 1));
    /* The default stream (NULL) works too. */
    CHECK(run_and_compare(ctx, tokens, expected, d_out, host_out, row, NULL, 0));

    kiln_context_free(ctx);
    kiln_engine_free(e);
    cudaStreamDestroy(stream);
    cudaFree(d_index);
    cudaFree(d_table);
    cudaFree(d_out);
    free(index);
    free(table);
    free(expected);
    free(host_out);
}

int main(void) {
    dir = getenv("KILN_AOT_DIR");
    if (!dir || !dir[0] || !read_meta()) {
        printf("skipped: set KILN_AOT_DIR to the output of examples/python_plugin/build_lookup_aot.py\n");
        return 0;
    }
    TEST_RUN(test_engine_needs_no_python);
    if (!kiln_cuda_available()) {
        printf("skipped the GPU part: kiln sees no GPU\n");
        return test_summary();
    }
    TEST_RUN(test_runs_on_gpu);
    return test_summary();
}
