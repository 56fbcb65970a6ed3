"""One rank of test_llama.py's tensor-parallel test: python llama_tp_worker.py RANK WORLD DIR.

Every rank builds the same random bfloat16 model (same seed), then its own
TP engines on cuda:RANK; rank 0 makes the two communicator ids (prefill's,
decode's) and writes them into DIR, the others wait for them.  Every rank
runs logits and greedy generation (eager and graph-replayed decode) on the
same inputs and checks them against TP=1 on its own GPU: logits within
bfloat16 tolerance, tokens identical.  Prints "RANK r: ok"."""
import os
import sys
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from kiln.distributed import comm_id_from_hex, comm_id_new, comm_id_to_hex
from kiln.models import llama


def shared_ids(rank, directory, timeout=120):
    path = os.path.join(directory, "comm_ids")
    if rank == 0:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write("\n".join(comm_id_to_hex(comm_id_new()) for _ in range(2)))
        os.replace(tmp, path)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"rank {rank}: no ids from rank 0 in {timeout} s")
        time.sleep(0.05)
    with open(path) as f:
        return [comm_id_from_hex(line) for line in f.read().split()]


def main():
    rank, world, directory = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    device = f"cuda:{rank}"
    torch.cuda.set_device(rank)
    torch.manual_seed(6)
    cfg = LlamaConfig(vocab_size=1024, hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                      num_attention_heads=8, num_key_value_heads=2, attn_implementation="eager",
                      max_position_embeddings=512)
    hf = LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 40)).to(device)
    one = llama.from_hf(hf, dtype="bfloat16", device=device, max_batch=2, max_seq_len=128, decode_split=32)
    tp = llama.from_hf(hf, dtype="bfloat16", device=device, max_batch=2, max_seq_len=128, decode_split=32,
                       tp_size=world, rank=rank, comm=shared_ids(rank, directory))
    want = one.logits(ids).float()
    got = tp.logits(ids).float()
    err = float((got - want).abs().max())
    assert err <= 0.05 * float(want.abs().max()), f"rank {rank}: logits differ by {err}"
    want_tokens = one.generate(ids, 32)
    assert torch.equal(tp.generate(ids, 32), want_tokens), f"rank {rank}: eager tokens differ"
    assert torch.equal(tp.generate(ids, 32, cuda_graph=True), want_tokens), f"rank {rank}: graph tokens differ"
    print(f"RANK {rank}: ok (logits max |diff| {err:.4f})", flush=True)


if __name__ == "__main__":
    main()
