"""kiln's exception type.

Every failure of a kiln call (build, load, run, plugin) raises kiln.Error, a
RuntimeError.  Its message comes from the C library and names the thing at
fault; .status is the kiln_status code and .status_name its description.  When a
Python plugin raised, the original exception is chained as __cause__ and its
formatted traceback is part of the message.
"""
from ._native import _kiln

Error = _kiln.Error

__all__ = ["Error", "PluginRegistrationError", "PluginDefinitionError", "PluginShapeError", "PluginInMainWarning"]


class PluginRegistrationError(ValueError, AssertionError):
    """A plugin registered twice under one namespace::name and version.  A
    ValueError; also an AssertionError,
    which is what TensorRT-LLM raised there, so code and tests written for it
    catch it unchanged."""


class PluginDefinitionError(TypeError, AssertionError):
    """A plugin class kiln cannot use as written (not a PluginBase, missing
    forward or shape_dtype_inference, no way to tell its output count, not
    registered before an instance is made).  A
    TypeError; also an AssertionError, as in TensorRT-LLM."""


class PluginShapeError(Exception):
    """A plugin's shape_dtype_inference raised: the message names the plugin,
    the layer and the input shapes it was called with; the plugin's own
    exception is chained as __cause__."""


class PluginInMainWarning(UserWarning):
    """A plugin class defined in __main__ was used in a network: engines
    using it load only in a program that defines the class again."""
