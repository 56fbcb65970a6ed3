/* cpu_resize.c — RESIZE (ONNX Resize): nearest, n-linear and n-cubic
 * interpolation over any axes.
 *
 * Each axis's taps (ops/resize_view.h: the source indices and weights of
 * every output index) are tabulated once per launch.  Work goes by output
 * row (a position of every axis but the last): the other axes' taps give
 * the source rows and their weights once per row, and each element sums
 * its last-axis taps in each source row, then the rows, in float32 (float16
 * and bfloat16 widened once and rounded once).  When an output row
 * combines few source rows (bilinear 2, bicubic 4), each source row is
 * resized along the last axis once into a small per-thread cache of rows
 * and the output rows are weighted sums of cached rows: the same sums in
 * the same order, with the last axis's taps computed about once per source
 * row instead of once per output row.  Nearest copies elements, so it
 * takes every dtype and is exact.  Rows are split among threads. */
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
    int64_t                 rows, step;                  /* output rows (all axes but the last) per task */
    int64_t                *combo_at;                    /* per task: combo_max source row offsets ... */
    float                  *combo_w;                     /* ... and their weights */
    int64_t                 combo_max;
    /* Per task, when combo_max is small: `slots` source rows resized along
     * the last axis (nl floats each), the source offset each holds (-1:
     * none) and the output row that last used it.  Consecutive output rows
     * mostly read the same source rows, so each is resized about once. */
    int32_t                 slots;
    float                  *slot_rows;
    int64_t                *slot_key, *slot_used;
} resize_job;

/* Copy one output row of nearest taps (a typed loop per element size). */
#define NEAREST_ROW(T)                                                                     \
    do {                                                                                   \
        const T *src = (const T *)j->x + base;                                             \
        T *dst = (T *)j->out + row * nl;                                                   \
        for (int64_t xo = 0; xo < nl; xo++) dst[xo] = src[ix[xo * KILN_RESIZE_MAX_TAPS]];  \
    } while (0)

/* Output rows r0..r1 (every axis but the last: a position of the others).
 * Interpolation: the product of the other axes' taps gives the source rows
 * and their weights (the combos, an odometer, the last of them fastest);
 * each output element sums its last-axis taps in each source row, then the
 * rows by their weights, the order the CUDA kernel uses. */
static void resize_rows(const resize_job *j, int t, int64_t r0, int64_t r1) {
    const kiln_resize_view *v = j->v;
    const int32_t r = v->rank, last = r - 1;
    const int64_t nl = v->out[last];
    const int64_t *ix = j->idx[last];
    const float *wx = j->w[last];
    const uint8_t *nx = j->n[last];
    int64_t pos[KILN_RESIZE_MAX_RANK] = {0};
    int64_t rest = r0;
    for (int32_t i = last - 1; i >= 0; i--) {
        pos[i] = rest % v->out[i];
        rest /= v->out[i];
    }
    /* Each thread's combo scratch (none for nearest: no pointer arithmetic on NULL). */
    int64_t *at = j->combo_at ? j->combo_at + (int64_t)t * j->combo_max : NULL;
    float *cw = j->combo_w ? j->combo_w + (int64_t)t * j->combo_max : NULL;
    for (int64_t row = r0; row < r1; row++) {
        if (v->mode == KILN_RESIZE_NEAREST) {
            int64_t base = 0;
            for (int32_t i = 0; i < last; i++) base += j->idx[i][pos[i] * KILN_RESIZE_MAX_TAPS] * j->stride[i];
            switch (j->elem) {
            case 1: NEAREST_ROW(uint8_t); break;
            case 2: NEAREST_ROW(uint16_t); break;
            case 4: NEAREST_ROW(uint32_t); break;
            default: NEAREST_ROW(uint64_t); break;
            }
        } else {
            int64_t combos = 0;
            int tap[KILN_RESIZE_MAX_RANK] = {0};
            for (;;) {   /* odometer over the other axes' taps */
                int64_t off = 0;
                float w = 1.0f;
                for (int32_t i = 0; i < last; i++) {
                    const int64_t k = pos[i] * KILN_RESIZE_MAX_TAPS + tap[i];
                    off += j->idx[i][k] * j->stride[i];
                    w *= j->w[i][k];
                }
                at[combos] = off;
                cw[combos++] = w;
                int32_t i = last - 1;
                for (; i >= 0; i--) {
                    if (++tap[i] < j->n[i][pos[i]]) break;
                    tap[i] = 0;
                }
                if (i < 0) break;
            }
            const float *x = j->x;
            float *dst = (float *)j->out + row * nl;
            if (j->slots) {   /* each source row resized along the last axis once, then the rows combined */
                float *rows = j->slot_rows + (int64_t)t * j->slots * nl;
                int64_t *key = j->slot_key + (int64_t)t * j->slots, *used = j->slot_used + (int64_t)t * j->slots;
                for (int64_t xo = 0; xo < nl; xo++) dst[xo] = 0.0f;
                for (int64_t c = 0; c < combos; c++) {
                    int32_t k = 0;
                    while (k < j->slots && key[k] != at[c]) k++;
                    if (k == j->slots) {   /* a miss: the least recently used slot not used by this row */
                        k = -1;
                        for (int32_t q = 0; q < j->slots; q++)
                            if (used[q] != row && (k < 0 || used[q] < used[k])) k = q;
                        const float *src = x + at[c];
                        float *h = rows + (int64_t)k * nl;
                        for (int64_t xo = 0; xo < nl; xo++) {
                            const int64_t *i4 = ix + xo * KILN_RESIZE_MAX_TAPS;
                            const float *w4 = wx + xo * KILN_RESIZE_MAX_TAPS;
                            const int n = nx[xo];
                            float sv = 0.0f;
                            for (int q = 0; q < n; q++) sv += w4[q] * src[i4[q]];
                            h[xo] = sv;
                        }
                        key[k] = at[c];
                    }
                    used[k] = row;
                    const float *h = rows + (int64_t)k * nl, wc = cw[c];
                    for (int64_t xo = 0; xo < nl; xo++) dst[xo] += wc * h[xo];
                }
            } else {
            for (int64_t xo = 0; xo < nl; xo++) {
                const int64_t *i4 = ix + xo * KILN_RESIZE_MAX_TAPS;
                const float *w4 = wx + xo * KILN_RESIZE_MAX_TAPS;
                const int n = nx[xo];
                float sum = 0.0f;
                for (int64_t c = 0; c < combos; c++) {
                    const float *src = x + at[c];
                    float s = 0.0f;
                    for (int k = 0; k < n; k++) s += w4[k] * src[i4[k]];
                    sum += cw[c] * s;
                }
                dst[xo] = sum;
            }
            }
        }
        for (int32_t i = last - 1; i >= 0; i--) {
            if (++pos[i] < v->out[i]) break;
            pos[i] = 0;
        }
    }
}
#undef NEAREST_ROW

static void resize_task(void *ctx, int t) {
    const resize_job *j = ctx;
    int64_t r0 = (int64_t)t * j->step, r1 = r0 + j->step < j->rows ? r0 + j->step : j->rows;
    if (r0 < r1) resize_rows(j, t, r0, r1);
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
    resize_job job = {.v = &v, .elem = kiln_dtype_size(dt), .rows = total / v.out[r - 1]};
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
    /* The most source rows one output row combines: the product of the
     * other axes' largest tap counts (at most 4^7). */
    job.combo_max = 1;
    for (int32_t i = 0; i < r - 1; i++) {
        int64_t most = 1;
        for (int64_t o = 0; o < v.out[i]; o++) most = job.n[i][o] > most ? job.n[i][o] : most;
        job.combo_max *= most;
    }
    double taps = 1;
    for (int32_t i = 0; i < r && !nearest; i++) taps *= v.mode == KILN_RESIZE_LINEAR ? 2 : 4;
    const int threads = kiln_parallel_threads((double)total * taps, 1 << 16, job.rows);
    const size_t combo_bytes = (size_t)threads * (size_t)job.combo_max * (sizeof(int64_t) + sizeof(float));
    uint8_t *combo = nearest ? NULL : kiln_malloc(combo_bytes);
    if (!nearest && !combo) {
        kiln_free(mem);
        return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: resize: cannot allocate %zu bytes", combo_bytes);
    }
    job.combo_at = (int64_t *)combo;
    job.combo_w = combo ? (float *)(job.combo_at + (size_t)threads * (size_t)job.combo_max) : NULL;
    /* Row slots: twice the rows one output row combines, when that is few
     * (bilinear: 2 of 4, bicubic: 4 of 8). */
    uint8_t *slot_mem = NULL;
    if (!nearest && job.combo_max <= 16 && r > 1) {
        const size_t per = (size_t)(2 * job.combo_max);
        const size_t slot_bytes = (size_t)threads * per * ((size_t)v.out[r - 1] * sizeof(float) + 2 * sizeof(int64_t));
        slot_mem = kiln_malloc(slot_bytes);
        if (slot_mem) {   /* else the direct loop */
            job.slots = (int32_t)per;
            job.slot_key = (int64_t *)slot_mem;
            job.slot_used = job.slot_key + (size_t)threads * per;
            job.slot_rows = (float *)(job.slot_used + (size_t)threads * per);
            for (size_t i = 0; i < (size_t)threads * per; i++) {
                job.slot_key[i] = -1;
                job.slot_used[i] = -1;
            }
        }
    }
    job.step = (job.rows + threads - 1) / threads;
    kiln_parallel_run(threads, threads, resize_task, &job);
    kiln_free(combo);
    kiln_free(slot_mem);
    if (half) {
        if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(of, out->data, total);
        else kiln_cpu_f32_to_bf16(of, out->data, total);
    }
    kiln_free(mem);
    return KILN_OK;
}
