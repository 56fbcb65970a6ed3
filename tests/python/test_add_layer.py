"""Network.add_layer of the extension: any built-in op of the op table by its
name (kiln_network_add_layer), with attributes checked against the op's
schema, run and compared with numpy/torch."""

import numpy as np
import pytest
import torch

import kiln
from kiln._native import _kiln
from kiln.runtime import Session


def _run(build, feeds):
    net = _kiln.Network()
    y = build(net, net.exprs)
    net.mark_output(y, "y", net.tensor_info(y)[0])
    return Session.from_serialized_engine(bytes(net.build()))(feeds)["y"]


def test_unary_binary_gather_reshape_cast_by_name():
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    ix = np.array([3, 0, 0, 2], np.int64)

    def gelu(net, p):
        t = net.add_input("x", kiln.float32.code, [p.const(3), p.const(4)])
        return net.add_layer("gelu", [t])
    ref = torch.nn.functional.gelu(torch.from_numpy(x), approximate="tanh").numpy()
    np.testing.assert_allclose(_run(gelu, {"x": x}), ref, rtol=1e-5, atol=1e-6)

    def sub(net, p):
        a = net.add_input("x", kiln.float32.code, [p.const(3), p.const(4)])
        b = net.add_input("b", kiln.float32.code, [p.const(4)])
        return net.add_layer("sub", [a, b])
    b = np.arange(4, dtype=np.float32)
    np.testing.assert_array_equal(_run(sub, {"x": x, "b": b}), x - b)

    def gather(net, p):
        t = net.add_input("x", kiln.float32.code, [p.const(3), p.const(4)])
        i = net.add_input("ix", kiln.int64.code, [p.const(4)])
        return net.add_layer("gather", [t, i], {"axis": -1})
    np.testing.assert_array_equal(_run(gather, {"x": x, "ix": ix}), np.take(x, ix, axis=-1))

    def reshape(net, p):
        t = net.add_input("x", kiln.float32.code, [p.const(3), p.const(4)])
        return net.add_layer("reshape", [t], {"shape": [p.const(2), p.const(-1)]})
    np.testing.assert_array_equal(_run(reshape, {"x": x}), x.reshape(2, -1))

    def cast(net, p):
        t = net.add_input("x", kiln.float32.code, [p.const(3), p.const(4)])
        return net.add_layer("cast", [t], {"to": kiln.float16.code})
    got = _run(cast, {"x": x})
    assert got.dtype == np.float16
    np.testing.assert_array_equal(got, x.astype(np.float16))


def test_refusals_name_the_op_and_attribute():
    net = _kiln.Network()
    p = net.exprs
    x = net.add_input("x", kiln.float32.code, [p.const(2), p.const(3)])
    with pytest.raises(kiln.Error, match="no built-in op named 'no_such_op'"):
        net.add_layer("no_such_op", [x])
    with pytest.raises(kiln.Error, match="add takes 2 inputs, got 1"):
        net.add_layer("add", [x])
    with pytest.raises(kiln.Error, match=r"relu has no attribute 'alpha' \(it takes none\)"):
        net.add_layer("relu", [x], {"alpha": 1})
    with pytest.raises(kiln.Error, match="cast needs attribute 'to'"):
        net.add_layer("cast", [x])
    with pytest.raises(TypeError, match="attrs must be a dict"):
        net.add_layer("relu", [x], [("alpha", 1)])
