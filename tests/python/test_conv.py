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
