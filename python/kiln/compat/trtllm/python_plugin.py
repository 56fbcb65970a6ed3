"""tensorrt_llm.python_plugin: the plugin API under TensorRT-LLM's module name."""
from . import (PluginBase, SymTensor, TensorWrapper, convert_to_numpy, convert_to_torch_tensor,  # noqa: F401
               trtllm_plugin)

__all__ = ["PluginBase", "SymTensor", "TensorWrapper", "convert_to_numpy", "convert_to_torch_tensor",
           "trtllm_plugin"]
