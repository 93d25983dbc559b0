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

from typing import Optional

from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.transport.stacked import StackedTransport, stack
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import StreamCodec
from frptw.wire.errors import ProtocolError


class LayeredProtocol(StackedTransport):
    """The protocol of a lower transport and the transport of ``wrappedProtocol``.

    ``codec.encode`` is applied to everything ``wrappedProtocol`` writes, ``codec.decode`` to
    everything the lower transport delivers.
    """

    _log = FrpLogger()

    def __init__(self, codec: StreamCodec, wrappedProtocol: IProtocol) -> None:
        super().__init__(wrappedProtocol)
        self.codec = codec
        self._failure: Optional[Failure] = None

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

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(self._failure or reason)

    def write(self, data: bytes) -> None:
        if data:
            encoded = self.codec.encode(data)
            if encoded:
                self.transport.write(encoded)


def layer(proto: SwitchableProtocol, codec: StreamCodec, leftover: bytes = b"") -> SwitchableProtocol:
    """Switch ``proto``'s connection to ``codec`` and return the switchable protocol above it.

    ``leftover`` (bytes already read past the last framed message) is decoded first, after the
    bytes ``proto`` held.  The returned protocol holds the decoded bytes until someone (usually
    :func:`frptw.transport.splice.splice`) switches it in turn.
    """
    return stack(proto, lambda top: LayeredProtocol(codec, top), leftover)
