"""frps's HTTP vhost (``vhost_http_port``): an HTTP/1.1 reverse proxy in front of http proxies.

Port sharing (``vhost_http_port == bind_port``): the bind-port sniffer hands a connection
that starts with an HTTP method to ``HTTPVhost.buildProtocol(addr)`` and switches it to the
returned protocol with the bytes it peeked (``SwitchableProtocol.switchTo(proto, leftover)``).
The service's vhost is ``FrpServerService.httpVhost`` (``ProxyRegistry.httpVhost``).

Theory of operation (wire-protocol.md §10.2).  Each user connection is an
:class:`HTTPUserConnection` parsing requests with h11 (server role).  Requests are handled one
at a time, each routed on its own (keep-alive requests may reach different proxies).  The
connection is in one of these :class:`ConnectionState` values:

``HEAD``
    Reading a request head; at most :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS` headers,
    within :data:`HEADER_TIMEOUT` seconds.  Bad input is answered 400/431 and the connection
    closed; a request with both Content-Length and Transfer-Encoding, or an HTTP/1.0 one with
    Transfer-Encoding, is refused (smuggling).  An unknown route is answered 404 (or
    ``custom_404_page``), failed Basic auth 401.
``EXCHANGE``
    The request was routed to an http proxy: an :class:`~frptw.server.vhost.http_exchange.Exchange`
    owns it until its response is complete (see that module for its own states).  The
    connection feeds it the request body while it forwards one, and keeps the bytes it cannot
    take yet (a body while no work connection is lent, a pipelined request) in h11's buffer,
    reading no more meanwhile.
``LOCAL``
    frps answered the request itself (404, 401, or for a failed exchange 404 / 504) before its
    body was read: the rest of the body is read and dropped.
``TUNNEL``
    After a 101 from the backend, or for CONNECT, both connections are spliced raw.

When a request and its response are complete the connection reads the next request (``HEAD``)
unless either side asked to close.
"""

import enum
from typing import List, Optional, Set, Tuple, Union

import h11
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.server._event import Event
from frptw.server.vhost.http_exchange import Exchange, ExchangeState, Valve, reason
from frptw.server.vhost.http_proxy import HTTPProxy, check_auth
from frptw.server.vhost.http_rewrite import first_header, is_upgrade, rewrite_request, route_key
from frptw.server.vhost.lazytimer import LazyTimer
from frptw.server.vhost.routegroup import RouteGroup, RouteGroups
from frptw.server.vhost.routes import NOT_FOUND_PAGE, RouteTable, canonical_addr, canonical_host
from frptw.transport.addresses import describePeer
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol

log = FrpLogger()

#: Request-head limits and the header read timeout (Go's server in frps: 60 s).
MAX_HEAD = 64 * 1024
MAX_HEADERS = 128
HEADER_TIMEOUT = 60.0

_TEXT = [(b"Content-Type", b"text/plain; charset=utf-8")]


class ConnectionState(enum.Enum):
    """Where a user connection is (see the module docstring)."""

    HEAD = "head"
    EXCHANGE = "exchange"
    LOCAL = "local"
    TUNNEL = "tunnel"
    CLOSED = "closed"


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
        self.routes: RouteTable[Union[HTTPProxy, RouteGroup]] = RouteTable()
        #: http load-balancing groups; a group is the target of its route.
        self.groups = RouteGroups(self.routes)
        self._connections: Set["HTTPUserConnection"] = set()

    def buildProtocol(self, addr) -> "HTTPUserConnection":
        return HTTPUserConnection(self)

    def canonicalAddr(self, domain: str) -> str:
        return canonical_addr(domain, self.port)

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
        self.state = ConnectionState.HEAD
        self.closed = Event()
        self.valve: Optional[Valve] = None
        self.exchange: Optional[Exchange] = None
        self._headTimer = LazyTimer(vhost.clock, self._headTimeout)

    # -- connection --------------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.vhost._connections.add(self)
        self.valve = Valve(self.transport)
        self._headTimer.start(HEADER_TIMEOUT)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        if self.state is ConnectionState.CLOSED:
            return
        self.h11.receive_data(data)
        self._pump()

    def readConnectionLost(self) -> None:
        if self.switchedTo is not None:
            super().readConnectionLost()
            return
        if self.state is ConnectionState.CLOSED:
            return
        self.h11.receive_data(b"")
        self._pump()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.vhost._connections.discard(self)
        if self.switchedTo is not None:
            super().connectionLost(reason)
        else:
            self._end()
        self.closed.fire()

    def _end(self) -> None:
        self.state = ConnectionState.CLOSED
        self._headTimer.cancel()
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.abandon()

    def _close(self, abort: bool = False) -> None:
        self._end()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def _headTimeout(self) -> None:
        log.info("closing http connection from {peer}: no request head within {t} s", peer=describePeer(self.transport),
                 t=HEADER_TIMEOUT)
        self._close(abort=True)

    # -- reading requests --------------------------------------------------------------------
    def _pump(self) -> None:
        """Take request events while the current state can use them.

        Only the user's bytes and the exchange's own reports (:meth:`exchangeMoved`) lead
        here, and what this loop calls never calls back into it."""
        while True:
            state = self.state
            if not (state is ConnectionState.HEAD or state is ConnectionState.LOCAL
                    or (state is ConnectionState.EXCHANGE and self.exchange.forwarding)):
                break
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self._badRequest(e)
                return
            if event is h11.NEED_DATA:
                self.valve.release("wait")
                return
            if event is h11.PAUSED:
                break
            eventType = type(event)
            if eventType is h11.Data:
                if state is ConnectionState.EXCHANGE:
                    self.exchange.requestData(event.data)
                    self._settle()
            elif eventType is h11.EndOfMessage:
                if state is ConnectionState.EXCHANGE:
                    self.exchange.requestEnd()
                    self._settle()
                else:
                    self._nextRequest()
            elif eventType is h11.Request:
                self._onRequest(event)
            elif eventType is h11.ConnectionClosed:
                self._close()
                return
        if self.state is not ConnectionState.CLOSED and self.switchedTo is None and self.h11.trailing_data[0]:
            # Bytes we cannot take yet (a body while waiting for a work connection, a
            # pipelined request) wait in h11's buffer: read no more meanwhile.  Pausing only
            # then, not for every request, saves two epoll changes per request on the usual
            # client that sends its next request after the response.
            self.valve.hold("wait")

    def _badRequest(self, error: h11.RemoteProtocolError) -> None:
        status = error.error_status_hint
        text = b"Request Header Fields Too Large" if status == 431 else b"Bad Request"
        if status not in (400, 431):
            status, text = 400, b"Bad Request"
        # h11's message may quote the offending line: keep the log line bounded.
        log.info("closing http connection from {peer}: {error}", peer=describePeer(self.transport), error=str(error)[:200])
        if self.state is ConnectionState.HEAD:
            self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\n\r\n%d %s" % (status, text, status, text))
            self._close()
        else:
            self._close(abort=True)

    def _onRequest(self, request: h11.Request) -> None:
        self._headTimer.stop()
        headers: List[Tuple[bytes, bytes]] = request.headers.raw_items()
        if len(headers) > MAX_HEADERS:
            self._badRequest(h11.RemoteProtocolError("too many headers", error_status_hint=431))
            return
        transferEncoding = first_header(headers, b"transfer-encoding")
        if transferEncoding is not None and first_header(headers, b"content-length") is not None:
            self._badRequest(h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400))
            return
        if request.http_version == b"1.0" and transferEncoding is not None:
            # RFC 9112 §6.1: faulty framing (Go ignores the header and would read the body as
            # the next request), so refused like the other smuggling shapes.
            self._badRequest(h11.RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400))
            return
        key = route_key(request.method, request.target, headers)
        proxy = self.vhost.routes.lookup(canonical_host(key.host), key.path, key.route_user)
        if proxy is None:
            log.debug("http request for [{host}{path}]: no route", host=key.host, path=key.path)
            self._notFound()
            return
        if not check_auth(proxy.request, key.credentials):
            self._answer(401, _TEXT + [(b"X-Content-Type-Options", b"nosniff"),
                                       (b"WWW-Authenticate", b'Basic realm="Restricted"')], b"Unauthorized\n")
            return
        peer = self.transport.getPeer()
        chunked = (transferEncoding or b"").lower().endswith(b"chunked")
        forwarded = rewrite_request(headers, key, getattr(peer, "host", ""), proxy.request.host_header_rewrite,
                                    proxy.request.headers, chunked)
        target = key.target
        if key.absolute:
            # frp's transport forwards a proxy-style request in proxy form, to the Host it sends.
            target = b"http://" + (proxy.request.host_header_rewrite or key.host).encode("latin-1") + target
        self.state = ConnectionState.EXCHANGE
        member = proxy.choose()  # a group's route: its next member
        self.exchange = Exchange(self, member.pool, member.name,
                                 h11.Request(method=request.method, target=target, headers=forwarded),
                                 is_upgrade(headers), proxy.request.response_headers, self.vhost.responseTimeout)
        self.exchange.start(peer)
        self._settle()

    # -- the exchange ------------------------------------------------------------------------
    def writeResponse(self, event) -> None:
        """Write a response event from the exchange (h11 checks it fits the request)."""
        data = self.h11.send(event)
        if data:
            self.transport.write(data)

    def exchangeMoved(self) -> None:
        """The exchange moved by itself: act on its state, then read what it allows."""
        if self.state is ConnectionState.EXCHANGE:
            self._settle()
            if self.state is ConnectionState.HEAD and self.h11.trailing_data == (b"", False):
                # The usual end of a keep-alive exchange: the client sends its next request
                # only after this response, so there is nothing to parse yet.  Asking h11
                # anyway costs one of the dozen h11 calls of a request (bench_vhost_exchange).
                return
            self._pump()

    def _settle(self) -> None:
        """Act on an exchange that ended: next request, a local answer, or the tunnel."""
        exchange = self.exchange
        state = exchange.state
        if state is ExchangeState.COMPLETE:
            self.exchange = None
            self._nextRequest()
        elif state is ExchangeState.FAILED:
            self.exchange = None
            if exchange.answer is None:
                self._close(abort=True)
            elif exchange.answer == 504:
                self._answer(504, [], b"")
            else:
                self._notFound()
        elif state is ExchangeState.SWITCHED:
            self.exchange = None
            self._tunnel(exchange.backend, exchange.backendLeftover)

    def _tunnel(self, backend: SwitchableProtocol, backendLeftover: bytes) -> None:
        """Splice the user and the work connection raw, with the bytes each side already read."""
        self.valve.releaseAll()
        self._headTimer.cancel()
        self.state = ConnectionState.TUNNEL
        self.hold(self.h11.trailing_data[0])
        backend.hold(backendLeftover)
        splice(self, backend)

    # -- local answers -----------------------------------------------------------------------
    def _notFound(self) -> None:
        self._answer(404, [(b"Content-Type", b"text/html; charset=utf-8")], self.vhost.notFoundPage())

    def _answer(self, status: int, headers, body: bytes) -> None:
        """frps answers the current request itself; the rest of its body is dropped."""
        self.state = ConnectionState.LOCAL
        try:
            self.writeResponse(h11.Response(status_code=status, reason=reason(status),
                                            headers=headers + [(b"Content-Length", b"%d" % len(body))]))
            if body:
                self.writeResponse(h11.Data(data=body))
            self.writeResponse(h11.EndOfMessage())
        except h11.LocalProtocolError as e:
            log.warn("cannot answer http request from {peer}: {error}", peer=describePeer(self.transport), error=e)
            self._close(abort=True)
            return
        if self.h11.their_state is not h11.SEND_BODY:
            self._nextRequest()

    def _nextRequest(self) -> None:
        """The request and its response are complete: read the next one, or close."""
        h = self.h11
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            self._close()
            return
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self.state = ConnectionState.HEAD
            self._headTimer.start(HEADER_TIMEOUT)
            self.valve.release("wait")
