"""kiln's RESIZE layer (resize.cu: one thread per output element) on the GPU
beside torch.nn.functional.interpolate, the upsamplings of detection and
segmentation decoders: YOLO's 2x nearest, FPN/UNet 2x bilinear, a bicubic
and a trilinear one, in bfloat16, float16 and float32.  Times are GPU
milliseconds per layer from CUDA-graph replay on both sides (kiln:
Session.capture/replay; torch: torch.cuda.graph), best of 5 rounds, with
the effective bandwidth (input read once + output written) for kiln.
`err` is max |kiln - torch| over max |torch|.

    python3 bench/bench_gpu_resize.py [--dtype bf16 fp16 fp32]
"""
import argparse

import torch
import torch.nn.functional as F

from graph_timing import best_ms, torch_graph_ms

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

# (name, input shape, torch mode, output spatial size)
CASES = [
    ("yolo nearest 2x", (1, 512, 20, 20), "nearest", (40, 40)),
    ("yolo nearest 2x b16", (16, 256, 40, 40), "nearest", (80, 80)),
    ("fpn bilinear 2x", (8, 256, 64, 64), "bilinear", (128, 128)),
    ("seg head bilinear 4x", (8, 21, 128, 128), "bilinear", (512, 512)),
    ("bicubic 2x", (8, 64, 128, 128), "bicubic", (256, 256)),
    ("trilinear 2x", (2, 32, 32, 32, 32), "trilinear", (64, 64, 64)),
]
ONNX = {"nearest": ("nearest", "asymmetric"), "bilinear": ("linear", "pytorch_half_pixel"),
        "bicubic": ("cubic", "pytorch_half_pixel"), "trilinear": ("linear", "pytorch_half_pixel")}


def kiln_ms(x, mode, size, stream):
    import kiln
    onnx_mode, coord = ONNX[mode]
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        t = kiln.Tensor(name="x", shape=list(x.shape), dtype=kiln.to_dtype(x.dtype))
        kiln.resize(t, sizes=list(x.shape[:2]) + list(size), mode=onnx_mode, coordinate_transformation_mode=coord,
                    nearest_mode="floor").mark_output("y")
    session = kiln.Session.from_serialized_engine(builder.build_engine(net), device="cuda")
    y = torch.empty(*x.shape[:2], *size, device="cuda", dtype=x.dtype)
    with torch.cuda.stream(stream):
        session.capture({"x": x}, {"y": y}, stream=stream)
    session.replay(stream)
    stream.synchronize()
    return best_ms(lambda: session.replay(stream), stream), y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", nargs="+", default=["bf16", "fp16", "fp32"], choices=sorted(DTYPES))
    args = ap.parse_args()
    stream = torch.cuda.Stream()
    print(f"RESIZE on {torch.cuda.get_device_name()}: GPU ms per layer from graph replay")
    print("| case | dtype | kiln ms | torch ms | kiln GB/s | err |")
    print("|---|---|---|---|---|---|")
    for name, shape, mode, size in CASES:
        for dn in args.dtype:
            dt = DTYPES[dn]
            g = torch.Generator(device="cuda").manual_seed(len(name))
            x = torch.randn(*shape, device="cuda", generator=g).to(dt)
            kw = {} if mode == "nearest" else {"align_corners": False}
            ours, y = kiln_ms(x, mode, size, stream)
            theirs, want = torch_graph_ms(lambda: F.interpolate(x, size=size, mode=mode, **kw), stream)
            err = ((y.float() - want.float()).abs().max() / want.float().abs().max().clamp_min(1e-30)).item()
            gbs = (x.numel() + y.numel()) * x.element_size() / (ours * 1e-3) / 1e9
            print(f"| {name} {list(shape)} | {dn} | {ours:.3f} | {theirs:.3f} | {gbs:.0f} | {err:.1e} |")


if __name__ == "__main__":
    main()
