"""The networks of the Llama family (Llama, Mistral, Qwen2, Qwen3: config.py
says how they differ), from kiln layers and this package's plugins.

Two engines share one layer recipe (decoder_layer):

prefill  input_ids [batch, seq] int32, logits_positions [n] int32 (which
         positions get logits: all for LlamaModel.logits, the last one for
         generate -- transformers' logits_to_keep)
         -> logits [batch, n, vocab], next_token [batch, n],
            k_<i>, v_<i> [batch, seq, kv_width]
            (each layer's rotated keys and values, for filling a KV cache)
decode   input_ids [batch, 1] int32, lengths [batch] int32 (tokens already
         cached per sequence = the new token's position),
         k_cache, v_cache [batch, n_layers, max_seq, kv_width]
         -> logits [batch, 1, vocab], next_token [batch, 1]; each layer's
            new key and value rows are written into k_cache / v_cache in
            place (RotaryQKVCache's aliased outputs)

batch and seq are dynamic (one engine serves every size in its profile).
With tensor parallelism (tp: tensor_parallel.TensorParallel, N ranks) each
rank's engine holds its part of the weights, attends with its own heads
(kv_width is its heads' width), and all-reduces / all-gathers where the
split needs it; tp of size 1 is the plain network.
Matmuls, residual adds and the embedding gather are kiln's built-in layers
(the q/k/v projections are one matmul, and gate/up another, over weights
concatenated at build time); RMS norm with the residual add, RoPE with the
q/k/v split, the SiLU gate and both attentions are the Triton plugins of
this package.  The weights stay as transformers keeps them ([out, in], one
row per output: every matmul is x @ W.T through the layer's transpose_b,
which is also the layout the decode step's GEMV kernel reads fastest), and
the attention plugins index heads inside the [.., heads * head_dim] rows
themselves.
"""
from collections import OrderedDict

import torch

import kiln

from .decode_attention import DecodeAttention
from .prefill_attention import PrefillAttention
from .rms_norm import AddRMSNorm, RMSNorm
from .rotary import RotaryQKV, RotaryQKVCache
from .silu_mul import SiluMul
from .tensor_parallel import TensorParallel


class _Constants:
    """Weights as kiln constants in the model dtype, matrices as
    transformers keeps them ([out, in]); with tensor parallelism only this
    rank's part."""

    def __init__(self, weights, dtype, tp=None):
        self.w = weights
        self.dtype = dtype
        self.tp = tp or TensorParallel(weights.spec)
        self._made = {}

    def _name(self, name, rows=None, cols=None):
        if self.tp.size == 1 or (rows is None and cols is None):
            return name
        lo, hi = rows if rows is not None else cols
        return f"{name}[{'rows' if rows is not None else 'cols'} {lo}:{hi}]"

    def weight(self, name, rows=None, cols=None):
        """One constant per weight part (matrices [out, in] as transformers
        keeps them): a tied lm_head is the embedding table itself (both
        [vocab, hidden]), stored once in the engine."""
        key = self._name(name, rows, cols)
        if key not in self._made:
            t = self.w.get(name, rows=rows, cols=cols)
            self._made[key] = kiln.constant(t.to(self.dtype).contiguous(), name=key)
        return self._made[key]

    def fused(self, parts):
        """Several projections' weights (or biases) of one input as one
        constant, concatenated along the outputs (parts: (name, rows) pairs,
        in output order), so one matmul computes them all: fewer launches,
        and one larger GEMV at decode."""
        rows_of = [(name, rows if self.tp.size > 1 else None) for name, rows in parts]
        t = torch.cat([self.w.get(name, rows=rows) for name, rows in rows_of])
        label = "|".join(self._name(name, rows) for name, rows in rows_of)
        return kiln.constant(t.to(self.dtype).contiguous(), name=f"[{label}]")


def _linear(c, x, prefix, bias, rows=None, cols=None):
    """x @ W.T (+ b), W [out, in] read where it lies (transpose_b).  rows: this rank's output rows of W (column-parallel:
    its part of the output); cols: its input columns (row-parallel: partial
    sums, all-reduced over the ranks before the bias)."""
    split = c.tp.size > 1
    y = kiln.matmul(x, c.weight(prefix + ".weight", rows=rows if split else None, cols=cols if split else None),
                    transpose_b=True)
    if split and cols is not None:
        y = kiln.all_reduce(y)
    if bias:
        y = y + c.weight(prefix + ".bias", rows=rows if split else None)
    return y


def _fused_linear(c, x, parts, bias):
    """x @ [W_1 | W_2 | ...].T (+ [b_1 | b_2 | ...]): column-parallel
    projections of one input in one matmul.  parts: (weight prefix, this
    rank's rows) pairs; the output's columns are the parts in order."""
    y = kiln.matmul(x, c.fused([(prefix + ".weight", rows) for prefix, rows in parts]), transpose_b=True)
    if bias:
        y = y + c.fused([(prefix + ".bias", rows) for prefix, rows in parts])
    return y


def decoder_layer(c, spec, i, h, x, inv_freq, attend, start=None, cache=None):
    """One decoder layer of the Llama family.  h [batch, seq, hidden] is the residual
    stream and x its input norm (this layer's input_layernorm of h);
    attend(i, q, k, v) is the attention (prefill or decode, with layer i's
    sliding window when the spec has one); cache (decode:
    (k_cache, v_cache), with start the tokens already in them) receives the
    layer's new key and value rows in place.  Each residual
    add is fused with the norm that follows it (AddRMSNorm): the second one
    is the next layer's input norm, or the final norm after the last layer.
    The families differ here only by spec fields: qkv_bias (Qwen2) and
    o_bias, qk_norm (Qwen3: RotaryQKV normalizes each query and key head
    before rotating, in the same launch) and the window attend applies.
    Returns (h, the norm of h for what follows, k, v)."""
    p = f"model.layers.{i}."
    tp = c.tp
    eps = spec.rms_norm_eps
    qkv = _fused_linear(c, x, [(p + "self_attn.q_proj", tp.q_rows), (p + "self_attn.k_proj", tp.kv_rows),
                               (p + "self_attn.v_proj", tp.kv_rows)], spec.qkv_bias)
    _, scaling = spec.inv_freq()
    rope_in = (inv_freq,) if start is None else (inv_freq, start)
    # Qwen3: the layer's q_norm and k_norm weights (head_dim each, whole on
    # every rank) as one constant, the rotary plugin's last input.
    norm_eps, norm_in = None, ()
    if spec.qk_norm:
        norm_eps = eps
        norm_in = (c.fused([(p + "self_attn.q_norm.weight", None), (p + "self_attn.k_norm.weight", None)]),)
    if cache is None:
        q, k, v = RotaryQKV(spec.head_dim, tp.heads, tp.kv_heads, scaling, norm_eps)(qkv, *rope_in, *norm_in)
    else:
        # Decode: the step's key and value rows also go into the caller's
        # caches in place (the plugin's outputs 3 and 4 are the caches).
        q, k, v, _, _ = RotaryQKVCache(spec.head_dim, tp.heads, tp.kv_heads, i, scaling, norm_eps)(
            qkv, *rope_in, *cache, *norm_in)
    attention = _linear(c, attend(i, q, k, v), p + "self_attn.o_proj", spec.o_bias, cols=tp.q_rows)
    h, x = AddRMSNorm(eps)(h, attention, c.weight(p + "post_attention_layernorm.weight"))
    inter = tp.part(tp.intermediate)
    gate_up = _fused_linear(c, x, [(p + "mlp.gate_proj", inter), (p + "mlp.up_proj", inter)], spec.mlp_bias)
    mlp = _linear(c, SiluMul()(gate_up), p + "mlp.down_proj", spec.mlp_bias, cols=inter)
    following = f"model.layers.{i + 1}.input_layernorm.weight" if i + 1 < spec.num_layers else "model.norm.weight"
    h, x = AddRMSNorm(eps)(h, mlp, c.weight(following))
    return h, x, k, v


def _window(spec, i, max_seq_len):
    """Layer i's sliding window for the attention plugins, 0 (none) when it
    is at least max_seq_len: then it never hides a key, and the layer runs
    the kernels without window code (Mistral v0.1's 4096 at shorter contexts)."""
    window = spec.window(i)
    return window if window < max_seq_len else 0


def _embed_and_head(c, spec, ids, layers, positions=None):
    """Embedding gather, the first input norm, the decoder layers
    (layers(h, x) -> the final norm of the last h), lm_head -- at the
    sequence positions `positions` only, when given (the norms are per
    position, so gathering after them is the same)."""
    h = _embed(c, ids)
    x = layers(h, RMSNorm(spec.rms_norm_eps)(h, c.weight("model.layers.0.input_layernorm.weight")))
    if positions is not None:
        x = kiln.gather(x, positions, 1)
    if c.tp.size == 1:
        return kiln.matmul(x, c.weight(c.w.lm_head_name()), transpose_b=True)
    # Vocabulary-parallel: this rank's logits, then every rank's, in order.
    return kiln.all_gather(kiln.matmul(x, c.weight(c.w.lm_head_name(), rows=c.tp.part(c.tp.vocab)),
                                       transpose_b=True), axis=-1)


def _embed(c, ids):
    """The embedding rows of ids.  Vocabulary-parallel with several ranks:
    each holds vocab/N rows plus a zero row that ids outside its range read,
    so the all-reduce of the ranks' rows is the embedding."""
    name = "model.embed_tokens.weight"
    if c.tp.size == 1:
        return kiln.gather(c.weight(name), ids, 0)
    lo, hi = c.tp.part(c.tp.vocab)
    rows = c.w.get(name, rows=(lo, hi)).to(c.dtype)
    table = kiln.constant(torch.cat([rows, rows.new_zeros(1, rows.shape[1])]).contiguous(),
                          name=f"{name}[rows {lo}:{hi}]+zero row")
    local = ids - kiln.constant(torch.tensor([lo], dtype=torch.int32), name="vocab.start")
    zero = kiln.constant(torch.tensor([0], dtype=torch.int32), name="vocab.zero")
    count = kiln.constant(torch.tensor([hi - lo], dtype=torch.int32), name="vocab.count")
    inside = kiln.logical_and(kiln.greater_equal(local, zero), kiln.less(local, count))
    return kiln.all_reduce(kiln.gather(table, kiln.where(inside, local, count), 0))


def _mark_logits(logits):
    """The outputs "logits" and "next_token" (the greedy choice at each
    position: the first largest logit, as torch.argmax, int32 like input_ids),
    so that a decode loop keeps its tokens on the device."""
    logits.mark_output("logits")
    kiln.cast(kiln.argmax(logits, axis=-1), "int32").mark_output("next_token")


def _network(prefer_aot, tp):
    builder = kiln.Builder()
    network = builder.create_network(prefer_aot=prefer_aot)
    if tp.size > 1:
        network.set_parallel(tp.rank, tp.size)
    return builder, network


def _build(builder, network):
    # precision=None: the network mixes dtypes on purpose (int32 ids and
    # lengths, float32 RoPE frequencies, the model dtype everywhere else).
    return builder.build_engine(network, builder.create_builder_config(precision=None))


def build_prefill(weights, dtype, max_batch, max_seq_len, prefer_aot=False, tp=None):
    """The prefill engine (bytes); tp: this rank's TensorParallel (None: one GPU)."""
    spec = weights.spec
    c = _Constants(weights, dtype, tp)
    builder, network = _network(prefer_aot, c.tp)
    with kiln.net_guard(network):
        ids = kiln.Tensor(name="input_ids", shape=(-1, -1), dtype="int32",
                          dim_range=OrderedDict([("batch", [(1, max_batch, max_batch)]),
                                                 ("seq", [(1, max_seq_len, max_seq_len)])]))
        positions = kiln.Tensor(name="logits_positions", shape=(-1,), dtype="int32",
                                dim_range=OrderedDict([("n_logits", [(1, max_seq_len, max_seq_len)])]))
        inv_freq = kiln.constant(spec.inv_freq()[0], name="rope.inv_freq")
        kv = []

        def attend(i, q, k, v):
            window = _window(spec, i, max_seq_len)
            return PrefillAttention(c.tp.heads, c.tp.kv_heads, spec.head_dim, window=window)(q, k, v)

        def layers(h, x):
            for i in range(spec.num_layers):
                h, x, k, v = decoder_layer(c, spec, i, h, x, inv_freq, attend)
                kv.append((k, v))
            return x

        _mark_logits(_embed_and_head(c, spec, ids, layers, positions))
        for i, (k, v) in enumerate(kv):
            k.mark_output(f"k_{i}")
            v.mark_output(f"v_{i}")
    return _build(builder, network)


def build_decode(weights, dtype, max_batch, max_seq_len, split=64, prefer_aot=False, tp=None):
    """The decode engine (bytes): one token per sequence against the cache
    (of this rank's key/value heads)."""
    spec = weights.spec
    c = _Constants(weights, dtype, tp)
    kv_width = c.tp.kv_width
    builder, network = _network(prefer_aot, c.tp)
    with kiln.net_guard(network):
        batch = OrderedDict([("batch", [(1, max_batch, max_batch)])])
        ids = kiln.Tensor(name="input_ids", shape=(-1, 1), dtype="int32",
                          dim_range=OrderedDict([("batch", [(1, max_batch, max_batch)]), ("one", [1])]))
        lengths = kiln.Tensor(name="lengths", shape=(-1,), dtype="int32", dim_range=batch)
        cache_dims = OrderedDict([("batch", [(1, max_batch, max_batch)]), ("layers", [spec.num_layers]),
                                  ("max_seq", [max_seq_len]), ("kv_width", [kv_width])])
        cache_shape = (-1, spec.num_layers, max_seq_len, kv_width)
        k_cache = kiln.Tensor(name="k_cache", shape=cache_shape, dtype=dtype, dim_range=cache_dims)
        v_cache = kiln.Tensor(name="v_cache", shape=cache_shape, dtype=dtype, dim_range=cache_dims)
        inv_freq = kiln.constant(spec.inv_freq()[0], name="rope.inv_freq")

        def attend(i, q, k, v):
            attention = DecodeAttention(c.tp.heads, c.tp.kv_heads, spec.head_dim, layer=i, split=split,
                                        window=_window(spec, i, max_seq_len))
            return attention(q, k, v, k_cache, v_cache, lengths)

        def layers(h, x):
            for i in range(spec.num_layers):
                h, x, _, _ = decoder_layer(c, spec, i, h, x, inv_freq, attend, start=lengths,
                                           cache=(k_cache, v_cache))
            return x

        _mark_logits(_embed_and_head(c, spec, ids, layers))
    return _build(builder, network)


def torch_dtype(name):
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    key = kiln.dtype_name(name)
    if key not in table:
        raise ValueError(f"kiln.models.llama: dtype {name!r} is not one of float32, float16, bfloat16")
    return table[key]
