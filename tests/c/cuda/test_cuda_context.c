/* test_cuda_context.c — engines on a GPU: the same engine run by a CPU and a
 * CUDA context must agree; CUDA graph capture/replay must reproduce the
 * eager run and notice stale shapes or buffers.  Skips without a GPU. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"
#include "test.h"

#define N 3
#define D 64

static kiln_blob *build(void) {
    kiln_network *net;
    kiln_network_create(&net);
    kiln_exprs *pool = kiln_network_exprs(net);
    kiln_dim_range r = {1, 8, 256};
    kiln_expr rows;
    kiln_network_add_dim(net, "rows", &r, 1, &rows);
    kiln_expr xs[2] = {rows, kiln_expr_const(pool, D)};
    kiln_tensor x, w, mm, g, table, ids, emb, sum;
    kiln_network_add_input(net, "x", KILN_FLOAT32, 2, xs, &x);
    float wd[D * D], td[16 * D];
    for (int i = 0; i < D * D; i++) wd[i] = (float)((i * 13) % 17 - 8) / 32.0f;
    for (int i = 0; i < 16 * D; i++) td[i] = (float)(i % 29) / 29.0f;
    int64_t wdims[2] = {D, D}, tdims[2] = {16, D};
    kiln_network_add_constant(net, "w", KILN_FLOAT32, 2, wdims, wd, &w);
    kiln_network_add_constant(net, "table", KILN_FLOAT32, 2, tdims, td, &table);
    kiln_expr is[1] = {rows};
    kiln_network_add_input(net, "ids", KILN_INT32, 1, is, &ids);
    kiln_network_add_matmul(net, x, w, &mm);
    kiln_network_add_unary(net, KILN_UNARY_GELU, mm, &g);
    kiln_network_add_gather(net, table, ids, 0, &emb);
    kiln_network_add_binary(net, KILN_BINARY_ADD, g, emb, &sum);
    kiln_network_mark_output(net, sum, "y", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    if (kiln_network_build(net, NULL, &blob)) fprintf(stderr, "build: %s\n", kiln_last_error());
    kiln_network_free(net);
    return blob;
}

static void test_cpu_and_cuda_agree_and_graphs(void) {
    kiln_blob *blob = build();
    REQUIRE(blob != NULL);
    kiln_engine *engine;
    CHECK_OK(kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &engine));
    kiln_blob_free(blob);
    kiln_context *cpu, *gpu;
    CHECK_OK(kiln_context_create(engine, NULL, &cpu));
    kiln_context_options opt = {.struct_size = sizeof opt, .device = {KILN_DEVICE_CUDA, 0}};
    CHECK_OK(kiln_context_create(engine, &opt, &gpu));
    int rows = 37;
    float *x = malloc(sizeof(float) * rows * D), *want = malloc(sizeof(float) * rows * D),
          *got = malloc(sizeof(float) * rows * D);
    int32_t ids[256];
    for (int i = 0; i < rows * D; i++) x[i] = (float)((i * 7) % 23 - 11) / 11.0f;
    for (int i = 0; i < rows; i++) ids[i] = (i * 5) % 16;
    int64_t xs[2] = {rows, D}, is[1] = {rows};
    CHECK_OK(kiln_context_set_input_shape(cpu, "x", 2, xs));
    CHECK_OK(kiln_context_set_input_shape(cpu, "ids", 1, is));
    kiln_context_set_tensor(cpu, "x", x);
    kiln_context_set_tensor(cpu, "ids", ids);
    kiln_context_set_tensor(cpu, "y", want);
    CHECK_OK(kiln_context_enqueue(cpu, NULL));

    float *dx, *dy;
    int32_t *dids;
    cudaStream_t stream;
    REQUIRE(cudaMalloc((void **)&dx, sizeof(float) * 256 * D) == cudaSuccess);
    REQUIRE(cudaMalloc((void **)&dy, sizeof(float) * 256 * D) == cudaSuccess);
    REQUIRE(cudaMalloc((void **)&dids, sizeof(int32_t) * 256) == cudaSuccess);
    REQUIRE(cudaStreamCreate(&stream) == cudaSuccess);
    cudaMemcpy(dx, x, sizeof(float) * rows * D, cudaMemcpyHostToDevice);
    cudaMemcpy(dids, ids, sizeof(int32_t) * rows, cudaMemcpyHostToDevice);
    CHECK_OK(kiln_context_set_input_shape(gpu, "x", 2, xs));
    CHECK_OK(kiln_context_set_input_shape(gpu, "ids", 1, is));
    kiln_context_set_tensor(gpu, "x", dx);
    kiln_context_set_tensor(gpu, "ids", dids);
    kiln_context_set_tensor(gpu, "y", dy);
    CHECK_OK(kiln_context_enqueue(gpu, stream));
    cudaStreamSynchronize(stream);
    cudaMemcpy(got, dy, sizeof(float) * rows * D, cudaMemcpyDeviceToHost);
    double err = 0;
    for (int i = 0; i < rows * D; i++) err = fmax(err, fabs(got[i] - want[i]));
    CHECK(err < 1e-4);

    /* Graph: capture, change the input data (same buffer), replay. */
    CHECK_FAILS(kiln_context_replay(gpu, stream), KILN_ERROR_STATE, "no graph captured");
    CHECK_OK(kiln_context_capture(gpu, stream));
    CHECK(kiln_context_graph_ready(gpu));
    for (int i = 0; i < rows * D; i++) x[i] = -x[i];
    cudaMemcpy(dx, x, sizeof(float) * rows * D, cudaMemcpyHostToDevice);
    cudaMemset(dy, 0, sizeof(float) * rows * D);
    CHECK_OK(kiln_context_replay(gpu, stream));
    cudaStreamSynchronize(stream);
    cudaMemcpy(got, dy, sizeof(float) * rows * D, cudaMemcpyDeviceToHost);
    kiln_context_set_tensor(cpu, "x", x);
    CHECK_OK(kiln_context_enqueue(cpu, NULL));
    err = 0;
    for (int i = 0; i < rows * D; i++) err = fmax(err, fabs(got[i] - want[i]));
    CHECK(err < 1e-4);
    /* A new shape makes the graph stale. */
    xs[0] = is[0] = 5;
    CHECK_OK(kiln_context_set_input_shape(gpu, "x", 2, xs));
    CHECK_OK(kiln_context_set_input_shape(gpu, "ids", 1, is));
    CHECK(!kiln_context_graph_ready(gpu));
    CHECK_FAILS(kiln_context_replay(gpu, stream), KILN_ERROR_STATE, "stale");
    CHECK_OK(kiln_context_capture(gpu, stream));
    CHECK_OK(kiln_context_replay(gpu, stream));
    CHECK(cudaStreamSynchronize(stream) == cudaSuccess);
    CHECK_FAILS(kiln_context_capture(cpu, (void *)1), KILN_ERROR_UNSUPPORTED, "CUDA graphs need a CUDA device");

    kiln_context_free(gpu);
    kiln_context_free(cpu);
    kiln_engine_free(engine);
    cudaFree(dx); cudaFree(dy); cudaFree(dids);
    cudaStreamDestroy(stream);
    free(x); free(want); free(got);
}

int main(void) {
    if (!kiln_cuda_available()) {
        printf("skipped: no CUDA device (%s)\n", kiln_last_error());
        printf("0 passed, 0 failed\n");
        return 0;
    }
    TEST_RUN(test_cpu_and_cuda_agree_and_graphs);
    return test_summary();
}
