"""Shared pieces of the GPU benchmarks: timing with CUDA events, building
the example lookup engine, and the seed's original one-element kernel."""
import os
import sys
import time
from collections import OrderedDict
from pathlib import Path

# Benchmarks run on the GPU: never let plugin_lib pick Triton's interpreter.
os.environ.setdefault("KILN_DEVICE", "cuda")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "python_plugin"))

import plugin_lib  # noqa: E402,F401  (registers LookUpPlugin; selects Triton's mode)
from plugin_lib import LookUpPlugin, LookUpPluginAOT  # noqa: E402

import torch  # noqa: E402
import triton  # noqa: E402
import triton.language as tl  # noqa: E402

import kiln  # noqa: E402


def time_cuda(fn, iterations=100, warmup=10, stream=None):
    """Mean milliseconds per call of fn, measured with CUDA events on stream."""
    stream = stream or torch.cuda.current_stream()
    with torch.cuda.stream(stream):
        for _ in range(warmup):
            fn()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record(stream)
        for _ in range(iterations):
            fn()
        end.record(stream)
    end.synchronize()
    return start.elapsed_time(end) / iterations


def per_call_us(fn, iterations=2000, warmup=200):
    """Best-of-3 host wall-clock µs per call of fn (synchronized at the end
    of each round): what launch overhead costs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(iterations):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / iterations * 1e6)
    return best


def interleaved_us(cases, rounds=7, calls=1000, warmup=100):
    """{name: best host µs per call} for {name: fn}, over rounds that each
    run every case once (synchronized after each).  Interleaving matters: a
    cloud host's clock speed drifts by tens of percent over seconds, which
    would otherwise land on whichever case ran at the wrong moment."""
    best = {name: float("inf") for name in cases}
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    for _ in range(rounds):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            torch.cuda.synchronize()
            best[name] = min(best[name], (time.perf_counter() - t0) / calls * 1e6)
    return best


def build_lookup_engine(dtype, vocab, hidden, max_tokens, aot=False):
    """The example's lookup engine; aot=True: its ahead-of-time variant
    (the same Triton kernel, compiled into the engine, launched from C)."""
    builder = kiln.Builder()
    net = builder.create_network(prefer_aot=aot)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1,), dtype="int32",
                        dim_range=OrderedDict([("num_tokens", [(1, max_tokens, max_tokens)])]))
        y = kiln.Tensor(name="y", shape=(vocab, hidden), dtype=dtype)
        (LookUpPluginAOT if aot else LookUpPlugin)(False, False)(x, y).mark_output("output")
    return builder.build_engine(net)


@kiln.plugin("BenchNothing", namespace="bench")
class Nothing(kiln.PluginBase):
    """The lookup's shape rule and a forward that does nothing: what kiln
    alone costs per plugin call."""

    def __init__(self):
        super().__init__()

    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        shape = inputs[1].shape
        shape[0] = inputs[0].shape[0]
        return kiln.SymTensor(inputs[1].dtype, shape)

    def forward(self, inputs, outputs):
        pass


def build_nothing_engine(dtype, vocab, hidden, max_tokens):
    """build_lookup_engine's engine with Nothing in place of the lookup."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1,), dtype="int32",
                        dim_range=OrderedDict([("num_tokens", [(1, max_tokens, max_tokens)])]))
        y = kiln.Tensor(name="y", shape=(vocab, hidden), dtype=dtype)
        Nothing()(x, y).mark_output("output")
    return builder.build_engine(net)


# The seed's kernel (TensorRT-LLM's example): one element per program, the
# programs striding over the output.  Kept only as the baseline kiln's
# example kernel replaces.
@triton.jit
def seed_lookup_kernel(X, Y, Z, vocab_size, hidden_size, token_num):
    pid = tl.program_id(0)
    while pid < token_num * hidden_size:
        row = pid // hidden_size
        col = pid % hidden_size
        word = tl.load(X + row)
        valid = (word >= 0) & (word < vocab_size)
        value = tl.load(Y + word * hidden_size + col, mask=valid, other=0.0)
        tl.store(Z + pid, value)
        pid += tl.num_programs(0)


def seed_lookup(x, y, z):
    grid = (min(65536, x.shape[0]) * min(512, y.shape[1]),)
    seed_lookup_kernel[grid](x, y, z, y.shape[0], y.shape[1], x.shape[0])


def table(rows, header):
    """Print a markdown table."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def device_name():
    return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, triton {triton.__version__})"

