/* rotary.cu — ROTARY_EMBEDDING (ONNX RotaryEmbedding, opset 23): each head's
 * rotated pairs (x1, x2) become (x1·cos − x2·sin, x1·sin + x2·cos) with the
 * cache row of the head's position; the rest of the head is copied.  Rows
 * and pairs: ops/rotary_view.h, the CPU backend's view.
 *
 * A row (one head at one position) gets a group of threads sized to it (up
 * to a whole block), several rows a block when they are short; thread j of
 * a row rotates pair j, or copies one element after the rotated ones.  The
 * row's position id and cache offset are worked out once per row, and
 * blocks stride over the rows, so the grid stays a few waves whatever the
 * size.  Arithmetic is float32 with every product and sum rounded on its
 * own (__fmul_rn and friends are never fused into an FMA), as on the CPU:
 * the two backends agree to the bit.
 *
 * Position ids: valid ones are in [0, P), P the caches' rows, as on the CPU.
 * A kernel cannot report an error, so a bad id reads its cache rows as zeros
 * (gather's zero rows): its rotated elements come out zero (NaN where x is
 * not finite), where the CPU backend fails with an error naming it.  Nothing
 * outside the caches is ever read. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/rotary_view.h"

template <typename T, typename P>
__global__ void kc_rotary(const T *__restrict__ x, const T *__restrict__ cosc, const T *__restrict__ sinc,
                          const P *__restrict__ pos, T *__restrict__ out, kiln_rotary_view v, int64_t rows) {
    const int64_t width = v.head - v.half;   /* a row's items: its pairs, then the elements it copies */
    const int64_t row_step = (int64_t)gridDim.x * blockDim.y;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += row_step) {
        const int64_t bs = r / v.heads, h = r - bs * v.heads;   /* rows in (batch, position, head) order */
        const int64_t b = bs / v.seq, s = bs - b * v.seq;
        int64_t cache = bs;
        bool bad = false;
        if (pos) {
            cache = (int64_t)pos[bs];
            bad = cache < 0 || cache >= v.positions;
        }
        cache *= v.half;
        const int64_t row = kiln_rotary_row(&v, b, s, h);
        for (int64_t j = threadIdx.x; j < width; j += blockDim.x) {
            if (j < v.half) {
                int64_t e1, e2;
                kiln_rotary_pair(&v, j, &e1, &e2);
                const float x1 = kc_to_f32(x[row + e1]), x2 = kc_to_f32(x[row + e2]);
                const float c = bad ? 0.0f : kc_to_f32(cosc[cache + j]);
                const float sn = bad ? 0.0f : kc_to_f32(sinc[cache + j]);
                out[row + e1] = kc_from_f32<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, sn)));
                out[row + e2] = kc_from_f32<T>(__fadd_rn(__fmul_rn(x1, sn), __fmul_rn(x2, c)));
            } else {
                const int64_t e = v.half + j;   /* 2·half + (j − half) */
                out[row + e] = x[row + e];
            }
        }
    }
}

template <typename T, typename P>
static void kc_rotary_launch(const kiln_layer_launch *l, const kiln_rotary_view &v, int64_t rows,
                             cudaStream_t stream) {
    const int64_t width = v.head - v.half;
    /* Threads per row: the power of two covering its items, at most a block. */
    unsigned tx = 1;
    while (tx < KC_THREADS && tx < width) tx <<= 1;
    dim3 block(tx, KC_THREADS / tx);
    unsigned grid = kiln_cuda_grid(rows * tx, KC_THREADS);
    const P *pos = l->input_count == 4 ? (const P *)l->inputs[3].data : nullptr;
    kc_rotary<T, P><<<grid, block, 0, stream>>>((const T *)l->inputs[0].data, (const T *)l->inputs[1].data,
                                               (const T *)l->inputs[2].data, pos, (T *)l->outputs[0].data, v, rows);
}

template <typename T>
static void kc_rotary_dispatch(const kiln_layer_launch *l, const kiln_rotary_view &v, int64_t rows,
                               cudaStream_t stream) {
    if (l->input_count == 4 && l->inputs[3].dtype == KILN_INT32)
        kc_rotary_launch<T, int32_t>(l, v, rows, stream);
    else
        kc_rotary_launch<T, int64_t>(l, v, rows, stream);
}

extern "C" bool kiln_cuda_rotary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    if ((dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) || l->inputs[1].dtype != dt ||
        l->inputs[2].dtype != dt || l->outputs[0].dtype != dt)
        return false;
    return l->input_count == 3 || l->inputs[3].dtype == KILN_INT32 || l->inputs[3].dtype == KILN_INT64;
}

static const char *kc_dtype_name(kiln_dtype dt) {
    switch (dt) {
    case KILN_FLOAT32: return "float32";
    case KILN_FLOAT16: return "float16";
    case KILN_BFLOAT16: return "bfloat16";
    case KILN_INT8: return "int8";
    case KILN_UINT8: return "uint8";
    case KILN_INT32: return "int32";
    case KILN_INT64: return "int64";
    case KILN_BOOL: return "bool";
    default: return "an unknown dtype";
    }
}

extern "C" kiln_status kiln_cuda_rotary_run(const kiln_layer_launch *l, cudaStream_t stream) {
    if (!kiln_cuda_rotary_supports(l))
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: rotary_embedding of %s x with %s and %s caches%s%s is "
                              "not supported (float32, float16, bfloat16, one for all three; ids int32 or int64)",
                              kc_dtype_name(l->inputs[0].dtype), kc_dtype_name(l->inputs[1].dtype),
                              kc_dtype_name(l->inputs[2].dtype), l->input_count == 4 ? " and ids of " : "",
                              l->input_count == 4 ? kc_dtype_name(l->inputs[3].dtype) : "");
    kiln_rotary_view v;
    if (!kiln_rotary_view_init(&v, &l->inputs[0], &l->inputs[1], &l->inputs[2],
                               l->input_count == 4 ? &l->inputs[3] : NULL, l->attrs, l->attr_count))
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: rotary_embedding: x, the caches, position_ids and "
                              "the attributes do not fit together");
    const int64_t rows = v.batch * v.seq * v.heads;
    if (rows == 0 || v.head == 0) return KILN_OK;
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT16: kc_rotary_dispatch<__half>(l, v, rows, stream); break;
    case KILN_BFLOAT16: kc_rotary_dispatch<__nv_bfloat16>(l, v, rows, stream); break;
    default: kc_rotary_dispatch<float>(l, v, rows, stream); break;
    }
    return kiln_cuda_check_launch("rotary_embedding");
}
