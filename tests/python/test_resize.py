"""kiln.resize (the RESIZE op: ONNX Resize) against
torch.nn.functional.interpolate on the CPU and (when there is one) the GPU:
nearest, 1-D linear, bilinear and bicubic (align_corners True and False),
trilinear, in size and scale form, growing and shrinking, float32, float16
and bfloat16 (computed in float32), nearest of integers; and ONNX Resize /
Upsample through kiln.onnx against onnx's reference, with sizes computed
from shapes (Shape -> Gather -> Concat) on symbolic sizes, and what is
refused.  The input has dynamic axes, so one engine runs several shapes."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import kiln
import kiln.onnx
from kiln.runtime import Session

from conftest import HAVE_GPU

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def run_resize(xs, device, sizes=None, **kw):
    """kiln.resize of a dynamic-shaped x (every axis symbolic); sizes, when
    callable, gets the input's SymDims; runs each x of xs on one engine."""
    builder = kiln.Builder()
    net = builder.create_network()
    x0 = xs[0]
    with kiln.net_guard(net):
        dims = {f"x{i}": [(1, d, max(d, max(x.shape[i] for x in xs)))] for i, d in enumerate(x0.shape)}
        t = kiln.Tensor(name="x", shape=[-1] * x0.dim(), dtype=kiln.to_dtype(x0.dtype), dim_range=dims)
        y = kiln.resize(t, sizes=sizes(t.shape) if callable(sizes) else sizes, **kw)
        assert y.dtype == t.dtype
        y.mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device=device)
    return [s({"x": x.to(device)})["y"].cpu() for x in xs]


def close(got, want, dtype):
    assert got.shape == want.shape, (got.shape, want.shape)
    assert got.dtype == dtype
    tol = TOL[dtype]
    torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol)


# (x shape, torch mode, align_corners, size or None, scale_factor or None)
CASES = [
    ((2, 3, 9), "linear", False, (15,), None),
    ((2, 3, 9), "linear", True, (4,), None),
    ((2, 3, 8), "linear", False, None, (2.0,)),
    ((1, 2, 6, 7), "bilinear", False, (11, 5), None),
    ((1, 2, 6, 7), "bilinear", True, (11, 5), None),
    ((1, 2, 6, 7), "bilinear", False, None, (2.0, 0.5)),
    ((1, 2, 5, 8), "bilinear", False, None, (1.5, 0.75)),
    ((1, 2, 6, 7), "bicubic", False, (13, 4), None),
    ((1, 2, 6, 7), "bicubic", True, (13, 4), None),
    ((1, 2, 6, 6), "bicubic", False, None, (2.0, 0.5)),
    ((1, 2, 4, 5, 6), "trilinear", False, (7, 3, 9), None),
    ((1, 2, 4, 5, 6), "trilinear", True, (7, 3, 9), None),
    ((1, 3, 4, 5), "nearest", None, (8, 10), None),
    ((1, 3, 10, 5), "nearest", None, (4, 7), None),
    ((1, 3, 4, 5), "nearest", None, None, (3.0, 0.5)),
]
ONNX_OF = {"linear": "linear", "bilinear": "linear", "trilinear": "linear", "bicubic": "cubic", "nearest": "nearest"}


def kiln_args(mode, align, size, scale, rank):
    kw = {"mode": ONNX_OF[mode]}
    if mode == "nearest":   # torch's nearest: x_in = floor(x_out / scale)
        kw.update(coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    else:
        kw["coordinate_transformation_mode"] = "align_corners" if align else "pytorch_half_pixel"
    if size is not None:
        kw["sizes"] = lambda dims: list(dims[:2]) + list(size)
    else:
        kw["scales"] = [1.0, 1.0] + list(scale)
    return kw


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[2]}-{c[3]}-{c[4]}-{len(c[0])}d")
def test_resize_matches_torch(device, dtype, case):
    shape, mode, align, size, scale = case
    x = rand(*shape, dtype=dtype)
    (got,) = run_resize([x], device, **kiln_args(mode, align, size, scale, len(shape)))
    tkw = {} if align is None else {"align_corners": align}
    want = F.interpolate(x.float(), size=size, scale_factor=scale, mode=mode, **tkw).to(dtype)
    close(got, want, dtype)


@pytest.mark.parametrize("device", DEVICES)
def test_one_engine_many_shapes_symbolic_scales(device):
    # scales on symbolic sizes: each output size is floor(size · scale) as an expression
    xs = [rand(1, 2, 6, 8, seed=1), rand(2, 2, 9, 5, seed=2), rand(1, 1, 3, 11, seed=3)]
    got = run_resize(xs, device, scales=[1.0, 1.0, 1.5, 0.75], mode="linear",
                     coordinate_transformation_mode="pytorch_half_pixel")
    for g, x in zip(got, xs):
        want = F.interpolate(x, scale_factor=(1.5, 0.75), mode="bilinear", align_corners=False)
        close(g, want, torch.float32)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.uint8, torch.int8])
def test_nearest_of_integers(device, dtype):
    x = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5).to(dtype)
    (got,) = run_resize([x], device, sizes=lambda d: [d[0], d[1], 7, 3], mode="nearest",
                        coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    want = F.interpolate(x.double(), size=(7, 3), mode="nearest").to(dtype)
    assert got.dtype == dtype
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_refusals_name_the_attribute():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        t = kiln.Tensor(name="x", shape=[1, 2, 4, 4], dtype=kiln.float32)
        ti = kiln.Tensor(name="i", shape=[1, 2, 4, 4], dtype=kiln.int32)
        with pytest.raises(ValueError, match="mode 'bilinear' is not one of"):
            kiln.resize(t, sizes=[1, 2, 8, 8], mode="bilinear")
        with pytest.raises(Exception, match=r"linear interpolation of dtype int32 is not supported"):
            kiln.resize(ti, sizes=[1, 2, 8, 8], mode="linear")
        with pytest.raises(Exception, match=r"scale nan of axis 2 is not 0"):
            kiln.resize(t, sizes=[1, 2, 8, 8], scales=[1, 1, float("nan"), 2])
        with pytest.raises(Exception, match=r"scale -2 of axis 3 is not 0"):
            kiln.resize(t, sizes=[1, 2, 8, 8], scales=[1, 1, 2, -2])
        with pytest.raises(Exception, match=r"size -3 of axis 2 is not in"):
            kiln.resize(t, sizes=[1, 2, -3, 8])
        with pytest.raises(Exception, match=r"3 sizes"):
            kiln.resize(t, sizes=[1, 2, 8])


# ---- ONNX ------------------------------------------------------------------------------------------------------


def _model(nodes, inputs, inits=(), opset=19):
    g = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          list(inits))
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _check(m, shapes, dim_range, rtol=1e-5):
    from onnx.reference import ReferenceEvaluator
    s = Session.from_serialized_engine(kiln.Builder().build_engine(kiln.onnx.parse(m, dim_range=dim_range)),
                                       device="cpu")
    ref = ReferenceEvaluator(m)
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        (want,) = ref.run(None, {"x": x})
        got = s({"x": x})["y"]
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-5)


@pytest.mark.parametrize("attrs", [
    dict(mode="nearest"),
    dict(mode="linear"),
    dict(mode="cubic", coordinate_transformation_mode="half_pixel", exclude_outside=1, cubic_coeff_a=-0.5),
    dict(mode="linear", coordinate_transformation_mode="align_corners"),
    dict(mode="nearest", coordinate_transformation_mode="half_pixel_symmetric", nearest_mode="round_prefer_ceil"),
], ids=["nearest", "linear", "cubic-exclude", "linear-align", "nearest-symmetric"])
def test_onnx_resize_scales_on_symbolic_sizes(attrs):
    # scales on a dynamic height and width: the sizes are floor(h · 1.5),
    # floor(w · 0.75), expressions, and one engine matches the reference
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 1.5, 0.75], np.float32), "s")
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], **attrs)
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 2, "h", "w"])], [scales])
    _check(m, [(1, 2, 6, 8), (2, 2, 5, 11), (1, 2, 9, 4)],
           {"n": [(1, 1, 2)], "h": [(2, 8, 16)], "w": [(2, 8, 16)]})


def test_onnx_resize_sizes_from_shapes():
    # YOLO/FPN style: sizes = Concat(Shape(x)[0:2], 2 * Shape(x)[2:4]); the
    # importer folds the shape computation into expressions
    nodes = [
        helper.make_node("Shape", ["x"], ["sh"]),
        helper.make_node("Slice", ["sh", "s0", "s2"], ["nc"]),
        helper.make_node("Slice", ["sh", "s2", "s4"], ["hw"]),
        helper.make_node("Mul", ["hw", "two"], ["hw2"]),
        helper.make_node("Concat", ["nc", "hw2"], ["sizes"], axis=0),
        helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="linear"),
    ]
    inits = [onnx.numpy_helper.from_array(np.array([v], np.int64), n) for n, v in (("s0", 0), ("s2", 2), ("s4", 4))]
    inits.append(onnx.numpy_helper.from_array(np.array([2, 2], np.int64), "two"))
    m = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])], inits)
    _check(m, [(1, 3, 4, 5), (2, 3, 7, 3)], {"n": [(1, 1, 2)], "h": [(1, 4, 8)], "w": [(1, 4, 8)]})


def test_onnx_resize_axes_and_keep_aspect_ratio():
    sizes = onnx.numpy_helper.from_array(np.array([9, 20], np.int64), "z")
    node = helper.make_node("Resize", ["x", "", "", "z"], ["y"], mode="linear", axes=[2, 3],
                            keep_aspect_ratio_policy="not_larger")
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 6])], [sizes], opset=18)
    _check(m, [(1, 2, 4, 6)], None)


def test_onnx_upsample():
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 2, 3], np.float32), "s")
    node = helper.make_node("Upsample", ["x", "s"], ["y"], mode="nearest")
    m = _model([node], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])], [scales], opset=9)
    s = Session.from_serialized_engine(kiln.Builder().build_engine(kiln.onnx.parse(m)), device="cpu")
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(s({"x": x})["y"], x.repeat(2, axis=2).repeat(3, axis=3))


def test_onnx_resize_refusals_name_the_node():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    scales = onnx.numpy_helper.from_array(np.array([1, 1, 0.5, 0.5], np.float32), "s")
    node = helper.make_node("Resize", ["x", "", "s"], ["y"], name="r", mode="linear", antialias=1)
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'r' \(ai.onnx::Resize, opset 19\): antialias"):
        kiln.onnx.parse(_model([node], [x], [scales]))
    # scales computed at run time
    nodes = [helper.make_node("Abs", ["s"], ["s2"]), helper.make_node("Resize", ["x", "", "s2"], ["y"], name="r")]
    with pytest.raises(kiln.onnx.UnsupportedNode, match=r"node 'r'.*Resize's scales must be known"):
        kiln.onnx.parse(_model(nodes, [x, helper.make_tensor_value_info("s", TensorProto.FLOAT, [4])]))


@pytest.mark.parametrize("opset", [11, 17])
def test_torch_export_with_sizes_from_shapes(tmp_path, opset):
    # What exported FPN/UNet decoders look like: a 2x nearest upsample
    # (constant scales) and a bilinear resize to a skip connection's size
    # (sizes built from Shape, Gather, Unsqueeze, Slice, Cast and Concat),
    # on dynamic sizes: one engine for every input size.
    class M(torch.nn.Module):
        def forward(self, x, skip):
            up = F.interpolate(x, scale_factor=2, mode="nearest")
            return up, F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False) + skip

    path = str(tmp_path / "m.onnx")
    kw = {"dynamo": False} if "dynamo" in torch.onnx.export.__code__.co_varnames else {}
    torch.onnx.export(M(), (torch.randn(1, 3, 8, 10), torch.randn(1, 3, 13, 17)), path, input_names=["x", "skip"],
                      output_names=["up", "y"], opset_version=opset,
                      dynamic_axes={"x": {2: "h", 3: "w"}, "skip": {2: "sh", 3: "sw"}}, **kw)
    net = kiln.onnx.parse(onnx.load(path), dim_range={"h": [(1, 8, 32)], "w": [(1, 10, 32)], "sh": [(1, 13, 40)],
                                                      "sw": [(1, 17, 40)]})
    s = Session.from_serialized_engine(kiln.Builder().build_engine(net), device="cpu")
    for hw, shw in (((8, 10), (13, 17)), ((5, 7), (20, 9))):
        x, skip = rand(1, 3, *hw, seed=4), rand(1, 3, *shw, seed=5)
        want_up, want_y = M()(x, skip)
        got = s({"x": x.numpy(), "skip": skip.numpy()})
        np.testing.assert_array_equal(got["up"], want_up.numpy())
        np.testing.assert_allclose(got["y"], want_y.numpy(), rtol=1e-5, atol=1e-5)
