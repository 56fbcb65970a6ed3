"""Weights of a Llama-family model, by transformers' parameter names (the
same in LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM and
Qwen3ForCausalLM), from such a model or from a checkpoint directory
(config.json + *.safetensors)."""
import json
import os
from pathlib import Path

from .config import LlamaSpec


class Weights:
    """name -> torch tensor (on the CPU, any dtype), plus the spec."""

    def __init__(self, spec, tensors, source):
        self.spec = spec
        self._tensors = tensors
        self._source = source

    def get(self, name, rows=None, cols=None):
        """The tensor, or only rows [lo, hi) / columns [lo, hi) of it (a
        tensor-parallel rank's part: read alone from a checkpoint file)."""
        t = self._tensors.get(name)
        if t is None:
            raise KeyError(f"kiln.models.llama: {self._source} has no weight '{name}'")
        if callable(t):
            return t(rows, cols)
        if rows is not None:
            t = t[rows[0]:rows[1]]
        if cols is not None:
            t = t[:, cols[0]:cols[1]]
        return t

    def has(self, name):
        return name in self._tensors

    def lm_head_name(self):
        """The output projection's weight; the embedding when the two are tied
        (or the checkpoint stores no lm_head, which is how tied checkpoints
        are saved)."""
        if self.spec.tie_word_embeddings or not self.has("lm_head.weight"):
            return "model.embed_tokens.weight"
        return "lm_head.weight"

    def lm_head(self, rows=None):
        return self.get(self.lm_head_name(), rows=rows)


def from_model(model):
    """Weights of a transformers *ForCausalLM of the family (tensors used as they are)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "state_dict"):
        raise TypeError(f"kiln.models.llama: expected a transformers LlamaForCausalLM (or Mistral, Qwen2, "
                        f"Qwen3), got {type(model).__name__}")
    spec = LlamaSpec.from_hf_config(config)
    tensors = {k: v.detach() for k, v in model.state_dict().items()}
    if "model.embed_tokens.weight" not in tensors:
        raise TypeError(f"kiln.models.llama: {type(model).__name__} has no model.embed_tokens "
                        f"(pass the ...ForCausalLM, not its inner {type(model).__name__})")
    return Weights(spec, tensors, type(model).__name__)


def from_directory(path):
    """Weights of a checkpoint directory as save_pretrained writes it: its
    config.json and every *.safetensors file (sharded or not).  Tensors are
    read lazily, one at a time, when the network is built."""
    from safetensors import safe_open
    path = Path(os.fspath(path))
    config_file = path / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"kiln.models.llama: {path} has no config.json (not a transformers checkpoint)")
    with open(config_file) as f:
        spec = LlamaSpec.from_hf_config(json.load(f))
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"kiln.models.llama: {path} has no *.safetensors file "
                                "(save the checkpoint with safe_serialization=True)")
    tensors = {}
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            for name in f.keys():
                tensors[name] = (lambda rows, cols, file=file, name=name: _read(file, name, rows, cols))
    return Weights(spec, tensors, str(path))


def _read(file, name, rows=None, cols=None):
    """One tensor, or a block of its rows or columns, read from the file
    without reading the rest (safetensors slices)."""
    from safetensors import safe_open
    with safe_open(str(file), framework="pt") as f:
        if rows is None and cols is None:
            return f.get_tensor(name)
        part = f.get_slice(name)
        if cols is None:
            return part[rows[0]:rows[1]]
        if rows is None:
            return part[:, cols[0]:cols[1]]
        return part[rows[0]:rows[1], cols[0]:cols[1]]
