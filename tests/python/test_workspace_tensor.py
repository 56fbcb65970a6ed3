"""self.workspace_tensor(dtype, shape): the workspace a plugin asked for,
viewed as a typed tensor inside forward, in a session and eagerly."""
from typing import Sequence

import numpy as np
import pytest

import kiln
from kiln.runtime import Session
from kiln.tensor import convert_to_numpy


@kiln.plugin("RowSums", namespace="test_ws")
class RowSums(kiln.PluginBase):
    """y = x + (sum of x's row), the row sums kept in the workspace."""

    def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
        return inputs[0]

    def workspace_size(self, inputs):
        return inputs[0].shape[0] * 4          # one float32 per row

    def forward(self, inputs, outputs):
        x = convert_to_numpy(inputs[0])
        sums = convert_to_numpy(self.workspace_tensor("float32", (x.shape[0],)))
        sums[:] = x.sum(axis=1)
        convert_to_numpy(outputs[0])[:] = x + sums[:, None]
        with pytest.raises(ValueError, match=r"test_ws::RowSums.*needs .* bytes, but the workspace has"):
            self.workspace_tensor("float32", (x.shape[0] + 1,))
        assert self.device == "cpu" and self.workspace_bytes == x.shape[0] * 4


def test_workspace_tensor_in_a_session_and_eagerly():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 5), dtype="float32", dim_range={"rows": [(1, 3, 8)], "cols": [5]})
        RowSums()(x).mark_output("y")
    session = Session.from_serialized_engine(builder.build_engine(net))
    a = np.arange(15, dtype=np.float32).reshape(3, 5)
    want = a + a.sum(axis=1, keepdims=True)
    np.testing.assert_array_equal(session({"x": a})["y"], want)
    np.testing.assert_array_equal(RowSums()(a), want)


def test_session_memory_follows_shapes_and_cap():
    """The attention-workspace case of issue 11: memory follows the shapes run,
    not the profiles' maxima; a cap refuses larger shapes by saying so."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 5), dtype="float32", dim_range={"rows": [(1, 3, 4096)], "cols": [5]})
        kiln.relu(RowSums()(x) * 2.0).mark_output("y")
    engine = builder.build_engine(net)
    s = Session.from_serialized_engine(engine, device="cpu")
    a = np.ones((3, 5), np.float32)
    s({"x": a})
    small = s.memory_bytes
    assert 0 < small < kiln.runtime.Engine.from_memory(engine).arena_bytes
    capped = Session.from_serialized_engine(engine, device="cpu", max_activation_bytes=small)
    capped({"x": a})
    with pytest.raises(kiln.Error, match="activation memory, more than the context's cap"):
        capped({"x": np.ones((4000, 5), np.float32)})
