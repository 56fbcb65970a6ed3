/* bench_checksum.c — the engine checksum's speed, and kiln_format_read on an
 * engine with 1 GiB of weights, with and without the weights checksum.
 * The memory-read row is the ceiling: a loop that only sums the words.
 * Links kiln_static (the checksum and the format are private). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_clock.h"
#include "core/alloc.h"
#include "format/checksum.h"
#include "format/engine_format.h"

#define GIB ((size_t)1 << 30)

static double best_of(int reps, double (*fn)(void *), void *arg) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t = fn(arg);
        if (t < best) best = t;
    }
    return best;
}

static const uint8_t *g_data;
static size_t g_size;
static volatile uint64_t g_sink;

static double run_checksum(void *arg) {
    (void)arg;
    double t0 = bench_now();
    g_sink ^= kiln_checksum(g_data, g_size);
    return bench_now() - t0;
}

static double run_sum(void *arg) {
    (void)arg;
    double t0 = bench_now();
    uint64_t a = 0, b = 0, c = 0, d = 0, w[4];
    for (size_t i = 0; i + 32 <= g_size; i += 32) {
        memcpy(w, g_data + i, 32);
        a += w[0]; b ^= w[1]; c += w[2]; d ^= w[3];
    }
    g_sink ^= a + b + c + d;
    return bench_now() - t0;
}

static double run_read(void *arg) {
    uint32_t flags = *(uint32_t *)arg;
    kiln_engine_desc d;
    double t0 = bench_now();
    kiln_status st = kiln_format_read(g_data, g_size, flags, &d);
    double t = bench_now() - t0;
    if (st != KILN_OK) { fprintf(stderr, "read: %s\n", kiln_last_error()); exit(1); }
    kiln_engine_desc_clear(&d);
    return t;
}

int main(void) {
    uint8_t *weights = kiln_aligned_alloc(GIB);
    if (!weights) { fprintf(stderr, "out of memory\n"); return 1; }
    for (size_t i = 0; i < GIB; i += 8) { uint64_t v = i * 0x9E3779B97F4A7C15ull; memcpy(weights + i, &v, 8); }

    /* One constant tensor of 2^28 float32 holding all the weights. */
    kiln_engine_desc desc;
    memset(&desc, 0, sizeof desc);
    desc.exprs = kiln_exprs_create();
    kiln_expr n = kiln_expr_const(desc.exprs, (int64_t)(GIB / 4));
    kiln_tensor_record w = {.name = "w", .kind = KILN_TENSOR_CONSTANT, .dtype = KILN_FLOAT32, .rank = 1,
                            .shape = {n, -1, -1, -1, -1, -1, -1, -1}, .offset = 0, .size = GIB};
    desc.tensors = &w;
    desc.tensor_count = 1;
    desc.profile_count = 1;
    desc.weights = weights;
    desc.weights_size = GIB;
    uint8_t *bytes;
    size_t size;
    if (kiln_format_write(&desc, &bytes, &size) != KILN_OK) { fprintf(stderr, "%s\n", kiln_last_error()); return 1; }
    kiln_exprs_free(desc.exprs);
    kiln_aligned_free(weights);

    printf("%-44s %10s %10s\n", "1 GiB in memory", "ms", "GB/s");
    g_data = bytes;
    g_size = size;
    double t = best_of(5, run_sum, NULL);
    printf("%-44s %10.1f %10.2f\n", "memory read (sum of words, the ceiling)", t * 1e3, GIB / t / 1e9);
    t = best_of(5, run_checksum, NULL);
    printf("%-44s %10.1f %10.2f\n", "kiln_checksum", t * 1e3, GIB / t / 1e9);
    uint32_t flags = 0;
    t = best_of(5, run_read, &flags);
    printf("%-44s %10.1f %10.2f\n", "kiln_format_read (all checksums)", t * 1e3, GIB / t / 1e9);
    flags = KILN_LOAD_SKIP_WEIGHT_CHECKSUM;
    t = best_of(5, run_read, &flags);
    printf("%-44s %10.3f %10s\n", "kiln_format_read (SKIP_WEIGHT_CHECKSUM)", t * 1e3, "-");
    kiln_aligned_free(bytes);
    return 0;
}
