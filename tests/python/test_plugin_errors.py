"""A plugin author's mistakes, said clearly: an exception in
shape_dtype_inference names the plugin, the layer and the input shapes; a
symbolic dimension compared with < or > says what to use instead; a plugin
defined in __main__ warns at build that engines using it need it defined
again to load."""
import warnings
from collections import OrderedDict
from typing import Sequence

import numpy as np
import pytest

import kiln
from kiln.errors import PluginInMainWarning, PluginShapeError


def _network_with(plugin_cls):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(-1, 8), dtype="float32",
                        dim_range=OrderedDict([("batch", [(1, 2, 4)]), ("hidden", [8])]))
        return builder, net, plugin_cls()(x)


def test_shape_dtype_inference_error_names_plugin_layer_and_shapes():
    @kiln.plugin("BrokenShapes", namespace="test_errors")
    class BrokenShapes(kiln.PluginBase):
        def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
            return {}["missing"]

        def forward(self, inputs, outputs):
            pass

    try:
        with pytest.raises(PluginShapeError) as info:
            _network_with(BrokenShapes)
        text = str(info.value)
        assert "plugin test_errors::BrokenShapes (version 1)" in text
        assert "layer on inputs 'x'" in text
        assert "KeyError" in text and "float32 [batch, 8]" in text
        assert isinstance(info.value.__cause__, KeyError)
        # Eagerly, the concrete shapes are named.
        with pytest.raises(PluginShapeError, match=r"called eagerly.*float32 \[3, 8\]"):
            BrokenShapes()(np.zeros((3, 8), np.float32))
    finally:
        kiln.unregister_plugin(BrokenShapes)


def test_symbolic_comparison_says_what_to_use():
    @kiln.plugin("Compares", namespace="test_errors")
    class Compares(kiln.PluginBase):
        def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
            batch, hidden = inputs[0].shape
            assert hidden > 4          # constants compare as ints
            if batch > 2:              # symbolic: refused, with the way out
                pass
            return inputs[0]

        def forward(self, inputs, outputs):
            pass

    try:
        with pytest.raises(PluginShapeError, match=r"TypeError: dimension batch > 2: .*kiln\.sym_lt\(b, a\)") as info:
            _network_with(Compares)
        assert isinstance(info.value.__cause__, TypeError)
    finally:
        kiln.unregister_plugin(Compares)


def test_plugin_defined_in_main_warns_once_at_build():
    class InMain(kiln.PluginBase):
        __module__ = "__main__"

        def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
            return inputs[0]

        def forward(self, inputs, outputs):
            pass

    kiln.plugin("InMain", namespace="test_errors")(InMain)
    try:
        with pytest.warns(PluginInMainWarning, match="defined in __main__: engines using it can be loaded only"):
            _network_with(InMain)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _network_with(InMain)          # once per class
    finally:
        kiln.unregister_plugin(InMain)
