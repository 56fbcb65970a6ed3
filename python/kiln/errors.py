"""kiln's exception type.

Every failure of a kiln call (build, load, run, plugin) raises kiln.Error, a
RuntimeError.  Its message comes from the C library and names the thing at
fault; .status is the kiln_status code and .status_name its description.  When a
Python plugin raised, the original exception is chained as __cause__ and its
formatted traceback is part of the message.
"""
from ._native import _kiln

Error = _kiln.Error

__all__ = ["Error"]
