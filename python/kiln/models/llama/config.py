"""The hyper-parameters kiln needs for a Llama-architecture model, read from a
transformers config (or the dict of a config.json), and the RoPE frequencies
they imply.

One spec covers the families that share Llama's decoder (pre-norm RMSNorm,
RoPE, grouped-query attention, SiLU-gated MLP); each way one of them departs
from Llama is a field of its own, so the engines have one code path:

    family   model_type  departs from Llama by
    Llama    llama       -- (attention_bias: q/k/v/o biases; mlp_bias)
    Mistral  mistral     sliding_window on every layer (None in most releases since v0.2)
    Qwen2    qwen2       qkv_bias (q/k/v projections, not o_proj); sliding_window on the
                         layers layer_types marks when use_sliding_window (Qwen2.5: off)
    Qwen3    qwen3       qk_norm (an RMSNorm over each query and key head before RoPE),
                         an explicit head_dim; attention_bias and windows as Qwen2
"""
import math
from dataclasses import dataclass, field, fields
from typing import Optional

import torch

ROPE_TYPES = ("default", "linear", "llama3")
MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")


@dataclass
class LlamaSpec:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    tie_word_embeddings: bool = False
    qkv_bias: bool = False          # q/k/v projections have biases (Qwen2; Llama's and Qwen3's attention_bias)
    o_bias: bool = False            # the output projection has one (Llama's and Qwen3's attention_bias)
    mlp_bias: bool = False
    qk_norm: bool = False           # RMSNorm of each query and key head before RoPE (Qwen3's q_norm, k_norm)
    sliding_window: Optional[int] = None    # keys a query sees, itself included, on sliding_layers
    sliding_layers: list = field(default_factory=list)
    model_type: str = "llama"
    rope: dict = field(default_factory=lambda: {"rope_type": "default", "rope_theta": 10000.0})

    @classmethod
    def from_hf_config(cls, config):
        """From a transformers config (LlamaConfig, MistralConfig,
        Qwen2Config, Qwen3Config) or a config.json dict.  Raises ValueError
        naming the setting kiln does not support."""
        d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        model_type = d.get("model_type") or "llama"
        if model_type not in MODEL_TYPES:
            what = " (mixture-of-experts models are not supported)" if "moe" in model_type else ""
            raise ValueError(f"kiln.models.llama: model_type {model_type!r} is not supported{what}; "
                             f"supported: {', '.join(MODEL_TYPES)}")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"kiln.models.llama: hidden_act {act!r} is not supported (only 'silu')")
        heads = int(d["num_attention_heads"])
        kv_heads = int(d.get("num_key_value_heads") or heads)
        if heads % kv_heads:
            raise ValueError(f"kiln.models.llama: num_attention_heads {heads} is not a multiple of "
                             f"num_key_value_heads {kv_heads}")
        head_dim = d.get("head_dim") or int(d["hidden_size"]) // heads
        layers = int(d["num_hidden_layers"])
        attention_bias = bool(d.get("attention_bias") or False)
        if model_type == "qwen2":        # transformers' Qwen2Attention: q/k/v with bias, o_proj without
            qkv_bias, o_bias = True, False
        elif model_type == "mistral":    # MistralAttention: no bias (the config has no attention_bias)
            qkv_bias = o_bias = False
        else:
            qkv_bias = o_bias = attention_bias
        window, sliding = _sliding_window(d, model_type, layers)
        return cls(vocab_size=int(d["vocab_size"]), hidden_size=int(d["hidden_size"]),
                   intermediate_size=int(d["intermediate_size"]), num_layers=layers,
                   num_heads=heads, num_kv_heads=kv_heads, head_dim=int(head_dim),
                   rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                   tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                   qkv_bias=qkv_bias, o_bias=o_bias,
                   mlp_bias=bool(d.get("mlp_bias") or False) if model_type == "llama" else False,
                   qk_norm=model_type == "qwen3", sliding_window=window, sliding_layers=sliding,
                   model_type=model_type, rope=_rope_parameters(d))

    @classmethod
    def from_dict(cls, d):
        """From the dict LlamaModel.save stores (dataclasses.asdict).  Files
        of format 4 (Llama only) have attention_bias where this has qkv_bias
        and o_bias, and none of the later fields (their defaults are Llama's)."""
        d = dict(d)
        if "attention_bias" in d:
            d["qkv_bias"] = d["o_bias"] = bool(d.pop("attention_bias"))
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TypeError(f"unknown spec fields {unknown}")
        return cls(**d)

    def window(self, layer):
        """Layer `layer`'s sliding window (keys each query sees, itself
        included), 0 when it attends to every earlier key."""
        return int(self.sliding_window) if self.sliding_window and layer in self.sliding_layers else 0

    def inv_freq(self):
        """(inv_freq float32 [head_dim / 2], attention scaling) for self.rope."""
        return rope_frequencies(self.rope, self.head_dim)


def _sliding_window(d, model_type, layers):
    """(window, the layers that use it) as transformers applies them:
    Mistral's sliding_window to every layer; Qwen2's and Qwen3's only when
    use_sliding_window, to the layers layer_types marks "sliding_attention"
    (or, in a config.json without layer_types, the layers from
    max_window_layers on, as their configs compute it).  Llama has none."""
    if model_type == "llama":
        return None, []
    if model_type == "mistral":
        window = d.get("sliding_window")
        sliding = list(range(layers))
    else:
        window = d.get("sliding_window") if d.get("use_sliding_window") else None
        types = d.get("layer_types")
        if window is not None and not types:
            first = int(d.get("max_window_layers") if d.get("max_window_layers") is not None else 28)
            types = ["sliding_attention" if i >= first else "full_attention" for i in range(layers)]
        types = types or []
        for t in types:
            if t not in ("full_attention", "sliding_attention"):
                raise ValueError(f"kiln.models.llama: layer type {t!r} is not supported "
                                 "(only 'full_attention', 'sliding_attention')")
        sliding = [i for i, t in enumerate(types) if t == "sliding_attention"]
    if window is None:
        return None, []
    if int(window) < 1:
        raise ValueError(f"kiln.models.llama: sliding_window {window} must be at least 1")
    return int(window), sliding


def _rope_parameters(d):
    """One dict with rope_type and rope_theta: transformers 5 keeps them in
    rope_parameters; older configs have rope_theta and rope_scaling."""
    if isinstance(d.get("rope_parameters"), dict):
        rope = dict(d["rope_parameters"])
    else:
        rope = dict(d.get("rope_scaling") or {})
        rope.setdefault("rope_theta", d.get("rope_theta", 10000.0))
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        raise ValueError(f"kiln.models.llama: rope type {rope_type!r} is not supported "
                         f"(supported: {', '.join(ROPE_TYPES)})")
    if d.get("partial_rotary_factor", rope.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ValueError("kiln.models.llama: partial_rotary_factor other than 1.0 is not supported")
    rope["rope_type"] = rope_type
    rope["rope_theta"] = float(rope.get("rope_theta", 10000.0))
    return rope


def rope_frequencies(rope, head_dim):
    """inv_freq[i] = theta^(-2i / head_dim), float32 as transformers computes
    it, then rescaled for "linear" (all divided by factor) or "llama3" (long
    wavelengths divided by factor, short ones kept, the band between blended
    smoothly -- Llama 3.1's long-context recipe).  Returns (inv_freq, 1.0):
    none of these types scales cos/sin."""
    exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).to(torch.float32) / head_dim
    inv_freq = 1.0 / (rope["rope_theta"] ** exponents)
    kind = rope["rope_type"]
    if kind == "linear":
        inv_freq = inv_freq / rope["factor"]
    elif kind == "llama3":
        factor = rope["factor"]
        low, high = rope["low_freq_factor"], rope["high_freq_factor"]
        context = rope["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        long_wave = wavelen > context / low            # low frequencies: interpolate fully
        short_wave = wavelen < context / high          # high frequencies: keep
        scaled = torch.where(long_wave, inv_freq / factor, inv_freq)
        smooth = (context / wavelen - low) / (high - low)
        blended = (1 - smooth) * scaled / factor + smooth * scaled
        inv_freq = torch.where(~short_wave & ~long_wave, blended, scaled)
    return inv_freq.to(torch.float32).contiguous(), 1.0
