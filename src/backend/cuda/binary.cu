/* binary.cu — elementwise ADD SUB MUL DIV MIN MAX POW MOD FMOD with numpy broadcasting.
 *
 * Semantics (the CPU backend's): both operands and the output share one
 * dtype.  Floats follow IEEE (x/0 is ±inf; MIN and MAX propagate NaN, as
 * numpy's minimum/maximum do); f16/bf16 are computed in float.  Integers wrap
 * on overflow, DIV truncates toward zero, x/0 is 0 and MIN/-1 is MIN.  On
 * bool, ADD and MAX are "or", MUL and MIN are "and", SUB is "xor" and DIV
 * gives a.
 *
 * Shapes are reduced before launch: axes of size 1 are dropped and adjacent
 * axes that are contiguous in both operands are merged, so [B, S, H] + [H]
 * becomes a rank-2 problem and same-shape operands a flat one.  Flat
 * problems (including one operand a single element) move 16 bytes per load
 * when the pointers allow; the rest index through at most KILN_MAX_RANK
 * (dim, stride_a, stride_b) triples passed by value, in 32-bit arithmetic
 * when the output is small enough, a vector of outputs per thread when the
 * innermost axis allows it (bias rows and columns). */
#include <math.h>
#include <type_traits>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

/* ---- the operations ----------------------------------------------------- */

__device__ __forceinline__ float kc_binary_f32(float a, float b, int op) {
    switch (op) {
    case KILN_BINARY_ADD: return a + b;
    case KILN_BINARY_SUB: return a - b;
    case KILN_BINARY_MUL: return a * b;
    case KILN_BINARY_DIV: return a / b;
    case KILN_BINARY_MIN: return (a < b || isnan(a)) ? a : b;
    case KILN_BINARY_POW: return powf(a, b);
    case KILN_BINARY_FMOD: return fmodf(a, b);
    case KILN_BINARY_MOD: {
        float r = fmodf(a, b);
        return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
    }
    default:              return (a > b || isnan(a)) ? a : b;   /* MAX */
    }
}

__device__ __forceinline__ float kc_binary(float a, float b, int op) { return kc_binary_f32(a, b, op); }
__device__ __forceinline__ __half kc_binary(__half a, __half b, int op) {
    return kc_from_f32<__half>(kc_binary_f32(kc_to_f32(a), kc_to_f32(b), op));
}
__device__ __forceinline__ __nv_bfloat16 kc_binary(__nv_bfloat16 a, __nv_bfloat16 b, int op) {
    return kc_from_f32<__nv_bfloat16>(kc_binary_f32(kc_to_f32(a), kc_to_f32(b), op));
}

/* Integers: the arithmetic happens in the unsigned type of the same width,
 * where overflow is defined to wrap. */
template <typename T>
__device__ __forceinline__ T kc_binary(T a, T b, int op) {
    typedef typename std::make_unsigned<T>::type U;
    switch (op) {
    case KILN_BINARY_ADD: return (T)(U)((U)a + (U)b);
    case KILN_BINARY_SUB: return (T)(U)((U)a - (U)b);
    case KILN_BINARY_MUL: return (T)(U)((U)a * (U)b);
    case KILN_BINARY_DIV:
        if (b == 0) return 0;
        if (std::is_signed<T>::value && b == (T)-1) return (T)(U)((U)0 - (U)a);   /* MIN / -1 = MIN */
        return (T)(a / b);
    case KILN_BINARY_MIN: return a < b ? a : b;
    case KILN_BINARY_FMOD:
        if (b == 0 || (std::is_signed<T>::value && b == (T)-1)) return 0;
        return (T)(a % b);
    case KILN_BINARY_MOD: {
        if (b == 0 || (std::is_signed<T>::value && b == (T)-1)) return 0;
        T r = (T)(a % b);
        if (!std::is_signed<T>::value) return r;   /* no signs to differ */
        return (r != 0 && ((int64_t)r < 0) != ((int64_t)b < 0)) ? (T)(r + b) : r;
    }
    default:              return a > b ? a : b;   /* MAX (POW is refused for integers) */
    }
}

__device__ __forceinline__ kc_bool kc_binary(kc_bool a, kc_bool b, int op) {
    uint8_t x = a.v != 0, y = b.v != 0, r;
    switch (op) {
    case KILN_BINARY_ADD: case KILN_BINARY_MAX: r = x | y; break;
    case KILN_BINARY_MUL: case KILN_BINARY_MIN: r = x & y; break;
    case KILN_BINARY_SUB: r = x ^ y; break;
    default:              r = x; break;   /* DIV */
    }
    return kc_bool{r};
}

/* ---- kernels ------------------------------------------------------------ */

enum kc_flat_mode { KC_BOTH_FULL = 0, KC_A_SCALAR = 1, KC_B_SCALAR = 2 };

/* Same shape, or one operand a single element. */
template <typename T>
__global__ void kc_binary_flat(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ out, int64_t n,
                               int op, int mode, int vectorize) {
    typedef kc_vec<T> V;
    const int64_t nvec = vectorize ? n / V::N : 0;
    const T a0 = a[0], b0 = b[0];
    for (int64_t v = kc_thread_index(); v < nvec; v += kc_grid_stride()) {
        V x, y, r;
        if (mode == KC_A_SCALAR) {
#pragma unroll
            for (int k = 0; k < V::N; k++) x.v[k] = a0;
        } else {
            x = ((const V *)a)[v];
        }
        if (mode == KC_B_SCALAR) {
#pragma unroll
            for (int k = 0; k < V::N; k++) y.v[k] = b0;
        } else {
            y = ((const V *)b)[v];
        }
#pragma unroll
        for (int k = 0; k < V::N; k++) r.v[k] = kc_binary(x.v[k], y.v[k], op);
        ((V *)out)[v] = r;
    }
    for (int64_t i = nvec * V::N + kc_thread_index(); i < n; i += kc_grid_stride())
        out[i] = kc_binary(mode == KC_A_SCALAR ? a0 : a[i], mode == KC_B_SCALAR ? b0 : b[i], op);
}

/* Reduced broadcast problem; axis 0 is the innermost. */
struct kc_bcast {
    int32_t rank;
    int64_t dims[KILN_MAX_RANK];
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
};

template <typename T, typename I>
__global__ void kc_binary_bcast(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ out, I n,
                                const kc_bcast s, int op) {
    const I step = (I)gridDim.x * blockDim.x;
    for (I i = (I)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        I rem = i, ia = 0, ib = 0;
#pragma unroll
        for (int d = 0; d < KILN_MAX_RANK; d++) {
            if (d >= s.rank) break;
            I q = rem / (I)s.dims[d];
            I c = rem - q * (I)s.dims[d];
            ia += c * (I)s.sa[d];
            ib += c * (I)s.sb[d];
            rem = q;
        }
        out[i] = kc_binary(a[ia], b[ib], op);
    }
}

/* Broadcast whose innermost axis is a multiple of a vector and walked with
 * stride 0 or 1 by each operand (x + bias, x * column): a thread takes one
 * vector of the output, so the index arithmetic is paid once per 16 bytes.
 * An operand with inner stride 1 then starts every vector at a multiple of
 * V::N elements (its outer strides are multiples of the inner axis), hence
 * aligned; one with stride 0 is a single element repeated. */
template <typename T>
__global__ void kc_binary_bcast_vec(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ out,
                                    uint32_t nvec, const kc_bcast s, int op) {
    typedef kc_vec<T> V;
    const uint32_t step = gridDim.x * blockDim.x;
    for (uint32_t v = blockIdx.x * blockDim.x + threadIdx.x; v < nvec; v += step) {
        uint32_t rem = v * V::N, ia = 0, ib = 0;
#pragma unroll
        for (int d = 0; d < KILN_MAX_RANK; d++) {
            if (d >= s.rank) break;
            uint32_t q = rem / (uint32_t)s.dims[d];
            uint32_t c = rem - q * (uint32_t)s.dims[d];
            ia += c * (uint32_t)s.sa[d];
            ib += c * (uint32_t)s.sb[d];
            rem = q;
        }
        V x, y, r;
        if (s.sa[0]) {
            x = *(const V *)(a + ia);
        } else {
#pragma unroll
            for (int k = 0; k < V::N; k++) x.v[k] = a[ia];
        }
        if (s.sb[0]) {
            y = *(const V *)(b + ib);
        } else {
#pragma unroll
            for (int k = 0; k < V::N; k++) y.v[k] = b[ib];
        }
#pragma unroll
        for (int k = 0; k < V::N; k++) r.v[k] = kc_binary(x.v[k], y.v[k], op);
        ((V *)out)[v] = r;
    }
}

/* ---- host side ---------------------------------------------------------- */

/* Right-align t against the output's rank: stride 0 where t broadcasts. */
static void kc_bcast_strides(const kiln_tensor_desc *t, int32_t rank, int64_t *strides) {
    int64_t s = 1;
    for (int32_t i = rank - 1; i >= 0; i--) {
        int32_t j = i - (rank - t->rank);
        if (j < 0 || t->dims[j] == 1) {
            strides[i] = 0;
        } else {
            strides[i] = s;
            s *= t->dims[j];
        }
    }
}

/* Drop size-1 axes and merge axes contiguous in both operands. */
static void kc_bcast_reduce(const kiln_tensor_desc *a, const kiln_tensor_desc *b, const kiln_tensor_desc *out,
                            kc_bcast *s) {
    int64_t sa[KILN_MAX_RANK], sb[KILN_MAX_RANK];
    kc_bcast_strides(a, out->rank, sa);
    kc_bcast_strides(b, out->rank, sb);
    s->rank = 0;
    for (int32_t i = out->rank - 1; i >= 0; i--) {
        int64_t d = out->dims[i];
        if (d == 1) continue;
        if (s->rank > 0) {
            int32_t k = s->rank - 1;
            if (sa[i] == s->sa[k] * s->dims[k] && sb[i] == s->sb[k] * s->dims[k]) {
                s->dims[k] *= d;
                continue;
            }
        }
        s->dims[s->rank] = d;
        s->sa[s->rank] = sa[i];
        s->sb[s->rank] = sb[i];
        s->rank++;
    }
}

template <typename T>
static void kc_binary_launch(const kiln_tensor_desc *a, const kiln_tensor_desc *b, const kiln_tensor_desc *out,
                             int op, cudaStream_t stream) {
    int64_t n = kiln_cuda_numel(out);
    kc_bcast s;
    kc_bcast_reduce(a, b, out, &s);
    int mode = -1;
    if (s.rank == 0) mode = KC_BOTH_FULL;    /* one element */
    else if (s.rank == 1 && s.sa[0] == 1 && s.sb[0] == 1) mode = KC_BOTH_FULL;
    else if (s.rank == 1 && s.sa[0] == 0 && s.sb[0] == 1) mode = KC_A_SCALAR;
    else if (s.rank == 1 && s.sa[0] == 1 && s.sb[0] == 0) mode = KC_B_SCALAR;

    const T *pa = (const T *)a->data, *pb = (const T *)b->data;
    T *po = (T *)out->data;
    if (mode >= 0) {
        int vectorize = kc_aligned16(mode == KC_A_SCALAR ? NULL : pa, mode == KC_B_SCALAR ? NULL : pb, po);
        int64_t items = vectorize ? n / kc_vec<T>::N + 1 : n;
        kc_binary_flat<T><<<kiln_cuda_grid(items, KC_THREADS), KC_THREADS, 0, stream>>>(pa, pb, po, n, op, mode,
                                                                                        vectorize);
    } else if (n < INT32_MAX && s.dims[0] % kc_vec<T>::N == 0 && s.sa[0] <= 1 && s.sb[0] <= 1 &&
               kc_aligned16(pa, pb, po)) {
        uint32_t nvec = (uint32_t)(n / kc_vec<T>::N);
        kc_binary_bcast_vec<T><<<kiln_cuda_grid(nvec, KC_THREADS), KC_THREADS, 0, stream>>>(pa, pb, po, nvec, s, op);
    } else if (n < INT32_MAX) {
        /* 32-bit index arithmetic: the divisions are the kernel's main cost */
        kc_binary_bcast<T, uint32_t><<<kiln_cuda_grid(n, KC_THREADS), KC_THREADS, 0, stream>>>(pa, pb, po,
                                                                                               (uint32_t)n, s, op);
    } else {
        kc_binary_bcast<T, int64_t><<<kiln_cuda_grid(n, KC_THREADS), KC_THREADS, 0, stream>>>(pa, pb, po, n, s, op);
    }
}

bool kiln_cuda_binary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if ((unsigned)l->subop >= KILN_BINARY_OP_COUNT || (unsigned)dt >= KILN_DTYPE_COUNT || l->inputs[0].dtype != dt ||
        l->inputs[1].dtype != dt)
        return false;
    bool is_float = dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16;
    if (l->subop == KILN_BINARY_POW) return is_float;
    if (l->subop == KILN_BINARY_MOD || l->subop == KILN_BINARY_FMOD) return dt != KILN_BOOL;
    return true;
}

kiln_status kiln_cuda_binary_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *a = &l->inputs[0], *b = &l->inputs[1], *out = &l->outputs[0];
    if ((unsigned)l->subop >= KILN_BINARY_OP_COUNT)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: binary: unknown operation %d", (int)l->subop);
    if (a->dtype != out->dtype || b->dtype != out->dtype)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: binary: operands and output must share one dtype");
    int op = l->subop;
    switch (out->dtype) {
    case KILN_FLOAT32:  kc_binary_launch<float>(a, b, out, op, stream); break;
    case KILN_FLOAT16:  kc_binary_launch<__half>(a, b, out, op, stream); break;
    case KILN_BFLOAT16: kc_binary_launch<__nv_bfloat16>(a, b, out, op, stream); break;
    case KILN_INT8:     kc_binary_launch<int8_t>(a, b, out, op, stream); break;
    case KILN_UINT8:    kc_binary_launch<uint8_t>(a, b, out, op, stream); break;
    case KILN_INT32:    kc_binary_launch<int32_t>(a, b, out, op, stream); break;
    case KILN_INT64:    kc_binary_launch<int64_t>(a, b, out, op, stream); break;
    case KILN_BOOL:     kc_binary_launch<kc_bool>(a, b, out, op, stream); break;
    default:            return kiln_cuda_unsupported("binary", out->dtype);
    }
    return kiln_cuda_check_launch("binary kernel");
}
