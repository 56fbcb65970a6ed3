"""ONNX element types and kiln dtypes."""
import numpy as np

from .. import dtypes as _dt
from .errors import UnsupportedNode

FLOAT, UINT8, INT8, INT32, INT64, BOOL, FLOAT16, DOUBLE, BFLOAT16 = 1, 2, 3, 6, 7, 9, 10, 11, 16

_TO_KILN = {FLOAT: _dt.float32, UINT8: _dt.uint8, INT8: _dt.int8, INT32: _dt.int32, INT64: _dt.int64,
            BOOL: _dt.bool_, FLOAT16: _dt.float16, BFLOAT16: _dt.bfloat16}
_FROM_KILN = {v.code: k for k, v in _TO_KILN.items()}


def kiln_dtype(onnx_type, node, what=None):
    dt = _TO_KILN.get(int(onnx_type))
    if dt is None:
        import onnx
        name = onnx.TensorProto.DataType.Name(int(onnx_type)) if onnx_type else "undefined"
        reason = f"element type {name} has no kiln dtype (kiln has float32, float16, bfloat16, int8, uint8, " \
                 "int32, int64, bool)"
        if node is None:
            raise ValueError(f"kiln.onnx: {what}: {reason}")
        raise UnsupportedNode(node, reason)
    return dt


def onnx_type_of(dtype):
    return _FROM_KILN[_dt.to_dtype(dtype).code]


def numpy_dtype(onnx_type):
    if int(onnx_type) == DOUBLE:
        return np.float64
    return _dt.to_numpy_dtype(kiln_dtype(onnx_type, None, what="value"))


def to_array(tensor_proto):
    """An initializer or Constant as numpy (bfloat16 as ml_dtypes.bfloat16)."""
    from onnx import numpy_helper
    return numpy_helper.to_array(tensor_proto)


def onnx_type_of_array(arr):
    import onnx
    return onnx.helper.np_dtype_to_tensor_dtype(arr.dtype)
