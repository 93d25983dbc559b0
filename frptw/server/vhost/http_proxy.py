"""The ``http`` proxy of frps and its work connections as HTTP/1.1 client connections.

An :class:`HTTPProxy` owns no listener: it registers its routes (domains x locations x
``route_by_http_user``) in the HTTP vhost's route table and lends work connections to the
vhost's user connections, one request at a time.  A work connection is wrapped in a
:class:`Backend` (an h11 client connection).  After a response that leaves both directions
reusable, the backend serves the oldest request waiting for one, or goes back to the proxy's
idle list (at most :data:`MAX_IDLE` for :data:`IDLE_TIMEOUT` seconds, like Go's transport
frp uses), so one work connection may carry many requests (wire-protocol.md §7.7, §10.2).
"""

from collections import deque
from functools import partial
from typing import Callable, Deque, Dict, List, Optional, Set

import h11
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.server.vhost.routes import proxy_domains
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.messages import NewProxy

log = FrpLogger()

#: Idle work connections kept per http proxy, and for how long (Go transport settings of frp).
MAX_IDLE = 5
IDLE_TIMEOUT = 60.0
#: Largest response head accepted from a backend.
MAX_RESPONSE_HEAD = 64 * 1024


class LazyTimer:
    """A timeout restarted for every request without a new DelayedCall each time.

    Scheduling and cancelling a DelayedCall per request shows in profiles; this keeps one
    call and, on :meth:`start`, only moves the deadline when the pending call wakes early
    enough anyway (the usual case: each restart is later than the last).  :meth:`stop` only
    forgets the deadline.  The call wakes, sees the deadline moved or gone, and sleeps again
    or ends; :meth:`cancel` really removes it (its owner is closing).
    """

    def __init__(self, clock: IReactorTime, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._call: Optional[IDelayedCall] = None
        self._deadline: Optional[float] = None

    @property
    def running(self) -> bool:
        return self._deadline is not None

    def start(self, seconds: float) -> None:
        """Fire the callback ``seconds`` from now unless stopped or restarted before."""
        self._deadline = deadline = self._clock.seconds() + seconds
        call = self._call
        if call is None:
            self._call = self._clock.callLater(seconds, self._wake)
        elif call.getTime() > deadline:
            call.reset(seconds)

    def stop(self) -> None:
        self._deadline = None

    def cancel(self) -> None:
        self._deadline = None
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _wake(self) -> None:
        self._call = None
        if self._deadline is None:
            return
        remaining = self._deadline - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(remaining, self._wake)
            return
        self._deadline = None
        self._callback()


class Backend(SwitchableProtocol):
    """A work connection speaking HTTP/1.1 as the client; events go to its current ``user``.

    The user side (:class:`frptw.server.vhost.http.HTTPUserConnection`) calls
    :meth:`send` and receives ``backendEvent(event)`` / ``backendFailed(reason)``.  After a
    protocol switch (101, CONNECT) the backend is spliced like any switchable protocol.
    """

    def __init__(self, proxy: "HTTPProxy") -> None:
        super().__init__(bufferLimit=None)
        self.proxy = proxy
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self.user = None
        self.gone = False
        self.idleTimer = LazyTimer(proxy.owner.clock, partial(proxy._expire, self))

    def send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.transport.write(data)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        if self.user is None:
            log.warn("[{name}] unexpected {n} bytes on an idle http work connection, closing", name=self.proxy.name,
                     n=len(data))
            self.transport.abortConnection()
            return
        self.h11.receive_data(data)
        self.pump()

    def pump(self) -> None:
        """Hand parsed response events to the user until more data is needed."""
        while self.user is not None and self.switchedTo is None:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self.user.backendFailed(f"bad response from backend: {e}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            self.user.backendEvent(event)

    def reusable(self) -> bool:
        """True once a whole exchange ended and both sides may start another (and the backend
        sent nothing past its response, which would answer the next request)."""
        return (self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE and not self.gone
                and not self.h11.trailing_data[0])

    def readConnectionLost(self) -> None:
        """The backend's end of data (a yamux FIN): the response may end there (close-delimited),
        and the connection is done either way."""
        if self.switchedTo is not None:
            super().readConnectionLost()
            return
        self._ended()
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.switchedTo is not None:
            super().connectionLost(reason)
            return
        self._ended()

    def _ended(self) -> None:
        if self.gone:
            return
        self.gone = True
        self.idleTimer.cancel()
        self.proxy.backendGone(self)
        if self.user is not None:
            self.h11.receive_data(b"")
            self.pump()
            if self.user is not None:
                self.user.backendFailed("work connection closed")


class HTTPProxy(BaseProxy):
    """An ``http`` proxy: routes in the vhost, work connections on demand."""

    type = "http"

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes, vhost) -> None:
        super().__init__(owner, request, key)
        self.vhost = vhost
        self.domains = proxy_domains(request, vhost.subdomainHost)
        vhost.routes.add(self.domains, list(request.locations), request.route_by_http_user, self)
        self.remote_addr = ",".join(
            vhost.canonicalAddr(domain) for domain in self.domains for _ in (request.locations or [""])
        )
        self._idle: List[Backend] = []
        self._active: Set[Backend] = set()
        self._wanting: Deque[Deferred] = deque()
        self._dialing = 0
        for domain in self.domains:
            for location in request.locations or [""]:
                log.info("[{run_id}] [{name}] http proxy listen for host [{domain}] location [{location}] "
                         "group [] routeByHTTPUser [{user}]", run_id=self.runId, name=self.name, domain=domain,
                         location=location, user=request.route_by_http_user)

    @property
    def requestHeaders(self) -> Dict[str, str]:
        return self.request.headers

    def checkAuth(self, credentials) -> bool:
        """frp's check: a proxy with ``http_user`` or ``http_pwd`` needs both to match."""
        want = (self.request.http_user, self.request.http_pwd)
        if want == ("", ""):
            return True
        return credentials == want

    # -- lending work connections --------------------------------------------------------------
    def acquire(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        """An idle backend of this proxy, or the next backend to come free.

        A request that finds no idle backend queues; the first backend to come free serves
        the oldest queued request, whether another request released it or a new work
        connection arrived (as in Go's transport).  A new work connection (StartWorkConn
        with the HTTP client's address as src, layered as the client asked) is started only
        while the queue is longer than the number already on their way: one started for a
        request that a released backend served since is still coming and serves the next.
        Without the hand-over, under load every request waited for its own new work
        connection while released ones overflowed the idle list and closed.  Cancelling the
        Deferred leaves the queue."""
        while self._idle:
            backend = self._idle.pop()
            if not backend.gone:
                backend.idleTimer.stop()
                self._active.add(backend)
                return succeed(backend)
        if self._closing:
            return Deferred.fromCoroutine(self._closed())
        waiter: Deferred = Deferred(self._wanting.remove)
        self._wanting.append(waiter)
        if self._dialing < len(self._wanting):
            self._dialing += 1
            dial = Deferred.fromCoroutine(self._startWorkConn(src, None))
            dial.addCallback(self._wrap)
            dial.addCallbacks(self._dialed, self._dialFailed)
        return waiter

    async def _closed(self) -> Backend:
        raise ConnectionError(f"proxy [{self.name}] is closed")

    def _wrap(self, work: SwitchableProtocol) -> Backend:
        backend = Backend(self)
        self.stackWorkConn(work).switchTo(backend)
        return backend

    def _dialed(self, backend: Backend) -> None:
        self._dialing -= 1
        self._offer(backend)

    def _dialFailed(self, failure: Failure) -> None:
        """The oldest queued request that no other work connection on its way covers fails."""
        self._dialing -= 1
        if len(self._wanting) > self._dialing:
            self._wanting.popleft().errback(failure)

    def release(self, backend: Backend) -> None:
        """The user is done with ``backend``: pass it on if reusable, else close it."""
        self._active.discard(backend)
        backend.user = None
        if not backend.reusable():
            backend.transport.loseConnection()
            return
        backend.h11.start_next_cycle()
        self._offer(backend)

    def _offer(self, backend: Backend) -> None:
        """A free backend: to the oldest queued request, else idle (at most MAX_IDLE)."""
        if backend.gone:
            return
        if self._wanting and not self._closing:
            self._active.add(backend)
            self._wanting.popleft().callback(backend)
            return
        if self._closing or len(self._idle) >= MAX_IDLE:
            backend.transport.loseConnection()
            return
        backend.idleTimer.start(IDLE_TIMEOUT)
        self._idle.append(backend)

    def forget(self, backend: Backend) -> None:
        """``backend`` was spliced (protocol switch): no longer ours to pool or close."""
        self._active.discard(backend)
        backend.idleTimer.cancel()

    def _expire(self, backend: Backend) -> None:
        """``backend`` stayed idle for IDLE_TIMEOUT."""
        if backend in self._idle:
            self._idle.remove(backend)
            backend.transport.loseConnection()

    def backendGone(self, backend: Backend) -> None:
        self._active.discard(backend)
        if backend in self._idle:
            self._idle.remove(backend)

    def released(self) -> None:
        self.vhost.routes.remove(self)
        wanting, self._wanting = self._wanting, deque()
        for waiter in wanting:
            waiter.errback(ConnectionError(f"proxy [{self.name}] is closed"))
        for backend in self._idle + list(self._active):
            backend.idleTimer.cancel()
            backend.transport.abortConnection()
        self._idle = []
