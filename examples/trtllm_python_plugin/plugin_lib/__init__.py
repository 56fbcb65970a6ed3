# TensorRT-LLM's examples/python_plugin plugin package, ported to kiln by
# changing imports only (see lookup_plugin.py).  kiln's own version of the
# example, with a faster kernel, is examples/python_plugin.
from .lookup_plugin import LookUpPlugin

__all__ = ["LookUpPlugin"]
