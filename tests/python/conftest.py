"""pytest setup for kiln's Python tests.

kiln is imported from the source tree (python/) with the extension from a
build directory when KILN_BUILD_DIR is set or build-py/ exists; otherwise
from an installed package.  Without a GPU kiln can use, Triton kernels run
under its interpreter, which must be chosen before triton is imported.
"""
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "python_plugin"


def _setup_path():
    build = os.environ.get("KILN_BUILD_DIR")
    if not build and (ROOT / "build-py").is_dir() and list((ROOT / "build-py").glob("_kiln*.so")):
        build = str(ROOT / "build-py")
    if build:
        os.environ["KILN_BUILD_DIR"] = os.path.abspath(build)
        sys.path.insert(0, str(ROOT / "python"))


_setup_path()

# Sessions default to the GPU when there is one; these tests pass numpy and
# CPU torch tensors unless they ask for "cuda" explicitly (test_gpu.py).
os.environ.setdefault("KILN_DEFAULT_DEVICE", "cpu")

import kiln  # noqa: E402

HAVE_GPU = False
try:
    import torch  # noqa: E402
    HAVE_GPU = bool(kiln.cuda_available() and torch.cuda.is_available())
except ImportError:  # pragma: no cover
    torch = None

if not HAVE_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def subprocess_env():
    """Environment for child Python processes: same kiln, same Triton mode."""
    env = dict(os.environ)
    paths = [str(ROOT / "python"), str(EXAMPLE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if not os.environ.get("KILN_BUILD_DIR"):
        paths = paths[1:]  # installed kiln
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env
collect_ignore = ["trtllm_port"]   # run in a process of its own by test_trtllm_port.py
