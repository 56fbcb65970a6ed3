"""Tensor parallelism for the Llama engines: which part of each weight a rank
holds, Megatron-style.

With tp_size N, rank r holds
  q/k/v projections  its heads' output rows (column-parallel): heads/N query
                     heads and kv_heads/N key/value heads, so attention runs
                     on the rank's own heads and its KV cache holds only them;
  o projection       the matching input columns (row-parallel), its partial
                     output summed over the ranks by an all-reduce;
  gate/up, down      intermediate/N rows, then columns (the same pattern);
  embedding          vocab/N rows (vocabulary-parallel): ids outside the
                     rank's range read an extra zero row, and an all-reduce
                     sums the one non-zero row per id;
  lm_head            vocab/N output rows, the logits all-gathered along the
                     vocabulary;
  norms              the whole (small) weight.
Each rank's engine stores only that part (read alone from a checkpoint
file), records its rank and N (kiln_network_set_parallel), and runs its
collectives over NCCL.  N = 1 is the single-GPU network, unchanged.
"""


class TensorParallel:
    """The split of a LlamaSpec over `size` ranks, seen from `rank`."""

    def __init__(self, spec, size=1, rank=0):
        size, rank = int(size), int(rank)
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"kiln.models.llama: rank {rank} of tp_size {size} (need tp_size >= 1 and "
                             "0 <= rank < tp_size)")
        for what, n in (("num_attention_heads", spec.num_heads), ("num_key_value_heads", spec.num_kv_heads),
                        ("intermediate_size", spec.intermediate_size), ("vocab_size", spec.vocab_size)):
            if n % size:
                raise ValueError(f"kiln.models.llama: tp_size {size} does not divide {what} {n}")
        self.size, self.rank = size, rank
        self.heads = spec.num_heads // size
        self.kv_heads = spec.num_kv_heads // size
        self.intermediate = spec.intermediate_size // size
        self.vocab = spec.vocab_size // size
        self.head_dim = spec.head_dim

    def part(self, per_rank):
        """This rank's [lo, hi) of an axis split into `size` parts of per_rank."""
        return self.rank * per_rank, (self.rank + 1) * per_rank

    @property
    def q_rows(self):
        return self.part(self.heads * self.head_dim)

    @property
    def kv_rows(self):
        return self.part(self.kv_heads * self.head_dim)

    @property
    def kv_width(self):
        """Width of one position of this rank's KV cache."""
        return self.kv_heads * self.head_dim

    def __repr__(self):
        return f"TensorParallel(rank {self.rank} of {self.size})"
