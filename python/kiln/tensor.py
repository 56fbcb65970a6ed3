"""TensorWrapper and the converters that alias its memory.

A TensorWrapper (implemented in C, src/python/tensor_wrapper.c) describes a
tensor a plugin's forward() receives: data_ptr(), shape, strides (in
elements), dtype (a torch dtype when torch is importable, else a kiln dtype),
device, and the array protocols (__array_interface__,
__cuda_array_interface__, __dlpack__/__dlpack_device__).  Inside forward its
memory belongs to the engine and is valid until forward returns.

convert_to_torch_tensor and convert_to_numpy never copy: the result aliases
the wrapper's memory (through DLPack and the array interface).
"""
from ._native import _kiln

TensorWrapper = _kiln.TensorWrapper

__all__ = ["TensorWrapper", "convert_to_torch_tensor", "convert_to_numpy", "wrap_tensor"]


def convert_to_torch_tensor(tensor):
    """A torch tensor aliasing a TensorWrapper's memory (a torch tensor is
    returned as is)."""
    import torch
    if isinstance(tensor, torch.Tensor):
        return tensor
    return torch.utils.dlpack.from_dlpack(tensor)


def convert_to_numpy(tensor):
    """A numpy array aliasing a CPU TensorWrapper's memory (bfloat16 has no
    numpy dtype: use convert_to_torch_tensor)."""
    import numpy as np
    if isinstance(tensor, np.ndarray):
        return tensor
    if isinstance(tensor, TensorWrapper):
        if tensor.device != "cpu":
            raise TypeError("convert_to_numpy: the tensor is on a CUDA device; numpy reads CPU memory only")
        return np.asarray(tensor)
    return np.from_dlpack(tensor)


def wrap_tensor(tensor):
    """A TensorWrapper aliasing a torch tensor, numpy array or DLPack producer."""
    return TensorWrapper.from_tensor(tensor)
