/* gather.cu — out = take(data, indices, axis), indices int32 or int64.
 *
 * data is viewed as [outer, axis_len, inner] and the output as
 * [outer, nidx, inner]: every output row (inner elements) is one row of data
 * or, for a bad index, zeros.  The kernel is a pure copy and must run at
 * memory bandwidth (the embedding lookup of every language model):
 *   - it copies bytes, not elements, in the widest unit (16, 8, 4, 2 or 1
 *     bytes) that the row size and both pointers allow;
 *   - a row gets a group of threads sized to it (up to a whole 256-thread
 *     block for long rows, several rows a block for short ones), so every
 *     thread moves whole units and reads its index once;
 *   - each thread keeps four loads in flight before storing, and blocks
 *     stride over the rows, so the grid stays a few waves whatever the size.
 *
 * Indices: valid ones are in [0, axis_len), as on the CPU (no counting from
 * the end).  A kernel cannot report an error, so a bad index, negative or too
 * large, zero-fills its output row, where the CPU backend fails with an error
 * naming it.  Nothing outside data is ever read. */
#include <stdio.h>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

template <typename U, typename IdxT>
__global__ void kc_gather_rows(const U *__restrict__ data, const IdxT *__restrict__ indices, U *__restrict__ out,
                               int64_t rows, int64_t nidx, int64_t axis_len, int64_t units) {
    const int64_t tx = threadIdx.x, bx = blockDim.x;
    const int64_t row_step = (int64_t)gridDim.x * blockDim.y;
    for (int64_t r = (int64_t)blockIdx.x * blockDim.y + threadIdx.y; r < rows; r += row_step) {
        int64_t o = 0, j = r;
        if (rows != nidx) {          /* gather along an inner axis: which outer slice */
            o = r / nidx;
            j = r - o * nidx;
        }
        const int64_t k = (int64_t)indices[j];
        U *dst = out + r * units;
        if (k < 0 || k >= axis_len) {
            for (int64_t c = tx; c < units; c += bx) dst[c] = U{};
            continue;
        }
        const U *src = data + (o * axis_len + k) * units;
        int64_t c = tx;
        for (; c + 3 * bx < units; c += 4 * bx) {
            U v0 = src[c], v1 = src[c + bx], v2 = src[c + 2 * bx], v3 = src[c + 3 * bx];
            dst[c] = v0;
            dst[c + bx] = v1;
            dst[c + 2 * bx] = v2;
            dst[c + 3 * bx] = v3;
        }
        for (; c < units; c += bx) dst[c] = src[c];
    }
}

template <typename U>
static void kc_gather_launch(const void *data, const void *indices, kiln_dtype index_dtype, void *out,
                             int64_t rows, int64_t nidx, int64_t axis_len, int64_t row_bytes, cudaStream_t stream) {
    int64_t units = row_bytes / (int64_t)sizeof(U);
    /* Threads per row: the power of two covering the row, at most a block. */
    unsigned tx = 1;
    while (tx < KC_THREADS && tx < units) tx <<= 1;
    unsigned ty = KC_THREADS / tx;
    dim3 block(tx, ty);
    unsigned grid = kiln_cuda_grid(rows * tx, KC_THREADS);
    if (index_dtype == KILN_INT32)
        kc_gather_rows<U, int32_t><<<grid, block, 0, stream>>>((const U *)data, (const int32_t *)indices, (U *)out,
                                                                rows, nidx, axis_len, units);
    else
        kc_gather_rows<U, int64_t><<<grid, block, 0, stream>>>((const U *)data, (const int64_t *)indices, (U *)out,
                                                                rows, nidx, axis_len, units);
}

bool kiln_cuda_gather_supports(const kiln_layer_launch *l) {
    kiln_dtype index = l->inputs[1].dtype;
    return (index == KILN_INT32 || index == KILN_INT64) && kiln_cuda_dtype_size(l->inputs[0].dtype) > 0 &&
           l->outputs[0].dtype == l->inputs[0].dtype;
}

kiln_status kiln_cuda_gather_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *data = &l->inputs[0], *idx = &l->inputs[1], *out = &l->outputs[0];
    if (idx->dtype != KILN_INT32 && idx->dtype != KILN_INT64)
        return kiln_cuda_unsupported("gather indices", idx->dtype);
    size_t esize = kiln_cuda_dtype_size(data->dtype);
    if (esize == 0 || data->dtype != out->dtype) return kiln_cuda_unsupported("gather", data->dtype);
    int64_t axis = l->axis;
    if (axis < 0) axis += data->rank;
    if (axis < 0 || axis >= data->rank)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: gather: axis %lld out of range for rank %d",
                              (long long)l->axis, (int)data->rank);

    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < axis; i++) outer *= data->dims[i];
    for (int64_t i = axis + 1; i < data->rank; i++) inner *= data->dims[i];
    int64_t axis_len = data->dims[axis];
    int64_t nidx = kiln_cuda_numel(idx);
    int64_t rows = outer * nidx, row_bytes = inner * (int64_t)esize;
    if (rows == 0 || row_bytes == 0) return KILN_OK;

    /* The widest unit that divides the row and both base pointers. */
    uintptr_t align = (uintptr_t)data->data | (uintptr_t)out->data | (uintptr_t)row_bytes;
    if ((align & 15u) == 0)
        kc_gather_launch<uint4>(data->data, idx->data, idx->dtype, out->data, rows, nidx, axis_len, row_bytes, stream);
    else if ((align & 7u) == 0)
        kc_gather_launch<uint2>(data->data, idx->data, idx->dtype, out->data, rows, nidx, axis_len, row_bytes, stream);
    else if ((align & 3u) == 0)
        kc_gather_launch<uint32_t>(data->data, idx->data, idx->dtype, out->data, rows, nidx, axis_len, row_bytes,
                                   stream);
    else if ((align & 1u) == 0)
        kc_gather_launch<uint16_t>(data->data, idx->data, idx->dtype, out->data, rows, nidx, axis_len, row_bytes,
                                   stream);
    else
        kc_gather_launch<uint8_t>(data->data, idx->data, idx->dtype, out->data, rows, nidx, axis_len, row_bytes,
                                  stream);
    return kiln_cuda_check_launch("gather kernel");
}
