"""Session: inputs from torch / numpy / DLPack, allocation, infer_shapes, and bad input."""
import threading
import time
from collections import OrderedDict

import numpy as np
import pytest
import torch

import kiln
from kiln.runtime import Session, TensorInfo


@pytest.fixture(scope="module")
def engine():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 4), dtype="float32",
                        dim_range=OrderedDict([("batch", [(1, 2, 8)]), ("h", [4])]))
        b = kiln.Tensor(name="b", shape=(4,), dtype="float32")
        (x + b).mark_output("y")
    return bytes(builder.build_engine(net))


def test_run_with_outputs_numpy_and_torch(engine):
    s = Session.from_serialized_engine(engine)
    x = np.random.rand(3, 4).astype(np.float32)
    b = np.random.rand(4).astype(np.float32)
    y = np.empty((3, 4), np.float32)
    assert s.run(inputs={"x": x, "b": b}, outputs={"y": y}) is True
    np.testing.assert_allclose(y, x + b)
    xt, bt = torch.from_numpy(x), torch.from_numpy(b)
    yt = torch.empty(3, 4)
    assert s.run({"x": xt, "b": bt}, {"y": yt}, stream=None)
    assert torch.allclose(yt, xt + bt)
    out = s({"x": xt, "b": bt})
    assert isinstance(out["y"], torch.Tensor) and torch.allclose(out["y"], xt + bt)
    out = s.run({"x": x, "b": b})
    assert isinstance(out["y"], np.ndarray)
    # Read-only inputs are fine; memoryview and DLPack-only producers too.
    x.setflags(write=False)
    np.testing.assert_allclose(s({"x": x, "b": memoryview(b)})["y"], x + b)

    class DLOnly:
        def __init__(self, t):
            self.t = t

        def __dlpack__(self, **kw):
            return self.t.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.t.__dlpack_device__()
    np.testing.assert_allclose(s({"x": DLOnly(xt), "b": bt})["y"], x + b)


def test_infer_shapes(engine):
    s = Session.from_serialized_engine(engine)
    infos = s.infer_shapes([TensorInfo("x", kiln.float32, (5, 4)), TensorInfo("b", torch.float32, (4,))])
    assert infos == [TensorInfo("y", "float32", (5, 4))]
    assert infos[0].dtype == torch.float32
    assert s.input_names == ["x", "b"] and s.output_names == ["y"]
    with pytest.raises(kiln.Error, match="'x'"):
        s.infer_shapes([TensorInfo("x", "float16", (5, 4))])
    with pytest.raises(kiln.Error, match="batch"):
        s.infer_shapes([TensorInfo("x", "float32", (50, 4))])


def test_bad_input_names_the_tensor(engine):
    s = Session.from_serialized_engine(engine)
    x = np.zeros((2, 4), np.float32)
    b = np.zeros(4, np.float32)
    y = np.zeros((2, 4), np.float32)
    cases = [
        ({"x": x}, {"y": y}, "missing input 'b'"),
        ({"x": x, "b": b, "zz": b}, {"y": y}, "unknown input 'zz'"),
        ({"x": x, "b": b, "y": y}, {"y": y}, "'y' is an output"),
        ({"x": x.astype(np.float16), "b": b}, {"y": y}, "input 'x': dtype float16"),
        ({"x": np.zeros((9, 4), np.float32), "b": b}, {"y": y}, "x"),
        ({"x": np.zeros((2, 5), np.float32), "b": b}, {"y": y}, "x"),
        ({"x": np.zeros((4, 2), np.float32).T, "b": b}, {"y": y}, "input 'x'.*not contiguous"),
        ({"x": x, "b": b}, {"y": np.zeros((3, 4), np.float32)}, "output 'y': shape"),
        ({"x": x, "b": b}, {}, "missing output 'y'"),
        ({"x": x, "b": b}, {"w": y}, "unknown output 'w'"),
        ({"x": x, "b": b}, {"y": np.zeros((2, 4), np.int32)}, "output 'y': dtype int32"),
        ({"x": "hello", "b": b}, {"y": y}, "input 'x'"),
    ]
    for inputs, outputs, pattern in cases:
        with pytest.raises((kiln.Error, TypeError, ValueError), match=pattern):
            s.run(inputs, outputs)
    ro = np.zeros((2, 4), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="output 'y'.*read-only"):
        s.run({"x": x, "b": b}, {"y": ro})
    for stream, pattern in (("s0", "stream must be an int.*not str"), (1.5, "not float"),
                            (type("S", (), {"cuda_stream": "x"})(), "not S")):
        with pytest.raises(TypeError, match=pattern):
            s.run({"x": x, "b": b}, {"y": y}, stream=stream)
        with pytest.raises(TypeError, match=pattern):
            s.replay(stream)
    # The session stays usable after every failure.
    assert s.run({"x": x + 1, "b": b}, {"y": y}) and (y == 1).all()


def test_sessions_share_an_engine_and_threads_run(engine):
    eng = kiln.runtime.load_engine(engine)
    results = []

    def work(k):
        s = Session.from_engine(eng)
        for _ in range(20):
            x = np.full((2, 4), k, np.float32)
            results.append(bool((s({"x": x, "b": np.zeros(4, np.float32)})["y"] == k).all()))
    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80 and all(results)


def test_gil_is_released_during_c_layers():
    n = 256
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(n, n), dtype="float32")
        h = a
        for _ in range(6):
            h = kiln.matmul(h, a)
        h.mark_output("h")
    s = Session.from_serialized_engine(builder.build_engine(net))
    a = (np.eye(n) * 0.5).astype(np.float32)
    t0 = time.perf_counter()
    s({"a": a})
    single = time.perf_counter() - t0
    ticks = [0]
    done = threading.Event()

    def spin():
        while not done.is_set():
            ticks[0] += 1
    th = threading.Thread(target=spin)
    th.start()
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max(0.2, 3 * single):
        s({"a": a})
    done.set()
    th.join()
    assert ticks[0] > 1000   # the spinning thread ran while C layers did


def test_device_argument(engine):
    with pytest.raises(ValueError, match="device"):
        Session.from_serialized_engine(engine, device="tpu")
    assert Session.from_serialized_engine(engine, device="cpu").device == "cpu"
    if not kiln.cuda_available():
        with pytest.raises(kiln.Error):
            Session.from_serialized_engine(engine, device="cuda")


def test_cuda_graphs_are_refused_on_the_cpu():
    from collections import OrderedDict
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(-1, 4), dtype="float32",
                        dim_range=OrderedDict([("n", [(1, 2, 8)]), ("w", [4])]))
        (a + a).mark_output("out")
    s = kiln.runtime.Session.from_serialized_engine(builder.build_engine(net), device="cpu")
    x = np.ones((2, 4), dtype=np.float32)
    with pytest.raises(kiln.Error, match="CUDA graphs need a CUDA device"):
        s.capture({"a": x}, stream=1)
    with pytest.raises(kiln.Error, match="no graph captured"):
        s.replay()
    assert not s.graph_ready


def test_default_device(monkeypatch):
    monkeypatch.setenv("KILN_DEFAULT_DEVICE", "cpu")
    assert kiln.runtime.default_device() == "cpu"
    monkeypatch.delenv("KILN_DEFAULT_DEVICE")
    assert kiln.runtime.default_device() == ("cuda:0" if kiln.cuda_available() else "cpu")
    monkeypatch.setenv("KILN_DEFAULT_DEVICE", "tpu")
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(2,), dtype="float32")
        (a + a).mark_output("out")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        Session.from_serialized_engine(builder.build_engine(net))
