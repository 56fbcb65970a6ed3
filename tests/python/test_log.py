"""kiln's log reaches Python's logging: at info a build reports each layer's
shapes and the memory plan, and a session its backend; the level is
KILN_LOG_LEVEL or kiln.set_log_level, and nothing is said at the default
level (warning)."""
import logging
import subprocess
import sys

import numpy as np

import kiln
from kiln.runtime import Session

from conftest import subprocess_env


def _build_and_run():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 3), dtype="float32", dim_range={"batch": [(1, 2, 4)], "c": [3]})
        kiln.relu(kiln.matmul(x, kiln.constant(np.ones((3, 2), np.float32)))).mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device="cpu")
    s({"x": np.ones((2, 3), np.float32)})


def test_info_reports_layers_memory_and_backend(caplog):
    old = kiln.get_log_level()
    try:
        kiln.set_log_level("info")
        with caplog.at_level(logging.INFO, logger="kiln"):
            _build_and_run()
        text = caplog.text
        assert "build: layer 0 matmul: x float32 [batch, 3]" in text
        assert "-> layer0.out0 float32 [batch, 2]" in text
        assert "build: layer 1 unary relu:" in text
        assert "build: memory plan: 1 activation tensor(s)" in text and "arena" in text
        assert "context: backend cpu, device cpu:0" in text
        assert all(r.name == "kiln" and r.levelno == logging.INFO for r in caplog.records if "build:" in r.message)
    finally:
        kiln.set_log_level(old)


def test_default_level_is_quiet_and_env_sets_it(caplog):
    assert kiln.get_log_level() == "warning"
    with caplog.at_level(logging.DEBUG, logger="kiln"):
        _build_and_run()
    assert not [r for r in caplog.records if r.name == "kiln"]
    env = subprocess_env()
    env["KILN_LOG_LEVEL"] = "info"
    code = ("import logging, sys, kiln; logging.basicConfig(stream=sys.stdout, level=logging.INFO)\n"
            "print(kiln.get_log_level())\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "info"
