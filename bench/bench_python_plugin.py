"""Cost of one Python plugin call through Session.run on the CPU.

A trivial plugin (forward does nothing) on tiny tensors, so what is measured
is kiln's overhead: taking the GIL back in the bridge, repointing the reused
TensorWrappers, setting self.workspace / self.current_stream, and calling
forward().  Three figures:

  direct      obj.forward(inputs, outputs) called from Python (the floor)
  per layer   (t[run, N plugin layers] - t[run, 1 plugin layer]) / (N - 1):
              the cost of one more plugin layer inside a run
  added       per layer - direct: what kiln adds to a plugin call (target < 5 us)

plus the fixed cost of Session.run itself (binding two numpy arrays).

    PYTHONPATH=python KILN_BUILD_DIR=build-py python3 bench/bench_python_plugin.py
"""
import argparse
import time

import numpy as np

import kiln


@kiln.plugin("Noop", namespace="bench")
class Noop(kiln.PluginBase):
    def shape_dtype_inference(self, inputs) -> kiln.SymTensor:
        return kiln.SymTensor(inputs[0].dtype, inputs[0].shape)

    def forward(self, inputs, outputs):
        pass


def session_with(n_plugins, builtin=False):
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        h = kiln.Tensor(name="x", shape=(4,), dtype="float32")
        for _ in range(n_plugins):
            h = kiln.relu(h) if builtin else Noop()(h)
        h.mark_output("y")
    return kiln.Session.from_serialized_engine(builder.build_engine(net), device="cpu")


def best_of(fn, number, repeat):
    """Median-of-best: the minimum per-call time over `repeat` batches."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=33)
    ap.add_argument("--number", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    x = np.ones(4, np.float32)
    y = np.empty(4, np.float32)
    inputs, outputs = {"x": x}, {"y": y}

    obj = Noop()
    win, wout = [kiln.wrap_tensor(x)], [kiln.wrap_tensor(y)]
    direct = best_of(lambda: obj.forward(win, wout), args.number, args.repeat)

    one = session_with(1)
    many = session_with(args.layers)
    relu_one = session_with(1, builtin=True)
    relu_many = session_with(args.layers, builtin=True)
    runs = {}
    for name, s in (("1 plugin", one), (f"{args.layers} plugins", many), ("1 relu", relu_one),
                    (f"{args.layers} relu", relu_many)):
        s.run(inputs, outputs)
        runs[name] = best_of(lambda: s.run(inputs, outputs), max(100, args.number // 4), args.repeat)

    per_plugin = (runs[f"{args.layers} plugins"] - runs["1 plugin"]) / (args.layers - 1)
    per_relu = (runs[f"{args.layers} relu"] - runs["1 relu"]) / (args.layers - 1)
    added = per_plugin - direct
    us = 1e6
    print(f"kiln {kiln.__version__}: Python plugin call overhead on the CPU (float32[4], trivial forward)")
    print(f"{'measure':<44} {'time (us)':>10}")
    print("-" * 56)
    print(f"{'forward() called directly':<44} {direct * us:>10.2f}")
    print(f"{'Session.run, 1 plugin layer':<44} {runs['1 plugin'] * us:>10.2f}")
    print(f"{f'Session.run, {args.layers} plugin layers':<44} {runs[f'{args.layers} plugins'] * us:>10.2f}")
    print(f"{'Session.run, 1 relu layer (no Python)':<44} {runs['1 relu'] * us:>10.2f}")
    print(f"{'one more relu layer':<44} {per_relu * us:>10.2f}")
    print(f"{'one more plugin layer':<44} {per_plugin * us:>10.2f}")
    print(f"{'added by kiln per plugin call':<44} {added * us:>10.2f}   (target < 5)")
    print(f"{'Session.run fixed cost (1 relu layer)':<44} {(runs['1 relu'] - per_relu) * us:>10.2f}")
    return 0 if added < 5e-6 else 1


if __name__ == "__main__":
    raise SystemExit(main())
