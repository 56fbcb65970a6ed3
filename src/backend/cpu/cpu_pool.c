/* cpu_pool.c — POOL (ONNX MaxPool, AveragePool) over 1 to 3 spatial axes.
 *
 * Each output element walks its window directly (ops/pool_view.h gives the
 * taps inside the input and the divisor); the N·C planes are split among
 * threads.  float16 and bfloat16 are widened to float32 once and the
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

typedef struct pool_job {
    const kiln_pool_view *v;
    const float          *x;
    float                *out;
    int64_t               planes, step;
    int                   is_max;
} pool_job;

static void pool_planes(const pool_job *j, int64_t p0, int64_t p1) {
    const kiln_pool_view *v = j->v;
    const int32_t k = v->k;
    for (int64_t p = p0; p < p1; p++) {
        const float *plane = j->x + p * v->in_plane;
        float *dst = j->out + p * v->out_plane;
        int64_t pos[3] = {0, 0, 0};   /* odometer over the output positions */
        for (int64_t o = 0; o < v->out_plane; o++) {
            int64_t start[3] = {0, 0, 0}, t0[3] = {0, 0, 0}, t1[3] = {1, 1, 1}, count = 1;
            for (int32_t i = 0; i < k; i++) {
                int64_t c;
                start[i] = kiln_pool_axis(v, i, pos[i], &t0[i], &t1[i], &c);
                count *= c;
            }
            float best = -INFINITY, sum = 0.0f;
            /* Up to three nested tap loops; absent axes run once at index 0. */
            for (int64_t a = t0[0]; a < t1[0]; a++) {
                const int64_t ia = start[0] + a * v->dil[0];
                for (int64_t b = k > 1 ? t0[1] : 0; b < (k > 1 ? t1[1] : 1); b++) {
                    const int64_t ib = k > 1 ? ia * v->in[1] + start[1] + b * v->dil[1] : ia;
                    for (int64_t c = k > 2 ? t0[2] : 0; c < (k > 2 ? t1[2] : 1); c++) {
                        const int64_t at = k > 2 ? ib * v->in[2] + start[2] + c * v->dil[2] : ib;
                        const float x = plane[at];
                        /* NaN sticks once seen: numpy's max and torch's. */
                        if (x > best || x != x) best = x;
                        sum += x;
                    }
                }
            }
            dst[o] = j->is_max ? best : sum / (float)count;
            for (int32_t i = k - 1; i >= 0; i--) {
                if (++pos[i] < v->out[i]) break;
                pos[i] = 0;
            }
        }
    }
}

static void pool_task(void *ctx, int t) {
    const pool_job *j = ctx;
    int64_t p0 = (int64_t)t * j->step, p1 = p0 + j->step < j->planes ? p0 + j->step : j->planes;
    if (p0 < p1) pool_planes(j, p0, p1);
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
    if (planes > 0 && v.out_plane > 0) kiln_parallel_run(threads, threads, pool_task, &job);
    if (half) {
        if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(scratch + x_n, out->data, (int64_t)o_n);
        else kiln_cpu_f32_to_bf16(scratch + x_n, out->data, (int64_t)o_n);
        kiln_free(scratch);
    }
    return KILN_OK;
}
