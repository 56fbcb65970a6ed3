"""`kiln run|bench --import MODULE`: the kiln command pip installs runs and
benchmarks engines with Python plugins, with the options and output it has
for native engines (python/kiln/cli.py runs the C tool in-process after the
imports); --import-recorded imports the modules the engine names, only when
asked."""
import os
import subprocess
import sys

import pytest

from conftest import EXAMPLE, HAVE_GPU, ROOT, subprocess_env

BUILD = os.environ.get("KILN_BUILD_DIR")
pytestmark = pytest.mark.skipif(not BUILD, reason="needs a build tree (KILN_BUILD_DIR) with the kiln tool")

PLUGIN_MODULE = '''
import numpy as np
from typing import Sequence
import kiln
from kiln.tensor import convert_to_numpy

@kiln.plugin("TimesTwo", namespace="cli_test")
class TimesTwo(kiln.PluginBase):
    def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
        return inputs[0]
    def forward(self, inputs, outputs):
        convert_to_numpy(outputs[0])[...] = convert_to_numpy(inputs[0]) * 2
'''


def _kiln(args, cwd, env):
    return subprocess.run([sys.executable, "-m", "kiln.cli"] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def plugin_engine(tmp_path):
    (tmp_path / "cli_test_plugins.py").write_text(PLUGIN_MODULE)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    build = (
        "import kiln, cli_test_plugins\n"
        "b = kiln.Builder(); net = b.create_network()\n"
        "with kiln.net_guard(net):\n"
        "    x = kiln.Tensor(name='x', shape=(-1, 4), dtype='float32', dim_range={'n': [(1, 2, 8)], 'c': [4]})\n"
        "    cli_test_plugins.TimesTwo()(x).mark_output('y')\n"
        "b.build_engine(net).save('times_two.engine')\n")
    subprocess.run([sys.executable, "-c", build], cwd=tmp_path, env=env, check=True, timeout=300)
    return tmp_path, env


def test_run_with_import(plugin_engine):
    cwd, env = plugin_engine
    bare = _kiln(["run", "times_two.engine"], cwd, env)
    assert bare.returncode == 1 and "--import cli_test_plugins" in bare.stderr
    proc = _kiln(["run", "times_two.engine", "--import", "cli_test_plugins", "--shape", "x=3x4",
                  "--output-dir", "out"], cwd, env)
    assert proc.returncode == 0, proc.stderr
    assert "input  x: float32 [3, 4]" in proc.stdout and "output y: float32 [3, 4]" in proc.stdout
    import numpy as np
    y = np.load(cwd / "out" / "y.npy")
    assert y.shape == (3, 4)
    # --import-recorded: the module the engine records, imported because the user asked.
    proc = _kiln(["run", "--import-recorded", "times_two.engine"], cwd, env)
    assert proc.returncode == 0, proc.stderr


def test_bench_with_import_on_the_seed_example(tmp_path):
    env = subprocess_env()
    build = subprocess.run([sys.executable, str(EXAMPLE / "build_lookup.py")], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-2000:]
    engine = next(tmp_path.glob("tmp/float32/*.engine"))
    device = ["--device", "cuda:0"] if HAVE_GPU else []   # compiled Triton needs GPU tensors
    proc = _kiln(["bench", str(engine), "--import", "plugin_lib", "--iterations", "3", "--warmup", "1"] + device,
                 tmp_path, env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for word in ("engine", "device", "mode", "runs", "mean (", "p50 (", "p99 ("):
        assert word in proc.stdout, proc.stdout
    # The same table as for a native engine: the C tool's own bench on one.
    native = subprocess.run([os.path.join(BUILD, "kiln"), "bench", "--help"], capture_output=True, text=True)
    assert native.returncode == 0


def test_inspect_lists_each_plugin_once_with_its_layers_and_attributes(tmp_path):
    module = PLUGIN_MODULE + '''
@kiln.plugin("AddTable", namespace="cli_test")
class AddTable(kiln.PluginBase):
    def __init__(self, table, label):
        super().__init__()
        self.table = table
        self.label = label
    def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
        return inputs[0]
    def forward(self, inputs, outputs):
        convert_to_numpy(outputs[0])[...] = convert_to_numpy(inputs[0]) + self.table
'''
    (tmp_path / "cli_test_plugins2.py").write_text(module)
    env = subprocess_env()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")])
    build = (
        "import numpy as np, kiln, cli_test_plugins2 as p\n"
        "b = kiln.Builder(); net = b.create_network()\n"
        "with kiln.net_guard(net):\n"
        "    x = kiln.Tensor(name='x', shape=(2, 4), dtype='float32')\n"
        "    y = p.TimesTwo()(p.TimesTwo()(x))\n"
        "    p.AddTable(np.ones((2, 4), np.float32), 'bias')(y).mark_output('z')\n"
        "b.build_engine(net).save('three.engine')\n")
    subprocess.run([sys.executable, "-c", build], cwd=tmp_path, env=env, check=True, timeout=300)
    proc = _kiln(["inspect", "three.engine"], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert text.count("cli_test::TimesTwo version 1") == 1, text
    assert "layer 0: (no attributes)" in text and "layer 1: (no attributes)" in text
    assert "layer 2: table=float32[2, 4], label='bias'" in text, text
