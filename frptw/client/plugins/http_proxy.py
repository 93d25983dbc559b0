"""``http_proxy``: an HTTP forward proxy on every work connection (``httpUser``/``httpPassword``).

As frp 0.65's plugin, the first 7 bytes decide:

* ``CONNECT`` (any case): :class:`ConnectTunnel` reads the head
  (:class:`frptw.wire.httpproxy.ConnectHeadReader`), checks ``Proxy-Authorization`` (wrong or
  missing: frp's fixed 407 and close, after 200 ms when credentials were wrong), dials the
  target (10 s; failure: frp's 400 and close), answers ``200 OK`` and splices, with the bytes
  the client sent after its head first.
* anything else: :class:`ForwardProxyConnection`, an HTTP/1.1 server
  (:class:`~frptw.transport.http_front.HTTPFrontConnection`, keep-alive, 64 KiB heads, 60 s head
  timeout) that answers 407 with ``Proxy-Authenticate: Basic`` and forwards each absolute-form
  ``http://`` request to its host on a new connection, proxy headers removed, streaming both
  bodies with backpressure (:class:`~frptw.transport.http_exchange.Exchange`).  A target
  without the ``http`` scheme gets Go's 500 ``unsupported protocol scheme``; a target that
  cannot be reached 500 with Go's dial error.  A CONNECT on such a connection (after another
  request) closes it without an answer: frp's HTTP server never gets to answer one (its
  hijacking handler cannot take over frp's wrapped connection).

frp's ``CONNECT`` path waits for a head for ever; frptw allows 60 s.  Every refusal is one
log line; only that connection is closed.
"""

from typing import Optional

import h11
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError, DNSLookupError
from twisted.internet.interfaces import IAddress
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._dial import DIAL_TIMEOUT, dial, parseAddress
from frptw.config.plugins import HTTPProxyPluginOptions
from frptw.logs import FrpLogger
from frptw.transport.http_exchange import Backend, Exchange, reason
from frptw.transport.http_front import HEADER_TIMEOUT, HTTPFrontConnection
from frptw.transport.http_headers import Headers, first_header
from frptw.transport.sockets import quietFactory, tcpEndpoint
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.wire import httpproxy as wire
from frptw.wire.errors import ProtocolError
from frptw.wire.hostport import join_host_port

#: frp waits this long before answering wrong credentials.
AUTH_FAILURE_DELAY = 0.2
#: Headers of Go's ``http.Error`` answers.
_ERROR_HEADERS: Headers = [(b"Content-Type", b"text/plain; charset=utf-8"), (b"X-Content-Type-Options", b"nosniff")]

_log = FrpLogger(namespace="frptw.client.plugins")


def dialError(host: str, port: int, failure: Failure) -> str:
    """A failed dial in the words of Go's ``net.Dial`` error, which frp's 500 body shows."""
    address = join_host_port(host, port)
    if failure.check(ConnectionRefusedError):
        return f"dial tcp {address}: connect: connection refused"
    if failure.check(DNSLookupError):
        return f"dial tcp: lookup {host}: no such host"
    return f"dial tcp {address}: {failure.getErrorMessage()}"


class _DialPerRequest:
    """The exchange's lender: a new connection to the request's target for each request,
    closed after it (Go's transport would keep it; nobody sees the difference but the target)."""

    def __init__(self, context: PluginContext, host: str, port: int) -> None:
        self._context = context
        self._host = host
        self._port = port
        #: Why the dial failed, as Go's error reads (the body of the 500).
        self.error = ""

    def acquire(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        endpoint = tcpEndpoint(self._context.reactor, self._host, self._port, DIAL_TIMEOUT)
        d = endpoint.connect(quietFactory(lambda: Backend(self._context.reactor, self._context.name)))
        return d.addErrback(self._failed)

    def _failed(self, failure: Failure) -> Failure:
        self.error = dialError(self._host, self._port, failure)
        return failure

    def release(self, backend: Backend) -> None:
        backend.transport.loseConnection()

    def forget(self, backend: Backend) -> None:
        pass


class ConnectTunnel(SwitchableProtocol):
    """One CONNECT tunnel: read the head, check credentials, dial, answer, splice."""

    def __init__(self, plugin: "HTTPProxyPlugin") -> None:
        super().__init__()
        self._plugin = plugin
        self._reader: Optional[wire.ConnectHeadReader] = wire.ConnectHeadReader()
        self._target = ""
        self._timer = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self._plugin.reactor.callLater(HEADER_TIMEOUT, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
        elif self._reader is None:
            self.hold(data)  # dialing, or refused: bounded by the switchable's limit
        else:
            self._readHead(data)

    def _readHead(self, data: bytes) -> None:
        try:
            head = self._reader.feed(data)
        except ProtocolError as e:
            self._refuse(f"bad CONNECT request: {e}", b"")
            return
        if head is None:
            return
        self._reader = None
        cancelCall(self._timer)
        self._target = head.target
        credentials = first_header(head.headers, b"proxy-authorization")
        if not self._plugin.authorized(credentials):
            delay = AUTH_FAILURE_DELAY if wire.proxy_credentials_given(credentials) else 0.0
            self._timer = self._plugin.reactor.callLater(delay, self._refuse, "CONNECT without valid credentials",
                                                         wire.CONNECT_NOT_AUTHORIZED)
            return
        self.hold(head.leftover)
        self._dial()

    def _dial(self) -> None:
        try:
            host, port = parseAddress(self._target)
        except ValueError as e:
            self._failed(Failure(e))
            return
        endpoint = tcpEndpoint(self._plugin.reactor, host, port, DIAL_TIMEOUT)
        dial(endpoint).addCallbacks(self._connected, self._failed)

    def _connected(self, backend: SwitchableProtocol) -> None:
        self.transport.write(wire.CONNECT_ESTABLISHED)
        splice(self, backend)

    def _failed(self, failure: Failure) -> None:
        self._refuse(f"connect to {self._target} error: {failure.getErrorMessage()}", wire.CONNECT_FAILED)

    def _refuse(self, reason: str, answer: bytes) -> None:
        cancelCall(self._timer)
        self._timer = None
        _log.warn("[{name}] http_proxy: {reason}, closing connection", name=self._plugin.name, reason=reason)
        if answer:
            self.transport.write(answer)
        self.transport.loseConnection()

    def _timedOut(self) -> None:
        self._timer = None
        _log.warn("[{name}] http_proxy: no CONNECT head within {t:g} s, closing connection", name=self._plugin.name,
                  t=HEADER_TIMEOUT)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        cancelCall(self._timer)
        super().connectionLost(reason)


class ForwardProxyConnection(HTTPFrontConnection):
    """A work connection of an ``http_proxy`` proxy: sniffs for CONNECT, else serves HTTP."""

    def __init__(self, plugin: "HTTPProxyPlugin") -> None:
        super().__init__(plugin.reactor)
        self._plugin = plugin
        self._sniffed: Optional[bytes] = b""
        self._denial = None
        #: The lender of the request being forwarded (it knows why a dial failed).
        self._lender: Optional[_DialPerRequest] = None

    def dataReceived(self, data: bytes) -> None:
        if self._sniffed is not None and self.switchedTo is None:
            data = self._sniffed + data
            if len(data) < 7:
                self._sniffed = data
                return
            self._sniffed = None
            if data[:7].upper() == b"CONNECT":
                self.valve.releaseAll()
                self._end()  # this connection will not parse HTTP: no head timer
                self.switchTo(ConnectTunnel(self._plugin), data)
                return
        super().dataReceived(data)

    def readConnectionLost(self) -> None:
        if self._sniffed:
            data, self._sniffed = self._sniffed, None
            super().dataReceived(data)
        super().readConnectionLost()

    def connectionLost(self, reason: Failure) -> None:
        cancelCall(self._denial)
        super().connectionLost(reason)


    def handleRequest(self, request: h11.Request, headers: Headers, chunked: bool) -> None:
        credentials = first_header(headers, b"proxy-authorization")
        if not self._plugin.authorized(credentials):
            delay = AUTH_FAILURE_DELAY if wire.proxy_credentials_given(credentials) else 0.0
            self._denial = self._plugin.reactor.callLater(delay, self._deny)
            return
        if request.method == b"CONNECT":
            _log.warn("[{name}] http_proxy: CONNECT after another request on one connection, closing it as frp does",
                      name=self._plugin.name)
            self._close()
            return
        try:
            target = wire.absolute_target(request.target)
            head = h11.Request(method=request.method, target=target.path,
                               headers=wire.forward_headers(headers, target.authority))
        except wire.UnsupportedScheme as e:
            self.answer(500, _ERROR_HEADERS, str(e).encode() + b"\n")
            return
        except h11.LocalProtocolError as e:
            _log.warn("[{name}] http_proxy: cannot forward request: {error}", name=self._plugin.name, error=e)
            self.answer(400, _ERROR_HEADERS, b"Bad Request\n")
            return
        self._lender = _DialPerRequest(self._plugin.context, target.host, target.port)
        self.forward(Exchange(self, self._lender, self._plugin.name, head, False, {}, 0, failStatus=500))

    def _deny(self) -> None:
        self._denial = None
        _log.info("[{name}] http_proxy: request without valid credentials, answered 407", name=self._plugin.name)
        self.answer(407, [(b"Proxy-Authenticate", b"Basic")], b"")

    def answerFailed(self, status: int) -> None:
        text = self._lender.error.encode() if self._lender is not None and self._lender.error else reason(status)
        self.answer(status, _ERROR_HEADERS, text + b"\n")


@implementer(IClientPlugin)
class HTTPProxyPlugin:
    type = "http_proxy"

    def __init__(self, options: HTTPProxyPluginOptions, context: PluginContext) -> None:
        self._user = options.http_user
        self._password = options.http_password
        self.context = context

    @property
    def name(self) -> str:
        return self.context.name

    @property
    def reactor(self):
        return self.context.reactor

    def authorized(self, credentials: Optional[bytes]) -> bool:
        return wire.proxy_authorized(credentials, self._user, self._password)

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        conn.switchTo(ForwardProxyConnection(self))

    def close(self) -> "Deferred[None]":
        return succeed(None)


def build(options: HTTPProxyPluginOptions, context: PluginContext) -> HTTPProxyPlugin:
    return HTTPProxyPlugin(options, context)
