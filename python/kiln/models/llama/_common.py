"""Helpers the Llama plugins share: tensors for Triton, dot precision."""
import torch

import kiln


def as_torch(wrappers):
    """kiln TensorWrappers -> torch tensors aliasing the same memory (no copy).
    Triton's interpreter (the CPU path) only takes torch tensors, and on a GPU
    torch tensors work as well as the wrappers do."""
    return [kiln.convert_to_torch_tensor(w) for w in wrappers]


def dot_precision(dtype):
    """tl.dot's input_precision: "ieee" keeps float32 matmuls exact float32
    (Triton's default on a GPU is TF32, ~1e-3 relative error, which would
    break float32 agreement with transformers); half types ignore it."""
    return "ieee" if dtype == torch.float32 else "tf32"


def block_for(n, at_least=16):
    """The power-of-two tile covering n elements (tl.arange needs powers of
    two; tl.dot needs at least 16 along each axis)."""
    p = at_least
    while p < n:
        p *= 2
    return p
