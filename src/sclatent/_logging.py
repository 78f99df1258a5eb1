"""sclatent's messages go through scanpy's logging, so ``sc.settings.verbosity`` controls them.

Modules log to the standard ``logging.getLogger("sclatent")``; one handler passes each record to
``scanpy.logging`` at its level (warnings are shown by default, what was added and the epochs run at
``sc.settings.verbosity = "info"``, as scanpy's own tools report).
"""

from __future__ import annotations

import logging

logger = logging.getLogger("sclatent")


class ScanpyHandler(logging.Handler):
    """Hands records to ``scanpy.logging``, which filters them by ``sc.settings.verbosity``."""

    def emit(self, record: logging.LogRecord) -> None:
        """Print ``record`` through scanpy, if its verbosity allows."""
        from scanpy import logging as scanpy_logging

        message = self.format(record)
        if record.levelno >= logging.ERROR:
            scanpy_logging.error(message)
        elif record.levelno >= logging.WARNING:
            scanpy_logging.warning(message)
        elif record.levelno >= logging.INFO:
            scanpy_logging.info(message)
        else:
            scanpy_logging.debug(message)


if not any(isinstance(handler, ScanpyHandler) for handler in logger.handlers):
    logger.addHandler(ScanpyHandler())
# every record reaches the handler; scanpy's verbosity decides what is shown
logger.setLevel(logging.DEBUG)
