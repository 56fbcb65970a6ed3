"""Grouped-query attention of one new token per sequence against a KV cache
(decode), split over the cache ("flash-decoding") and combined.

Inputs
    q       [batch, 1, n_heads * head_dim]      the new token's rotated query
    k_new   [batch, 1, n_kv_heads * head_dim]   its rotated key
    v_new   [batch, 1, n_kv_heads * head_dim]   its value
    k_cache [batch, n_layers, max_seq, n_kv_heads * head_dim]
    v_cache [batch, n_layers, max_seq, n_kv_heads * head_dim]
    lengths [batch] int32: how many positions of each sequence's cache are
            filled (the new token's position)
Output
    [batch, 1, n_heads * head_dim]

The new token attends to cache rows [0, lengths[b]) of its layer (`layer`,
plugin state; one cache tensor holds every layer so the engine has two cache
inputs, not 2 * n_layers) and to itself, read from k_new / v_new rather than
from the cache.  That is what lets this plugin stay unchanged when kiln gets
aliased outputs: today the cache is a read-only engine input and the caller
writes the new rows into it after the step (model.py); with aliasing, a
layer that appends k_new / v_new to the cache in place can run before or
after this one and the result is the same, since this plugin never reads the
row being written.

Two kernels:
1. decode_split_kernel, grid (batch * n_kv_heads, n_splits): each program
   takes the `split` cache rows [j*split, (j+1)*split) of one sequence and
   one key/value head, and all the query heads that share that key/value
   head as the rows of one tile (so each key is loaded once per group, and
   the scores are one tl.dot).  It writes a partial result per query head:
   its running max m, sum l and unnormalized output acc (online softmax, as
   in prefill_attention.py), float32, into the workspace.
2. decode_combine_kernel, grid (batch * n_heads,): starts from the new
   token's own score (m = q.k_new, l = 1, acc = v_new) and merges the
   partials of the splits that hold cache rows, 16 at a time:
       m' = max(m, m_j);  l = l*exp(m - m') + l_j*exp(m_j - m');
       acc = acc*exp(m - m') + acc_j*exp(m_j - m')
   then writes acc / l.

A sliding window (`window` > 0: Mistral, Qwen2's sliding layers) lets the
token see only the cache rows [lengths[b] - window + 1, lengths[b]) and
itself (the `window` keys ending at itself, as transformers masks them): the
split kernel starts its rows there, and a split wholly before it sees no
rows, so its partial is empty (m = -inf, l = 0) and the combine starts
after such splits.  The cache itself still holds every position.

Splitting keeps the GPU busy when batch * n_kv_heads is small (8 programs at
batch 1 for a Llama with 8 key/value heads): 64 rows a split (the default)
gives every 64 cached tokens a program of their own; the splits past a
sequence's length see no rows, return at once and are skipped by the
combine.
"""
import math

import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for, dot_precision


@triton.jit
def decode_split_kernel(q_ptr, k_cache_ptr, v_cache_ptr, lengths_ptr, part_acc_ptr, part_m_ptr, part_l_ptr,
                        n_layers, layer, max_seq, n_heads, n_kv_heads, head_dim, split, n_splits, qk_scale, window,
                        BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                        DOT_PRECISION: tl.constexpr):
    b = tl.program_id(0) // n_kv_heads
    kv_h = tl.program_id(0) % n_kv_heads
    j = tl.program_id(1)
    group = n_heads // n_kv_heads
    g = tl.arange(0, BLOCK_G)
    g_ok = g < group
    heads = kv_h * group + g                     # the query heads reading this key/value head
    d = tl.arange(0, BLOCK_D)
    d_ok = d < head_dim
    q = tl.load(q_ptr + b.to(tl.int64) * n_heads * head_dim + heads[:, None] * head_dim + d[None, :],
                mask=g_ok[:, None] & d_ok[None, :], other=0.0)

    length = tl.load(lengths_ptr + b)
    end = tl.minimum((j + 1) * split, length)
    start = tl.maximum(j * split, length - window + 1)      # window: NO_WINDOW when there is none
    kv_row_stride = n_kv_heads * head_dim
    cache_base = (b.to(tl.int64) * n_layers + layer) * max_seq * kv_row_stride + kv_h * head_dim

    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, BLOCK_D], tl.float32)
    for key_start in range(start, end, BLOCK_N):
        keys = key_start + tl.arange(0, BLOCK_N)
        k_ok = keys < end
        offsets = cache_base + keys[:, None] * kv_row_stride + d[None, :]
        k = tl.load(k_cache_ptr + offsets, mask=k_ok[:, None] & d_ok[None, :], other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        s = tl.where(k_ok[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))      # finite: the tile has at least one key
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_cache_ptr + offsets, mask=k_ok[:, None] & d_ok[None, :], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new

    part = (b.to(tl.int64) * n_heads + heads) * n_splits + j
    tl.store(part_m_ptr + part, m_i, mask=g_ok)
    tl.store(part_l_ptr + part, l_i, mask=g_ok)
    tl.store(part_acc_ptr + part[:, None] * head_dim + d[None, :], acc, mask=g_ok[:, None] & d_ok[None, :])


@triton.jit
def decode_combine_kernel(q_ptr, k_new_ptr, v_new_ptr, lengths_ptr, part_acc_ptr, part_m_ptr, part_l_ptr, out_ptr,
                          n_heads, n_kv_heads, head_dim, split, n_splits, qk_scale, window, BLOCK_D: tl.constexpr,
                          BLOCK_S: tl.constexpr):
    b = tl.program_id(0) // n_heads
    h = tl.program_id(0) % n_heads
    kv_h = h // (n_heads // n_kv_heads)
    d = tl.arange(0, BLOCK_D)
    d_ok = d < head_dim
    q_row = b.to(tl.int64) * n_heads * head_dim + h * head_dim
    kv_row = b.to(tl.int64) * n_kv_heads * head_dim + kv_h * head_dim
    q = tl.load(q_ptr + q_row + d, mask=d_ok, other=0.0).to(tl.float32)
    k_new = tl.load(k_new_ptr + kv_row + d, mask=d_ok, other=0.0).to(tl.float32)
    # The new token sees itself: that term alone is m = its score, l = 1, acc = v_new.
    m = tl.sum(q * k_new, axis=0) * qk_scale
    l = m * 0.0 + 1.0
    acc = tl.load(v_new_ptr + kv_row + d, mask=d_ok, other=0.0).to(tl.float32)
    length = tl.load(lengths_ptr + b)
    used = tl.cdiv(length, split)                        # splits holding cache rows
    first = tl.maximum(length - window + 1, 0) // split  # the first holding rows of the window (0 without one)
    # BLOCK_S partials at a time, loaded together: a long cache has many
    # splits, and merging them one load after another would wait on each.
    for j0 in range(first, used, BLOCK_S):
        js = j0 + tl.arange(0, BLOCK_S)
        j_ok = js < used
        part = (b.to(tl.int64) * n_heads + h) * n_splits + js
        m_j = tl.load(part_m_ptr + part, mask=j_ok, other=float("-inf"))
        l_j = tl.load(part_l_ptr + part, mask=j_ok, other=0.0)
        acc_j = tl.load(part_acc_ptr + part[:, None] * head_dim + d[None, :], mask=j_ok[:, None] & d_ok[None, :],
                        other=0.0)
        m_new = tl.maximum(m, tl.max(m_j, axis=0))      # finite: m is
        alpha = tl.exp2(m - m_new)
        beta = tl.exp2(m_j - m_new)                     # 0 for the masked splits
        l = l * alpha + tl.sum(l_j * beta, axis=0)
        acc = acc * alpha + tl.sum(acc_j * beta[:, None], axis=0)
        m = m_new
    tl.store(out_ptr + q_row + d, (acc / l).to(out_ptr.dtype.element_ty), mask=d_ok)


# Partials merged per step of the combine loop.
COMBINE_BLOCK = 16

# The split kernel's window when there is none (more rows than any cache has).
NO_WINDOW = 1 << 30


@kiln.plugin("DecodeAttention", namespace="llama")
class DecodeAttention(kiln.PluginBase):
    """See the module docstring for inputs and output.  split: cache rows per
    program of the split kernel (a power of two, at least 16); window: a
    sliding window of that many keys, the new one included (0: none)."""

    window = 0      # the default of engines saved before the field existed

    def __init__(self, n_heads, n_kv_heads, head_dim, layer, split=64, window=0):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError(f"DecodeAttention: {n_heads} heads do not split into {n_kv_heads} key/value groups")
        if split < 16 or split & (split - 1):
            raise ValueError(f"DecodeAttention: split {split} must be a power of two, at least 16")
        self.n_heads = int(n_heads)
        self.n_kv_heads = int(n_kv_heads)
        self.head_dim = int(head_dim)
        self.layer = int(layer)
        self.split = int(split)
        if int(window) < 0:
            raise ValueError(f"DecodeAttention: window {window} must be >= 0 (0: none)")
        if window:
            self.window = int(window)

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def workspace_size(self, inputs):
        # float32 partials per (sequence, query head, split): acc[head_dim], m, l
        batch, max_seq = inputs[0].shape[0], inputs[3].shape[2]
        n_splits = max_seq / self.split                    # "/" on dims is ceiling division
        return batch * self.n_heads * n_splits * (self.head_dim + 2) * 4

    def forward(self, inputs, outputs):
        q, k_new, v_new, k_cache, v_cache, lengths = as_torch(inputs)
        (out,) = as_torch(outputs)
        batch = q.shape[0]
        if batch == 0:
            return
        n_layers, max_seq = k_cache.shape[1], k_cache.shape[2]
        n_splits = triton.cdiv(max_seq, self.split)
        parts = batch * self.n_heads * n_splits
        work = kiln.convert_to_torch_tensor(self.workspace_tensor(kiln.float32, [parts * (self.head_dim + 2)]))
        part_acc = work[:parts * self.head_dim]
        part_m = work[parts * self.head_dim:parts * (self.head_dim + 1)]
        part_l = work[parts * (self.head_dim + 1):]
        qk_scale = (1.0 / math.sqrt(self.head_dim)) * math.log2(math.e)
        block_d = block_for(self.head_dim)
        group = self.n_heads // self.n_kv_heads
        decode_split_kernel[(batch * self.n_kv_heads, n_splits)](
            q, k_cache, v_cache, lengths, part_acc, part_m, part_l,
            n_layers, self.layer, max_seq, self.n_heads, self.n_kv_heads, self.head_dim, self.split, n_splits,
            qk_scale, self.window or NO_WINDOW, BLOCK_G=block_for(group), BLOCK_N=min(64, self.split),
            BLOCK_D=block_d,
            DOT_PRECISION=dot_precision(q.dtype), num_warps=4)
        decode_combine_kernel[(batch * self.n_heads,)](
            q, k_new, v_new, lengths, part_acc, part_m, part_l, out,
            self.n_heads, self.n_kv_heads, self.head_dim, self.split, n_splits, qk_scale, self.window or NO_WINDOW,
            BLOCK_D=block_d, BLOCK_S=COMBINE_BLOCK, num_warps=2)

    def aot(self, inputs, outputs):
        """The same two launches compiled at build time: the partials live in
        the layer's workspace (kiln.AotWorkspace, laid out as forward lays
        them out), grids and sizes are expressions of the input shapes."""
        q, k_new, v_new, k_cache, v_cache, lengths = inputs
        batch = q.shape[0]
        n_layers, max_seq = k_cache.shape[1], k_cache.shape[2]
        n_splits = max_seq / self.split                    # ceiling division
        parts = batch * self.n_heads * n_splits
        part_acc = kiln.AotWorkspace(kiln.float32)
        # m and l follow acc; 4-byte alignment is all a float needs (their
        # offsets are multiples of 16 only for some head counts).
        part_m = kiln.AotWorkspace(kiln.float32, parts * self.head_dim * 4, align=4)
        part_l = kiln.AotWorkspace(kiln.float32, parts * (self.head_dim + 1) * 4, align=4)
        qk_scale = (1.0 / math.sqrt(self.head_dim)) * math.log2(math.e)
        block_d = block_for(self.head_dim)
        group = self.n_heads // self.n_kv_heads
        return [
            kiln.AotLaunch(decode_split_kernel,
                           args=[q, k_cache, v_cache, lengths, part_acc, part_m, part_l, n_layers, self.layer,
                                 max_seq, self.n_heads, self.n_kv_heads, self.head_dim, self.split, n_splits,
                                 qk_scale, self.window or NO_WINDOW],
                           grid=(batch * self.n_kv_heads, n_splits),
                           constexprs={"BLOCK_G": block_for(group), "BLOCK_N": min(64, self.split),
                                       "BLOCK_D": block_d,
                                       "DOT_PRECISION": dot_precision(kiln.to_torch_dtype(q.dtype))},
                           num_warps=4),
            kiln.AotLaunch(decode_combine_kernel,
                           args=[q, k_new, v_new, lengths, part_acc, part_m, part_l, outputs[0], self.n_heads,
                                 self.n_kv_heads, self.head_dim, self.split, n_splits, qk_scale,
                                 self.window or NO_WINDOW],
                           grid=(batch * self.n_heads,), constexprs={"BLOCK_D": block_d, "BLOCK_S": COMBINE_BLOCK},
                           num_warps=2),
        ]
