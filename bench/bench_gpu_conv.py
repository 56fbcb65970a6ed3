"""ResNet-50's convolutions on the GPU: kiln's CONV layer (conv.cu: im2col into
the session's workspace + cuBLAS, cuBLAS on x as it lies for 1x1 stride-1
convolutions, the implicit-GEMM kernels without a workspace) beside
torch.nn.functional.conv2d (cuDNN, NCHW, torch.backends.cudnn.benchmark on,
TF32 off so that float32 is float32 on both sides), side by side in one run.

Each row is one conv layer of ResNet-50 (the stem, each stage's bottleneck
1x1 and 3x3 layers, the stride-2 ones and the downsampling shortcuts), with
a bias (batch norm folded in, as an inference export has it), at batch 1
and 32, in bfloat16, float16 and float32.  Times are GPU milliseconds per
layer from CUDA-graph replay on both sides (kiln: Session.capture/replay;
torch: torch.cuda.graph), best of 5 rounds.  `err` is max |kiln - torch|
over max |torch|.  `--path P ...` adds a column per forced path
(KILN_CUDA_CONV=P in a child process: direct, igemm, im2col, im2col-batched,
im2col-flat; conv.cu's top says what each forces); `--direct` is
`--path direct`.

The last table is a whole network: bench/resnet.py's plain-torch ResNet-50
exported with torch.onnx.export(dynamo=False) (which folds batch norm into
the convolutions), imported with kiln.onnx, kiln CUDA (graph replay) vs
torch eager, batch 1 and 32, in float16 (float32 when the float16 export
does not import).

    python3 bench/bench_gpu_conv.py [--dtype bf16 fp16 fp32] [--batch 1 32] [--only 3x3]
                                    [--path igemm im2col-batched im2col-flat direct] [--direct]
                                    [--no-network] [--no-layers]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F

from graph_timing import best_ms, torch_graph_ms

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
PATHS = ["direct", "igemm", "im2col", "im2col-batched", "im2col-flat"]   # KILN_CUDA_CONV's values

# (name, input channels, output channels, kernel, stride, pad, input size)
SHAPES = [
    ("stem 7x7/2", 3, 64, 7, 2, 3, 224),
    ("s1 1x1 64>64", 64, 64, 1, 1, 0, 56),
    ("s1 3x3 64", 64, 64, 3, 1, 1, 56),
    ("s1 1x1 64>256", 64, 256, 1, 1, 0, 56),
    ("s1 1x1 256>64", 256, 64, 1, 1, 0, 56),
    ("s2 1x1 256>128", 256, 128, 1, 1, 0, 56),
    ("s2 3x3/2 128", 128, 128, 3, 2, 1, 56),
    ("s2 down 1x1/2 256>512", 256, 512, 1, 2, 0, 56),
    ("s2 3x3 128", 128, 128, 3, 1, 1, 28),
    ("s2 1x1 128>512", 128, 512, 1, 1, 0, 28),
    ("s2 1x1 512>128", 512, 128, 1, 1, 0, 28),
    ("s3 1x1 512>256", 512, 256, 1, 1, 0, 28),
    ("s3 3x3/2 256", 256, 256, 3, 2, 1, 28),
    ("s3 down 1x1/2 512>1024", 512, 1024, 1, 2, 0, 28),
    ("s3 3x3 256", 256, 256, 3, 1, 1, 14),
    ("s3 1x1 256>1024", 256, 1024, 1, 1, 0, 14),
    ("s3 1x1 1024>256", 1024, 256, 1, 1, 0, 14),
    ("s4 1x1 1024>512", 1024, 512, 1, 1, 0, 14),
    ("s4 3x3/2 512", 512, 512, 3, 2, 1, 14),
    ("s4 down 1x1/2 1024>2048", 1024, 2048, 1, 2, 0, 14),
    ("s4 3x3 512", 512, 512, 3, 1, 1, 7),
    ("s4 1x1 512>2048", 512, 2048, 1, 1, 0, 7),
    ("s4 1x1 2048>512", 2048, 512, 1, 1, 0, 7),
]


def layer_inputs(shape, batch, dtype):
    _, cin, cout, k, _, _, hw = shape
    g = torch.Generator(device="cuda").manual_seed(cin * 1000 + cout + k)
    x = torch.randn(batch, cin, hw, hw, device="cuda", generator=g).to(dtype)
    w = (torch.randn(cout, cin, k, k, device="cuda", generator=g) / (cin * k * k) ** 0.5).to(dtype)
    b = torch.randn(cout, device="cuda", generator=g).to(dtype)
    return x, w, b


def kiln_layer(shape, x, w, b, stream):
    """(ms per layer from graph replay, output) of a one-conv kiln engine."""
    import kiln
    _, _, _, k, s, p, _ = shape
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        t = kiln.Tensor(name="x", shape=list(x.shape), dtype=kiln.to_dtype(x.dtype))
        kiln.conv(t, kiln.constant(w.cpu()), kiln.constant(b.cpu()), strides=s, pads=[p, p]).mark_output("y")
    session = kiln.Session.from_serialized_engine(builder.build_engine(net), device="cuda")
    ho = (x.shape[2] + 2 * p - k) // s + 1
    y = torch.empty(x.shape[0], w.shape[0], ho, ho, device="cuda", dtype=x.dtype)
    with torch.cuda.stream(stream):
        session.capture({"x": x}, {"y": y}, stream=stream)
    session.replay(stream)
    stream.synchronize()
    return best_ms(lambda: session.replay(stream), stream), y


def cases(args):
    shapes = [s for s in SHAPES if args.only in s[0]]
    return [(s, b, d) for d in args.dtype for b in args.batch for s in shapes]


def child(args):
    """A forced path's run (KILN_CUDA_CONV set by the parent): {case: ms} as JSON on the last line."""
    stream = torch.cuda.Stream()
    out = {}
    for shape, batch, d in cases(args):
        x, w, b = layer_inputs(shape, batch, DTYPES[d])
        out[f"{shape[0]}|{batch}|{d}"] = kiln_layer(shape, x, w, b, stream)[0]
    print(json.dumps(out))


def layers_table(args):
    forced = {}   # path: {case: ms}
    for path in args.path:
        r = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--no-network", "--child"],
                           env=dict(os.environ, KILN_CUDA_CONV=path), capture_output=True, text=True, timeout=3000)
        if r.returncode:
            raise RuntimeError(f"the KILN_CUDA_CONV={path} run failed:\n{r.stderr[-3000:]}")
        forced[path] = json.loads(r.stdout.strip().splitlines()[-1])
    stream = torch.cuda.Stream()
    print(f"device: {torch.cuda.get_device_name()}, {time.strftime('%Y-%m-%d')}, torch {torch.__version__} "
          f"(cuDNN {torch.backends.cudnn.version()}, benchmark on, TF32 off); GPU ms per layer from graph replay")
    head = "| layer | x | dtype | kiln ms | torch ms | kiln / torch |" + "".join(f" kiln {p} ms |" for p in forced)
    print(head + " TFLOP/s kiln | err |")
    print("|---" * (head.count("|") + 1) + "|")
    worst = 0.0
    for shape, batch, d in cases(args):
        name, cin, cout, k, s, p, hw = shape
        x, w, b = layer_inputs(shape, batch, DTYPES[d])
        ours, y = kiln_layer(shape, x, w, b, stream)
        want = F.conv2d(x, w, b, stride=s, padding=p)
        theirs, _ = torch_graph_ms(lambda: F.conv2d(x, w, b, stride=s, padding=p), stream)   # noqa: B023
        err = ((y.float() - want.float()).abs().max() / want.float().abs().max()).item()
        worst = max(worst, err)
        flops = 2 * y.numel() * cin * k * k
        cols = f"| {name} | {batch}x{cin}x{hw}x{hw} | {d} | {ours:.4f} | {theirs:.4f} | {ours / theirs:.2f} |"
        for p in forced:
            cols += f" {forced[p][f'{name}|{batch}|{d}']:.4f} |"
        print(f"{cols} {flops / ours / 1e9:.1f} | {err:.1e} |", flush=True)
        torch.cuda.empty_cache()
    tol = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 4e-2}
    limit = max(tol[d] for d in args.dtype)
    print(f"largest err {worst:.1e} (limit {limit:.0e})")
    return worst <= limit


def network_table(args):
    import kiln
    import kiln.onnx
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from resnet import ResNet50
    torch.manual_seed(0)
    model = ResNet50().eval()
    tmp = tempfile.mkdtemp()
    top = max(args.batch)
    sess = None
    for dtype in (torch.float16, torch.float32):
        try:
            model = model.to("cuda", dtype)
            path = os.path.join(tmp, f"resnet50_{str(dtype)[6:]}.onnx")
            x0 = torch.randn(2, 3, 224, 224, device="cuda", dtype=dtype)
            torch.onnx.export(model, (x0,), path, input_names=["x"], output_names=["y"],
                              dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}}, opset_version=17, dynamo=False)
            net = kiln.onnx.parse(path, dim_range={"batch": [(1, top, top)]})
            sess = kiln.Session.from_serialized_engine(kiln.Builder().build_engine(net), device="cuda")
            break
        except Exception as e:   # noqa: BLE001  (the float32 fallback says why)
            print(f"ResNet-50 in {dtype}: {type(e).__name__}: {str(e)[:300]}; trying float32")
    if sess is None:
        print("ResNet-50: no dtype imported")
        return False
    stream = torch.cuda.Stream()
    print(f"\nResNet-50 (bench/resnet.py), {str(dtype)[6:]}, kiln CUDA (kiln.onnx: batch norm folded by the export; "
          "graph replay) vs torch eager (cuDNN, batch norm as its own op); GPU ms per forward")
    print("| batch | kiln ms | torch eager ms | kiln / torch | err |")
    print("|---|---|---|---|---|")
    ok = True
    for b in args.batch:
        x = torch.randn(b, 3, 224, 224, device="cuda", dtype=dtype)
        with torch.no_grad():
            want = model(x)
        out = {"y": torch.empty_like(want)}
        with torch.cuda.stream(stream):
            sess.capture({"x": x}, out, stream=stream)
        sess.replay(stream)
        stream.synchronize()
        err = ((out["y"].float() - want.float()).abs().max() / want.float().abs().max()).item()
        ok = ok and err < (1e-3 if dtype == torch.float32 else 3e-2)
        ours = best_ms(lambda: sess.replay(stream), stream, reps=10)

        def eager():
            with torch.no_grad():
                model(x)
        with torch.cuda.stream(stream):
            for _ in range(3):
                eager()
        theirs = best_ms(eager, stream, reps=10)
        print(f"| {b} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} | {err:.1e} |", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", nargs="+", choices=list(DTYPES), default=["bf16", "fp16", "fp32"])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--only", default="", help="the layers whose name contains this (e.g. '3x3', 's4')")
    ap.add_argument("--path", nargs="+", choices=PATHS, default=[],
                    help="add a column per forced path (KILN_CUDA_CONV=PATH, a child process each)")
    ap.add_argument("--direct", action="store_true", help="the same as --path direct")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-network", action="store_true", help="skip the whole-network ResNet-50 table")
    ap.add_argument("--no-layers", action="store_true", help="only the whole-network table")
    args = ap.parse_args()
    if args.direct and "direct" not in args.path:
        args.path.append("direct")
    if not torch.cuda.is_available():
        print("bench_gpu_conv.py: no CUDA device (torch.cuda.is_available() is False); nothing to measure")
        return 1
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.child:
        return child(args)
    ok = True
    if not args.no_layers:
        ok = layers_table(args) and ok
    if not args.no_network:
        ok = network_table(args) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
