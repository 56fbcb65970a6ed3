/* cpu_pool.c — POOL (ONNX MaxPool, AveragePool) over 1 to 3 spatial axes.
 *
 * Each output element walks its window directly (ops/pool_view.h gives the
 * taps inside the input and the divisor, tabulated once per launch for
 * every output index of every axis: its divisions cost more than a 3x3
 * window's reads); the N·C planes are split among threads.  float16 and bfloat16 are widened to float32 once and the
 * results rounded once, so every dtype computes in float32. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "engine/engine_desc.h"
#include "ops/pool_view.h"

bool kiln_cpu_pool_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    return kiln_dtype_is_float(dt) && l->inputs[0].dtype == dt && l->subop >= 0 && l->subop < KILN_POOL_MODE_COUNT;
}

/* One output index's window along one axis (kiln_pool_axis's answer):
 * computed once per launch for every index of every axis, so the
 * per-element loop does no division. */
typedef struct pool_window {
    int64_t start, t0, t1, counted;
} pool_window;

typedef struct pool_job {
    const kiln_pool_view *v;
    const float          *x;
    float                *out;
    const pool_window    *win[3];     /* per axis, out[i] entries; missing axes padded in front */
    int64_t               in[3], out_n[3], dil[3];
    int64_t               planes, step;
    int                   is_max;
} pool_job;

/* is_max is a constant at both calls, so each gets a loop without the
 * other mode's arithmetic. */
static inline void pool_planes(const pool_job *j, int64_t p0, int64_t p1, const int is_max) {
    const kiln_pool_view *v = j->v;
    const int64_t d0 = j->dil[0], d1 = j->dil[1], d2 = j->dil[2], in1 = j->in[1], in2 = j->in[2];
    for (int64_t p = p0; p < p1; p++) {
        const float *plane = j->x + p * v->in_plane;
        float *dst = j->out + p * v->out_plane;
        for (int64_t o0 = 0; o0 < j->out_n[0]; o0++) {
            const pool_window *w0 = &j->win[0][o0];
            for (int64_t o1 = 0; o1 < j->out_n[1]; o1++) {
                const pool_window *w1 = &j->win[1][o1];
                for (int64_t o2 = 0; o2 < j->out_n[2]; o2++) {
                    const pool_window *w2 = &j->win[2][o2];
                    float best = -INFINITY, sum = 0.0f;
                    for (int64_t a = w0->t0; a < w0->t1; a++) {
                        const int64_t ia = (w0->start + a * d0) * in1;
                        for (int64_t b = w1->t0; b < w1->t1; b++) {
                            const float *row = plane + (ia + w1->start + b * d1) * in2 + w2->start;
                            for (int64_t c = w2->t0; c < w2->t1; c++) {
                                const float x = row[c * d2];
                                /* NaN sticks once seen: numpy's max and torch's. */
                                if (is_max) {
                                    if (x > best || x != x) best = x;
                                } else {
                                    sum += x;
                                }
                            }
                        }
                    }
                    *dst++ = is_max ? best : sum / (float)(w0->counted * w1->counted * w2->counted);
                }
            }
        }
    }
}

static void pool_task(void *ctx, int t) {
    const pool_job *j = ctx;
    int64_t p0 = (int64_t)t * j->step, p1 = p0 + j->step < j->planes ? p0 + j->step : j->planes;
    if (p0 >= p1) return;
    if (j->is_max) pool_planes(j, p0, p1, 1);
    else pool_planes(j, p0, p1, 0);
}

kiln_status kiln_cpu_pool(const kiln_layer_launch *l) {
    const kiln_tensor_desc *x = &l->inputs[0], *out = &l->outputs[0];
    if (!kiln_cpu_pool_supports(l))
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: pool (mode %d) of %s is not supported (float32, "
                          "float16, bfloat16)", (int)l->subop,
                          kiln_dtype_name(x->dtype) ? kiln_dtype_name(x->dtype) : "?");
    kiln_pool_view v;
    /* The rule has checked the shapes; this guards the kernel against a
     * launch it did not describe. */
    if (out->rank != x->rank || !kiln_pool_view_make(&v, x->dims, out->dims, x->rank, l->attrs, l->attr_count))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: pool of rank %d with %d attributes", x->rank,
                          (int)l->attr_count);
    const int64_t planes = x->dims[0] * x->dims[1];
    const kiln_dtype dt = x->dtype;
    const bool half = dt != KILN_FLOAT32;
    const size_t x_n = half ? (size_t)(planes * v.in_plane) : 0, o_n = half ? (size_t)(planes * v.out_plane) : 0;
    float *scratch = NULL;
    if (half) {
        scratch = kiln_malloc((x_n + o_n + 1) * sizeof(float));
        if (!scratch)
            return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: pool: cannot allocate %zu bytes of float32 "
                              "scratch", (x_n + o_n) * sizeof(float));
        if (dt == KILN_FLOAT16) kiln_cpu_f16_to_f32(x->data, scratch, (int64_t)x_n);
        else kiln_cpu_bf16_to_f32(x->data, scratch, (int64_t)x_n);
    }
    /* Work: the taps read, roughly. */
    double taps = 1;
    for (int32_t i = 0; i < v.k; i++) taps *= (double)v.kernel[i];
    const int threads = kiln_parallel_threads((double)planes * (double)v.out_plane * taps, 1 << 16, planes);
    pool_job job = {.v = &v, .x = half ? scratch : (const float *)x->data,
                    .out = half ? scratch + x_n : (float *)out->data, .planes = planes,
                    .step = (planes + threads - 1) / threads, .is_max = l->subop == KILN_POOL_MAX};
    /* The windows of every output index of every axis, the k spatial axes
     * last; a missing axis is one index with one tap at 0. */
    int64_t windows = 0;
    for (int32_t i = 0; i < v.k; i++) windows += v.out[i];
    pool_window *table = kiln_malloc((size_t)(windows + 3) * sizeof *table);
    if (!table) {
        kiln_free(scratch);
        return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: pool: cannot allocate %zu bytes of window tables",
                          (size_t)(windows + 3) * sizeof *table);
    }
    pool_window *next = table;
    for (int32_t a = 0; a < 3; a++) {
        const int32_t i = a - (3 - v.k);   /* the spatial axis at position a, or < 0 for a missing one */
        job.win[a] = next;
        if (i < 0) {
            *next++ = (pool_window){.start = 0, .t0 = 0, .t1 = 1, .counted = 1};
            job.in[a] = job.out_n[a] = 1;
            job.dil[a] = 0;
            continue;
        }
        job.in[a] = v.in[i];
        job.out_n[a] = v.out[i];
        job.dil[a] = v.dil[i];
        for (int64_t o = 0; o < v.out[i]; o++, next++)
            next->start = kiln_pool_axis(&v, i, o, &next->t0, &next->t1, &next->counted);
    }
    if (planes > 0 && v.out_plane > 0) kiln_parallel_run(threads, threads, pool_task, &job);
    kiln_free(table);
    if (half) {
        if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(scratch + x_n, out->data, (int64_t)o_n);
        else kiln_cpu_f32_to_bf16(scratch + x_n, out->data, (int64_t)o_n);
        kiln_free(scratch);
    }
    return KILN_OK;
}
