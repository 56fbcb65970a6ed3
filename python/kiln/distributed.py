"""Communicator ids for tensor-parallel sessions.

An engine built with Network.set_parallel(rank, world_size) and collective
layers (kiln.all_reduce, all_gather, reduce_scatter) runs as one Session per
rank, each joining the group with the same id, made once by rank 0:

    comm = kiln.distributed.comm_from_torch()      # under torchrun, after init_process_group
    session = kiln.Session(engine, device=f"cuda:{local_rank}", comm=comm)

comm_from_env() does the same without torch, from the launcher's variables
and $KILN_NCCL_ID / $KILN_NCCL_ID_FILE (what C programs use under mpirun).
Ids are NCCL unique ids: making one needs a GPU machine with libnccl.so.2.
"""
from ._native import _kiln

__all__ = ["comm_id_new", "comm_id_to_hex", "comm_id_from_hex", "comm_from_torch", "comm_from_env",
           "launcher_env", "COMM_ID_BYTES"]

COMM_ID_BYTES = 128


def comm_id_new():
    """A fresh communicator id (bytes; ncclGetUniqueId)."""
    return _kiln.comm_id_new()


def comm_id_to_hex(comm_id):
    comm_id = bytes(comm_id)
    if len(comm_id) != COMM_ID_BYTES:
        raise ValueError(f"a communicator id has {COMM_ID_BYTES} bytes, not {len(comm_id)}")
    return comm_id.hex()


def comm_id_from_hex(text):
    comm_id = bytes.fromhex(text.strip())
    if len(comm_id) != COMM_ID_BYTES:
        raise ValueError(f"a communicator id is {2 * COMM_ID_BYTES} hex digits, not {2 * len(comm_id)}")
    return comm_id


def comm_from_torch(group=None):
    """(rank, world_size, id) for this process when torch.distributed is
    initialised: rank 0 makes the id and broadcasts it to the group
    (torch.distributed.broadcast_object_list).  Every rank must call it."""
    import torch.distributed as dist
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError("kiln.distributed.comm_from_torch: torch.distributed is not initialised "
                           "(call torch.distributed.init_process_group first, e.g. under torchrun)")
    rank, world_size = dist.get_rank(group), dist.get_world_size(group)
    box = [comm_id_new() if rank == 0 else None]
    src = 0 if group is None else dist.get_global_rank(group, 0)
    # nccl process groups send objects through the current GPU; gloo through the CPU.
    device = None
    if dist.get_backend(group) == "nccl":
        import torch
        device = torch.device("cuda", torch.cuda.current_device())
    dist.broadcast_object_list(box, src=src, group=group, device=device)
    comm_id = box[0]
    if not isinstance(comm_id, (bytes, bytearray)) or len(comm_id) != COMM_ID_BYTES:
        raise RuntimeError(f"kiln.distributed.comm_from_torch: rank {rank} received no valid id from rank 0")
    return rank, world_size, bytes(comm_id)


def launcher_env():
    """(rank, world_size, local_rank) from torchrun's, Open MPI's, MPICH's or
    Slurm's environment variables."""
    return _kiln.comm_env()


def comm_from_env(rank=None, world_size=None):
    """(rank, world_size, id) without torch: rank and world size from the
    launcher's variables unless given; the id from $KILN_NCCL_ID (hex), else
    through the file $KILN_NCCL_ID_FILE (rank 0 writes a fresh id there, the
    others wait for it; use a fresh path per job)."""
    if rank is None or world_size is None:
        env_rank, env_world, _ = launcher_env()
        rank = env_rank if rank is None else rank
        world_size = env_world if world_size is None else world_size
    return int(rank), int(world_size), _kiln.comm_id_from_env(int(rank))
