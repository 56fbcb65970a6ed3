"""Overhead of kiln on the GPU (issue 4).

1. A one-plugin engine (the example's Triton lookup, 10 tokens × 1024 float16)
   run eagerly with session.run, against launching the same Triton kernel
   directly from Python: target under 10 µs added per plugin layer.
2. The same engine captured into a CUDA graph (session.capture) and replayed,
   against a raw CUDA graph of the same kernel (torch.cuda.graph): target
   within 5%.
   The eager comparison interleaves its cases (see interleaved_us);
   bench/profile_gpu_plugin_call.py breaks the added time down further.
3. A 24-layer chain of built-in elementwise layers with the plugin in the
   middle: eager session.run against graph replay.
Host wall-clock per call (time.perf_counter over many calls, synchronized at
the end), since launch overhead is what is measured."""
from collections import OrderedDict

from gpu_bench_common import (build_lookup_engine, build_nothing_engine, device_name,  # first: picks Triton's mode
                              interleaved_us, per_call_us, table)

import torch
import triton
import triton.language as tl

import kiln
from plugin_lib.lookup_kernel import launch_lookup
from kiln.runtime import Session


@triton.jit
def _scale_kernel(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    tl.store(y_ptr + offs, tl.load(x_ptr + offs, mask=mask) * 0.5, mask=mask)


@kiln.plugin("BenchHalve", namespace="bench")
class Halve(kiln.PluginBase):
    """y = x / 2 with a Triton kernel: the plugin in the middle of the chain."""

    def __init__(self):
        super().__init__()

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        n = inputs[0].shape[0] * inputs[0].shape[1]
        _scale_kernel[(triton.cdiv(n, 1024),)](inputs[0], outputs[0], n, BLOCK=1024)


def build_chain(hidden):
    """24 built-in elementwise layers, the Triton plugin after the 12th."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        h = kiln.Tensor(name="x", shape=(-1, hidden), dtype="float16",
                        dim_range=OrderedDict([("n", [(1, 16, 64)]), ("hidden", [hidden])]))
        for i in range(24):
            h = kiln.relu(h) if i % 3 == 0 else h * h if i % 3 == 1 else h + h
            if i == 11:
                h = Halve()(h)
        h.mark_output("out")
    return builder.build_engine(net)


def main():
    print(f"device: {device_name()}")
    stream = torch.cuda.Stream()
    tokens, hidden, vocab = 10, 1024, 4096
    idx = torch.randint(0, vocab, (tokens,), dtype=torch.int32, device="cuda")
    tab = torch.randn(vocab, hidden, device="cuda").half()
    out = torch.empty(tokens, hidden, dtype=torch.float16, device="cuda")
    session = Session.from_serialized_engine(build_lookup_engine(torch.float16, vocab, hidden, tokens), device="cuda")
    rows = []
    with torch.cuda.stream(stream):
        nothing = Session.from_serialized_engine(build_nothing_engine(torch.float16, vocab, hidden, tokens),
                                                 device="cuda")
        wrapped = [kiln.wrap_tensor(t) for t in (idx, tab, out)]
        best = interleaved_us({
            "direct": lambda: launch_lookup(idx, tab, out),
            "eager": lambda: session.run({"x": idx, "y": tab}, {"output": out}, stream=stream),
            "wrappers": lambda: launch_lookup(*wrapped),
            "nothing": lambda: nothing.run({"x": idx, "y": tab}, {"output": out}, stream=stream),
        })
        direct, eager = best["direct"], best["eager"]
        rows.append(["one plugin, eager session.run", f"{eager:.1f}", f"{direct:.1f} (direct Triton launch)",
                     f"{eager - direct:+.1f} µs", "< 10 µs added"])
        rows.append(["  (Triton launch given TensorWrappers)", f"{best['wrappers']:.1f}", f"{direct:.1f}",
                     f"{best['wrappers'] - direct:+.1f} µs", "breakdown"])
        rows.append(["  (session.run of a plugin whose forward does nothing)", f"{best['nothing']:.1f}", "", "",
                     "breakdown"])
        session.capture({"x": idx, "y": tab}, {"output": out}, stream=stream)
        replay = per_call_us(lambda: session.replay(stream))
        graph = torch.cuda.CUDAGraph()
        launch_lookup(idx, tab, out)   # compiled before capture
        with torch.cuda.graph(graph, stream=stream):
            launch_lookup(idx, tab, out)
        raw = per_call_us(graph.replay)
        rows.append(["one plugin, graph replay", f"{replay:.1f}", f"{raw:.1f} (raw CUDA graph)",
                     f"{100 * (replay / raw - 1):+.1f}%", "within 5%"])
        chain = Session.from_serialized_engine(build_chain(hidden), device="cuda")
        cx = torch.rand(tokens, hidden, device="cuda").half()
        cout = torch.empty(tokens, hidden, dtype=torch.float16, device="cuda")
        chain_eager = per_call_us(lambda: chain.run({"x": cx}, {"out": cout}, stream=stream), 500, 50)
        eager_out = cout.clone()
        chain.capture({"x": cx}, {"out": cout}, stream=stream)
        cout.zero_()
        chain_replay = per_call_us(lambda: chain.replay(stream), 500, 50)
        assert torch.equal(cout, eager_out), 'graph replay differs from the eager run'
        rows.append(["24 built-in layers + 1 plugin, eager", f"{chain_eager:.1f}", "", "", "report"])
        rows.append(["24 built-in layers + 1 plugin, graph replay", f"{chain_replay:.1f}", "",
                     f"{chain_eager / chain_replay:.1f}× faster", "report"])
    table(rows, ["case", "kiln µs/call", "baseline µs/call", "difference", "target"])


if __name__ == "__main__":
    main()
