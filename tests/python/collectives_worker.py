"""One rank of the multi-GPU collective tests (tests/python/test_collectives.py
starts one process per GPU):

    python3 collectives_worker.py compare RANK WORLD STORE_DIR
    python3 collectives_worker.py dead-peer RANK WORLD STORE_DIR

compare: every collective of kiln (all_reduce sum/prod/max/min, all_gather and
reduce_scatter along each axis) against torch.distributed (nccl backend) on
the same inputs, for float32, float16 and bfloat16 and uneven sizes; then one
run captured in a CUDA graph and replayed with new input values.  The kiln
id goes through a file (KILN_NCCL_ID_FILE, kiln.distributed.comm_from_env) for
the first session and through torch.distributed (comm_from_torch) for the
graph session.

dead-peer: rank 1 joins and exits; rank 0's all_reduce must fail within the
timeout with an error naming rank 0, not hang.

Prints "RANK r: ok" last when every check passed; exits non-zero otherwise.
"""
import os
import sys
import time

import torch
import torch.distributed as dist

import kiln
from kiln.runtime import Session

FLOATS = [torch.float32, torch.float16, torch.bfloat16]
TOL = {torch.float32: (1e-5, 1e-5), torch.float16: (2e-3, 2e-3), torch.bfloat16: (2e-2, 2e-2)}
REDUCE = {"sum": dist.ReduceOp.SUM, "prod": dist.ReduceOp.PRODUCT, "max": dist.ReduceOp.MAX,
          "min": dist.ReduceOp.MIN}
# Odd and uneven sizes for gathers and all-reduces; the reduce-scatter input
# doubles each axis (world 2 must divide the scattered axis).
SHAPES = [(3, 5, 7), (1, 1, 1), (17, 33, 129), (2, 1000, 3)]


def build(dtype, rank, world):
    """x [a, b, c] → every all_reduce and all_gather; y [a2, b2, c2] → reduce_scatter on each axis."""
    builder = kiln.Builder()
    net = builder.create_network()
    net.set_parallel(rank, world)
    dims = lambda p: {f"{p}{i}": [(1, 8, 2048)] for i in range(3)}   # noqa: E731
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=[-1, -1, -1], dtype=kiln.to_dtype(dtype), dim_range=dims("x"))
        y = kiln.Tensor(name="y", shape=[-1, -1, -1], dtype=kiln.to_dtype(dtype), dim_range=dims("y"))
        for op in REDUCE:
            kiln.all_reduce(x, op).mark_output(f"ar_{op}")
        for axis in range(3):
            kiln.all_gather(x, axis).mark_output(f"ag{axis}")
            kiln.reduce_scatter(y, axis).mark_output(f"rs{axis}")
    return builder.build_engine(net)


def torch_reference(x, y, world):
    want = {}
    for op, red in REDUCE.items():
        t = x.clone()
        dist.all_reduce(t, op=red)
        want[f"ar_{op}"] = t
    for axis in range(3):
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x)
        want[f"ag{axis}"] = torch.cat(parts, dim=axis)
        moved = y.movedim(axis, 0).contiguous()
        out = torch.empty((moved.shape[0] // world,) + tuple(moved.shape[1:]), dtype=y.dtype, device=y.device)
        dist.reduce_scatter_tensor(out, moved, op=dist.ReduceOp.SUM)
        want[f"rs{axis}"] = out.movedim(0, axis).contiguous()
    return want


def inputs(shape, dtype, rank, seed, device):
    g = torch.Generator().manual_seed(seed * 100 + rank)
    # Values near 1 keep prod finite in float16 and make max/min meaningful.
    x = (1 + 0.25 * torch.randn(*shape, generator=g)).to(dtype).to(device)
    y = torch.randn(*[2 * d for d in shape], generator=g).to(dtype).to(device)
    return x, y


def check(name, got, want, dtype, failures):
    rtol, atol = TOL[dtype]
    try:
        assert got.shape == want.shape, f"shape {tuple(got.shape)} != {tuple(want.shape)}"
        torch.testing.assert_close(got.float(), want.float(), rtol=rtol, atol=atol)
    except AssertionError as e:
        failures.append(f"{name}: {e}")


def compare(rank, world, store):
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", init_method=f"file://{store}/torch_store", rank=rank, world_size=world)
    os.environ["KILN_NCCL_ID_FILE"] = f"{store}/kiln.id"
    failures = []
    comm = kiln.distributed.comm_from_env(rank, world)
    for di, dtype in enumerate(FLOATS):
        session = Session(build(dtype, rank, world), device=f"cuda:{rank}",
                          comm=comm if di == 0 else (rank, world, kiln.distributed.comm_from_torch()[2]))
        assert session.parallel == (rank, world)
        for si, shape in enumerate(SHAPES):
            x, y = inputs(shape, dtype, rank, si, device)
            got = session({"x": x, "y": y})
            session.synchronize()
            want = torch_reference(x, y, world)
            for name, w in want.items():
                check(f"{dtype} {shape} {name}", got[name], w, dtype, failures)
        del session

    # A CUDA graph: capture once, then replay with new values in the same buffers.
    dtype = torch.bfloat16
    session = Session(build(dtype, rank, world), device=f"cuda:{rank}", comm=kiln.distributed.comm_from_torch())
    x, y = inputs((4, 6, 10), dtype, rank, 7, device)
    outs = {n: torch.empty_like(t) for n, t in torch_reference(x, y, world).items()}
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()   # inputs and outputs were made on the default stream
    with torch.cuda.stream(stream):
        session.capture({"x": x, "y": y}, outs, stream=stream)
        for step in range(3):
            nx, ny = inputs((4, 6, 10), dtype, rank, 20 + step, device)
            x.copy_(nx)
            y.copy_(ny)
            session.replay(stream)
            session.synchronize(stream)
            want = torch_reference(nx, ny, world)
            for name, w in want.items():
                check(f"graph replay {step} {name}", outs[name], w, dtype, failures)
    assert session.graph_ready
    dist.barrier()
    dist.destroy_process_group()
    return failures


def dead_peer(rank, world, store):
    os.environ["KILN_NCCL_ID_FILE"] = f"{store}/kiln.id"
    os.environ["KILN_NCCL_TIMEOUT_S"] = "20"
    builder = kiln.Builder()
    net = builder.create_network()
    net.set_parallel(rank, world)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(1024,), dtype="float32")
        kiln.all_reduce(x).mark_output("y")
    session = Session(builder.build_engine(net), device=f"cuda:{rank}", comm=kiln.distributed.comm_from_env(rank, world))
    # Rank 1 leaves only once rank 0 has joined too (NCCL's init can finish
    # on one rank before the other): the failure must come from the run.
    joined = os.path.join(store, "rank0-joined")
    if rank == 1:
        deadline = time.monotonic() + 60
        while not os.path.exists(joined) and time.monotonic() < deadline:
            time.sleep(0.05)
        os._exit(0)   # gone without a word, after joining
    open(joined, "w").close()
    x = torch.ones(1024, device=f"cuda:{rank}")
    t0 = time.monotonic()
    try:
        session({"x": x})
        session.synchronize()
    except kiln.Error as e:
        took = time.monotonic() - t0
        message = str(e)
        print(f"rank {rank}: failed after {took:.1f} s: {message}")
        if "rank 0 of 2" not in message or took > 120:
            return [f"the error should name rank 0 of 2 within 120 s: {message}"]
        return []
    return ["the all_reduce with a dead peer did not fail"]


def main():
    mode, rank, world, store = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    failures = compare(rank, world, store) if mode == "compare" else dead_peer(rank, world, store)
    for f in failures:
        print(f"RANK {rank} FAIL {f}")
    print(f"RANK {rank}: {'ok' if not failures else f'{len(failures)} failures'}", flush=True)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
