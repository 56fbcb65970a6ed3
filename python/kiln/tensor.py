"""TensorWrapper and the converters that alias its memory.

A TensorWrapper (implemented in C, src/python/tensor_wrapper.c) describes a
tensor a plugin's forward() receives: data_ptr(), shape, strides (in
elements), dtype (a torch dtype when torch is importable, else a kiln dtype),
device, and the array protocols (__array_interface__,
__cuda_array_interface__, __dlpack__/__dlpack_device__).  Inside forward its
memory belongs to the engine and is valid until forward returns.

convert_to_torch_tensor and convert_to_numpy never copy: the result aliases
the wrapper's memory (through DLPack and the array interface).  Attributes a
wrapper lacks are a torch tensor's (size(), stride(), untyped_storage(), …,
through the same aliasing view), so a wrapper can be passed wherever a torch
tensor is expected, Triton's CPU interpreter included.

A plugin's inputs are read-only (wrapper.readonly): they may be weights in a
read-only mapping of the engine file, or activations other layers still
read.  convert_to_numpy gives a writeable=False array; numpy's from_dlpack
sees DLPack's read-only flag.  torch has no read-only tensors, so
convert_to_torch_tensor makes an inference tensor (torch.inference_mode):
an in-place write to it outside inference mode raises RuntimeError.  Inside
a `torch.inference_mode()` block torch cannot tell; do not write there.
"""
import os

from ._native import _kiln

TensorWrapper = _kiln.TensorWrapper

__all__ = ["TensorWrapper", "convert_to_torch_tensor", "convert_to_numpy", "wrap_tensor"]


def convert_to_torch_tensor(tensor):
    """A torch tensor aliasing a TensorWrapper's memory (a torch tensor is
    returned as is)."""
    import torch
    if isinstance(tensor, torch.Tensor):
        return tensor
    if isinstance(tensor, TensorWrapper) and tensor.readonly:
        # torch's nearest thing to a read-only tensor: one made in inference
        # mode refuses in-place updates outside it.  The bare guard costs
        # ~0.5 us where `with torch.inference_mode()` costs ~2 us per call.
        guard = _inference_guard(torch)
        if guard is None:
            with torch.inference_mode():
                return torch.utils.dlpack.from_dlpack(tensor)
        mode = guard(True)
        try:
            return torch.utils.dlpack.from_dlpack(tensor)
        finally:
            del mode
    return torch.utils.dlpack.from_dlpack(tensor)


def _inference_guard(torch):
    """torch's RAII inference-mode guard class when this torch has it, else None."""
    return getattr(getattr(torch, "_C", None), "_InferenceMode", None)


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


def triton_interpreting():
    """Whether Triton kernels run under its CPU interpreter (TRITON_INTERPRET)."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


# Triton's interpreter writes every tensor argument back after a launch, its
# inputs too: a read-only input (a weight in a read-only mapping of the
# engine file) would fault.  Under the interpreter a read-only wrapper's
# torch attributes therefore come from a private copy, made once per wrapper
# and forward (the interpreter copies every argument anyway) and forgotten
# when forward returns (plugin.py's interpreter lock).
_interpreter_copies = {}


def forget_interpreter_copies():
    _interpreter_copies.clear()


def _torch_view(wrapper):
    view = convert_to_torch_tensor(wrapper)
    if not (wrapper.readonly and triton_interpreting()):
        return view
    key = (id(wrapper), wrapper.data_ptr(), tuple(view.shape), view.dtype)
    copy = _interpreter_copies.get(key)
    if copy is None:
        copy = _interpreter_copies[key] = view.clone()
    return copy


def _torch_attribute(wrapper, name):
    """What a TensorWrapper lacks, torch's tensor has: the attribute of a torch
    tensor aliasing the wrapper's memory (read-only inputs as an inference
    tensor, as convert_to_torch_tensor gives).  So a wrapper goes wherever a
    torch tensor does — Triton's CPU interpreter calls untyped_storage(),
    size(), stride() — on both devices, with no copy."""
    try:
        import torch  # noqa: F401
    except ImportError:
        raise AttributeError(f"'kiln.TensorWrapper' object has no attribute {name!r} (torch is not installed, so "
                             "torch's tensor attributes are not available)") from None
    try:
        return getattr(_torch_view(wrapper), name)
    except AttributeError:
        raise AttributeError(f"'kiln.TensorWrapper' object has no attribute {name!r}, and neither has a torch "
                             "tensor") from None


_kiln._set_wrapper_fallback(_torch_attribute)


def wrap_tensor(tensor, readonly=False):
    """A TensorWrapper aliasing a torch tensor, numpy array or DLPack producer
    (read-only when asked, or when the source is)."""
    return TensorWrapper.from_tensor(tensor, readonly=readonly)
