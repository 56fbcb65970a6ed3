"""Block-size sweep for the example's Triton lookup kernel (GPU only).

For each lookup size of bench_gpu_lookup.py, times lookup_kernel at several
(BLOCK, num_warps) choices with CUDA graphs of back-to-back launches, so the
numbers are the kernel's and not Python's launch cost, beside
torch.nn.functional.embedding timed the same way.  The rule in
plugin_lib.lookup_kernel.launch_config came from this table; rerun it on a
new GPU before changing that rule."""
import triton

from gpu_bench_common import device_name, table  # first: picks Triton's mode

import torch

from plugin_lib.lookup_kernel import launch_config, lookup_kernel

CASES = [  # tokens, hidden, vocab, dtype
    (4096, 4096, 32000, torch.float16),
    (16384, 4096, 128256, torch.bfloat16),
    (65536, 2048, 32000, torch.float32),
]
CONFIGS = [(512, 2), (1024, 2), (1024, 4), (1024, 8), (2048, 4), (2048, 8), (4096, 8), (4096, 16)]
LAUNCHES = 20   # per graph


def graph_ms(launch, stream):
    """Milliseconds per launch: LAUNCHES launches in one CUDA graph."""
    with torch.cuda.stream(stream):
        launch()   # compile outside the capture
    stream.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        for _ in range(LAUNCHES):
            launch()
    for _ in range(3):
        graph.replay()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        graph.replay()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / (10 * LAUNCHES)


def main():
    print(f"device: {device_name()}")
    stream = torch.cuda.Stream()
    rows = []
    for tokens, hidden, vocab, dtype in CASES:
        idx = torch.randint(0, vocab, (tokens,), dtype=torch.int32, device="cuda")
        tab = torch.randn(vocab, hidden, device="cuda").to(dtype)
        out = torch.empty(tokens, hidden, dtype=dtype, device="cuda")
        want = torch.nn.functional.embedding(idx.long(), tab)
        moved = 2 * tokens * hidden * tab.element_size() + tokens * 4
        gbs = lambda ms: moved / ms / 1e6  # noqa: E731
        torch_gbs = gbs(graph_ms(lambda: torch.nn.functional.embedding(idx, tab), stream))
        chosen = launch_config(hidden, tab.element_size())
        label = f"{tokens}×{hidden} {str(dtype).split('.')[1]}"
        for block, warps in CONFIGS:
            if block > triton.next_power_of_2(hidden):
                continue

            def launch():
                lookup_kernel[(tokens, triton.cdiv(hidden, block))](idx, tab, out, vocab, hidden, BLOCK=block,
                                                                     num_warps=warps)
            out.zero_()
            ms = graph_ms(launch, stream)
            assert torch.equal(out, want), f"BLOCK={block} num_warps={warps}: wrong rows"
            mark = " (launch_config)" if (block, warps) == chosen else ""
            per_thread = block * tab.element_size() // (32 * warps)
            rows.append([label, f"{block}/{warps}{mark}", f"{per_thread} B", f"{gbs(ms):.0f}", f"{torch_gbs:.0f}",
                         f"{100 * gbs(ms) / torch_gbs:.0f}%"])
    table(rows, ["lookup", "BLOCK/warps", "bytes/thread", "kernel GB/s", "torch GB/s", "ratio"])


if __name__ == "__main__":
    main()
