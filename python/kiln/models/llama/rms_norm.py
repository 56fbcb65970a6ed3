"""RMS norm as a Triton plugin: y = w * (x / sqrt(mean(x^2) + eps)).

One program normalizes one row (one token's hidden vector).  The mean is
taken in float32 whatever the model dtype, and the normalized row is rounded
to the model dtype *before* it is multiplied by the weight: that is the order
transformers' LlamaRMSNorm uses, so bfloat16 results round the same way.
"""
from typing import Tuple

import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for


@triton.jit
def rms_norm_kernel(x_ptr, w_ptr, out_ptr, hidden, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < hidden
    x = tl.load(x_ptr + row * hidden + cols, mask=mask, other=0.0).to(tl.float32)
    mean_square = tl.sum(x * x, axis=0) / hidden
    normed = (x * tl.rsqrt(mean_square + eps)).to(out_ptr.dtype.element_ty)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    tl.store(out_ptr + row * hidden + cols, (normed * w).to(out_ptr.dtype.element_ty), mask=mask)


def launch_config(hidden):
    """(BLOCK, num_warps): the whole row in one tile; more warps for wide rows."""
    block = block_for(hidden, at_least=16)
    return block, max(1, min(16, block // 256))


@kiln.plugin("RMSNorm", namespace="llama")
class RMSNorm(kiln.PluginBase):
    """inputs: x [..., hidden], weight [hidden] (same dtype); output like x."""

    def __init__(self, eps):
        super().__init__()
        self.eps = float(eps)

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x, w = as_torch(inputs)
        (out,) = as_torch(outputs)
        hidden = x.shape[-1]
        rows = x.numel() // hidden if hidden else 0
        if rows == 0:
            return
        block, num_warps = launch_config(hidden)
        rms_norm_kernel[(rows,)](x, w, out, hidden, self.eps, BLOCK=block, num_warps=num_warps)

    def aot(self, inputs, outputs):
        """The same launch, compiled at build time (docs/plugin-guide.md,
        "Ahead-of-time plugins"): rows is an expression of the input shape."""
        x, w = inputs
        hidden = x.shape[-1]
        rows = 1
        for d in x.shape[:-1]:
            rows = rows * d
        block, num_warps = launch_config(hidden.value)       # hidden is fixed by the network
        return [kiln.AotLaunch(rms_norm_kernel, args=[x, w, outputs[0], hidden, self.eps], grid=(rows,),
                               constexprs={"BLOCK": block}, num_warps=num_warps)]


@triton.jit
def add_rms_norm_kernel(h_ptr, x_ptr, w_ptr, sum_ptr, out_ptr, hidden, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < hidden
    h = tl.load(h_ptr + row * hidden + cols, mask=mask, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + row * hidden + cols, mask=mask, other=0.0).to(tl.float32)
    # The residual sum is rounded to the model dtype first, as transformers'
    # `hidden = residual + hidden` is, and normalized from that rounded value.
    s = (h + x).to(sum_ptr.dtype.element_ty)
    tl.store(sum_ptr + row * hidden + cols, s, mask=mask)
    s = s.to(tl.float32)
    mean_square = tl.sum(s * s, axis=0) / hidden
    normed = (s * tl.rsqrt(mean_square + eps)).to(out_ptr.dtype.element_ty)
    w = tl.load(w_ptr + cols, mask=mask, other=0.0)
    tl.store(out_ptr + row * hidden + cols, (normed * w).to(out_ptr.dtype.element_ty), mask=mask)


@kiln.plugin("AddRMSNorm", namespace="llama")
class AddRMSNorm(kiln.PluginBase):
    """The residual add and the next RMS norm in one pass: inputs h, x
    [..., hidden] and weight [hidden] (one dtype); outputs s = h + x (the new
    residual stream) and RMSNorm(s) * weight, both like h.  One launch and
    one read of the row instead of two of each."""

    def __init__(self, eps):
        super().__init__()
        self.eps = float(eps)

    def shape_dtype_inference(self, inputs) -> Tuple[kiln.SymTensor, kiln.SymTensor]:
        h = inputs[0]
        return kiln.SymTensor(h.dtype, h.shape), kiln.SymTensor(h.dtype, list(h.shape))

    def forward(self, inputs, outputs):
        h, x, w = as_torch(inputs)
        total, out = as_torch(outputs)
        hidden = h.shape[-1]
        rows = h.numel() // hidden if hidden else 0
        if rows == 0:
            return
        block, num_warps = launch_config(hidden)
        add_rms_norm_kernel[(rows,)](h, x, w, total, out, hidden, self.eps, BLOCK=block, num_warps=num_warps)

    def aot(self, inputs, outputs):
        h, x, w = inputs
        hidden = h.shape[-1]
        rows = 1
        for d in h.shape[:-1]:
            rows = rows * d
        block, num_warps = launch_config(hidden.value)
        return [kiln.AotLaunch(add_rms_norm_kernel, args=[h, x, w, outputs[0], outputs[1], hidden, self.eps],
                               grid=(rows,), constexprs={"BLOCK": block}, num_warps=num_warps)]
