"""kiln.matmul with transposed operands against torch, on the CPU and (when
there is one) the GPU: every combination of transpose_a / transpose_b, the
float dtypes, batch axes that broadcast, a weight shared by every batch, and
a one-row product (decode's x @ W.T).  The operands are stored transposed and
read in place: the engine has one matmul layer and no transpose layer."""
import numpy as np
import pytest
import torch

import kiln
from kiln.runtime import Engine, Session

from conftest import HAVE_GPU

DEVICES = ["cpu"] + (["cuda"] if HAVE_GPU else [])
FLOATS = [torch.float32, torch.float16, torch.bfloat16]
# float32 sums in any order; halves rounded once at the end
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (1.6e-2, 1.6e-2)}
FLAGS = [(False, False), (True, False), (False, True), (True, True)]


def rand(*shape, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g).to(dtype)


def swap(t, flag):
    """The operand as stored: its last two axes swapped when flag."""
    return t.transpose(-1, -2).contiguous() if flag else t


def build(shapes, dtype, ta, tb, weight=None):
    """a @ b with the flags; inputs of dynamic axes (one engine runs several
    shapes).  weight: b as a constant instead of an input."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        def inp(name, shape):
            dims = {f"{name}{i}": [(1, max(2, d), max(64, d))] for i, d in enumerate(shape)}
            return kiln.Tensor(name=name, shape=[-1] * len(shape), dtype=kiln.to_dtype(dtype), dim_range=dims)
        a = inp("a", shapes[0])
        b = kiln.constant(weight) if weight is not None else inp("b", shapes[1])
        kiln.matmul(a, b, transpose_a=ta, transpose_b=tb).mark_output("y")
    return builder.build_engine(net), net


def close(got, want):
    rtol, atol = TOL[want.dtype]
    assert got.shape == want.shape, (got.shape, want.shape)
    # A sum of K products: the tolerance grows with K's magnitude of the result.
    torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=atol * 8)


CASES = [
    ((5, 7), (7, 3)),                   # one product
    ((1, 300), (300, 65)),              # one row
    ((13, 70), (70, 33)),               # 6 rows or more: the CPU's packed path, partial tiles
    ((2, 3, 4, 5), (5, 6)),             # b shared by every batch
    ((2, 1, 8, 17), (3, 17, 9)),        # both broadcast
    ((4, 5), (2, 5, 6)),                # a shared
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOATS, ids=str)
@pytest.mark.parametrize("ta,tb", FLAGS)
@pytest.mark.parametrize("shape_a,shape_b", CASES)
def test_matmul_transposes(device, dtype, ta, tb, shape_a, shape_b):
    a, b = rand(*shape_a, dtype=dtype, seed=1), rand(*shape_b, dtype=dtype, seed=2)
    sa, sb = swap(a, ta), swap(b, tb)
    engine, _ = build((tuple(sa.shape), tuple(sb.shape)), dtype, ta, tb)
    s = Session.from_serialized_engine(engine, device=device)
    got = s({"a": sa.to(device), "b": sb.to(device)})["y"].cpu()
    want = (a.double() @ b.double()).to(dtype)
    close(got, want)


@pytest.mark.parametrize("device", DEVICES)
def test_linear_weight_one_engine_many_batches(device):
    """x @ W.T with W [N, K] as nn.Linear keeps it, a constant read in place;
    the same engine serves several batch sizes."""
    lin = torch.nn.Linear(48, 20, bias=False)
    w = lin.weight.detach()
    engine, net = build(((3, 48), None), torch.float32, False, True, weight=w.numpy())
    s = Session.from_serialized_engine(engine, device=device)
    for rows in (1, 3, 17):
        x = rand(rows, 48, seed=rows)
        close(s({"a": x.to(device)})["y"].cpu(), lin(x).detach())
    # One layer, the matmul, which shows its flags; no transpose layer.
    assert [layer[:2] for layer in Engine.from_memory(engine).layers()] == [("matmul", "transpose_a 0 transpose_b 1")]


def test_shapes_and_refusals():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(2, 3), dtype=kiln.float32)
        b = kiln.Tensor(name="b", shape=(4, 3), dtype=kiln.float32)
        assert tuple(kiln.matmul(a, b, transpose_b=True).shape) == (2, 4)
        assert tuple(kiln.matmul(a, a, transpose_a=True).shape) == (3, 3)
        with pytest.raises(kiln.Error, match=r"matmul of 'a' and 'b': inner sizes 3 and 4 differ"):
            kiln.matmul(a, b)
        with pytest.raises(kiln.Error, match=r"'a' \(transposed\) and 'b' \(transposed\): inner sizes 2 and 3"):
            kiln.matmul(a, b, transpose_a=True, transpose_b=True)


def test_generic_layer_api_takes_the_flags():
    """Network.add_layer("matmul", ..., {"transpose_b": 1}) is the same layer;
    values other than 0/1 are refused by name."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        a = kiln.Tensor(name="a", shape=(2, 3), dtype=kiln.float32)
        b = kiln.Tensor(name="b", shape=(4, 3), dtype=kiln.float32)
        y = net._tensor(net._net.add_layer("matmul", [a._id, b._id], {"transpose_b": 1}))
        assert tuple(y.shape) == (2, 4)
        with pytest.raises(kiln.Error, match="transpose_a is 2; must be 0 or 1"):
            net._net.add_layer("matmul", [a._id, b._id], {"transpose_a": 2})
        y.mark_output("y")
    s = Session.from_serialized_engine(builder.build_engine(net))
    x, w = np.random.rand(2, 3).astype(np.float32), np.random.rand(4, 3).astype(np.float32)
    np.testing.assert_allclose(s({"a": x, "b": w})["y"], x @ w.T, rtol=1e-5)


def test_inspect_shows_the_transposes(tmp_path):
    import subprocess
    import sys
    from conftest import subprocess_env
    w = np.ones((4, 3), np.float32)
    engine, _ = build(((2, 3), None), torch.float32, False, True, weight=w)
    path = tmp_path / "linear.engine"
    path.write_bytes(bytes(engine))
    r = subprocess.run([sys.executable, "-m", "kiln.cli", "inspect", str(path)], env=subprocess_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "matmul transpose_a 0 transpose_b 1" in r.stdout, r.stdout
