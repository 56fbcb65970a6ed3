/* cpu_rotary.c — ROTARY_EMBEDDING (ONNX RotaryEmbedding, opset 23): each
 * head's rotated pairs (x1, x2) become (x1·cos − x2·sin, x1·sin + x2·cos)
 * with the cache row of the head's position; the rest of the head is copied.
 * Where the rows and pairs are: ops/rotary_view.h, as on CUDA.
 *
 * Arithmetic is float32 whatever the dtype (float16 and bfloat16 are widened
 * exactly and the results rounded once), each product rounded on its own,
 * as the CUDA kernel's __fmul_rn/__fsub_rn do: the two backends agree to the
 * bit.  (Each product gets its own statement: C11 allows contracting a·b − c·d
 * into a fused multiply-add only within one expression.)
 *
 * Position ids are data, not shape: every one is checked against the caches'
 * rows [0, P) before anything is written, and the first bad one fails the
 * run naming it and where it is (the runtime adds the layer). */
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/parallel.h"
#include "ops/rotary_view.h"

static inline int64_t position_at(const kiln_tensor_desc *pos, int64_t j) {
    return pos->dtype == KILN_INT32 ? ((const int32_t *)pos->data)[j] : ((const int64_t *)pos->data)[j];
}

static inline float load(kiln_dtype dt, const void *p, int64_t i) {
    switch (dt) {
    case KILN_FLOAT16: return kiln_f16_to_f32(((const uint16_t *)p)[i]);
    case KILN_BFLOAT16: return kiln_bf16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

static inline void store(kiln_dtype dt, void *p, int64_t i, float v) {
    switch (dt) {
    case KILN_FLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_f16(v); break;
    case KILN_BFLOAT16: ((uint16_t *)p)[i] = kiln_f32_to_bf16(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

bool kiln_cpu_rotary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    if (!kiln_dtype_is_float(dt) || l->inputs[1].dtype != dt || l->inputs[2].dtype != dt || l->outputs[0].dtype != dt)
        return false;
    return l->input_count == 3 || l->inputs[3].dtype == KILN_INT32 || l->inputs[3].dtype == KILN_INT64;
}

typedef struct rotary_job {
    kiln_rotary_view        v;
    const kiln_tensor_desc *x, *cosc, *sinc, *pos, *out;
    int64_t                 rows_per_task;   /* (batch, position) rows */
} rotary_job;

/* Rows bs0 .. bs1-1 of (batch, position), every head of each. */
static void rotate_rows(const rotary_job *j, int64_t bs0, int64_t bs1) {
    const kiln_rotary_view *v = &j->v;
    const kiln_dtype dt = j->x->dtype;
    const size_t es = kiln_dtype_size(dt);
    const void *x = j->x->data, *cosc = j->cosc->data, *sinc = j->sinc->data;
    void *out = j->out->data;
    const int64_t rest = v->head - 2 * v->half;   /* elements after the rotated ones */
    for (int64_t bs = bs0; bs < bs1; bs++) {
        const int64_t b = bs / v->seq, s = bs - b * v->seq;
        const int64_t cache = (j->pos ? position_at(j->pos, bs) : bs) * v->half;
        for (int64_t h = 0; h < v->heads; h++) {
            const int64_t row = kiln_rotary_row(v, b, s, h);
            for (int64_t i = 0; i < v->half; i++) {
                int64_t e1, e2;
                kiln_rotary_pair(v, i, &e1, &e2);
                const float x1 = load(dt, x, row + e1), x2 = load(dt, x, row + e2);
                const float c = load(dt, cosc, cache + i), sn = load(dt, sinc, cache + i);
                const float x1c = x1 * c, x2s = x2 * sn;   /* one rounding per product (see the top) */
                const float x1s = x1 * sn, x2c = x2 * c;
                store(dt, out, row + e1, x1c - x2s);
                store(dt, out, row + e2, x1s + x2c);
            }
            if (rest > 0)
                memcpy((char *)out + (size_t)(row + 2 * v->half) * es,
                       (const char *)x + (size_t)(row + 2 * v->half) * es, (size_t)rest * es);
        }
    }
}

static void rotate_task(void *ctx, int task) {
    const rotary_job *j = ctx;
    int64_t rows = j->v.batch * j->v.seq, bs0 = (int64_t)task * j->rows_per_task;
    int64_t bs1 = bs0 + j->rows_per_task < rows ? bs0 + j->rows_per_task : rows;
    rotate_rows(j, bs0, bs1);
}

kiln_status kiln_cpu_rotary_embedding(const kiln_layer_launch *l) {
    if (!kiln_cpu_rotary_supports(l)) {
        const char *x = kiln_dtype_name(l->inputs[0].dtype), *c = kiln_dtype_name(l->inputs[1].dtype);
        return kiln_error(KILN_ERROR_UNSUPPORTED, "cpu backend: rotary_embedding of %s x with %s caches is not "
                          "supported (float32, float16, bfloat16; position ids int32 or int64)", x ? x : "?",
                          c ? c : "?");
    }
    rotary_job j = {.x = &l->inputs[0], .cosc = &l->inputs[1], .sinc = &l->inputs[2],
                    .pos = l->input_count == 4 ? &l->inputs[3] : NULL, .out = &l->outputs[0]};
    if (!kiln_rotary_view_init(&j.v, j.x, j.cosc, j.sinc, j.pos, l->attrs, l->attr_count))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "cpu backend: rotary_embedding: x, the caches, position_ids "
                          "and the attributes do not fit together");
    const int64_t rows = j.v.batch * j.v.seq;
    if (j.pos)
        for (int64_t bs = 0; bs < rows; bs++) {
            int64_t p = position_at(j.pos, bs);
            if (p < 0 || p >= j.v.positions)
                return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "rotary_embedding: position id %lld at [%lld, %lld] of "
                                  "position_ids is out of range [0, %lld) (the rows of cos_cache and sin_cache)",
                                  (long long)p, (long long)(bs / j.v.seq), (long long)(bs % j.v.seq),
                                  (long long)j.v.positions);
        }
    if (rows == 0 || j.v.heads == 0 || j.v.head == 0) return KILN_OK;
    /* Threads for large layers (a long prompt), by (batch, position) rows. */
    const int64_t elements = rows * j.v.heads * j.v.head;
    int threads = kiln_parallel_threads((double)elements, (double)(1 << 19), rows);
    if (threads <= 1) {
        rotate_rows(&j, 0, rows);
        return KILN_OK;
    }
    int tasks = threads * 4 < rows ? threads * 4 : (int)rows;
    j.rows_per_task = (rows + tasks - 1) / tasks;
    tasks = (int)((rows + j.rows_per_task - 1) / j.rows_per_task);
    kiln_parallel_run(tasks, threads, rotate_task, &j);
    return KILN_OK;
}
