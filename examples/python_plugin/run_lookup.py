"""Run the look-up engines and compare with torch.nn.functional.embedding.

    python run_lookup.py [--out tmp] [--tokens 10] [--in-process]

Each engine is loaded in a fresh Python process that imports only
plugin_lib (which registers the plugin), as a deployment would.  Prints one
row per dtype and exits non-zero on a mismatch.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DTYPE_NAMES = ("float32", "float16", "bfloat16")


def run_one(out_dir, dtype_name, n_tokens, seed=0):
    import plugin_lib  # noqa: F401  (registers TritonLookUp; picks the Triton mode)
    from plugin_lib._triton_mode import device as pick_device

    import torch

    from kiln.compat.trtllm.runtime.session import Session, TensorInfo

    device = pick_device()
    engine_path = Path(out_dir) / dtype_name / "lookup.engine"
    with engine_path.open('rb') as f:
        session = Session.from_serialized_engine(f.read(), device=device)

    dtype = getattr(torch, dtype_name)
    (vocab_size, n_embed) = [int(d) for d in dict((n, s) for n, _, _, s in session.engine.io())["y"]]
    gen = torch.Generator().manual_seed(seed)
    table = torch.randn(vocab_size, n_embed, generator=gen).to(dtype).to(device)
    index = torch.randint(0, vocab_size, (n_tokens,), generator=gen, dtype=torch.int32).to(device)

    out_info = session.infer_shapes([TensorInfo('x', 'int32', tuple(index.shape)),
                                     TensorInfo('y', dtype_name, tuple(table.shape))])
    output = torch.empty(out_info[0].shape, dtype=dtype, device=device)
    stream = torch.cuda.current_stream().cuda_stream if device == "cuda" else None
    ok = session.run(inputs={'x': index, 'y': table}, outputs={'output': output}, stream=stream)
    if device == "cuda":
        torch.cuda.synchronize()
    ref = torch.nn.functional.embedding(index.long(), table)
    err = (output.float() - ref.float()).abs().max().item()
    return {"dtype": dtype_name, "device": device, "tokens": n_tokens, "hidden": n_embed,
            "max_abs_err": err, "match": bool(ok) and torch.equal(output, ref)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="tmp")
    ap.add_argument("--tokens", type=int, default=10)
    ap.add_argument("--in-process", action="store_true", help="run every dtype in this process")
    ap.add_argument("--one", help=argparse.SUPPRESS)   # child mode: one dtype, JSON on stdout
    args = ap.parse_args()

    if args.one:
        print(json.dumps(run_one(args.out, args.one, args.tokens)))
        return 0

    rows = []
    for name in DTYPE_NAMES:
        if args.in_process:
            rows.append(run_one(args.out, name, args.tokens))
            continue
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--out", args.out, "--tokens",
                               str(args.tokens), "--one", name], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            rows.append({"dtype": name, "device": "?", "tokens": args.tokens, "hidden": 0,
                         "max_abs_err": float("nan"), "match": False})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    print(f"{'dtype':<10} {'device':<7} {'tokens':>6} {'hidden':>6} {'max |err|':>10}  result")
    for r in rows:
        print(f"{r['dtype']:<10} {r['device']:<7} {r['tokens']:>6} {r['hidden']:>6} {r['max_abs_err']:>10.3g}  "
              f"{'OK' if r['match'] else 'MISMATCH'}")
    return 0 if all(r["match"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
