"""Rotary position embedding (RoPE) as a Triton plugin.

x holds the heads of each token side by side, [batch, seq, heads * head_dim]
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
def rotary_kernel(x_ptr, inv_freq_ptr, start_ptr, out_ptr, seq_len, n_heads, head_dim, attention_scaling,
                  HAS_START: tl.constexpr, BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr):
    token = tl.program_id(0)                    # b * seq_len + s
    b = token // seq_len
    pos = token % seq_len
    if HAS_START:
        pos += tl.load(start_ptr + b)
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


@kiln.plugin("Rotary", namespace="llama")
class Rotary(kiln.PluginBase):
    """inputs: x [batch, seq, heads*head_dim], inv_freq [head_dim/2] float32,
    optionally start [batch] int32; output like x."""

    def __init__(self, head_dim, attention_scaling=1.0):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"Rotary: head_dim {head_dim} is odd (RoPE rotates pairs)")
        self.head_dim = int(head_dim)
        self.attention_scaling = float(attention_scaling)

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        tensors = as_torch(inputs)
        x, inv_freq = tensors[0], tensors[1]
        start = tensors[2] if len(tensors) > 2 else inv_freq      # unused pointer when there is no start
        (out,) = as_torch(outputs)
        batch, seq_len, width = x.shape
        if batch * seq_len == 0:
            return
        n_heads = width // self.head_dim
        rotary_kernel[(batch * seq_len,)](x, inv_freq, start, out, seq_len, n_heads, self.head_dim,
                                          self.attention_scaling, HAS_START=len(tensors) > 2,
                                          BLOCK_HEADS=block_for(n_heads, 1), BLOCK_HALF=block_for(self.head_dim // 2, 1))

    def aot(self, inputs, outputs):
        x, inv_freq = inputs[0], inputs[1]
        start = inputs[2] if len(inputs) > 2 else inv_freq
        batch, seq_len, width = x.shape
        n_heads = width.value // self.head_dim                 # the width is fixed by the network
        return [kiln.AotLaunch(rotary_kernel,
                               args=[x, inv_freq, start, outputs[0], seq_len, n_heads, self.head_dim,
                                     self.attention_scaling],
                               grid=(batch * seq_len,),
                               constexprs={"HAS_START": len(inputs) > 2, "BLOCK_HEADS": block_for(n_heads, 1),
                                           "BLOCK_HALF": block_for(self.head_dim // 2, 1)})]
