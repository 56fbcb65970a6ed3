"""Causal grouped-query attention over a whole prompt (prefill), flash-style.

q is [batch, seq, n_heads * head_dim], k and v are [batch, seq, n_kv_heads *
head_dim]: heads side by side in the last axis, as the projections produce
them -- the kernel's indexing does the "transpose to heads", so the network
needs no transpose layer.  Query head h reads key/value head
h // (n_heads / n_kv_heads) (grouped-query attention; no repeat_kv copy).

One program computes BLOCK_M query rows of one (sequence, head).  It walks
the keys in tiles of BLOCK_N, only up to its last row (causal), keeping a
running maximum m, a running sum l and an unnormalized output acc (the
online softmax of FlashAttention):

    m' = max(m, rowmax(s));  p = exp(s - m');  l = l*exp(m - m') + rowsum(p)
    acc = acc*exp(m - m') + p @ v;  m = m'          ...   out = acc / l

so the [seq, seq] score matrix never exists.  Scores and softmax are float32
(exp2 with log2(e) folded into the scale); p is rounded to v's dtype for the
second matmul, as fused attention kernels do.

window > 0 (a sliding window: Mistral, Qwen2's sliding layers) limits each
query to the `window` keys ending at itself (key > query - window, as
transformers' sliding_window_overlay), and the key loop starts at the first
tile any row of the block sees.  A row may then meet whole tiles it cannot
see before its first visible key, so the running maximum is kept out of the
exponentials while it is still -inf.  HAS_WINDOW (a constexpr) compiles
that code only into windowed layers' kernels: the kernel without a window
is the one Llama always had.
"""
import math

import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for, dot_precision


@triton.jit
def prefill_attention_kernel(q_ptr, k_ptr, v_ptr, out_ptr, seq_len, n_heads, n_kv_heads, head_dim, qk_scale,
                             window, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                             DOT_PRECISION: tl.constexpr, HAS_WINDOW: tl.constexpr):
    m_block = tl.program_id(0)
    b = tl.program_id(1) // n_heads
    h = tl.program_id(1) % n_heads
    kv_h = h // (n_heads // n_kv_heads)
    q_row_stride = n_heads * head_dim
    kv_row_stride = n_kv_heads * head_dim
    seq_base = b.to(tl.int64) * seq_len

    rows = m_block * BLOCK_M + tl.arange(0, BLOCK_M)
    d = tl.arange(0, BLOCK_D)
    d_ok = d < head_dim
    q = tl.load(q_ptr + (seq_base + rows)[:, None] * q_row_stride + h * head_dim + d[None, :],
                mask=(rows < seq_len)[:, None] & d_ok[None, :], other=0.0)

    m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_M], tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], tl.float32)
    # Causal: keys after this block's last row are never needed.
    key_end = tl.minimum((m_block + 1) * BLOCK_M, seq_len)
    key_begin = 0
    if HAS_WINDOW:      # keys before the block's first row's window are never needed either
        key_begin = tl.maximum(m_block * BLOCK_M - window + 1, 0) // BLOCK_N * BLOCK_N
    for key_start in range(key_begin, key_end, BLOCK_N):
        keys = key_start + tl.arange(0, BLOCK_N)
        kv_mask = (keys < seq_len)[:, None] & d_ok[None, :]
        kv_offsets = (seq_base + keys)[:, None] * kv_row_stride + kv_h * head_dim + d[None, :]
        k = tl.load(k_ptr + kv_offsets, mask=kv_mask, other=0.0)
        s = tl.dot(q, tl.trans(k), input_precision=DOT_PRECISION) * qk_scale
        visible = (rows[:, None] >= keys[None, :]) & (keys < seq_len)[None, :]
        if HAS_WINDOW:
            visible = visible & (keys[None, :] > rows[:, None] - window)
        s = tl.where(visible, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        m_use = m_new       # finite without a window: key 0 is visible to every row
        if HAS_WINDOW:
            # -inf while a row has seen no key yet: subtract 0 then, so p and
            # alpha are 0, not NaN.
            m_use = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.exp2(s - m_use[:, None])
        alpha = tl.exp2(m_i - m_use)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_ptr + kv_offsets, mask=kv_mask, other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=DOT_PRECISION)
        m_i = m_new
    if HAS_WINDOW:
        # A row past the sequence may see no key at all (l = 0): it is not
        # stored, but keep its division finite.
        l_i = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_i[:, None]
    tl.store(out_ptr + (seq_base + rows)[:, None] * q_row_stride + h * head_dim + d[None, :],
             out.to(out_ptr.dtype.element_ty), mask=(rows < seq_len)[:, None] & d_ok[None, :])


def launch_config(head_dim):
    """(BLOCK_M, BLOCK_N, BLOCK_D, num_warps, num_stages)."""
    block_d = block_for(head_dim)
    if block_d > 128:
        return 32, 32, block_d, 4, 1
    return 64, 64, block_d, 4, 2


@kiln.plugin("PrefillAttention", namespace="llama")
class PrefillAttention(kiln.PluginBase):
    """inputs: q [batch, seq, n_heads*head_dim], k and v [batch, seq,
    n_kv_heads*head_dim] (q and k already rotated); output like q.
    window: a sliding window of that many keys (0: causal only)."""

    window = 0      # the default of engines saved before the field existed

    def __init__(self, n_heads, n_kv_heads, head_dim, window=0):
        super().__init__()
        if n_heads % n_kv_heads:
            raise ValueError(f"PrefillAttention: {n_heads} heads do not split into {n_kv_heads} key/value groups")
        self.n_heads = int(n_heads)
        self.n_kv_heads = int(n_kv_heads)
        self.head_dim = int(head_dim)
        if int(window) < 0:
            raise ValueError(f"PrefillAttention: window {window} must be >= 0 (0: none)")
        if window:
            self.window = int(window)

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        q, k, v = as_torch(inputs)
        (out,) = as_torch(outputs)
        batch, seq_len = q.shape[0], q.shape[1]
        if batch * seq_len == 0:
            return
        block_m, block_n, block_d, num_warps, num_stages = launch_config(self.head_dim)
        qk_scale = (1.0 / math.sqrt(self.head_dim)) * math.log2(math.e)
        grid = (triton.cdiv(seq_len, block_m), batch * self.n_heads)
        prefill_attention_kernel[grid](q, k, v, out, seq_len, self.n_heads, self.n_kv_heads, self.head_dim, qk_scale,
                                       self.window, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=block_d,
                                       DOT_PRECISION=dot_precision(q.dtype), HAS_WINDOW=self.window > 0,
                                       num_warps=num_warps,
                                       num_stages=num_stages)

    def aot(self, inputs, outputs):
        q, k, v = inputs
        batch, seq_len = q.shape[0], q.shape[1]
        block_m, block_n, block_d, num_warps, num_stages = launch_config(self.head_dim)
        qk_scale = (1.0 / math.sqrt(self.head_dim)) * math.log2(math.e)
        return [kiln.AotLaunch(prefill_attention_kernel,
                               args=[q, k, v, outputs[0], seq_len, self.n_heads, self.n_kv_heads, self.head_dim,
                                     qk_scale, self.window],
                               grid=(kiln.cdiv(seq_len, block_m), batch * self.n_heads),
                               constexprs={"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_D": block_d,
                                           "DOT_PRECISION": dot_precision(kiln.to_torch_dtype(q.dtype)),
                                           "HAS_WINDOW": self.window > 0},
                               num_warps=num_warps, num_stages=num_stages)]
