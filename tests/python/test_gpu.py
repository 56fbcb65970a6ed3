"""CUDA variants: sessions on the GPU, plugins given device TensorWrappers, streams.
Skipped unless kiln's CUDA backend and torch both see a GPU."""
from collections import OrderedDict

import pytest
import torch

import kiln
from kiln.runtime import Session

from conftest import EXAMPLE, HAVE_GPU

pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU that kiln and torch can use")


@kiln.plugin("GpuAxpy", namespace="test_gpu")
class GpuAxpy(kiln.PluginBase):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        assert inputs[0].device.startswith("cuda")
        assert "__cuda_array_interface__" in dir(type(inputs[0]))
        x = kiln.convert_to_torch_tensor(inputs[0])
        y = kiln.convert_to_torch_tensor(inputs[1])
        out = kiln.convert_to_torch_tensor(outputs[0])
        with torch.cuda.stream(torch.cuda.ExternalStream(self.current_stream)):
            torch.add(y, x, alpha=self.alpha, out=out)


def build(fn, names):
    builder = kiln.Builder()
    net = builder.create_network()
    rng = OrderedDict([("n", [(1, 64, 4096)]), ("h", [32])])
    with kiln.net_guard(net):
        ts = [kiln.Tensor(name=n, shape=(-1, 32), dtype="float32", dim_range=rng) for n in names]
        fn(*ts).mark_output("out")
    return builder.build_engine(net)


def test_builtin_layers_on_cuda():
    s = Session.from_serialized_engine(build(lambda a, b: kiln.relu(a * b + a), "ab"), device="cuda")
    a, b = torch.randn(100, 32, device="cuda"), torch.randn(100, 32, device="cuda")
    out = s({"a": a, "b": b})["out"]
    assert out.is_cuda and torch.allclose(out, torch.relu(a * b + a), atol=1e-5)
    with pytest.raises(kiln.Error, match="input 'a'"):
        s({"a": a.cpu(), "b": b})


def test_python_plugin_on_cuda_stream():
    s = Session.from_serialized_engine(build(lambda x, y: GpuAxpy(3.0)(x, y), "xy"), device="cuda")
    x, y = torch.randn(257, 32, device="cuda"), torch.randn(257, 32, device="cuda")
    out = torch.empty_like(x)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        assert s.run({"x": x, "y": y}, {"out": out}, stream=stream)
    stream.synchronize()
    assert torch.allclose(out, y + 3 * x, atol=1e-5)


def _load_example_kernel():
    """plugin_lib's kernel module, without importing plugin_lib (whose
    TritonLookUp registration would clash with the seed test's)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("example_lookup_kernel",
                                                  EXAMPLE / "plugin_lib" / "lookup_kernel.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@kiln.plugin("WrapperLookup", namespace="test_gpu")
class WrapperLookup(kiln.PluginBase):
    """Hands TensorWrappers (not torch tensors) straight to the Triton kernel."""

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[1].dtype, [inputs[0].shape[0], inputs[1].shape[1]])

    def forward(self, inputs, outputs):
        launch = _load_example_kernel().launch_lookup
        with torch.cuda.stream(torch.cuda.ExternalStream(self.current_stream)):
            launch(inputs[0], inputs[1], outputs[0])


def test_triton_kernel_with_wrappers_on_gpu():
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        builder = kiln.Builder()
        net = builder.create_network()
        with kiln.net_guard(net):
            x = kiln.Tensor(name="x", shape=(-1,), dtype="int32", dim_range=OrderedDict([("t", [(1, 512, 4096)])]))
            y = kiln.Tensor(name="y", shape=(1000, 256), dtype=dtype)
            WrapperLookup()(x, y).mark_output("output")
        s = Session.from_serialized_engine(builder.build_engine(net), device="cuda")
        idx = torch.randint(0, 1000, (3000,), dtype=torch.int32, device="cuda")
        table = torch.randn(1000, 256, device="cuda").to(dtype)
        out = s({"x": idx, "y": table})["output"]
        torch.cuda.synchronize()
        assert torch.equal(out, torch.nn.functional.embedding(idx.long(), table))


@kiln.plugin("StreamProbe", namespace="test_gpu")
class StreamProbe(kiln.PluginBase):
    """Records torch's current stream inside forward and launches with no
    stream handling of its own (like the seed's forward)."""
    seen = []

    def __init__(self):
        super().__init__()

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        StreamProbe.seen.append(torch.cuda.current_stream().cuda_stream)
        x = kiln.convert_to_torch_tensor(inputs[0])
        torch.mul(x, 2.0, out=kiln.convert_to_torch_tensor(outputs[0]))


def _probe_session():
    return Session.from_serialized_engine(build(lambda x: kiln.relu(StreamProbe()(x) + x), "x"), device="cuda")


def test_forward_runs_on_the_session_stream():
    s = _probe_session()
    x = torch.randn(64, 32, device="cuda")
    out = torch.empty_like(x)
    stream = torch.cuda.Stream()
    StreamProbe.seen.clear()
    s.run({"x": x}, {"out": out}, stream=stream)      # torch's current stream is NOT `stream` here
    stream.synchronize()
    assert StreamProbe.seen == [stream.cuda_stream]
    assert torch.allclose(out, torch.relu(3 * x))


def test_graph_capture_and_replay_with_a_python_plugin():
    s = _probe_session()
    x = torch.randn(64, 32, device="cuda")
    out = torch.empty_like(x)
    stream = torch.cuda.Stream()
    with pytest.raises(kiln.Error, match="no graph captured"):
        s.replay(stream)
    s.capture({"x": x}, {"out": out}, stream=stream)
    stream.synchronize()
    assert s.graph_ready and torch.allclose(out, torch.relu(3 * x))
    StreamProbe.seen.clear()
    x.copy_(torch.randn(64, 32, device="cuda"))     # new values, same buffer
    out.zero_()
    s.replay(stream)
    stream.synchronize()
    assert StreamProbe.seen == []                    # no Python ran
    assert torch.allclose(out, torch.relu(3 * x))
    # A new shape: replay refuses the stale graph; run_graph captures again.
    y = torch.randn(10, 32, device="cuda")
    out_y = torch.empty_like(y)
    s.run({"x": y}, {"out": out_y}, stream=stream)
    assert not s.graph_ready
    with pytest.raises(kiln.Error, match="stale"):
        s.replay(stream)
    s.run_graph({"x": y}, {"out": out_y}, stream=stream)
    assert s.graph_ready
    out_y.zero_()
    s.run_graph({"x": y}, {"out": out_y}, stream=stream)   # replays
    stream.synchronize()
    assert torch.allclose(out_y, torch.relu(3 * y))

