"""Plugins whose annotations are strings (PEP 563), for test_plugin.py."""
from __future__ import annotations

from typing import Tuple

import kiln
from kiln import SymTensor


@kiln.plugin("FutureOne", namespace="test_future")
class FutureOne(kiln.PluginBase):
    def shape_dtype_inference(self, inputs) -> SymTensor:
        return SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        pass


@kiln.plugin("FutureTwo", namespace="test_future")
class FutureTwo(kiln.PluginBase):
    def shape_dtype_inference(self, inputs) -> Tuple[SymTensor, SymTensor]:
        return SymTensor(inputs[0].dtype, inputs[0].shape), SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        pass


@kiln.plugin("FutureThree", namespace="test_future")
class FutureThree(kiln.PluginBase):
    def shape_dtype_inference(self, inputs) -> tuple[SymTensor, SymTensor, SymTensor]:
        return (SymTensor(inputs[0].dtype, inputs[0].shape),) * 3

    def forward(self, inputs, outputs):
        pass
