/* cpu_conv.c — CONV (ONNX Conv) over 1 to 3 spatial axes.
 *
 * im2col + matrix product: for each image n and group g, the input patches
 * are laid out as a float32 matrix col[Kg, P] (Kg = C/group · K1·…·Kk rows,
 * one per weight tap; P = O1·…·Ok columns, one per output position; zero
 * where the tap falls in the padding), and out[n, g's M/group channels] =
 * w_g[M/group, Kg] · col.  The product is kiln_cpu_matmul on float32
 * descriptors, so it takes the system BLAS, the AVX2 kernel or the portable
 * one, on threads, as any float32 matmul does.  float16 and bfloat16 are
 * widened to float32 once (weights) or per image (input) and the float32
 * sums rounded once at the end, so every dtype accumulates in float32.
 *
 * A 1x1 convolution with unit strides and no pads skips the im2col copy
 * (the image is its own col matrix), and when an image has few output
 * positions the columns of several images share one product, so that the
 * late layers of a CNN (7x7 positions) do not run as skinny products.
 * Depthwise convolutions (C/group = 1) go through the same path with
 * products of one row; that is simple rather than fast. */
#include <stdint.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"

/* The layer's geometry, from its descriptors and attributes (group,
 * strides, dilations, pads begin, pads end). */
typedef struct conv_geom {
    int32_t k;                                  /* spatial axes */
    int64_t N, C, M, group, cg, mg;             /* cg = C/group, mg = M/group */
    int64_t in[3], ker[3], out[3];
    int64_t stride[3], dil[3], pad[3];          /* pad: the begin pads (end pads only size the output) */
    int64_t taps, positions, in_plane;          /* K1·…·Kk, O1·…·Ok, D1·…·Dk */
} conv_geom;

/* Fill col rows [r0, r1) of one image: row r (ld floats apart) is channel
 * r / taps of the group and tap r % taps; entries are the input under that
 * tap at each output position, 0 in the padding. */
static void im2col_rows(const conv_geom *g, const float *x, float *col, int64_t ld, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
        const int64_t ch = r / g->taps;
        int64_t t = r % g->taps, tap[3] = {0, 0, 0};
        for (int32_t i = g->k - 1; i >= 0; i--) {
            tap[i] = t % g->ker[i];
            t /= g->ker[i];
        }
        const float *plane = x + ch * g->in_plane;
        float *row = col + r * ld;
        /* Odometer over the output positions; the innermost axis runs in a loop. */
        const int32_t last = g->k - 1;
        int64_t pos[3] = {0, 0, 0};
        const int64_t outer = g->positions / g->out[last];
        for (int64_t o = 0; o < outer; o++) {
            int64_t base = 0;
            int inside = 1;
            for (int32_t i = 0; i < last; i++) {
                int64_t at = pos[i] * g->stride[i] + tap[i] * g->dil[i] - g->pad[i];
                if (at < 0 || at >= g->in[i]) inside = 0;
                base = base * g->in[i] + at;
            }
            float *dst = row + o * g->out[last];
            if (!inside) {
                memset(dst, 0, (size_t)g->out[last] * sizeof(float));
            } else {
                const float *src = plane + base * g->in[last];
                const int64_t s = g->stride[last], off = tap[last] * g->dil[last] - g->pad[last], n = g->in[last];
                for (int64_t j = 0; j < g->out[last]; j++) {
                    int64_t at = j * s + off;
                    dst[j] = at >= 0 && at < n ? src[at] : 0.0f;
                }
            }
            for (int32_t i = last - 1; i >= 0; i--) {
                if (++pos[i] < g->out[i]) break;
                pos[i] = 0;
            }
        }
    }
}

typedef struct im2col_job {
    const conv_geom *g;
    const float     *x;       /* this image's group: cg planes */
    float           *col;     /* this image's first column */
    int64_t          ld, rows, step;
} im2col_job;

static void im2col_task(void *ctx, int t) {
    const im2col_job *j = ctx;
    int64_t r0 = (int64_t)t * j->step, r1 = r0 + j->step < j->rows ? r0 + j->step : j->rows;
    if (r0 < r1) im2col_rows(j->g, j->x, j->col, j->ld, r0, r1);
}

static void to_f32(kiln_dtype dt, const void *src, float *dst, int64_t n) {
    if (dt == KILN_FLOAT32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (dt == KILN_FLOAT16) kiln_cpu_f16_to_f32(src, dst, n);
    else kiln_cpu_bf16_to_f32(src, dst, n);
}

static void from_f32(kiln_dtype dt, const float *src, void *dst, int64_t n) {
    if (dt == KILN_FLOAT32) memcpy(dst, src, (size_t)n * sizeof(float));
    else if (dt == KILN_FLOAT16) kiln_cpu_f32_to_f16(src, dst, n);
    else kiln_cpu_f32_to_bf16(src, dst, n);
}

bool kiln_cpu_conv_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (!kiln_dtype_is_float(dt)) return false;
    for (int32_t i = 0; i < l->input_count; i++)
        if (l->inputs[i].dtype != dt) return false;
    return true;
}

/* A float32 matrix descriptor for kiln_cpu_matmul. */
static kiln_tensor_desc matrix(void *data, int64_t rows, int64_t cols) {
    kiln_tensor_desc d;
    memset(&d, 0, sizeof d);
    d.data = data;
    d.dtype = KILN_FLOAT32;
    d.rank = 2;
    d.dims[0] = rows;
    d.dims[1] = cols;
    d.strides[0] = cols;
    d.strides[1] = 1;
    return d;
}

/* The spatial part of g from the tensors and the attributes (group, then
 * strides, dilations and begin pads, k of each): sizes per axis, and the
 * taps of the kernel, the output positions and the input plane's size. */
static void conv_spatial(conv_geom *g, const kiln_tensor_desc *x, const kiln_tensor_desc *w,
                         const kiln_tensor_desc *out, const int64_t *a) {
    g->taps = g->positions = g->in_plane = 1;
    for (int32_t i = 0; i < g->k; i++) {
        g->in[i] = x->dims[2 + i];
        g->ker[i] = w->dims[2 + i];
        g->out[i] = out->dims[2 + i];
        g->stride[i] = a[1 + i];
        g->dil[i] = a[1 + g->k + i];
        g->pad[i] = a[1 + 2 * g->k + i];
        g->taps *= g->ker[i];
        g->positions *= g->out[i];
        g->in_plane *= g->in[i];
    }
}

/* How one launch runs: its geometry, the images per product, and its
 * float32 scratch (counts in floats): col [kg, nb·P] (unless direct); for
 * half types the weights and nb images' input; the sums [mg, nb·P] unless
 * they can be written in place (float32, one image); the bias. */
typedef struct conv_plan {
    conv_geom g;
    int64_t   nb;          /* images per product */
    int       half, direct;
    size_t    col_n, w_n, x_n, o_n, b_n;
} conv_plan;

/* What is wrong with a launch conv_plan_make cannot run (the run reports
 * it; the workspace query, which must not record errors, answers 0). */
typedef enum conv_fault { CONV_OK, CONV_DTYPE, CONV_LAYOUT, CONV_CHANNELS } conv_fault;

static conv_fault conv_plan_make(const kiln_layer_launch *l, conv_plan *p) {
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    if (!kiln_cpu_conv_supports(l)) return CONV_DTYPE;
    memset(p, 0, sizeof *p);
    conv_geom *g = &p->g;
    g->k = x->rank - 2;
    /* The rule has checked the shapes; these guard the kernel against a
     * launch it did not describe. */
    if (g->k < 1 || g->k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g->k)
        return CONV_LAYOUT;
    const int64_t *a = l->attrs;
    g->N = x->dims[0];
    g->C = x->dims[1];
    g->M = w->dims[0];
    g->group = a[0];
    g->cg = w->dims[1];
    g->mg = g->group > 0 ? g->M / g->group : 0;
    if (g->group < 1 || g->cg * g->group != g->C || g->mg * g->group != g->M || out->dims[0] != g->N ||
        out->dims[1] != g->M)
        return CONV_CHANNELS;
    conv_spatial(g, x, w, out, a);
    const int64_t kg = g->cg * g->taps, P = g->positions;
    p->half = out->dtype != KILN_FLOAT32;
    /* A 1x1 convolution with unit strides and no pads reads the input as
     * its own col matrix ([cg, P] per image and group): no im2col copy.
     * The end pads are not in the attributes here: an output axis as long
     * as the input's says they are 0 (an end pad makes P larger than the
     * input plane, and the matrix would read past it). */
    int pointwise = 1;
    for (int32_t i = 0; i < g->k; i++)
        pointwise &= g->ker[i] == 1 && g->stride[i] == 1 && g->pad[i] == 0 && g->out[i] == g->in[i];
    /* Images per product: a product of few columns (the late layers of a
     * CNN, 7x7 positions) runs far below the BLAS's speed, so the columns of
     * several images go into one product of at least ~1024 columns, whose
     * rows are then copied out image by image. */
    p->nb = P >= 1024 || P == 0 ? 1 : (1024 + P - 1) / P;
    if (p->nb > g->N) p->nb = g->N > 0 ? g->N : 1;
    p->direct = pointwise && p->nb == 1 && !p->half;
    const int64_t cols = p->nb * P;
    p->col_n = p->direct ? 0 : (size_t)(kg * cols);
    p->w_n = p->half ? (size_t)kiln_cpu_numel(w) : 0;
    p->x_n = p->half ? (size_t)(p->nb * g->C * g->in_plane) : 0;
    p->o_n = p->half || p->nb > 1 ? (size_t)(g->mg * cols) : 0;
    p->b_n = l->input_count == 3 ? (size_t)g->M : 0;
    return CONV_OK;
}

static size_t conv_plan_bytes(const conv_plan *p) {
    return (p->col_n + p->w_n + p->x_n + p->o_n + p->b_n + 1) * sizeof(float);
}

uint64_t kiln_cpu_conv_workspace(const kiln_layer_launch *l) {
    conv_plan p;
    return conv_plan_make(l, &p) == CONV_OK && kiln_cpu_numel(&l->outputs[0]) > 0 ? conv_plan_bytes(&p) : 0;
}

kiln_status kiln_cpu_conv(const kiln_layer_launch *l) {
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    const kiln_tensor_desc *bias = l->input_count == 3 ? &l->inputs[2] : NULL;
    conv_plan plan;
    switch (conv_plan_make(l, &plan)) {
    case CONV_OK: break;
    case CONV_DTYPE:
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: conv of %s is not supported (float32, float16, "
                          "bfloat16, one dtype for every input)",
                          kiln_dtype_name(x->dtype) ? kiln_dtype_name(x->dtype) : "?");
    case CONV_LAYOUT:
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: conv of rank %d with %d attributes", x->rank,
                          (int)l->attr_count);
    case CONV_CHANNELS:
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: conv channels: input %lld, weight [%lld, %lld], "
                          "group %lld", (long long)x->dims[1], (long long)w->dims[0], (long long)w->dims[1],
                          (long long)(l->attr_count > 0 ? l->attrs[0] : 0));
    }
    if (kiln_cpu_numel(out) == 0) return KILN_OK;
    kiln_status st = KILN_OK;
    const conv_geom g = plan.g;
    const kiln_dtype dt = out->dtype;
    const size_t es = kiln_dtype_size(dt);
    const int64_t kg = g.cg * g.taps, P = g.positions, nb = plan.nb;
    const int half = plan.half, direct = plan.direct;
    const size_t col_n = plan.col_n, w_n = plan.w_n, x_n = plan.x_n, o_n = plan.o_n;
    /* The context's workspace (asked for through kiln_cpu_conv_workspace)
     * when there is one: no allocation, and no fresh pages to fault in, per
     * run; else (a caller that gave none) an allocation of our own. */
    const size_t bytes = conv_plan_bytes(&plan);
    float *owned = NULL, *scratch = l->workspace;
    if (!scratch || l->workspace_size < bytes) {
        if (!(scratch = owned = kiln_malloc(bytes)))
            return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: conv: cannot allocate %zu bytes of im2col scratch",
                              bytes);
    }
    float *col = scratch, *wf = col + col_n, *xf = wf + w_n, *of = xf + x_n, *bf = of + o_n;
    const float *weights = half ? wf : (const float *)w->data;
    if (half) to_f32(dt, w->data, wf, (int64_t)w_n);
    if (bias) to_f32(dt, bias->data, bf, g.M);

    const int threads = kiln_parallel_threads((double)(kg * P), 1 << 16, kg);
    for (int64_t n0 = 0; n0 < g.N && !st; n0 += nb) {
        const int64_t images = g.N - n0 < nb ? g.N - n0 : nb, width = images * P;
        const char *xn = (const char *)x->data + (size_t)(n0 * g.C * g.in_plane) * es;
        const float *batch = (const float *)xn;
        if (half) {
            to_f32(dt, xn, xf, images * g.C * g.in_plane);
            batch = xf;
        }
        for (int64_t grp = 0; grp < g.group && !st; grp++) {
            const float *b = col;
            if (direct) {
                b = batch + grp * g.cg * g.in_plane;
            } else {
                for (int64_t j = 0; j < images; j++) {
                    im2col_job job = {.g = &g, .x = batch + (j * g.C + grp * g.cg) * g.in_plane, .col = col + j * P,
                                      .ld = width, .rows = kg, .step = (kg + threads - 1) / threads};
                    kiln_parallel_run(threads, threads, im2col_task, &job);
                }
            }
            /* One image in float32: the sums land in the output itself. */
            char *dst0 = (char *)out->data + (size_t)((n0 * g.M + grp * g.mg) * P) * es;
            float *sums = o_n ? of : (float *)dst0;
            kiln_tensor_desc ins[2] = {matrix((void *)(weights + grp * g.mg * kg), g.mg, kg),
                                       matrix((void *)b, kg, width)};
            kiln_tensor_desc prod = matrix(sums, g.mg, width);
            kiln_layer_launch mm = {.op = KILN_OP_MATMUL, .input_count = 2, .output_count = 1, .inputs = ins,
                                    .outputs = &prod, .world_size = 1};
            st = kiln_cpu_matmul(&mm);
            if (st) break;
            /* Row m of sums holds channel grp·mg + m of each image, P apart. */
            for (int64_t m = 0; m < g.mg; m++) {
                float *row = sums + m * width;
                if (bias) {
                    const float bv = bf[grp * g.mg + m];
                    for (int64_t p = 0; p < width; p++) row[p] += bv;
                }
                if (!o_n) continue;
                for (int64_t j = 0; j < images; j++)
                    from_f32(dt, row + j * P, dst0 + (size_t)((j * g.M + m) * P) * es, P);
            }
        }
    }
    kiln_free(owned);
    return st;
}

/* ---- CONV_TRANSPOSE ----------------------------------------------------------
 *
 * The adjoint of the above: for each image and group, col[Mg·taps, P_in] =
 * w_gᵀ · x_g (a matmul on float32 descriptors, w_g transposed once into
 * scratch), then col2im adds each column entry into the output position its
 * tap reaches: o = i·stride + tap·dilation - pad_begin, dropped when outside
 * the output (the pads crop; a negative pad leaves output positions that
 * only the bias reaches).  Threads take whole output channels, so no two
 * write one element. */

typedef struct col2im_job {
    const conv_geom *g;         /* in: the input's sizes; out: the output's */
    const float     *col;       /* [mg·taps, in positions] */
    const float     *bias;      /* the group's mg entries, or NULL */
    float           *out;       /* [mg, out positions] */
    int64_t          in_positions, step;
} col2im_job;

static void col2im_channel(const col2im_job *j, int64_t m) {
    const conv_geom *g = j->g;
    float *dst = j->out + m * g->positions;
    const float b = j->bias ? j->bias[m] : 0.0f;
    for (int64_t p = 0; p < g->positions; p++) dst[p] = b;
    if (j->in_positions == 0) return;   /* an empty input: the bias alone */
    const int32_t last = g->k - 1;
    for (int64_t t = 0; t < g->taps; t++) {
        int64_t tap[3] = {0, 0, 0}, rest = t;
        for (int32_t i = last; i >= 0; i--) {
            tap[i] = rest % g->ker[i];
            rest /= g->ker[i];
        }
        const float *row = j->col + (m * g->taps + t) * j->in_positions;
        int64_t pos[3] = {0, 0, 0};
        const int64_t outer = j->in_positions / g->in[last];
        for (int64_t q = 0; q < outer; q++) {
            int64_t base = 0;
            int inside = 1;
            for (int32_t i = 0; i < last; i++) {
                int64_t at = pos[i] * g->stride[i] + tap[i] * g->dil[i] - g->pad[i];
                if (at < 0 || at >= g->out[i]) inside = 0;
                base = base * g->out[i] + at;
            }
            if (inside) {
                float *line = dst + base * g->out[last];
                const float *src = row + q * g->in[last];
                const int64_t s = g->stride[last], off = tap[last] * g->dil[last] - g->pad[last], n = g->out[last];
                for (int64_t x = 0; x < g->in[last]; x++) {
                    int64_t at = x * s + off;
                    if (at >= 0 && at < n) line[at] += src[x];
                }
            }
            for (int32_t i = last - 1; i >= 0; i--) {
                if (++pos[i] < g->in[i]) break;
                pos[i] = 0;
            }
        }
    }
}

static void col2im_task(void *ctx, int t) {
    const col2im_job *j = ctx;
    int64_t m0 = (int64_t)t * j->step, m1 = m0 + j->step < j->g->mg ? m0 + j->step : j->g->mg;
    for (int64_t m = m0; m < m1; m++) col2im_channel(j, m);
}

kiln_status kiln_cpu_conv_transpose(const kiln_layer_launch *l) {
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    const kiln_tensor_desc *bias = l->input_count == 3 ? &l->inputs[2] : NULL;
    if (!kiln_cpu_conv_supports(l))
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: conv_transpose of %s is not supported (float32, "
                          "float16, bfloat16, one dtype for every input)",
                          kiln_dtype_name(x->dtype) ? kiln_dtype_name(x->dtype) : "?");
    conv_geom g = {.k = x->rank - 2};
    if (g.k < 1 || g.k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g.k)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: conv_transpose of rank %d with %d attributes",
                          x->rank, (int)l->attr_count);
    const int64_t *a = l->attrs;
    g.N = x->dims[0];
    g.C = x->dims[1];
    g.group = a[0];
    g.cg = g.group > 0 ? g.C / g.group : 0;
    g.mg = w->dims[1];
    g.M = g.mg * g.group;
    if (g.group < 1 || g.cg * g.group != g.C || w->dims[0] != g.C || out->dims[0] != g.N || out->dims[1] != g.M)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: conv_transpose channels: input %lld, weight "
                          "[%lld, %lld], group %lld", (long long)g.C, (long long)w->dims[0], (long long)g.mg,
                          (long long)g.group);
    /* Here positions are the output's and in_plane the input's. */
    conv_spatial(&g, x, w, out, a);
    if (kiln_cpu_numel(out) == 0) return KILN_OK;
    const kiln_dtype dt = out->dtype;
    const size_t es = kiln_dtype_size(dt);
    const int64_t rows = g.mg * g.taps;   /* of col, and of the transposed weights */
    const int half = dt != KILN_FLOAT32;
    const size_t col_n = (size_t)(rows * g.in_plane), wt_n = (size_t)kiln_cpu_numel(w),
                 x_n = half ? (size_t)(g.C * g.in_plane) : 0, w_n = half ? wt_n : 0,
                 o_n = half ? (size_t)(g.mg * g.positions) : 0, b_n = bias ? (size_t)g.M : 0;
    const size_t total = col_n + wt_n + x_n + w_n + o_n + b_n + 1;
    float *scratch = kiln_malloc(total * sizeof(float));
    if (!scratch)
        return kiln_error(KILN_ERROR_NO_MEMORY, "cpu backend: conv_transpose: cannot allocate %zu bytes of scratch",
                          total * sizeof(float));
    float *col = scratch, *wt = col + col_n, *xf = wt + wt_n, *wf = xf + x_n, *of = wf + w_n, *bf = of + o_n;
    const float *weights = (const float *)w->data;
    if (half) {
        to_f32(dt, w->data, wf, (int64_t)w_n);
        weights = wf;
    }
    if (bias) to_f32(dt, bias->data, bf, g.M);
    /* wt, per group: [rows, cg] = the group's [cg, rows] block of w, transposed. */
    for (int64_t grp = 0; grp < g.group; grp++) {
        const float *src = weights + grp * g.cg * rows;
        float *dst = wt + grp * rows * g.cg;
        for (int64_t c = 0; c < g.cg; c++)
            for (int64_t r = 0; r < rows; r++) dst[r * g.cg + c] = src[c * rows + r];
    }
    const int threads = kiln_parallel_threads((double)(g.mg * g.taps * g.in_plane), 1 << 16, g.mg);
    kiln_status st = KILN_OK;
    for (int64_t n = 0; n < g.N && !st; n++) {
        const char *xn = (const char *)x->data + (size_t)(n * g.C * g.in_plane) * es;
        const float *image = (const float *)xn;
        if (half) {
            to_f32(dt, xn, xf, g.C * g.in_plane);
            image = xf;
        }
        for (int64_t grp = 0; grp < g.group && !st; grp++) {
            kiln_tensor_desc ins[2] = {matrix(wt + grp * rows * g.cg, rows, g.cg),
                                       matrix((void *)(image + grp * g.cg * g.in_plane), g.cg, g.in_plane)};
            kiln_tensor_desc prod = matrix(col, rows, g.in_plane);
            kiln_layer_launch mm = {.op = KILN_OP_MATMUL, .input_count = 2, .output_count = 1, .inputs = ins,
                                    .outputs = &prod, .world_size = 1};
            st = kiln_cpu_matmul(&mm);
            if (st) break;
            char *dst = (char *)out->data + (size_t)((n * g.M + grp * g.mg) * g.positions) * es;
            col2im_job job = {.g = &g, .col = col, .bias = bias ? bf + grp * g.mg : NULL,
                              .out = half ? of : (float *)dst, .in_positions = g.in_plane,
                              .step = (g.mg + threads - 1) / threads};
            kiln_parallel_run(threads, threads, col2im_task, &job);
            if (half) from_f32(dt, of, dst, g.mg * g.positions);
        }
    }
    kiln_free(scratch);
    return st;
}
