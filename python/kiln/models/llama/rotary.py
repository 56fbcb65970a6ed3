"""Rotary position embedding (RoPE) as a Triton plugin: RotaryQK rotates a
layer's queries and keys in one launch (grid axis 1 picks which).

Each of them holds the heads of each token side by side, [batch, seq, heads * head_dim]
(the layout the q/k projections produce, so no transpose is needed).  Pair i
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
def _rotate(x_ptr, out_ptr, inv_freq_ptr, token, pos, n_heads, head_dim, attention_scaling,
            BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr):
    """Rotate every head of one token of x into out."""
    half = head_dim // 2
    heads = tl.arange(0, BLOCK_HEADS)
    pair = tl.arange(0, BLOCK_HALF)
    mask = (heads < n_heads)[:, None] & (pair < half)[None, :]
    # [heads, pairs] tile of this token: element (h, i) is x[h * head_dim + i]
    first = token.to(tl.int64) * n_heads * head_dim + heads[:, None] * head_dim + pair[None, :]
    x1 = tl.load(x_ptr + first, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_ptr + first + half, mask=mask, other=0.0).to(tl.float32)
    angle = pos.to(tl.float32) * tl.load(inv_freq_ptr + pair, mask=pair < half, other=0.0)
    cos = (tl.cos(angle) * attention_scaling)[None, :]
    sin = (tl.sin(angle) * attention_scaling)[None, :]
    out_ty = out_ptr.dtype.element_ty
    tl.store(out_ptr + first, (x1 * cos - x2 * sin).to(out_ty), mask=mask)
    tl.store(out_ptr + first + half, (x2 * cos + x1 * sin).to(out_ty), mask=mask)


@triton.jit
def rotary_qk_kernel(q_ptr, k_ptr, inv_freq_ptr, start_ptr, q_out_ptr, k_out_ptr, seq_len, q_heads, k_heads,
                     head_dim, attention_scaling, HAS_START: tl.constexpr, BLOCK_HEADS: tl.constexpr,
                     BLOCK_HALF: tl.constexpr):
    token = tl.program_id(0)
    pos = token % seq_len
    if HAS_START:
        pos += tl.load(start_ptr + token // seq_len)
    if tl.program_id(1) == 0:
        _rotate(q_ptr, q_out_ptr, inv_freq_ptr, token, pos, q_heads, head_dim, attention_scaling, BLOCK_HEADS,
                BLOCK_HALF)
    else:
        _rotate(k_ptr, k_out_ptr, inv_freq_ptr, token, pos, k_heads, head_dim, attention_scaling, BLOCK_HEADS,
                BLOCK_HALF)


@kiln.plugin("RotaryQK", namespace="llama", num_outputs=2)
class RotaryQK(kiln.PluginBase):
    """Rotary of the query and the key of the same tokens in one launch:
    inputs q [batch, seq, q_heads*head_dim], k [batch, seq, k_heads*head_dim],
    inv_freq, optionally start; outputs like q and k."""

    def __init__(self, head_dim, attention_scaling=1.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryQK: head_dim {head_dim} is odd (RoPE rotates pairs)")
        self.head_dim = int(head_dim)
        self.attention_scaling = float(attention_scaling)

    def shape_dtype_inference(self, inputs):
        q, k = inputs[0], inputs[1]
        return kiln.SymTensor(q.dtype, q.shape), kiln.SymTensor(k.dtype, k.shape)

    def _config(self, q_width, k_width):
        q_heads, k_heads = q_width // self.head_dim, k_width // self.head_dim
        return q_heads, k_heads, {"BLOCK_HEADS": block_for(max(q_heads, k_heads), 1),
                                  "BLOCK_HALF": block_for(self.head_dim // 2, 1)}

    def forward(self, inputs, outputs):
        tensors = as_torch(inputs)
        q, k, inv_freq = tensors[0], tensors[1], tensors[2]
        start = tensors[3] if len(tensors) > 3 else inv_freq
        q_out, k_out = as_torch(outputs)
        batch, seq_len, q_width = q.shape
        if batch * seq_len == 0:
            return
        q_heads, k_heads, blocks = self._config(q_width, k.shape[-1])
        rotary_qk_kernel[(batch * seq_len, 2)](q, k, inv_freq, start, q_out, k_out, seq_len, q_heads, k_heads,
                                               self.head_dim, self.attention_scaling, HAS_START=len(tensors) > 3,
                                               **blocks)

    def aot(self, inputs, outputs):
        q, k, inv_freq = inputs[0], inputs[1], inputs[2]
        start = inputs[3] if len(inputs) > 3 else inv_freq
        batch, seq_len, q_width = q.shape
        q_heads, k_heads, blocks = self._config(q_width.value, k.shape[-1].value)
        return [kiln.AotLaunch(rotary_qk_kernel,
                               args=[q, k, inv_freq, start, outputs[0], outputs[1], seq_len, q_heads, k_heads,
                                     self.head_dim, self.attention_scaling],
                               grid=(batch * seq_len, 2),
                               constexprs={"HAS_START": len(inputs) > 3, **blocks})]
