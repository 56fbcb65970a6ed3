"""The Python package's shape (issue 9, item 7): no import cycles, enums
from the extension, no swallowed arguments, an honest precision, and
`import kiln` without torch."""
import ast
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

import kiln
from kiln import PluginBase, SymTensor
from kiln.compat.trtllm import TRTLLM_IGNORED_PLUGIN_ARGS, trtllm_plugin
from kiln.network import TRTLLM_IGNORED_TENSOR_ARGS

from conftest import ROOT, subprocess_env

PKG = ROOT / "python" / "kiln"


def _kiln_imports(path):
    """Names of the kiln modules `path` imports, at any depth (functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
    return found


def test_no_import_cycle_among_package_modules():
    modules = {p.stem: _kiln_imports(p) for p in PKG.glob("*.py") if p.stem != "__init__"}
    graph = {m: {d for d in deps if d in modules} for m, deps in modules.items()}
    assert "symbolic" in graph and not graph["symbolic"] - {"_native"}

    def visit(m, path):
        for d in graph[m]:
            assert d not in path, f"import cycle: {' -> '.join(path + [d])}"
            visit(d, path + [d])

    for m in graph:
        visit(m, [m])


def test_no_private_names_used_across_modules():
    for p in PKG.glob("*.py"):
        tree = ast.parse(p.read_text())
        aliases = {}   # local name -> kiln module imported as `from . import mod as name`
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module not in (None, "_native"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{p.name} imports private {private} from .{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None:
                aliases.update({a.asname or a.name: a.name for a in node.names if not a.name.startswith("_")})
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
                    node.value.id in aliases and node.attr.startswith("_"):
                raise AssertionError(f"{p.name}:{node.lineno} uses private {aliases[node.value.id]}.{node.attr}")


def test_enums_come_from_the_extension_not_copies():
    for p in PKG.glob("*.py"):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Tuple) and \
                    isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "range":
                raise AssertionError(f"{p.name}:{node.lineno} copies an enum with range()")
    k = kiln._kiln
    assert (k.EXPR_ADD, k.EXPR_LT, k.EXPR_OP_COUNT) == (2, 10, 11)
    assert (k.BINARY_ADD, k.BINARY_MAX, k.UNARY_RELU, k.UNARY_SQRT) == (0, 5, 0, 5)
    # the layer functions use them: a network built with each op runs as numpy says
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(4,), dtype="float32")
        b = kiln.Tensor(name="b", shape=(4,), dtype="float32")
        kiln.maximum(a, b).mark_output("max")
        kiln.div(a, b).mark_output("div")
        kiln.sqrt(b).mark_output("sqrt")
    s = kiln.Session.from_serialized_engine(kiln.Builder().build_engine(net), device="cpu")
    x, y = np.array([1, -2, 3, 9], np.float32), np.array([4, 1, 2, 9], np.float32)
    out = s({"a": x, "b": y})
    np.testing.assert_array_equal(out["max"], np.maximum(x, y))
    np.testing.assert_allclose(out["div"], x / y, rtol=1e-6)
    np.testing.assert_allclose(out["sqrt"], np.sqrt(y), rtol=1e-6)


def test_import_kiln_does_not_import_torch():
    code = ("import sys, kiln, kiln.compat.trtllm\n"
            "assert 'torch' not in sys.modules, 'import kiln imported torch'\n"
            "import numpy as np\n"
            "w = kiln.wrap_tensor(np.zeros(3, np.float32))\n"
            "assert 'torch' not in sys.modules\n"
            "import torch\n"
            "assert w.dtype == torch.float32, w.dtype\n"      # torch dtypes once torch is there
            "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_tensor_refuses_unknown_keywords_and_lists_ignored_ones():
    assert TRTLLM_IGNORED_TENSOR_ARGS == ("is_network_input", "location")
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        with pytest.raises(TypeError, match="'dim_rnage'"):
            kiln.Tensor(name="x", shape=(-1,), dtype="float32", dim_rnage=OrderedDict([("n", [(1, 2, 3)])]))
        t = kiln.Tensor(name="y", shape=(2,), dtype="float32", is_network_input=True, location=None)
        assert t.shape == (2,)


def test_trtllm_plugin_refuses_unknown_keywords():
    assert TRTLLM_IGNORED_PLUGIN_ARGS == ("deterministic",)
    with pytest.raises(TypeError, match="'plugin_nmespace'"):
        trtllm_plugin("Typo", plugin_nmespace="x")

    @trtllm_plugin("Det", plugin_namespace="test_package", deterministic=True)
    class Det(PluginBase):
        def shape_dtype_inference(self, inputs) -> SymTensor:
            return SymTensor(inputs[0].dtype, inputs[0].shape)

        def forward(self, inputs, outputs):
            kiln.convert_to_numpy(outputs[0])[...] = kiln.convert_to_numpy(inputs[0])

    try:
        assert Det._kiln_key == ("test_package", "Det", "1")
    finally:
        kiln.unregister_plugin(Det)


def _net(dtype):
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(4,), dtype=dtype)
        kiln.relu(x * kiln.constant(np.full(4, 2, dtype), dtype=dtype, name="two")).mark_output("y")
    return net


def test_builder_precision_is_checked_not_ignored():
    b = kiln.Builder()
    with pytest.raises(ValueError, match="precision 'int8' is not a float type"):
        b.create_builder_config(precision="int8")
    with pytest.raises(ValueError, match="tensor 'x' is float32 and kiln does not convert"):
        b.build_engine(_net("float32"), b.create_builder_config(precision="float16"))
    # a float16 network with precision float16 builds and computes in float16
    s = kiln.Session.from_serialized_engine(b.build_engine(_net("float16"), b.create_builder_config(
        precision="float16")), device="cpu")
    x = np.array([-1, 0.5, 3, 1000], np.float16)
    y = s({"x": x})["y"]
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, np.maximum(x * np.float16(2), 0))
    for p in ("float32", None):   # no conversion asked: any network
        b.build_engine(_net("float16"), b.create_builder_config(precision=p))
    with pytest.raises(TypeError, match="config must be a kiln BuilderConfig"):
        b.build_engine(_net("float32"), {"precision": "float32"})
