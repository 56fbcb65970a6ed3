/* test_collectives_ranks.c — collective layers through the C API, across two
 * processes on two GPUs, the way a C program under mpirun runs them: the
 * parent forks one child per rank before any CUDA call; each child builds its
 * rank's engine (all_reduce sum and max, all_gather and reduce_scatter along
 * axis 1), gets the id through KILN_NCCL_ID_FILE (kiln_comm_id_from_env),
 * joins, runs eagerly and through a CUDA graph, and checks every output
 * against a reference computed on the host (both ranks' inputs are known
 * functions of the rank).  Skips (passes) with fewer than two GPUs or without
 * NCCL. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kiln/kiln.h"
#include "test.h"

#define WORLD 2
#define A 3     /* x [A, B, C]; odd sizes */
#define B 5
#define C 7
#define SKIP 77

static float input(int rank, int i) { return (float)((i * 7 + rank * 13) % 19) / 8.0f - 1.0f; }

static kiln_engine *build(int rank) {
    kiln_network *net;
    if (kiln_network_create(&net)) return NULL;
    kiln_exprs *p = kiln_network_exprs(net);
    kiln_network_set_parallel(net, rank, WORLD);
    kiln_expr xs[3] = {kiln_expr_const(p, A), kiln_expr_const(p, B), kiln_expr_const(p, C)};
    kiln_expr ys[3] = {kiln_expr_const(p, A), kiln_expr_const(p, WORLD * B), kiln_expr_const(p, C)};
    kiln_tensor x, y, sum, max, gathered, scattered;
    kiln_layer_attr axis = {.name = "axis", .kind = KILN_ATTR_INT, .i = 1};
    kiln_network_add_input(net, "x", KILN_FLOAT32, 3, xs, &x);
    kiln_network_add_input(net, "y", KILN_FLOAT32, 3, ys, &y);
    kiln_network_add_layer(net, KILN_LAYER_ALL_REDUCE_SUM, 1, &x, 0, NULL, &sum);
    kiln_network_add_layer(net, KILN_LAYER_ALL_REDUCE_MAX, 1, &x, 0, NULL, &max);
    kiln_network_add_layer(net, KILN_LAYER_ALL_GATHER, 1, &x, 1, &axis, &gathered);
    kiln_network_add_layer(net, KILN_LAYER_REDUCE_SCATTER, 1, &y, 1, &axis, &scattered);
    kiln_network_mark_output(net, sum, "sum", KILN_FLOAT32);
    kiln_network_mark_output(net, max, "max", KILN_FLOAT32);
    kiln_network_mark_output(net, gathered, "gathered", KILN_FLOAT32);
    kiln_network_mark_output(net, scattered, "scattered", KILN_FLOAT32);
    kiln_blob *blob = NULL;
    kiln_engine *e = NULL;
    if (kiln_network_build(net, NULL, &blob) == KILN_OK)
        kiln_engine_load_memory(kiln_blob_data(blob), kiln_blob_size(blob), 0, &e);
    else
        fprintf(stderr, "rank %d: build: %s\n", rank, kiln_last_error());
    kiln_blob_free(blob);
    kiln_network_free(net);
    return e;
}

/* Host references: the same formulas the layers compute. */
static void expected(int rank, float *sum, float *max, float *gathered, float *scattered, float scale) {
    for (int i = 0; i < A * B * C; i++) {
        float a = scale * input(0, i), b = scale * input(1, i);
        sum[i] = a + b;
        max[i] = a > b ? a : b;
    }
    for (int i = 0; i < A; i++)           /* gathered [A, 2B, C]: rank r's x at columns r*B.. */
        for (int r = 0; r < WORLD; r++)
            for (int j = 0; j < B * C; j++)
                gathered[(i * WORLD + r) * B * C + j] = scale * input(r, i * B * C + j);
    for (int i = 0; i < A; i++)           /* scattered [A, B, C]: this rank's half of axis 1, summed */
        for (int j = 0; j < B * C; j++) {
            int at = i * WORLD * B * C + rank * B * C + j;
            scattered[i * B * C + j] = scale * (input(0, at + 1000) + input(1, at + 1000));
        }
}

static int close_to(const float *got, const float *want, int n) {
    for (int i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > 1e-5f) {
            fprintf(stderr, "  element %d: got %g, want %g\n", i, got[i], want[i]);
            return 0;
        }
    return 1;
}

static void rank_main(int rank) {
    kiln_engine *e = build(rank);
    REQUIRE(e != NULL);
    kiln_comm_id id;
    CHECK_OK(kiln_comm_id_from_env(rank, &id));
    kiln_context_options opt = {.struct_size = sizeof opt, .device = {KILN_DEVICE_CUDA, rank}};
    kiln_context *ctx;
    CHECK_OK(kiln_context_create(e, &opt, &ctx));
    REQUIRE(cudaSetDevice(rank) == cudaSuccess);

    enum { NX = A * B * C, NY = A * WORLD * B * C };
    float hx[NX], hy[NY], got[NY], want[4][NY];
    float *dx, *dy, *dout[4];
    size_t out_n[4] = {NX, NX, NY, NX};
    const char *names[4] = {"sum", "max", "gathered", "scattered"};
    REQUIRE(cudaMalloc((void **)&dx, sizeof hx) == cudaSuccess && cudaMalloc((void **)&dy, sizeof hy) == cudaSuccess);
    for (int k = 0; k < 4; k++) REQUIRE(cudaMalloc((void **)&dout[k], out_n[k] * sizeof(float)) == cudaSuccess);
    cudaStream_t stream;
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    CHECK_OK(kiln_context_set_tensor(ctx, "x", dx));
    CHECK_OK(kiln_context_set_tensor(ctx, "y", dy));
    for (int k = 0; k < 4; k++) CHECK_OK(kiln_context_set_tensor(ctx, names[k], dout[k]));
    /* Every buffer is set (enqueue checks them before the communicator). */
    CHECK_FAILS(kiln_context_enqueue(ctx, NULL), KILN_ERROR_STATE, "has joined no communicator");
    CHECK_FAILS(kiln_context_set_communicator(ctx, 1 - rank, WORLD, &id), KILN_ERROR_INVALID_ARGUMENT,
                "but the engine was built for rank");
    CHECK_OK(kiln_context_set_communicator(ctx, rank, WORLD, &id));

    /* Eager, then a graph replayed with new values in the same buffers. */
    for (int pass = 0; pass < 3; pass++) {
        float scale = pass == 0 ? 1.0f : (float)(pass + 1);
        for (int i = 0; i < NX; i++) hx[i] = scale * input(rank, i);
        for (int i = 0; i < NY; i++) hy[i] = scale * input(rank, i + 1000);
        REQUIRE(cudaMemcpyAsync(dx, hx, sizeof hx, cudaMemcpyHostToDevice, stream) == cudaSuccess);
        REQUIRE(cudaMemcpyAsync(dy, hy, sizeof hy, cudaMemcpyHostToDevice, stream) == cudaSuccess);
        if (pass == 0) CHECK_OK(kiln_context_enqueue(ctx, stream));
        if (pass == 1) CHECK_OK(kiln_context_capture(ctx, stream));
        if (pass >= 1) CHECK_OK(kiln_context_replay(ctx, stream));
        CHECK_OK(kiln_context_synchronize(ctx, stream));
        expected(rank, want[0], want[1], want[2], want[3], scale);
        for (int k = 0; k < 4; k++) {
            REQUIRE(cudaMemcpy(got, dout[k], out_n[k] * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
            if (!close_to(got, want[k], (int)out_n[k])) {
                fprintf(stderr, "rank %d pass %d: %s differs\n", rank, pass, names[k]);
                CHECK(!"collective output matches the host reference");
            }
        }
    }
    kiln_context_free(ctx);
    kiln_engine_free(e);
    for (int k = 0; k < 4; k++) cudaFree(dout[k]);
    cudaFree(dx);
    cudaFree(dy);
    cudaStreamDestroy(stream);
}

static int this_rank;
static void test_one_rank(void) { rank_main(this_rank); }

int main(void) {
    char path[256];
    snprintf(path, sizeof path, "%s/kiln-test-collectives-%ld.id", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid());
    unlink(path);
    setenv("KILN_NCCL_ID_FILE", path, 1);
    if (!getenv("KILN_NCCL_TIMEOUT_S")) setenv("KILN_NCCL_TIMEOUT_S", "120", 1);
    /* NVLink multicast stays off (NCCL reads this when a communicator is
     * made): it can take a host's shared GPUs out of service. */
    setenv("NCCL_NVLS_ENABLE", "0", 0);
    /* KILN_TEST_NO_SKIP=1 (scripts/gpu-check.sh, which has counted two GPUs):
     * a missing GPU or NCCL fails instead of skipping, so that a library
     * path problem cannot pass for a two-rank run. */
    const char *no_skip = getenv("KILN_TEST_NO_SKIP");
    const int skip_code = no_skip && no_skip[0] == '1' ? 1 : SKIP;
    pid_t pids[WORLD];
    for (int r = 0; r < WORLD; r++) {
        pids[r] = fork();
        if (pids[r] < 0) return perror("fork"), 1;
        if (pids[r] == 0) {   /* a rank: no CUDA call happened before the fork */
            int count = kiln_cuda_device_count();
            if (count < WORLD) {
                printf("skipped: rank %d sees %d GPU(s), needs %d\n", r, count, WORLD);
                fflush(stdout);
                _exit(skip_code);
            }
            kiln_comm_id probe;   /* every rank asks, so that all skip together */
            if (kiln_comm_id_new(&probe) != KILN_OK) {
                printf("skipped: %s\n", kiln_last_error());
                fflush(stdout);
                _exit(skip_code);
            }
            this_rank = r;
            TEST_RUN(test_one_rank);
            fflush(stdout);
            _exit(test_summary());
        }
    }
    int skipped = 0, failed = 0;
    for (int r = 0; r < WORLD; r++) {
        int status = 0;
        waitpid(pids[r], &status, 0);
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        skipped += code == SKIP;
        failed += code != 0 && code != SKIP;
        if (code != 0 && code != SKIP) fprintf(stderr, "rank %d exited with %d\n", r, code);
    }
    unlink(path);
    if (skipped && !failed) {
        printf("skipped\n");
        return 0;
    }
    printf(failed ? "FAILED\n" : "2 ranks passed\n");
    return failed ? 1 : 0;
}
