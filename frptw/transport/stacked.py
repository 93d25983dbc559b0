"""A protocol that is also the transport of the protocol above it: the base of every layer.

Encryption/compression (:mod:`frptw.transport.layered`) and the bandwidth limiter
(:mod:`frptw.transport.bandwidth`) each sit on a lower transport as its protocol and present
themselves as the transport of ``wrappedProtocol``.  :class:`StackedTransport` is everything
such a layer does *not* change: connection set-up, half-close, closing, addresses, and every
producer/consumer call, passed straight through to the lower transport (design.md, rule 3: a
layer never queues, so flow control belongs to the transport below).  Subclasses override
``dataReceived`` and ``write`` (and the flow-control calls they take part in).
"""

from typing import Iterable

from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IPushProducer,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.transport.switch import SwitchableProtocol


@implementer(ITransport, IConsumer, IPushProducer, IHalfCloseableProtocol)
class StackedTransport(Protocol):
    """Protocol of a lower transport and transport of ``wrappedProtocol``, passing through."""

    disconnecting = False

    def __init__(self, wrappedProtocol: IProtocol) -> None:
        self.wrappedProtocol = wrappedProtocol

    # -- IProtocol, facing the lower transport ----------------------------------------------
    def connectionMade(self) -> None:
        self.wrappedProtocol.makeConnection(self)

    def dataReceived(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)

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
        self.wrappedProtocol.connectionLost(reason)

    # -- ITransport, facing the wrapped protocol --------------------------------------------
    def write(self, data: bytes) -> None:
        self.transport.write(data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self.disconnecting = True
        self.transport.loseConnection()

    def abortConnection(self) -> None:
        self.disconnecting = True
        self.transport.abortConnection()

    def loseWriteConnection(self) -> None:
        """Half-close: no layer has an end-of-stream marker of its own."""
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


def stack(proto: SwitchableProtocol, makeLayer, leftover: bytes = b"") -> SwitchableProtocol:
    """Switch ``proto``'s connection to ``makeLayer(top)`` and return ``top``, a fresh
    switchable protocol above the new layer (it holds what arrives until it is switched in
    turn, usually by :func:`frptw.transport.splice.splice`)."""
    top = SwitchableProtocol()
    proto.switchTo(makeLayer(top), leftover)
    return top
