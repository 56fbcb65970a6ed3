"""tensorrt_llm._utils names that plugin code imports: TensorWrapper and the
dtype helpers (kiln's)."""
from . import (TensorWrapper, torch_dtype_to_str, torch_dtype_to_trt, str_dtype_to_trt, str_dtype_to_torch,  # noqa
               trt_dtype_to_torch, trt_dtype_to_str)

__all__ = ["TensorWrapper", "torch_dtype_to_str", "torch_dtype_to_trt", "str_dtype_to_trt", "str_dtype_to_torch",
           "trt_dtype_to_torch", "trt_dtype_to_str"]
