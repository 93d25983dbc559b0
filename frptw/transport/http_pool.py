"""Idle HTTP/1.1 backend connections of one reverse proxy, lent to one exchange at a time.

frps's http proxies lend their work connections this way, frpc's HTTP plugins their
connections to the local service; both dial a new one through the ``dial`` they are given.
"""

from collections import deque
from typing import Callable, Deque, List, Optional, Set, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.python.failure import Failure

from frptw.errors import NoWorkConnection
from frptw.transport.http_exchange import Backend
from frptw.transport.lazytimer import LazyTimer

#: Idle work connections kept per http proxy at least, and for how long.
#:
#: frp's Go transport keeps at most 5 idle per proxy (``MaxIdleConnsPerHost``), so with more
#: concurrent requests than that, connections released between two requests are closed and
#: the next requests each start a new work connection (a StartWorkConn, a new connection from
#: frpc to the local service, a pool refill).  Profiled under ``bench_http`` (wrk -c50, frps
#: under cProfile): 1,157 new work connections for 1,650 requests.  Here the pool keeps as
#: many idle as were lent at once at the peak of recent load (at least MAX_IDLE): under steady
#: load every connection is reused; the peak is forgotten when a connection stays unused for
#: IDLE_TIMEOUT (frp's 60 s), the sign that the load went down.  The pool never holds more
#: than twice that peak.  Only how long frpc's connections stay open differs from frp; each
#: still carries one request at a time.
MAX_IDLE = 5
IDLE_TIMEOUT = 60.0


class BackendPool:
    """The backend connections of one reverse proxy that no exchange holds (frps: an http
    proxy's work connections; frpc: an HTTP plugin's connections to its local address).

    :meth:`acquire` lends the most recently used idle connection (as Go's transport does), or
    queues the request.  The first connection to come free serves the oldest queued request,
    whether an exchange released it or a new work connection arrived.  A new one is dialled
    only while the queue is longer than the number already on their way: one dialled for a
    request that a released connection served since is still coming, and serves the next.
    Without that hand-over, under load every request waited for its own new work connection
    while released ones overflowed the idle list and were closed.

    A released connection stays idle while fewer than the most lent at once recently (at
    least ``maxIdle``; see :data:`MAX_IDLE`) are idle, each for ``idleTimeout`` seconds; one
    timer serves them all, since they expire in the order they became idle.

    :param dial: a new work connection for a request of client ``src``.
    """

    def __init__(self, clock: IReactorTime, dial: Callable[[Optional[IAddress]], "Deferred[Backend]"],
                 maxIdle: int = MAX_IDLE, idleTimeout: float = IDLE_TIMEOUT) -> None:
        self._clock = clock
        self._dial = dial
        self._maxIdle = maxIdle
        self._idleTimeout = idleTimeout
        #: (idle since, connection), oldest first; lent from the end.
        self._idle: List[Tuple[float, Backend]] = []
        self._lent: Set[Backend] = set()
        self._wanting: Deque[Deferred] = deque()
        self._dialing = 0
        #: Most work connections lent at once since one last stayed idle for idleTimeout.
        self._peak = 0
        self._closed = False
        self._expiry = LazyTimer(clock, self._expire)

    def acquire(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        """A work connection for one request of client ``src``; cancel to stop waiting."""
        while self._idle:
            _, backend = self._idle.pop()
            if not backend.gone:
                self._lend(backend)
                return succeed(backend)
        if self._closed:
            return Deferred.fromCoroutine(self._refuse())
        waiter: Deferred = Deferred(self._wanting.remove)
        self._wanting.append(waiter)
        if self._dialing < len(self._wanting):
            self._dialing += 1
            self._dial(src).addCallbacks(self._dialled, self._dialFailed)
        return waiter

    def _lend(self, backend: Backend) -> None:
        self._lent.add(backend)
        if len(self._lent) > self._peak:
            self._peak = len(self._lent)

    async def _refuse(self) -> Backend:
        raise NoWorkConnection("proxy is closed")

    def release(self, backend: Backend) -> None:
        """An exchange is done with ``backend``: pass it on if reusable, else close it."""
        self._lent.discard(backend)
        if not backend.reusable():
            backend.transport.loseConnection()
            return
        backend.h11.start_next_cycle()
        self._offer(backend)

    def forget(self, backend: Backend) -> None:
        """``backend`` was spliced (protocol switch): no longer the pool's."""
        self._lent.discard(backend)
        backend.responseTimer.cancel()

    def close(self) -> None:
        """Fail the queued requests and close every connection, idle or lent."""
        self._closed = True
        self._expiry.cancel()
        wanting, self._wanting = self._wanting, deque()
        for waiter in wanting:
            waiter.errback(NoWorkConnection("proxy is closed"))
        for backend in [backend for _, backend in self._idle] + list(self._lent):
            backend.responseTimer.cancel()
            backend.transport.abortConnection()
        self._idle = []
        self._lent = set()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def _dialled(self, backend: Backend) -> None:
        self._dialing -= 1
        self._offer(backend)

    def _dialFailed(self, failure: Failure) -> None:
        """The oldest queued request that no other work connection on its way covers fails."""
        self._dialing -= 1
        if len(self._wanting) > self._dialing:
            self._wanting.popleft().errback(failure)

    def _offer(self, backend: Backend) -> None:
        """A free connection: to the oldest queued request, else idle (at most maxIdle)."""
        if backend.gone:
            return
        if self._closed:
            backend.transport.loseConnection()
            return
        if self._wanting:
            self._lend(backend)
            self._wanting.popleft().callback(backend)
            return
        limit = max(self._maxIdle, self._peak)
        if len(self._idle) >= limit:
            self._idle = [entry for entry in self._idle if not entry[1].gone]
            if len(self._idle) >= limit:
                backend.transport.loseConnection()
                return
        if not self._idle:
            self._expiry.start(self._idleTimeout)
        self._idle.append((self._clock.seconds(), backend))

    def _expire(self) -> None:
        """Close the connections idle for idleTimeout; wake again for the next oldest."""
        now = self._clock.seconds()
        while self._idle and self._idle[0][0] + self._idleTimeout <= now:
            _, backend = self._idle.pop(0)
            backend.transport.loseConnection()
            self._peak = len(self._lent)
        if self._idle:
            self._expiry.start(self._idle[0][0] + self._idleTimeout - now)
