"""TensorRT-LLM's `logger` (tensorrt_llm.logger) on Python's logging.

    logger.set_level("verbose"); logger.info("..."); logger.warning("...")

Messages go to the "kiln" logger (where kiln's own log goes); its level
follows set_level.  TensorRT-LLM's level names map onto logging's:
verbose/debug → DEBUG, info → INFO, warning → WARNING, error → ERROR,
internal_error → CRITICAL.
"""
import logging

_LEVELS = {"verbose": logging.DEBUG, "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "internal_error": logging.CRITICAL}

_log = logging.getLogger("kiln")
level = "warning"


def set_level(name):
    """Set the level by TensorRT-LLM's name ("verbose", "info", "warning", "error", "internal_error")."""
    global level
    key = str(name).lower()
    if key not in _LEVELS:
        raise ValueError(f"logger.set_level: unknown level {name!r} (one of {', '.join(_LEVELS)})")
    level = key
    from ...log_bridge import set_log_level as _set_kiln_level
    _set_kiln_level(_LEVELS[key])   # kiln's C log follows (and sets the "kiln" logger's level)


def verbose(msg, *args):
    _log.debug(msg, *args)


def debug(msg, *args):
    _log.debug(msg, *args)


def info(msg, *args):
    _log.info(msg, *args)


def warning(msg, *args):
    _log.warning(msg, *args)


def error(msg, *args):
    _log.error(msg, *args)


def critical(msg, *args):
    _log.critical(msg, *args)
