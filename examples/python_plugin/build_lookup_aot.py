"""Build an ahead-of-time look-up engine, plus test data for a process with no Python.

    python build_lookup_aot.py [--out tmp/aot] [--dtype float16] [--vocab 32] [--hidden 48] [--tokens 10]
                               [--target sm_90]

writes into --out:
    lookup_aot.engine   the engine: kiln::TritonAOT (the lookup kernel's cubin,
                        PTX, grid and arguments as expressions of the
                        engine); loading it needs neither Python nor plugin_lib
    index.bin           int32[tokens] (a few out of range: their rows are zeros)
    table.bin           dtype[vocab, hidden]
    expected.bin        dtype[tokens, hidden], computed with torch
    meta.txt            "tokens vocab hidden dtype", one line
All .bin files are raw little-endian arrays (also saved as .npy for people).
tests/c/cuda/test_aot_engine.c reads them (KILN_AOT_DIR=--out).  Compiling
needs triton but no GPU.
"""
import argparse
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

import plugin_lib  # noqa: F401  (registers the plugins)
from plugin_lib import LookUpPluginAOT

import kiln
from kiln.compat.trtllm import Builder, Tensor, net_guard, torch_dtype_to_str, torch_dtype_to_trt

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_engine(dtype, vocab, hidden, max_tokens, target=None):
    """The engine bytes of an AOT look-up network: x int32[num_tokens], y dtype[vocab, hidden]."""
    builder = Builder()
    network = builder.create_network(prefer_aot=True, aot_target=target)
    with net_guard(network):
        x = Tensor(name="x", shape=(-1,), dtype="int32",
                   dim_range=OrderedDict([("num_tokens", [(1, max(1, max_tokens // 2), max_tokens)])]))
        y = Tensor(name="y", shape=(vocab, hidden), dtype=torch_dtype_to_trt(dtype))
        out = LookUpPluginAOT(False, False)(x, y)
        out.mark_output("output", torch_dtype_to_str(dtype))
    return bytes(builder.build_engine(network, builder.create_builder_config(precision=torch_dtype_to_str(dtype))))


def reference(index, table):
    """torch: rows of table, zeros for indices outside [0, vocab)."""
    vocab = table.shape[0]
    valid = (index >= 0) & (index < vocab)
    rows = table[index.clamp(0, vocab - 1).long()]
    return torch.where(valid[:, None], rows, torch.zeros((), dtype=table.dtype))


def make_data(dtype, vocab, hidden, tokens, seed=0):
    g = torch.Generator().manual_seed(seed)
    index = torch.randint(0, vocab, (tokens,), generator=g, dtype=torch.int32)
    if tokens >= 3:
        index[1] = -1          # out of range: a row of zeros
        index[2] = vocab
    table = torch.randn((vocab, hidden), generator=g, dtype=torch.float32).to(dtype)
    return index, table, reference(index, table)


def raw(t):
    """A tensor's bytes as a numpy array (bfloat16 as its 16-bit pattern)."""
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.contiguous().numpy()


def write(out_dir, dtype_name, vocab, hidden, tokens, target=None):
    dtype = TORCH_DTYPES[dtype_name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    engine = build_engine(dtype, vocab, hidden, max(tokens, 2), target)
    (out_dir / "lookup_aot.engine").write_bytes(engine)
    index, table, expected = make_data(dtype, vocab, hidden, tokens)
    for name, t in (("index", index), ("table", table), ("expected", expected)):
        a = raw(t)
        a.astype(a.dtype.newbyteorder("<"), copy=False).tofile(out_dir / f"{name}.bin")
        np.save(out_dir / f"{name}.npy", a)
    (out_dir / "meta.txt").write_text(f"{tokens} {vocab} {hidden} {dtype_name}\n")
    return out_dir / "lookup_aot.engine", len(engine)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tmp/aot")
    ap.add_argument("--dtype", default="float16", choices=sorted(TORCH_DTYPES))
    ap.add_argument("--vocab", type=int, default=32)
    ap.add_argument("--hidden", type=int, default=48)
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--target", default=None, help="e.g. sm_90 (default: the local GPU, else sm_90)")
    args = ap.parse_args()
    path, size = write(args.out, args.dtype, args.vocab, args.hidden, args.tokens, args.target)
    print(f"built {path} ({size} bytes) for {args.target or kiln.aot.default_target()}")
    if kiln.cuda_available() and torch.cuda.is_available():
        # Run it here too and compare with torch.
        index, table, expected = make_data(TORCH_DTYPES[args.dtype], args.vocab, args.hidden, args.tokens)
        session = kiln.Session.from_serialized_engine(path.read_bytes(), device="cuda")
        got = session({"x": index.cuda(), "y": table.cuda()})["output"]
        torch.cuda.synchronize()
        got = torch.as_tensor(got).cpu()
        if not torch.equal(got, expected):
            bad = [i for i in range(expected.shape[0]) if not torch.equal(got[i], expected[i])]
            jit = torch.empty_like(expected).cuda()
            from plugin_lib.lookup_kernel import launch_lookup
            launch_lookup(index.cuda(), table.cuda(), jit)
            torch.cuda.synchronize()
            print(f"mismatching rows {bad[:20]} of {expected.shape[0]} (indices {index[bad[:20]].tolist()}); "
                  f"the JIT kernel on the same data matches torch: {torch.equal(jit.cpu(), expected)}; "
                  f"first bad row got {got[bad[0]][:6].tolist()} want {expected[bad[0]][:6].tolist()}")
        assert torch.equal(got, expected), "AOT engine output differs from torch"
        print("ran it on the GPU: matches torch")


if __name__ == "__main__":
    main()
