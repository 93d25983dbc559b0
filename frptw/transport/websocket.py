"""frp's websocket transport as a layer: autobahn's websocket protocols carrying a byte stream.

frp (wire-protocol.md §2.5, §2.6; ``pkg/util/net/websocket.go`` and ``dial.go`` of frp 0.65)
speaks RFC 6455 on the path ``/~!frp``: frpc sends ``GET /~!frp`` with an ``Origin:
http://<host>`` header, frps answers 403 without an Origin and 404 on any other path.  After
the upgrade the frames are one byte stream: every write is one frame, frame and message
boundaries mean nothing.  frp 0.65 sends *text* frames with binary payloads, so the receiver
must accept either opcode and must not check UTF-8; frptw sends binary frames (as frp 0.70
does), which every frp accepts.

The layer is autobahn's Twisted protocol, adapted so that it is also the transport of the
protocol above it (:class:`_StreamAdapter`): ``write`` sends one binary frame, received frame
data goes up as it arrives (autobahn's frame-streaming callbacks, so nothing is assembled into
messages and no message size applies), and every producer call goes straight to the
connection below (design.md, rule 3: the layer queues nothing itself).  Closing sends a close
frame and closes the connection without waiting for the peer's reply, as Go's
``websocket.Conn.Close`` does.

Like :func:`frptw.transport.tls.startClientTLS`, the layer is started on a live
:class:`~frptw.transport.switch.SwitchableProtocol` (which may sit on TLS or on a tunnel
through a forward proxy) and hands back a fresh switchable protocol above it, here once the
upgrade is done (:func:`startClientWebSocket`), or, on frps, once a client's upgrade was
accepted (:func:`serverProtocol`).

autobahn's few timers (the opening handshake's deadline, the close handshake) run on txaio's
default loop, the global reactor; frptw's own deadlines use the injected clock.
"""

import struct
from typing import Optional

from autobahn.twisted.websocket import (
    WebSocketClientFactory,
    WebSocketClientProtocol,
    WebSocketServerFactory,
    WebSocketServerProtocol,
)
from autobahn.websocket.protocol import WebSocketProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IConsumer, IProtocol, IPushProducer, ITransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.errors import ConnectionClosed
from frptw.transport.switch import SwitchableProtocol

#: The only path frps serves its websocket transport on.
FRP_WEBSOCKET_PATH = "/~!frp"
#: Seconds an upgrade request may take once its first bytes arrived (Go's ReadHeaderTimeout).
OPEN_HANDSHAKE_TIMEOUT = 60
#: Close code sent by ``loseConnection``: normal closure.
_CLOSE_NORMAL = struct.pack("!H", 1000)
_OPCODE_CLOSE = 8


def _commonOptions(factory) -> None:
    # frp 0.65 sends binary payloads in text frames: no UTF-8 checks.  Frames are streamed up
    # as they arrive, so no frame or message limit is needed to bound memory.
    factory.setProtocolOptions(
        utf8validateIncoming=False,
        openHandshakeTimeout=OPEN_HANDSHAKE_TIMEOUT,
        closeHandshakeTimeout=1,
        failByDrop=True,
        autoPingInterval=0,
    )


@implementer(ITransport, IConsumer, IPushProducer)
class _StreamAdapter:
    """The byte-stream face of a websocket protocol (mixed into autobahn's client and server
    protocols): it is the transport of :attr:`wrapped` once the upgrade is done."""

    wrapped: IProtocol
    disconnecting = False

    def _setUp(self, wrapped: IProtocol) -> None:
        self.wrapped = wrapped
        self.opened: Deferred = Deferred(self._cancelUpgrade)
        self._isOpen = False

    def _cancelUpgrade(self, _: Deferred) -> None:
        if self.transport is not None:  # type: ignore[attr-defined]
            self.transport.abortConnection()  # type: ignore[attr-defined]

    # -- autobahn's callbacks -------------------------------------------------------------
    def onOpen(self) -> None:
        self._isOpen = True
        self.wrapped.makeConnection(self)
        self.opened.callback(self.wrapped)

    def onMessageBegin(self, isBinary: bool) -> None:
        pass

    def onMessageFrameBegin(self, length: int) -> None:
        pass

    def onMessageFrameData(self, payload: bytes) -> None:
        if payload:
            self.wrapped.dataReceived(payload)

    def onMessageFrameEnd(self) -> None:
        pass

    def onMessageEnd(self) -> None:
        pass

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)  # type: ignore[misc]
        if self._isOpen:
            self._isOpen = False
            self.wrapped.connectionLost(reason)
        elif not self.opened.called:
            why = self.wasNotCleanReason or reason.getErrorMessage()  # type: ignore[attr-defined]
            self.opened.errback(ConnectionClosed(f"websocket upgrade failed: {why}"))

    # -- ITransport, facing the wrapped protocol ------------------------------------------
    def write(self, data: bytes) -> None:
        if data and self.state == WebSocketProtocol.STATE_OPEN:  # type: ignore[attr-defined]
            self.sendMessage(bytes(data), isBinary=True)  # type: ignore[attr-defined]

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        if self.state == WebSocketProtocol.STATE_OPEN:  # type: ignore[attr-defined]
            self.sendFrame(opcode=_OPCODE_CLOSE, payload=_CLOSE_NORMAL)  # type: ignore[attr-defined]
        self.transport.loseConnection()  # type: ignore[attr-defined]

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.transport.abortConnection()  # type: ignore[attr-defined]

    def getPeer(self):
        return self.transport.getPeer()  # type: ignore[attr-defined]

    def getHost(self):
        return self.transport.getHost()  # type: ignore[attr-defined]

    # -- IPushProducer: reading from us is reading from the connection below ----------------
    # (registerProducer/unregisterProducer are autobahn's, which pass them down too.)
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.transport.stopProducing()  # type: ignore[attr-defined]


class _ClientProtocol(_StreamAdapter, WebSocketClientProtocol):
    """frpc's end: the upgrade request for ``/~!frp``, then the byte stream."""


class _ServerProtocol(_StreamAdapter, WebSocketServerProtocol):
    """frps's end: only ``GET /~!frp`` with an Origin header is upgraded (frp's rules)."""

    def onConnect(self, request: ConnectionRequest) -> None:
        if request.path != FRP_WEBSOCKET_PATH:
            raise ConnectionDeny(ConnectionDeny.NOT_FOUND, "404 page not found")
        if not request.origin or request.origin == "null":
            raise ConnectionDeny(ConnectionDeny.FORBIDDEN)
        return None


class WebSocketDialer:
    """frpc's settings for its websocket upgrades, made once per service.

    :param host: what goes in the URL, ``Host`` and ``Origin``: ``server_addr:server_port``
        for ``websocket``, the TLS server name alone for ``wss`` (frp's choices).
    """

    def __init__(self, host: str, port: Optional[int]) -> None:
        url = f"ws://{host}:{port}{FRP_WEBSOCKET_PATH}" if port else f"ws://{host}{FRP_WEBSOCKET_PATH}"
        origin = f"http://{host}:{port}" if port else f"http://{host}"
        self._factory = WebSocketClientFactory(url=url, origin=origin, useragent="")
        _commonOptions(self._factory)

    def start(self, proto: SwitchableProtocol) -> "Deferred[SwitchableProtocol]":
        """Run the upgrade on ``proto``'s connection; fires with the protocol above the
        websocket once frps accepted it, fails with ConnectionClosed otherwise."""
        ws = _ClientProtocol()
        ws.factory = self._factory
        top = SwitchableProtocol()
        ws._setUp(top)
        proto.switchTo(ws)
        return ws.opened


_serverFactory: Optional[WebSocketServerFactory] = None


def serverProtocol(top: IProtocol) -> _ServerProtocol:
    """A protocol that serves frps's websocket endpoint on a connection and then carries
    ``top`` (switch a sniffed connection to it with the bytes read so far)."""
    global _serverFactory
    if _serverFactory is None:
        _serverFactory = WebSocketServerFactory(url=f"ws://localhost{FRP_WEBSOCKET_PATH}", server=None)
        _commonOptions(_serverFactory)
        _serverFactory.setProtocolOptions(webStatus=False)
    ws = _ServerProtocol()
    ws.factory = _serverFactory
    ws._setUp(top)
    return ws
