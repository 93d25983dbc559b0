"""What frps does with a connection to its bind port, up to its first frp message.

Theory of operation (wire-protocol.md §2.1, §3.1).  Every accepted TCP connection starts as a
:class:`BindConnection`, which waits (10 s at most) for its first bytes and routes on them, in
frp's order (a shared vhost or the websocket must see 10 bytes within those 10 s; frp itself
has a deadline for each of its phases from the first byte on):

* ``GET /~!frp``: frp's websocket transport (bytes that may still become this prefix are
  waited for): the upgrade is served (:func:`frptw.transport.websocket.serverProtocol`) and the
  stream inside goes through the steps below, as a TCP connection would (Go frps serves it on
  the bind port only; on a vhost port of its own such a request is an ordinary HTTP request);
* when the HTTPS vhost shares the bind port (``host.sharedHTTPS``), ``0x16``: an HTTPS vhost
  connection, switched to ``sharedHTTPS.buildProtocol(peer)`` with the bytes read;
* when the HTTP vhost shares it (``host.sharedHTTP``), the first three bytes of an HTTP method
  (``GET``, ``POS``, ...): likewise to the HTTP vhost;
* ``0x17``: frp's custom TLS first byte; it is consumed and TLS starts on what follows;
* ``0x16``: a TLS ClientHello; TLS starts with it;
* anything else: plain frp, refused when the server requires TLS (``transport.tls.force`` or a
  trusted CA file).

A TLS handshake must complete within 10 s of starting (:data:`TLS_HANDSHAKE_TIMEOUT`), so a
half-open handshake is closed within 20 s of the connect; what follows starts (and its own
deadlines run) once it is complete.  Above that byte stream there is
either a yamux session (``transport.tcp_mux``, frps is the yamux server), which must see its
first stream within 10 s, and where every stream the client opens is one *logical
connection*, or, without mux, the stream is itself the one logical connection.  A logical connection is a
:class:`LogicalConnection`: it reads exactly one frp message (10 s at most) and hands the
connection, the message and the bytes after it to the host's ``dispatch``, which turns it into
a control session (``Login``), a pooled work connection (``NewWorkConn``) or a visitor
connection (``NewVisitorConn``).  A pooled work connection stays a LogicalConnection (a
:class:`~frptw.transport.switch.SwitchableProtocol`, holding any early bytes) until a user
connection needs it.

Bad input (garbage, a client that never speaks, an oversized frame) closes only that
connection, with one log line.
"""

from typing import Callable, Optional
from typing import Protocol as TypingProtocol

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IHandshakeListener, IProtocol, IProtocolFactory, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.logs import FrpLogger
from frptw.server._event import Event
from frptw.transport.addresses import describePeer
from frptw.transport.preamble import PreambleProtocol
from frptw.transport.splice import widenWriteBuffer
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.transport.tls import startServerTLS
from frptw.transport.yamux import YamuxSession
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import Message

#: Seconds frps waits for the first bytes of a connection (TLS detection).
FIRST_BYTE_TIMEOUT = 10.0
#: Bytes that must arrive within FIRST_BYTE_TIMEOUT: frp's bind-port sniffer reads 10 before
#: anything else (wire-protocol.md §2.1), so a client that sends fewer and stalls is dropped.
FIRST_BYTES = 10
#: Seconds frps waits for the first message of a logical connection.
FIRST_MESSAGE_TIMEOUT = 10.0
#: Seconds a TLS handshake on the bind port may take once it has started (after the first
#: bytes).  frp has none with tcpMux (its yamux reads the handshake without a deadline), so a
#: ClientHello cut short lingers until a keep-alive ping times out, or for ever when pings are
#: off; here such a connection is closed at most FIRST_BYTE_TIMEOUT + this after it opened.
TLS_HANDSHAKE_TIMEOUT = 10.0
#: Seconds frps's yamux session waits for the client to open its first stream (frpc opens its
#: control stream at once); without it a session that opens none would be kept for ever.
FIRST_STREAM_TIMEOUT = 10.0

CUSTOM_TLS_FIRST_BYTE = 0x17
TLS_HANDSHAKE_BYTE = 0x16
#: What frpc's websocket transport sends first (``GET /~!frp`` upgrade request).
WEBSOCKET_PREFIX = b"GET /~!frp"
#: First three bytes of the HTTP methods the shared HTTP vhost takes (frp's list).
HTTP_METHOD_PREFIXES = (b"GET", b"HEA", b"POS", b"PUT", b"DEL", b"CON", b"OPT", b"TRA", b"PAT")

log = FrpLogger()


class ConnectionHost(TypingProtocol):
    """What bind-port connections need from the server (:class:`frptw.server.dispatch.Dispatcher`)."""

    clock: IReactorTime
    tcpMux: bool
    muxKeepaliveInterval: float
    tlsRequired: bool
    #: The HTTPS / HTTP vhost when it shares the bind port, else None (a host without port
    #: sharing may leave them out).
    sharedHTTPS: Optional[IProtocolFactory]
    sharedHTTP: Optional[IProtocolFactory]

    def tlsContextFactory(self) -> object:
        """The server's TLS settings (made once)."""

    def connectionOpened(self, conn: "BindConnection") -> None:
        """Track an accepted connection (so stopping the server can close it)."""

    def connectionClosed(self, conn: "BindConnection") -> None:
        """Forget a connection that has closed."""

    def dispatch(self, conn: "LogicalConnection", message: Message, leftover: bytes) -> None:
        """Take over a logical connection whose first message was ``message``."""


def logTLSFailure(transport, reason: Failure) -> None:
    """One log line when a connection ended because its TLS handshake (or record) failed:
    nothing above TLS saw a byte, so nobody else would say why it closed."""
    if reason.check(SSL.Error):
        log.info("closing connection from {peer}: TLS error: {error}", peer=describePeer(transport),
                 error=reason.getErrorMessage())


class _ServerSession(YamuxSession):
    """frps's yamux session: the same, plus a deadline for the client's first stream and the
    line saying why a TLS handshake failed."""

    def __init__(self, host: "ConnectionHost") -> None:
        super().__init__(
            isClient=False,
            clock=host.clock,
            acceptFactory=LogicalConnectionFactory(host, self._streamOpened),
            keepaliveInterval=host.muxKeepaliveInterval,
        )
        self._firstStream: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._firstStream = self._clock.callLater(FIRST_STREAM_TIMEOUT, self._noStream)

    def _noStream(self) -> None:
        log.info("closing connection from {peer}: no yamux stream opened in {t:.0f} s",
                 peer=describePeer(self.transport), t=FIRST_STREAM_TIMEOUT)
        self.transport.abortConnection()

    def _streamOpened(self) -> None:
        cancelCall(self._firstStream)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        cancelCall(self._firstStream)
        logTLSFailure(self.transport, reason)
        super().connectionLost(reason)


@implementer(IHandshakeListener)
class _HandshakeDeadline(SwitchableProtocol):
    """What sits right above frps's TLS while it handshakes: closes the connection when the
    handshake is not complete within :data:`TLS_HANDSHAKE_TIMEOUT`, and once it is, switches
    to frp (``above()``, whose own deadlines start then)."""

    def __init__(self, clock: IReactorTime, above: Callable[[], IProtocol]) -> None:
        super().__init__()
        self._clock = clock
        self._above = above
        self._deadline: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline = self._clock.callLater(TLS_HANDSHAKE_TIMEOUT, self._notCompleted)

    def _notCompleted(self) -> None:
        log.info("closing connection from {peer}: TLS handshake not completed in {t:.0f} s",
                 peer=describePeer(self.transport), t=TLS_HANDSHAKE_TIMEOUT)
        self.transport.abortConnection()

    def handshakeCompleted(self) -> None:
        cancelCall(self._deadline)
        self.switchTo(self._above())

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        cancelCall(self._deadline)
        if self.switchedTo is None:
            logTLSFailure(self.transport, reason)
        super().connectionLost(reason)


_UNDECIDED = object()
_WEBSOCKET = object()


class BindConnection(SwitchableProtocol):
    """One TCP connection to the bind port: TLS detection, then yamux or one logical conn."""

    def __init__(self, host: ConnectionHost) -> None:
        super().__init__()
        self._host = host
        self._deadline: Optional[IDelayedCall] = None
        self._closed = Event()
        self._received = 0
        self._sniffed = b""
        self._refused = False
        self._sharedHTTPS: Optional[IProtocolFactory] = getattr(host, "sharedHTTPS", None)
        self._sharedHTTP: Optional[IProtocolFactory] = getattr(host, "sharedHTTP", None)

    def connectionMade(self) -> None:
        super().connectionMade()
        self._host.connectionOpened(self)
        self._deadline = self._host.clock.callLater(FIRST_BYTE_TIMEOUT, self._noFirstByte)

    def _noFirstByte(self) -> None:
        if self._received:
            log.info("closing connection from {peer}: only {n} bytes received in {t:.0f} s",
                     peer=describePeer(self.transport), n=self._received, t=FIRST_BYTE_TIMEOUT)
        else:
            log.info("closing connection from {peer}: nothing received in {t:.0f} s",
                     peer=describePeer(self.transport), t=FIRST_BYTE_TIMEOUT)
        self.transport.abortConnection()

    def _count(self, data: bytes) -> None:
        if self._received < FIRST_BYTES:
            self._received += len(data)
            if self._received >= FIRST_BYTES:
                cancelCall(self._deadline)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self._count(data)
            super().dataReceived(data)
            return
        if self._refused:
            return
        self._count(data)
        data, self._sniffed = self._sniffed + data, b""
        vhost = self._vhostFor(data)
        if vhost is _UNDECIDED:
            self._sniffed = data  # shorter than the websocket prefix: bounded
            return
        if vhost is not None and vhost is not _WEBSOCKET:
            self.switchTo(vhost.buildProtocol(self.transport.getPeer()), data)
            return
        widenWriteBuffer(self.transport)  # a connection from frpc, not a user's
        if vhost is _WEBSOCKET:
            from frptw.transport.websocket import serverProtocol  # autobahn: loaded by the first upgrade

            inner = _WebSocketStream(self._host)
            ws = serverProtocol(inner)
            ws.opened.addErrback(_upgradeFailed, self.transport)
            self.switchTo(ws, data)
            return
        self._refused = not serveFrp(self._host, self, data)
        cancelCall(self._deadline)  # frp's own deadlines (TLS, first stream or message) run now

    def _vhostFor(self, data: bytes):
        """Where frp's sniffing rules send a connection that began with ``data``: a shared
        vhost factory, None (frp itself), ``_WEBSOCKET``, or ``_UNDECIDED`` (need more bytes)."""
        if WEBSOCKET_PREFIX.startswith(data):
            return _WEBSOCKET if len(data) == len(WEBSOCKET_PREFIX) else _UNDECIDED
        if data.startswith(WEBSOCKET_PREFIX):
            return _WEBSOCKET
        if self._sharedHTTPS is not None and data[0] == TLS_HANDSHAKE_BYTE:
            return self._sharedHTTPS
        if self._sharedHTTP is not None:
            if len(data) < 3 and any(method.startswith(data) for method in HTTP_METHOD_PREFIXES):
                return _UNDECIDED
            if data[:3] in HTTP_METHOD_PREFIXES:
                return self._sharedHTTP
        return None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        cancelCall(self._deadline)
        self._host.connectionClosed(self)
        self._closed.fire()

    def whenClosed(self) -> "Deferred[None]":
        """Fires once the TCP connection has closed."""
        return self._closed.wait()


def serveFrp(host: ConnectionHost, proto: SwitchableProtocol, data: bytes) -> bool:
    """Serve frp on ``proto``'s byte stream (a TCP connection, or the stream inside a websocket),
    whose first bytes ``data`` were read: TLS by its first byte, then yamux or one logical
    connection (wire-protocol.md §2.1 steps 3 and 4).  False if the connection was refused
    (plain, but the server requires TLS)."""
    first = data[0]

    def frp() -> IProtocol:
        return _ServerSession(host) if host.tcpMux else LogicalConnection(host)

    if first in (CUSTOM_TLS_FIRST_BYTE, TLS_HANDSHAKE_BYTE):
        hello = data[1:] if first == CUSTOM_TLS_FIRST_BYTE else data
        startServerTLS(proto, host.tlsContextFactory(), hello, _HandshakeDeadline(host.clock, frp))
    elif host.tlsRequired:
        log.warn("refusing plain connection from {peer}: this server requires TLS", peer=describePeer(proto.transport))
        proto.transport.abortConnection()
        return False
    else:
        proto.switchTo(frp(), data)
    return True


def _upgradeFailed(failure: Failure, transport) -> None:
    log.info("closing connection from {peer}: {error}", peer=describePeer(transport), error=failure.getErrorMessage())


class _WebSocketStream(SwitchableProtocol):
    """The byte stream inside frps's websocket endpoint: waits (10 s at most) for its first
    byte, then is served like a TCP connection (:func:`serveFrp`)."""

    def __init__(self, host: ConnectionHost) -> None:
        super().__init__()
        self._host = host
        self._deadline: Optional[IDelayedCall] = None
        self._refused = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline = self._host.clock.callLater(FIRST_BYTE_TIMEOUT, self._noFirstByte)

    def _noFirstByte(self) -> None:
        log.info("closing websocket connection from {peer}: nothing received in {t:.0f} s",
                 peer=describePeer(self.transport), t=FIRST_BYTE_TIMEOUT)
        self.transport.abortConnection()

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
            return
        if not self._refused:
            cancelCall(self._deadline)
            self._refused = not serveFrp(self._host, self, data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        cancelCall(self._deadline)
        super().connectionLost(reason)


class LogicalConnectionFactory(Factory):
    """Builds a logical connection for each yamux stream the client opens (and tells
    ``opened``, when given, each time)."""

    def __init__(self, host: ConnectionHost, opened: Optional[Callable[[], None]] = None) -> None:
        self._host = host
        self._opened = opened

    def buildProtocol(self, addr) -> "LogicalConnection":
        if self._opened is not None:
            self._opened()
        return LogicalConnection(self._host)


class LogicalConnection(PreambleProtocol):
    """A logical connection (a yamux stream, or a whole plain/TLS connection) that reads its
    first frp message and is then dispatched by it.

    ``onLost`` is called if the connection closes before it was switched to another protocol
    (the work-connection pool uses it to forget an idle connection).
    """

    def __init__(self, host: ConnectionHost) -> None:
        super().__init__()
        self._host = host
        self._deadline: Optional[IDelayedCall] = None
        self.onLost: Optional[Callable[["LogicalConnection"], None]] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._deadline = self._host.clock.callLater(FIRST_MESSAGE_TIMEOUT, self._noMessage)

    def _noMessage(self) -> None:
        log.info(
            "closing connection from {peer}: no frp message in {t:.0f} s",
            peer=describePeer(self.transport),
            t=FIRST_MESSAGE_TIMEOUT,
        )
        self.transport.abortConnection()

    def badMessage(self, error: ProtocolError) -> None:
        log.warn("closing connection from {peer}: bad first message: {error}", peer=describePeer(self.transport),
                 error=error)
        cancelCall(self._deadline)
        self.transport.abortConnection()

    def messageReceived(self, message, leftover: bytes) -> None:
        cancelCall(self._deadline)
        self._host.dispatch(self, message, leftover)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        switched = self.switchedTo is not None
        if self.awaitingMessage:
            logTLSFailure(self.transport, reason)
        super().connectionLost(reason)
        cancelCall(self._deadline)
        if not switched and self.onLost is not None:
            self.onLost(self)
