"""Collective layers: kiln.all_reduce, all_gather, reduce_scatter.

Everywhere: the API (shapes at several world sizes, errors), the engine's
parallel record, communicator ids as text and from the environment, the
CPU's identity at world size 1 and its refusal of larger groups.  With a
GPU: world size 1 on CUDA (a device copy, no NCCL), in a CUDA graph too, and
a communicator that waits for a rank that never comes fails in bounded time.
With two GPUs: two processes (collectives_worker.py) compare every
collective with torch.distributed (nccl) for float32/float16/bfloat16 and
uneven sizes, replay one in a CUDA graph, and see a dead peer fail the other
rank with an error naming it."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import kiln
from kiln.runtime import Engine, Session

from conftest import HAVE_GPU, run_workers, subprocess_env

HERE = Path(__file__).resolve().parent
TWO_GPUS = HAVE_GPU and torch.cuda.device_count() >= 2
HAVE_NCCL = HAVE_GPU and torch.distributed.is_available() and torch.distributed.is_nccl_available()


def build(fn, shape, dtype="float32", parallel=(0, 1), dim_range=None):
    builder = kiln.Builder()
    net = builder.create_network()
    net.set_parallel(*parallel)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=shape, dtype=dtype, dim_range=dim_range)
        fn(x).mark_output("y")
    return builder.build_engine(net)


# ---- the API -------------------------------------------------------------------

def test_shapes_follow_the_world_size():
    net = kiln.Builder().create_network()
    assert net.parallel == (0, 1)
    net.set_parallel(2, 4)
    assert net.parallel == (2, 4)
    with kiln.net_guard(net):
        x = kiln.Tensor(name="x", shape=(8, 3, 5), dtype="float16")
        assert tuple(kiln.all_reduce(x, "max").shape) == (8, 3, 5)
        assert tuple(kiln.all_gather(x, axis=1).shape) == (8, 12, 5)
        assert tuple(kiln.all_gather(x, axis=-1).shape) == (8, 3, 20)
        assert tuple(kiln.reduce_scatter(x).shape) == (2, 3, 5)
        with pytest.raises(kiln.Error, match="axis 1 has size 3, which world size 4 does not divide"):
            kiln.reduce_scatter(x, axis=1)
        with pytest.raises(ValueError, match="op must be one of sum, prod, max, min"):
            kiln.all_reduce(x, "mean")
        flag = kiln.Tensor(name="flag", shape=(4,), dtype="bool")
        with pytest.raises(kiln.Error, match="dtype bool is not supported"):
            kiln.all_reduce(flag)
        assert tuple(kiln.all_gather(flag).shape) == (16,)
    # The world size is fixed once collectives depend on it.
    with pytest.raises(kiln.Error, match="before adding them"):
        net.set_parallel(0, 2)
    with pytest.raises(kiln.Error, match="rank 5 is outside"):
        kiln.Builder().create_network().set_parallel(5, 2)


def test_symbolic_reduce_scatter_checks_at_run_time():
    rng = {"n": [(1, 4, 16)], "h": [6]}
    engine = build(lambda x: kiln.reduce_scatter(x, axis=0), (-1, 6), dim_range=rng)
    s = Session(engine, device="cpu")
    assert s({"x": np.ones((5, 6), "float32")})["y"].shape == (5, 6)   # world size 1 divides everything


def test_engine_records_the_group():
    engine = build(lambda x: kiln.all_gather(x, axis=1), (2, 3), parallel=(1, 2))
    e = Engine.from_memory(engine)
    assert e.parallel == (1, 2)
    assert e.format_version == 3
    assert e.layers()[0][:2] == ("all_gather", "axis 1 rank 1 of 2")
    # Rank 0 of 1 stays a version 2 file (older kilns read it).
    assert Engine.from_memory(build(kiln.all_reduce, (2, 3))).parallel == (0, 1)
    assert Engine.from_memory(build(kiln.all_reduce, (2, 3))).format_version == 2
    assert bytes(build(kiln.all_reduce, (2, 3)))[4] == 2


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int8", "uint8", "int32", "int64"])
@pytest.mark.parametrize("op", ["all_reduce_sum", "all_reduce_max", "all_reduce_min", "all_reduce_prod",
                                "all_gather0", "all_gather1", "reduce_scatter0", "reduce_scatter1"])
def test_cpu_world_size_1_is_the_identity(op, dtype):
    fns = {"all_reduce_sum": lambda x: kiln.all_reduce(x, "sum"), "all_reduce_max": lambda x: kiln.all_reduce(x, "max"),
           "all_reduce_min": lambda x: kiln.all_reduce(x, "min"), "all_reduce_prod": lambda x: kiln.all_reduce(x, "prod"),
           "all_gather0": lambda x: kiln.all_gather(x, 0), "all_gather1": lambda x: kiln.all_gather(x, 1),
           "reduce_scatter0": lambda x: kiln.reduce_scatter(x, 0),
           "reduce_scatter1": lambda x: kiln.reduce_scatter(x, 1)}
    rng = {"n": [(1, 4, 16)], "h": [5]}
    s = Session(build(fns[op], (-1, 5), dtype=dtype, dim_range=rng), device="cpu", comm=(0, 1, None))
    x = (torch.arange(35) - 17).reshape(7, 5).to(kiln.to_torch_dtype(dtype))
    y = s({"x": x})["y"]
    assert torch.equal(y, x)
    s.synchronize()


def test_cpu_refuses_a_group_when_the_session_is_made():
    engine = build(kiln.all_reduce, (2, 3), parallel=(0, 2))
    with pytest.raises(kiln.Error, match=r"layer 0 \(all_reduce sum rank 0 of 2\): the cpu backend runs collective "
                                         r"layers only at world size 1, and this engine is rank 0 of world size 2"):
        Session(engine, device="cpu")


def test_comm_argument_is_checked():
    engine = build(kiln.all_reduce, (2, 3))
    with pytest.raises(TypeError, match="comm must be"):
        Session(engine, device="cpu", comm=5)
    with pytest.raises(kiln.Error, match="rank 1 of world size 2 given, but the engine was built for rank 0 of "
                                         "world size 1"):
        Session(engine, device="cpu", comm=(1, 2, bytes(128)))
    with pytest.raises(kiln.Error, match="the id has 3 bytes"):
        Session(engine, device="cpu", comm=(0, 1, b"abc"))


def test_ids_as_text_and_from_the_environment(monkeypatch, tmp_path):
    d = kiln.distributed
    comm_id = bytes(range(128))
    text = d.comm_id_to_hex(comm_id)
    assert len(text) == 256 and d.comm_id_from_hex(text.upper() + "\n") == comm_id
    with pytest.raises(ValueError):
        d.comm_id_from_hex("00ff")
    for v in ["RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMI_RANK",
              "PMI_SIZE", "SLURM_PROCID", "SLURM_NTASKS", "KILN_NCCL_ID", "KILN_NCCL_ID_FILE"]:
        monkeypatch.delenv(v, raising=False)
    with pytest.raises(kiln.Error, match="no launcher's rank variables"):
        d.launcher_env()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert d.launcher_env() == (1, 2, 1)
    monkeypatch.setenv("KILN_NCCL_ID", text)
    assert d.comm_from_env() == (1, 2, comm_id)
    monkeypatch.delenv("KILN_NCCL_ID")
    path = tmp_path / "job.id"
    path.write_text(text + "\n")
    monkeypatch.setenv("KILN_NCCL_ID_FILE", str(path))
    assert d.comm_from_env() == (1, 2, comm_id)
    with pytest.raises(kiln.Error, match="exists already"):
        d.comm_from_env(rank=0)


def test_comm_from_torch_needs_torch_distributed():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        pytest.skip("torch.distributed is initialised in this process")
    with pytest.raises(RuntimeError, match="torch.distributed is not initialised"):
        kiln.distributed.comm_from_torch()


# ---- one GPU ---------------------------------------------------------------------

gpu = pytest.mark.skipif(not HAVE_GPU, reason="needs a GPU that kiln and torch can use")


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.int64])
def test_cuda_world_size_1_is_a_copy(dtype):
    name = kiln.dtype_name(kiln.to_dtype(dtype))
    rng = {"n": [(1, 8, 64)], "h": [6]}
    fn = lambda x: kiln.reduce_scatter(kiln.all_gather(kiln.all_reduce(x, "max"), 1), 0)   # noqa: E731
    s = Session(build(fn, (-1, 6), dtype=name, dim_range=rng), device="cuda:0", comm=(0, 1, None))
    x = (torch.arange(42, device="cuda") - 20).reshape(7, 6).to(dtype)
    assert torch.equal(s({"x": x})["y"], x)
    # Captured in a graph like every other layer.
    out = torch.empty_like(x)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()   # x was written on the default stream
    with torch.cuda.stream(stream):
        s.capture({"x": x}, {"y": out}, stream=stream)
        x.mul_(2)
        s.replay(stream)
        s.synchronize(stream)
    assert torch.equal(out, x)


@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_one_rank_nccl_communicator(dtype):
    """World size 1 with an id: the collectives go through a one-rank NCCL
    communicator (all_reduce and reduce_scatter along axis 0 directly,
    all_gather along an inner axis through the scratch-and-interleave path),
    eagerly and replayed from a CUDA graph.  A group of one gives back its
    input, so the result must equal x exactly."""
    if not HAVE_NCCL:
        pytest.skip("torch has no NCCL")
    name = kiln.dtype_name(kiln.to_dtype(dtype))
    rng = {"n": [(1, 8, 64)], "h": [6]}
    fn = lambda x: kiln.reduce_scatter(kiln.all_gather(kiln.all_reduce(x, "sum"), 1), 0)   # noqa: E731
    s = Session(build(fn, (-1, 6), dtype=name, dim_range=rng), device="cuda:0",
                comm=(0, 1, kiln.distributed.comm_id_new()))
    x = (torch.arange(42, device="cuda") - 20).reshape(7, 6).to(dtype)
    assert torch.equal(s({"x": x})["y"], x)
    out = torch.empty_like(x)
    stream = torch.cuda.Stream()
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        s.capture({"x": x}, {"y": out}, stream=stream)
        x.mul_(3)
        s.replay(stream)
        s.synchronize(stream)
    assert torch.equal(out, x)


@gpu
def test_cuda_group_needs_a_communicator():
    if not HAVE_NCCL:
        pytest.skip("torch has no NCCL")
    s = Session(build(kiln.all_reduce, (4,), parallel=(0, 2)), device="cuda:0")
    with pytest.raises(kiln.Error, match="has joined no communicator: call kiln_context_set_communicator"):
        s({"x": torch.ones(4, device="cuda")})


@gpu
def test_a_rank_that_never_comes_fails_in_bounded_time():
    """Rank 0 of 2 joins alone: the wait ends after KILN_NCCL_TIMEOUT_S with an
    error naming the rank, in a child process (the communicator is aborted)."""
    if not HAVE_NCCL:
        pytest.skip("torch has no NCCL")
    code = (
        "import kiln, torch, time\n"
        "from kiln.runtime import Session\n"
        "b = kiln.Builder(); n = b.create_network(); n.set_parallel(0, 2)\n"
        "with kiln.net_guard(n):\n"
        "    kiln.all_reduce(kiln.Tensor(name='x', shape=(4,), dtype='float32')).mark_output('y')\n"
        "t = time.monotonic()\n"
        "try:\n"
        "    Session(b.build_engine(n), device='cuda:0', comm=(0, 2, kiln.distributed.comm_id_new()))\n"
        "except kiln.Error as e:\n"
        "    print('ERROR', round(time.monotonic() - t), e)\n")
    env = subprocess_env()
    env["KILN_NCCL_TIMEOUT_S"] = "5"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert "ERROR" in r.stdout, r.stdout + r.stderr
    assert "rank 0 of 2" in r.stdout and "did not finish within 5 s" in r.stdout, r.stdout


# ---- two GPUs ---------------------------------------------------------------------

def run_ranks(mode, tmp_path, world=2, timeout=300):
    env = subprocess_env()
    env.pop("KILN_NCCL_ID_FILE", None)
    env.setdefault("KILN_NCCL_TIMEOUT_S", "90")   # a stuck collective fails by name well before the deadline
    return run_workers([[sys.executable, str(HERE / "collectives_worker.py"), mode, str(r), str(world), str(tmp_path)]
                        for r in range(world)], env, timeout)


@pytest.mark.skipif(not (TWO_GPUS and HAVE_NCCL), reason="needs 2 GPUs and NCCL")
def test_two_ranks_match_torch_distributed(tmp_path):
    codes, outs = run_ranks("compare", tmp_path)
    assert codes == [0, 0], "\n".join(outs)
    assert all(f"RANK {r}: ok" in outs[r] for r in range(2)), "\n".join(outs)


@pytest.mark.skipif(not (TWO_GPUS and HAVE_NCCL), reason="needs 2 GPUs and NCCL")
def test_a_dead_peer_fails_the_other_rank(tmp_path):
    codes, outs = run_ranks("dead-peer", tmp_path, timeout=180)
    assert codes[0] == 0, "\n".join(outs)
    assert "RANK 0: ok" in outs[0], "\n".join(outs)
