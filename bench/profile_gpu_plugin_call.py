"""Where the time of one eager Python-plugin call goes on the GPU.

A breakdown behind bench_gpu_overhead.py's "+N µs per plugin layer": each
row is host wall-clock µs per call (best of interleaved rounds, so a change
in the host's clock speed during the run hits every row alike).  Run it
with KILN_BUILD_DIR set, on a machine with a GPU."""
import sys
from collections import OrderedDict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_bench_common import (LookUpPlugin, build_lookup_engine, build_nothing_engine, device_name,  # noqa: E402
                              interleaved_us, table)

import torch  # noqa: E402

import kiln  # noqa: E402
from kiln._streams import _current_raw_stream  # noqa: E402
from kiln.runtime import Session  # noqa: E402
from plugin_lib.lookup_kernel import launch_lookup  # noqa: E402


def main():
    print(f"device: {device_name()}")
    tokens, hidden, vocab = 10, 1024, 4096
    stream = torch.cuda.Stream()
    idx = torch.randint(0, vocab, (tokens,), dtype=torch.int32, device="cuda")
    tab = torch.randn(vocab, hidden, device="cuda").half()
    out = torch.empty(tokens, hidden, dtype=torch.float16, device="cuda")
    cidx, ctab, cout = idx.cpu(), tab.cpu(), out.cpu()
    nothing = build_nothing_engine(torch.float16, vocab, hidden, tokens)
    gpu_nothing = Session.from_serialized_engine(nothing, device="cuda")
    cpu_nothing = Session.from_serialized_engine(nothing, device="cpu")
    lookup = Session.from_serialized_engine(build_lookup_engine(torch.float16, vocab, hidden, tokens), device="cuda")
    plugin = LookUpPlugin(False, False)
    win, wout = [kiln.wrap_tensor(idx), kiln.wrap_tensor(tab)], [kiln.wrap_tensor(out)]
    handle = stream.cuda_stream
    current_stream = _current_raw_stream(torch)

    def python_call(inputs, outputs, stream=None):
        return True

    def torch_reads():
        for t in (idx, tab, out):
            t.dtype, t.data_ptr(), t.shape, t.stride(), t.get_device()

    cases = OrderedDict([
        ("Python call with two dicts (floor)", lambda: python_call({"x": idx, "y": tab}, {"output": out}, stream=stream)),
        ("reading 3 torch tensors' fields in Python", torch_reads),
        ("torch's current-stream query (the bridge's per-call check)", lambda: current_stream(0)),
        ("session.run, no-op plugin, CPU session", lambda: cpu_nothing.run({"x": cidx, "y": ctab}, {"output": cout})),
        ("session.run, no-op plugin, GPU session", lambda: gpu_nothing.run({"x": idx, "y": tab}, {"output": out},
                                                                          stream=stream)),
        ("_context.run, no-op plugin, GPU session", lambda: gpu_nothing._context.run({"x": idx, "y": tab},
                                                                                   {"output": out}, handle, None)),
        ("launch_lookup (torch tensors)", lambda: launch_lookup(idx, tab, out)),
        ("launch_lookup (TensorWrappers)", lambda: launch_lookup(win[0], win[1], wout[0])),
        ("LookUpPlugin.forward called directly", lambda: plugin.forward(win, wout)),
        ("session.run, LookUpPlugin", lambda: lookup.run({"x": idx, "y": tab}, {"output": out}, stream=stream)),
    ])
    with torch.cuda.stream(stream):
        best = interleaved_us(cases)
    table([[name, f"{us:.2f}"] for name, us in best.items()], ["what", "µs/call"])
    added = best["session.run, LookUpPlugin"] - best["launch_lookup (torch tensors)"]
    print(f"\nkiln eager plugin call: {added:+.2f} µs over launching the kernel directly (target < 10 µs)")


if __name__ == "__main__":
    main()
