/* cpu_topk.c — TOPK along l->axis (ONNX TopK, torch.topk): per row, the k
 * best elements in ops/topk_order.h's order (ties: the lower index; NaN
 * above every number), best first, whatever `sorted` says (sorted output is
 * a valid unsorted one).  Each row is keyed once, then a heap of the k best
 * so far selects them in O(n log k), and the heap is emptied worst-first
 * into the outputs' last slots.  Values are copied bytes, not converted. */
#include <string.h>

#include "backend/cpu/cpu_element.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/alloc.h"
#include "core/dtype.h"
#include "core/error.h"
#include "ops/op_views.h"
#include "ops/topk_order.h"

typedef struct topk_entry {
    uint64_t key;
    int64_t  index;
} topk_entry;

static inline bool before(const topk_entry *a, const topk_entry *b) {
    return kiln_topk_before(a->key, a->index, b->key, b->index);
}

/* heap[0] is the worst entry kept: every parent comes after its children. */
static void sift_down(topk_entry *heap, int64_t size, int64_t at) {
    for (;;) {
        int64_t child = 2 * at + 1, worst = at;
        if (child < size && before(&heap[worst], &heap[child])) worst = child;
        if (child + 1 < size && before(&heap[worst], &heap[child + 1])) worst = child + 1;
        if (worst == at) return;
        topk_entry t = heap[at];
        heap[at] = heap[worst];
        heap[worst] = t;
        at = worst;
    }
}

static void sift_up(topk_entry *heap, int64_t at) {
    while (at > 0) {
        int64_t parent = (at - 1) / 2;
        if (!before(&heap[parent], &heap[at])) return;
        topk_entry t = heap[at];
        heap[at] = heap[parent];
        heap[parent] = t;
        at = parent;
    }
}

bool kiln_cpu_topk_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (kiln_dtype_is_float(dt) || dt == KILN_INT32 || dt == KILN_INT64) && l->output_count == 2 &&
           l->outputs[0].dtype == dt && l->outputs[1].dtype == KILN_INT64 && l->attr_count >= 2;
}

kiln_status kiln_cpu_topk(const kiln_layer_launch *l) {
    const kiln_tensor_desc *in = &l->inputs[0], *values = &l->outputs[0], *indices = &l->outputs[1];
    kiln_dtype dt = in->dtype;
    bool largest = l->attrs[0] != 0, is_float = kiln_dtype_is_float(dt);
    int64_t outer, n, inner;
    kiln_view_axis(in, l->axis, &outer, &n, &inner);
    int64_t k = values->dims[l->axis];
    if (k < 0 || k > n)   /* the engine's checks refuse this before any kernel runs */
        return kiln_error(KILN_ERROR_SHAPE, "topk: k %lld is outside [0, %lld]", (long long)k, (long long)n);
    if (k == 0 || outer == 0 || inner == 0) return KILN_OK;
    size_t es = kiln_dtype_size(dt);
    topk_entry *heap = kiln_malloc(sizeof *heap * (size_t)k);
    if (!heap) return kiln_error(KILN_ERROR_NO_MEMORY, "topk: out of memory for a heap of %lld entries", (long long)k);
    int64_t *out_index = indices->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < inner; i++) {
            int64_t base = o * n * inner + i, size = 0;
            for (int64_t j = 0; j < n; j++) {
                int64_t at = base + j * inner;
                topk_entry e = {is_float ? kiln_topk_key_float(kiln_cpu_load_f64(in->data, dt, at), largest)
                                         : kiln_topk_key_int(kiln_cpu_load_i64(in->data, dt, at), largest),
                                j};
                if (size < k) {
                    heap[size] = e;
                    sift_up(heap, size++);
                } else if (before(&e, &heap[0])) {
                    heap[0] = e;
                    sift_down(heap, size, 0);
                }
            }
            /* Worst first, into the last slot first: best first in the output. */
            int64_t out_base = o * k * inner + i;
            for (int64_t r = k - 1; r >= 0; r--) {
                int64_t src = base + heap[0].index * inner, dst = out_base + r * inner;
                memcpy((char *)values->data + dst * (int64_t)es, (const char *)in->data + src * (int64_t)es, es);
                out_index[dst] = heap[0].index;
                heap[0] = heap[--size];
                sift_down(heap, size, 0);
            }
        }
    kiln_free(heap);
    return KILN_OK;
}
