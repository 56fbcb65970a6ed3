"""float32 CPU matmul: kiln with the system BLAS, kiln's own kernels, and numpy,
side by side in one run.

    python3 bench/bench_cpu_matmul_blas.py

Each kiln case is a one-layer engine x [M, K] @ w [K, N] (w a constant, as a
weight is) run through a Session; numpy computes x @ w on the same arrays.
Which BLAS kiln uses is fixed when a process first multiplies (KILN_BLAS,
src/backend/cpu/cpu_blas.h), so each kiln variant runs in a child process of
its own; numpy runs in the parent.  Threads: kiln and numpy both use every
CPU this process may run on (set KILN_CPU_THREADS / OPENBLAS_NUM_THREADS to
change that).  Best of several timed runs after warm-up; results are
checked against numpy.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

SIZES = [(1024, 1024, 1024), (1, 4096, 4096), (256, 4096, 4096), (64, 2048, 8192), (2048, 2048, 2048)]


def best_seconds(fn, min_time=0.3, rounds=5):
    fn()
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 0.05:
        fn()
        n += 1
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(max(1, n)):
            fn()
        best = min(best, (time.perf_counter() - t0) / max(1, n))
    return best


def data(M, K, N):
    rng = np.random.default_rng(0)
    return rng.standard_normal((M, K), np.float32), rng.standard_normal((K, N), np.float32)


def kiln_child(M, K, N):
    """Runs in a child process: time kiln on this size, print JSON."""
    import kiln
    from kiln.runtime import Session
    x, w = data(M, K, N)
    builder = kiln.Builder()
    net = builder.create_network()
    with kiln.net_guard(net):
        t = kiln.Tensor(name="x", shape=(M, K), dtype="float32")
        kiln.matmul(t, kiln.constant(w)).mark_output("y")
    engine = builder.build_engine(net, builder.create_builder_config(precision="float32"))
    session = Session.from_serialized_engine(engine, device="cpu")
    y = np.empty((M, N), np.float32)
    inputs, outputs = {"x": x}, {"y": y}
    run = lambda: session.run(inputs, outputs)   # noqa: E731
    run()
    err = float(np.max(np.abs(y - x @ w)) / (np.max(np.abs(x @ w)) + 1e-30))
    print(json.dumps({"seconds": best_seconds(run), "rel_err": err}))


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        kiln_child(*map(int, sys.argv[2:]))
        return
    here = os.path.dirname(os.path.abspath(__file__))
    blas = os.environ.get("KILN_BLAS", "")
    variants = [("kiln (BLAS)", blas), ("kiln (own kernels)", "none")]
    print(f"CPU: {os.cpu_count()} CPUs visible; numpy {np.__version__}; "
          f"kiln BLAS: {blas or 'auto (libopenblas.so.0, libblis)'}")
    print("| M x K x N | " + " | ".join(f"{v} GFLOP/s" for v, _ in variants)
          + " | numpy GFLOP/s | kiln BLAS / numpy | own / numpy |")
    print("|---|" + "---:|" * (len(variants) + 3))
    for M, K, N in SIZES:
        flops = 2.0 * M * K * N
        x, w = data(M, K, N)
        numpy_s = best_seconds(lambda: np.matmul(x, w))
        results = []
        for _, env_value in variants:
            env = dict(os.environ, KILN_BLAS=env_value)
            out = subprocess.run([sys.executable, os.path.join(here, os.path.basename(__file__)), "--child",
                                  str(M), str(K), str(N)], env=env, capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            if r["rel_err"] > 1e-4:
                raise SystemExit(f"kiln result differs from numpy at {M}x{K}x{N}: {r['rel_err']}")
            results.append(r["seconds"])
        g = [flops / s / 1e9 for s in results]
        gn = flops / numpy_s / 1e9
        print(f"| {M} x {K} x {N} | " + " | ".join(f"{v:.1f}" for v in g)
              + f" | {gn:.1f} | {g[0] / gn:.2f} | {g[1] / gn:.2f} |")


if __name__ == "__main__":
    main()
