"""A one-time event many callers can wait for (closing a connection, a proxy, a control)."""

from typing import List

from twisted.internet.defer import Deferred, succeed


class Event:
    """Each :meth:`wait` returns its own Deferred, fired (with ``None``) by :meth:`fire`; waits
    after the event fire at once.  A Deferred cannot be shared by callers that each add
    callbacks, hence one per waiter."""

    def __init__(self) -> None:
        self.happened = False
        self._waiters: List[Deferred] = []

    def fire(self) -> None:
        if self.happened:
            return
        self.happened = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def wait(self) -> "Deferred[None]":
        if self.happened:
            return succeed(None)
        d: Deferred = Deferred()
        self._waiters.append(d)
        return d
