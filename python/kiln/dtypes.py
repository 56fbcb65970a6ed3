"""kiln data types and conversions from the spellings users bring.

A kiln dtype is a DataType (kiln.float32, kiln.float16, ...).  Everywhere kiln
takes a dtype it also accepts a name ("float16", "fp16", "bf16"), a torch
dtype, a numpy dtype or scalar type, or a DataType's integer code.  A
DataType compares equal to each of those spellings of itself, so
`wrapper.dtype == torch.float16` and `sym.dtype == "float16"` both work.
"""
import importlib.util
import os

from ._native import _kiln

__all__ = [
    "DataType", "float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64", "bool_",
    "to_dtype", "to_torch_dtype", "to_numpy_dtype", "dtype_name",
]


class DataType:
    """One of kiln's element types.  Use the module constants, never construct."""

    __slots__ = ("code", "name", "itemsize")

    def __init__(self, code):
        self.code = code
        self.name, self.itemsize = _kiln.dtype_info(code)

    def __index__(self):
        return self.code

    def __repr__(self):
        return "kiln." + self.name

    # str() ends in the dtype name, which is what Triton looks for.
    __str__ = __repr__

    def __eq__(self, other):
        if isinstance(other, DataType):
            return self.code == other.code
        try:
            return to_dtype(other).code == self.code
        except (TypeError, ValueError):
            return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self):
        return hash(("kiln.DataType", self.code))

    def __reduce__(self):
        return (_by_code, (self.code,))


_BY_CODE = tuple(DataType(i) for i in range(_kiln.DTYPE_COUNT))
float32, float16, bfloat16, int8, uint8, int32, int64, bool_ = _BY_CODE


def _by_code(code):
    return _BY_CODE[code]


_SUPPORTED = "float32, float16, bfloat16, int8, uint8, int32, int64, bool"


def to_dtype(obj):
    """The DataType for obj: a DataType, a name, a torch/numpy dtype or a code."""
    if isinstance(obj, DataType):
        return obj
    if isinstance(obj, bool):
        raise TypeError("a bool is not a dtype")
    if isinstance(obj, int):
        if 0 <= obj < len(_BY_CODE):
            return _BY_CODE[obj]
        raise ValueError(f"unknown kiln dtype code {obj}")
    if isinstance(obj, str):
        name = obj[len("torch."):] if obj.startswith("torch.") else obj
        code = _kiln.dtype_from_name(name)
        if code is None:
            raise ValueError(f"unknown dtype '{obj}' (kiln supports {_SUPPORTED})")
        return _BY_CODE[code]
    mod = type(obj).__module__ or ""
    if mod.startswith("torch"):
        name = str(obj)[len("torch."):]
        code = _kiln.dtype_from_name(name)
        if code is None:
            raise ValueError(f"torch dtype {obj} has no kiln equivalent (kiln supports {_SUPPORTED})")
        return _BY_CODE[code]
    np = _numpy()
    if np is not None:
        try:
            npd = np.dtype(obj)
        except TypeError:
            npd = None
        if npd is not None:
            code = _kiln.dtype_from_name(npd.name)
            if code is None:
                raise ValueError(f"numpy dtype {npd.name} has no kiln equivalent (kiln supports {_SUPPORTED})")
            return _BY_CODE[code]
    raise TypeError(f"{obj!r} is not a dtype (expected a kiln dtype, a name such as 'float16', "
                    "a torch dtype or a numpy dtype)")


def dtype_name(obj):
    """'float32', 'float16', ... for any dtype spelling."""
    return to_dtype(obj).name


def _numpy():
    try:
        import numpy
        return numpy
    except ImportError:  # pragma: no cover - numpy is a dependency
        return None


_torch_mod = None


def optional_torch():
    """torch if importable (imported once), else None.  KILN_NO_TORCH=1 skips it."""
    global _torch_mod
    if _torch_mod is None:
        _torch_mod = False
        if os.environ.get("KILN_NO_TORCH") != "1" and importlib.util.find_spec("torch") is not None:
            import torch
            _torch_mod = torch
    return _torch_mod or None


def to_torch_dtype(obj):
    torch = optional_torch()
    if torch is None:
        raise ImportError("torch is not installed")
    name = to_dtype(obj).name
    return getattr(torch, "bool" if name == "bool" else name)


def to_numpy_dtype(obj):
    dt = to_dtype(obj)
    if dt.code == bfloat16.code:
        # ml_dtypes' bfloat16 is what ONNX tooling uses; numpy itself has none.
        try:
            import ml_dtypes
        except ImportError:
            raise TypeError("numpy has no bfloat16 dtype: install ml_dtypes, or use torch for bfloat16 "
                            "tensors") from None
        return _numpy().dtype(ml_dtypes.bfloat16)
    return _numpy().dtype(dt.name)


def _wrapper_dtypes():
    """What TensorWrapper.dtype returns: torch dtypes when torch is there
    (plugins written for TensorRT-LLM compare against torch.float16 & co),
    else kiln dtypes.  The extension calls this on the first .dtype, so
    `import kiln` does not import torch."""
    torch = optional_torch()
    if torch is not None:
        return tuple(to_torch_dtype(d) for d in _BY_CODE)
    return _BY_CODE


_kiln._set_wrapper_dtypes(_wrapper_dtypes)
