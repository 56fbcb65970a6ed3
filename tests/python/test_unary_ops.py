"""The unary ops added through the op table's recipe, each against torch
(float32, float16, bfloat16) on the CPU, and on the GPU when there is one."""
import numpy as np
import pytest
import torch

import kiln
from kiln.runtime import Session

from conftest import HAVE_GPU

OPS = {
    "tanh": (kiln.tanh, torch.tanh),
    "sigmoid": (kiln.sigmoid, torch.sigmoid),
    "erf": (kiln.erf, torch.erf),
    "gelu_erf": (kiln.gelu_erf, lambda x: torch.nn.functional.gelu(x)),
    "gelu": (kiln.gelu, lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
    "rsqrt": (kiln.rsqrt, torch.rsqrt),
    "absolute": (kiln.absolute, torch.abs),
    "log": (kiln.log, torch.log),
    "sin": (kiln.sin, torch.sin),
    "cos": (kiln.cos, torch.cos),
    "floor": (kiln.floor, torch.floor),
    "ceil": (kiln.ceil, torch.ceil),
    "reciprocal": (kiln.reciprocal, torch.reciprocal),
    "sign": (kiln.sign, torch.sign),
}
DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
TOL = {torch.float32: (1e-5, 1e-6), torch.float16: (2e-3, 1e-4), torch.bfloat16: (1.6e-2, 1e-3)}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(OPS))
def test_unary_op_matches_torch(name, dtype, device):
    kiln_op, torch_op = OPS[name]
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1,), dtype=kiln.to_dtype(dtype), dim_range={"n": [(1, 256, 1024)]})
        kiln_op(x).mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net), device=device)
    g = torch.Generator().manual_seed(0)
    xs = (torch.randn(1000, generator=g) * 4).to(dtype)
    if name in ("log", "rsqrt"):
        xs = xs.abs() + 0.1
    xs[:4] = torch.tensor([0.0, -1.5, 2.5, float("nan")], dtype=dtype)
    if name in ("log", "rsqrt"):
        xs[:3] = torch.tensor([1.0, 0.5, 2.0], dtype=dtype)
    xs = xs.to(device)
    got = s({"x": xs})["y"]
    want = torch_op(xs.float()).to(dtype)
    if name == "sign":   # torch.sign(nan) is 0; kiln's, like numpy's and IEEE's, is nan
        want[torch.isnan(xs)] = float("nan")
    rtol, atol = TOL[dtype]
    torch.testing.assert_close(got.float().cpu(), want.float().cpu(), rtol=rtol, atol=atol, equal_nan=True)
