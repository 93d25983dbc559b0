"""Run a wire codec (encryption, compression) as a transport over another transport.

A :class:`LayeredProtocol` sits on a lower transport (a TCP connection, a TLS layer, a yamux
stream, another layered transport) as its protocol, and is at the same time the transport of
the protocol above it: bytes written from above are encoded and written below; bytes received
from below are decoded and delivered above.

Theory of operation, for backpressure (design.md, rule 3): a codec maps one chunk to one chunk
and keeps at most one incomplete frame, so this layer never queues anything itself.  All flow
control therefore belongs to the lower transport, and every producer/consumer call is passed
straight to it: ``registerProducer`` registers the upper producer with the lower transport (so a
full lower write buffer pauses the upper producer), and ``pauseProducing``/``resumeProducing``/
``stopProducing`` pause, resume or stop reading from the lower transport.

A decoding error is the peer's fault: one log line, the lower connection is aborted, and the
upper protocol's ``connectionLost`` receives the :class:`~frptw.wire.errors.ProtocolError`.
"""

from typing import Iterable, Optional

from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from frptw.logs import FrpLogger
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import StreamCodec
from frptw.wire.errors import ProtocolError


@implementer(ITransport, IConsumer, IPushProducer, IHalfCloseableProtocol)
class LayeredProtocol(Protocol):
    """The protocol of a lower transport and the transport of ``wrappedProtocol``.

    ``codec.encode`` is applied to everything ``wrappedProtocol`` writes, ``codec.decode`` to
    everything the lower transport delivers.
    """

    _log = FrpLogger()
    disconnecting = False

    def __init__(self, codec: StreamCodec, wrappedProtocol: IProtocol) -> None:
        self.codec = codec
        self.wrappedProtocol = wrappedProtocol
        self._failure: Optional[Failure] = None

    # -- IProtocol, facing the lower transport ----------------------------------------------
    def connectionMade(self) -> None:
        self.wrappedProtocol.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        if self._failure is not None:
            return
        try:
            plain = self.codec.decode(data)
        except ProtocolError as e:
            self._failure = Failure(e)
            self._log.warn(
                "closing connection from {peer}: undecodable data ({codec}): {error}",
                peer=self.transport.getPeer(),
                codec=type(self.codec).__name__,
                error=e,
            )
            self.transport.abortConnection()
            return
        if plain:
            self.wrappedProtocol.dataReceived(plain)

    def readConnectionLost(self) -> None:
        half = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if half is None:
            self.transport.loseConnection()
        else:
            half.readConnectionLost()

    def writeConnectionLost(self) -> None:
        half = IHalfCloseableProtocol(self.wrappedProtocol, None)
        if half is not None:
            half.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.connected = False
        self.wrappedProtocol.connectionLost(self._failure or reason)

    # -- ITransport, facing the wrapped protocol --------------------------------------------
    def write(self, data: bytes) -> None:
        if data:
            encoded = self.codec.encode(data)
            if encoded:
                self.transport.write(encoded)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.transport.abortConnection()

    def loseWriteConnection(self) -> None:
        """Half-close: the codecs have no end-of-stream marker, so the lower transport's
        half-close is ours."""
        self.transport.loseWriteConnection()

    def getPeer(self):
        return self.transport.getPeer()

    def getHost(self):
        return self.transport.getHost()

    # -- IConsumer: the lower transport does the flow control -------------------------------
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self.transport.registerProducer(producer, streaming)

    def unregisterProducer(self) -> None:
        self.transport.unregisterProducer()

    # -- IPushProducer: reading from us is reading from the lower transport -----------------
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


def layer(proto: SwitchableProtocol, codec: StreamCodec, leftover: bytes = b"") -> SwitchableProtocol:
    """Switch ``proto``'s connection to ``codec`` and return the switchable protocol above it.

    ``leftover`` (bytes already read past the last framed message) is decoded first, after the
    bytes ``proto`` held.  The returned protocol holds the decoded bytes until someone (usually
    :func:`frptw.transport.splice.splice`) switches it in turn.
    """
    top = SwitchableProtocol()
    proto.switchTo(LayeredProtocol(codec, top), leftover)
    return top
