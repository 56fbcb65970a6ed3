"""Careless plugins and callers (issue 10, items 8, 9, 11): read-only plugin
inputs, eager calls on strided tensors and parameters, and the small
argument checks.  Each test fails on the code before its fix."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kiln
from kiln import PluginBase, SymTensor, plugin
from kiln.runtime import Engine, Session, TensorInfo

from conftest import ROOT

# --- item 8: a plugin cannot write its inputs -------------------------------------

ATTEMPTS = []   # (how, what happened) per write attempt, filled by forward


def _try_write(how, fn):
    try:
        fn()
        ATTEMPTS.append((how, "wrote"))
    except (ValueError, RuntimeError, BufferError) as e:
        ATTEMPTS.append((how, type(e).__name__))


@plugin("AddWeight", namespace="test_rel")
class AddWeight(PluginBase):
    """out = x + w; first tries to double w (inputs[1], a weight) every way
    numpy and DLPack reach its memory (torch: see the test below)."""

    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x, w = inputs
        assert x.readonly and w.readonly and not outputs[0].readonly
        _try_write("numpy", lambda: kiln.convert_to_numpy(w).__imul__(2))
        _try_write("asarray", lambda: np.asarray(w).__imul__(2))
        _try_write("np.from_dlpack", lambda: np.from_dlpack(w).__imul__(2))
        _try_write("legacy dlpack", lambda: w.__dlpack__())
        assert w.__array_interface__["data"][1] is True
        assert outputs[0].__array_interface__["data"][1] is False
        y = kiln.convert_to_numpy(outputs[0])
        y[...] = kiln.convert_to_numpy(x) + kiln.convert_to_numpy(w)


@pytest.fixture(scope="module")
def weight_engine(tmp_path_factory):
    w = np.arange(8, dtype=np.float32).reshape(2, 4)
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(2, 4), dtype="float32")
        AddWeight()(x, kiln.constant(w, name="w")).mark_output("y")
    blob = kiln.Builder().build_engine(net)
    path = tmp_path_factory.mktemp("rel") / "weights.engine"
    blob.save(path)
    return w, bytes(blob), path


@pytest.mark.parametrize("source", ["memory", "mapped"])
def test_plugin_cannot_write_its_inputs_weights_stay(weight_engine, source):
    w, data, path = weight_engine
    engine = Engine.from_memory(data) if source == "memory" else Engine.from_file(str(path))
    s = Session.from_engine(engine, device="cpu")
    x = np.ones((2, 4), np.float32)
    for _ in range(3):   # weights unchanged run after run
        ATTEMPTS.clear()
        np.testing.assert_array_equal(s({"x": x})["y"], x + w)
        assert dict(ATTEMPTS) == {"numpy": "ValueError", "asarray": "ValueError", "np.from_dlpack": "ValueError",
                                  "legacy dlpack": "BufferError"}, ATTEMPTS
    # a second Session of the same engine sees the same weights
    np.testing.assert_array_equal(Session.from_engine(engine, device="cpu")({"x": x})["y"], x + w)


@plugin("TorchScribble", namespace="test_rel")
class TorchScribble(PluginBase):
    """Writes its input in place through torch.  torch has no read-only
    tensors: kiln hands out an inference tensor, so the write raises (torch
    checks after writing: the memory is changed, the run fails loudly)."""

    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x = kiln.convert_to_torch_tensor(inputs[0])
        assert x.is_inference()
        kiln.convert_to_torch_tensor(outputs[0]).copy_(x)   # reading and writing outputs work
        x.mul_(2)


def test_torch_write_to_an_input_fails_the_run():
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        TorchScribble()(kiln.Tensor(name="x", shape=(3,), dtype="float32")).mark_output("y")
    s = Session.from_serialized_engine(kiln.Builder().build_engine(net), device="cpu")
    with pytest.raises(kiln.Error, match="(?s)TorchScribble.*forward.*[Ii]nplace update to inference tensor"):
        s({"x": np.ones(3, np.float32)})


def test_eager_inputs_are_read_only_too():
    ATTEMPTS.clear()
    x, w = torch.ones(2, 4), torch.arange(8, dtype=torch.float32).reshape(2, 4)
    keep = w.clone()
    y = AddWeight()(x, w)
    assert torch.equal(w, keep) and torch.equal(y, x + keep)
    assert "wrote" not in dict(ATTEMPTS).values(), ATTEMPTS


# --- item 9: eager calls on strided tensors and parameters ----------------------------

@plugin("RowMajorScale", namespace="test_rel")
class RowMajorScale(PluginBase):
    """Reads its input as a flat row-major buffer from data_ptr (as a Triton
    kernel does): right only for a contiguous input.  Records the pointers."""
    seen = []

    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x = inputs[0]
        type(self).seen.append(x.data_ptr())
        n = int(np.prod(x.shape))
        flat = np.ctypeslib.as_array((np.ctypeslib.ctypes.c_float * n).from_address(x.data_ptr()))
        kiln.convert_to_numpy(outputs[0]).reshape(-1)[...] = flat * 3


def test_eager_non_contiguous_inputs_give_right_results():
    a = torch.randn(6, 5)
    np.testing.assert_array_equal(RowMajorScale()(a.t()).numpy(), (a.t() * 3).numpy())
    b = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_array_equal(RowMajorScale()(b[:, ::2]), b[:, ::2] * 3)
    c = torch.randn(3, 8)
    np.testing.assert_array_equal(RowMajorScale()(c[:, 2:6]).numpy(), (c[:, 2:6] * 3).numpy())


def test_eager_parameter_is_accepted_without_copy():
    p = torch.nn.Parameter(torch.randn(4, 3))
    RowMajorScale.seen.clear()
    y = RowMajorScale()(p)
    assert not y.requires_grad
    torch.testing.assert_close(y, p.detach() * 3)
    assert RowMajorScale.seen == [p.data_ptr()]          # detached, not copied


# --- item 11: small argument checks -------------------------------------------------------

def _dyn_engine():
    from collections import OrderedDict
    net = kiln.Builder().create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 4), dtype="float32", dim_range=OrderedDict([("n", [(1, 8, 16)]),
                                                                                          ("h", [4])]))
        kiln.relu(x).mark_output("y")
    return kiln.Builder().build_engine(net)


def test_infer_shapes_refuses_non_integer_sizes():
    s = Session.from_serialized_engine(_dyn_engine(), device="cpu")
    with pytest.raises(TypeError, match=r"input 'x': axis 0 has size 8\.5"):
        s.infer_shapes([TensorInfo("x", kiln.float32, (8.5, 4))])
    with pytest.raises(TypeError, match=r"input 'x': axis 1"):
        s.infer_shapes([TensorInfo("x", kiln.float32, (8, 4.0))])
    out = s.infer_shapes([TensorInfo("x", kiln.float32, (np.int64(8), 4))])
    assert out[0].shape == (8, 4)


def test_session_arguments_say_what_is_accepted():
    blob = _dyn_engine()
    with pytest.raises(TypeError, match="a Session needs an engine.*not a list"):
        Session([1, 2, 3])
    s = Session.from_serialized_engine(blob, device="cpu")
    x = np.ones((2, 4), np.float32)
    with pytest.raises(TypeError, match=r"inputs must be a dict \{name: tensor\}.*not a list"):
        s([x])
    with pytest.raises(TypeError, match=r"inputs must be a dict"):
        s.run([x])
    np.testing.assert_array_equal(s({"x": x})["y"], x)


def test_engine_load_refuses_unknown_flag_bits(tmp_path):
    blob = bytes(_dyn_engine())
    with pytest.raises(ValueError, match="unknown load flag bits 0xfffffff8"):
        Engine.from_memory(blob, 0xffffffff)
    with pytest.raises(ValueError, match="unknown load flag bits"):
        Engine.from_memory(blob, 1 << 40)     # not silently masked to 32 bits
    with pytest.raises(TypeError, match="flags must be an int"):
        Engine.from_memory(blob, 1.0)
    (tmp_path / "e.engine").write_bytes(blob)
    with pytest.raises(ValueError, match="unknown load flag bits 0x80"):
        Engine.from_file(str(tmp_path / "e.engine"), 0x80)
    e = Engine.from_memory(blob, kiln._kiln.LOAD_SKIP_WEIGHT_CHECKSUM)
    np.testing.assert_array_equal(Session(e, device="cpu")({"x": -np.ones((1, 4), np.float32)})["y"], 0)


# --- item 11: a plugin instance destroyed after interpreter shutdown ------------------

def test_instance_destroyed_after_finalize_frees_its_wrappers(tmp_path):
    """An application embedding Python may free its kiln context after
    Py_FinalizeEx; the bridge then cannot touch Python objects but must still
    free the arrays that held its TensorWrappers (valgrind: nothing
    definitely lost from bridge_enqueue).  About 10 s."""
    import os
    import shutil
    build = os.environ.get("KILN_BUILD_DIR")
    config = shutil.which("python3-config") or shutil.which(f"python{sys.version_info[0]}.{sys.version_info[1]}-config")
    if not build or not shutil.which("valgrind") or not shutil.which("cc") or not config:
        pytest.skip("needs a build tree (KILN_BUILD_DIR), cc, python3-config and valgrind")
    here = Path(__file__).resolve().parent
    flags = subprocess.run([config, "--includes", "--embed", "--ldflags"], capture_output=True, text=True)
    if flags.returncode != 0:   # python3-config of another Python, or no --embed
        pytest.skip(f"python3-config --embed failed: {flags.stderr.strip()}")
    exe = tmp_path / "embed"
    cc = subprocess.run(["cc", "-g", "-O0", str(here / "embed_destroy_after_finalize.c"), "-o", str(exe),
                         f"-I{ROOT / 'include'}", f"-L{build}", "-lkiln", f"-Wl,-rpath,{build}",
                         *flags.stdout.split()], capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr
    env = dict(os.environ, PYTHONMALLOC="malloc")
    r = subprocess.run(["valgrind", "--leak-check=full", "--num-callers=12", str(exe), str(ROOT / "python"),
                        str(tmp_path / "copy.engine")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "y = 1 2 3 4" in r.stdout, r.stdout + r.stderr[-3000:]
    assert "definitely lost" in r.stderr    # valgrind did check (Python itself loses a little)
    assert not _leaks_from(r.stderr, "bridge_enqueue"), "wrapper arrays leaked:\n" + \
        "\n".join(_leaks_from(r.stderr, "bridge_enqueue"))


def _leaks_from(valgrind_log, function):
    """The 'definitely lost' records of a valgrind log whose stack names function."""
    records, current = [], None
    for line in valgrind_log.splitlines():
        body = line.split("== ", 1)[1] if "== " in line else ""
        if "are definitely lost" in body:
            current = [body]
        elif current is not None:
            if not body.strip():
                records.append("\n".join(current))
                current = None
            else:
                current.append(body)
    return [rec for rec in records if function in rec]
