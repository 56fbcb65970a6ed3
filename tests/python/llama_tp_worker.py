"""One rank of test_llama.py's tensor-parallel test: python llama_tp_worker.py RANK WORLD DIR.

Every rank builds the same random bfloat16 model (same seed), then its own
TP engines on cuda:RANK; rank 0 makes the two communicator ids (prefill's,
decode's) and writes them into DIR, the others wait for them.  Every rank
runs logits and greedy generation (eager and graph-replayed decode) on the
same inputs and checks them against TP=1 on its own GPU: logits within
bfloat16 tolerance, tokens identical up to the first near-tie (see below).
Prints "RANK r: ok"."""
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
    # Greedy tokens.  TP=2 sums the row-parallel partial products in
    # bfloat16 across the ranks where TP=1 rounds one float32 sum, so two
    # nearly equal top logits may swap (a tie: either token is right, and the
    # sequences part there).  So TP=2's tokens (eager and replayed) must equal
    # TP=1's up to the first step where they differ, if any; at every step up
    # to and including it (equal prefixes), TP=2's decode logits must be
    # within the logits tolerance of TP=1's, which also bounds how far below
    # TP=1's choice TP=2's parting token can rank.
    n, new = ids.shape[1], 32
    want_tokens, want_logits = one.generate(ids, new, output_logits=True)
    want_logits = want_logits.float()
    tol = 0.05 * float(want_logits.abs().max())
    partings = []
    for label, graph in (("eager", False), ("graph", True)):
        got_tokens, got_logits = tp.generate(ids, new, output_logits=True, cuda_graph=graph)
        assert got_tokens.shape == want_tokens.shape, f"rank {rank}: {label}: {tuple(got_tokens.shape)}"
        assert torch.equal(got_tokens[:, :n], want_tokens[:, :n]), f"rank {rank}: {label}: the prompt changed"
        for b in range(ids.shape[0]):
            differ = (got_tokens[b, n:] != want_tokens[b, n:]).nonzero()
            upto = int(differ[0]) + 1 if len(differ) else new
            diff = float((got_logits[b, :upto].float() - want_logits[b, :upto]).abs().max())
            assert diff <= tol, (f"rank {rank}: {label} decode logits of row {b} differ from TP=1's by {diff:.4f} "
                                 f"(tolerance {tol:.4f}) within the first {upto} steps")
            if len(differ):
                partings.append(f"{label} row {b} at step {upto - 1}")
    print(f"RANK {rank}: ok (logits max |diff| {err:.4f}; near-tie partings: {partings or 'none'})", flush=True)


if __name__ == "__main__":
    main()
