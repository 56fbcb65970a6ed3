"""Embedding lookup in Triton: out[i, :] = table[index[i], :].

The grid is 2-D: axis 0 walks the rows (one token each), axis 1 the column
blocks of that row.  Each program copies BLOCK contiguous elements of one
row, so loads and stores vectorize (Triton specializes `hidden` when it is a
multiple of 16 and emits 128-bit accesses).  Indices outside [0, vocab) give
a row of zeros instead of reading out of bounds.
"""
import triton
import triton.language as tl


@triton.jit
def lookup_kernel(index_ptr, table_ptr, out_ptr, vocab_size, hidden, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    col_block = tl.program_id(1)
    token = tl.load(index_ptr + row).to(tl.int64)
    in_range = (token >= 0) & (token < vocab_size)
    token = tl.where(in_range, token, 0)
    cols = col_block * BLOCK + tl.arange(0, BLOCK)
    mask = cols < hidden
    values = tl.load(table_ptr + token * hidden + cols, mask=mask, other=0.0)   # token clamped: in bounds
    values = tl.where(in_range, values, 0.0)
    tl.store(out_ptr + row.to(tl.int64) * hidden + cols, values.to(out_ptr.dtype.element_ty), mask=mask)


def launch_config(hidden, element_bytes):
    """(BLOCK, num_warps) for rows of `hidden` elements of `element_bytes`
    each (shared with the AOT plugin).  Each thread moves 16 bytes (one
    128-bit load and store) and a program has at most 8 warps, so a program
    covers up to 4 KB of a row; bench/tune_gpu_lookup.py measured the choices."""
    per_thread = max(1, 16 // element_bytes)
    block = min(256 * per_thread, triton.next_power_of_2(max(1, hidden)))
    num_warps = max(1, min(8, block // (32 * per_thread)))
    return block, num_warps


def launch_lookup(index, table, out):
    """index [n] int32/int64, table [vocab, hidden], out [n, hidden]: any
    objects Triton accepts (torch tensors; kiln TensorWrappers on a GPU)."""
    n_tokens = index.shape[0]
    vocab_size, hidden = table.shape[0], table.shape[1]
    if n_tokens == 0 or hidden == 0:
        return
    block, num_warps = launch_config(hidden, table.dtype.itemsize)
    grid = (n_tokens, triton.cdiv(hidden, block))
    lookup_kernel[grid](index, table, out, vocab_size, hidden, BLOCK=block, num_warps=num_warps)
