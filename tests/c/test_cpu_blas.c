/* test_cpu_blas.c — float32 matmuls through the system BLAS (cpu_blas.c).
 *
 * Run twice by ctest: as is (the BLAS the machine has, if any: CI installs
 * OpenBLAS) and with KILN_BLAS=none (kiln's own kernels).  Either way the
 * CPU backend's matmul must equal a double-precision reference within float32
 * rounding, for plain, batched and broadcast products and a one-row product
 * (token decoding), each with every combination of transposed operands (the
 * BLAS's own op flags, and its matrix-vector product both ways), and
 * KILN_BLAS=none must mean no BLAS. */
#include <math.h>
#include <stdlib.h>

#include "backend/cpu/cpu_blas.h"
#include "backend/cpu/cpu_kernels.h"
#include "test.h"

static float value(int64_t i, int salt) { return (float)((i * 7919 + salt * 104729) % 2001 - 1000) / 1000.0f; }

/* out = op(a) @ op(b) through the CPU backend, a stored [batch_a, K, M] when
 * ta, b stored [batch_b, N, K] when tb; max relative error against doubles. */
static double check_flags(int ta, int tb, int64_t batch_a, int64_t batch_b, int64_t M, int64_t K, int64_t N) {
    int64_t batch = batch_a > batch_b ? batch_a : batch_b;
    float *a = malloc(sizeof(float) * (size_t)(batch_a * M * K)), *b = malloc(sizeof(float) * (size_t)(batch_b * K * N));
    float *c = malloc(sizeof(float) * (size_t)(batch * M * N));
    if (!a || !b || !c) return 1e9;
    for (int64_t i = 0; i < batch_a * M * K; i++) a[i] = value(i, 1);
    for (int64_t i = 0; i < batch_b * K * N; i++) b[i] = value(i, 2);
    kiln_tensor_desc in[2] = {{.data = a, .dtype = KILN_FLOAT32, .rank = 3, .dims = {batch_a, ta ? K : M, ta ? M : K}},
                              {.data = b, .dtype = KILN_FLOAT32, .rank = 3, .dims = {batch_b, tb ? N : K, tb ? K : N}}};
    kiln_tensor_desc out = {.data = c, .dtype = KILN_FLOAT32, .rank = 3, .dims = {batch, M, N}};
    int64_t flags[2] = {ta, tb};
    kiln_layer_launch l = {.op = KILN_OP_MATMUL, .attrs = flags, .attr_count = ta || tb ? 2 : 0, .input_count = 2,
                           .output_count = 1, .inputs = in, .outputs = &out};
    double worst = kiln_cpu_matmul(&l) == KILN_OK ? 0 : 1e9;
    for (int64_t t = 0; t < batch && worst < 1e9; t++)
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                const float *pa = a + (batch_a == 1 ? 0 : t) * M * K, *pb = b + (batch_b == 1 ? 0 : t) * K * N;
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    double x = pa[ta ? k * M + i : i * K + k], y = pb[tb ? j * K + k : k * N + j];
                    ref += x * y;
                    mag += fabs(x * y);
                }
                double err = fabs(c[(t * M + i) * N + j] - ref) / (mag > 0 ? mag : 1);
                if (err > worst) worst = err;
            }
    free(a);
    free(b);
    free(c);
    return worst;
}

/* The worst error over the four combinations of transposes. */
static double check_product(int64_t batch_a, int64_t batch_b, int64_t M, int64_t K, int64_t N) {
    double worst = 0;
    for (int flags = 0; flags < 4; flags++) {
        double err = check_flags(flags & 1, flags >> 1, batch_a, batch_b, M, K, N);
        if (err > worst) worst = err;
    }
    return worst;
}

static void test_products(void) {
    const char *name = kiln_cpu_blas_name();
    const char *env = getenv("KILN_BLAS");
    fprintf(stderr, "BLAS: %s\n", name ? name : "none (kiln's own kernels)");
    if (env && !strcmp(env, "none")) CHECK(name == NULL);
    /* float32 sums of K terms: relative error within a few K·2^-24. */
    CHECK(check_product(1, 1, 64, 96, 80) < 1e-5);
    CHECK(check_product(3, 3, 17, 33, 29) < 1e-5);      /* batched */
    CHECK(check_product(4, 1, 9, 50, 70) < 1e-5);       /* a weight shared by every batch */
    CHECK(check_product(1, 1, 1, 512, 384) < 1e-5);     /* one row: decoding */
    CHECK(check_product(1, 1, 200, 300, 1) < 1e-5);     /* one column */
}

int main(void) {
    TEST_RUN(test_products);
    return test_summary();
}
