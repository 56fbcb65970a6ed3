"""kiln's log in Python's logging.

Messages of the C library (a build's layers and memory plan, the backend a
context runs on) go to the logger "kiln" at the matching level.  Which
messages the C side produces is its own level: $KILN_LOG_LEVEL ("error",
"warning", "info", "debug"), or set_log_level(), which sets both it and the
"kiln" logger's level:

    import logging, kiln
    logging.basicConfig()
    kiln.set_log_level("info")     # builds and sessions now report what they did
"""
import logging

from ._native import _kiln

__all__ = ["set_log_level", "get_log_level", "logger"]

logger = logging.getLogger("kiln")

_TO_PYTHON = {0: logging.ERROR, 1: logging.WARNING, 2: logging.INFO, 3: logging.DEBUG}
_NAMES = {"error": 0, "warning": 1, "info": 2, "debug": 3}


def _forward(level, message):
    logger.log(_TO_PYTHON.get(level, logging.INFO), message)


def set_log_level(level):
    """Level by name ("error", "warning", "info", "debug") or logging's numbers."""
    if isinstance(level, str):
        if level.lower() not in _NAMES:
            raise ValueError(f"set_log_level: unknown level {level!r} (one of {', '.join(_NAMES)})")
        code = _NAMES[level.lower()]
    elif isinstance(level, int):
        code = 3 if level <= logging.DEBUG else 2 if level <= logging.INFO else 1 if level <= logging.WARNING else 0
    else:
        raise TypeError(f"set_log_level: expected a level name or a logging level, got {type(level).__name__}")
    _kiln.set_log_level(code)
    logger.setLevel(_TO_PYTHON[code])


def get_log_level():
    """The C log's level, by name."""
    return {v: k for k, v in _NAMES.items()}[_kiln.get_log_level()]


_kiln._set_log_handler(_forward)
