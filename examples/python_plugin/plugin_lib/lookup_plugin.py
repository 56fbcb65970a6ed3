"""The look-up plugin of TensorRT-LLM's Python-plugin example, on kiln.

Ported by changing imports only; the kernel is a 2-D-grid rewrite
(lookup_kernel.py) instead of one element per program.
"""
from typing import Sequence

import torch

from kiln.compat.trtllm import (PluginBase, SymTensor, TensorWrapper, convert_to_torch_tensor,
                                trtllm_plugin)

from .lookup_kernel import launch_lookup


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
        assert inputs[0].dtype in [torch.int32, torch.int64]
        assert inputs[1].dtype in [torch.float32, torch.float16, torch.bfloat16]
        assert (self.fp32_output and outputs[0].dtype
                == torch.float32) or outputs[0].dtype == inputs[1].dtype

        x = inputs[0]
        y = inputs[1]
        z = outputs[0]
        on_cpu = x.device == "cpu"
        # Triton's interpreter (the CPU path) only takes torch tensors.
        if self.use_torch_tensor or on_cpu:
            x = convert_to_torch_tensor(x)
            y = convert_to_torch_tensor(y)
            z = convert_to_torch_tensor(z)
        # Triton launches on torch's current stream, which kiln has made the
        # session's stream (self.current_stream) before calling forward.
        launch_lookup(x, y, z)
