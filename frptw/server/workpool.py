"""The idle work connections frps keeps for one client (wire-protocol.md §7.1).

frpc opens work connections when asked (``ReqWorkConn``) and frps keeps them idle until a user
connects to one of the client's proxies.  The pool holds at most ``pool_count + 10``; more are
closed.  :meth:`WorkConnPool.get` takes an idle one and asks frpc for a replacement, or, when
there is none, asks for one and waits up to ``user_conn_timeout`` for it (and then also asks
for a replacement, as frp does).  Waiters are served in arrival order.
"""

from collections import deque
from typing import Callable, Deque, List, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from frptw.errors import NoWorkConnection
from frptw.transport.switch import SwitchableProtocol


class WorkConnPool:
    """Idle work connections of one client, and the user connections waiting for one."""

    def __init__(self, capacity: int, timeout: float, clock: IReactorTime, request: Callable[[], None]) -> None:
        self.capacity = capacity
        self._timeout = timeout
        self._clock = clock
        self._request = request
        self._idle: Deque[SwitchableProtocol] = deque()
        self._waiters: Deque[Tuple[Deferred, IDelayedCall]] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._idle)

    def put(self, conn: SwitchableProtocol) -> bool:
        """Offer a fresh work connection; False (the caller closes it) if the pool is full."""
        if self._closed:
            return False
        if self._waiters:
            d, timer = self._waiters.popleft()
            timer.cancel()
            self._request()
            d.callback(conn)
            return True
        if len(self._idle) >= self.capacity:
            return False
        self._idle.append(conn)
        return True

    def discard(self, conn: SwitchableProtocol) -> None:
        """An idle work connection closed: forget it."""
        try:
            self._idle.remove(conn)
        except ValueError:
            pass

    def get(self) -> "Deferred[SwitchableProtocol]":
        """A work connection: an idle one at once, or the next to arrive within the timeout.

        Fails with :class:`~frptw.errors.NoWorkConnection` after the timeout, or when the client
        goes away.  Cancelling the Deferred withdraws the request.
        """
        if self._closed:
            return fail(NoWorkConnection("control is already closed"))
        while self._idle:
            conn = self._idle.popleft()
            if not conn.lost:
                self._request()
                return succeed(conn)

        def cancel(d: Deferred) -> None:
            for waiter in list(self._waiters):
                if waiter[0] is d:
                    self._waiters.remove(waiter)
                    waiter[1].cancel()

        d: Deferred = Deferred(cancel)
        self._request()
        timer = self._clock.callLater(self._timeout, self._expire, d)
        self._waiters.append((d, timer))
        return d

    def _expire(self, d: Deferred) -> None:
        self._waiters = deque(w for w in self._waiters if w[0] is not d)
        d.errback(NoWorkConnection("timeout trying to get work connection"))

    def close(self) -> List[SwitchableProtocol]:
        """The client is gone: fail every waiter; return the idle connections (to be closed)."""
        self._closed = True
        waiters, self._waiters = self._waiters, deque()
        for d, timer in waiters:
            timer.cancel()
            d.errback(NoWorkConnection("control is already closed"))
        idle, self._idle = list(self._idle), deque()
        return idle

    @property
    def waiting(self) -> int:
        return len(self._waiters)
