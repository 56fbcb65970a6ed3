/* attention.cu — ATTENTION: softmax(q kᵀ · scale) v in one launch.
 *
 * One block per (batch, query head, query row), blocks striding over rows:
 * the row's q in shared memory, its scores over the keys it sees in shared
 * memory (causal: keys j <= i), a block max and sum, then each thread one or
 * more output columns as the probability-weighted sum of v's rows (reads of
 * v coalesced across the threads).  Grouped-query heads: query head h reads
 * key/value head h / (Hq / Hkv).  float32 arithmetic for every dtype.
 * Scores for up to ~12k keys fit in the 48 KiB of shared memory a launch
 * gets by default; longer key sequences are refused by name. */
#include <math.h>
#include <string.h>

#include "backend/cuda/block_reduce.cuh"
#include "backend/cuda/cuda_ops.h"

#define KC_ATTN_SHARED_LIMIT (48 * 1024)

template <typename T>
__global__ void kc_attention(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v,
                             T *__restrict__ out, int64_t rows, int64_t Hq, int64_t Sq, int64_t D, int64_t Hk,
                             int64_t Sk, int64_t Dv, float scale, bool causal) {
    extern __shared__ float shared[];
    float *qs = shared, *sc = shared + D;
    const int64_t group = Hq / Hk;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const int64_t i = r % Sq, bh = r / Sq, h = bh % Hq, b = bh / Hq, kh = h / group;
        const T *qrow = q + r * D;
        const T *kbase = k + (b * Hk + kh) * Sk * D, *vbase = v + (b * Hk + kh) * Sk * Dv;
        const int64_t seen = causal ? (i + 1 < Sk ? i + 1 : Sk) : Sk;
        for (int64_t d = threadIdx.x; d < D; d += blockDim.x) qs[d] = kc_to_f32(qrow[d]);
        __syncthreads();
        float local_max = -INFINITY;
        for (int64_t j = threadIdx.x; j < seen; j += blockDim.x) {
            const T *krow = kbase + j * D;
            float s = 0;
            for (int64_t d = 0; d < D; d++) s += qs[d] * kc_to_f32(krow[d]);
            s *= scale;
            sc[j] = s;
            local_max = fmaxf(local_max, s);
        }
        const float max = kc_block_reduce(local_max, kc_max_op{});
        float local_sum = 0;
        for (int64_t j = threadIdx.x; j < seen; j += blockDim.x) {
            float e = __expf(sc[j] - max);
            sc[j] = e;
            local_sum += e;
        }
        const float sum = kc_block_reduce(local_sum, kc_sum_op{});   /* its barriers also publish sc[] */
        T *orow = out + r * Dv;
        for (int64_t d = threadIdx.x; d < Dv; d += blockDim.x) {
            float acc = 0;
            for (int64_t j = 0; j < seen; j++) acc += sc[j] * kc_to_f32(vbase[j * Dv + d]);
            orow[d] = kc_from_f32<T>(seen ? acc / sum : 0.0f);
        }
        __syncthreads();   /* qs and sc are rewritten for the next row */
    }
}

extern "C" bool kiln_cuda_attention_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->inputs[0].dtype;
    return (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) && l->inputs[1].dtype == dt &&
           l->inputs[2].dtype == dt && l->outputs[0].dtype == dt && l->attr_count == 2;
}

template <typename T>
static void launch(const kiln_layer_launch *l, unsigned grid, size_t shared, int64_t rows, float scale, bool causal,
                   cudaStream_t s) {
    const kiln_tensor_desc *q = &l->inputs[0], *k = &l->inputs[1], *v = &l->inputs[2];
    kc_attention<T><<<grid, KC_THREADS, shared, s>>>((const T *)q->data, (const T *)k->data, (const T *)v->data,
                                                     (T *)l->outputs[0].data, rows, q->dims[1], q->dims[2],
                                                     q->dims[3], k->dims[1], k->dims[2], v->dims[3], scale, causal);
}

extern "C" kiln_status kiln_cuda_attention_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *q = &l->inputs[0], *k = &l->inputs[1];
    int64_t rows = q->dims[0] * q->dims[1] * q->dims[2], D = q->dims[3], Sk = k->dims[2];
    if (rows == 0) return KILN_OK;
    if (k->dims[1] <= 0) return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: attention: no key heads");
    size_t shared = sizeof(float) * (size_t)(D + Sk);
    if (shared > KC_ATTN_SHARED_LIMIT)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: attention: %lld keys of dim %lld do not fit the kernel's "
                              "shared memory (at most %d floats)", (long long)Sk, (long long)D,
                              KC_ATTN_SHARED_LIMIT / 4);
    double scale;
    memcpy(&scale, &l->attrs[1], sizeof scale);
    if (scale == 0) scale = D > 0 ? 1.0 / sqrt((double)D) : 1.0;
    bool causal = l->attrs[0] != 0;
    unsigned grid = (unsigned)(rows < 65535 * 4 ? rows : 65535 * 4);
    switch (q->dtype) {
    case KILN_FLOAT32: launch<float>(l, grid, shared, rows, (float)scale, causal, stream); break;
    case KILN_FLOAT16: launch<__half>(l, grid, shared, rows, (float)scale, causal, stream); break;
    default: launch<__nv_bfloat16>(l, grid, shared, rows, (float)scale, causal, stream); break;
    }
    return kiln_cuda_check_launch("attention");
}
