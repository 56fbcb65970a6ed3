"""Rotary position embedding (RoPE) as a Triton plugin: RotaryQKV takes a
layer's fused query/key/value projection, rotates the queries and keys and
splits off the values, in one launch (grid axis 1 picks which part).

Each of q and k holds the heads of each token side by side, [.., heads *
head_dim] (the layout the projection produces, so no transpose is needed).  Pair i
of a head is (x[i], x[i + head_dim/2]) -- the "rotate half" convention of
transformers' Llama -- rotated by the angle position * inv_freq[i]:

    out[i]          = x[i] * cos - x[i + half] * sin
    out[i + half]   = x[i + half] * cos + x[i] * sin

inv_freq comes in as a tensor (a constant of the network) so that any RoPE
variant that only changes the frequencies (default, "llama3", "linear")
uses this one kernel; config.py computes them.  The position of token s of
sequence b is s, plus start[b] when a `start` input is given (decode: the
number of tokens already in the cache).  Angles and products are float32;
the result is rounded once to the model dtype.
"""
import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for


@triton.jit
def _rotate(x_row_ptr, out_ptr, inv_freq_ptr, token, pos, n_heads, head_dim, attention_scaling,
            BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr):
    """Rotate every head of one token (its row at x_row_ptr) into row
    `token` of out."""
    half = head_dim // 2
    heads = tl.arange(0, BLOCK_HEADS)
    pair = tl.arange(0, BLOCK_HALF)
    mask = (heads < n_heads)[:, None] & (pair < half)[None, :]
    # [heads, pairs] tile of this token: element (h, i) is x[h * head_dim + i]
    first = heads[:, None] * head_dim + pair[None, :]
    x1 = tl.load(x_row_ptr + first, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row_ptr + first + half, mask=mask, other=0.0).to(tl.float32)
    angle = pos.to(tl.float32) * tl.load(inv_freq_ptr + pair, mask=pair < half, other=0.0)
    cos = (tl.cos(angle) * attention_scaling)[None, :]
    sin = (tl.sin(angle) * attention_scaling)[None, :]
    out_ty = out_ptr.dtype.element_ty
    out = out_ptr + token.to(tl.int64) * n_heads * head_dim + first
    tl.store(out, (x1 * cos - x2 * sin).to(out_ty), mask=mask)
    tl.store(out + half, (x2 * cos + x1 * sin).to(out_ty), mask=mask)


@triton.jit
def _copy_row(x_ptr, out_ptr, token, width, BLOCK_WIDTH: tl.constexpr):
    """Copy one token's row of `width` elements from x into out."""
    for lo in range(0, width, BLOCK_WIDTH):
        offs = lo + tl.arange(0, BLOCK_WIDTH)
        mask = offs < width
        tl.store(out_ptr + token.to(tl.int64) * width + offs,
                 tl.load(x_ptr + offs, mask=mask, other=0.0), mask=mask)


@triton.jit
def rotary_qkv_kernel(qkv_ptr, inv_freq_ptr, start_ptr, q_out_ptr, k_out_ptr, v_out_ptr, seq_len, q_heads,
                      k_heads, head_dim, attention_scaling, HAS_START: tl.constexpr, BLOCK_HEADS: tl.constexpr,
                      BLOCK_HALF: tl.constexpr, BLOCK_WIDTH: tl.constexpr):
    """One token's fused projection row [q | k | v]: grid axis 1 picks the
    part (0: rotate q, 1: rotate k, 2: copy v)."""
    token = tl.program_id(0)
    pos = token % seq_len
    if HAS_START:
        pos += tl.load(start_ptr + token // seq_len)
    q_width = q_heads * head_dim
    k_width = k_heads * head_dim
    row = qkv_ptr + token.to(tl.int64) * (q_width + 2 * k_width)
    part = tl.program_id(1)
    if part == 0:
        _rotate(row, q_out_ptr, inv_freq_ptr, token, pos, q_heads, head_dim, attention_scaling, BLOCK_HEADS,
                BLOCK_HALF)
    elif part == 1:
        _rotate(row + q_width, k_out_ptr, inv_freq_ptr, token, pos, k_heads, head_dim, attention_scaling,
                BLOCK_HEADS, BLOCK_HALF)
    else:
        _copy_row(row + q_width + k_width, v_out_ptr, token, k_width, BLOCK_WIDTH)


@kiln.plugin("RotaryQKV", namespace="llama", num_outputs=3)
class RotaryQKV(kiln.PluginBase):
    """RoPE of a fused query/key/value projection in one launch: input qkv
    [batch, seq, (q_heads + 2 * kv_heads) * head_dim] (each token's row is
    q, then k, then v: one matmul made all three), inv_freq, optionally
    start; outputs q and k rotated and v, each [batch, seq, its heads *
    head_dim].  Splitting here costs nothing extra: the rotation reads and
    writes q and k anyway, and v's row is a small copy in the same launch."""

    def __init__(self, head_dim, q_heads, kv_heads, attention_scaling=1.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryQKV: head_dim {head_dim} is odd (RoPE rotates pairs)")
        self.head_dim = int(head_dim)
        self.q_heads = int(q_heads)
        self.kv_heads = int(kv_heads)
        self.attention_scaling = float(attention_scaling)

    def shape_dtype_inference(self, inputs):
        qkv = inputs[0]
        batch, seq = qkv.shape[0], qkv.shape[1]
        q = kiln.SymTensor(qkv.dtype, (batch, seq, self.q_heads * self.head_dim))
        k = kiln.SymTensor(qkv.dtype, (batch, seq, self.kv_heads * self.head_dim))
        v = kiln.SymTensor(qkv.dtype, (batch, seq, self.kv_heads * self.head_dim))
        return q, k, v

    def _blocks(self):
        return {"BLOCK_HEADS": block_for(max(self.q_heads, self.kv_heads), 1),
                "BLOCK_HALF": block_for(self.head_dim // 2, 1),
                "BLOCK_WIDTH": min(block_for(self.kv_heads * self.head_dim, 1), 1024)}

    def _check(self, width):
        expected = (self.q_heads + 2 * self.kv_heads) * self.head_dim
        if width != expected:
            raise ValueError(f"RotaryQKV: qkv rows of {width} elements; {self.q_heads} query and "
                             f"{self.kv_heads} key/value heads of {self.head_dim} need {expected}")

    def forward(self, inputs, outputs):
        tensors = as_torch(inputs)
        qkv, inv_freq = tensors[0], tensors[1]
        start = tensors[2] if len(tensors) > 2 else inv_freq
        q_out, k_out, v_out = as_torch(outputs)
        batch, seq_len, width = qkv.shape
        self._check(width)
        if batch * seq_len == 0:
            return
        rotary_qkv_kernel[(batch * seq_len, 3)](qkv, inv_freq, start, q_out, k_out, v_out, seq_len, self.q_heads,
                                                self.kv_heads, self.head_dim, self.attention_scaling,
                                                HAS_START=len(tensors) > 2, **self._blocks())

    def aot(self, inputs, outputs):
        qkv, inv_freq = inputs[0], inputs[1]
        start = inputs[2] if len(inputs) > 2 else inv_freq
        batch, seq_len, width = qkv.shape
        self._check(width.value)
        return [kiln.AotLaunch(rotary_qkv_kernel,
                               args=[qkv, inv_freq, start, outputs[0], outputs[1], outputs[2], seq_len,
                                     self.q_heads, self.kv_heads, self.head_dim, self.attention_scaling],
                               grid=(batch * seq_len, 3),
                               constexprs={"HAS_START": len(inputs) > 2, **self._blocks()})]
