"""The seed's plugin (shared/seed/tensorrt-llm-python-plugin.md), verbatim
except for the import lines, with a kernel matching its launch signature."""
from typing import Sequence

import torch
import triton
import triton.language as tl

from kiln.compat.trtllm import (PluginBase, SymTensor, TensorWrapper, convert_to_torch_tensor,
                                trtllm_plugin)


@triton.jit
def lookup_kernel(X, Y, Z, vocab_size, n_embed, n_tokens):
    # The seed's launch: grid = min(65536, n_tokens) * min(512, n_embed)
    # programs, each striding over rows and columns one element at a time.
    pid = tl.program_id(0)
    row_step = tl.minimum(n_tokens, 65536)
    col_step = tl.minimum(n_embed, 512)
    row0 = pid // col_step
    col0 = pid % col_step
    for row in range(row0, n_tokens, row_step):
        token = tl.load(X + row).to(tl.int64)
        for col in range(col0, n_embed, col_step):
            value = tl.load(Y + token * n_embed + col)
            tl.store(Z + row * n_embed + col, value.to(Z.dtype.element_ty))


# ---- verbatim from the seed -------------------------------------------------
@trtllm_plugin("TritonLookUp")
class LookUpPlugin(PluginBase):

    def __init__(self, use_torch_tensor, fp32_output):
        super().__init__()
        self.use_torch_tensor = use_torch_tensor
        self.fp32_output = fp32_output

    def shape_dtype_inference(self, inputs: Sequence[SymTensor]) -> SymTensor:
        shape = inputs[1].shape
        shape[0] = inputs[0].shape[0] + inputs[1].shape[0] - inputs[1].shape[0]
        return SymTensor(
            inputs[1].dtype if not self.fp32_output else torch.float32, shape)

    def forward(self, inputs: Sequence[TensorWrapper],
                outputs: Sequence[TensorWrapper]):
        assert len(inputs) == 2
        assert inputs[0].dtype in [torch.int32 or torch.int64]
        assert inputs[1].dtype in [torch.float32, torch.float16, torch.bfloat16]
        assert (self.fp32_output and outputs[0].dtype
                == torch.float32) or outputs[0].dtype == inputs[1].dtype

        x = inputs[0]
        y = inputs[1]
        z = outputs[0]
        if self.use_torch_tensor:
            x = convert_to_torch_tensor(x)
            y = convert_to_torch_tensor(y)
            z = convert_to_torch_tensor(z)
        MAX_BLOCK_NUM = 65536
        MAX_BLOCK_SIZE = 512
        grid = lambda meta: (min(MAX_BLOCK_NUM, x.shape[0]) * min(
            MAX_BLOCK_SIZE, y.shape[1]), )
        lookup_kernel[grid](x, y, z, y.shape[0], y.shape[1], x.shape[0])
