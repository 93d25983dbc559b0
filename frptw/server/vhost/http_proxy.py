"""The ``http`` proxy of frps and its work connections as HTTP/1.1 client connections.

An :class:`HTTPProxy` owns no listener: it registers its routes (domains x locations x
``route_by_http_user``) in the HTTP vhost's route table and lends work connections to the
vhost's user connections, one request at a time.  A work connection is wrapped in a
:class:`Backend` (an h11 client connection).  After a response that leaves both directions
reusable, the backend goes back to the proxy's idle list (at most :data:`MAX_IDLE` for
:data:`IDLE_TIMEOUT` seconds, like Go's transport frp uses), so one work connection may carry
many requests (wire-protocol.md §7.7, §10.2).
"""

from typing import Dict, List, Optional, Set

import h11
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import connectionDone
from frptw.logs import FrpLogger
from twisted.python.failure import Failure

from frptw.server.proxy import BaseProxy
from frptw.server.vhost.routes import proxy_domains
from frptw.transport.bandwidth import throttle
from frptw.transport.layered import layer
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import data_plane_codec
from frptw.wire.messages import NewProxy

log = FrpLogger()

#: Idle work connections kept per http proxy, and for how long (Go transport settings of frp).
MAX_IDLE = 5
IDLE_TIMEOUT = 60.0
#: Largest response head accepted from a backend.
MAX_RESPONSE_HEAD = 64 * 1024


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
        self.idleTimer: Optional[IDelayedCall] = None

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
        self.proxy.backendGone(self)
        if self.user is not None:
            self.h11.receive_data(b"")
            self.pump()
            if self.user is not None:
                self.user.backendFailed("work connection closed")


class HTTPProxy(BaseProxy):
    """An ``http`` proxy: routes in the vhost, work connections on demand."""

    type = "http"

    def __init__(self, control, request: NewProxy, key: bytes, vhost) -> None:
        super().__init__(control, request, key)
        self.vhost = vhost
        self.domains = proxy_domains(request, vhost.subdomainHost)
        vhost.routes.add(self.domains, list(request.locations), request.route_by_http_user, self)
        self.remote_addr = ",".join(
            vhost.canonicalAddr(domain) for domain in self.domains for _ in (request.locations or [""])
        )
        self._idle: List[Backend] = []
        self._active: Set[Backend] = set()
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
        """An idle backend of this proxy, or a fresh work connection (StartWorkConn with the
        HTTP client's address as src), layered as the client asked."""
        while self._idle:
            backend = self._idle.pop()
            self._cancelIdle(backend)
            if not backend.gone:
                self._active.add(backend)
                return succeed(backend)
        if self._closing:
            return Deferred.fromCoroutine(self._closed())
        d = Deferred.fromCoroutine(self._startWorkConn(src, None))
        d.addCallback(self._wrap)
        return d

    async def _closed(self) -> Backend:
        raise ConnectionError(f"proxy [{self.name}] is closed")

    def _wrap(self, work: SwitchableProtocol) -> Backend:
        codec = data_plane_codec(self._key, self.request.use_encryption, self.request.use_compression)
        side = layer(work, codec) if codec is not None else work
        if self._bucket is not None:
            # bandwidth_limit_mode "server": frp limits an http proxy on the plaintext of its
            # work connections, both directions spending the proxy's one bucket.
            side = throttle(side, self.control.clock, self._bucket)
        backend = Backend(self)
        self._active.add(backend)
        side.switchTo(backend)
        return backend

    def release(self, backend: Backend) -> None:
        """The user is done with ``backend``: keep it idle if reusable, else close it."""
        self._active.discard(backend)
        backend.user = None
        if self._closing or not backend.reusable() or len(self._idle) >= MAX_IDLE:
            backend.transport.loseConnection()
            return
        backend.h11.start_next_cycle()
        backend.idleTimer = self.control.clock.callLater(IDLE_TIMEOUT, self._expire, backend)
        self._idle.append(backend)

    def forget(self, backend: Backend) -> None:
        """``backend`` was spliced (protocol switch): no longer ours to pool or close."""
        self._active.discard(backend)

    def _expire(self, backend: Backend) -> None:
        backend.idleTimer = None
        if backend in self._idle:
            self._idle.remove(backend)
            backend.transport.loseConnection()

    def _cancelIdle(self, backend: Backend) -> None:
        if backend.idleTimer is not None and backend.idleTimer.active():
            backend.idleTimer.cancel()
        backend.idleTimer = None

    def backendGone(self, backend: Backend) -> None:
        self._active.discard(backend)
        if backend in self._idle:
            self._idle.remove(backend)
            self._cancelIdle(backend)

    def released(self) -> None:
        self.vhost.routes.remove(self)
        for backend in self._idle + list(self._active):
            self._cancelIdle(backend)
            backend.transport.abortConnection()
        self._idle = []
