"""SiluMul: Llama's gated MLP activation, silu(gate) * up, in one launch.

transformers computes `act_fn(gate_proj(x)) * up_proj(x)`: the SiLU result
is rounded to the model dtype, then multiplied by up and rounded again.  This
kernel rounds at the same two points (its arithmetic is float32), so its
bfloat16 output is transformers' bit for bit, in one pass over the two
[.., intermediate] tensors instead of kiln's silu layer then mul layer.
"""
import triton
import triton.language as tl

import kiln

from ._common import as_torch

BLOCK = 1024


@triton.jit
def silu_mul_kernel(gate_ptr, up_ptr, out_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    g = tl.load(gate_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(up_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    out_ty = out_ptr.dtype.element_ty
    act = (g / (1.0 + tl.exp(-g))).to(out_ty).to(tl.float32)
    tl.store(out_ptr + offs, (act * u).to(out_ty), mask=mask)


@kiln.plugin("SiluMul", namespace="llama")
class SiluMul(kiln.PluginBase):
    """inputs: gate, up (same shape and dtype); output silu(gate) * up."""

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        gate, up = as_torch(inputs)
        (out,) = as_torch(outputs)
        n = gate.numel()
        if n == 0:
            return
        silu_mul_kernel[(triton.cdiv(n, BLOCK),)](gate, up, out, n, BLOCK=BLOCK, num_warps=4)

    def aot(self, inputs, outputs):
        gate, up = inputs
        n = 1
        for d in gate.shape:
            n = n * d
        return [kiln.AotLaunch(silu_mul_kernel, args=[gate, up, outputs[0], n], grid=(kiln.cdiv(n, BLOCK),),
                               constexprs={"BLOCK": BLOCK}, num_warps=4)]
