"""kiln — build, serialize and run inference engines with Python plugins.

The C library does the work (networks, builder, engine format, runtime,
backends); this package is a thin layer over its extension module _kiln.

    import kiln
    builder = kiln.Builder()
    network = builder.create_network()
    with kiln.net_guard(network):
        x = kiln.Tensor(name="x", shape=(4, 16), dtype="float32")
        kiln.relu(x).mark_output("y")
    engine = builder.build_engine(network, builder.create_builder_config())
    session = kiln.runtime.Session.from_serialized_engine(engine)
    print(session({"x": numpy.ones((4, 16), "float32")})["y"])

Modules: network (Builder, Tensor, layers), plugin (PluginBase, @plugin),
symbolic (SymDim, SymTensor and their helpers), aot (AotLaunch), runtime (Session, TensorInfo), tensor (TensorWrapper and
converters), dtypes, distributed (communicator ids for tensor-parallel sessions), compat.trtllm (TensorRT-LLM spellings).
"""
from ._native import _kiln
from .errors import Error
from .dtypes import (DataType, float32, float16, bfloat16, int8, uint8, int32, int64, bool_,
                     to_dtype, to_torch_dtype, to_numpy_dtype, dtype_name)
from .network import (Builder, BuilderConfig, Network, Tensor, net_guard, current_network, constant, cast,
                      matmul, gather, reshape, relu, gelu, silu, exp, neg, sqrt, add, sub, mul, div,
                      minimum, maximum, tanh, sigmoid, erf, gelu_erf, rsqrt, absolute, log, sin, cos, floor, ceil,
                      reciprocal, sign, power, mod, fmod, equal, not_equal, less, less_equal, greater,
                      greater_equal, logical_and, logical_or, logical_xor, logical_not)
from .shape_ops import (transpose, permute, slice, concat, expand, broadcast_to, reduce_sum, reduce_mean,
                        reduce_max, reduce_min, reduce_prod, argmax, argmin, softmax, log_softmax, layer_norm,
                        rms_norm, where, gather_elements, cumsum, pad, scaled_dot_product_attention,
                        all_reduce, all_gather, reduce_scatter, scatter_nd, scatter_elements, topk,
                        rotary_embedding, conv, conv_transpose, max_pool, avg_pool, resize)
from .symbolic import SymTensor, SymDim, sym_min, sym_max, sym_eq, sym_lt, cdiv
from .plugin import PluginBase, plugin, registered_plugins, unregister_plugin
from .tensor import TensorWrapper, convert_to_torch_tensor, convert_to_numpy, wrap_tensor
from . import runtime
from . import distributed
from . import aot
from .aot import AotLaunch, AotWorkspace
from .runtime import Session, TensorInfo
from .log_bridge import set_log_level, get_log_level

__version__ = _kiln.version()


def cuda_available():
    """Whether kiln's CUDA backend loaded and sees a GPU."""
    return _kiln.cuda_available()


__all__ = [
    "Error", "DataType", "float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool_",
    "to_dtype", "to_torch_dtype", "to_numpy_dtype", "dtype_name",
    "Builder", "BuilderConfig", "Network", "Tensor", "net_guard", "current_network", "constant", "cast",
    "matmul", "gather", "reshape", "relu", "gelu", "silu", "exp", "neg", "sqrt", "add", "sub", "mul", "div",
    "minimum", "maximum", "tanh", "sigmoid", "erf", "gelu_erf", "rsqrt", "absolute", "log", "sin", "cos",
    "floor", "ceil", "reciprocal", "sign", "power", "mod", "fmod", "equal", "not_equal", "less", "less_equal",
    "greater", "greater_equal", "logical_and", "logical_or", "logical_xor", "logical_not",
    "transpose", "permute", "slice", "concat", "expand", "broadcast_to", "reduce_sum", "reduce_mean", "reduce_max",
    "reduce_min", "reduce_prod", "argmax", "argmin", "softmax", "log_softmax", "layer_norm", "rms_norm", "where",
    "gather_elements", "cumsum", "pad", "scaled_dot_product_attention", "all_reduce", "all_gather",
    "reduce_scatter", "scatter_nd", "scatter_elements", "topk", "rotary_embedding", "conv", "conv_transpose",
    "max_pool", "avg_pool", "resize",
    "distributed",
    "PluginBase", "plugin", "SymTensor", "SymDim", "sym_min", "sym_max", "sym_eq", "sym_lt",
    "registered_plugins", "unregister_plugin", "TensorWrapper", "convert_to_torch_tensor", "convert_to_numpy", "wrap_tensor",
    "runtime", "Session", "TensorInfo", "cuda_available", "__version__", "aot", "AotLaunch", "AotWorkspace", "cdiv",
    "set_log_level", "get_log_level",
]
