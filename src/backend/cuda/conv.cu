/* conv.cu — CONV and CONV_TRANSPOSE (ONNX Conv, ConvTranspose) over 1 to 3
 * spatial axes, float32 / float16 / bfloat16, sums in float32 (as the CPU
 * backend), the bias added before the one rounding to the output type.
 *
 * CONV takes one of four paths, chosen in kc_conv_choose (the one place
 * that decides; kc_conv_im2col_plan decides the first from shapes alone, so
 * that the workspace query and the run agree):
 *
 *   im2col         when the launch has a workspace (the runtime asks
 *                  kiln_cuda_conv_workspace when shapes are prepared and
 *                  hands the largest over its layers to every launch),
 *                  for every convolution with at least 8 output channels
 *                  per group and a depth C/g·taps of at least 8 that is not
 *                  1x1/stride-1/unpadded, float32/float16/bfloat16: a
 *                  kernel writes col (rows (channel, tap) over all groups,
 *                  a column per output position, zeros in the padding,
 *                  16-byte vector stores along the positions) for a chunk
 *                  of images into the workspace, then cuBLAS multiplies
 *                  (kiln_cuda_gemm_run in matmul.cu: the matmul layer's
 *                  handles, lock and compute types, so it behaves the same
 *                  under CUDA graph capture).  Why: the implicit-GEMM
 *                  kernel below ran ResNet-50's 3x3 layers 3-11x slower
 *                  than cuDNN on an H200 (about 36 TFLOP/s at batch 32;
 *                  8 blocks at batch 1, 7x7), and cuBLAS's GEMMs are tuned
 *                  per shape (split-K included); the col pass costs a write
 *                  and a read of taps·x (not yet measured against the
 *                  kernel: bench/bench_gpu_conv.py --path).  Two forms:
 *                    batched: per image a [CK, P] block (CK = C·taps), one
 *                    strided-batched GEMM over the images (or groups) whose
 *                    products land in y [n, M, P] directly; the bias is
 *                    written into y first and the GEMM adds to it (beta 1:
 *                    one rounding).
 *                    flat, when the batch has more than one image and P <
 *                    KC_CONV_FLAT_BELOW positions: one [CK, nb·P] matrix
 *                    (columns (image, position)), one GEMM per group of
 *                    nb·P columns into z [M, nb·P] in the workspace (bias
 *                    first, beta 1), and a permute pass z → y.  nb small
 *                    products of 49 columns (7x7) leave cuBLAS's column
 *                    tiles mostly empty; one wide product fills them.
 *                  1x1 stride-1 unpadded convolutions take the flat form
 *                  too when it applies (the gather is then a permute of x
 *                  into [C, nb·P]); in the batched form x is already col,
 *                  so they take the 1x1 path instead.  Groups: the batch of
 *                  the GEMM, or its calls, step over the group's weights
 *                  and col rows.  Chunks: as many images as fit in
 *                  KC_CONV_WORKSPACE_CAP (256 MiB; KILN_CUDA_CONV_WORKSPACE_MB
 *                  replaces it), at least one; the run recomputes the chunk
 *                  from the shapes and refuses a workspace smaller than it
 *                  needs (never runs past it).
 *   1x1 → cuBLAS   every kernel size 1, strides 1, no padding (dilation is
 *                  then irrelevant), when the im2col path does not take it:
 *                  per batch element n and group g,
 *                  Y[n,g] (M/g × P) = W[g] (M/g × C/g) · X[n,g] (C/g × P),
 *                  P the positions, which is x as it lies: no im2col at all,
 *                  no workspace.  The batched form's GEMM with x for col.
 *   implicit GEMM  without a workspace (a launch from code that gives none:
 *                  workspace_size 0), the other convolutions with at least
 *                  8 output channels per group and a depth of at least 8:
 *                  the GEMM with rows = the group's output channels,
 *                  columns = (n, position) over the whole batch, depth =
 *                  (channel, tap), whose x tile is gathered on the fly into
 *                  shared memory (the im2col index arithmetic, zeros for
 *                  padding).  float16/bfloat16: tensor cores through WMMA
 *                  (16x16x16, float accumulators), 128x64 or 64x64 block
 *                  tiles (128 rows when the group has at least 128 output
 *                  channels and the grid still fills the GPU twice over),
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
 *                  compute capability 8.0 without a workspace.
 *
 * KILN_CUDA_CONV (read once per process) forces a path wherever that path
 * can run the convolution (elsewhere the usual choice stands), for
 * benchmarking (bench/bench_gpu_conv.py --path) and for telling a path's
 * fault from the op's: `direct` (every convolution), `igemm` (also 1x1,
 * small and depthwise ones; no workspace is asked for), `im2col` (also
 * small and depthwise ones, when a workspace is given), `im2col-batched`,
 * `im2col-flat` (the form forced too; a 1x1 stride-1 convolution in the
 * batched form is the 1x1 path).  KILN_CUDA_CONV_LOG=1 prints each run's
 * path (kc_conv_log_on).
 *
 * Limits worth knowing: the implicit-GEMM kernel does not split the depth
 * axis, so a layer of few output tiles (batch 1 at 7x7: one column tile)
 * runs on few SMs there (cuBLAS chooses its own kernel on the im2col path);
 * the WMMA kernel's body is compiled for compute capability 8.0 and up only
 * (CMake's default architectures, 80 and 90), and is a trap in a build for
 * older targets.
 *
 * CONV_TRANSPOSE always takes its direct kernel: for each output, the taps
 * whose input position is whole and inside the input. */
#include <stdio.h>
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

/* ---- im2col + cuBLAS ---------------------------------------------------------- */

/* One chunk of nb images' col matrix, rows r = c·taps + t over all C
 * channels (group g's rows are g·Kg … g·Kg + Kg − 1, Kg = C/group·taps):
 *   batched: per image a [CK, P] block, images CK·P apart: col[(b·CK + r)·P + p]
 *   flat:    one [CK, nb·P] matrix, columns (image, position): col[(r·nb + b)·P + p]
 * Either way the matrix is `lines` lines of P positions; line q is (b, r).
 * Sizes fit 32 bits (kc_conv_im2col_plan); x is the chunk's first image. */
struct kc_i2c_geom {
    int32_t total;                  /* elements of the chunk's col: nb·CK·P */
    int32_t P, C, CK, nb, taps;
    int32_t ker1, ker2;             /* tap t = (t0·ker1 + t1)·ker2 + t2 */
    int32_t out1, out2;             /* position p = (o0·out1 + o1)·out2 + o2 */
    int32_t in[3], stride[3], dil[3], pad[3];
    int32_t in_plane;
    bool    flat;
};

/* Where line q reads: its channel's plane of x, and its tap's offset
 * (tap · dilation − pad) per axis. */
template <typename T>
__device__ __forceinline__ const T *kc_i2c_line(const T *__restrict__ x, const kc_i2c_geom &g, int32_t q,
                                                int32_t d[3]) {
    int32_t b, r;
    if (g.flat) {
        r = q / g.nb;
        b = q - r * g.nb;
    } else {
        b = q / g.CK;
        r = q - b * g.CK;
    }
    const int32_t c = r / g.taps, plane = g.ker1 * g.ker2;
    int32_t t = r - c * g.taps;
    const int32_t t0 = t / plane;
    t -= t0 * plane;
    const int32_t t1 = t / g.ker2, t2 = t - t1 * g.ker2;
    d[0] = t0 * g.dil[0] - g.pad[0];
    d[1] = t1 * g.dil[1] - g.pad[1];
    d[2] = t2 * g.dil[2] - g.pad[2];
    return x + ((int64_t)b * g.C + c) * g.in_plane;
}

/* col = im2col(x) for one chunk, zeros in the padding.  Each thread writes
 * one 16-byte vector of consecutive elements (positions of a line, or the
 * end of one line and the start of the next), decoding (line, position)
 * once and stepping it; col is 16-byte aligned (the workspace is). */
template <typename T>
__global__ void kc_im2col(const T *__restrict__ x, T *__restrict__ col, kc_i2c_geom g) {
    typedef kc_vec<T> V;
    const T zero = kc_from_f32<T>(0.0f);
    const int64_t vectors = ((int64_t)g.total + V::N - 1) / V::N;
    for (int64_t v = kc_thread_index(); v < vectors; v += kc_grid_stride()) {
        const int32_t e0 = (int32_t)(v * V::N);   /* < total */
        int32_t q = e0 / g.P, p = e0 - q * g.P;
        const int32_t plane = g.out1 * g.out2;
        int32_t o0 = p / plane, rest = p - o0 * plane;
        int32_t o1 = rest / g.out2, o2 = rest - o1 * g.out2;
        int32_t d[3];
        const T *xc = kc_i2c_line(x, g, q, d);
        V out;
#pragma unroll
        for (int i = 0; i < V::N; i++) {
            const int32_t a0 = o0 * g.stride[0] + d[0], a1 = o1 * g.stride[1] + d[1], a2 = o2 * g.stride[2] + d[2];
            const bool inside = (unsigned)a0 < (unsigned)g.in[0] && (unsigned)a1 < (unsigned)g.in[1] &&
                                (unsigned)a2 < (unsigned)g.in[2];
            out.v[i] = inside && e0 + i < g.total ? xc[(a0 * g.in[1] + a1) * g.in[2] + a2] : zero;
            if (++p == g.P) {                      /* the next line */
                p = o0 = o1 = o2 = 0;
                if (i + 1 < V::N && e0 + i + 1 < g.total) xc = kc_i2c_line(x, g, ++q, d);
            } else if (++o2 == g.out2) {
                o2 = 0;
                if (++o1 == g.out1) {
                    o1 = 0;
                    o0++;
                }
            }
        }
        if (e0 + V::N <= g.total) {
            *reinterpret_cast<V *>(col + e0) = out;
        } else {
            for (int i = 0; i < V::N && e0 + i < g.total; i++) col[e0 + i] = out.v[i];
        }
    }
}

/* The flat form's GEMM output z [M, nb·P] (columns (image, position)) into
 * y [nb, M, P], the chunk's images. */
template <typename T>
__global__ void kc_conv_unflatten(const T *__restrict__ z, T *__restrict__ y, int32_t total, int32_t MP, int32_t P,
                                  int32_t cols) {
    for (int64_t i = kc_thread_index(); i < total; i += kc_grid_stride()) {
        const int32_t e = (int32_t)i, b = e / MP, r = e - b * MP, m = r / P, p = r - m * P;
        y[e] = z[m * cols + b * P + p];
    }
}

/* y[n, m, p] = bias[m]: the GEMM paths then add the product (beta 1), so
 * that the sum is rounded once. */
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

/* Y[i, grp] (mg × P) = W[grp] (mg × Kg) · B[i, grp] (Kg × P) (+ Y when beta
 * is 1) for nb images i and every group, Kg = cg·taps: B[i, grp] starts at
 * b + i·b_image + grp·Kg·P, Y[i, grp] at y + i·M·P + grp·mg·P.  The 1x1 path
 * (B = x, b_image C·P) and the batched im2col form (B = col, b_image CK·P).
 * One strided-batched GEMM over the larger of images and groups, a call per
 * item of the smaller. */
static kiln_status kc_conv_gemm_images(int32_t device, kiln_dtype dt, const kc_conv_geom &g, int64_t nb, const void *w,
                                       const void *b, int64_t b_image, void *y, float beta, cudaStream_t s) {
    const int64_t P = g.positions, groups = g.M / g.mg, Kg = g.cg * g.taps;
    kiln_cuda_gemm m;
    m.dtype = dt;
    m.m = g.mg;
    m.n = P;
    m.k = Kg;
    m.lda = Kg;
    m.ldb = P;
    m.ldc = P;
    m.beta = beta;
    /* Strides between images and between groups, in elements of w, B, y. */
    const int64_t wb = 0, bb = b_image, yb = g.M * P;
    const int64_t wg = g.mg * Kg, bg = Kg * P, yg = g.mg * P;
    if (nb >= groups) {   /* batched over images, a call per group */
        m.batch = nb, m.stride_a = wb, m.stride_b = bb, m.stride_c = yb;
        m.calls = groups, m.step_a = wg, m.step_b = bg, m.step_c = yg;
    } else {              /* batched over groups, a call per image */
        m.batch = groups, m.stride_a = wg, m.stride_b = bg, m.stride_c = yg;
        m.calls = nb, m.step_a = wb, m.step_b = bb, m.step_c = yb;
    }
    return kiln_cuda_gemm_run(device, &m, w, b, y, s);
}

/* y = bias broadcast over [n, M, P] (the first step of the GEMM paths). */
template <typename T>
static kiln_status kc_conv_bias_first(const T *bias, T *y, int64_t total, int64_t M, int64_t P, cudaStream_t s) {
    kc_conv_fill_bias<T><<<kiln_cuda_grid(total, KC_THREADS), KC_THREADS, 0, s>>>(bias, y, total, M, P);
    return kiln_cuda_check_launch("conv bias");
}

/* The 1x1 path: Y[n,g] = W[g] · X[n,g] (see the top), the bias first. */
template <typename T>
static kiln_status kc_conv_1x1(int32_t device, const kiln_layer_launch *l, const kc_conv_geom &g, int64_t batch,
                               kiln_dtype dt, cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    T *y = (T *)l->outputs[0].data;
    if (bias) {
        kiln_status st = kc_conv_bias_first<T>(bias, y, batch * g.M * g.positions, g.M, g.positions, s);
        if (st != KILN_OK) return st;
    }
    return kc_conv_gemm_images(device, dt, g, batch, l->inputs[1].data, l->inputs[0].data, g.C * g.positions, y,
                               bias ? 1.0f : 0.0f, s);
}

/* What the im2col path does for a launch (kc_conv_im2col_plan). */
struct kc_i2c_plan {
    bool     flat;       /* one GEMM over [Kg, nb·P] per chunk, then kc_conv_unflatten; else a GEMM per image */
    int64_t  nb;         /* images per chunk */
    uint64_t col_bytes;  /* the chunk's col, rounded up to 256 bytes: the flat form's z follows */
    uint64_t need;       /* the workspace: col, and z [M, nb·P] for the flat form */
};

/* The im2col path over a batch of more than one image switches to the flat
 * form below this many output positions: a strided-batched GEMM of nb
 * products of P columns each leaves cuBLAS's column tiles (64 to 256 wide)
 * mostly empty when P is small (49 at 7x7: the 1x1 layers at batch 32 ran
 * 2.75-3.1x slower than cuDNN there, at parity at 14x14 = 196 and above),
 * while one GEMM of nb·P columns fills them; the price is z and a permute
 * pass over the output, which is small exactly when P·nb·M is.  196 (14x14)
 * stays batched, where the batched 1x1 GEMM measured at parity. */
#define KC_CONV_FLAT_BELOW 128

/* The workspace's cap: a chunk is as many images as fit (at least one).
 * 256 MiB holds ResNet-50's largest col (the stem's and stage 1's 3x3:
 * 147·12544 and 576·3136 elements per image) for a whole batch of 32 in
 * float16 (116 MiB) and 16 in float32; a chunk of that size keeps cuBLAS's
 * GEMM large enough that more chunks cost little.  (Unmeasured: a cap
 * under the L2 cache, 50 MB on an H200, might let the GEMM read a chunk's
 * col from L2 right after the im2col kernel wrote it; the early 3x3 layers
 * at batch 32 are bound by col's traffic.)  KILN_CUDA_CONV_WORKSPACE_MB
 * (read once per process; a positive number, fractions allowed) replaces it:
 * the tests make it small so that a batch takes several chunks. */
#define KC_CONV_WORKSPACE_CAP ((uint64_t)256 << 20)

static uint64_t kc_conv_workspace_cap(void) {
    static uint64_t cap = 0;
    if (!cap) {
        uint64_t c = KC_CONV_WORKSPACE_CAP;
        const char *e = getenv("KILN_CUDA_CONV_WORKSPACE_MB");
        if (e && *e) {
            char *end = NULL;
            double mb = strtod(e, &end);
            if (end && *end == '\0' && mb > 0.0 && mb < 1e12) c = (uint64_t)(mb * 1048576.0);
            if (c == 0) c = 1;
        }
        cap = c;
    }
    return cap;
}

/* KILN_CUDA_CONV (read once per process) forces a path where it can run
 * the convolution (otherwise the usual choice stands): direct, igemm,
 * im2col (batched or flat by P as usual), im2col-batched, im2col-flat.
 * Unset, empty or anything else: the usual choice (kc_conv_choose). */
enum kc_conv_force { KC_FORCE_NONE, KC_FORCE_DIRECT, KC_FORCE_IGEMM, KC_FORCE_IM2COL, KC_FORCE_IM2COL_BATCHED,
                     KC_FORCE_IM2COL_FLAT };

static kc_conv_force kc_conv_forced(void) {
    static int forced = -1;
    if (forced < 0) {
        const char *e = getenv("KILN_CUDA_CONV");
        int f = KC_FORCE_NONE;
        if (e && strcmp(e, "direct") == 0) f = KC_FORCE_DIRECT;
        else if (e && strcmp(e, "igemm") == 0) f = KC_FORCE_IGEMM;
        else if (e && strcmp(e, "im2col") == 0) f = KC_FORCE_IM2COL;
        else if (e && strcmp(e, "im2col-batched") == 0) f = KC_FORCE_IM2COL_BATCHED;
        else if (e && strcmp(e, "im2col-flat") == 0) f = KC_FORCE_IM2COL_FLAT;
        forced = f;
    }
    return (kc_conv_force)forced;
}

/* KILN_CUDA_CONV_LOG=1 (read once per process): each CONV run prints its
 * path to stderr (the im2col path with its chunks and workspace), so that
 * a test or a benchmark can see which path a shape took.  Under CUDA graph
 * capture it prints at capture, not at replay. */
static bool kc_conv_log_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("KILN_CUDA_CONV_LOG");
        on = e && strcmp(e, "1") == 0;
    }
    return on != 0;
}

/* 1x1, stride 1, no padding (out == in with no begin pad: no end pad
 * either): x is already the GEMM's right operand. */
static bool kc_conv_pointwise(const kc_conv_geom &g) {
    bool pointwise = g.cg >= 1;
    for (int i = 0; i < 3; i++)
        pointwise = pointwise && g.ker[i] == 1 && g.stride[i] == 1 && g.pad[i] == 0 && g.out[i] == g.in[i];
    return pointwise;
}

/* Does the im2col path take this convolution when a workspace is given,
 * and with which form and chunk?  Shapes only (no device, no data): the
 * workspace size (kiln_cuda_conv_workspace) and the run decide alike. */
static bool kc_conv_im2col_plan(const kc_conv_geom &g, int64_t batch, kiln_dtype dt, kc_conv_force f,
                                kc_i2c_plan *plan) {
    if (f == KC_FORCE_DIRECT || f == KC_FORCE_IGEMM) return false;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return false;
    const bool forced = f == KC_FORCE_IM2COL || f == KC_FORCE_IM2COL_BATCHED || f == KC_FORCE_IM2COL_FLAT;
    /* i32 leaves room for a vector past the last element (e0 + 8 in kc_im2col). */
    const int64_t i32 = 0x7fffffff - 64, lim = (int64_t)1 << 30;
    const int64_t P = g.positions, CK = g.C * g.taps, Kg = g.cg * g.taps;
    /* Depthwise and small groups stay on the direct kernel (GEMMs of a few
     * rows or a depth under 8), unless forced. */
    if (!forced && (g.mg < 8 || Kg < 8)) return false;
    /* The kernels' 32-bit indices: a chunk's col and z, a plane of x, window coordinates.  An empty col
     * (no input channels, or a kernel of no taps: a forced path takes those) is the direct kernel's: the
     * chunk arithmetic below divides by its size. */
    if (CK < 1 || P < 1) return false;
    if (batch < 1 || batch > i32 || CK * P > i32 || g.M * P > i32 || g.in_plane > i32) return false;
    for (int i = 0; i < 3; i++)
        if (g.in[i] >= lim || g.pad[i] >= lim || (g.ker[i] - 1) * g.dil[i] >= lim ||
            (g.out[i] - 1) * g.stride[i] >= lim)
            return false;
    bool flat = batch > 1 && P < KC_CONV_FLAT_BELOW;
    if (f == KC_FORCE_IM2COL_BATCHED) flat = false;
    if (f == KC_FORCE_IM2COL_FLAT) flat = true;
    /* Pointwise in the batched form: x is its col already (the 1x1 path). */
    if (kc_conv_pointwise(g) && !flat) return false;
    const uint64_t es = kiln_cuda_dtype_size(dt);
    const int64_t per_image = CK * P + (flat ? g.M * P : 0);   /* elements */
    int64_t nb = (int64_t)(kc_conv_workspace_cap() / (per_image * es));
    if (nb > batch) nb = batch;
    if (nb > i32 / (CK * P)) nb = i32 / (CK * P);
    if (flat && nb > i32 / (g.M * P)) nb = i32 / (g.M * P);
    if (nb < 1) nb = 1;
    plan->flat = flat;
    plan->nb = nb;
    plan->col_bytes = ((uint64_t)(nb * CK * P) * es + 255) & ~(uint64_t)255;
    plan->need = plan->col_bytes + (flat ? (uint64_t)(nb * g.M * P) * es : 0);
    return true;
}

/* The im2col path (see the top): per chunk of plan.nb images, col into the
 * workspace, then the GEMM(s); the bias is written first and added with
 * beta 1 (into y for the batched form, into z for the flat one). */
template <typename T>
static kiln_status kc_conv_im2col(int32_t device, const kiln_layer_launch *l, const kc_conv_geom &g, int64_t batch,
                                  const kc_i2c_plan &plan, kiln_dtype dt, cudaStream_t s) {
    const T *bias = l->input_count == 3 ? (const T *)l->inputs[2].data : NULL;
    const T *x = (const T *)l->inputs[0].data, *w = (const T *)l->inputs[1].data;
    T *y = (T *)l->outputs[0].data;
    T *col = (T *)l->workspace, *z = (T *)((char *)l->workspace + plan.col_bytes);
    const int64_t P = g.positions, CK = g.C * g.taps, Kg = g.cg * g.taps, groups = g.M / g.mg;
    kiln_status st = KILN_OK;
    if (bias && !plan.flat) st = kc_conv_bias_first<T>(bias, y, batch * g.M * P, g.M, P, s);
    kc_i2c_geom ig;
    ig.P = (int32_t)P;
    ig.C = (int32_t)g.C;
    ig.CK = (int32_t)CK;
    ig.taps = (int32_t)g.taps;
    ig.ker1 = (int32_t)g.ker[1];
    ig.ker2 = (int32_t)g.ker[2];
    ig.out1 = (int32_t)g.out[1];
    ig.out2 = (int32_t)g.out[2];
    for (int i = 0; i < 3; i++) {
        ig.in[i] = (int32_t)g.in[i];
        ig.stride[i] = (int32_t)g.stride[i];
        ig.dil[i] = (int32_t)g.dil[i];
        ig.pad[i] = (int32_t)g.pad[i];
    }
    ig.in_plane = (int32_t)g.in_plane;
    ig.flat = plan.flat;
    for (int64_t n0 = 0; st == KILN_OK && n0 < batch; n0 += plan.nb) {
        const int64_t nb = batch - n0 < plan.nb ? batch - n0 : plan.nb;
        ig.nb = (int32_t)nb;
        ig.total = (int32_t)(nb * CK * P);
        const int64_t vectors = (ig.total + kc_vec<T>::N - 1) / kc_vec<T>::N;
        kc_im2col<T><<<kiln_cuda_grid(vectors, KC_THREADS), KC_THREADS, 0, s>>>(x + n0 * g.C * g.in_plane, col, ig);
        st = kiln_cuda_check_launch("conv im2col");
        if (st != KILN_OK) break;
        T *yc = y + n0 * g.M * P;
        if (!plan.flat) {
            st = kc_conv_gemm_images(device, dt, g, nb, w, col, CK * P, yc, bias ? 1.0f : 0.0f, s);
            continue;
        }
        /* z [M, nb·P] = W [M, Kg] · col [Kg, nb·P] per group (a batch over groups), then into y. */
        const int64_t cols = nb * P;
        if (bias) st = kc_conv_bias_first<T>(bias, z, g.M * cols, g.M, cols, s);
        if (st != KILN_OK) break;
        kiln_cuda_gemm m;
        m.dtype = dt;
        m.m = g.mg;
        m.n = cols;
        m.k = Kg;
        m.lda = Kg;
        m.ldb = cols;
        m.ldc = cols;
        m.batch = groups;
        m.stride_a = g.mg * Kg;
        m.stride_b = Kg * cols;
        m.stride_c = g.mg * cols;
        m.calls = 1;
        m.step_a = m.step_b = m.step_c = 0;
        m.beta = bias ? 1.0f : 0.0f;
        st = kiln_cuda_gemm_run(device, &m, w, col, z, s);
        if (st != KILN_OK) break;
        const int64_t total = nb * g.M * P;
        kc_conv_unflatten<T><<<kiln_cuda_grid(total, KC_THREADS), KC_THREADS, 0, s>>>(
            z, yc, (int32_t)total, (int32_t)(g.M * P), (int32_t)P, (int32_t)cols);
        st = kiln_cuda_check_launch("conv unflatten");
    }
    return st;
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

enum kc_conv_path { KC_CONV_DIRECT, KC_CONV_1X1, KC_CONV_IM2COL, KC_CONV_IGEMM };

/* Which kernel runs a CONV (the file's top says why); `workspace`: the
 * launch has one (of any size: too small is refused by the caller, not
 * routed elsewhere, so that a sizing fault shows). */
static kc_conv_path kc_conv_choose(int32_t device, const kc_conv_geom &g, int64_t batch, kiln_dtype dt,
                                   bool workspace, kc_i2c_plan *plan, kc_ig_geom *ig) {
    const kc_conv_force f = kc_conv_forced();
    if (f == KC_FORCE_DIRECT) return KC_CONV_DIRECT;
    if (workspace && kc_conv_im2col_plan(g, batch, dt, f, plan)) return KC_CONV_IM2COL;
    const bool igemm = f == KC_FORCE_IGEMM;
    /* Depthwise: each output sums one channel's taps, a GEMM of one row. */
    if (!igemm && g.cg == 1 && g.mg == 1) return KC_CONV_DIRECT;
    /* Pointwise: x as it lies.  cuBLAS takes 32-bit sizes; past them the
     * kernels below decide. */
    const int64_t int_max = 0x7fffffff;
    if (!igemm && kc_conv_pointwise(g) && g.positions <= int_max && g.cg <= int_max && g.mg <= int_max &&
        batch <= int_max && g.M / g.mg <= int_max)
        return KC_CONV_1X1;
    /* Tiles of 64 rows and depth steps of 16 or 32 would be mostly empty. */
    if ((!igemm && (g.mg < 8 || g.cg * g.taps < 8)) || !kc_ig_fits(g, batch, ig)) return KC_CONV_DIRECT;
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
 * allows; `report`: set the error (the run) or not (the workspace query). */
static kiln_status kc_conv_geometry(const kiln_layer_launch *l, bool transposed, bool report, kc_conv_geom *gp) {
    const char *what = transposed ? "conv_transpose" : "conv";
    kc_conv_geom &g = *gp;
    if (l->input_count < 2 || l->output_count < 1)
        return report ? kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s: %d inputs, %d outputs", what,
                                       (int)l->input_count, (int)l->output_count)
                      : KILN_ERROR_INVALID_ARGUMENT;
    const kiln_tensor_desc *x = &l->inputs[0], *w = &l->inputs[1], *out = &l->outputs[0];
    g.k = x->rank - 2;
    /* The rule has checked all of this; a launch it did not describe is refused, not run. */
    if (g.k < 1 || g.k > 3 || w->rank != x->rank || out->rank != x->rank || l->attr_count != 1 + 4 * g.k ||
        !l->attrs)
        return report ? kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s of rank %d with %d attributes", what,
                                       (int)x->rank, (int)l->attr_count)
                      : KILN_ERROR_INVALID_ARGUMENT;
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
        return report ? kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: %s channels: input %lld, weight [%lld, "
                                       "%lld], group %lld", what, (long long)g.C, (long long)w->dims[0],
                                       (long long)w->dims[1], (long long)group)
                      : KILN_ERROR_INVALID_ARGUMENT;
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
    return KILN_OK;
}

/* kiln_cuda_conv_workspace (cuda_ops.h): the im2col path's bytes, 0 when
 * the launch would not take it. */
extern "C" uint64_t kiln_cuda_conv_workspace(const kiln_layer_launch *l) {
    kc_conv_geom g;
    if (!l || kc_conv_geometry(l, false, false, &g) != KILN_OK) return 0;
    const kiln_dtype dt = l->outputs[0].dtype;
    if (kiln_cuda_numel(&l->outputs[0]) == 0 || !kiln_cuda_conv_supports(l)) return 0;
    kc_i2c_plan plan;
    return kc_conv_im2col_plan(g, l->inputs[0].dims[0], dt, kc_conv_forced(), &plan) ? plan.need : 0;
}

static kiln_status kc_conv_run(int32_t device, const kiln_layer_launch *l, bool transposed, cudaStream_t s) {
    const char *what = transposed ? "conv_transpose" : "conv";
    kc_conv_geom g;
    kiln_status st = kc_conv_geometry(l, transposed, true, &g);
    if (st != KILN_OK) return st;
    const kiln_tensor_desc *out = &l->outputs[0];
    const int64_t total = kiln_cuda_numel(out), batch = l->inputs[0].dims[0];
    if (total == 0) return KILN_OK;
    const kiln_dtype dt = out->dtype;
    if (dt != KILN_FLOAT32 && dt != KILN_FLOAT16 && dt != KILN_BFLOAT16) return kiln_cuda_unsupported(what, dt);
    kc_ig_geom ig;
    kc_i2c_plan plan;
    const bool workspace = l->workspace && l->workspace_size > 0;
    const kc_conv_path path =
        transposed ? KC_CONV_DIRECT : kc_conv_choose(device, g, batch, dt, workspace, &plan, &ig);
    if (kc_conv_log_on()) {
        char how[160] = "";
        if (path == KC_CONV_IM2COL)
            snprintf(how, sizeof how, ", %lld chunks of %lld images (workspace %llu of %llu bytes)",
                     (long long)((batch + plan.nb - 1) / plan.nb), (long long)plan.nb, (unsigned long long)plan.need,
                     (unsigned long long)l->workspace_size);
        const char *name = path == KC_CONV_IM2COL ? (plan.flat ? "im2col-flat" : "im2col-batched")
                           : path == KC_CONV_1X1  ? "1x1"
                           : path == KC_CONV_IGEMM ? "igemm"
                                                   : "direct";
        fprintf(stderr, "kiln cuda %s: n %lld, c %lld, m %lld, group %lld, taps %lld, positions %lld: %s%s\n", what,
                (long long)batch, (long long)g.C, (long long)g.M, (long long)(g.M / g.mg), (long long)g.taps,
                (long long)g.positions, name, how);
    }
    if (path == KC_CONV_IM2COL) {
        /* The runtime sized the workspace with kiln_cuda_conv_workspace on these shapes: never run past it. */
        if (l->workspace_size < plan.need)
            return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: conv: the im2col path needs a workspace of "
                                  "%llu bytes (%lld images of %lld per chunk), the launch has %llu",
                                  (unsigned long long)plan.need, (long long)plan.nb, (long long)batch,
                                  (unsigned long long)l->workspace_size);
        if ((uintptr_t)l->workspace & 15u)
            return kiln_cuda_fail(KILN_ERROR_INVALID_ARGUMENT, "cuda: conv: the workspace is not 16-byte aligned");
        switch (dt) {
        case KILN_FLOAT32: return kc_conv_im2col<float>(device, l, g, batch, plan, dt, s);
        case KILN_FLOAT16: return kc_conv_im2col<__half>(device, l, g, batch, plan, dt, s);
        default:           return kc_conv_im2col<__nv_bfloat16>(device, l, g, batch, plan, dt, s);
        }
    }
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
