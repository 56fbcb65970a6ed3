/* cpu_split.c — running a large elementwise layer on several threads.
 *
 * Cast, unary and same-shape binary layers compute each output element from
 * the input elements at the same flat position, so a layer can be cut into
 * flat pieces that are layers of their own (rank 1, the same dtypes and
 * kernel).  A broadcasting binary layer (a bias added to every row) is cut
 * along the output's first axis instead: each piece takes its rows of the
 * operands that have them and all of an operand broadcast along that axis.  These kernels fail only for their dtypes and op, which an empty
 * piece run on the calling thread first checks, with the kernel's own
 * message (messages are thread-local); a failure in a worker all the same
 * is reported as such.  Results do not depend on the cut. */
#include <stdatomic.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/error.h"
#include "core/dtype.h"
#include "core/parallel.h"
#include "ops/op_table.h"

enum {
    SPLIT_MIN_ELEMENTS = 1 << 18,   /* per thread: below, starting threads costs more than it saves */
    SPLIT_ALIGN = 64,               /* pieces start on whole cache lines of every dtype */
    SPLIT_MAX_OPERANDS = 4
};

typedef struct split_job {
    const kiln_layer_launch *whole;
    kiln_status (*kernel)(const kiln_layer_launch *);
    int64_t n, step;        /* flat: elements; by rows: rows of the output's axis 0 */
    int by_rows;
    _Atomic int failed;
} split_job;

/* Elements of a tensor per index of its axis 0. */
static int64_t row_elements(const kiln_tensor_desc *d) {
    int64_t n = 1;
    for (int32_t a = 1; a < d->rank; a++) n *= d->dims[a];
    return n;
}

/* Piece [begin, begin + len) — of the flat elements, or of the output's
 * rows — of every operand, as a layer of its own. */
static kiln_status run_piece(split_job *job, int64_t begin, int64_t len) {
    const kiln_layer_launch *l = job->whole;
    kiln_tensor_desc ins[SPLIT_MAX_OPERANDS], out = l->outputs[0];
    for (int32_t i = 0; i < l->input_count; i++) ins[i] = l->inputs[i];
    for (int32_t i = 0; i <= l->input_count; i++) {
        kiln_tensor_desc *d = i < l->input_count ? &ins[i] : &out;
        if (job->by_rows) {
            /* Operands with the output's rows are cut; broadcast ones are whole. */
            if (d->rank != out.rank || d->dims[0] != l->outputs[0].dims[0]) continue;
            d->data = (char *)d->data + (size_t)(begin * row_elements(d)) * kiln_dtype_size(d->dtype);
            d->dims[0] = len;
            continue;
        }
        d->data = (char *)d->data + (size_t)begin * kiln_dtype_size(d->dtype);
        d->rank = 1;
        d->dims[0] = len;
        d->strides[0] = 1;
    }
    kiln_layer_launch piece = *l;
    piece.inputs = ins;
    piece.outputs = &out;
    return job->kernel(&piece);
}

/* ⌈n / d⌉ for n >= 0, d > 0, without the n + d - 1 that overflows near INT64_MAX. */
static int64_t ceil_div(int64_t n, int64_t d) { return n / d + (n % d != 0); }

static void run_piece_task(void *ctx, int t) {
    split_job *job = ctx;
    int64_t begin = (int64_t)t * job->step;
    if (begin >= job->n) return;
    int64_t len = job->n - begin < job->step ? job->n - begin : job->step;
    if (run_piece(job, begin, len) != KILN_OK) atomic_store(&job->failed, 1);
}

kiln_status kiln_cpu_run_split(const kiln_layer_launch *l, kiln_status (*kernel)(const kiln_layer_launch *)) {
    const int64_t n = kiln_cpu_numel(&l->outputs[0]);
    int threads = kiln_parallel_threads((double)n, SPLIT_MIN_ELEMENTS, INT64_MAX);
    if (threads < 2) return kernel(l);   /* the usual case */
    const kiln_tensor_desc *out = &l->outputs[0];
    int ok = l->input_count <= SPLIT_MAX_OPERANDS && l->output_count == 1 && kiln_dtype_size(out->dtype) > 0;
    int same = ok;
    for (int32_t i = 0; ok && i < l->input_count; i++) {
        ok = kiln_dtype_size(l->inputs[i].dtype) > 0;
        same = same && kiln_cpu_numel(&l->inputs[i]) == n;
    }
    split_job job = {.whole = l, .kernel = kernel, .n = n, .by_rows = !same};
    if (!same && out->rank >= 1) {   /* broadcasting: by rows, when there are enough */
        job.n = out->dims[0];
        if (job.n < threads) threads = (int)job.n;
    }
    if (threads < 2 || !ok || (!same && out->rank < 1)) return kernel(l);
    job.step = ceil_div(job.n, threads);
    if (same && job.step % SPLIT_ALIGN && job.step <= INT64_MAX - SPLIT_ALIGN)
        job.step += SPLIT_ALIGN - job.step % SPLIT_ALIGN;
    atomic_init(&job.failed, 0);
    kiln_status s = run_piece(&job, 0, 0);
    if (s) return s;
    kiln_parallel_run((int)ceil_div(job.n, job.step), threads, run_piece_task, &job);
    if (atomic_load(&job.failed))
        return kiln_error(KILN_ERROR_BACKEND, "cpu backend: %s layer: a piece run on a worker thread failed",
                          kiln_op_name(l->op));
    return KILN_OK;
}
