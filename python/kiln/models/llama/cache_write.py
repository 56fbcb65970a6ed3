"""CacheWriteKV: a decode step's new key and value rows, written into the KV
caches in place.

The cache is the decode engine's input [batch, layers, max_seq, kv_width],
a buffer the caller keeps between steps; this plugin's output *is* that
buffer (aliased_outputs: kiln_network_alias_output), so the rows land where
the next step's DecodeAttention reads them and nothing is copied, from Python
or anywhere else.  Program (b, 0) writes the key row lengths[b] of layer
`layer`, program (b, 1) the value row."""
import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for


@triton.jit
def cache_write_kv_kernel(k_cache_ptr, v_cache_ptr, k_ptr, v_ptr, lengths_ptr, layers, max_seq, width, layer,
                          BLOCK: tl.constexpr):
    b = tl.program_id(0).to(tl.int64)
    pos = tl.load(lengths_ptr + b).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    limit = tl.where(pos < max_seq, width, 0)        # a full cache is left as it is
    mask = cols < limit
    at = ((b * layers + layer) * max_seq + pos) * width + cols
    if tl.program_id(1) == 0:
        tl.store(k_cache_ptr + at, tl.load(k_ptr + b * width + cols, mask=mask), mask=mask)
    else:
        tl.store(v_cache_ptr + at, tl.load(v_ptr + b * width + cols, mask=mask), mask=mask)


@kiln.plugin("CacheWriteKV", namespace="llama", num_outputs=2)
class CacheWriteKV(kiln.PluginBase):
    """inputs: k_cache, v_cache [batch, layers, max_seq, width], k, v
    [batch, 1, width] (the caches' dtype), lengths int32 [batch]; outputs the
    two caches, written in place (a full cache is left as it is)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = int(layer)

    def shape_dtype_inference(self, inputs):
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape), kiln.SymTensor(inputs[1].dtype, inputs[1].shape)

    def aliased_outputs(self):
        return {0: 0, 1: 1}

    def forward(self, inputs, outputs):
        _, _, k, v, lengths = as_torch(inputs)
        k_cache, v_cache = as_torch(outputs)
        b, layers, max_seq, width = k_cache.shape
        if b == 0:
            return
        cache_write_kv_kernel[(b, 2)](k_cache, v_cache, k, v, lengths, layers, max_seq, width, self.layer,
                                      BLOCK=block_for(width))

    def aot(self, inputs, outputs):
        k_cache, _, k, v, lengths = inputs
        b, layers, max_seq, width = k_cache.shape
        return [kiln.AotLaunch(cache_write_kv_kernel,
                               args=[outputs[0], outputs[1], k, v, lengths, layers, max_seq, width, self.layer],
                               grid=(b, 2), constexprs={"BLOCK": block_for(width.value)})]
