/* conv.cu — CONV and CONV_TRANSPOSE (ONNX Conv, ConvTranspose) over 1 to 3
 * spatial axes, float32 / float16 / bfloat16, sums in float32 (as the CPU
 * backend), the bias added before the one rounding to the output type.
 *
 * Built-in layers have no workspace on this backend (only plugins declare
 * one), and an im2col matrix is C/group·K1·…·Kk times the output's
 * positions, too large to allocate per launch.  So CONV takes one of three
 * paths, chosen in kc_conv_choose (the one place that decides):
 *
 *   1x1 → cuBLAS   every kernel size 1, strides 1, no padding (dilation is
 *                  then irrelevant): per batch element n and group g,
 *                  Y[n,g] (M/g × P) = W[g] (M/g × C/g) · X[n,g] (C/g × P),
 *                  P the positions, which is x as it lies: no im2col at all.
 *                  One strided-batched GEMM over the larger of batch and
 *                  groups, a call per item of the smaller
 *                  (kiln_cuda_gemm_run in matmul.cu: the matmul layer's
 *                  handles, lock and compute types, so it behaves the same
 *                  under CUDA graph capture).  A bias is written into y
 *                  first and the GEMM adds to it (beta 1): one rounding.
 *   implicit GEMM  every other convolution with at least 8 output channels
 *                  per group and a depth C/g·taps of at least 8: the GEMM
 *                  with rows = the group's output channels, columns =
 *                  (n, position) over the whole batch, depth = (channel,
 *                  tap), whose x tile is gathered on the fly into shared
 *                  memory (the im2col index arithmetic, zeros for padding).
 *                  float16/bfloat16: tensor cores through WMMA (16x16x16,
 *                  float accumulators), 128x64 or 64x64 block tiles (128
 *                  rows when the group has at least 128 output channels
 *                  and the grid still fills the GPU twice over),
 *                  depth step 32, weights in 16-byte vectors when K is a
 *                  multiple of 8, double-buffered through registers (the
 *                  next tile's global loads are in flight during this
 *                  tile's MMAs); needs compute capability 8.0.  float32: a
 *                  64x64 shared-memory SIMT tile, 4x4 outputs per thread,
 *                  depth step 16, true float32 (no TF32, as cuBLAS float32
 *                  here and the CPU).  The depth axis's (channel, tap)
 *                  decomposition is computed once per tile into a small
 *                  shared table, each thread's column once per block.
 *   direct         one thread per output element: depthwise convolutions
 *                  (one input and one output channel per group: a GEMM of
 *                  one row), groups of fewer than 8 output channels or a
 *                  depth under 8 (tiles mostly empty), sizes past the
 *                  kernels' 32-bit indices, halves on a GPU older than
 *                  compute capability 8.0, and KILN_CUDA_CONV=direct.
 *
 * KILN_CUDA_CONV=direct (read once per process) sends every convolution to
 * the direct kernel: for benchmarking (bench/bench_gpu_conv.py --direct)
 * and for telling a fast path's fault from the op's.
 *
 * Limits worth knowing: nothing splits the depth axis (it would need a float
 * workspace or atomics on the output), so a layer of few output tiles (batch
 * 1 at 7x7: one column tile) runs on few SMs; the WMMA kernel's body is
 * compiled for compute capability 8.0 and up only (CMake's default
 * architectures, 80 and 90), and is a trap in a build for older targets.
 *
 * CONV_TRANSPOSE always takes its direct kernel: for each output, the taps
 * whose input position is whole and inside the input. */
#include <stdlib.h>
#include <string.h>
#include <mma.h>

#include "backend/cuda/cuda_dtype.cuh"
#include "backend/cuda/cuda_ops.h"

/* The geometry, passed by value (the rule's canonical attributes). */
struct kc_conv_geom {
    int     k;                        /* spatial axes, 1 to 3 */
    int64_t C, M, cg, mg;             /* channels in, out; per group (both ops: C in, M out) */
    int64_t in[3], ker[3], out[3];    /* unused axes are 1 */
    int64_t stride[3], dil[3], pad[3];
    int64_t taps, positions, in_plane;
};

/* ---- the direct kernels ---------------------------------------------------- */

template <typename T>
__global__ void kc_conv(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias,
                        T *__restrict__ y, int64_t total, kc_conv_geom g) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        /* e = ((n·M + m)·P + position) */
        int64_t p = e % g.positions, nm = e / g.positions;
        int64_t m = nm % g.M, n = nm / g.M, grp = m / g.mg;
        int64_t o[3] = {0, 0, 0}, rest = p;
        for (int i = g.k - 1; i >= 0; i--) {
            o[i] = rest % g.out[i];
            rest /= g.out[i];
        }
        int64_t start[3];
        for (int i = 0; i < 3; i++) start[i] = o[i] * g.stride[i] - g.pad[i];
        const T *xg = x + (n * g.C + grp * g.cg) * g.in_plane;
        const T *wm = w + m * g.cg * g.taps;
        float sum = 0.0f;
        for (int64_t c = 0; c < g.cg; c++) {
            const T *xc = xg + c * g.in_plane;
            const T *wc = wm + c * g.taps;
            for (int64_t t0 = 0; t0 < g.ker[0]; t0++) {
                int64_t a0 = start[0] + t0 * g.dil[0];
                if (a0 < 0 || a0 >= g.in[0]) continue;
                for (int64_t t1 = 0; t1 < g.ker[1]; t1++) {
                    int64_t a1 = start[1] + t1 * g.dil[1];
                    if (a1 < 0 || a1 >= g.in[1]) continue;
                    for (int64_t t2 = 0; t2 < g.ker[2]; t2++) {
                        int64_t a2 = start[2] + t2 * g.dil[2];
                        if (a2 < 0 || a2 >= g.in[2]) continue;
                        float xv = kc_to_f32(xc[(a0 * g.in[1] + a1) * g.in[2] + a2]);
                        float wv = kc_to_f32(wc[(t0 * g.ker[1] + t1) * g.ker[2] + t2]);
                        sum = fmaf(xv, wv, sum);
                    }
                }
            }
        }
        if (bias) sum += kc_to_f32(bias[m]);
        y[e] = kc_from_f32<T>(sum);
    }
}

/* CONV_TRANSPOSE: the output element (n, m, o) sums x[n, c, i] · w[c, m', t]
 * over the group's input channels c and the taps t whose input position i =
 * (o + pad - t·dilation) / stride is whole and inside the input.  Here
 * g.C and g.cg count input channels, g.M and g.mg output channels. */
template <typename T>
__global__ void kc_conv_transpose(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias,
                                  T *__restrict__ y, int64_t total, kc_conv_geom g) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) {
        int64_t p = e % g.positions, nm = e / g.positions;
        int64_t m = nm % g.M, n = nm / g.M, grp = m / g.mg, mm = m % g.mg;
        int64_t o[3] = {0, 0, 0}, rest = p;
        for (int i = g.k - 1; i >= 0; i--) {
            o[i] = rest % g.out[i];
            rest /= g.out[i];
        }
        int64_t full[3];
        for (int i = 0; i < 3; i++) full[i] = o[i] + g.pad[i];
        float sum = 0.0f;
        for (int64_t c = 0; c < g.cg; c++) {
            const int64_t ch = grp * g.cg + c;
            const T *xc = x + (n * g.C + ch) * g.in_plane;
            const T *wc = w + (ch * g.mg + mm) * g.taps;
            for (int64_t t0 = 0; t0 < g.ker[0]; t0++) {
                int64_t v0 = full[0] - t0 * g.dil[0];
                if (v0 < 0 || v0 % g.stride[0] || v0 / g.stride[0] >= g.in[0]) continue;
                for (int64_t t1 = 0; t1 < g.ker[1]; t1++) {
                    int64_t v1 = full[1] - t1 * g.dil[1];
                    if (v1 < 0 || v1 % g.stride[1] || v1 / g.stride[1] >= g.in[1]) continue;
                    for (int64_t t2 = 0; t2 < g.ker[2]; t2++) {
                        int64_t v2 = full[2] - t2 * g.dil[2];
                        if (v2 < 0 || v2 % g.stride[2] || v2 / g.stride[2] >= g.in[2]) continue;
                        int64_t i0 = v0 / g.stride[0], i1 = v1 / g.stride[1], i2 = v2 / g.stride[2];
                        float xv = kc_to_f32(xc[(i0 * g.in[1] + i1) * g.in[2] + i2]);
                        float wv = kc_to_f32(wc[(t0 * g.ker[1] + t1) * g.ker[2] + t2]);
                        sum = fmaf(xv, wv, sum);
                    }
                }
            }
        }
        if (bias) sum += kc_to_f32(bias[m]);
        y[e] = kc_from_f32<T>(sum);
    }
}

/* ---- implicit GEMM ---------------------------------------------------------- */

/* One group's GEMM: rows are its mg output channels, columns the NP = N·P
 * (batch element, position) pairs, depth the K = cg·taps (channel, tap)
 * pairs.  Sizes fit 32 bits (kc_ig_fits); offsets into x and y are 64-bit. */
struct kc_ig_geom {
    int32_t mg, K, taps, NP, P;
    int32_t ker1, ker2;                 /* tap t = (t0·ker1 + t1)·ker2 + t2 */
    int32_t out1, out2;                 /* position p = (o0·out1 + o1)·out2 + o2 */
    int32_t in[3], stride[3], dil[3], pad[3];
    int64_t in_plane, x_batch, x_group; /* x: one channel's plane; per batch element (C·plane); per group (cg·plane) */
    int64_t y_batch;                    /* y: per batch element (M·P) */
    int64_t w_group;                    /* w: per group (mg·K) */
};

/* Far outside any input: a window start or tap offset that makes every read
 * of a column past NP, or of a depth row past K, fall outside, hence zero.
 * Two of them still sum within int32. */
#define KC_IG_FAR (-(1 << 30))

/* Where depth row k reads, relative to a column's window start. */
struct kc_ig_tap {
    int64_t off;      /* c·plane + (d0·in1 + d1)·in2 + d2 */
    int32_t d[3];     /* tap index times dilation, per axis */
};

/* Where column j's window starts. */
struct kc_ig_col {
    int64_t base;     /* n·x_batch + grp·x_group + (s0·in1 + s1)·in2 + s2 (may be negative: padding) */
    int32_t s[3];     /* o·stride − pad, per axis */
};

__device__ __forceinline__ kc_ig_tap kc_ig_tap_of(const kc_ig_geom &g, int k) {
    kc_ig_tap t;
    if (k >= g.K) {
        t.off = 0;
        t.d[0] = KC_IG_FAR;
        t.d[1] = t.d[2] = 0;
        return t;
    }
    int c = k / g.taps, r = k - c * g.taps;
    int plane = g.ker1 * g.ker2;
    int t0 = r / plane;
    r -= t0 * plane;
    int t1 = r / g.ker2, t2 = r - t1 * g.ker2;
    t.d[0] = t0 * g.dil[0];
    t.d[1] = t1 * g.dil[1];
    t.d[2] = t2 * g.dil[2];
    t.off = (int64_t)c * g.in_plane + ((int64_t)t.d[0] * g.in[1] + t.d[1]) * g.in[2] + t.d[2];
    return t;
}

__device__ __forceinline__ kc_ig_col kc_ig_col_of(const kc_ig_geom &g, int j, int grp) {
    kc_ig_col c;
    if (j >= g.NP) {
        c.base = 0;
        c.s[0] = KC_IG_FAR;
        c.s[1] = c.s[2] = 0;
        return c;
    }
    int n = j / g.P, p = j - n * g.P;
    int plane = g.out1 * g.out2;
    int o0 = p / plane;
    p -= o0 * plane;
    int o1 = p / g.out2, o2 = p - o1 * g.out2;
    c.s[0] = o0 * g.stride[0] - g.pad[0];
    c.s[1] = o1 * g.stride[1] - g.pad[1];
    c.s[2] = o2 * g.stride[2] - g.pad[2];
    c.base = (int64_t)n * g.x_batch + (int64_t)grp * g.x_group +
             ((int64_t)c.s[0] * g.in[1] + c.s[1]) * g.in[2] + c.s[2];
    return c;
}

/* x under (column, depth row): zero in the padding, past NP and past K. */
template <typename T>
__device__ __forceinline__ T kc_ig_x(const T *__restrict__ x, const kc_ig_geom &g, const kc_ig_col &c,
                                     const kc_ig_tap &t) {
    bool inside = (unsigned)(c.s[0] + t.d[0]) < (unsigned)g.in[0] && (unsigned)(c.s[1] + t.d[1]) < (unsigned)g.in[1] &&
                  (unsigned)(c.s[2] + t.d[2]) < (unsigned)g.in[2];
    return inside ? x[c.base + t.off] : kc_from_f32<T>(0.0f);
}

/* Output (row m of group grp, column j), float sum → y with the bias. */
template <typename T>
__device__ __forceinline__ void kc_ig_store(T *__restrict__ y, const T *__restrict__ bias, const kc_ig_geom &g,
                                            int grp, int m, int j, float v) {
    if (m >= g.mg || j >= g.NP) return;
    int n = j / g.P, p = j - n * g.P;
    int64_t ch = (int64_t)grp * g.mg + m;
    if (bias) v += kc_to_f32(bias[ch]);
    y[(int64_t)n * g.y_batch + ch * g.P + p] = kc_from_f32<T>(v);
}

/* float16 / bfloat16 on tensor cores.  BM×64 block tile (BM = 64 or 128),
 * 2·BM threads, one 32x32 warp tile each (2x2 WMMA fragments), depth step
 * 32.  Grid: (column tiles, row tiles, groups).
 *
 * Pipeline, one __syncthreads per depth step kt (buffers cur = kt & 1, nxt):
 *   load tile kt+1 from global into registers (x gathered through tap[nxt]),
 *   MMAs on As[cur], Bs[cur], store the registers into As[nxt], Bs[nxt],
 *   fill tap[cur] for tile kt+2, sync.
 * As[nxt]/Bs[nxt] were last read by step kt-1's MMAs and tap[cur] by step
 * kt-1's loads, both before step kt-1's sync; this step reads only the
 * other buffers.
 *
 * VA (vector A): the weights are read 16 bytes (8 depth entries of a row)
 * at a time; the caller sets it when K is a multiple of 8 and w is 16-byte
 * aligned, so a vector is wholly inside a row's depth or wholly past it. */
template <typename T, int BM, bool VA>
__global__ void __launch_bounds__(BM * 2)
kc_conv_igemm_wmma(const T *__restrict__ x, const T *__restrict__ w, const T *__restrict__ bias, T *__restrict__ y,
                   kc_ig_geom g) {
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    constexpr int BN = 64, BK = 32, THREADS = BM * 2;
    constexpr int LDA = BK + 8, LDB = BN + 8;            /* padded rows (multiples of 8 elements, as WMMA wants) */
    constexpr int A_PER = BM * BK / THREADS, A_STEP = THREADS / BK;
    constexpr int B_PER = BK * BN / THREADS, B_STEP = THREADS / BN;
    static_assert(A_PER * A_STEP == BM && B_PER * B_STEP == BK, "loader covers the tiles");
    typedef kc_vec<T> V;                                 /* 8 elements */
    constexpr int AV_PER = BM * (BK / V::N) / THREADS;   /* vectors of A per thread (VA) */
    static_assert(AV_PER * THREADS == BM * (BK / V::N) && (LDA * sizeof(T)) % 16 == 0, "vector loader");
    __shared__ __align__(128) T As[2][BM][LDA];
    __shared__ __align__(128) T Bs[2][BK][LDB];
    __shared__ __align__(128) float stage[THREADS / 32][16 * 16];
    __shared__ kc_ig_tap tap[2][BK];

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    const int warp_m = warp / 2, warp_n = warp % 2;
    const int grp = blockIdx.z, m0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    const T *__restrict__ wg = w + (int64_t)grp * g.w_group;
    const T zero = kc_from_f32<T>(0.0f);
    /* This thread's loads: A (weights) rows am + i·A_STEP at depth ak; B (x)
     * depth rows bk + i·B_STEP of column bj. */
    const int ak = tid % BK, am = tid / BK, bj = tid % BN, bk = tid / BN;
    const kc_ig_col col = kc_ig_col_of(g, j0 + bj, grp);
    const int nk = (g.K + BK - 1) / BK;
    T ra[A_PER], rb[B_PER];
    V rav[AV_PER];                                       /* VA: vector v = tid + i·THREADS is row v / 4, depth (v % 4)·8 */

    auto load = [&](int kt, int buf) {
        if constexpr (VA) {
#pragma unroll
            for (int i = 0; i < AV_PER; i++) {
                const int v = tid + i * THREADS, m = m0 + v / (BK / V::N), k = kt * BK + (v % (BK / V::N)) * V::N;
                if (m < g.mg && k < g.K) {
                    rav[i] = *reinterpret_cast<const V *>(wg + (int64_t)m * g.K + k);
                } else {
#pragma unroll
                    for (int e = 0; e < V::N; e++) rav[i].v[e] = zero;
                }
            }
        } else {
            const int k = kt * BK + ak;
#pragma unroll
            for (int i = 0; i < A_PER; i++) {
                const int m = m0 + am + i * A_STEP;
                ra[i] = m < g.mg && k < g.K ? wg[(int64_t)m * g.K + k] : zero;
            }
        }
#pragma unroll
        for (int i = 0; i < B_PER; i++) rb[i] = kc_ig_x(x, g, col, tap[buf][bk + i * B_STEP]);
    };
    auto store = [&](int buf) {
        if constexpr (VA) {
#pragma unroll
            for (int i = 0; i < AV_PER; i++) {
                const int v = tid + i * THREADS;
                *reinterpret_cast<V *>(&As[buf][v / (BK / V::N)][(v % (BK / V::N)) * V::N]) = rav[i];
            }
        } else {
#pragma unroll
            for (int i = 0; i < A_PER; i++) As[buf][am + i * A_STEP][ak] = ra[i];
        }
#pragma unroll
        for (int i = 0; i < B_PER; i++) Bs[buf][bk + i * B_STEP][bj] = rb[i];
    };

    if (tid < BK) {
        tap[0][tid] = kc_ig_tap_of(g, tid);
        if (nk > 1) tap[1][tid] = kc_ig_tap_of(g, BK + tid);
    }
    __syncthreads();
    load(0, 0);
    store(0);
    __syncthreads();

    wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) wmma::fill_fragment(acc[i][j], 0.0f);

    for (int kt = 0; kt < nk; kt++) {
        const int cur = kt & 1, nxt = cur ^ 1;
        if (kt + 1 < nk) load(kt + 1, nxt);
#pragma unroll
        for (int ks = 0; ks < BK; ks += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
            wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
            for (int i = 0; i < 2; i++) wmma::load_matrix_sync(fa[i], &As[cur][warp_m * 32 + i * 16][ks], LDA);
#pragma unroll
            for (int j = 0; j < 2; j++) wmma::load_matrix_sync(fb[j], &Bs[cur][ks][warp_n * 32 + j * 16], LDB);
#pragma unroll
            for (int i = 0; i < 2; i++)
#pragma unroll
                for (int j = 0; j < 2; j++) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
        if (kt + 1 < nk) store(nxt);
        if (kt + 2 < nk && tid < BK) tap[cur][tid] = kc_ig_tap_of(g, (kt + 2) * BK + tid);
        __syncthreads();
    }

    /* Epilogue: each fragment through this warp's staging square. */
    float *st = stage[warp];
#pragma unroll
    for (int i = 0; i < 2; i++)
#pragma unroll
        for (int j = 0; j < 2; j++) {
            wmma::store_matrix_sync(st, acc[i][j], 16, wmma::mem_row_major);
            __syncwarp();
            for (int e = lane; e < 256; e += 32)
                kc_ig_store(y, bias, g, grp, m0 + warp_m * 32 + i * 16 + e / 16, j0 + warp_n * 32 + j * 16 + e % 16,
                            st[e]);
            __syncwarp();
        }
#else
    __trap();   /* not chosen below compute capability 8.0 (kc_conv_choose) */
#endif
}

/* float32 in true float32: a 64x64 block tile, 256 threads of 4x4 outputs
 * (rows ty·4.., columns tx·4..), depth step 16; the same pipeline as the
 * WMMA kernel. */
__global__ void __launch_bounds__(256)
kc_conv_igemm_f32(const float *__restrict__ x, const float *__restrict__ w, const float *__restrict__ bias,
                  float *__restrict__ y, kc_ig_geom g) {
    constexpr int BM = 64, BN = 64, BK = 16, THREADS = 256;
    constexpr int A_PER = BM * BK / THREADS, A_STEP = THREADS / BK;
    constexpr int B_PER = BK * BN / THREADS, B_STEP = THREADS / BN;
    static_assert(A_PER * A_STEP == BM && B_PER * B_STEP == BK, "loader covers the tiles");
    /* Rows of 68: 16-byte aligned for the float4 reads. */
    __shared__ __align__(16) float As[2][BK][BM + 4];
    __shared__ __align__(16) float Bs[2][BK][BN + 4];
    __shared__ kc_ig_tap tap[2][BK];

    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int grp = blockIdx.z, m0 = blockIdx.y * BM, j0 = blockIdx.x * BN;
    const float *__restrict__ wg = w + (int64_t)grp * g.w_group;
    const int ak = tid % BK, am = tid / BK, bj = tid % BN, bk = tid / BN;
    const kc_ig_col col = kc_ig_col_of(g, j0 + bj, grp);
    const int nk = (g.K + BK - 1) / BK;
    float ra[A_PER], rb[B_PER];

    auto load = [&](int kt, int buf) {
        const int k = kt * BK + ak;
#pragma unroll
        for (int i = 0; i < A_PER; i++) {
            const int m = m0 + am + i * A_STEP;
            ra[i] = m < g.mg && k < g.K ? wg[(int64_t)m * g.K + k] : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < B_PER; i++) rb[i] = kc_ig_x(x, g, col, tap[buf][bk + i * B_STEP]);
    };
    auto store = [&](int buf) {
#pragma unroll
        for (int i = 0; i < A_PER; i++) As[buf][ak][am + i * A_STEP] = ra[i];
#pragma unroll
        for (int i = 0; i < B_PER; i++) Bs[buf][bk + i * B_STEP][bj] = rb[i];
    };

    if (tid < BK) {
        tap[0][tid] = kc_ig_tap_of(g, tid);
        if (nk > 1) tap[1][tid] = kc_ig_tap_of(g, BK + tid);
    }
    __syncthreads();
    load(0, 0);
    store(0);
    __syncthreads();

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int kt = 0; kt < nk; kt++) {
        const int cur = kt & 1, nxt = cur ^ 1;
        if (kt + 1 < nk) load(kt + 1, nxt);
#pragma unroll
        for (int kk = 0; kk < BK; kk++) {
            const float4 a = *reinterpret_cast<const float4 *>(&As[cur][kk][ty * 4]);
            const float4 b = *reinterpret_cast<const float4 *>(&Bs[cur][kk][tx * 4]);
            const float av[4] = {a.x, a.y, a.z, a.w}, bv[4] = {b.x, b.y, b.z, b.w};
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
        }
        if (kt + 1 < nk) store(nxt);
        if (kt + 2 < nk && tid < BK) tap[cur][tid] = kc_ig_tap_of(g, (kt + 2) * BK + tid);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) kc_ig_store(y, bias, g, grp, m0 + ty * 4 + i, j0 + tx * 4 + j, acc[i][j]);
}

/* y[n, m, p] = bias[m]: the 1x1 path's GEMM then adds the product (beta 1). */
template <typename T>
__global__ void kc_conv_fill_bias(const T *__restrict__ bias, T *__restrict__ y, int64_t total, int64_t M,
                                  int64_t P) {
    for (int64_t e = kc_thread_index(); e < total; e += kc_grid_stride()) y[e] = bias[(e / P) % M];
}

extern "C" bool kiln_cuda_conv_supports(const kiln_layer_launch *l) {
    kiln_dtype dt = l->outputs[0].dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    for (int32_t i = 0; i < l->input_count; i++)
        if (l->inputs[i].dtype != dt) return false;
    return true;
}

template <typename T>
static void kc_conv_direct(const kiln_layer_launch *l, int64_t total, const kc_conv_geom &g, bool transposed,
                           cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    const T *x = (const T *)l->inputs[0].data, *w = (const T *)l->inputs[1].data;
    unsigned grid = kiln_cuda_grid(total, KC_THREADS);
    if (transposed) kc_conv_transpose<T><<<grid, KC_THREADS, 0, s>>>(x, w, bias, (T *)l->outputs[0].data, total, g);
    else kc_conv<T><<<grid, KC_THREADS, 0, s>>>(x, w, bias, (T *)l->outputs[0].data, total, g);
}

/* The 1x1 path: Y[n,g] = W[g] · X[n,g] (see the top), the bias first. */
template <typename T>
static kiln_status kc_conv_1x1(int32_t device, const kiln_layer_launch *l, const kc_conv_geom &g, int64_t batch,
                               kiln_dtype dt, cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    T *y = (T *)l->outputs[0].data;
    const int64_t P = g.positions, groups = g.M / g.mg;
    if (bias) {
        const int64_t total = batch * g.M * P;
        kc_conv_fill_bias<T><<<kiln_cuda_grid(total, KC_THREADS), KC_THREADS, 0, s>>>(bias, y, total, g.M, P);
        kiln_status st = kiln_cuda_check_launch("conv bias");
        if (st != KILN_OK) return st;
    }
    kiln_cuda_gemm m;
    m.dtype = dt;
    m.m = g.mg;
    m.n = P;
    m.k = g.cg;
    m.lda = g.cg;
    m.ldb = P;
    m.ldc = P;
    m.beta = bias ? 1.0f : 0.0f;
    /* Strides between batch elements and between groups, in elements of w, x, y. */
    const int64_t wb = 0, xb = g.C * P, yb = g.M * P;
    const int64_t wg = g.mg * g.cg, xg = g.cg * P, yg = g.mg * P;
    if (batch >= groups) {    /* batched over n, a call per group */
        m.batch = batch, m.stride_a = wb, m.stride_b = xb, m.stride_c = yb;
        m.calls = groups, m.step_a = wg, m.step_b = xg, m.step_c = yg;
    } else {                  /* batched over groups, a call per n */
        m.batch = groups, m.stride_a = wg, m.stride_b = xg, m.stride_c = yg;
        m.calls = batch, m.step_a = wb, m.step_b = xb, m.step_c = yb;
    }
    return kiln_cuda_gemm_run(device, &m, l->inputs[1].data, l->inputs[0].data, y, s);
}

/* Halves take 128-row tiles when the group has 128 output channels or more
 * and the grid still has two blocks per SM; otherwise 64-row tiles, so that
 * a small layer (batch 1 at 7x7 or 14x14) spreads over more of the GPU.
 * (There is no split over the depth: it would need a float workspace or
 * atomics on the output.) */
template <typename T>
static void kc_conv_igemm(int32_t device, const kiln_layer_launch *l, const kc_ig_geom &ig, int64_t groups,
                          cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    const T *x = (const T *)l->inputs[0].data, *w = (const T *)l->inputs[1].data;
    T *y = (T *)l->outputs[0].data;
    const unsigned cols = (unsigned)((ig.NP + 63) / 64);
    bool tall = false;
    if constexpr (sizeof(T) != 4) {
        int sms = 0;
        if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
            (void)cudaGetLastError();
            sms = 1;
        }
        tall = ig.mg >= 128 && (int64_t)cols * ((ig.mg + 127) / 128) * groups >= 2 * (int64_t)sms;
    }
    /* Weights in 16-byte vectors: every row starts on one (K a multiple of 8) and w does. */
    const bool va = ig.K % 8 == 0 && ((uintptr_t)w & 15u) == 0;
    if constexpr (sizeof(T) == 4) {
        dim3 grid(cols, (unsigned)((ig.mg + 63) / 64), (unsigned)groups);
        kc_conv_igemm_f32<<<grid, 256, 0, s>>>(x, w, bias, y, ig);
    } else if (tall) {
        dim3 grid(cols, (unsigned)((ig.mg + 127) / 128), (unsigned)groups);
        if (va) kc_conv_igemm_wmma<T, 128, true><<<grid, 256, 0, s>>>(x, w, bias, y, ig);
        else kc_conv_igemm_wmma<T, 128, false><<<grid, 256, 0, s>>>(x, w, bias, y, ig);
    } else {
        dim3 grid(cols, (unsigned)((ig.mg + 63) / 64), (unsigned)groups);
        if (va) kc_conv_igemm_wmma<T, 64, true><<<grid, 128, 0, s>>>(x, w, bias, y, ig);
        else kc_conv_igemm_wmma<T, 64, false><<<grid, 128, 0, s>>>(x, w, bias, y, ig);
    }
}

/* KILN_CUDA_CONV=direct: every convolution on the direct kernel; read once. */
static bool kc_conv_force_direct(void) {
    static int direct = -1;
    if (direct < 0) {
        const char *e = getenv("KILN_CUDA_CONV");
        direct = e && strcmp(e, "direct") == 0;
    }
    return direct != 0;
}

/* The implicit-GEMM kernels' geometry, false when a size is past their
 * 32-bit indices or grid limits (then the direct kernel runs). */
static bool kc_ig_fits(const kc_conv_geom &g, int64_t batch, kc_ig_geom *ig) {
    const int64_t lim = (int64_t)1 << 30, K = g.cg * g.taps, NP = batch * g.positions, groups = g.M / g.mg;
    if (g.mg >= lim || K >= lim || NP >= lim || groups > 65535 || (g.mg + 63) / 64 > 65535) return false;
    for (int i = 0; i < 3; i++)
        if (g.in[i] >= lim || g.pad[i] >= lim || (g.ker[i] - 1) * g.dil[i] >= lim ||
            (g.out[i] - 1) * g.stride[i] >= lim)
            return false;
    ig->mg = (int32_t)g.mg;
    ig->K = (int32_t)K;
    ig->taps = (int32_t)g.taps;
    ig->NP = (int32_t)NP;
    ig->P = (int32_t)g.positions;
    ig->ker1 = (int32_t)g.ker[1];
    ig->ker2 = (int32_t)g.ker[2];
    ig->out1 = (int32_t)g.out[1];
    ig->out2 = (int32_t)g.out[2];
    for (int i = 0; i < 3; i++) {
        ig->in[i] = (int32_t)g.in[i];
        ig->stride[i] = (int32_t)g.stride[i];
        ig->dil[i] = (int32_t)g.dil[i];
        ig->pad[i] = (int32_t)g.pad[i];
    }
    ig->in_plane = g.in_plane;
    ig->x_batch = g.C * g.in_plane;
    ig->x_group = g.cg * g.in_plane;
    ig->y_batch = g.M * g.positions;
    ig->w_group = g.mg * K;
    return true;
}

enum kc_conv_path { KC_CONV_DIRECT, KC_CONV_1X1, KC_CONV_IGEMM };

/* Which kernel runs a CONV (the file's top says why). */
static kc_conv_path kc_conv_choose(int32_t device, const kc_conv_geom &g, int64_t batch, kiln_dtype dt,
                                   kc_ig_geom *ig) {
    if (kc_conv_force_direct()) return KC_CONV_DIRECT;
    /* Depthwise: each output sums one channel's taps, a GEMM of one row. */
    if (g.cg == 1 && g.mg == 1) return KC_CONV_DIRECT;
    /* 1x1, stride 1, no padding (out == in with no begin pad: no end pad
     * either): x is already the GEMM's right operand.  cuBLAS takes 32-bit
     * sizes; past them the kernels below decide. */
    bool pointwise = g.cg >= 1;
    for (int i = 0; i < 3; i++)
        pointwise = pointwise && g.ker[i] == 1 && g.stride[i] == 1 && g.pad[i] == 0 && g.out[i] == g.in[i];
    const int64_t int_max = 0x7fffffff;
    if (pointwise && g.positions <= int_max && g.cg <= int_max && g.mg <= int_max && batch <= int_max &&
        g.M / g.mg <= int_max)
        return KC_CONV_1X1;
    /* Tiles of 64 rows and depth steps of 16 or 32 would be mostly empty. */
    if (g.mg < 8 || g.cg * g.taps < 8 || !kc_ig_fits(g, batch, ig)) return KC_CONV_DIRECT;
    if (dt != KILN_FLOAT32) {   /* bfloat16 WMMA needs sm_80 */
        int major = 0;
        if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
            (void)cudaGetLastError();
            return KC_CONV_DIRECT;
        }
        if (major < 8) return KC_CONV_DIRECT;
    }
    return KC_CONV_IGEMM;
}

/* Both ops: the geometry from the launch, checked against what the rule
 * allows, then the path. */
static kiln_status kc_conv_run(int32_t device, const kiln_layer_launch *l, bool transposed, cudaStream_t s) {
    const char *what = transposed ? "conv_transpose" : "conv";
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    kc_conv_geom g;
    g.k = x->rank - 2;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (g.k < 1 || g.k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g.k)
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s of rank %d with %d attributes", what,
                              (int)x->rank, (int)l->attr_count);
    const int64_t *a = l->attrs, group = a[0];
    g.C = x->dims[1];
    bool ok;
    if (transposed) {   /* w [C, M/group, K..] */
        g.cg = group > 0 ? g.C / group : 0;
        g.mg = w->dims[1];
        g.M = g.mg * group;
        ok = group >= 1 && g.cg * group == g.C && w->dims[0] == g.C;
    } else {            /* w [M, C/group, K..] */
        g.M = w->dims[0];
        g.cg = w->dims[1];
        g.mg = group > 0 ? g.M / group : 0;
        ok = group >= 1 && g.cg * group == g.C && g.mg * group == g.M;
    }
    if (!ok || out->dims[1] != g.M || out->dims[0] != x->dims[0])
        return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s channels: input %lld, weight [%lld, %lld], "
                              "group %lld", what, (long long)g.C, (long long)w->dims[0], (long long)w->dims[1],
                              (long long)group);
    g.taps = g.positions = g.in_plane = 1;
    /* Spatial axes packed to the front; the missing ones are size 1 with no padding. */
    for (int i = 0; i < 3; i++) {
        bool used = i < g.k;
        g.in[i] = used ? x->dims[2 + i] : 1;
        g.ker[i] = used ? w->dims[2 + i] : 1;
        g.out[i] = used ? out->dims[2 + i] : 1;
        g.stride[i] = used ? a[1 + i] : 1;
        g.dil[i] = used ? a[1 + g.k + i] : 1;
        g.pad[i] = used ? a[1 + 2 * g.k + i] : 0;
        g.taps *= g.ker[i];
        g.positions *= g.out[i];
        g.in_plane *= g.in[i];
    }
    const int64_t total = kiln_cuda_numel(out), batch = x->dims[0];
    if (total == 0) return KILN_OK;
    const kiln_dtype dt = out->dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return kiln_cuda_unsupported(what, dt);
    kc_ig_geom ig;
    const kc_conv_path path = transposed ? KC_CONV_DIRECT : kc_conv_choose(device, g, batch, dt, &ig);
    if (path == KC_CONV_1X1) {
        switch (dt) {
        case KILN_FLOAT32: return kc_conv_1x1<float>(device, l, g, batch, dt, s);
        case KILN_FLOAT16: return kc_conv_1x1<__half>(device, l, g, batch, dt, s);
        default:           return kc_conv_1x1<__nv_bfloat16>(device, l, g, batch, dt, s);
        }
    }
    if (path == KC_CONV_IGEMM) {
        switch (dt) {
        case KILN_FLOAT32: kc_conv_igemm<float>(device, l, ig, g.M / g.mg, s); break;
        case KILN_FLOAT16: kc_conv_igemm<__half>(device, l, ig, g.M / g.mg, s); break;
        default:           kc_conv_igemm<__nv_bfloat16>(device, l, ig, g.M / g.mg, s); break;
        }
        return kiln_cuda_check_launch("conv (implicit GEMM)");
    }
    switch (dt) {
    case KILN_FLOAT32: kc_conv_direct<float>(l, total, g, transposed, s); break;
    case KILN_FLOAT16: kc_conv_direct<__half>(l, total, g, transposed, s); break;
    default:           kc_conv_direct<__nv_bfloat16>(l, total, g, transposed, s); break;
    }
    return kiln_cuda_check_launch(what);
}

extern "C" kiln_status kiln_cuda_conv_run(int32_t device, const kiln_layer_launch *l, cudaStream_t s) {
    return kc_conv_run(device, l, false, s);
}

extern "C" kiln_status kiln_cuda_conv_transpose_run(const kiln_layer_launch *l, cudaStream_t s) {
    return kc_conv_run(-1, l, true, s);
}
