"""frps's HTTP vhost (``vhost_http_port``): an HTTP/1.1 reverse proxy in front of http proxies.

Port sharing (``vhost_http_port == bind_port``): the bind-port sniffer hands a connection
that starts with an HTTP method to ``HTTPVhost.buildProtocol(addr)`` and switches it to the
returned protocol with the bytes it peeked (``SwitchableProtocol.switchTo(proto, leftover)``).
The service's vhost is ``FrpServerService.httpVhost`` (``ProxyRegistry.httpVhost``).

Theory of operation (wire-protocol.md §10.2).  Each user connection is an
:class:`HTTPUserConnection` parsing requests with h11 (server role).  Requests are handled one
at a time, each routed on its own (keep-alive requests may reach different proxies):

``HEAD``
    Reading a request head; at most :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS` headers,
    within :data:`HEADER_TIMEOUT` seconds.  Bad input is answered 400/431 and the connection
    closed; a request with both Content-Length and Transfer-Encoding, or an HTTP/1.0 one with
    Transfer-Encoding, is refused (smuggling).
``WAITING``
    Routed and authenticated; waiting for the proxy to lend a work connection
    (:meth:`HTTPProxy.acquire`).  The user transport is paused as soon as bytes arrive that
    must wait (a body, a pipelined request): h11 holds at most one read of them.
``FORWARDING``
    The rewritten head was written to the backend; the request body and the response are
    streamed as they come.  Each transport is the streaming producer of the other, so a slow
    reader on either side pauses the other (memory stays bounded whatever the body sizes).
    Until a response head arrives (``vhost_http_timeout``) a failure is answered locally.
``LOCAL``
    frps answered itself (404, 401, 504): the rest of the request body is read and dropped.
``TUNNEL``
    After a 101 from the backend, or for CONNECT, both connections are spliced raw.

When both the request and the response are complete the backend goes back to its proxy
(reused if possible) and the next request is read.
"""

import enum
from http import HTTPStatus
from typing import Optional, Set

import h11
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.logs import FrpLogger
from frptw.server._event import Event
from frptw.server.vhost.http_proxy import Backend, HTTPProxy, LazyTimer
from frptw.server.vhost.http_rewrite import first_header, is_upgrade, rewrite_request, rewrite_response, route_key
from frptw.server.vhost.routes import RouteTable, canonical_host
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol

log = FrpLogger()

#: Request-head limits and the header read timeout (Go's server in frps: 60 s).
MAX_HEAD = 64 * 1024
MAX_HEADERS = 128
HEADER_TIMEOUT = 60.0

#: frp 0.65's built-in page for unknown routes and failed backends (pkg/util/vhost/resource.go).
NOT_FOUND_PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>Not Found</title>
<style>
    body {
        width: 35em;
        margin: 0 auto;
        font-family: Tahoma, Verdana, Arial, sans-serif;
    }
</style>
</head>
<body>
<h1>The page you requested was not found.</h1>
<p>Sorry, the page you are looking for is currently unavailable.<br/>
Please try again later.</p>
<p>The server is powered by <a href="https://github.com/fatedier/frp">frp</a>.</p>
<p><em>Faithfully yours, frp.</em></p>
</body>
</html>
"""

_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def _reason(status: int, fallback: bytes = b"") -> bytes:
    """The status text Go writes (its own table, whatever the backend said)."""
    return _PHRASES.get(status, fallback)


_TEXT = [(b"Content-Type", b"text/plain; charset=utf-8")]


class State(enum.Enum):
    HEAD = "head"
    WAITING = "waiting"
    FORWARDING = "forwarding"
    LOCAL = "local"
    TUNNEL = "tunnel"
    CLOSED = "closed"


@implementer(IPushProducer)
class _Valve:
    """Pauses a transport while any reason holds (our own waits, a full consumer)."""

    def __init__(self, transport) -> None:
        self._transport = transport
        self._reasons: Set[str] = set()

    def hold(self, reason: str) -> None:
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons.add(reason)

    def release(self, reason: str) -> None:
        if reason in self._reasons:
            self._reasons.discard(reason)
            if not self._reasons:
                self._transport.resumeProducing()

    def releaseAll(self) -> None:
        if self._reasons:
            self._reasons.clear()
            self._transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.hold("consumer")

    def resumeProducing(self) -> None:
        self.release("consumer")

    def stopProducing(self) -> None:
        """The consumer closed; its own connectionLost ends the exchange."""


class HTTPVhost(Factory):
    """The HTTP vhost of one frps: route table, settings, live user connections.

    :param clock: the reactor's clock (timers).
    :param port: the vhost port (for NewProxyResp addresses; 80 is left out as frp does).
    :param subdomainHost: frps ``subdomain_host``.
    :param responseTimeout: ``vhost_http_timeout``: seconds to wait for a response head.
    :param custom404Page: ``custom_404_page``, a file read at each 404 (frp's page if unreadable).
    """

    noisy = False

    def __init__(self, clock, port: int, subdomainHost: str = "", responseTimeout: float = 60.0,
                 custom404Page: str = "") -> None:
        self.clock = clock
        self.port = port
        self.subdomainHost = subdomainHost
        self.responseTimeout = responseTimeout
        self.custom404Page = custom404Page
        self.routes: RouteTable[HTTPProxy] = RouteTable()
        self._connections: Set["HTTPUserConnection"] = set()

    def buildProtocol(self, addr) -> "HTTPUserConnection":
        return HTTPUserConnection(self)

    def canonicalAddr(self, domain: str) -> str:
        return domain if self.port == 80 else f"{domain}:{self.port}"

    def notFoundPage(self) -> bytes:
        if self.custom404Page:
            try:
                with open(self.custom404Page, "rb") as f:
                    return f.read()
            except OSError as e:
                log.warn("read custom 404 page error: {error}", error=e)
        return NOT_FOUND_PAGE

    def closeConnections(self) -> "Deferred[None]":
        """Close every user connection; fires when they are closed."""
        waits = []
        for conn in list(self._connections):
            waits.append(conn.closed.wait())
            conn.transport.abortConnection()
        d = DeferredList(waits, consumeErrors=True)
        d.addCallback(lambda _: None)
        return d


class HTTPUserConnection(SwitchableProtocol):
    """One user connection to the HTTP vhost (see the module docstring for its states)."""

    def __init__(self, vhost: HTTPVhost) -> None:
        super().__init__(bufferLimit=None)
        self.vhost = vhost
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.state = State.HEAD
        self.closed = Event()
        self._valve: Optional[_Valve] = None
        self._headTimer = LazyTimer(vhost.clock, self._headTimeout)
        self._responseTimer = LazyTimer(vhost.clock, self._responseTimeout)
        self._backend: Optional[Backend] = None
        self._backendValve: Optional[_Valve] = None
        self._proxy: Optional[HTTPProxy] = None
        self._waiting: Optional[Deferred] = None
        self._request: Optional[h11.Request] = None
        self._requestDone = False
        self._responseStarted = False
        self._responseDone = False
        self._pumping = False

    # -- connection --------------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.vhost._connections.add(self)
        self._valve = _Valve(self.transport)
        self._headTimer.start(HEADER_TIMEOUT)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        if self.state is State.CLOSED:
            return
        self.h11.receive_data(data)
        self._pump()

    def readConnectionLost(self) -> None:
        if self.switchedTo is not None:
            super().readConnectionLost()
            return
        if self.state is State.CLOSED:
            return
        self.h11.receive_data(b"")
        self._pump()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.vhost._connections.discard(self)
        if self.switchedTo is not None:
            super().connectionLost(reason)
        else:
            self.state = State.CLOSED
            self._cancelTimers()
            if self._waiting is not None:
                self._waiting.cancel()
            self._detach(reusable=False)
        self.closed.fire()

    def _close(self, abort: bool = False) -> None:
        self.state = State.CLOSED
        self._cancelTimers()
        self._detach(reusable=False)
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    # -- timers ------------------------------------------------------------------------------
    def _headTimeout(self) -> None:
        log.info("closing http connection from {peer}: no request head within {t} s", peer=self._peer(),
                 t=HEADER_TIMEOUT)
        self._close(abort=True)

    def _cancelTimers(self) -> None:
        self._headTimer.cancel()
        self._responseTimer.cancel()

    def _peer(self) -> str:
        peer = self.transport.getPeer()
        return f"{getattr(peer, 'host', '?')}:{getattr(peer, 'port', '?')}"

    # -- reading requests --------------------------------------------------------------------
    def _pump(self) -> None:
        """Take request events while the current state can use them (not re-entrant: a call
        made while pumping is covered by the running loop)."""
        if self._pumping:
            return
        self._pumping = True
        try:
            self._pumpEvents()
        finally:
            self._pumping = False

    def _pumpEvents(self) -> None:
        while self.state in (State.HEAD, State.FORWARDING, State.LOCAL) and self.switchedTo is None:
            if self.state is State.FORWARDING and self._requestDone:
                break
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self._badRequest(e)
                return
            if event is h11.NEED_DATA:
                self._valve.release("wait")
                return
            if event is h11.PAUSED:
                break
            if isinstance(event, h11.ConnectionClosed):
                self._close()
                return
            if isinstance(event, h11.Request):
                self._onRequest(event)
            elif isinstance(event, h11.Data):
                if self.state is State.FORWARDING:
                    self._backend.send(event)
            elif isinstance(event, h11.EndOfMessage):
                self._requestDone = True
                if self.state is State.FORWARDING:
                    self._backend.send(h11.EndOfMessage())
                    self._startResponseTimer()
                self._maybeFinish()
        if self.state is not State.CLOSED and self.switchedTo is None and self.h11.trailing_data[0]:
            # Bytes we cannot take yet (a body while waiting for a backend, a pipelined
            # request) wait in h11's buffer: read no more meanwhile.  Pausing only then, not
            # for every request, saves two epoll changes per request on the usual client
            # that sends its next request after the response.
            self._valve.hold("wait")

    def _badRequest(self, error: h11.RemoteProtocolError) -> None:
        status = error.error_status_hint
        reason = b"Request Header Fields Too Large" if status == 431 else b"Bad Request"
        if status not in (400, 431):
            status, reason = 400, b"Bad Request"
        # h11's message may quote the offending line: keep the log line bounded.
        log.info("closing http connection from {peer}: {error}", peer=self._peer(), error=str(error)[:200])
        if self.state is State.HEAD:
            self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\n\r\n%d %s" % (status, reason, status, reason))
            self._close()
        else:
            self._close(abort=True)

    def _onRequest(self, request: h11.Request) -> None:
        self._headTimer.stop()
        headers = list(request.headers.raw_items())
        if len(headers) > MAX_HEADERS:
            self._badRequest(h11.RemoteProtocolError("too many headers", error_status_hint=431))
            return
        if first_header(headers, b"content-length") is not None and first_header(headers, b"transfer-encoding"):
            self._badRequest(h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400))
            return
        if request.http_version == b"1.0" and first_header(headers, b"transfer-encoding") is not None:
            # RFC 9112 §6.1: faulty framing (Go ignores the header and would read the body as
            # the next request), so refused like the other smuggling shapes.
            self._badRequest(h11.RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400))
            return
        self._request = request
        self._requestDone = self._responseStarted = self._responseDone = False
        key = route_key(request.method, request.target, headers)
        proxy = self.vhost.routes.lookup(canonical_host(key.host), key.path, key.route_user)
        if proxy is None:
            log.debug("http request for [{host}{path}]: no route", host=key.host, path=key.path)
            self._notFound()
            return
        if not proxy.checkAuth(key.credentials):
            self._answer(401, _TEXT + [(b"X-Content-Type-Options", b"nosniff"),
                                       (b"WWW-Authenticate", b'Basic realm="Restricted"')], b"Unauthorized\n")
            return
        self.state = State.WAITING
        self._proxy = proxy
        peer = self.transport.getPeer()
        chunked = (first_header(headers, b"transfer-encoding") or b"").lower().endswith(b"chunked")
        forwarded = rewrite_request(headers, key, getattr(peer, "host", ""), proxy.request.host_header_rewrite,
                                    proxy.requestHeaders, chunked)
        target = key.target
        if key.absolute:
            # frp's transport forwards a proxy-style request in proxy form, to the Host it sends.
            target = b"http://" + (proxy.request.host_header_rewrite or key.host).encode("latin-1") + target
        outgoing = h11.Request(method=request.method, target=target, headers=forwarded)
        self._waiting = proxy.acquire(peer)
        self._waiting.addCallbacks(lambda backend: self._attach(backend, outgoing),
                                   lambda f: self._noBackend(proxy, f))

    # -- local answers -----------------------------------------------------------------------
    def _notFound(self) -> None:
        self._answer(404, [(b"Content-Type", b"text/html; charset=utf-8")], self.vhost.notFoundPage())

    def _answer(self, status: int, headers, body: bytes) -> None:
        """frps answers the current request itself; the rest of its body is dropped."""
        self._detach(reusable=False)
        self.state = State.LOCAL
        self._responseStarted = self._responseDone = True
        try:
            self.transport.write(self.h11.send(h11.Response(
                status_code=status, reason=_reason(status),
                headers=headers + [(b"Content-Length", b"%d" % len(body))])))
            if body:
                self.transport.write(self.h11.send(h11.Data(data=body)))
            self.transport.write(self.h11.send(h11.EndOfMessage()))
        except h11.LocalProtocolError as e:
            log.warn("cannot answer http request from {peer}: {error}", peer=self._peer(), error=e)
            self._close(abort=True)
            return
        self._maybeFinish()

    # -- the backend -------------------------------------------------------------------------
    def _noBackend(self, proxy: HTTPProxy, failure: Failure) -> None:
        self._waiting = None
        if self.state is not State.WAITING:
            return
        log.warn("do http proxy request [host: {host}] error: {error}", host=proxy.name,
                 error=failure.getErrorMessage())
        self._valve.release("wait")
        self._notFound()
        self._pump()

    def _attach(self, backend: Backend, outgoing: h11.Request) -> None:
        self._waiting = None
        if self.state is not State.WAITING:
            self._proxy.release(backend)
            return
        self._backend = backend
        backend.user = self
        self.state = State.FORWARDING
        self._backendValve = _Valve(backend.transport)
        backend.transport.registerProducer(self._valve, True)
        self.transport.registerProducer(self._backendValve, True)
        try:
            backend.send(outgoing)
        except h11.LocalProtocolError as e:
            self.backendFailed(f"cannot write request: {e}")
            return
        if outgoing.method == b"CONNECT":
            backend.send(h11.EndOfMessage())
            self._tunnel(self.h11.trailing_data[0], b"")
            return
        self._valve.release("wait")
        self._pump()

    def _startResponseTimer(self) -> None:
        if not self._responseStarted and not self._responseTimer.running and self.vhost.responseTimeout > 0:
            self._responseTimer.start(self.vhost.responseTimeout)

    def _responseTimeout(self) -> None:
        log.warn("do http proxy request [host: {name}] error: timeout awaiting response headers",
                 name=self._proxy.name if self._proxy else "")
        self._answer(504, [], b"")
        self._pump()

    def backendEvent(self, event) -> None:
        """A response event from the backend (see :class:`Backend`)."""
        if isinstance(event, (h11.InformationalResponse, h11.Response)):
            self._responseTimer.stop()
        try:
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101 and is_upgrade(list(self._request.headers.raw_items())):
                    self._switch(event)
                    return
                self._send(h11.InformationalResponse(
                    status_code=event.status_code, reason=_reason(event.status_code, event.reason),
                    headers=rewrite_response(list(event.headers.raw_items()), {}, False)))
            elif isinstance(event, h11.Response):
                self._responseStarted = True
                self._send(h11.Response(
                    status_code=event.status_code, reason=_reason(event.status_code, event.reason),
                    headers=rewrite_response(list(event.headers.raw_items()),
                                             self._proxy.request.response_headers, False)))
            elif isinstance(event, h11.Data):
                self._send(event)
            elif isinstance(event, h11.EndOfMessage):
                self._send(h11.EndOfMessage())
                self._responseDone = True
                self._maybeFinish()
            elif isinstance(event, h11.ConnectionClosed):
                self.backendFailed("work connection closed")
        except h11.LocalProtocolError as e:
            self.backendFailed(f"cannot relay response: {e}")

    def _send(self, event) -> None:
        data = self.h11.send(event)
        if data:
            self.transport.write(data)

    def backendFailed(self, reason: str) -> None:
        """The backend broke: answer 404 if the user saw nothing yet, else close."""
        log.warn("do http proxy request [host: {name}] error: {reason}",
                 name=self._proxy.name if self._proxy else "", reason=reason)
        if self._responseStarted:
            self._close(abort=True)
            return
        self._responseTimer.stop()
        self._notFound()
        self._pump()

    def _detach(self, reusable: bool) -> None:
        """Give the backend back to its proxy (pooled if ``reusable`` and it can be)."""
        backend, self._backend = self._backend, None
        if backend is None:
            return
        self.transport.unregisterProducer()
        backend.transport.unregisterProducer()
        self._backendValve.releaseAll()
        self._valve.release("consumer")
        if not reusable:
            backend.user = None
            backend.transport.abortConnection()
        self._proxy.release(backend)

    def _maybeFinish(self) -> None:
        """Both messages complete: release the backend and read the next request."""
        if not (self._requestDone and self._responseDone) or self.state is State.CLOSED:
            return
        self._detach(reusable=self._backend is not None and self._backend.reusable())
        self._proxy = None
        self._request = None
        if self.h11.our_state is h11.MUST_CLOSE or self.h11.their_state is h11.MUST_CLOSE:
            self._close()
            return
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.state = State.HEAD
            self._headTimer.start(HEADER_TIMEOUT)
            self._valve.release("wait")
            self._pump()

    # -- protocol switches -------------------------------------------------------------------
    def _switch(self, informational: h11.InformationalResponse) -> None:
        self._send(h11.InformationalResponse(
            status_code=101, reason=_reason(101),
            headers=rewrite_response(list(informational.headers.raw_items()),
                                     self._proxy.request.response_headers, True)))
        self._tunnel(self.h11.trailing_data[0], self._backend.h11.trailing_data[0])

    def _tunnel(self, userLeftover: bytes, backendLeftover: bytes) -> None:
        """Splice the user and the backend raw, with the bytes each side already read."""
        backend, self._backend = self._backend, None
        self.transport.unregisterProducer()
        backend.transport.unregisterProducer()
        self._backendValve.releaseAll()
        self._valve.releaseAll()
        self._cancelTimers()
        self._proxy.forget(backend)
        backend.user = None
        self.state = State.TUNNEL
        self.hold(userLeftover)
        backend.hold(backendLeftover)
        splice(self, backend)
