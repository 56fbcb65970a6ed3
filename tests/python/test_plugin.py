"""Python plugins: registration, state, the bridge (build, run, errors), eager calls, TensorWrapper."""
import subprocess
import sys
import textwrap
from collections import OrderedDict
from typing import Tuple

import numpy as np
import pytest
import torch

import kiln
from kiln import PluginBase, SymTensor, plugin
from kiln.runtime import Session

from conftest import ROOT, subprocess_env


@plugin("AddScale", namespace="test")
class AddScale(PluginBase):
    """out0 = (a + b) * scale, out1 = a - b; the rows of out1 are a[:rows]."""

    def __init__(self, scale, note=None):
        super().__init__()
        self.scale = scale
        self.note = note

    def shape_dtype_inference(self, inputs) -> Tuple[SymTensor, SymTensor]:
        a = inputs[0]
        return SymTensor(a.dtype, a.shape), SymTensor(a.dtype, list(a.shape))

    def forward(self, inputs, outputs):
        a = kiln.convert_to_torch_tensor(inputs[0])
        b = kiln.convert_to_torch_tensor(inputs[1])
        kiln.convert_to_torch_tensor(outputs[0]).copy_((a + b) * self.scale)
        kiln.convert_to_torch_tensor(outputs[1]).copy_(a - b)


@plugin("Fail", namespace="test")
class Fail(PluginBase):
    def __init__(self, when):
        super().__init__()
        self.when = when
        self.calls = 0

    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        x = kiln.convert_to_numpy(inputs[0])
        if (x == self.when).any():
            raise ValueError(f"refusing value {self.when}")
        kiln.convert_to_numpy(outputs[0])[...] = x


@plugin("Pad", namespace="test", num_outputs=1)
class Pad(PluginBase):
    """Pads the last axis to a multiple of `multiple` (ceil division in shapes);
    uses a workspace of one row."""

    def __init__(self, multiple):
        super().__init__()
        self.multiple = multiple

    def shape_dtype_inference(self, inputs):
        shape = inputs[0].shape
        shape[-1] = (shape[-1] / self.multiple) * self.multiple
        return SymTensor("float32", shape)

    def workspace_size(self, inputs):
        return inputs[0].shape[-1] * 4

    def forward(self, inputs, outputs):
        assert self.workspace != 0
        x = kiln.convert_to_torch_tensor(inputs[0])
        y = kiln.convert_to_torch_tensor(outputs[0])
        y.zero_()
        y[..., : x.shape[-1]] = x.float()


def build_net(fn, inputs, outputs=("out",)):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        ts = [kiln.Tensor(name=n, shape=s, dtype=d, dim_range=r) for n, s, d, r in inputs]
        outs = fn(*ts)
        outs = outs if isinstance(outs, tuple) else (outs,)
        for name, t in zip(outputs, outs):
            t.mark_output(name)
    return builder.build_engine(net)


DYN = OrderedDict([("n", [(1, 3, 6)]), ("h", [4])])


def test_two_outputs_from_annotation_and_run():
    assert AddScale._kiln_num_outputs == 2
    eng = build_net(lambda a, b: AddScale(2.5, note="hi")(a, b),
                    [("a", (-1, 4), "float32", DYN), ("b", (-1, 4), "float32", DYN)], ("sum", "diff"))
    s = Session.from_serialized_engine(eng)
    a, b = torch.rand(5, 4), torch.rand(5, 4)
    out = s({"a": a, "b": b})
    assert torch.allclose(out["sum"], (a + b) * 2.5) and torch.allclose(out["diff"], a - b)
    # Engine metadata records the plugin and its module.
    assert s.engine.plugins() == [("test", "AddScale", "1", __name__)]


def test_workspace_and_ceil_division():
    eng = build_net(lambda x: Pad(8)(x), [("x", (-1, 5), "float16", OrderedDict([("n", [(1, 2, 4)]), ("w", [5])]))])
    s = Session.from_serialized_engine(eng)
    x = torch.rand(3, 5).half()
    y = s({"x": x})["out"]
    assert y.shape == (3, 8) and y.dtype == torch.float32
    assert torch.equal(y[:, :5], x.float()) and (y[:, 5:] == 0).all()
    assert s.infer_shapes([kiln.TensorInfo("x", "float16", (2, 5))])[0].shape == (2, 8)


def test_forward_exception_is_reported_and_session_survives():
    eng = build_net(lambda x: Fail(7.0)(x), [("x", (3,), "float32", None)])
    s = Session.from_serialized_engine(eng)
    with pytest.raises(kiln.Error) as info:
        s({"x": np.array([1, 7, 3], np.float32)})
    msg = str(info.value)
    assert "test::Fail" in msg and "refusing value 7.0" in msg and "Traceback" in msg and "forward" in msg
    assert isinstance(info.value.__cause__, ValueError)
    out = s({"x": np.array([1, 2, 3], np.float32)})["out"]
    np.testing.assert_array_equal(out, [1, 2, 3])


STATE = {
    "none": None, "flag": True, "count": -(2 ** 62), "ratio": 0.25, "text": "héllo", "blob": b"\x00\x01",
    "items": [1, "two", [3.0]], "pair": (1, (2, "x")), "conf": {"a": {"b": [None, False]}, "t": (1,)},
    "table": np.arange(6, dtype=np.int32).reshape(2, 3), "half": np.ones(3, np.float16),
    "empty_tuple": (), "np_scalar": np.float32(1.5), "np_int": np.int64(7),
}


@plugin("Stateful", namespace="test")
class Stateful(PluginBase):
    def __init__(self, **state):
        super().__init__()
        self.__dict__.update(state)

    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        # Report the restored state through the output: 1 where it matches.
        ok = 1.0
        for k, v in STATE.items():
            got = getattr(self, k)
            if isinstance(v, np.ndarray):
                ok *= float(isinstance(got, np.ndarray) and got.dtype == v.dtype and np.array_equal(got, v))
            elif isinstance(v, np.generic):
                ok *= float(got == v.item() and type(got) is type(v.item()))
            else:
                ok *= float(got == v and type(got) is type(v))
        kiln.convert_to_numpy(outputs[0])[...] = ok


def test_state_round_trips_without_init():
    inst = Stateful(**STATE)
    eng = build_net(lambda x: inst(x), [("x", (2,), "float32", None)])
    original = Stateful.__init__
    Stateful.__init__ = None   # the bridge must not call __init__ when it rebuilds the object
    try:
        out = Session.from_serialized_engine(eng)({"x": np.zeros(2, np.float32)})["out"]
    finally:
        Stateful.__init__ = original
    np.testing.assert_array_equal(out, [1, 1])
    back = kiln._native._kiln.value_roundtrip({"t": (1, [2, (3,)]), "d": {"k": ()}})
    assert back == {"t": (1, [2, (3,)]), "d": {"k": ()}}


@pytest.mark.parametrize("value, what", [
    (torch.ones(2), "torch.Tensor"), (lambda: 1, "function"), (object(), "object"),
    ({1: 2}, "not a str"), (np.zeros(2), "element format 'd'"), (2 ** 70, "64 bits"),
    ({"__kiln_tuple__": 1}, "reserved"),
])
def test_bad_state_names_attribute_and_plugin(value, what):
    inst = Stateful(ok=1, nested={"inner": [0, value]})
    builder = kiln.Builder()
    with kiln.net_guard(builder.create_network()):
        x = kiln.Tensor(name="x", shape=(2,), dtype="float32")
        with pytest.raises((TypeError, ValueError, OverflowError)) as info:
            inst(x)
    msg = str(info.value)
    assert "test::Stateful" in msg and "attribute 'nested'['inner'][1]" in msg and what in msg


def test_registration_errors():
    class Unregistered(PluginBase):
        def shape_dtype_inference(self, inputs) -> SymTensor:
            return inputs[0]

        def forward(self, inputs, outputs):
            pass
    with pytest.raises(TypeError, match="Unregistered is not registered"):
        Unregistered()

    class Sub(AddScale):   # a subclass of a registered plugin is its own plugin
        pass
    with pytest.raises(TypeError, match="Sub is not registered"):
        Sub(1.0)

    with pytest.raises(ValueError, match=r"test::AddScale \(version 1\) is already registered"):
        plugin("AddScale", namespace="test")(Unregistered)

    class NoAnnotation(PluginBase):
        def shape_dtype_inference(self, inputs):
            return inputs[0]

        def forward(self, inputs, outputs):
            pass
    with pytest.raises(TypeError, match=r"test::NoAnn \(version 1\).*annotate"):
        plugin("NoAnn", namespace="test")(NoAnnotation)

    class Varargs(PluginBase):
        def shape_dtype_inference(self, inputs) -> Tuple[SymTensor, ...]:
            return inputs[0]

        def forward(self, inputs, outputs):
            pass
    with pytest.raises(TypeError, match="test::Var"):
        plugin("Var", namespace="test")(Varargs)
    with pytest.raises(TypeError, match="PluginBase"):
        plugin("NotAPlugin")(int)

    # A different version is a different plugin.
    plugin("AddScale", namespace="test", version="2", num_outputs=2)(NoAnnotation)
    assert ("test", "AddScale", "2") in kiln.registered_plugins()


def test_string_annotations():
    import plugin_defs_future as f
    assert f.FutureOne._kiln_num_outputs == 1
    assert f.FutureTwo._kiln_num_outputs == 2
    assert f.FutureThree._kiln_num_outputs == 3


def test_missing_plugin_at_load_names_it():
    @plugin("Vanishing", namespace="test", version="3")
    class Vanishing(PluginBase):
        def shape_dtype_inference(self, inputs) -> SymTensor:
            return inputs[0]

        def forward(self, inputs, outputs):
            pass
    eng = build_net(lambda x: Vanishing()(x), [("x", (2,), "float32", None)])
    kiln.unregister_plugin(Vanishing)
    with pytest.raises(kiln.Error) as info:
        Session.from_serialized_engine(eng)
    msg = str(info.value)
    assert "test::Vanishing" in msg and "3" in msg and __name__ in msg


def test_plugin_in_fresh_process_needs_only_import(tmp_path):
    """The engine records the module; a process that imports it can run it."""
    eng = build_net(lambda a, b: AddScale(3.0)(a, b), [("a", (2,), "float32", None), ("b", (2,), "float32", None)],
                    ("s", "d"))
    path = tmp_path / "p.engine"
    eng.save(path)
    code = textwrap.dedent(f"""
        import numpy as np, kiln
        try:
            kiln.Session.from_file({str(path)!r})
        except kiln.Error as e:
            print("MISSING", "test::AddScale" in str(e), {__name__!r} in str(e))
        import sys; sys.path.insert(0, {str(ROOT / 'tests' / 'python')!r})
        import {__name__}
        s = kiln.Session.from_file({str(path)!r})
        print("SUM", s({{"a": np.ones(2, np.float32), "b": np.ones(2, np.float32)}})["s"].tolist())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "MISSING True True" in proc.stdout and "SUM [6.0, 6.0]" in proc.stdout


def test_eager_calls_torch_and_numpy():
    a, b = torch.rand(3, 4), torch.rand(3, 4)
    s, d = AddScale(2.0)(a, b)
    assert torch.allclose(s, (a + b) * 2) and torch.allclose(d, a - b)
    y = Pad(4)(np.ones((2, 3), np.float32))
    assert isinstance(y, np.ndarray) and y.shape == (2, 4)
    np.testing.assert_array_equal(y, [[1, 1, 1, 0], [1, 1, 1, 0]])
    with pytest.raises(ValueError, match="refusing"):
        Fail(1.0)(np.ones(2, np.float32))


def test_tensor_wrapper_protocols_alias_memory():
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    w = kiln.wrap_tensor(t)
    assert w.data_ptr() == t.data_ptr() and w.shape == (3, 4) and w.strides == (4, 1)
    assert w.dtype == torch.float32 and w.device == "cpu" and w.ndim == 2
    ai = w.__array_interface__
    assert ai["typestr"] == "<f4" and ai["data"][0] == t.data_ptr() and ai["version"] == 3
    with pytest.raises(AttributeError):
        w.__cuda_array_interface__
    assert w.__dlpack_device__() == (1, 0)
    n = kiln.convert_to_numpy(w)
    tt = kiln.convert_to_torch_tensor(w)
    n[0, 0] = 100
    assert t[0, 0] == 100 and tt[0, 0] == 100          # all three alias one buffer
    tt[2, 3] = -1
    assert n[2, 3] == -1
    assert torch.equal(torch.from_dlpack(w), t)
    assert np.from_dlpack(w)[1, 1] == 5
    bf = kiln.wrap_tensor(torch.ones(2, dtype=torch.bfloat16))
    assert kiln.convert_to_torch_tensor(bf).dtype == torch.bfloat16
    with pytest.raises(TypeError, match="bfloat16"):
        bf.__array_interface__
    raw = kiln.TensorWrapper(t.data_ptr(), kiln.float32, (12,), owner=t)
    assert kiln.convert_to_numpy(raw)[0] == 100
    strided = kiln.wrap_tensor(t.t())
    assert strided.strides == (1, 4) and kiln.convert_to_numpy(strided)[3, 2] == -1
    del t, n, tt
    assert kiln.convert_to_numpy(w)[0, 0] == 100        # the wrapper keeps its source alive


def test_symdims_stay_valid_after_inference():
    kept = []

    @plugin("Keeper", namespace="test")
    class Keeper(PluginBase):
        def shape_dtype_inference(self, inputs) -> SymTensor:
            kept.append(inputs[0].shape[0])
            return SymTensor(inputs[0].dtype, inputs[0].shape)

        def forward(self, inputs, outputs):
            pass
    builder = kiln.Builder()
    with kiln.net_guard(builder.create_network()):
        x = kiln.Tensor(name="x", shape=(-1,), dtype="float32", dim_range=OrderedDict([("n", [(1, 2, 3)])]))
        Keeper()(x)
    assert str(kept[0]) == "n"   # still valid: the network's own pool


def test_layers_are_added_data_first():
    """shape_dtype_inference and workspace_size run once per layer, in Python;
    the layer reaches C as data (kiln_network_add_plugin_traced).  The C
    entry point that asks a creator's own rule refuses a Python plugin,
    saying which one to use."""
    calls = []

    @plugin("Counted", namespace="test")
    class Counted(PluginBase):
        def shape_dtype_inference(self, inputs) -> SymTensor:
            calls.append("shape")
            return SymTensor("float32", [inputs[0].shape[0] * 2])

        def workspace_size(self, inputs):
            calls.append("workspace")
            return inputs[0].shape[0] * 4

        def forward(self, inputs, outputs):
            x = kiln.convert_to_torch_tensor(inputs[0])
            kiln.convert_to_torch_tensor(outputs[0]).copy_(torch.cat([x, x]))
            assert self.workspace_bytes >= 4 * x.shape[0]

    try:
        eng = build_net(lambda x: Counted()(Counted()(x)),
                        [("x", (-1,), "float32", OrderedDict([("n", [(1, 2, 4)])]))])
        assert calls == ["shape", "workspace"] * 2
        s = Session.from_serialized_engine(eng)
        x = torch.arange(3, dtype=torch.float32)
        assert torch.equal(s({"x": x})["out"], torch.cat([x, x, x, x]))
        assert calls == ["shape", "workspace"] * 2       # running traced nothing again

        builder = kiln.Builder()
        net = builder.create_network()
        with kiln.net_guard(net):
            x = kiln.Tensor(name="x", shape=(4,), dtype="float32")
        with pytest.raises(kiln.Error, match=r"test::Counted version 1 has no shape rule in C .*"
                                             r"kiln_network_add_plugin_traced"):
            net._net.add_plugin("test", "Counted", "1", __name__, {}, [x._id], 1)
        with pytest.raises(ValueError, match="trace gives 2 dtypes and 1 shapes for 1 outputs"):
            net._net.add_plugin("test", "Counted", "1", __name__, {}, [x._id], 1, ((0, 0), [(1,)], None))
    finally:
        kiln.unregister_plugin(Counted)
