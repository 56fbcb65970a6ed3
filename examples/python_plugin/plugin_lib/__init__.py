# Importing this package registers its plugins with kiln (the TensorRT-LLM
# plugin-package convention): a process that loads an engine built with them
# only needs `import plugin_lib`.
from . import _triton_mode  # noqa: F401  (sets TRITON_INTERPRET before triton loads)
from .lookup_plugin import LookUpPlugin
from .lookup_plugin_aot import LookUpPluginAOT

__all__ = ["LookUpPlugin", "LookUpPluginAOT"]
