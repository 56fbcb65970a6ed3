"""TensorRT-LLM's Python-plugin API on kiln.

Code written for TensorRT-LLM's Python plugins ports by changing its imports:

    from kiln.compat.trtllm import (PluginBase, SymTensor, TensorWrapper, trtllm_plugin,
                                    convert_to_torch_tensor)
    from kiln.compat.trtllm import Builder, Tensor, net_guard, str_dtype_to_trt, \\
        torch_dtype_to_trt, torch_dtype_to_str
    from kiln.compat.trtllm.runtime.session import Session, TensorInfo
    from kiln.compat.trtllm._utils import TensorWrapper, torch_dtype_to_str   # tensorrt_llm._utils
    from kiln.compat.trtllm.python_plugin import SymTensor, trtllm_plugin    # tensorrt_llm.python_plugin
    import kiln.compat.trtllm as tensorrt_llm; tensorrt_llm.logger.set_level("info")

"trt" dtypes are kiln DataTypes here.  Registration errors TensorRT-LLM
raised as AssertionError (a plugin registered twice, an unregistered or
unannotated one) are kiln.errors.PluginRegistrationError /
PluginDefinitionError, which are AssertionErrors too.
"""
from ... import dtypes as _dt
from ...network import Builder, Tensor, net_guard, Network, TRTLLM_IGNORED_TENSOR_ARGS
from ...plugin import PluginBase, SymTensor, SymDim, plugin as _plugin
from ...tensor import TensorWrapper, convert_to_torch_tensor, convert_to_numpy
from ...runtime import Session, TensorInfo
from . import runtime
from . import logger

__all__ = [
    "trtllm_plugin", "PluginBase", "SymTensor", "SymDim", "TensorWrapper", "convert_to_torch_tensor",
    "convert_to_numpy", "Builder", "Tensor", "net_guard", "Network", "str_dtype_to_trt", "torch_dtype_to_trt",
    "torch_dtype_to_str", "trt_dtype_to_torch", "str_dtype_to_torch", "trt_dtype_to_str", "Session",
    "TensorInfo", "runtime", "logger", "TRTLLM_IGNORED_PLUGIN_ARGS", "TRTLLM_IGNORED_TENSOR_ARGS",
]

# The submodules plugin code imports by TensorRT-LLM's names
# (tensorrt_llm._utils, tensorrt_llm.python_plugin) are imported at the end,
# once the names they re-export exist.

# trtllm_plugin() keyword arguments of TensorRT-LLM's that kiln accepts and
# ignores on purpose (docs/python.md): deterministic (a kiln plugin's
# determinism is its forward's own).  Any other unknown keyword is a TypeError.
TRTLLM_IGNORED_PLUGIN_ARGS = ("deterministic",)


def trtllm_plugin(plugin_name, *, plugin_version="1", plugin_namespace="tensorrt_llm", plugin_num_outputs=None,
                  version=None, namespace=None, num_outputs=None, **kwargs):
    """@trtllm_plugin("Name"): kiln.plugin with TensorRT-LLM's keyword names
    (kiln's names are accepted too)."""
    unknown = [k for k in kwargs if k not in TRTLLM_IGNORED_PLUGIN_ARGS]
    if unknown:
        raise TypeError(f"trtllm_plugin: unexpected keyword argument(s) {', '.join(map(repr, unknown))} "
                        "(it takes plugin_version, plugin_namespace, plugin_num_outputs or kiln's version, "
                        f"namespace, num_outputs; TensorRT-LLM's {', '.join(TRTLLM_IGNORED_PLUGIN_ARGS)} "
                        "is accepted and ignored)")
    return _plugin(plugin_name,
                   version=version if version is not None else plugin_version,
                   namespace=namespace if namespace is not None else plugin_namespace,
                   num_outputs=num_outputs if num_outputs is not None else plugin_num_outputs)


def str_dtype_to_trt(dtype):
    return _dt.to_dtype(dtype)


def torch_dtype_to_trt(dtype):
    return _dt.to_dtype(dtype)


def torch_dtype_to_str(dtype):
    return _dt.dtype_name(dtype)


def trt_dtype_to_torch(dtype):
    return _dt.to_torch_dtype(dtype)


def trt_dtype_to_str(dtype):
    return _dt.dtype_name(dtype)


def str_dtype_to_torch(dtype):
    return _dt.to_torch_dtype(dtype)


from . import _utils, python_plugin  # noqa: E402,F401
