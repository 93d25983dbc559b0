"""A one-time event many callers can wait for (closing a connection, a proxy, a control), and
the two ways frps waits for many things to close: :func:`whenAll` and :func:`abortAll`."""

from typing import Iterable, List

from twisted.internet.defer import Deferred, DeferredList, succeed


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


def whenAll(waits: Iterable[Deferred]) -> "Deferred[None]":
    """Fires with None once every one of ``waits`` has fired, whatever each one's result:
    closing goes on past a part that failed to close."""
    d = DeferredList(list(waits), consumeErrors=True)
    d.addCallback(lambda _: None)
    return d


def abortAll(connections: Iterable) -> "Deferred[None]":
    """Abort each of ``connections`` (protocols with a ``closed`` :class:`Event`); fires once
    all are closed."""
    waits = []
    for conn in list(connections):
        waits.append(conn.closed.wait())
        conn.transport.abortConnection()
    return whenAll(waits)
