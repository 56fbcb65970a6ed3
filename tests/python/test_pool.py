"""kiln.max_pool and kiln.avg_pool (the POOL op: ONNX MaxPool, AveragePool)
against torch.nn.functional's max_pool1d..3d and avg_pool1d..3d, on the CPU
and (when there is one) the GPU: kernel sizes, strides, pads (symmetric,
asymmetric, symbolic), dilations, ceil_mode, count_include_pad, in
float32, float16 and bfloat16.  The input has dynamic axes, so one engine
runs several shapes."""
import math

import pytest
import torch
import torch.nn.functional as F

import kiln
from kiln.runtime import Session

from conftest import HAVE_GPU

DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
TORCH_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
TORCH_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def run_pool(fn, xs, device, **kw):
    """fn (kiln.max_pool or kiln.avg_pool) of a dynamic-shaped x (every axis
    symbolic); runs each x of xs on one engine."""
    builder = kiln.Builder()
    net = builder.create_network()
    x0 = xs[0]
    with kiln.net_guard(net):
        dims = {f"x{i}": [(1, d, max(d, max(x.shape[i] for x in xs)))] for i, d in enumerate(x0.shape)}
        t = kiln.Tensor(name="x", shape=[-1] * x0.dim(), dtype=kiln.to_dtype(x0.dtype), dim_range=dims)
        pads = kw.pop("pads", None)
        if callable(pads):
            pads = pads(t)
        y = fn(t, pads=pads, **kw)
        assert y.dtype == t.dtype
        y.mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device=device)
    return [s({"x": x.to(device)})["y"].cpu() for x in xs]


def close(got, want, exact=False):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == want.dtype
    if exact:   # max picks an element: no rounding at all
        torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    else:       # float32 sums, one rounding at the end (torch rounds its half sums too)
        tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}[want.dtype]
        torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)


MAX_CASES = [
    # (x shape, kernel, strides, pads (torch's: both sides), dilations, ceil_mode)
    ((2, 3, 17), 3, 1, 0, 1, False),
    ((2, 3, 17), 4, 3, 2, 2, True),
    ((1, 2, 10), 2, 2, 0, 1, True),
    ((2, 3, 11, 9), 3, 2, 1, 1, False),
    ((1, 4, 10, 7), (3, 2), (2, 1), (1, 1), (2, 3), True),
    ((1, 2, 6, 7, 5), 2, 2, 1, 1, True),
    ((1, 2, 7, 6, 8), (3, 1, 2), (1, 2, 3), (1, 0, 1), (1, 1, 2), False),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_matches_torch(device, dtype, case):
    shape, kern, st, pad, dil, ceil = case
    x = rand(*shape, dtype=dtype)
    (got,) = run_pool(kiln.max_pool, [x], device, kernel_shape=kern, strides=st, pads=pad, dilations=dil,
                      ceil_mode=ceil)
    want = TORCH_MAX[len(shape) - 2](x.float(), kern, st, pad, dil, ceil_mode=ceil).to(dtype)
    close(got, want, exact=True)


AVG_CASES = [
    # (x shape, kernel, strides, pads, ceil_mode, count_include_pad)
    ((2, 3, 17), 3, 1, 0, False, False),
    ((2, 3, 17), 4, 3, 2, True, False),
    ((2, 3, 17), 4, 3, 2, True, True),
    ((1, 2, 10), 3, 2, 1, True, True),
    ((2, 3, 11, 9), 3, 2, 1, False, True),
    ((1, 4, 10, 7), (3, 2), (2, 1), (1, 1), True, False),
    ((1, 4, 10, 7), (3, 2), (2, 3), (1, 1), True, True),
    ((1, 2, 6, 7, 5), 2, 2, 1, True, False),
    ((1, 2, 7, 6, 8), (3, 1, 2), (1, 2, 3), (1, 0, 1), False, True),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", AVG_CASES)
def test_avg_pool_matches_torch(device, dtype, case):
    shape, kern, st, pad, ceil, cip = case
    x = rand(*shape, dtype=dtype)
    (got,) = run_pool(kiln.avg_pool, [x], device, kernel_shape=kern, strides=st, pads=pad, ceil_mode=ceil,
                      count_include_pad=cip)
    want = TORCH_AVG[len(shape) - 2](x.float(), kern, st, pad, ceil_mode=ceil, count_include_pad=cip).to(dtype)
    close(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_pool_one_engine_serves_every_shape(device):
    xs = [rand(1, 2, 9, 8), rand(3, 5, 6, 13, seed=1), rand(2, 1, 12, 12, seed=2)]
    for fn, ref, kw in ((kiln.max_pool, F.max_pool2d, {}), (kiln.avg_pool, F.avg_pool2d, {"count_include_pad": False})):
        outs = run_pool(fn, xs, device, kernel_shape=3, strides=2, pads=1, ceil_mode=True, **kw)
        for x, got in zip(xs, outs):
            close(got, ref(x, 3, 2, 1, ceil_mode=True, **kw))


@pytest.mark.parametrize("device", DEVICES)
def test_pool_asymmetric_and_symbolic_pads(device):
    # ONNX's 2k pads (begins, then ends), one a function of the symbolic
    # width: SAME_UPPER of kernel 4, stride 1 (total 3: 1 before, 2 after).
    xs = [rand(1, 3, 6, 7), rand(2, 3, 5, 11, seed=5)]

    def pads(t):
        total = 3 + 0 * t.shape[3]
        return [0, total // 2, 2, total - total // 2]
    got_max = run_pool(kiln.max_pool, xs, device, kernel_shape=(3, 4), strides=1, pads=pads)
    got_avg = run_pool(kiln.avg_pool, xs, device, kernel_shape=(3, 4), strides=1, pads=pads, count_include_pad=True)
    for x, gm, ga in zip(xs, got_max, got_avg):
        close(gm, F.max_pool2d(F.pad(x, (1, 2, 0, 2), value=-math.inf), (3, 4), 1), exact=True)
        close(ga, F.avg_pool2d(F.pad(x, (1, 2, 0, 2)), (3, 4), 1))
        assert gm.shape[3] == x.shape[3]


@pytest.mark.parametrize("device", DEVICES)
def test_max_pool_nan_propagates(device):
    # A NaN anywhere in a window gives NaN (numpy's max, torch); windows
    # without one are untouched.
    x = torch.arange(12, dtype=torch.float32).reshape(1, 1, 12)
    x[0, 0, 4] = math.nan
    x[0, 0, 0] = math.nan
    (got,) = run_pool(kiln.max_pool, [x], device, kernel_shape=3, strides=2)
    close(got, F.max_pool1d(x, 3, 2), exact=True)
    assert torch.isnan(got[0, 0, :3]).all() and not torch.isnan(got[0, 0, 3:]).any()


@pytest.mark.parametrize("device", DEVICES)
def test_avg_pool_dilations(device):
    # ONNX AveragePool has dilations (torch does not): a dilated mean by hand.
    x = rand(1, 2, 13)
    (got,) = run_pool(kiln.avg_pool, [x], device, kernel_shape=3, strides=2, dilations=2, pads=1)
    xp = F.pad(x, (1, 1))
    valid = F.pad(torch.ones_like(x), (1, 1))
    taps = [xp[..., o * 2: o * 2 + 5: 2] for o in range(6)]
    counts = [valid[..., o * 2: o * 2 + 5: 2].sum(-1) for o in range(6)]
    want = torch.stack([t.sum(-1) / c for t, c in zip(taps, counts)], -1)
    close(got, want)


def build_pool(fn, x_shape, dtype=kiln.float32, **kw):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=list(x_shape), dtype=dtype)
        return fn(x, **kw)


@pytest.mark.parametrize("fn, shape, kw, message", [
    (kiln.max_pool, (1, 4, 8), {"kernel_shape": 0}, "max_pool of 'x': kernel size 0 of spatial axis 0"),
    (kiln.max_pool, (1, 4, 8), {"kernel_shape": 2, "strides": -1}, "stride -1 of spatial axis 0"),
    (kiln.max_pool, (1, 4, 8), {"kernel_shape": 2, "dilations": 0}, "dilation 0 of spatial axis 0"),
    (kiln.avg_pool, (1, 4, 8), {"kernel_shape": 2, "pads": [-1, 0]}, "avg_pool of 'x': begin pad of spatial axis 0 is -1"),
    (kiln.avg_pool, (1, 4, 8, 8), {"kernel_shape": (2, 9)}, "spatial axis 1 is 8 long padded, shorter than the dilated kernel"),
    (kiln.max_pool, (1, 4), {"kernel_shape": 2}, "1 to 3 spatial axes"),
])
def test_pool_refusals_name_the_fault(fn, shape, kw, message):
    with pytest.raises((kiln.Error, ValueError), match=message):
        build_pool(fn, shape, **kw)


def test_pool_refuses_other_dtypes():
    with pytest.raises(kiln.Error, match="max_pool of 'x': dtype int32 is not supported"):
        build_pool(kiln.max_pool, (1, 4, 8), dtype=kiln.int32, kernel_shape=2)


def test_pool_python_argument_errors():
    with pytest.raises(ValueError, match="max_pool: kernel_shape has 2 entries"):
        build_pool(kiln.max_pool, (1, 4, 8), kernel_shape=(2, 2))
    with pytest.raises(ValueError, match="avg_pool: pads has 3 entries"):
        build_pool(kiln.avg_pool, (1, 4, 8), kernel_shape=2, pads=[1, 1, 1])


@pytest.mark.parametrize("device", DEVICES)
def test_pool_empty_window(device):
    # Pads of the kernel's extent or more (torch refuses them, ONNX does
    # not): the first window holds padding only; max gives -inf, the
    # average of nothing NaN, the average counting pads 0.
    x = torch.arange(1, 5, dtype=torch.float32).reshape(1, 1, 4)
    (mx,) = run_pool(kiln.max_pool, [x], device, kernel_shape=2, strides=2, pads=[3, 0])
    (av,) = run_pool(kiln.avg_pool, [x], device, kernel_shape=2, strides=2, pads=[3, 0])
    (ap,) = run_pool(kiln.avg_pool, [x], device, kernel_shape=2, strides=2, pads=[3, 0], count_include_pad=True)
    close(mx, torch.tensor([[[-math.inf, 1.0, 3.0]]]), exact=True)   # windows at -3, -1, 1
    close(av, torch.tensor([[[math.nan, 1.0, 2.5]]]), exact=True)
    close(ap, torch.tensor([[[0.0, 0.5, 2.5]]]), exact=True)
