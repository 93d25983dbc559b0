"""Delayed calls: the one way frptw stops one that may already have run.

Every timer in frptw is an ``IDelayedCall`` from ``clock.callLater`` (a ``task.Clock`` in tests)
kept in an attribute that is ``None`` when there is none; :func:`cancelCall` is what stops it,
whatever state it is in.
"""

from typing import Optional

from twisted.internet.interfaces import IDelayedCall


def cancelCall(call: Optional[IDelayedCall]) -> None:
    """Cancel ``call`` if it is still pending; ``None``, a call that has run and one already
    cancelled are left alone (``IDelayedCall.cancel`` raises for the last two)."""
    if call is not None and call.active():
        call.cancel()
