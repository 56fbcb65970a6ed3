"""The look-up plugin, ahead of time: the same Triton kernel, compiled when
the engine is built and launched by kiln's C runtime (no Python at run time).

It is LookUpPlugin (same state, shape rule and JIT forward, used for eager
calls) plus one method, `aot`, which says how to launch lookup_kernel: its
arguments, constexprs and grid, as expressions of the input shapes.
"""
from typing import Sequence

import kiln
from kiln.compat.trtllm import SymTensor, trtllm_plugin

from .lookup_kernel import launch_config, lookup_kernel
from .lookup_plugin import LookUpPlugin


@trtllm_plugin("TritonLookUpAOT")
class LookUpPluginAOT(LookUpPlugin):

    def aot(self, inputs: Sequence[SymTensor], outputs: Sequence[SymTensor]):
        index, table = inputs
        n_tokens = index.shape[0]
        vocab_size, hidden = table.shape[0], table.shape[1]
        # BLOCK and num_warps are compile-time choices: use the real hidden
        # size when the network fixes it, else the widest block.
        block, num_warps = launch_config(hidden.value if hidden.value is not None else 1 << 30, table.dtype.itemsize)
        return [kiln.AotLaunch(lookup_kernel,
                               args=[index, table, outputs[0], vocab_size, hidden],
                               grid=(n_tokens, kiln.cdiv(hidden, block)),
                               constexprs={"BLOCK": block},
                               num_warps=num_warps)]
