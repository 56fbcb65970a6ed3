"""Tensor-parallel greedy generation with kiln.models.llama, one process per GPU.

    torchrun --nproc-per-node=2 examples/llama/generate_tp.py CHECKPOINT_DIR --new 32 1 450 3681
    torchrun --nproc-per-node=2 examples/llama/generate_tp.py --random 1b --save /tmp/tp2 1 450 3681

CHECKPOINT_DIR is a transformers Llama checkpoint (config.json + safetensors):
each rank reads only its part of the weights.  --random SHAPE builds a
random-weight model of a benchmark shape instead (tiny, 1b, 8b; every rank
seeds alike, so all build the same model).  Rank r runs on cuda:LOCAL_RANK;
the ranks' communicator ids go through torch.distributed.  Rank 0 prints the
prompt and the new token ids.  --save DIR writes each rank's engines to
DIR/rank<r> (AOT plugins, so examples/llama/generate.c can run them under
mpirun with no Python: see examples/llama/README.md).
"""
import argparse
import os
import sys

# NVLink multicast off in NCCL, PyTorch and NVSHMEM, before any of them starts
# (torchrun passes the launcher's environment through; this covers a bare one).
for _name, _value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
                      ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ.setdefault(_name, _value)

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?", help="transformers checkpoint directory")
    ap.add_argument("tokens", nargs="+", type=int)
    ap.add_argument("--random", choices=("tiny", "1b", "8b"), help="a random-weight model of this shape")
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--save", help="write each rank's engines to SAVE/rank<r>")
    args = ap.parse_args()
    if (args.checkpoint is None) == (args.random is None):
        ap.error("give a checkpoint directory or --random SHAPE")

    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    from kiln.models import llama

    source = args.checkpoint
    if args.random:
        from transformers import LlamaConfig, LlamaForCausalLM
        from bench_llama import SHAPES
        torch.manual_seed(0)
        source = LlamaForCausalLM(LlamaConfig(**SHAPES[args.random])).to(torch.bfloat16).eval()
    prompt = torch.tensor([args.tokens], device=f"cuda:{local_rank}")
    model = llama.from_hf(source, dtype="bfloat16", device=f"cuda:{local_rank}", max_batch=1,
                          max_seq_len=prompt.shape[1] + args.new, tp_size=world, rank=rank,
                          prefer_aot=bool(args.save))
    tokens = model.generate(prompt, args.new, cuda_graph=True)
    if args.save:
        model.save(os.path.join(args.save, f"rank{rank}"))
    if rank == 0:
        print(" ".join(str(int(t)) for t in tokens[0]))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
