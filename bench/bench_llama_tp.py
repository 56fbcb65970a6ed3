"""Tensor-parallel decode speed of kiln.models.llama, one process per GPU:

    torchrun --nproc-per-node=1 bench/bench_llama_tp.py --shape 8b --batch 1 16    # TP=1, the baseline
    torchrun --nproc-per-node=2 bench/bench_llama_tp.py --shape 8b --batch 1 16    # TP=2

Random weights (every rank seeds alike and builds the same model, then its
own part), bfloat16, AOT plugins, decode steps replayed from a CUDA graph.
Rank 0 prints prefill latency and decode steps/s per batch size; the
speed-up of TP=N is the ratio of the two runs' steps/s (per-GPU efficiency:
that ratio / N).  gpt-fast reports 1.6x from TP=2 for Llama-2-7B on A100s.
"""
import argparse
import os
import sys
import time

# NVLink multicast off in NCCL, PyTorch and NVSHMEM, before any of them starts
# (torchrun passes the launcher's environment through; this covers a bare one).
for _name, _value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
                      ("NVSHMEM_DISABLE_NVLS", "1")):
    os.environ.setdefault(_name, _value)

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=("tiny", "1b", "8b"), default="8b")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local)
    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    from transformers import LlamaConfig, LlamaForCausalLM
    from kiln.models import llama
    from bench_llama import SHAPES

    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPES[args.shape])
    device = f"cuda:{local}"
    # On the GPU, as bench_llama.py does: torchrun sets OMP_NUM_THREADS=1, and
    # initialising 8B float32 parameters on one CPU thread per rank takes
    # minutes of a run.  CUDA's generator gives every rank the same weights.
    with torch.device(device):
        hf = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    t0 = time.perf_counter()
    model = llama.from_hf(hf, dtype="bfloat16", device=device, max_batch=max(args.batch),
                          max_seq_len=max(args.prompt + args.new_tokens, args.prefill), prefer_aot=True,
                          tp_size=world, rank=rank)
    build_s = time.perf_counter() - t0
    del hf

    def best(fn):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(args.repeat):
            dist.barrier()
            t = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t)
        return min(times)

    g = torch.Generator().manual_seed(1)
    long_ids = torch.randint(0, cfg.vocab_size, (1, args.prefill), generator=g).to(device)
    prefill_ms = best(lambda: model.logits(long_ids)) * 1e3
    rows = []
    for batch in args.batch:
        ids = torch.randint(0, cfg.vocab_size, (batch, args.prompt), generator=g).to(device)
        one = best(lambda: model.generate(ids, 1, cuda_graph=True))
        full = best(lambda: model.generate(ids, args.new_tokens, cuda_graph=True))
        rows.append((batch, (args.new_tokens - 1) / (full - one)))
    if rank == 0:
        print(f"shape {args.shape}, bfloat16, TP={world} x {torch.cuda.get_device_name()}, AOT plugins, CUDA-graph "
              f"decode, prompt {args.prompt}, {args.new_tokens} new tokens; build {build_s:.0f} s; "
              f"{time.strftime('%Y-%m-%d')}")
        print(f"prefill {args.prefill} tokens: {prefill_ms:.2f} ms")
        print("| batch | decode steps/s | tokens/s |")
        print("|---|---|---|")
        for batch, steps in rows:
            print(f"| {batch} | {steps:.1f} | {steps * batch:.1f} |")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
