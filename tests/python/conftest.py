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


MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def run_workers(argvs, env, timeout, grace=20):
    """Start one process per argv (the ranks of a multi-GPU test) and wait for
    all of them within one deadline of `timeout` seconds in total.  When a
    rank fails, the others get `grace` seconds more (their peer is gone: they
    would otherwise wait out NCCL's or kiln's own timeout); at the deadline
    every rank still running is killed.  Each rank's output is kept either
    way, so a hang or a crash fails the test with what every rank printed.
    Returns (return codes, outputs); a killed rank's code is negative."""
    import subprocess
    import tempfile
    import time
    logs = [tempfile.TemporaryFile(mode="w+") for _ in argvs]
    procs = [subprocess.Popen(a, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
             for a, log in zip(argvs, logs)]
    deadline = time.monotonic() + timeout
    notes = [""] * len(procs)
    try:
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if any(p.poll() not in (None, 0) for p in procs):
                deadline = min(deadline, now + grace)
            if now > deadline:
                for i, p in enumerate(procs):
                    if p.poll() is None:
                        p.kill()
                        notes[i] = f"\n[rank {i} killed by the test: still running at its deadline]"
                break
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    outs = []
    for log, note in zip(logs, notes):
        log.seek(0)
        outs.append(log.read() + note)
        log.close()
    return [p.returncode for p in procs], outs


def subprocess_env():
    """Environment for child Python processes: same kiln, same Triton mode."""
    env = dict(os.environ)
    paths = [str(ROOT / "python"), str(EXAMPLE)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if not os.environ.get("KILN_BUILD_DIR"):
        paths = paths[1:]  # installed kiln
    env["PYTHONPATH"] = os.pathsep.join(paths)
    # NVLink multicast off in any NCCL/PyTorch/NVSHMEM a child starts (the
    # multi-GPU workers): it can take a host's shared GPUs out of service.
    for name, value in MULTICAST_OFF.items():
        env.setdefault(name, value)
    return env
collect_ignore = ["trtllm_port"]   # run in a process of its own by test_trtllm_port.py
