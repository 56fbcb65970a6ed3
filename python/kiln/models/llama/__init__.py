"""Llama-architecture language models on kiln -- Llama, Mistral, Qwen2/Qwen2.5
and Qwen3 (config.py: one spec, a field per way a family departs from
Llama) -- whose hot kernels are Triton plugins written the way a kiln user
writes them:

    rms_norm.py           RMSNorm, and AddRMSNorm (a residual add fused with the norm after it)
    rotary.py             RotaryQKV: RoPE of the queries and keys from the fused projection, in one launch
                          (Qwen3: each head RMS-normalized first, in the same launch);
                          RotaryQKVCache: the same, also writing the key/value rows into the caches in
                          place (aliased outputs)
    silu_mul.py           SiluMul: the MLP's silu(gate) * up in one launch
    prefill_attention.py  PrefillAttention: causal grouped-query flash attention (optionally a sliding window)
    decode_attention.py   DecodeAttention: one token against a KV cache, split and combined (the same window)
    engines.py            the prefill and decode networks (plugins + kiln's matmul, add, gather, argmax)
    tensor_parallel.py    what each rank holds with tensor parallelism (from_hf(..., tp_size=N, rank=r))
    config.py             LlamaSpec: the hyper-parameters, from a transformers config, per family
    model.py              from_hf(), load() and LlamaModel (logits, generate, save)

    from kiln.models import llama
    m = llama.from_hf(hf_model, dtype="float32", max_batch=2, max_seq_len=64)   # any family above
    m.logits(ids)                 # [batch, seq, vocab]
    m.generate(ids, 20)           # greedy, with a KV cache
    m.save(dir); llama.load(dir)  # two engine files and kiln_llama.json; loading maps them

Importing this package registers the plugins (an engine built from them
loads in a process that imports kiln.models.llama) and, without a usable GPU,
makes Triton run under its interpreter.
"""
from . import _triton_mode  # noqa: F401  (before anything imports triton)
from .config import MODEL_TYPES, LlamaSpec, rope_frequencies
from .decode_attention import DecodeAttention
from .model import LlamaModel, from_hf, load
from .prefill_attention import PrefillAttention
from .rms_norm import AddRMSNorm, RMSNorm
from .rotary import RotaryQKV, RotaryQKVCache
from .silu_mul import SiluMul
from .tensor_parallel import TensorParallel

__all__ = ["from_hf", "load", "LlamaModel", "LlamaSpec", "MODEL_TYPES", "rope_frequencies", "TensorParallel",
           "RMSNorm", "AddRMSNorm", "RotaryQKV", "RotaryQKVCache", "SiluMul", "PrefillAttention",
           "DecodeAttention"]
