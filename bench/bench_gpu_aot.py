"""Ahead-of-time plugins on the GPU (issue 5).

1. Launch overhead: the example's AOT look-up engine (10 tokens x 1024
   float16) run by kiln's C runtime (kiln_context_enqueue) against a raw
   cuLaunchKernel of the same cubin: target within 2 µs per launch.  Measured
   by the C program bench_aot (no Python in the timed loops); this script
   builds the engine, saves the cubin kiln compiled and runs it.
2. The same engine AOT (kiln::TritonAOT) against JIT (the plugin's forward,
   Triton launched from Python) through session.run, at 10 x 1024 and
   4096 x 4096 float16: host wall-clock per run (launch-bound for the small
   one) and GPU time per run (CUDA events; bandwidth-bound for the large one).
Needs a GPU; run with KILN_BUILD_DIR set (bench_aot is looked for in
$KILN_BUILD_DIR/bench)."""
import os
import subprocess
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "python_plugin"))

import torch  # noqa: E402

import kiln  # noqa: E402
import kiln.aot as kaot  # noqa: E402

if not (kiln.cuda_available() and torch.cuda.is_available()):
    print("skipped: needs a GPU that kiln and torch can use")
    sys.exit(0)

from gpu_bench_common import per_call_us, time_cuda  # noqa: E402  (imports plugin_lib)
from plugin_lib import LookUpPlugin, LookUpPluginAOT  # noqa: E402
from plugin_lib.lookup_kernel import launch_config  # noqa: E402

SIZES = [(10, 1024, 1024), (4096, 4096, 4096)]   # tokens, hidden, vocab


def build(cls, prefer_aot, tokens, hidden, vocab):
    builder = kiln.Builder()
    net = builder.create_network(prefer_aot=prefer_aot)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1,), dtype="int32",
                        dim_range=OrderedDict([("num_tokens", [(1, tokens, tokens)])]))
        y = kiln.Tensor(name="y", shape=(vocab, hidden), dtype="float16")
        cls(False, False)(x, y).mark_output("output")
    return bytes(builder.build_engine(net))


def build_aot_capturing_cubin(tokens, hidden, vocab):
    """The AOT engine, plus the compiled kernel kiln.aot made for it."""
    captured = []
    original = kaot._compile

    def spy(*args, **kwargs):
        k = original(*args, **kwargs)
        captured.append(k)
        return k

    kaot._compile = spy
    try:
        engine = build(LookUpPluginAOT, True, tokens, hidden, vocab)
    finally:
        kaot._compile = original
    return engine, captured[-1]


def gpu_us(fn, stream, iterations=200, warmup=20):
    return time_cuda(fn, iterations, warmup, stream) * 1e3


def launch_overhead():
    tokens, hidden, vocab = SIZES[0]
    engine, compiled = build_aot_capturing_cubin(tokens, hidden, vocab)
    block, _ = launch_config(hidden, 2)   # float16 tables
    md = compiled.metadata
    exe = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")) / "bench" / "bench_aot"
    if not exe.is_file():
        print(f"bench_aot not built ({exe}): skipping the C launch comparison")
        return True
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "lookup_aot.engine").write_bytes(engine)
        (Path(d) / "kernel.cubin").write_bytes(compiled.asm["cubin"])
        cmd = [str(exe), str(Path(d) / "lookup_aot.engine"), str(Path(d) / "kernel.cubin"), md.name, str(tokens),
               str(vocab), str(hidden), str(block), str(md.num_warps), str(md.shared)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        print(r.stdout, r.stderr, sep="")
        return r.returncode == 0


def aot_vs_jit():
    rows = []
    stream = torch.cuda.Stream()
    ok = True
    for tokens, hidden, vocab in SIZES:
        index = torch.randint(0, vocab, (tokens,), dtype=torch.int32, device="cuda")
        table = torch.randn(vocab, hidden, device="cuda").half()
        want = table[index.long()]
        results = {}
        for name, cls, prefer in (("AOT", LookUpPluginAOT, True), ("JIT", LookUpPlugin, False)):
            s = kiln.Session.from_serialized_engine(build(cls, prefer, tokens, hidden, vocab), device="cuda")
            out = torch.empty(tokens, hidden, dtype=torch.float16, device="cuda")

            def run():
                s.run({"x": index, "y": table}, {"output": out}, stream=stream.cuda_stream)

            host = per_call_us(run, iterations=2000 if tokens * hidden < 1 << 20 else 200)
            dev = gpu_us(run, stream)
            torch.cuda.synchronize()
            same = torch.equal(out, want)
            ok = ok and same
            results[name] = (host, dev, same)
        for name in ("AOT", "JIT"):
            host, dev, same = results[name]
            gbps = 2 * tokens * hidden * 2 / (dev * 1e-6) / 1e9
            rows.append(f"| {tokens:>5} x {hidden:<5} | {name} | {host:9.2f} | {dev:9.2f} | {gbps:7.1f} | "
                        f"{'yes' if same else 'NO'} |")
    print("\nAOT (kiln::TritonAOT, C launch) vs JIT (forward, Triton from Python), session.run, float16\n")
    print("| tokens x hidden | path | host µs/run | GPU µs/run | GB/s | matches torch |")
    print("|-----------------|------|-------------|------------|------|---------------|")
    print("\n".join(rows))
    return ok


def main():
    print(f"device: {torch.cuda.get_device_name()}, triton {kaot._triton_version()}, "
          f"target {kaot.default_target()}")
    ok = launch_overhead()
    ok = aot_vs_jit() and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
