"""GPU time of a CUDA-graph replay, for the one-layer benchmarks
(bench_gpu_conv.py, bench_gpu_resize.py): both sides, kiln and torch, are
replayed graphs, so launch costs drop out and kernels are compared."""
import torch


def best_ms(replay, stream, rounds=5, reps=20):
    """Best-of-rounds GPU ms per call of replay() on stream (CUDA events)."""
    best = float("inf")
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            replay()
            start.record(stream)
            for _ in range(reps):
                replay()
            end.record(stream)
        end.synchronize()
        best = min(best, start.elapsed_time(end) / reps)
    return best


def torch_graph_ms(fn, stream):
    """fn() captured in a CUDA graph after three warm-up calls (cudnn.benchmark
    picks its algorithm there): (best ms per replay, fn's output)."""
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    stream.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        out = fn()
    return best_ms(g.replay, stream), out
