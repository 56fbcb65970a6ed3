"""Models built from kiln layers and Python plugins.

Each model lives in a subpackage (`kiln.models.llama`) that imports only on
demand: `import kiln` never imports Triton or transformers.

    from kiln import models
    m = models.from_hf(hf_model_or_checkpoint_dir, dtype="bfloat16", max_seq_len=4096)

from_hf picks the subpackage from the config's model_type (FAMILIES) and
passes everything else through; a model_type no subpackage serves is
refused by name.
"""
import json
import os
from pathlib import Path

# model_type (transformers' config) -> the subpackage of kiln.models that builds it
FAMILIES = {"llama": "llama", "mistral": "llama", "qwen2": "llama", "qwen3": "llama"}


def model_type(model):
    """The model_type of a transformers model (or its config) or of a
    checkpoint directory's config.json."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(os.fspath(model)) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"kiln.models: {Path(os.fspath(model))} has no config.json "
                                    "(not a transformers checkpoint)")
        with open(path) as f:
            return json.load(f).get("model_type")
    config = getattr(model, "config", model)
    return getattr(config, "model_type", None)


def from_hf(model, **kwargs):
    """Build kiln engines for a transformers causal LM or checkpoint
    directory of any family kiln supports (FAMILIES), with that family's
    from_hf (kiln.models.llama.from_hf for Llama, Mistral, Qwen2, Qwen3)."""
    kind = model_type(model)
    if kind not in FAMILIES:
        raise ValueError(f"kiln.models: model_type {kind!r} is not supported; supported: {', '.join(FAMILIES)}")
    import importlib
    return importlib.import_module(f"{__name__}.{FAMILIES[kind]}").from_hf(model, **kwargs)
