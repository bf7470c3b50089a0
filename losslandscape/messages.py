"""Messages to the user, routed as Keras routes its own (`keras.config.disable_interactive_logging()`)."""

from __future__ import annotations

import logging
import sys

import keras

logger = logging.getLogger("losslandscape")


def report(message: str) -> None:
    """Writes `message` to stdout, or to the "losslandscape" logger when Keras' interactive logging is off.

    Examples:
        >>> report("losslandscape: done")
        losslandscape: done
    """
    if keras.config.is_interactive_logging_enabled():
        sys.stdout.write(f"{message}\n")
        sys.stdout.flush()
    else:
        logger.info(message)
