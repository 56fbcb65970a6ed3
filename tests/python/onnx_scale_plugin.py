"""A Triton plugin reached from ONNX: nodes of domain "kiln_test", op type
"ScaleAdd" (attributes alpha, beta) become this plugin (kiln.onnx, custom.py)."""
from typing import Sequence

import torch
import triton
import triton.language as tl

import kiln


@triton.jit
def scale_add_kernel(X, Y, n, alpha, beta, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(X + offs, mask=mask).to(tl.float32)
    tl.store(Y + offs, (x * alpha + beta).to(Y.dtype.element_ty), mask=mask)


@kiln.plugin("ScaleAdd", namespace="kiln_test")
class ScaleAdd(kiln.PluginBase):
    def __init__(self, alpha=1.0, beta=0.0):
        super().__init__()
        self.alpha = float(alpha)
        self.beta = float(beta)

    def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x, y = kiln.convert_to_torch_tensor(inputs[0]), kiln.convert_to_torch_tensor(outputs[0])
        n = x.numel()
        scale_add_kernel[(triton.cdiv(n, 256),)](x, y, n, self.alpha, self.beta, BLOCK=256)


class ScaleAddFunction(torch.autograd.Function):
    """The same op in torch, exported to ONNX as kiln_test::ScaleAdd."""

    @staticmethod
    def forward(ctx, x, alpha, beta):
        return x * alpha + beta

    @staticmethod
    def symbolic(g, x, alpha, beta):
        return g.op("kiln_test::ScaleAdd", x, alpha_f=alpha, beta_f=beta).setType(x.type())
