"""Llama weights, by transformers' parameter names, from a LlamaForCausalLM
or from a checkpoint directory (config.json + *.safetensors)."""
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

    def get(self, name):
        t = self._tensors.get(name)
        if t is None:
            raise KeyError(f"kiln.models.llama: {self._source} has no weight '{name}'")
        return t() if callable(t) else t

    def has(self, name):
        return name in self._tensors

    def lm_head(self):
        """The output projection; the embedding when the two are tied (or the
        checkpoint stores no lm_head, which is how tied checkpoints are saved)."""
        if self.spec.tie_word_embeddings or not self.has("lm_head.weight"):
            return self.get("model.embed_tokens.weight")
        return self.get("lm_head.weight")


def from_model(model):
    """Weights of a transformers LlamaForCausalLM (tensors used as they are)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "state_dict"):
        raise TypeError(f"kiln.models.llama: expected a transformers LlamaForCausalLM, got {type(model).__name__}")
    spec = LlamaSpec.from_hf_config(config)
    tensors = {k: v.detach() for k, v in model.state_dict().items()}
    if "model.embed_tokens.weight" not in tensors:
        raise TypeError(f"kiln.models.llama: {type(model).__name__} has no model.embed_tokens "
                        "(pass the LlamaForCausalLM, not its inner LlamaModel)")
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
                tensors[name] = (lambda file=file, name=name: _read(file, name))
    return Weights(spec, tensors, str(path))


def _read(file, name):
    from safetensors import safe_open
    with safe_open(str(file), framework="pt") as f:
        return f.get_tensor(name)
