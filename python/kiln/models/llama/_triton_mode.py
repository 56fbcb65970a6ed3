"""Choose how Triton runs before this package imports it.

With a GPU that kiln and torch can use, Triton compiles real kernels.  Without
one, the kernels run under Triton's interpreter (TRITON_INTERPRET=1), which
must be set before `import triton`.  An explicit TRITON_INTERPRET in the
environment wins.  (The seed example, examples/python_plugin, does the same.)
"""
import os
import sys
import warnings


def _gpu_usable():
    try:
        import kiln
        import torch
        return bool(kiln.cuda_available() and torch.cuda.is_available())
    except Exception:
        return False


if "TRITON_INTERPRET" not in os.environ:
    if "triton" in sys.modules:
        if not _gpu_usable():
            warnings.warn("kiln.models.llama: triton was imported before this package and no GPU is usable; "
                          "set TRITON_INTERPRET=1 before importing triton to run the kernels on the CPU")
    elif not _gpu_usable():
        os.environ["TRITON_INTERPRET"] = "1"
