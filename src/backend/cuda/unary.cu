/* unary.cu — RELU GELU SILU EXP NEG SQRT on f32/f16/bf16, NEG on int8,
 * int32 and int64.
 *
 * Floats are computed in float with CUDA's accurate functions (no fast-math
 * intrinsics) and rounded back to nearest even, like the CPU backend:
 *   relu(x) = x < 0 ? 0 : x (NaN stays NaN, as torch.relu)
 *   gelu(x) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))   (tanh approximation)
 *   silu(x) = x / (1 + exp(-x))
 * NEG of f16/bf16 flips the sign bit (exact, NaN included); integer NEG
 * wraps: -MIN is MIN. */
#include <math.h>
#include <stdio.h>
#include <type_traits>

#include "backend/cuda/cuda_dtype.cuh"
#include "ops/op_list.h"
#include "backend/cuda/cuda_ops.h"

__device__ __forceinline__ float kc_unary_f32(float x, int op) {
    switch (op) {
    case KILN_UNARY_RELU: return x < 0.0f ? 0.0f : x;
    case KILN_UNARY_GELU: {
        const float k = 0.7978845608028654f;   /* sqrt(2/pi) */
        return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    case KILN_UNARY_SILU: return x / (1.0f + expf(-x));
    case KILN_UNARY_EXP:  return expf(x);
    case KILN_UNARY_NEG:  return -x;
    case KILN_UNARY_TANH: return tanhf(x);
    case KILN_UNARY_SIGMOID: return 1.0f / (1.0f + expf(-x));
    case KILN_UNARY_ERF:  return erff(x);
    case KILN_UNARY_GELU_ERF: return 0.5f * x * erfcf(-x * 0.70710678118654752f);
    case KILN_UNARY_RSQRT: return rsqrtf(x);
    case KILN_UNARY_ABS:  return fabsf(x);
    case KILN_UNARY_LOG:  return logf(x);
    case KILN_UNARY_SIN:  return sinf(x);
    case KILN_UNARY_COS:  return cosf(x);
    case KILN_UNARY_FLOOR: return floorf(x);
    case KILN_UNARY_CEIL: return ceilf(x);
    case KILN_UNARY_RECIPROCAL: return 1.0f / x;
    case KILN_UNARY_SIGN: return x != x ? x : (float)((x > 0.0f) - (x < 0.0f));
    default:              return sqrtf(x);     /* SQRT */
    }
}

template <typename T>
__device__ __forceinline__ T kc_unary(T x, int op) {
    if constexpr (std::is_same<T, __half>::value) {
        if (op == KILN_UNARY_NEG) return __ushort_as_half((unsigned short)(__half_as_ushort(x) ^ 0x8000u));
    } else if constexpr (std::is_same<T, __nv_bfloat16>::value) {
        if (op == KILN_UNARY_NEG)
            return __ushort_as_bfloat16((unsigned short)(__bfloat16_as_ushort(x) ^ 0x8000u));
    }
    if constexpr (std::is_integral<T>::value) {
        typedef typename std::make_unsigned<T>::type U;
        return (T)(U)((U)0 - (U)x);             /* NEG is the only integer op */
    } else {
        return kc_from_f32<T>(kc_unary_f32(kc_to_f32(x), op));
    }
}

template <typename T>
__global__ void kc_unary_kernel(const T *__restrict__ in, T *__restrict__ out, int64_t n, int op, int vectorize) {
    typedef kc_vec<T> V;
    const int64_t nvec = vectorize ? n / V::N : 0;
    for (int64_t v = kc_thread_index(); v < nvec; v += kc_grid_stride()) {
        V x = ((const V *)in)[v], r;
#pragma unroll
        for (int k = 0; k < V::N; k++) r.v[k] = kc_unary(x.v[k], op);
        ((V *)out)[v] = r;
    }
    for (int64_t i = nvec * V::N + kc_thread_index(); i < n; i += kc_grid_stride()) out[i] = kc_unary(in[i], op);
}

template <typename T>
static void kc_unary_launch(const kiln_tensor_desc *x, const kiln_tensor_desc *y, int op, cudaStream_t stream) {
    int64_t n = kiln_cuda_numel(y);
    int vectorize = kc_aligned16(x->data, y->data, NULL);
    int64_t items = vectorize ? n / kc_vec<T>::N + 1 : n;
    kc_unary_kernel<T><<<kiln_cuda_grid(items, KC_THREADS), KC_THREADS, 0, stream>>>(
        (const T *)x->data, (T *)y->data, n, op, vectorize);
}

bool kiln_cuda_unary_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if ((unsigned)l->subop >= KILN_UNARY_OP_COUNT || l->inputs[0].dtype != dt) return false;
    if (dt == KILN_FLOAT32 || dt == KILN_FLOAT16 || dt == KILN_BFLOAT16) return true;
    return l->subop == KILN_UNARY_NEG && (dt == KILN_INT8 || dt == KILN_INT32 || dt == KILN_INT64);
}

kiln_status kiln_cuda_unary_run(const kiln_layer_launch *l, cudaStream_t stream) {
    const kiln_tensor_desc *x = &l->inputs[0], *y = &l->outputs[0];
    if ((unsigned)l->subop >= KILN_UNARY_OP_COUNT)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: unary: unknown operation %d", (int)l->subop);
    int op = l->subop;
    if (x->dtype != y->dtype)
        return kiln_cuda_fail(KILN_ERROR_UNSUPPORTED, "cuda: unary %s: input and output dtypes differ", kiln_unary_op_list_name(op));
    switch (y->dtype) {
    case KILN_FLOAT32:  kc_unary_launch<float>(x, y, op, stream); break;
    case KILN_FLOAT16:  kc_unary_launch<__half>(x, y, op, stream); break;
    case KILN_BFLOAT16: kc_unary_launch<__nv_bfloat16>(x, y, op, stream); break;
    case KILN_INT8: case KILN_INT32: case KILN_INT64:
        if (op != KILN_UNARY_NEG) {
            char what[32];
            snprintf(what, sizeof what, "unary %s", kiln_unary_op_list_name(op));
            return kiln_cuda_unsupported(what, y->dtype);
        }
        if (y->dtype == KILN_INT8)       kc_unary_launch<int8_t>(x, y, op, stream);
        else if (y->dtype == KILN_INT32) kc_unary_launch<int32_t>(x, y, op, stream);
        else                             kc_unary_launch<int64_t>(x, y, op, stream);
        break;
    default: {
        char what[32];
        snprintf(what, sizeof what, "unary %s", kiln_unary_op_list_name(op));
        return kiln_cuda_unsupported(what, y->dtype);
    }
    }
    return kiln_cuda_check_launch("unary kernel");
}
