"""The `kiln` command pip installs (kiln.cli): it finds the C tool and execs it."""
import subprocess
import sys
from collections import OrderedDict

import kiln
from kiln import cli
from conftest import subprocess_env


def test_kiln_command_runs_the_c_tool(tmp_path):
    assert cli.tool_path() is not None, "the kiln tool is neither in the package's bin/ nor in $KILN_BUILD_DIR"
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="tokens", shape=(-1, 4), dtype="float32",
                        dim_range=OrderedDict([("n", [(1, 2, 8)]), ("h", [4])]))
        kiln.relu(x).mark_output("y")
    path = tmp_path / "relu.engine"
    path.write_bytes(bytes(builder.build_engine(net)))
    cmd = [sys.executable, "-m", "kiln.cli"]
    r = subprocess.run(cmd + ["inspect", str(path)], env=subprocess_env(), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "tokens" in r.stdout and "relu" in r.stdout
    r = subprocess.run(cmd + ["inspect", str(tmp_path / "missing.engine")], env=subprocess_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "missing.engine" in r.stderr
    r = subprocess.run(cmd + ["--version"], env=subprocess_env(), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and kiln.__version__ in r.stdout, (r.stdout, r.stderr)
