"""Ahead-of-time plugins (kiln.aot, kiln::TritonAOT).

On any machine: building compiles the Triton kernels for sm_90 (triton ships
ptxas, no GPU needed), the engine holds kiln::TritonAOT and no Python plugin,
and a fresh process that never imports the plugin's module loads it; bad AOT
definitions raise errors naming the plugin and the kernel.  With a GPU the
engine also runs and must match torch and the JIT (forward) path."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import triton
import triton.language as tl

import kiln

from conftest import EXAMPLE, HAVE_GPU, subprocess_env

gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU that kiln and torch can use")


@triton.jit
def _scale_kernel(x_ptr, y_ptr, n, factor, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    tl.store(y_ptr + offs, x * factor, mask=mask)


def _numel(shape):
    n = 1
    for d in shape:
        n = n * d
    return n


@kiln.plugin("AotScale", namespace="test_aot")
class AotScale(kiln.PluginBase):
    """y = x * factor, with a JIT forward and an AOT launch of the same kernel."""

    def __init__(self, factor, mode="ok"):
        super().__init__()
        self.factor = factor
        self.mode = mode      # which broken definition to produce, for the error tests

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x = kiln.convert_to_torch_tensor(inputs[0])
        y = kiln.convert_to_torch_tensor(outputs[0])
        n = x.numel()
        stream = torch.cuda.ExternalStream(self.current_stream) if x.is_cuda and self.current_stream else None
        with (torch.cuda.stream(stream) if stream is not None else _null()):
            _scale_kernel[(triton.cdiv(n, 256),)](x, y, n, float(self.factor), BLOCK=256)

    def aot(self, inputs, outputs):
        x, y = inputs[0], outputs[0]
        n = _numel(x.shape)
        args = [x, y, n, float(self.factor)]
        constexprs = {"BLOCK": 256}
        grid = (kiln.cdiv(n, 256),)
        if self.mode == "few_args":
            args = args[:3]
        elif self.mode == "no_constexpr":
            constexprs = {}
        elif self.mode == "bad_constexpr":
            constexprs = {"BLOCK": 256, "WIDTH": 4}
        elif self.mode == "foreign_tensor":
            args[0] = kiln.SymTensor(x.dtype, x.shape)
        elif self.mode == "other_dim":
            grid = (inputs[1].shape[0] * 0 + self._other,)
        elif self.mode == "not_launch":
            return ["nope"]
        elif self.mode == "big_grid":
            grid = (1, 1, 1, 1)
        return [kiln.AotLaunch(_scale_kernel, args=args, grid=grid, constexprs=constexprs, num_warps=4)]


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _scale_network(factor=2.0, mode="ok", prefer_aot=True, target="sm_90"):
    builder = kiln.Builder()
    net = builder.create_network(prefer_aot=prefer_aot, aot_target=target)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 8), dtype="float32",
                        dim_range=OrderedDict([("rows", [(1, 4, 64)]), ("cols", [8])]))
        AotScale(factor, mode)(x).mark_output("y")
    return builder, net


_NP_DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": np.int16}


def _build_example(out, dtype, vocab, hidden, tokens, target="sm_90"):
    """Run examples/python_plugin/build_lookup_aot.py in its own process (it
    imports plugin_lib, whose plugin names other tests register too)."""
    cmd = [sys.executable, "build_lookup_aot.py", "--out", str(out), "--dtype", dtype, "--vocab", str(vocab),
           "--hidden", str(hidden), "--tokens", str(tokens)] + (["--target", target] if target else [])
    r = subprocess.run(cmd, cwd=EXAMPLE, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    path = Path(out) / "lookup_aot.engine"
    return path, path.stat().st_size


def _example_data(out, dtype, vocab, hidden, tokens):
    """(index, table, expected) as torch tensors from the files it wrote."""
    npd = _NP_DTYPES[dtype]
    index = torch.from_numpy(np.fromfile(Path(out) / "index.bin", dtype=np.int32))
    table = torch.from_numpy(np.fromfile(Path(out) / "table.bin", dtype=npd).reshape(vocab, hidden))
    expected = torch.from_numpy(np.fromfile(Path(out) / "expected.bin", dtype=npd).reshape(tokens, hidden))
    if dtype == "bfloat16":
        table, expected = table.view(torch.bfloat16), expected.view(torch.bfloat16)
    return index, table, expected


def _cli():
    """The kiln command-line tool: $KILN_CLI (scripts/test.sh sets it), else
    the one in $KILN_BUILD_DIR, else one on PATH; None skips those checks."""
    build = os.environ.get("KILN_BUILD_DIR")
    candidates = [Path(os.environ["KILN_CLI"])] if os.environ.get("KILN_CLI") else []
    for p in candidates + ([Path(build) / "kiln"] if build else []):
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("kiln")


# --- CPU machine: compile, store, load without Python -----------------------------------

def test_aot_engine_holds_kernels_not_python(tmp_path):
    builder, net = _scale_network()
    engine = bytes(builder.build_engine(net, builder.create_builder_config()))
    e = kiln.runtime.load_engine(engine)
    plugins = e.plugins()
    assert [p[:3] for p in plugins] == [("kiln", "TritonAOT", "1")]
    assert plugins[0][3] == __name__
    # The cubin is in the engine.
    assert b"_scale_kernel" in engine
    # Running it needs a CUDA device: a CPU session says so, naming the plugin.
    if not HAVE_GPU:
        with pytest.raises(kiln.Error, match="TritonAOT.*does not run on the CPU"):
            kiln.Session.from_serialized_engine(engine)


def test_prefer_aot_false_keeps_the_python_plugin():
    builder, net = _scale_network(prefer_aot=False)
    engine = bytes(builder.build_engine(net, builder.create_builder_config()))
    plugins = kiln.runtime.load_engine(engine).plugins()
    assert [p[:3] for p in plugins] == [("test_aot", "AotScale", "1")]
    if not HAVE_GPU:   # the JIT path runs on the CPU under Triton's interpreter
        s = kiln.Session.from_serialized_engine(engine)
        x = np.arange(16, dtype=np.float32).reshape(2, 8)
        np.testing.assert_allclose(s({"x": x})["y"], x * 2.0)


def test_example_engine_loads_in_a_process_without_python_plugins(tmp_path):
    path, size = _build_example(tmp_path, "float16", 32, 48, 10, "sm_90")
    assert size > 0 and path.is_file()
    # The stored expectation is torch's lookup of the stored data.
    meta = (tmp_path / "meta.txt").read_text().split()
    assert meta == ["10", "32", "48", "float16"]
    index = torch.from_numpy(np.fromfile(tmp_path / "index.bin", dtype=np.int32))
    table = torch.from_numpy(np.fromfile(tmp_path / "table.bin", dtype=np.float16).reshape(32, 48))
    expected = np.fromfile(tmp_path / "expected.bin", dtype=np.float16).reshape(10, 48)
    want = torch.zeros(10, 48, dtype=torch.float16)
    for i, t in enumerate(index.tolist()):
        if 0 <= t < 32:
            want[i] = table[t]
    assert (index < 0).any() and (index >= 32).any()
    np.testing.assert_array_equal(expected, want.numpy())
    # A fresh process that imports kiln only (no plugin_lib, no triton, no torch).
    code = (
        "import sys, kiln\n"
        f"e = kiln.runtime.load_engine({str(path)!r})\n"
        "print(e.plugins())\n"
        "assert 'plugin_lib' not in sys.modules and 'triton' not in sys.modules, sorted(sys.modules)\n"
        "print('loaded')\n")
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "TritonAOT" in r.stdout and "loaded" in r.stdout
    cli = _cli()
    if cli:
        r = subprocess.run([cli, "inspect", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "kiln::TritonAOT" in r.stdout
        assert "needs Python: no" in r.stdout
        assert "AOT kernels: lookup_kernel (sm_90)" in r.stdout, r.stdout
        r = subprocess.run([cli, "inspect", "--json", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["plugins"][0]["aot_kernels"] == "lookup_kernel (sm_90)"


def test_python_plugin_engine_names_the_plugin_that_needs_python(tmp_path):
    builder, net = _scale_network(prefer_aot=False)
    path = tmp_path / "jit.engine"
    path.write_bytes(bytes(builder.build_engine(net, builder.create_builder_config())))
    code = f"import kiln\nkiln.runtime.load_engine({str(path)!r})\n"
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "test_aot::AotScale" in r.stderr and __name__ in r.stderr


def _capture_fields(monkeypatch):
    """A list that receives the kiln::TritonAOT fields of each AOT layer added."""
    import kiln.aot as aot
    captured = []
    real = aot.build_fields
    monkeypatch.setattr(aot, "build_fields", lambda *a: captured.append(real(*a)) or captured[-1])
    return captured


def test_fields_name_expressions_of_the_networks_pool(monkeypatch):
    # The grid, the scalar arguments and the output shapes are the pool's own
    # expressions (the engine evaluates them with its others), not a copy.
    captured = _capture_fields(monkeypatch)
    builder, net = _scale_network()
    pool = net.exprs
    fields = captured[0]
    assert "exprs" not in fields
    kernel = fields["kernels"][0]
    n_expr = kernel["params"][2]["expr"]
    assert pool.format(n_expr) == "(rows * 8)"
    assert pool.format(kernel["grid"][0]) == "ceildiv((rows * 8), 256)"
    assert [pool.is_const(g) for g in kernel["grid"][1:]] == [1, 1]
    assert [pool.format(e) for e in fields["outputs"][0]["shape"]] == ["rows", "8"]
    for rows in (1, 5, 64):
        assert pool.eval(kernel["grid"][0], [rows]) == -(-(rows * 8) // 256)
    # An expression of any shape: floor/ceil divisions, min, all one program.
    net = kiln.Builder().create_network()
    pool = net.exprs
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(-1, 16), dtype="float32",
                        dim_range=OrderedDict([("n", [(1, 4, 64)]), ("h", [16])]))
    n = a.shape[0]
    e = ((n * 3 + 5) / 4 - kiln.sym_min(n, 7)) // 2
    from kiln.aot import _expr
    root = _expr(pool, e, "test", "e")
    assert root == e._expr_in(pool)
    for v in (1, 5, 13, 64):
        assert pool.eval(root, [v]) == ((-((-(v * 3 + 5)) // 4)) - min(v, 7)) // 2
    with pytest.raises(TypeError, match="plugin test: e:"):
        _expr(pool, "seven", "test", "e")


@pytest.mark.parametrize("mode, message", [
    ("few_args", "args has 3 entries but the kernel has 4 non-constexpr parameters"),
    ("no_constexpr", "constexprs lacks \\['BLOCK'\\]"),
    ("bad_constexpr", "'WIDTH', which is not a tl.constexpr parameter"),
    ("foreign_tensor", "neither one of aot\\(\\)'s inputs nor one of its outputs"),
    ("not_launch", "must return AotLaunch objects"),
    ("big_grid", "grid has 4 entries"),
])
def test_bad_aot_definitions_name_the_plugin(mode, message):
    with pytest.raises((TypeError, ValueError), match="test_aot::AotScale.*" + message):
        _scale_network(mode=mode)


def test_dimension_outside_the_inputs_is_an_expression_like_any(monkeypatch):
    # The engine evaluates every expression of its pool from the network's
    # dimensions, so a launch may use a dimension no input of the plugin has.
    captured = _capture_fields(monkeypatch)
    builder = kiln.Builder()
    net = builder.create_network(prefer_aot=True, aot_target="sm_90")
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 8), dtype="float32",
                        dim_range=OrderedDict([("rows", [(1, 4, 64)]), ("cols", [8])]))
        z = kiln.Tensor(name="z", shape=(-1,), dtype="float32", dim_range=OrderedDict([("other", [(1, 2, 8)])]))
        p = AotScale(2.0, "other_dim")
        p._other = z.shape[0]
        p(x, x)
    assert net.exprs.format(captured[0]["kernels"][0]["grid"][0]) == "other"


def test_bad_target_and_config_mismatch():
    with pytest.raises(ValueError, match="not like 'sm_90'"):
        kiln.Builder().create_network(aot_target="volta")
    builder, net = _scale_network(target="sm_90")
    with pytest.raises(ValueError, match="compiled ahead of time for sm_90.*sm_80"):
        builder.build_engine(net, builder.create_builder_config(aot_target="sm_80"))
    with pytest.raises(ValueError, match="prefer_aot=False"):
        builder.build_engine(net, builder.create_builder_config(prefer_aot=False))
    builder.build_engine(net, builder.create_builder_config(aot_target="sm_90"))
    with pytest.raises(ValueError, match="names no architecture"):
        kiln.Builder().create_network(aot_target=" , ")


def test_several_targets_compile_every_kernel_for_each():
    builder, net = _scale_network(target="sm_80, sm_90")
    assert net.aot_target == "sm_90,sm_80"   # newest first: the order the runtime tries them in
    with pytest.raises(ValueError, match="compiled ahead of time for sm_90,sm_80.*sm_90"):
        builder.build_engine(net, builder.create_builder_config(aot_target="sm_90"))
    engine = bytes(builder.build_engine(net, builder.create_builder_config(aot_target=["sm_90", "sm_80"])))
    assert b"sm_80" in engine and b"sm_90" in engine
    # Each image is a real compilation for its architecture.
    assert b".target sm_90" in engine and b".target sm_80" in engine
    cli = _cli()
    if cli:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "scale.engine")
            with open(path, "wb") as f:
                f.write(engine)
            r = subprocess.run([cli, "inspect", path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "AOT kernels: _scale_kernel (sm_90, sm_80)" in r.stdout, r.stdout


def test_corrupt_fields_are_refused_at_build():
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(4,), dtype="float32")
    base = {"plugin": {"namespace": "t", "name": "P", "version": "1", "module": ""}, "inputs": 1,
            "outputs": [{"dtype": 0, "shape": [x.shape[0]._expr_in(net.exprs)]}],
            "kernels": [{"name": "k", "cubin": b"\x7fELF", "ptx": "", "num_warps": 4, "grid": [0, 0, 0],
                         "params": [{"kind": "input", "index": 0}]}]}
    ids = net._net.add_plugin("kiln", "TritonAOT", "1", "", base, [x._id], 1, None)
    assert len(ids) == 1

    def broken(path, value, message):
        import copy
        f = copy.deepcopy(base)
        obj = f
        for k in path[:-1]:
            obj = obj[k]
        obj[path[-1]] = value
        with pytest.raises(kiln.Error, match=message):
            net._net.add_plugin("kiln", "TritonAOT", "1", "", f, [x._id], 1, None)

    broken(["kernels", 0, "grid"], [0, 0, 5000], "AOT plugin t::P version 1: kernel 0 'k' grid\\[2\\]: expression 5000 "
           "does not exist in the engine's expression pool")
    broken(["kernels", 0, "grid"], [0, 0, -1], "kernel 0 'k' grid\\[2\\] is not an expression index")
    broken(["kernels", 0, "params"], [{"kind": "input", "index": 1}], "kernel 0 'k' param 0: field 'index' is 1")
    broken(["kernels", 0, "params"], [{"kind": "f16", "expr": 0}], "kind 'f16' is not")
    broken(["kernels", 0, "num_warps"], 64, "field 'num_warps' is 64")
    broken(["kernels", 0, "cubin"], b"", "neither a cubin nor PTX")
    broken(["outputs"], [{"dtype": 0, "shape": [7000]}], "output 0 axis 0: expression 7000 does not exist")
    broken(["kernels", 0, "params"], [{"kind": "i32", "expr": 7000}], "kernel 0 'k' param 0: expression 7000")
    # More compiled images of a kernel (other GPU architectures) are checked the same way.
    image = {"name": "k", "cubin": b"\x7fELF", "target": "sm_80", "num_warps": 4}
    good = dict(base, kernels=[dict(base["kernels"][0], target="sm_90", images=[image])])
    assert len(net._net.add_plugin("kiln", "TritonAOT", "1", "", good, [x._id], 1, None)) == 1
    broken(["kernels", 0, "images"], "sm_80", "kernel 0 'k': 'images' must be a list")
    broken(["kernels", 0, "images"], [dict(image, cubin=b"")], "kernel 0 image 1 'k' for sm_80 has neither")
    broken(["kernels", 0, "images"], [dict(image, num_warps=0)], "kernel 0 image 1 'k' for sm_80: field 'num_warps'")
    broken(["kernels", 0, "images"], [dict(image, name="")], "kernel 0 image 1: 'name'")
    broken(["kernels", 0, "images"], [image] * 8, "at most 7 more")


# --- GPU: run it ---------------------------------------------------------------------------

@gpu
def test_aot_scale_runs_and_matches_jit():
    x = torch.randn(37, 8, device="cuda")
    outs = {}
    for prefer in (True, False):
        builder, net = _scale_network(factor=3.0, prefer_aot=prefer, target=None)
        engine = bytes(builder.build_engine(net, builder.create_builder_config()))
        s = kiln.Session.from_serialized_engine(engine, device="cuda")
        outs[prefer] = torch.as_tensor(s({"x": x})["y"]).clone()
    torch.cuda.synchronize()
    torch.testing.assert_close(outs[True], x * 3.0)
    torch.testing.assert_close(outs[True], outs[False])


@gpu
def test_engine_for_a_newer_gpu_says_what_it_was_built_for():
    # Kernels compiled for an architecture this GPU lacks (sm_100 cubin and
    # PTX on an sm_90 H100) cannot load: the error names the plugin, the
    # kernel and the target, and says to rebuild.
    major, _ = torch.cuda.get_device_capability()
    target = "sm_100" if major < 10 else "sm_120" if major < 12 else None
    if target is None:
        pytest.skip("no architecture newer than this GPU's to build for")
    try:
        builder, net = _scale_network(target=target)
        engine = bytes(builder.build_engine(net, builder.create_builder_config()))
    except RuntimeError as e:
        pytest.skip(f"this Triton cannot compile for {target}: {e}")
    x = torch.randn(4, 8, device="cuda")
    with pytest.raises(kiln.Error, match=f"TritonAOT.*_scale_kernel.*compiled for {target}.*aot_target"):
        s = kiln.Session.from_serialized_engine(engine, device="cuda")
        s({"x": x})


@gpu
def test_engine_for_several_gpus_runs_the_image_for_this_one():
    major, minor = torch.cuda.get_device_capability()
    newer = "sm_100" if major < 10 else "sm_120" if major < 12 else None
    targets = f"{newer},sm_{major}{minor}" if newer else f"sm_{major}{minor},sm_80"
    try:
        builder, net = _scale_network(factor=5.0, target=targets)
        engine = bytes(builder.build_engine(net, builder.create_builder_config()))
    except RuntimeError as e:
        pytest.skip(f"this Triton cannot compile for {targets}: {e}")
    x = torch.randn(37, 8, device="cuda")
    y = kiln.Session.from_serialized_engine(engine, device="cuda")({"x": x})["y"]
    torch.testing.assert_close(torch.as_tensor(y), x * 5.0)


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_aot_lookup_matches_torch(tmp_path, dtype):
    tokens, vocab, hidden = 33, 50, 200
    path, _ = _build_example(tmp_path, dtype, vocab, hidden, tokens, None)
    index, table, expected = _example_data(tmp_path, dtype, vocab, hidden, tokens)
    s = kiln.Session.from_file(str(path), device="cuda")
    got = torch.as_tensor(s({"x": index.cuda(), "y": table.cuda()})["output"])
    torch.cuda.synchronize()
    assert torch.equal(got.cpu(), expected)
    # fewer tokens: the grid follows the shape
    got = torch.as_tensor(s({"x": index[:5].cuda(), "y": table.cuda()})["output"])
    torch.cuda.synchronize()
    assert torch.equal(got.cpu(), expected[:5])


@gpu
def test_aot_engine_runs_in_a_process_without_python_plugins(tmp_path):
    path, _ = _build_example(tmp_path, "float16", 32, 48, 10, None)
    code = (
        "import sys, numpy as np, torch, kiln\n"
        f"d = {str(tmp_path)!r}\n"
        "idx = torch.from_numpy(np.fromfile(d + '/index.bin', dtype=np.int32)).cuda()\n"
        "tab = torch.from_numpy(np.fromfile(d + '/table.bin', dtype=np.float16).reshape(32, 48)).cuda()\n"
        "exp = np.fromfile(d + '/expected.bin', dtype=np.float16).reshape(10, 48)\n"
        "s = kiln.Session.from_file(d + '/lookup_aot.engine', device='cuda')\n"
        "out = torch.as_tensor(s({'x': idx, 'y': tab})['output']).cpu().numpy()\n"
        "assert 'plugin_lib' not in sys.modules and 'triton' not in sys.modules\n"
        "assert (out == exp).all()\n"
        "print('matches')\n")
    r = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "matches" in r.stdout


@kiln.plugin("SeedStyleMutation", namespace="test_aot")
class SeedStyleMutation(kiln.PluginBase):
    """shape_dtype_inference assigns into inputs[1].shape, as the seed's
    example does; aot() must still see the inputs' own shapes."""

    def __init__(self):
        super().__init__()

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        shape = inputs[1].shape
        shape[0] = inputs[0].shape[0]
        return kiln.SymTensor(inputs[1].dtype, shape)

    def forward(self, inputs, outputs):
        raise AssertionError("not run in this test")

    def aot(self, inputs, outputs):
        n = inputs[1].shape[0] * inputs[1].shape[1]     # b's own rows, not a's
        return [kiln.AotLaunch(_scale_kernel, args=[inputs[1], outputs[0], n, 2.0],
                               grid=(kiln.cdiv(n, 128),), constexprs={"BLOCK": 128})]


def test_aot_sees_inputs_unchanged_by_shape_inference(monkeypatch):
    captured = _capture_fields(monkeypatch)
    net = kiln.Builder().create_network(prefer_aot=True, aot_target="sm_90")
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(-1, 16), dtype="float32",
                        dim_range=OrderedDict([("n", [(1, 4, 64)]), ("w", [16])]))
        b = kiln.Tensor(name="b", shape=(-1, 16), dtype="float32",
                        dim_range=OrderedDict([("m", [(1, 4, 64)]), ("w", [16])]))
        SeedStyleMutation()(a, b)
    param = captured[0]["kernels"][0]["params"][2]
    assert net.exprs.format(param["expr"]) in ("(m * 16)", "(16 * m)")     # b's own rows, not a's
