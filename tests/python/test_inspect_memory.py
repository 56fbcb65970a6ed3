"""`kiln inspect` reports the activation memory at each profile's opt and max
shapes.  The reference is the builder itself: an engine built with a single
profile whose maxima are another engine's opt (or max) values plans exactly
that arena, so the reported numbers must equal its stored arena."""
import json
import subprocess
import sys
from collections import OrderedDict

import kiln
from conftest import subprocess_env


def _engine(tmp_path, name, ranges):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 64), dtype="float32",
                        dim_range=OrderedDict([("n", ranges), ("h", [64] * len(ranges))]))
        y = kiln.relu(kiln.relu(x))
        kiln.relu(y).mark_output("y")
    path = tmp_path / name
    path.write_bytes(bytes(builder.build_engine(net)))
    return path


def _inspect(path, *flags):
    r = subprocess.run([sys.executable, "-m", "kiln.cli", "inspect", *flags, str(path)], env=subprocess_env(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def _memory(path):
    return json.loads(_inspect(path, "--json"))["memory"]


def test_inspect_memory_at_opt_and_max_matches_builder(tmp_path):
    two = _engine(tmp_path, "two.engine", [(1, 4, 1024), (1, 16, 32)])
    mem = _memory(two)
    per = {entry["profile"]: entry for entry in mem["activation_bytes"]}
    assert sorted(per) == [0, 1]
    assert per[0]["max"] == mem["arena_bytes"]  # profile 0's maxima dominate the stored plan
    assert per[0]["opt"] == _memory(_engine(tmp_path, "opt4.engine", [(1, 4, 4)]))["arena_bytes"]
    assert per[1]["opt"] == _memory(_engine(tmp_path, "opt16.engine", [(1, 16, 16)]))["arena_bytes"]
    assert per[1]["max"] == _memory(_engine(tmp_path, "max32.engine", [(1, 32, 32)]))["arena_bytes"]
    assert per[0]["opt"] < per[0]["max"]
    text = _inspect(two)
    assert f"{per[0]['opt']} bytes at profile 0's opt shapes, {per[0]['max']} at its max" in text, text
    assert f"{per[1]['opt']} bytes at profile 1's opt shapes, {per[1]['max']} at its max" in text, text
