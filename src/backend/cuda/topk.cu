/* topk.cu — TOPK along l->axis (ONNX TopK, torch.topk): values and int64
 * indices of the k best elements of each row, best first, in
 * ops/topk_order.h's order (ties: the lower index first; NaN above every
 * number), exactly the CPU backend's selection.  One block per row (rows =
 * the elements of the other axes), two ways:
 *
 *   - a row of up to KC_TOPK_SORT_MAX (2048) elements is sorted whole in
 *     shared memory (a bitonic sort of (key, position) pairs, padded to a
 *     power of two with pairs that rank last), and its first k written: any
 *     k costs the same;
 *   - a longer row takes k rounds: round r finds, by a block-wide argmax, the
 *     best element that comes after round r−1's pick in the order, so no
 *     element is taken twice and nothing needs marking.  A row of up to
 *     KC_TOPK_CACHED elements keeps its keys in shared memory (8 bytes each,
 *     under 48 KiB); longer rows recompute them from global memory each round.
 *
 * Limits (none refused: every size and k runs, and gives the CPU's result):
 * a long row costs k passes, O(k·n / 256) per block, which suits the small k
 * models use on long rows (sampling's top 50 of a vocabulary, a beam's width,
 * MoE routing); k in the thousands over rows longer than 2048 is correct but
 * slow.  `sorted` = 0 is served sorted (a valid order for it).  Rows along an
 * inner axis (axis not last) are read with a stride. */
#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"
#include "ops/op_views.h"
#include "ops/topk_order.h"

#define KC_TOPK_CACHED 6000   /* 48,000 bytes of keys: with the reduction's 128, under the 48 KiB a launch may ask for */

__device__ __forceinline__ uint64_t kc_topk_key(float x, bool largest) { return kiln_topk_key_float(x, largest); }
__device__ __forceinline__ uint64_t kc_topk_key(__half x, bool largest) {
    return kiln_topk_key_float(__half2float(x), largest);
}
__device__ __forceinline__ uint64_t kc_topk_key(__nv_bfloat16 x, bool largest) {
    return kiln_topk_key_float(__bfloat162float(x), largest);
}
__device__ __forceinline__ uint64_t kc_topk_key(int32_t x, bool largest) { return kiln_topk_key_int(x, largest); }
__device__ __forceinline__ uint64_t kc_topk_key(int64_t x, bool largest) { return kiln_topk_key_int(x, largest); }

/* Keep the better of (key, index) and (other_key, other_index); index −1 is "none". */
__device__ __forceinline__ void kc_topk_keep(uint64_t &key, int64_t &index, uint64_t other_key, int64_t other_index) {
    if (other_index >= 0 && (index < 0 || kiln_topk_before(other_key, other_index, key, index))) {
        key = other_key;
        index = other_index;
    }
}

/* The block's best (key, index); every thread gets it. */
__device__ void kc_topk_block_best(uint64_t &key, int64_t &index) {
    __shared__ uint64_t warp_keys[KC_THREADS / 32];
    __shared__ int64_t warp_indices[KC_THREADS / 32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (int)(blockDim.x >> 5);
    for (int off = 16; off > 0; off >>= 1) {
        uint64_t k2 = __shfl_down_sync(0xffffffffu, (unsigned long long)key, off);
        int64_t i2 = __shfl_down_sync(0xffffffffu, (long long)index, off);
        kc_topk_keep(key, index, k2, i2);
    }
    __syncthreads();   /* the previous call's results may still be read */
    if (lane == 0) {
        warp_keys[warp] = key;
        warp_indices[warp] = index;
    }
    __syncthreads();
    if (warp == 0) {
        key = lane < warps ? warp_keys[lane] : 0;
        index = lane < warps ? warp_indices[lane] : -1;
        for (int off = 16; off > 0; off >>= 1) {
            uint64_t k2 = __shfl_down_sync(0xffffffffu, (unsigned long long)key, off);
            int64_t i2 = __shfl_down_sync(0xffffffffu, (long long)index, off);
            kc_topk_keep(key, index, k2, i2);
        }
        if (lane == 0) {
            warp_keys[0] = key;
            warp_indices[0] = index;
        }
    }
    __syncthreads();
    key = warp_keys[0];
    index = warp_indices[0];
}

template <typename T>
__global__ void kc_topk(const T *__restrict__ in, T *__restrict__ values, int64_t *__restrict__ indices, int64_t rows,
                        int64_t n, int64_t inner, int64_t k, bool largest, bool cached) {
    extern __shared__ uint64_t kc_topk_keys[];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t o = row / inner, i = row - o * inner;
        const T *x = in + o * n * inner + i;
        T *vo = values + o * k * inner + i;
        int64_t *io = indices + o * k * inner + i;
        if (cached) {
            for (int64_t j = threadIdx.x; j < n; j += blockDim.x) kc_topk_keys[j] = kc_topk_key(x[j * inner], largest);
            __syncthreads();
        }
        uint64_t prev_key = 0;
        int64_t prev_index = -1;   /* none yet: every element is eligible */
        for (int64_t r = 0; r < k; r++) {
            uint64_t best_key = 0;
            int64_t best_index = -1;
            for (int64_t j = threadIdx.x; j < n; j += blockDim.x) {
                uint64_t key = cached ? kc_topk_keys[j] : kc_topk_key(x[j * inner], largest);
                if (prev_index >= 0 && !kiln_topk_before(prev_key, prev_index, key, j)) continue;
                kc_topk_keep(best_key, best_index, key, j);
            }
            kc_topk_block_best(best_key, best_index);
            prev_key = best_key;
            prev_index = best_index;
            if (threadIdx.x == 0) {
                vo[r * inner] = x[best_index * inner];
                io[r * inner] = best_index;
            }
        }
        __syncthreads();   /* the next row overwrites the cached keys */
    }
}

#define KC_TOPK_SORT_MAX 2048   /* 24 KiB of (key, position) pairs */

template <typename T>
__global__ void kc_topk_sort(const T *__restrict__ in, T *__restrict__ values, int64_t *__restrict__ indices,
                             int64_t rows, int64_t n, int64_t inner, int64_t k, bool largest, int padded) {
    __shared__ uint64_t keys[KC_TOPK_SORT_MAX];
    __shared__ int32_t positions[KC_TOPK_SORT_MAX];
    for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
        int64_t o = row / inner, i = row - o * inner;
        const T *x = in + o * n * inner + i;
        T *vo = values + o * k * inner + i;
        int64_t *io = indices + o * k * inner + i;
        /* Padding: key 0 at a position >= n ranks after every element (an
         * element's key 0, a NaN when smallest, has a lower position). */
        for (int j = threadIdx.x; j < padded; j += blockDim.x) {
            keys[j] = j < n ? kc_topk_key(x[j * inner], largest) : 0;
            positions[j] = j;
        }
        __syncthreads();
        /* Bitonic sort into the order, best first. */
        for (int size = 2; size <= padded; size <<= 1)
            for (int stride = size >> 1; stride > 0; stride >>= 1) {
                for (int t = threadIdx.x; t < padded / 2; t += blockDim.x) {
                    int a = 2 * stride * (t / stride) + t % stride, b = a + stride;
                    bool best_first = (a & size) == 0;
                    bool swap = best_first ? kiln_topk_before(keys[b], positions[b], keys[a], positions[a])
                                           : kiln_topk_before(keys[a], positions[a], keys[b], positions[b]);
                    if (swap) {
                        uint64_t key = keys[a];
                        keys[a] = keys[b];
                        keys[b] = key;
                        int32_t p = positions[a];
                        positions[a] = positions[b];
                        positions[b] = p;
                    }
                }
                __syncthreads();
            }
        for (int64_t r = threadIdx.x; r < k; r += blockDim.x) {
            int64_t j = positions[r];
            vo[r * inner] = x[j * inner];
            io[r * inner] = j;
        }
        __syncthreads();   /* the next row overwrites the pairs */
    }
}

extern "C" bool kiln_cuda_topk_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16 || dt == KILN_INT32 || dt == KILN_INT64) &&
           l->output_count == 2 && l->outputs[0].dtype == dt && l->outputs[1].dtype == KILN_INT64 &&
           l->attr_count >= 2;
}

template <typename T>
static void kc_topk_launch(const kiln_layer_launch *l, int64_t rows, int64_t n, int64_t inner, int64_t k,
                           bool largest, cudaStream_t s) {
    unsigned grid = (unsigned)(rows < (1 << 20) ? rows : (1 << 20));
    if (n <= KC_TOPK_SORT_MAX) {
        int padded = 1;
        while (padded < n) padded <<= 1;
        kc_topk_sort<T><<<grid, KC_THREADS, 0, s>>>((const T *)l->inputs[0].data, (T *)l->outputs[0].data,
                                                     (int64_t *)l->outputs[1].data, rows, n, inner, k, largest,
                                                     padded);
        return;
    }
    bool cached = n <= KC_TOPK_CACHED;
    size_t shared = cached ? (size_t)n * sizeof(uint64_t) : 0;
    kc_topk<T><<<grid, KC_THREADS, shared, s>>>((const T *)l->inputs[0].data, (T *)l->outputs[0].data,
                                                 (int64_t *)l->outputs[1].data, rows, n, inner, k, largest, cached);
}

extern "C" kiln_status kiln_cuda_topk_run(const kiln_layer_launch *l, cudaStream_t s) {
    int64_t outer, n, inner;
    kiln_view_axis(&l->inputs[0], l->axis, &outer, &n, &inner);
    int64_t k = l->outputs[0].dims[l->axis], rows = outer * inner;
    if (k < 0 || k > n)   /* the engine's checks refuse this before any kernel runs */
        return kiln_cuda_fail(KILN_ERROR_SHAPE, "cuda: topk: k %lld is outside [0, %lld]", (long long)k, (long long)n);
    if (k == 0 || rows == 0) return KILN_OK;
    bool largest = l->attrs[0] != 0;
    switch (l->inputs[0].dtype) {
    case KILN_FLOAT32: kc_topk_launch<float>(l, rows, n, inner, k, largest, s); break;
    case KILN_FLOAT16: kc_topk_launch<__half>(l, rows, n, inner, k, largest, s); break;
    case KILN_BFLOAT16: kc_topk_launch<__nv_bfloat16>(l, rows, n, inner, k, largest, s); break;
    case KILN_INT32: kc_topk_launch<int32_t>(l, rows, n, inner, k, largest, s); break;
    case KILN_INT64: kc_topk_launch<int64_t>(l, rows, n, inner, k, largest, s); break;
    default: return kiln_cuda_unsupported("topk", l->inputs[0].dtype);
    }
    return kiln_cuda_check_launch("topk");
}
