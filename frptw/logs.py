"""frptw's loggers honour frp's ``log.level`` (trace, debug, info, warn, error).

Every module logs through :class:`FrpLogger`, a :class:`twisted.logger.Logger` that drops
events below the process-wide level *before* building them: per-connection info and debug
lines are a real share of the data-plane cost when nobody wants them.  The level starts at
``debug`` (everything, which suits embedders and tests, who filter with their own observers);
``twistd frpc``/``twistd frps`` set it from the configuration with :func:`set_level`.
"""

from typing import Callable, Type

from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure

#: frp's level names (``trace`` is frp's; Twisted's finest is ``debug``).
LEVELS = {
    "trace": LogLevel.debug,
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "error": LogLevel.error,
}

_PRIORITY = {level: n for n, level in enumerate(
    [LogLevel.debug, LogLevel.info, LogLevel.warn, LogLevel.error, LogLevel.critical]
)}
_threshold = 0


def set_level(name: str) -> None:
    """Log only events at frp level ``name`` and above (unknown names mean ``info``, as frp)."""
    global _threshold
    _threshold = _PRIORITY[LEVELS.get(name.lower(), LogLevel.info)]


def unexpected(log: Logger, format: str, *expected: Type[BaseException], **fields) -> Callable[[Failure], None]:
    """An errback for a Deferred nobody else waits on, whose ``expected`` failures were already
    reported where they happened (one line each): those end here; anything else is a bug of
    frptw and is logged with its traceback (``log.failure(format, ...)``), never dropped."""

    def errback(failure: Failure) -> None:
        if not failure.check(*expected):
            log.failure(format, failure, **fields)

    return errback


class FrpLogger(Logger):
    """A Logger that skips events below the level chosen with :func:`set_level`."""

    def emit(self, level: LogLevel, format=None, **kwargs) -> None:
        if _PRIORITY.get(level, 0) < _threshold:
            return
        super().emit(level, format, **kwargs)
