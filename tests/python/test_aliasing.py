"""Outputs written in place (kiln_network_alias_output; a plugin's
aliased_outputs()): a Triton plugin appends rows to a cache the caller owns,
later layers read the updated cache, and nothing is copied."""
from typing import Sequence

import pytest
import torch
import triton
import triton.language as tl

import kiln

from conftest import HAVE_GPU

DEVICE = "cuda" if HAVE_GPU else "cpu"


@triton.jit
def write_rows_kernel(Cache, New, Pos, seq, width, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    pos = tl.load(Pos + b)
    offs = tl.arange(0, BLOCK)
    mask = offs < width
    row = tl.load(New + b * width + offs, mask=mask)
    tl.store(Cache + (b * seq + pos) * width + offs, row, mask=mask)


@kiln.plugin("WriteRows", namespace="kiln_test")
class WriteRows(kiln.PluginBase):
    """cache [B, S, W], new [B, W], pos int32 [B] -> cache with new[b] at row pos[b], in place."""

    def shape_dtype_inference(self, inputs: Sequence[kiln.SymTensor]) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def aliased_outputs(self):
        return {0: 0}          # output 0 is written into input 0

    def forward(self, inputs, outputs):
        cache = kiln.convert_to_torch_tensor(outputs[0])
        new, pos = (kiln.convert_to_torch_tensor(t) for t in inputs[1:])
        b, s, w = cache.shape
        write_rows_kernel[(b,)](cache, new, pos, s, w, BLOCK=triton.next_power_of_2(w))


def build():
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        cache = kiln.Tensor(name="cache", shape=(-1, 16, 8), dtype=kiln.float32,
                            dim_range={"b": [(1, 2, 4)], "s": [(16, 16, 16)], "w": [(8, 8, 8)]})
        new = kiln.Tensor(name="new", shape=(-1, 8), dtype=kiln.float32, dim_range={"b": [(1, 2, 4)], "w": [(8, 8, 8)]})
        pos = kiln.Tensor(name="pos", shape=(-1,), dtype=kiln.int32, dim_range={"b": [(1, 2, 4)]})
        updated = WriteRows()(cache, new, pos)
        kiln.reduce_sum(updated, axes=[1]).mark_output("col_sums")   # a later layer reads the updated cache
        with pytest.raises(kiln.Error, match="written in place into input 'cache'"):
            updated.mark_output("updated")
    return builder.build_engine(net)


def test_plugin_writes_the_callers_cache_in_place():
    engine = build()
    s = kiln.Session.from_serialized_engine(engine, device=DEVICE)
    cache = torch.zeros(3, 16, 8, device=DEVICE)
    buffer_before = cache.data_ptr()
    for step in range(4):
        new = torch.full((3, 8), float(step + 1), device=DEVICE)
        pos = torch.tensor([step, 2 * step, 15 - step], dtype=torch.int32, device=DEVICE)
        sums = s({"cache": cache, "new": new, "pos": pos})["col_sums"]
        for b in range(3):      # the caller's own tensor holds the rows written so far
            assert torch.equal(cache[b, int(pos[b])], new[b])
        torch.testing.assert_close(sums, cache.sum(1))
    assert cache.data_ptr() == buffer_before
    assert (cache != 0).sum().item() == 3 * 4 * 8


def test_inspect_names_the_in_place_write(tmp_path):
    import subprocess
    import sys
    from conftest import subprocess_env
    path = tmp_path / "cache.engine"
    path.write_bytes(bytes(build()))
    r = subprocess.run([sys.executable, "-m", "kiln.cli", "inspect", str(path)], env=subprocess_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "kiln_test::WriteRows v1 [writes out0 into in0]" in r.stdout, r.stdout


def test_a_write_nothing_reads_still_runs():
    """The write is the layer's effect: the builder keeps it without readers."""
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        cache = kiln.Tensor(name="cache", shape=(2, 4, 8), dtype=kiln.float32)
        new = kiln.Tensor(name="new", shape=(2, 8), dtype=kiln.float32)
        pos = kiln.Tensor(name="pos", shape=(2,), dtype=kiln.int32)
        WriteRows()(cache, new, pos)
        kiln.relu(new).mark_output("r")
    s = kiln.Session.from_serialized_engine(builder.build_engine(net), device=DEVICE)
    cache_t = torch.zeros(2, 4, 8, device=DEVICE)
    new_t = torch.ones(2, 8, device=DEVICE)
    s({"cache": cache_t, "new": new_t, "pos": torch.tensor([1, 3], dtype=torch.int32, device=DEVICE)})
    assert torch.equal(cache_t[0, 1], new_t[0]) and torch.equal(cache_t[1, 3], new_t[1])
