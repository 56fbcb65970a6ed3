"""Loads the _kiln extension module (the C half of kiln).

In an installed package _kiln*.so sits next to this file.  In a source tree
the build directory (e.g. build-py/, which holds _kiln*.so and libkiln.so)
may instead be on sys.path or named by the KILN_BUILD_DIR environment
variable.
"""
import os
import sys

try:
    from . import _kiln  # installed layout
except ImportError:
    _build = os.environ.get("KILN_BUILD_DIR")
    if _build:
        _build = os.path.abspath(_build)
    if _build and _build not in sys.path:
        sys.path.insert(0, _build)
    try:
        import _kiln  # build-tree layout
    except ImportError as exc:
        raise ImportError(
            "kiln: the _kiln extension module was not found. Install kiln with "
            "`pip install .`, or build it (cmake -DKILN_PYTHON=ON) and set "
            "KILN_BUILD_DIR to the build directory.") from exc

__all__ = ["_kiln"]
