"""Choose how Triton runs before anything imports it.

With a GPU that kiln can use, Triton compiles real kernels.  Without one the
kernels run under Triton's interpreter (TRITON_INTERPRET=1), which must be
set before `import triton`.  An explicit TRITON_INTERPRET in the environment
wins.  KILN_DEVICE=cpu forces the CPU path on a GPU machine.
"""
import os
import sys


def device():
    """'cuda' when kiln and torch both see a GPU (and KILN_DEVICE allows), else 'cpu'."""
    want = os.environ.get("KILN_DEVICE")
    if want == "cpu":
        return "cpu"
    import kiln
    import torch
    if kiln.cuda_available() and torch.cuda.is_available():
        return "cuda"
    if want == "cuda":
        raise RuntimeError("KILN_DEVICE=cuda but kiln or torch sees no GPU")
    return "cpu"


if "TRITON_INTERPRET" not in os.environ:
    if "triton" in sys.modules:
        print("plugin_lib: triton was imported before plugin_lib; cannot select its interpreter", file=sys.stderr)
    elif device() == "cpu":
        os.environ["TRITON_INTERPRET"] = "1"
