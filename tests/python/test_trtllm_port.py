"""TensorRT-LLM's own plugin-wrapper unit test (tests/python/trtllm_port/,
ported by changing imports only) with TensorRT-LLM's example plugin
(examples/trtllm_python_plugin), run by pytest in a process of its own: its
plugin names (TritonLookUp, Plugin, DummyPlugin) are registered by kiln's own
tests too, and a process has one registry."""
import os
import subprocess
import sys
from pathlib import Path

from conftest import EXAMPLE, subprocess_env

HERE = Path(__file__).resolve().parent


def test_tensorrt_llm_plugin_wrapper_test_passes():
    env = subprocess_env()
    # kiln's own examples/python_plugin also has a plugin_lib: keep it off the
    # path so that the test imports TensorRT-LLM's (examples/trtllm_python_plugin).
    env["PYTHONPATH"] = os.pathsep.join(p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p != str(EXAMPLE))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(HERE / "trtllm_port" / "test_plugin_wrapper.py")],
                          cwd=HERE / "trtllm_port", env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "15 passed" in proc.stdout, proc.stdout[-2000:]
    assert "trtllm_python_plugin" in proc.stdout, "the test did not use TensorRT-LLM's example"


def test_tensorrt_llm_example_builds_and_runs(tmp_path):
    """TensorRT-LLM's examples/python_plugin (examples/trtllm_python_plugin):
    build_lookup.py writes engines for three dtypes, run_lookup.py loads each
    in a fresh process and checks it against torch.nn.Embedding."""
    example = HERE.parents[1] / "examples" / "trtllm_python_plugin"
    env = subprocess_env()
    env.pop("KILN_DEFAULT_DEVICE", None)   # as TensorRT-LLM: the GPU when there is one
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(EXAMPLE)]
    env["PYTHONPATH"] = os.pathsep.join([str(example)] + paths)
    for script in ("build_lookup.py", "run_lookup.py"):
        proc = subprocess.run([sys.executable, str(example / script)], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=900)
        assert proc.returncode == 0, f"{script}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == ["bfloat16", "float16", "float32"]
