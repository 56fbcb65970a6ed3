"""SiluMul: Llama's gated MLP activation, silu(gate) * up, in one launch,
from the fused gate/up projection.

transformers computes `act_fn(gate_proj(x)) * up_proj(x)`: the SiLU result
is rounded to the model dtype, then multiplied by up and rounded again.  This
kernel rounds at the same two points (its arithmetic is float32), so its
bfloat16 output is transformers' bit for bit.  Its input is one matmul's
output [.., 2 * intermediate], each row gate then up (the two projections'
weights side by side in one constant: one GEMM reads both instead of two
launches), and it writes [.., intermediate].
"""
import triton
import triton.language as tl

import kiln

from ._common import as_torch

BLOCK = 1024


@triton.jit
def silu_mul_kernel(gate_up_ptr, out_ptr, n, inter, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    row = offs // inter
    gate_at = offs + row * inter          # row * 2 * inter + column
    g = tl.load(gate_up_ptr + gate_at, mask=mask, other=0.0).to(tl.float32)
    u = tl.load(gate_up_ptr + gate_at + inter, mask=mask, other=0.0).to(tl.float32)
    out_ty = out_ptr.dtype.element_ty
    act = (g / (1.0 + tl.exp(-g))).to(out_ty).to(tl.float32)
    tl.store(out_ptr + offs, (act * u).to(out_ty), mask=mask)


@kiln.plugin("SiluMul", namespace="llama")
class SiluMul(kiln.PluginBase):
    """input: gate_up [.., 2 * intermediate] (gate, then up, in each row);
    output silu(gate) * up [.., intermediate]."""

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        gate_up = inputs[0]
        return kiln.SymTensor(gate_up.dtype, (*gate_up.shape[:-1], gate_up.shape[-1] // 2))

    @staticmethod
    def _inter(width):
        if width % 2:
            raise ValueError(f"SiluMul: gate_up rows of {width} elements (gate and up need an even width)")
        return width // 2

    def forward(self, inputs, outputs):
        (gate_up,) = as_torch(inputs)
        (out,) = as_torch(outputs)
        inter = self._inter(gate_up.shape[-1])
        n = out.numel()
        if n == 0:
            return
        silu_mul_kernel[(triton.cdiv(n, BLOCK),)](gate_up, out, n, inter, BLOCK=BLOCK, num_warps=4)

    def aot(self, inputs, outputs):
        (gate_up,) = inputs
        inter = self._inter(gate_up.shape[-1].value)
        n = 1
        for d in outputs[0].shape:
            n = n * d
        return [kiln.AotLaunch(silu_mul_kernel, args=[gate_up, outputs[0], n, inter], grid=(kiln.cdiv(n, BLOCK),),
                               constexprs={"BLOCK": BLOCK}, num_warps=4)]
