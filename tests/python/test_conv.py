"""kiln.conv (the CONV op: ONNX Conv) against torch.nn.functional.conv1d,
conv2d and conv3d, on the CPU and (when there is one) the GPU: strides,
padding (symmetric, asymmetric, symbolic), dilations, groups (depthwise
included), with and without bias, in float32, float16 and bfloat16.  The
input has dynamic axes, so one engine runs several shapes."""
import pytest
import torch
import torch.nn.functional as F

import kiln
from kiln.runtime import Session

from conftest import HAVE_GPU

DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
# Sums of up to a few hundred products: float32 sums, one rounding at the end.
TOL = {torch.float32: (1e-4, 1e-4), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def run_conv(xs, w, bias, device, weights_as_inputs=False, **kw):
    """kiln.conv of a dynamic-shaped x (every axis symbolic) with w and bias
    as constants (or as inputs); runs each x of xs on one engine."""
    builder = kiln.Builder()
    net = builder.create_network()
    x0 = xs[0]
    with kiln.net_guard(net):
        dims = {f"x{i}": [(1, d, max(d, max(x.shape[i] for x in xs)))] for i, d in enumerate(x0.shape)}
        t = kiln.Tensor(name="x", shape=[-1] * x0.dim(), dtype=kiln.to_dtype(x0.dtype), dim_range=dims)
        if weights_as_inputs:
            wt = kiln.Tensor(name="w", shape=list(w.shape), dtype=kiln.to_dtype(w.dtype))
            bt = None if bias is None else kiln.Tensor(name="b", shape=list(bias.shape), dtype=kiln.to_dtype(bias.dtype))
        else:
            wt = kiln.constant(w)
            bt = None if bias is None else kiln.constant(bias)
        pads = kw.pop("pads", None)
        if callable(pads):
            pads = pads(t)
        y = kiln.conv(t, wt, bt, pads=pads, **kw)
        assert y.dtype == t.dtype
        y.mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device=device)
    outs = []
    for x in xs:
        feed = {"x": x.to(device)}
        if weights_as_inputs:
            feed["w"] = w.to(device)
            if bias is not None:
                feed["b"] = bias.to(device)
        outs.append(s(feed)["y"].cpu())
    return outs


def reference(x, w, bias, stride=1, padding=0, dilation=1, groups=1):
    """torch's convolution in float32 (float16/bfloat16 rounded once at the end, as kiln)."""
    k = x.dim() - 2
    y = TORCH_CONV[k](x.float(), w.float(), None if bias is None else bias.float(), stride=stride,
                      padding=padding, dilation=dilation, groups=groups)
    return y.to(x.dtype)


def close(got, want):
    rtol, atol = TOL[want.dtype]
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype
    torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=atol)


CASES = [
    # (k, x shape, w shape, strides, pads (torch padding), dilations, group)
    (1, (2, 4, 17), (6, 4, 3), 1, 0, 1, 1),
    (1, (2, 4, 17), (6, 2, 5), 2, 2, 1, 2),
    (1, (1, 3, 30), (5, 3, 3), 3, 1, 4, 1),
    (2, (2, 3, 11, 9), (8, 3, 3, 3), 1, 1, 1, 1),
    (2, (1, 4, 12, 10), (6, 2, 3, 2), (2, 1), (1, 0), (1, 2), 2),
    (2, (2, 6, 9, 9), (6, 1, 3, 3), 1, 1, 1, 6),          # depthwise
    (2, (1, 6, 9, 8), (12, 1, 3, 3), 2, 1, 2, 6),         # depthwise, channel multiplier 2
    (2, (1, 5, 7, 7), (4, 5, 1, 1), 1, 0, 1, 1),          # 1x1
    (3, (1, 2, 6, 7, 5), (4, 2, 3, 2, 3), (1, 2, 1), (1, 0, 1), 1, 1),
    (3, (2, 4, 5, 6, 6), (4, 2, 2, 3, 3), 2, 1, (1, 1, 2), 2),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}d-{c[1]}-{c[2]}-g{c[6]}")
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv_matches_torch(device, dtype, case, with_bias):
    k, xs, ws, stride, padding, dilation, group = case
    x, w = rand(*xs, dtype=dtype), rand(*ws, dtype=dtype, seed=1)
    bias = rand(ws[0], dtype=dtype, seed=2) if with_bias else None
    per_axis = lambda v: [v] * k if isinstance(v, int) else list(v)   # noqa: E731
    (got,) = run_conv([x], w, bias, device, strides=stride, pads=per_axis(padding), dilations=dilation,
                      group=group)
    close(got, reference(x, w, bias, stride, padding, dilation, group))


@pytest.mark.parametrize("device", DEVICES)
def test_conv_one_engine_serves_every_shape(device):
    # Batch and spatial sizes symbolic: the output sizes are expressions.
    w, b = rand(5, 3, 3, 3, seed=1), rand(5, seed=2)
    xs = [rand(2, 3, 10, 12), rand(1, 3, 5, 7, seed=3), rand(3, 3, 16, 9, seed=4)]
    outs = run_conv(xs, w, b, device, strides=2, pads=1, dilations=1)
    for x, got in zip(xs, outs):
        close(got, reference(x, w, b, 2, 1))


@pytest.mark.parametrize("device", DEVICES)
def test_conv_asymmetric_and_symbolic_pads(device):
    # ONNX's 2k pads (begins, then ends), one of them a function of the input's
    # size: SAME_UPPER padding of a symbolic width with stride 1 and kernel 4.
    w = rand(2, 3, 3, 4, seed=1)
    xs = [rand(1, 3, 6, 7), rand(2, 3, 4, 11, seed=5)]

    def pads(t):
        total = 3 + 0 * t.shape[3]   # 3 = kernel - 1, as an expression of the symbolic width
        return [0, total // 2, 2, total - total // 2]
    outs = run_conv(xs, w, None, device, pads=pads)
    for x, got in zip(xs, outs):
        want = reference(F.pad(x, (1, 2, 0, 2)), w, None)
        close(got, want)
        assert got.shape[3] == x.shape[3]


@pytest.mark.parametrize("device", DEVICES)
def test_conv_weights_as_inputs(device):
    # Channel counts symbolic at build time: the channel rules become run-time checks.
    x, w, b = rand(2, 4, 8), rand(6, 2, 3, seed=1), rand(6, seed=2)
    (got,) = run_conv([x], w, b, device, weights_as_inputs=True, group=2)
    close(got, reference(x, w, b, groups=2))


# ---- the CUDA fast paths (src/backend/cuda/conv.cu, kc_conv_choose) ---------------------
# The shapes above mostly take the direct kernel on CUDA (fewer than 8 output
# channels per group, depthwise).  These take the others.  A session always
# gives its layers the backend's workspace, so here the convolutions with at
# least 8 output channels per group and a depth C/group·taps of at least 8
# take im2col + cuBLAS (the batched form: a GEMM per image; the flat form,
# batch > 1 and fewer than 128 positions: one GEMM over every image's
# positions, then a permute), 1x1 stride-1 convolutions included in the
# flat form and otherwise x as it lies through cuBLAS (batched over the batch
# or over the groups, whichever is larger; a bias first, then beta 1).  The
# implicit-GEMM kernels (WMMA 64x64 or 128x64 tiles, depth 32, for halves;
# 64x64 SIMT, depth 16, for float32) run these shapes under
# KILN_CUDA_CONV=igemm in a child process below (and in
# tests/c/test_cuda_backend.c, whose launches without a workspace take
# them).  Rows, columns (batch · positions) and depth are chosen not to be
# multiples of the tiles.

CUDA_1X1 = [
    # (k, x shape, w shape, group)
    (2, (2, 8, 9, 7), (12, 8, 1, 1), 1),
    (2, (1, 64, 14, 14), (256, 64, 1, 1), 1),
    (2, (5, 8, 4, 4), (8, 4, 1, 1), 2),           # batch >= groups: batched over n, a call per group
    (2, (3, 12, 5, 6), (16, 3, 1, 1), 4),         # batch < groups: batched over groups, a call per n
    (1, (2, 16, 33), (24, 16, 1), 1),
    (1, (1, 6, 10), (9, 2, 1), 3),
    (3, (2, 6, 3, 4, 5), (10, 6, 1, 1, 1), 1),
    (3, (2, 6, 3, 4, 5), (10, 3, 1, 1, 1), 2),
]

CUDA_IGEMM = [
    # (k, x shape, w shape, strides, pads (torch padding), dilations, group)
    (2, (2, 5, 13, 11), (70, 5, 3, 3), 1, 1, 1, 1),              # M 70, K 45, N 286: no multiple of a tile
    (2, (3, 19, 17, 15), (130, 19, 3, 3), 2, 1, 1, 1),           # M 130: the 128-row tiles (halves)
    (2, (2, 64, 10, 10), (96, 64, 3, 3), 1, 1, 1, 1),            # K 576: many depth steps
    (2, (2, 3, 32, 32), (64, 3, 7, 7), 2, 3, 1, 1),              # a ResNet stem
    (2, (1, 16, 20, 20), (40, 8, 3, 3), 1, 2, 2, 2),             # groups, dilation
    (2, (2, 12, 11, 13), (48, 3, 3, 2), (2, 1), (1, 0), (1, 2), 4),
    (2, (2, 32, 9, 9), (64, 32, 1, 1), 2, 0, 1, 1),              # 1x1 of stride 2: not cuBLAS
    (2, (1, 16, 5, 5), (24, 16, 1, 1), 1, 1, 1, 1),              # 1x1 with padding: not cuBLAS
    (2, (33, 8, 3, 3), (16, 8, 3, 3), 1, 1, 1, 1),               # batch 33: columns span many batch elements
    (1, (2, 12, 100), (36, 4, 5), 2, 2, 3, 3),
    (1, (3, 40, 37), (17, 40, 3), 1, 0, 1, 1),
    (3, (2, 8, 6, 7, 5), (16, 8, 3, 3, 3), (1, 2, 1), 1, 1, 1),   # K 216
    (3, (1, 4, 5, 6, 7), (18, 2, 2, 3, 2), 2, (1, 0, 1), (2, 1, 1), 2),
]


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", CUDA_1X1, ids=lambda c: f"{c[0]}d-{c[1]}-{c[2]}-g{c[3]}")
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv_cuda_1x1(dtype, case, with_bias):
    k, xs, ws, group = case
    x, w = rand(*xs, dtype=dtype), rand(*ws, dtype=dtype, seed=1)
    bias = rand(ws[0], dtype=dtype, seed=2) if with_bias else None
    (got,) = run_conv([x], w, bias, "cuda", group=group)
    close(got, reference(x, w, bias, groups=group))


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", CUDA_IGEMM, ids=lambda c: f"{c[0]}d-{c[1]}-{c[2]}-g{c[6]}")
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv_cuda_implicit_gemm(dtype, case, with_bias):
    k, xs, ws, stride, padding, dilation, group = case
    x, w = rand(*xs, dtype=dtype), rand(*ws, dtype=dtype, seed=1)
    bias = rand(ws[0], dtype=dtype, seed=2) if with_bias else None
    per_axis = lambda v: [v] * k if isinstance(v, int) else list(v)   # noqa: E731
    (got,) = run_conv([x], w, bias, "cuda", strides=stride, pads=per_axis(padding), dilations=dilation,
                      group=group)
    close(got, reference(x, w, bias, stride, padding, dilation, group))


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_conv_cuda_implicit_gemm_asymmetric_pads(dtype):
    # ONNX pads [top, left, bottom, right] = [0, 2, 3, 1] on a 3x4 kernel, one engine, two shapes.
    w, b = rand(20, 6, 3, 4, dtype=dtype, seed=1), rand(20, dtype=dtype, seed=2)
    xs = [rand(2, 6, 9, 10, dtype=dtype), rand(1, 6, 12, 7, dtype=dtype, seed=3)]
    outs = run_conv(xs, w, b, "cuda", pads=[0, 2, 3, 1], strides=[2, 1])
    for x, got in zip(xs, outs):
        close(got, reference(F.pad(x, (2, 1, 0, 3)), w, b, stride=(2, 1)))


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
def test_conv_cuda_graph_capture(dtype):
    # The 1x1 path's cuBLAS calls (and its bias kernel) and the implicit-GEMM
    # kernel recorded in a CUDA graph and replayed with new input data.
    wa, ba = rand(32, 16, 1, 1, dtype=dtype, seed=1), rand(32, dtype=dtype, seed=2)
    wb = rand(24, 16, 3, 3, dtype=dtype, seed=3)
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        t = kiln.Tensor(name="x", shape=[4, 16, 9, 9], dtype=kiln.to_dtype(dtype))
        kiln.conv(t, kiln.constant(wa), kiln.constant(ba)).mark_output("h")
        kiln.conv(t, kiln.constant(wb), None, pads=[1, 1], strides=2).mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device="cuda")
    stream = torch.cuda.Stream()
    x = rand(4, 16, 9, 9, dtype=dtype).cuda()
    h = torch.empty(4, 32, 9, 9, dtype=dtype, device="cuda")
    y = torch.empty(4, 24, 5, 5, dtype=dtype, device="cuda")
    with torch.cuda.stream(stream):
        s.capture({"x": x}, {"h": h, "y": y}, stream=stream)
    for seed in (5, 6):
        x.copy_(rand(4, 16, 9, 9, dtype=dtype, seed=seed).cuda())
        stream.wait_stream(torch.cuda.current_stream())
        s.replay(stream)
        stream.synchronize()
        xc = x.cpu()
        close(h.cpu(), reference(xc, wa, ba))
        close(y.cpu(), reference(xc, wb, None, stride=2, padding=1))


# A child process runs `cases` (CUDA_IGEMM's form) in `dtypes` with a bias,
# each against torch, under `env` (KILN_CUDA_CONV and
# KILN_CUDA_CONV_WORKSPACE_MB are read once per process, hence a child);
# KILN_CUDA_CONV_LOG=1 makes conv.cu print each run's path, returned.
CHILD = r"""
import json, sys, torch, torch.nn.functional as F, kiln
from kiln.runtime import Session
TOL = {"float32": 1e-4, "float16": 2e-3, "bfloat16": 1.6e-2}
cases, dtypes = json.loads(sys.argv[1]), sys.argv[2].split(",")
for k, xs, ws, stride, padding, dilation, group in cases:
    for name in dtypes:
        dt = getattr(torch, name)
        g = torch.Generator().manual_seed(0)
        x, w, b = (torch.randn(*s, generator=g).to(dt) for s in (xs, ws, [ws[0]]))
        per_axis = lambda v: [v] * k if isinstance(v, int) else list(v)
        builder = kiln.Builder()
        net = builder.create_network()
        with kiln.net_guard(net):
            t = kiln.Tensor(name="x", shape=list(xs), dtype=kiln.to_dtype(dt))
            kiln.conv(t, kiln.constant(w), kiln.constant(b), strides=stride, pads=per_axis(padding),
                      dilations=dilation, group=group).mark_output("y")
        got = Session.from_serialized_engine(builder.build_engine(net), device="cuda")({"x": x.cuda()})["y"].cpu()
        want = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[k](x.float(), w.float(), b.float(), stride=stride,
                                                            padding=padding, dilation=dilation, groups=group)
        torch.testing.assert_close(got.float(), want.to(dt).float(), rtol=TOL[name], atol=TOL[name],
                                   msg=lambda m: f"{name} x {xs} w {ws}: {m}")
print("ok")
"""


def run_child(cases, env, dtypes=("float32", "float16", "bfloat16")):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    base = {k: v for k, v in os.environ.items() if not k.startswith("KILN_CUDA_CONV")}
    env = dict(base, KILN_CUDA_CONV_LOG="1", **env,
               PYTHONPATH=os.pathsep.join([str(root / "python"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases), ",".join(dtypes)], env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-3000:]
    return [line for line in r.stderr.splitlines() if line.startswith("kiln cuda conv:")]


# The forced paths' shapes: the fast-path lists, a depthwise and a small one
# (which a forced path takes too where it can), a 1x1 stride-1 shape of few
# positions at batch > 1 (im2col's flat form), a downsampling 1x1/2.
FORCED_CASES = CUDA_IGEMM + [(k, xs, ws, 1, 0, 1, g) for k, xs, ws, g in CUDA_1X1] + [
    (2, (2, 6, 9, 9), (6, 1, 3, 3), 1, 1, 1, 6),
    (2, (2, 3, 11, 9), (4, 3, 3, 3), 1, 1, 1, 1),
    (2, (3, 32, 7, 7), (24, 32, 1, 1), 1, 0, 1, 1),
    (2, (2, 64, 14, 14), (48, 64, 1, 1), 2, 0, 1, 1),
]


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("path", ["direct", "igemm", "im2col", "im2col-batched", "im2col-flat"])
def test_conv_cuda_forced_path(path):
    # KILN_CUDA_CONV=<path> in a child: every shape still matches torch, and
    # the path ran (where it can: a forced im2col form leaves a 1x1 stride-1
    # convolution in the batched form to the 1x1 path, which is that form).
    log = run_child(FORCED_CASES, {"KILN_CUDA_CONV": path})
    assert len(log) >= 3 * len(FORCED_CASES), log[:5]
    paths = [line.rsplit(": ", 1)[1].split(",")[0] for line in log]
    if path in ("direct", "igemm"):
        assert set(paths) == {path}, sorted(set(paths))
    elif path == "im2col":
        assert set(paths) <= {"im2col-batched", "im2col-flat", "1x1"} and {"im2col-batched", "im2col-flat"} <= set(paths)
    else:
        assert set(paths) <= {path, "1x1"} and path in paths, sorted(set(paths))


# The usual choice (no KILN_CUDA_CONV; a session gives the workspace): the
# path each shape takes, as KILN_CUDA_CONV_LOG prints it.
DEFAULT_PATHS = [
    ((2, (2, 5, 13, 11), (70, 5, 3, 3), 1, 1, 1, 1), "im2col-batched"),    # 143 positions
    ((2, (2, 64, 10, 10), (96, 64, 3, 3), 1, 1, 1, 1), "im2col-flat"),     # 100 positions, batch 2
    ((2, (1, 16, 20, 20), (40, 8, 3, 3), 1, 2, 2, 2), "im2col-batched"),   # batch 1
    ((2, (2, 32, 9, 9), (64, 32, 1, 1), 2, 0, 1, 1), "im2col-flat"),       # 1x1/2
    ((2, (2, 64, 14, 14), (48, 64, 1, 1), 1, 0, 1, 1), "1x1"),             # 196 positions: x as it lies
    ((2, (3, 32, 7, 7), (24, 32, 1, 1), 1, 0, 1, 1), "im2col-flat"),       # 1x1, 49 positions, batch 3
    ((2, (2, 6, 9, 9), (6, 1, 3, 3), 1, 1, 1, 6), "direct"),               # depthwise
    ((2, (2, 3, 11, 9), (4, 3, 3, 3), 1, 1, 1, 1), "direct"),              # 4 output channels
]


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
def test_conv_cuda_default_paths():
    dtypes = ("float32", "float16", "bfloat16")
    log = run_child([c for c, _ in DEFAULT_PATHS], {}, dtypes)
    # One line per run, case by case, dtype by dtype (the lines of one case
    # differ in the workspace bytes, not in the path).
    paths = [line.rsplit(": ", 1)[1].split(",")[0] for line in log]
    want = [p for _, p in DEFAULT_PATHS for _ in dtypes]
    assert paths == want, log


# Batches larger than one chunk: KILN_CUDA_CONV_WORKSPACE_MB=0.2 caps the
# im2col workspace at 0.2 MiB, so each of these takes several chunks (the
# last one short) in at least one dtype: the batched form (3x3 at 12x12, a
# 3-d and a 1-d one), the flat form (3x3 with groups at 11x11, a 1x1/2
# downsampling at 14x14, a 1x1 stride 1 at 7x7).
CHUNK_CASES = [
    (2, (7, 16, 12, 12), (24, 16, 3, 3), 1, 1, 1, 1),
    (3, (3, 8, 6, 7, 8), (16, 8, 3, 3, 3), 1, 1, 1, 1),
    (1, (4, 16, 200), (24, 16, 5), 1, 2, 1, 1),
    (2, (9, 32, 11, 11), (48, 16, 3, 3), 1, 1, 1, 2),
    (2, (6, 256, 14, 14), (128, 256, 1, 1), 2, 0, 1, 1),
    (2, (11, 128, 7, 7), (96, 128, 1, 1), 1, 0, 1, 1),
]


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
def test_conv_cuda_im2col_chunks():
    import re
    log = run_child(CHUNK_CASES, {"KILN_CUDA_CONV_WORKSPACE_MB": "0.2"})
    chunked = {m.group(1) for m in (re.search(r"(im2col-\w+), (\d+) chunks", line) for line in log)
               if m and int(m.group(2)) > 1}
    assert chunked == {"im2col-batched", "im2col-flat"}, log


def build_conv(x_shape, w_shape, bias_shape=None, dtype=kiln.float32, wdtype=None, **kw):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=list(x_shape), dtype=dtype)
        w = kiln.Tensor(name="w", shape=list(w_shape), dtype=wdtype or dtype)
        b = None if bias_shape is None else kiln.Tensor(name="b", shape=list(bias_shape), dtype=dtype)
        return kiln.conv(x, w, b, **kw)


@pytest.mark.parametrize("shapes, kw, message", [
    (((1, 4, 8), (6, 3, 3)), {}, "input channels must equal"),
    (((1, 4, 8), (6, 2, 3)), {"group": 3}, "input channels must equal"),
    (((1, 6, 8), (5, 2, 3)), {"group": 3}, "group 3 must divide"),
    (((1, 4, 8), (6, 4, 3), (5,)), {}, "bias length"),
    (((1, 4, 8), (6, 4, 3)), {"strides": 0}, "stride 0 of spatial axis 0"),
    (((1, 4, 8), (6, 4, 3)), {"dilations": [-1]}, "dilation -1 of spatial axis 0"),
    (((1, 4, 8), (6, 4, 3)), {"group": 0}, "group 0"),
    (((1, 4, 8), (6, 4, 3)), {"pads": [-1, 0]}, "begin pad of spatial axis 0 is -1"),
    (((1, 4, 2), (6, 4, 3)), {}, "shorter than the dilated kernel"),
    (((1, 4, 8, 8), (6, 4, 3)), {}, "weight 'w' has rank 3"),
])
def test_conv_refusals_name_the_fault(shapes, kw, message):
    with pytest.raises(kiln.Error, match=message):
        build_conv(*shapes, **kw)


def test_conv_refuses_other_dtypes():
    with pytest.raises(kiln.Error, match="dtype int32 is not supported"):
        build_conv((1, 4, 8), (6, 4, 3), dtype=kiln.int32)
    with pytest.raises(kiln.Error, match="weight 'w' is float16"):
        build_conv((1, 4, 8), (6, 4, 3), wdtype=kiln.float16)


def test_conv_python_argument_errors():
    with pytest.raises(ValueError, match="strides has 2 entries"):
        build_conv((1, 4, 8), (6, 4, 3), strides=[1, 1])
    with pytest.raises(ValueError, match="pads has 3 entries"):
        build_conv((1, 4, 8), (6, 4, 3), pads=[1, 1, 1])
    with pytest.raises(ValueError, match="1 to 3 spatial axes"):
        build_conv((1, 4), (6, 4), strides=[])


def test_conv_channel_mismatch_at_run_time_names_the_tensors():
    # x's channels are symbolic when the network is built: the rule's check
    # fails the run that feeds 4 channels to a weight of 3 per group.
    x, w = rand(1, 4, 8), rand(6, 3, 3, seed=1)
    with pytest.raises(kiln.Error, match="conv of 'x' and 'w': input channels must equal"):
        run_conv([x], w, None, "cpu", weights_as_inputs=True)


# ---- conv_transpose ------------------------------------------------------------------

TORCH_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}

CASES_T = [
    # (k, x shape, w shape [C, M/group, K..], strides, pads (torch padding), dilations, group, output_padding)
    (1, (2, 4, 9), (4, 3, 3), 1, 0, 1, 1, 0),
    (1, (1, 4, 7), (4, 2, 4), 2, 1, 1, 2, 1),
    (1, (2, 3, 6), (3, 5, 3), 3, 2, 2, 1, 2),
    (2, (2, 3, 5, 4), (3, 6, 3, 3), 2, 1, 1, 1, 1),
    (2, (1, 4, 6, 5), (4, 1, 2, 3), (1, 2), (0, 1), (2, 1), 4, (0, 1)),   # depthwise
    (2, (1, 6, 4, 4), (6, 2, 3, 3), (3, 2), 0, 1, 3, 0),
    (3, (1, 2, 3, 4, 3), (2, 3, 2, 3, 2), (2, 1, 2), (1, 0, 0), 1, 1, (1, 0, 1)),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("case", CASES_T, ids=lambda c: f"{c[0]}d-{c[1]}-{c[2]}-g{c[6]}")
@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "nobias"])
def test_conv_transpose_matches_torch(device, dtype, case, with_bias):
    k, xs, ws, stride, padding, dilation, group, output_padding = case
    x, w = rand(*xs, dtype=dtype), rand(*ws, dtype=dtype, seed=1)
    bias = rand(ws[1] * group, dtype=dtype, seed=2) if with_bias else None
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        dims = {f"x{i}": [(1, d, d + 3)] for i, d in enumerate(x.shape)}
        t = kiln.Tensor(name="x", shape=[-1] * x.dim(), dtype=kiln.to_dtype(dtype), dim_range=dims)
        y = kiln.conv_transpose(t, kiln.constant(w), None if bias is None else kiln.constant(bias), strides=stride,
                                pads=padding, dilations=dilation, group=group, output_padding=output_padding)
        y.mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device=device)
    xs_all = [x, rand(*[d + 1 if i != 1 else d for i, d in enumerate(xs)], dtype=dtype, seed=7)]   # two shapes
    for xi in xs_all:
        got = s({"x": xi.to(device)})["y"].cpu()
        want = TORCH_CONV_T[k](xi.float(), w.float(), None if bias is None else bias.float(), stride=stride,
                               padding=padding, output_padding=output_padding, groups=group,
                               dilation=dilation).to(dtype)
        close(got, want)


def test_conv_transpose_refusals():
    def build(x_shape, w_shape, bias_shape=None, **kw):
        builder = kiln.Builder()
        net = builder.create_network()
        with kiln.net_guard(net):
            x = kiln.Tensor(name="x", shape=list(x_shape), dtype=kiln.float32)
            w = kiln.Tensor(name="w", shape=list(w_shape), dtype=kiln.float32)
            b = None if bias_shape is None else kiln.Tensor(name="b", shape=list(bias_shape), dtype=kiln.float32)
            return kiln.conv_transpose(x, w, b, **kw)
    with pytest.raises(kiln.Error, match="weight's first axis must equal the input channels"):
        build((1, 4, 5), (3, 2, 3))
    with pytest.raises(kiln.Error, match="group 3 must divide the input channels"):
        build((1, 4, 5), (4, 2, 3), group=3)
    with pytest.raises(kiln.Error, match=r"bias length must equal the output channels \(5 vs 4\)"):
        build((1, 4, 5), (4, 2, 3), (5,), group=2)
    with pytest.raises(kiln.Error, match="output size .* is -1, not >= 1"):
        build((1, 4, 1), (4, 2, 3), pads=[2, 2])
    # Output [1, 4, 2·(5-1) + 3 - 2 + 1 = 10]: output_padding is a negative end pad.
    y = build((1, 4, 5), (4, 2, 3), strides=2, pads=1, output_padding=1, group=2)
    assert [int(d) for d in y.shape] == [1, 4, 10]


# No input channels (x [2, 0, 5, 5], w [4, 0, 3, 3]): the output is the bias
# alone (torch answers an empty [2, 0, 5, 5] instead, so the child checks
# the bias).  A forced im2col form sized its chunk by dividing by the empty
# col matrix's size (SIGFPE in the workspace query); the direct kernel runs it.
NO_CHANNELS_CHILD = r"""
import sys, torch, kiln
from kiln.runtime import Session
DEV = sys.argv[1] if len(sys.argv) > 1 else "cuda"
w, b = torch.zeros(4, 0, 3, 3), torch.arange(4.0)
builder = kiln.Builder()
net = builder.create_network()
with kiln.net_guard(net):
    t = kiln.Tensor(name="x", shape=[2, 0, 5, 5], dtype=kiln.to_dtype(torch.float32))
    kiln.conv(t, kiln.constant(w), kiln.constant(b), strides=1, pads=[1, 1], dilations=1, group=1).mark_output("y")
got = Session.from_serialized_engine(builder.build_engine(net), device=DEV)({"x": torch.zeros(2, 0, 5, 5).to(DEV)})["y"]
torch.testing.assert_close(got.cpu(), b.view(1, 4, 1, 1).expand(2, 4, 5, 5))
print("ok")
"""


@pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU")
@pytest.mark.parametrize("path", ["im2col", "im2col-batched", "im2col-flat"])
def test_conv_cuda_forced_im2col_no_channels(path):
    import os
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, KILN_CUDA_CONV=path,
               PYTHONPATH=os.pathsep.join([str(root / "python"), os.environ.get("PYTHONPATH", "")]))
    r = subprocess.run([sys.executable, "-c", NO_CHANNELS_CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), (r.returncode, r.stderr[-3000:])
