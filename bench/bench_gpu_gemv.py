"""Decode-step matmuls on the GPU: y [M, N] = x [M, K] · W [N, K]ᵀ for the
projections of Llama-3.2-1B and Llama-3-8B (W stored as nn.Linear keeps it,
one row per output), bfloat16, at the batch sizes of decoding.

Side by side in one run, each as GPU time per product from CUDA-graph replay
(so launch cost is the same small constant for everyone):
  kiln          one engine of `copies` matmul layers kiln.matmul(x, W_i, transpose_b=True)
                (its one-row GEMV kernel at M = 1, cuBLAS above)
  kiln cuBLAS   the same engine with KILN_CUDA_GEMV=0 (cuBLAS for every M; a child process)
  torch         x @ W_i.t() (cuBLAS through torch), the same products in one captured graph
Each product reads a different W_i, and the copies together are larger than
the L2 cache, so every weight comes from HBM as in a real decode step.  GB/s
counts W's bytes (x and y are tiny); the copy column is a device-to-device
copy of one W.

    python3 bench/bench_gpu_gemv.py
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

import kiln

SHAPES = [   # (what, N, K)
    ("1B qkv", 3072, 2048), ("1B o", 2048, 2048), ("1B gate/up", 16384, 2048), ("1B down", 2048, 8192),
    ("1B lm_head", 128256, 2048),
    ("8B qkv", 6144, 4096), ("8B o", 4096, 4096), ("8B gate/up", 28672, 4096), ("8B down", 4096, 14336),
    ("8B lm_head", 128256, 4096),
]
BATCHES = [1, 2, 4, 16]
DTYPE = torch.bfloat16
STREAMED_BYTES = 400 << 20          # weights per run: several times the H200's 60 MB L2


def copies_for(n, k):
    return max(1, min(64, -(-STREAMED_BYTES // (n * k * 2))))


def weights(n, k, copies):
    g = torch.Generator(device="cuda").manual_seed(n * 7 + k)
    return [torch.randn(n, k, device="cuda", dtype=DTYPE, generator=g) / k ** 0.5 for _ in range(copies)]


def build_engine(ws, m):
    n, k = ws[0].shape
    builder = kiln.Builder()
    network = builder.create_network()
    with kiln.net_guard(network):
        x = kiln.Tensor(name="x", shape=(m, k), dtype="bfloat16")
        for i, w in enumerate(ws):
            kiln.matmul(x, kiln.constant(w.cpu(), name=f"w{i}"), transpose_b=True).mark_output(f"y{i}")
    return builder.build_engine(network, builder.create_builder_config(precision=None))


def graph_ms(fn, stream, replays=20):
    """GPU milliseconds per call of fn when fn's launches replay from a CUDA
    graph (torch's capture), best of 5 rounds."""
    with torch.cuda.stream(stream):
        fn()
    stream.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=stream):
        fn()
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            g.replay()
            start.record(stream)
            for _ in range(replays):
                g.replay()
            end.record(stream)
        end.synchronize()
        best = min(best, start.elapsed_time(end) / replays)
    return best


def kiln_ms(ws, m, stream):
    """Per-product GPU ms of the kiln engine (graph replay) and its max
    deviation from torch's products."""
    n, k = ws[0].shape
    session = kiln.Session.from_serialized_engine(build_engine(ws, m), device="cuda")
    x = torch.randn(m, k, device="cuda", dtype=DTYPE)
    ys = {f"y{i}": torch.empty(m, n, device="cuda", dtype=DTYPE) for i in range(len(ws))}
    with torch.cuda.stream(stream):
        session.capture({"x": x}, ys, stream=stream)
    session.replay(stream)
    stream.synchronize()
    err = max((ys[f"y{i}"].float() - (x @ w.t()).float()).abs().max().item() for i, w in enumerate(ws))
    best = float("inf")
    for _ in range(5):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        with torch.cuda.stream(stream):
            session.replay(stream)
            start.record(stream)
            for _ in range(20):
                session.replay(stream)
            end.record(stream)
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 20)
    return best / len(ws), err


def child(shapes, batches):
    """KILN_CUDA_GEMV=0 run: print {case: ms} as JSON."""
    stream = torch.cuda.Stream()
    out = {}
    for what, n, k in shapes:
        ws = weights(n, k, copies_for(n, k))
        for m in batches:
            out[f"{what}|{m}"] = kiln_ms(ws, m, stream)[0]
        del ws
        torch.cuda.empty_cache()
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=BATCHES, help="rows of x (default 1 2 4 16)")
    ap.add_argument("--only", default="", help="the products whose name contains this (e.g. '8B')")
    args = ap.parse_args()
    shapes = [s for s in SHAPES if args.only in s[0]]
    if os.environ.get("KILN_CUDA_GEMV") == "0":
        return child(shapes, args.batch)
    r = subprocess.run([sys.executable, __file__, *sys.argv[1:]], env=dict(os.environ, KILN_CUDA_GEMV="0"),
                       capture_output=True, text=True, timeout=1200)
    if r.returncode:
        raise RuntimeError(f"the KILN_CUDA_GEMV=0 run failed:\n{r.stderr[-3000:]}")
    cublas = json.loads(r.stdout.strip().splitlines()[-1])
    stream = torch.cuda.Stream()
    print(f"device: {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}, bfloat16, "
          "GPU time per product from graph replay; GB/s of W")
    print("| product | N x K | M | kiln µs | kiln GB/s | kiln cuBLAS GB/s | torch GB/s | copy GB/s | "
          "kiln / torch | max |kiln - torch| |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for what, n, k in shapes:
        ws = weights(n, k, copies_for(n, k))
        nbytes = n * k * 2
        dst = torch.empty_like(ws[0])
        copy = graph_ms(lambda: [dst.copy_(w) for w in ws], stream) / len(ws)
        for m in args.batch:
            x = torch.randn(m, k, device="cuda", dtype=DTYPE)
            ours, err = kiln_ms(ws, m, stream)
            theirs = graph_ms(lambda: [x @ w.t() for w in ws], stream) / len(ws)
            gbs = lambda ms: nbytes / ms / 1e6  # noqa: E731
            print(f"| {what} | {n} x {k} | {m} | {ours * 1e3:.1f} | {gbs(ours):,.0f} | "
                  f"{gbs(cublas[f'{what}|{m}']):,.0f} | {gbs(theirs):,.0f} | {2 * gbs(copy):,.0f} | "
                  f"{theirs / ours:.2f} | {err:.3g} |")
        del ws, dst
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
