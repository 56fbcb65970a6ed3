"""Sessions on a GPU take CuPy and JAX arrays as inputs and fill CuPy arrays
as outputs (DLPack), as they do torch tensors; checked against numpy.  Skips
without a GPU, CuPy or JAX (the GPU machine has both)."""
import numpy as np
import pytest

import kiln
from kiln.runtime import Session

from conftest import HAVE_GPU

pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU kiln can use")


def _relu_plus_session():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 64), dtype="float32", dim_range={"n": [(1, 8, 64)], "c": [64]})
        b = kiln.Tensor(name="b", shape=(64,), dtype="float32")
        (kiln.relu(x) + b).mark_output("y")
    return Session.from_serialized_engine(builder.build_engine(net), device="cuda:0")


def test_cupy_in_and_out():
    cp = pytest.importorskip("cupy")
    s = _relu_plus_session()
    x = cp.asarray(np.random.default_rng(0).standard_normal((8, 64), np.float32))
    b = cp.arange(64, dtype=cp.float32)
    y = cp.empty((8, 64), cp.float32)
    assert s.run({"x": x, "b": b}, {"y": y}) is True
    cp.cuda.get_current_stream().synchronize()
    np.testing.assert_allclose(cp.asnumpy(y), np.maximum(cp.asnumpy(x), 0) + cp.asnumpy(b), rtol=1e-6)


def test_jax_inputs():
    jax = pytest.importorskip("jax")
    jnp = pytest.importorskip("jax.numpy")
    torch = pytest.importorskip("torch")
    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if not gpus:
        pytest.skip("JAX sees no GPU")
    s = _relu_plus_session()
    xh = np.random.default_rng(1).standard_normal((5, 64)).astype(np.float32)
    x = jax.device_put(jnp.asarray(xh), gpus[0])
    b = jax.device_put(jnp.arange(64, dtype=jnp.float32), gpus[0])
    x.block_until_ready()
    y = torch.empty((5, 64), dtype=torch.float32, device="cuda")
    s.run({"x": x, "b": b}, {"y": y})
    torch.cuda.synchronize()
    np.testing.assert_allclose(y.cpu().numpy(), np.maximum(xh, 0) + np.arange(64, dtype=np.float32), rtol=1e-6)
