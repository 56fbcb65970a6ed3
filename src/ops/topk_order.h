/* topk_order.h — the order TOPK selects in, shared by both backends.
 *
 * Every element of a row gets a 64-bit key such that "better" is simply
 * "larger key, then lower index": the k results are the first k elements of
 * the row in that order, best first.  So the CPU heap and the CUDA block
 * argmax pick the same elements in the same order, ties included:
 *   - equal values: the lower index first (ONNX TopK; torch.topk agrees
 *     wherever it promises an order);
 *   - NaN ranks above every number, +inf included (torch.topk): the NaNs of
 *     a row come first when largest, last when smallest, in index order;
 *   - -0.0 and +0.0 are equal (the lower index first).
 * Floats are keyed through binary64, which holds float32, float16 and
 * bfloat16 exactly; integers through int64.  Header-only: the CUDA module
 * may not link libkiln. */
#ifndef KILN_OPS_TOPK_ORDER_H
#define KILN_OPS_TOPK_ORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ops/op_views.h"   /* KILN_VIEW_FN */

#define KILN_TOPK_SIGN ((uint64_t)1 << 63)

/* Key of a floating-point value: IEEE order made unsigned, NaN the largest. */
KILN_VIEW_FN uint64_t kiln_topk_key_float(double v, bool largest) {
    uint64_t key;
    if (v != v) {
        key = UINT64_MAX;
    } else {
        if (v == 0) v = 0.0;   /* -0.0 ranks as +0.0 */
        uint64_t bits;
        memcpy(&bits, &v, sizeof bits);
        key = bits & KILN_TOPK_SIGN ? ~bits : bits | KILN_TOPK_SIGN;
    }
    return largest ? key : ~key;   /* smallest: the order reversed, so NaN is last */
}

/* Key of an integer value. */
KILN_VIEW_FN uint64_t kiln_topk_key_int(int64_t v, bool largest) {
    uint64_t key = (uint64_t)v ^ KILN_TOPK_SIGN;
    return largest ? key : ~key;
}

/* Does (key a, index ia) come before (key b, index ib)? */
KILN_VIEW_FN bool kiln_topk_before(uint64_t a, int64_t ia, uint64_t b, int64_t ib) {
    return a > b || (a == b && ia < ib);
}

#endif
