"""Lookup bandwidth through a kiln engine with the example's Triton plugin,
beside torch.nn.functional.embedding, a device-to-device copy of the same
bytes, and the seed's one-element-per-program kernel (issue 4).

kiln is measured three ways: eager session.run (the plugin's forward
launches Triton from Python), replay of a CUDA graph of that run, and eager
session.run of the ahead-of-time variant of the same plugin (the same kernel
launched by kiln's C runtime); "Triton direct" launches the kernel from
Python with no kiln at all, back to back, which shows where Python's launch
cost (not kiln) bounds an eager run.  Bandwidth counts bytes read + written: rows read from the table, the output
written, and the indices read.  Target: kiln at least 90% of torch."""
import torch

from gpu_bench_common import (build_lookup_engine, device_name, seed_lookup, table, time_cuda)
from kiln.runtime import Session
from plugin_lib.lookup_kernel import launch_lookup

CASES = [  # tokens, hidden, vocab, dtype
    (4096, 4096, 32000, torch.float16),
    (16384, 4096, 128256, torch.bfloat16),
    (65536, 2048, 32000, torch.float32),
]


def main():
    print(f"device: {device_name()}")
    rows = []
    stream = torch.cuda.Stream()
    for tokens, hidden, vocab, dtype in CASES:
        session = Session.from_serialized_engine(build_lookup_engine(dtype, vocab, hidden, tokens), device="cuda")
        idx = torch.randint(0, vocab, (tokens,), dtype=torch.int32, device="cuda")
        tab = torch.randn(vocab, hidden, device="cuda").to(dtype)
        out = torch.empty(tokens, hidden, dtype=dtype, device="cuda")
        moved = 2 * tokens * hidden * tab.element_size() + idx.numel() * 4

        def kiln_run():
            session.run({"x": idx, "y": tab}, {"output": out}, stream=stream)

        kiln_ms = time_cuda(kiln_run, stream=stream)
        assert torch.equal(out, torch.nn.functional.embedding(idx.long(), tab)), "kiln lookup is wrong"
        with torch.cuda.stream(stream):
            session.capture({"x": idx, "y": tab}, {"output": out}, stream=stream)
        out.zero_()
        graph_ms = time_cuda(lambda: session.replay(stream), stream=stream)
        assert torch.equal(out, torch.nn.functional.embedding(idx.long(), tab)), "kiln graph replay is wrong"
        aot = Session.from_serialized_engine(build_lookup_engine(dtype, vocab, hidden, tokens, aot=True),
                                             device="cuda")
        out.zero_()
        aot_ms = time_cuda(lambda: aot.run({"x": idx, "y": tab}, {"output": out}, stream=stream), stream=stream)
        assert torch.equal(out, torch.nn.functional.embedding(idx.long(), tab)), "kiln AOT lookup is wrong"
        triton_ms = time_cuda(lambda: launch_lookup(idx, tab, out), stream=stream)
        torch_ms = time_cuda(lambda: torch.nn.functional.embedding(idx, tab), stream=stream)
        src = torch.empty_like(out)
        copy_ms = time_cuda(lambda: out.copy_(src), stream=stream)
        seed = ""
        if tokens == 4096:
            seed_ms = time_cuda(lambda: seed_lookup(idx, tab, out), iterations=3, warmup=1, stream=stream)
            seed = f"{moved / seed_ms / 1e6:.0f}"
        gbs = lambda ms: moved / ms / 1e6  # noqa: E731
        rows.append([f"{tokens}×{hidden} {str(dtype).split('.')[1]} (vocab {vocab})", f"{gbs(kiln_ms):.0f}",
                     f"{gbs(graph_ms):.0f}", f"{gbs(aot_ms):.0f}", f"{gbs(triton_ms):.0f}", f"{gbs(torch_ms):.0f}",
                     f"{100 * torch_ms / kiln_ms:.0f}%", f"{100 * torch_ms / graph_ms:.0f}%",
                     f"{100 * torch_ms / aot_ms:.0f}%", f"{gbs(copy_ms):.0f}", seed])
    table(rows, ["lookup", "kiln run GB/s", "kiln graph GB/s", "kiln AOT run GB/s",
                 "Triton direct GB/s", "torch GB/s", "run / torch",
                 "graph / torch", "AOT / torch", "copy GB/s", "seed kernel GB/s"])


if __name__ == "__main__":
    main()
