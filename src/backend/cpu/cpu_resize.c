/* cpu_resize.c — RESIZE (ONNX Resize): nearest, n-linear and n-cubic
 * interpolation over any axes.
 *
 * Each axis's taps (ops/resize_view.h: the source indices and weights of
 * every output index) are tabulated once per launch; each output element
 * then sums the product of its axes' taps in float32 (float16 and bfloat16
 * widened once and rounded once).  Nearest copies elements, so it takes
 * every dtype and is exact.  Output elements are split among threads. */
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "engine/engine_desc.h"
#include "ops/resize_view.h"

bool kiln_cpu_resize_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (l->inputs[0].dtype != dt || l->attr_count < 1) return false;
    return l->attrs[0] == KILN_RESIZE_NEAREST ? kiln_dtype_size(dt) > 0
                                               : (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16);
}

typedef struct resize_job {
    const kiln_resize_view *v;
    const int64_t          *idx[KILN_RESIZE_MAX_RANK];   /* per axis: out[i] × KILN_RESIZE_MAX_TAPS source indices */
    const float            *w[KILN_RESIZE_MAX_RANK];     /* their weights */
    const uint8_t          *n[KILN_RESIZE_MAX_RANK];     /* how many taps each output index has */
    int64_t                 stride[KILN_RESIZE_MAX_RANK]; /* x's strides, in elements */
    const void             *x;
    void                   *out;
    size_t                  elem;                        /* nearest: the element size */
    int64_t                 total, step;
} resize_job;

static void resize_range(const resize_job *j, int64_t e0, int64_t e1) {
    const kiln_resize_view *v = j->v;
    const int32_t r = v->rank;
    int64_t pos[KILN_RESIZE_MAX_RANK];
    int64_t rest = e0;
    for (int32_t i = r - 1; i >= 0; i--) {
        pos[i] = rest % v->out[i];
        rest /= v->out[i];
    }
    for (int64_t e = e0; e < e1; e++) {
        if (v->mode == KILN_RESIZE_NEAREST) {
            int64_t at = 0;
            for (int32_t i = 0; i < r; i++) at += j->idx[i][pos[i] * KILN_RESIZE_MAX_TAPS] * j->stride[i];
            memcpy((uint8_t *)j->out + (size_t)e * j->elem, (const uint8_t *)j->x + (size_t)at * j->elem, j->elem);
        } else {
            /* Odometer over the product of the axes' taps. */
            int t[KILN_RESIZE_MAX_RANK] = {0};
            const float *x = j->x;
            float sum = 0.0f;
            for (;;) {
                int64_t at = 0;
                float w = 1.0f;
                for (int32_t i = 0; i < r; i++) {
                    const int64_t k = pos[i] * KILN_RESIZE_MAX_TAPS + t[i];
                    at += j->idx[i][k] * j->stride[i];
                    w *= j->w[i][k];
                }
                sum += w * x[at];
                int32_t i = r - 1;
                for (; i >= 0; i--) {
                    if (++t[i] < j->n[i][pos[i]]) break;
                    t[i] = 0;
                }
                if (i < 0) break;
            }
            ((float *)j->out)[e] = sum;
        }
        for (int32_t i = r - 1; i >= 0; i--) {
            if (++pos[i] < v->out[i]) break;
            pos[i] = 0;
        }
    }
}

static void resize_task(void *ctx, int t) {
    const resize_job *j = ctx;
    int64_t e0 = (int64_t)t * j->step, e1 = e0 + j->step < j->total ? e0 + j->step : j->total;
    if (e0 < e1) resize_range(j, e0, e1);
}

kiln_status kiln_cpu_resize(const kiln_layer_launch *l) {
    const kiln_tensor_desc *x = &l->inputs[0], *out = &l->outputs[0];
    if (!kiln_cpu_resize_supports(l))
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: resize (mode %lld) of %s is not supported (float32, "
                          "float16, bfloat16; nearest every dtype)", l->attr_count ? (long long)l->attrs[0] : -1LL,
                          kiln_dtype_name(x->dtype) ? kiln_dtype_name(x->dtype) : "?");
    kiln_resize_view v;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (out->rank != x->rank || !kiln_resize_view_make(&v, x->dims, out->dims, x->rank, l->attrs, l->attr_count))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: resize of rank %d with %d attributes",
                          (int)x->rank, (int)l->attr_count);
    const int32_t r = v.rank;
    int64_t total = 1, in_total = 1, taps_rows = 0;
    for (int32_t i = 0; i < r; i++) {
        total *= v.out[i];
        in_total *= v.in[i];
        taps_rows += v.out[i];
    }
    if (total == 0) return KILN_OK;
    const kiln_dtype dt = x->dtype;
    const bool nearest = v.mode == KILN_RESIZE_NEAREST, half = !nearest && dt != KILN_FLOAT32;
    /* The tap tables, then (half) float32 copies of x and the output. */
    const size_t tab = (size_t)taps_rows * KILN_RESIZE_MAX_TAPS;
    const size_t bytes = tab * (sizeof(int64_t) + sizeof(float)) + (size_t)taps_rows +
                         (half ? (size_t)(in_total + total) * sizeof(float) : 0) + 16;
    uint8_t *mem = kiln_malloc(bytes);
    if (!mem) return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: resize: cannot allocate %zu bytes", bytes);
    int64_t *idx = (int64_t *)mem;
    float *w = (float *)(idx + tab);
    float *xf = w + tab, *of = xf + (half ? in_total : 0);
    uint8_t *n = (uint8_t *)(of + (half ? total : 0));
    resize_job job = {.v = &v, .elem = kiln_dtype_size(dt), .total = total};
    int64_t stride = 1;
    for (int32_t i = r - 1; i >= 0; i--) {
        job.stride[i] = stride;
        stride *= v.in[i];
    }
    size_t row = 0;
    for (int32_t i = 0; i < r; i++) {
        job.idx[i] = idx + row * KILN_RESIZE_MAX_TAPS;
        job.w[i] = w + row * KILN_RESIZE_MAX_TAPS;
        job.n[i] = n + row;
        for (int64_t o = 0; o < v.out[i]; o++, row++)
            n[row] = (uint8_t)kiln_resize_taps(&v, i, o, idx + row * KILN_RESIZE_MAX_TAPS,
                                               w + row * KILN_RESIZE_MAX_TAPS);
    }
    if (half) {
        if (dt == KILN_FLOAT16) kiln_cpu_f16_to_f32(x->data, xf, in_total);
        else kiln_cpu_bf16_to_f32(x->data, xf, in_total);
    }
    job.x = half ? xf : x->data;
    job.out = half ? (void *)of : out->data;
    double taps = 1;
    for (int32_t i = 0; i < r && !nearest; i++) taps *= v.mode == KILN_RESIZE_LINEAR ? 2 : 4;
    const int threads = kiln_parallel_threads((double)total * taps, 1 << 16, total);
    job.step = (total + threads - 1) / threads;
    kiln_parallel_run(threads, threads, resize_task, &job);
    if (half) {
        if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(of, out->data, total);
        else kiln_cpu_f32_to_bf16(of, out->data, total);
    }
    kiln_free(mem);
    return KILN_OK;
}
