"""ONNX's own backend node tests (shipped in the onnx package) through
kiln.onnx.backend on the CPU: every case whose ops are all in kiln's list
and whose element types kiln has is run and compared with ONNX's expected
outputs (ONNX's own tolerances: rtol 1e-3, atol 1e-7, as
onnx.backend.test.runner uses).  Prints a per-op table (markdown) and
exits nonzero when the pass rate falls below --min-pass.

    python3 tests/onnx/run_node_tests.py [--min-pass 0.9] [--table docs/onnx-node-tests.md] [-k substring]
"""
import argparse
import collections
import sys
import traceback

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--min-pass", type=float, default=0.0)
    ap.add_argument("--table", default=None, help="write the per-op table here")
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    ap.add_argument("-v", action="store_true")
    args = ap.parse_args()

    import onnx
    from onnx.backend.test.case.node import collect_testcases
    from kiln.onnx import ops as kops
    from kiln.onnx.backend import KilnBackend
    from kiln.onnx import dtypes as kdt

    supported_ops = {name for (dom, name), fn in kops.OPS.items() if fn is not kops.unsupported}
    kiln_types = set(kdt._TO_KILN)

    def elem_types(model):
        ts = set()
        for vi in list(model.graph.input) + list(model.graph.output):
            if vi.type.HasField("tensor_type"):
                ts.add(vi.type.tensor_type.elem_type)
            else:
                ts.add(-1)   # sequences, optionals, maps: not kiln's
        return ts

    per_op = collections.defaultdict(lambda: collections.Counter())
    failures = []
    ran = passed = 0
    for case in collect_testcases(None):
        if args.k and args.k not in case.name:
            continue
        model = case.model
        ops = {n.op_type for n in model.graph.node}
        main_op = model.graph.node[0].op_type if len(model.graph.node) == 1 else case.name
        key = sorted(ops)[0] if len(ops) == 1 else "+".join(sorted(ops))
        if not ops <= supported_ops or any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
            continue
        if not elem_types(model) <= kiln_types:
            continue
        ran += 1
        ok = True
        reason = ""
        try:
            rep = KilnBackend.prepare(model, "CPU")
            for inputs, outputs in case.data_sets:
                inputs = [onnx.numpy_helper.to_array(i) if isinstance(i, onnx.TensorProto) else np.asarray(i)
                          for i in inputs]
                got = rep.run(inputs)
                for g, w in zip(got, outputs):
                    w = onnx.numpy_helper.to_array(w) if isinstance(w, onnx.TensorProto) else np.asarray(w)
                    g = np.asarray(g)
                    if g.shape != w.shape:
                        raise AssertionError(f"shape {g.shape} != {w.shape}")
                    if w.dtype.kind in "fc" or str(w.dtype) == "bfloat16":
                        np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=1e-3, atol=1e-7)
                    else:
                        np.testing.assert_array_equal(g, w)
        except Exception as e:
            ok = False
            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
            if args.v:
                traceback.print_exc()
        for o in ops:
            per_op[o]["pass" if ok else "fail"] += 1
        if ok:
            passed += 1
        else:
            failures.append((case.name, reason))
    rate = passed / ran if ran else 0.0
    lines = [f"ONNX backend node tests through kiln.onnx.backend on the CPU: {passed} of {ran} cases pass "
             f"({rate:.1%}); onnx {onnx.__version__}.", "", "| op | pass | fail |", "|---|---|---|"]
    for o in sorted(per_op):
        lines.append(f"| {o} | {per_op[o]['pass']} | {per_op[o]['fail']} |")
    lines += ["", "Failing cases:", ""] + [f"- `{n}`: {r}" for n, r in failures]
    text = "\n".join(lines) + "\n"
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)
    print("\n".join(lines[:1] + [f"- {n}: {r}" for n, r in failures[:400]]))
    return 0 if rate >= args.min_pass else 1


if __name__ == "__main__":
    sys.exit(main())
