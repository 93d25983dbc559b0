"""Delayed calls: the one way frptw stops or pushes back one that may already have run.

Every timer in frptw is an ``IDelayedCall`` from ``clock.callLater`` (a ``task.Clock`` in tests)
kept in an attribute that is ``None`` when there is none; :func:`cancelCall` is what stops it
and :func:`resetCall` what restarts an idle timeout, whatever state it is in.  (The HTTP
vhost's ``LazyTimer`` is the one exception: a timeout restarted per request, kept cheap.)
"""

from typing import Optional

from twisted.internet.interfaces import IDelayedCall


def cancelCall(call: Optional[IDelayedCall]) -> None:
    """Cancel ``call`` if it is still pending; ``None``, a call that has run and one already
    cancelled are left alone (``IDelayedCall.cancel`` raises for the last two)."""
    if call is not None and call.active():
        call.cancel()


def resetCall(call: Optional[IDelayedCall], delay: float) -> None:
    """Make a still pending ``call`` run ``delay`` seconds from now (an idle timeout seeing
    activity); ``None`` or a call that has run or was cancelled is left alone."""
    if call is not None and call.active():
        call.reset(delay)
