"""Rotary position embedding (RoPE) as a Triton plugin: RotaryQKV takes a
layer's fused query/key/value projection, rotates the queries and keys and
splits off the values, in one launch (grid axis 1 picks which part).

Each of q and k holds the heads of each token side by side, [.., heads *
head_dim] (the layout the projection produces, so no transpose is needed).  Pair i
of a head is (x[i], x[i + head_dim/2]) -- the "rotate half" convention of
transformers' Llama -- rotated by the angle position * inv_freq[i]:

    out[i]          = x[i] * cos - x[i + half] * sin
    out[i + half]   = x[i + half] * cos + x[i] * sin

inv_freq comes in as a tensor (a constant of the network) so that any RoPE
variant that only changes the frequencies (default, "llama3", "linear")
uses this one kernel; config.py computes them.  The position of token s of
sequence b is s, plus start[b] when a `start` input is given (decode: the
number of tokens already in the cache).  Angles and products are float32;
the result is rounded once to the model dtype.

qk_norm_eps (Qwen3's q_norm and k_norm): each query and key head is first
RMS-normalized over its head_dim and scaled by that layer's weight (one
[q_norm | k_norm] input of 2 * head_dim), then rotated, in the same launch:
the tile of a head is already in registers, so the norm costs no extra read
or launch.  It rounds where transformers' Qwen3RMSNorm does (the normalized
head to the model dtype, then its product with the weight).
"""
import triton
import triton.language as tl

import kiln

from ._common import as_torch, block_for


@triton.jit
def _rotate(x_row_ptr, out_row_ptr, cache_row_ptr, cache_heads, inv_freq_ptr, pos, n_heads, head_dim,
            attention_scaling, norm_w_ptr, norm_eps, WRITE_CACHE: tl.constexpr, QK_NORM: tl.constexpr,
            BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr):
    """Rotate every head of one token (its row at x_row_ptr) into its row of
    out, and the first cache_heads heads into its cache row when WRITE_CACHE;
    with QK_NORM each head is RMS-normalized and scaled by norm_w_ptr's
    head_dim weights first."""
    half = head_dim // 2
    heads = tl.arange(0, BLOCK_HEADS)
    pair = tl.arange(0, BLOCK_HALF)
    mask = (heads < n_heads)[:, None] & (pair < half)[None, :]
    # [heads, pairs] tile of this token: element (h, i) is x[h * head_dim + i]
    first = heads[:, None] * head_dim + pair[None, :]
    x1 = tl.load(x_row_ptr + first, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(x_row_ptr + first + half, mask=mask, other=0.0).to(tl.float32)
    out_ty = out_row_ptr.dtype.element_ty
    if QK_NORM:
        # Each head's mean square over both halves (masked lanes are 0).
        mean_square = (tl.sum(x1 * x1, axis=1) + tl.sum(x2 * x2, axis=1)) / head_dim
        r = tl.rsqrt(mean_square + norm_eps)[:, None]
        w1 = tl.load(norm_w_ptr + pair, mask=pair < half, other=0.0)[None, :]
        w2 = tl.load(norm_w_ptr + half + pair, mask=pair < half, other=0.0)[None, :]
        x1 = ((x1 * r).to(out_ty) * w1).to(out_ty).to(tl.float32)
        x2 = ((x2 * r).to(out_ty) * w2).to(out_ty).to(tl.float32)
    angle = pos.to(tl.float32) * tl.load(inv_freq_ptr + pair, mask=pair < half, other=0.0)
    cos = (tl.cos(angle) * attention_scaling)[None, :]
    sin = (tl.sin(angle) * attention_scaling)[None, :]
    y1 = (x1 * cos - x2 * sin).to(out_ty)
    y2 = (x2 * cos + x1 * sin).to(out_ty)
    tl.store(out_row_ptr + first, y1, mask=mask)
    tl.store(out_row_ptr + first + half, y2, mask=mask)
    if WRITE_CACHE:
        cache_mask = (heads < cache_heads)[:, None] & (pair < half)[None, :]
        tl.store(cache_row_ptr + first, y1, mask=cache_mask)
        tl.store(cache_row_ptr + first + half, y2, mask=cache_mask)


@triton.jit
def _copy_row(x_row_ptr, out_row_ptr, cache_row_ptr, cache_width, width, WRITE_CACHE: tl.constexpr,
              BLOCK_WIDTH: tl.constexpr):
    """Copy one token's row of `width` elements into its row of out (and its
    first cache_width elements into the cache row when WRITE_CACHE)."""
    for lo in range(0, width, BLOCK_WIDTH):
        offs = lo + tl.arange(0, BLOCK_WIDTH)
        mask = offs < width
        x = tl.load(x_row_ptr + offs, mask=mask, other=0.0)
        tl.store(out_row_ptr + offs, x, mask=mask)
        if WRITE_CACHE:
            tl.store(cache_row_ptr + offs, x, mask=offs < cache_width)


@triton.jit
def rotary_qkv_kernel(qkv_ptr, inv_freq_ptr, start_ptr, q_out_ptr, k_out_ptr, v_out_ptr, k_cache_ptr, v_cache_ptr,
                      norm_w_ptr, seq_len, q_heads, k_heads, head_dim, attention_scaling, cache_layers, cache_layer,
                      max_seq, norm_eps, HAS_START: tl.constexpr, WRITE_CACHE: tl.constexpr, QK_NORM: tl.constexpr,
                      BLOCK_HEADS: tl.constexpr, BLOCK_HALF: tl.constexpr, BLOCK_WIDTH: tl.constexpr):
    """One token's fused projection row [q | k | v]: grid axis 1 picks the
    part (0: rotate q, 1: rotate k, 2: copy v).  With WRITE_CACHE the key
    and value also go to row `pos` of layer `cache_layer` of the caches
    [batch, cache_layers, max_seq, k_width] (a position past max_seq is not
    written: a full cache is left as it is).  With QK_NORM, norm_w_ptr holds
    [q_norm | k_norm] weights (head_dim each), applied before the rotation."""
    token = tl.program_id(0)
    b = token // seq_len
    pos = token % seq_len
    if HAS_START:
        pos += tl.load(start_ptr + b)
    q_width = q_heads * head_dim
    k_width = k_heads * head_dim
    row = qkv_ptr + token.to(tl.int64) * (q_width + 2 * k_width)
    in_cache = pos < max_seq                   # else nothing is written to the cache
    cache_at = ((b.to(tl.int64) * cache_layers + cache_layer) * max_seq + pos) * k_width
    part = tl.program_id(1)
    if part == 0:
        _rotate(row, q_out_ptr + token.to(tl.int64) * q_width, q_out_ptr, 0, inv_freq_ptr, pos, q_heads,
                head_dim, attention_scaling, norm_w_ptr, norm_eps, False, QK_NORM, BLOCK_HEADS, BLOCK_HALF)
    elif part == 1:
        _rotate(row + q_width, k_out_ptr + token.to(tl.int64) * k_width, k_cache_ptr + cache_at,
                tl.where(in_cache, k_heads, 0),
                inv_freq_ptr, pos, k_heads, head_dim, attention_scaling, norm_w_ptr + head_dim, norm_eps,
                WRITE_CACHE, QK_NORM, BLOCK_HEADS, BLOCK_HALF)
    else:
        _copy_row(row + q_width + k_width, v_out_ptr + token.to(tl.int64) * k_width, v_cache_ptr + cache_at,
                  tl.where(in_cache, k_width, 0), k_width, WRITE_CACHE, BLOCK_WIDTH)


@kiln.plugin("RotaryQKV", namespace="llama", num_outputs=3)
class RotaryQKV(kiln.PluginBase):
    """RoPE of a fused query/key/value projection in one launch: input qkv
    [batch, seq, (q_heads + 2 * kv_heads) * head_dim] (each token's row is
    q, then k, then v: one matmul made all three), inv_freq, optionally
    start; outputs q and k rotated and v, each [batch, seq, its heads *
    head_dim].  Splitting here costs nothing extra: the rotation reads and
    writes q and k anyway, and v's row is a small copy in the same launch.

    qk_norm_eps (Qwen3): RMS-normalize each query and key head first, with
    that epsilon; the weights come as one more input, last: [2 * head_dim],
    the layer's q_norm then k_norm weight.

    RotaryQKVCache (below) also writes the key and value into a KV cache."""

    cache_layer = None      # RotaryQKVCache's layer (its five outputs need their own class)
    qk_norm_eps = None      # class defaults: an engine saved before a field existed rebuilds without it

    def __init__(self, head_dim, q_heads, kv_heads, attention_scaling=1.0, qk_norm_eps=None):
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"RotaryQKV: head_dim {head_dim} is odd (RoPE rotates pairs)")
        self.head_dim = int(head_dim)
        self.q_heads = int(q_heads)
        self.kv_heads = int(kv_heads)
        self.attention_scaling = float(attention_scaling)
        self.cache_layer = None
        if qk_norm_eps is not None:
            self.qk_norm_eps = float(qk_norm_eps)

    def aliased_outputs(self):
        return {} if self.cache_layer is None else {3: 3, 4: 4}

    def shape_dtype_inference(self, inputs):
        qkv = inputs[0]
        batch, seq = qkv.shape[0], qkv.shape[1]
        q = kiln.SymTensor(qkv.dtype, (batch, seq, self.q_heads * self.head_dim))
        k = kiln.SymTensor(qkv.dtype, (batch, seq, self.kv_heads * self.head_dim))
        v = kiln.SymTensor(qkv.dtype, (batch, seq, self.kv_heads * self.head_dim))
        if self.cache_layer is None:
            return q, k, v
        return (q, k, v, kiln.SymTensor(inputs[3].dtype, inputs[3].shape),
                kiln.SymTensor(inputs[4].dtype, inputs[4].shape))

    def _blocks(self):
        return {"BLOCK_HEADS": block_for(max(self.q_heads, self.kv_heads), 1),
                "BLOCK_HALF": block_for(self.head_dim // 2, 1),
                "BLOCK_WIDTH": min(block_for(self.kv_heads * self.head_dim, 1), 1024)}

    def _check(self, width):
        expected = (self.q_heads + 2 * self.kv_heads) * self.head_dim
        if width != expected:
            raise ValueError(f"RotaryQKV: qkv rows of {width} elements; {self.q_heads} query and "
                             f"{self.kv_heads} key/value heads of {self.head_dim} need {expected}")

    def _split_inputs(self, inputs):
        """(qkv, inv_freq, start or None, k_cache or None, v_cache or None,
        the q/k norm weights or None)."""
        inputs = list(inputs)
        norm = None
        if self.qk_norm_eps is not None:
            if len(inputs) < 3:
                raise ValueError("RotaryQKV(qk_norm): the last input is the [q_norm | k_norm] weights")
            norm = inputs.pop()
        if self.cache_layer is None:
            return inputs[0], inputs[1], inputs[2] if len(inputs) > 2 else None, None, None, norm
        if len(inputs) != 5:
            raise ValueError(f"RotaryQKVCache(layer={self.cache_layer}): inputs qkv, inv_freq, start, k_cache, "
                             f"v_cache{', qk_norm' if norm is not None else ''}; got {len(inputs)}")
        return (*inputs, norm)

    def _scalars(self, start):
        """The constexprs and the norm's epsilon a launch takes."""
        qk_norm = self.qk_norm_eps is not None
        return ({"HAS_START": start is not None, "WRITE_CACHE": self.cache_layer is not None, "QK_NORM": qk_norm,
                 **self._blocks()}, self.qk_norm_eps if qk_norm else 0.0)

    def forward(self, inputs, outputs):
        qkv, inv_freq, start, k_cache, v_cache, norm = self._split_inputs(as_torch(inputs))
        outs = as_torch(outputs)
        q_out, k_out, v_out = outs[0], outs[1], outs[2]
        batch, seq_len, width = qkv.shape
        self._check(width)
        if norm is not None and norm.numel() != 2 * self.head_dim:
            raise ValueError(f"RotaryQKV: q/k norm weights of {norm.numel()} elements, need 2 * {self.head_dim}")
        if batch * seq_len == 0:
            return
        caching = self.cache_layer is not None
        k_cache, v_cache = (outs[3], outs[4]) if caching else (q_out, q_out)
        cache_dims = tuple(outs[3].shape[1:3]) if caching else (0, 0)
        constexprs, eps = self._scalars(start)
        rotary_qkv_kernel[(batch * seq_len, 3)](qkv, inv_freq, inv_freq if start is None else start, q_out, k_out,
                                                v_out, k_cache, v_cache, inv_freq if norm is None else norm, seq_len,
                                                self.q_heads, self.kv_heads, self.head_dim, self.attention_scaling,
                                                cache_dims[0], self.cache_layer or 0, cache_dims[1], eps,
                                                **constexprs)

    def aot(self, inputs, outputs):
        qkv, inv_freq, start, _, _, norm = self._split_inputs(inputs)
        batch, seq_len, width = qkv.shape
        self._check(width.value)
        caching = self.cache_layer is not None
        k_cache, v_cache = (outputs[3], outputs[4]) if caching else (outputs[0], outputs[0])
        layers, max_seq = (outputs[3].shape[1], outputs[3].shape[2]) if caching else (0, 0)
        constexprs, eps = self._scalars(start)
        return [kiln.AotLaunch(rotary_qkv_kernel,
                               args=[qkv, inv_freq, inv_freq if start is None else start, outputs[0], outputs[1],
                                     outputs[2], k_cache, v_cache, inv_freq if norm is None else norm, seq_len,
                                     self.q_heads, self.kv_heads, self.head_dim, self.attention_scaling, layers,
                                     self.cache_layer or 0, max_seq, eps],
                               grid=(batch * seq_len, 3), constexprs=constexprs)]


@kiln.plugin("RotaryQKVCache", namespace="llama", num_outputs=5)
class RotaryQKVCache(RotaryQKV):
    """RotaryQKV for decode, which also appends to the KV cache: inputs qkv,
    inv_freq, start [batch] int32 (tokens already cached), k_cache, v_cache
    [batch, layers, max_seq, kv_heads * head_dim] (and the q/k norm weights
    last, with qk_norm_eps); outputs q, k, v and the
    two caches themselves, written in place (aliased_outputs:
    kiln_network_alias_output).  The token's rotated key and its value also
    go to row start[b] + s of layer `layer`, so the step's new rows land
    where the next step's attention reads them, with no copy and no launch
    of their own (a full cache is left as it is)."""

    def __init__(self, head_dim, q_heads, kv_heads, layer, attention_scaling=1.0, qk_norm_eps=None):
        super().__init__(head_dim, q_heads, kv_heads, attention_scaling, qk_norm_eps)
        self.cache_layer = int(layer)
