"""The Llama hyper-parameters kiln needs, read from a transformers config (or
the dict of a config.json), and the RoPE frequencies they imply."""
import math
from dataclasses import dataclass, field

import torch

ROPE_TYPES = ("default", "linear", "llama3")


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
    attention_bias: bool = False
    mlp_bias: bool = False
    rope: dict = field(default_factory=lambda: {"rope_type": "default", "rope_theta": 10000.0})

    @classmethod
    def from_hf_config(cls, config):
        """From a transformers LlamaConfig or a config.json dict.  Raises
        ValueError naming the setting kiln's Llama does not support."""
        d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        model_type = d.get("model_type", "llama")
        if model_type != "llama":
            raise ValueError(f"kiln.models.llama: model_type {model_type!r} is not 'llama'")
        act = d.get("hidden_act", "silu")
        if act != "silu":
            raise ValueError(f"kiln.models.llama: hidden_act {act!r} is not supported (only 'silu')")
        heads = int(d["num_attention_heads"])
        kv_heads = int(d.get("num_key_value_heads") or heads)
        if heads % kv_heads:
            raise ValueError(f"kiln.models.llama: num_attention_heads {heads} is not a multiple of "
                             f"num_key_value_heads {kv_heads}")
        head_dim = d.get("head_dim") or int(d["hidden_size"]) // heads
        return cls(vocab_size=int(d["vocab_size"]), hidden_size=int(d["hidden_size"]),
                   intermediate_size=int(d["intermediate_size"]), num_layers=int(d["num_hidden_layers"]),
                   num_heads=heads, num_kv_heads=kv_heads, head_dim=int(head_dim),
                   rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
                   tie_word_embeddings=bool(d.get("tie_word_embeddings", False)),
                   attention_bias=bool(d.get("attention_bias", False)), mlp_bias=bool(d.get("mlp_bias", False)),
                   rope=_rope_parameters(d))

    def inv_freq(self):
        """(inv_freq float32 [head_dim / 2], attention scaling) for self.rope."""
        return rope_frequencies(self.rope, self.head_dim)


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
