"""Hand a live connection from one protocol to another.

frp connections change personality mid-stream: a work connection speaks framed messages until
``StartWorkConn`` and raw (possibly encrypted) bytes afterwards; frps sniffs the first bytes of
a connection before deciding between TLS and plain frp.  Twisted transports are bound to one
protocol, so every such connection starts with a :class:`SwitchableProtocol`, which can later
give its transport to another protocol with :meth:`SwitchableProtocol.switchTo`.

Until it switches, a switchable protocol holds what it receives.  That buffer is bounded: once
it passes ``bufferLimit`` bytes the transport is paused (or, with ``pauseOnConnect``, it is
paused from the start, as frps does with a user connection that waits for a work connection),
and it is resumed when the connection is handed over.
"""

from typing import List, Optional

from twisted.internet.interfaces import IHalfCloseableProtocol, IProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

#: Default bytes a switchable protocol holds before it pauses its transport.
DEFAULT_BUFFER_LIMIT = 256 * 1024


@implementer(IHalfCloseableProtocol)
class SwitchableProtocol(Protocol):
    """A protocol that can hand its transport (and unread bytes) to another protocol.

    Subclasses override :meth:`dataReceived` to parse a preamble (a message, a TLS first byte)
    and call :meth:`switchTo` when they are done; the plain class just holds bytes until
    someone switches it.
    """

    def __init__(self, bufferLimit: int = DEFAULT_BUFFER_LIMIT, pauseOnConnect: bool = False) -> None:
        self._bufferLimit: Optional[int] = bufferLimit
        self._pauseOnConnect = pauseOnConnect
        self._held: List[bytes] = []
        self._heldSize = 0
        self._paused = False
        self._lostReason: Optional[Failure] = None
        self._readLost = False
        self.switchedTo: Optional[IProtocol] = None

    # -- before the switch ---------------------------------------------------------------
    def connectionMade(self) -> None:
        if self._pauseOnConnect:
            self._pause()

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
            return
        self.hold(data)

    def hold(self, data: bytes) -> None:
        """Keep ``data`` for the protocol we will switch to, pausing when over the limit."""
        if data:
            self._held.append(data)
            self._heldSize += len(data)
            if self._bufferLimit is not None and self._heldSize > self._bufferLimit:
                self._pause()

    def _pause(self) -> None:
        if not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pauseProducing()

    def readConnectionLost(self) -> None:
        if self.switchedTo is not None:
            half = IHalfCloseableProtocol(self.switchedTo, None)
            if half is not None:
                half.readConnectionLost()
            else:
                self.transport.loseConnection()
            return
        self._readLost = True

    def writeConnectionLost(self) -> None:
        if self.switchedTo is not None:
            half = IHalfCloseableProtocol(self.switchedTo, None)
            if half is not None:
                half.writeConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.switchedTo is not None:
            self.switchedTo.connectionLost(reason)
            return
        self._lostReason = reason

    @property
    def lost(self) -> bool:
        """True if the connection closed before we switched."""
        return self._lostReason is not None

    # -- the switch ------------------------------------------------------------------------
    def switchTo(self, protocol: IProtocol, leftover: bytes = b"") -> None:
        """Give the transport, the held bytes and ``leftover`` (unparsed bytes) to ``protocol``.

        ``protocol`` is connected to our transport (``makeConnection``), then receives the held
        bytes; if the connection was already lost it then receives ``connectionLost``.
        """
        if self.switchedTo is not None:
            raise RuntimeError("already switched")
        if self._paused:
            # Resume before handing over, so that a pause the new protocol asks for while it
            # takes the held bytes sticks.  A transport that delivers synchronously on resume
            # (a yamux stream) lands in hold(); that is bounded by its window, so no re-pause.
            self._paused = False
            self._bufferLimit = None
            self.transport.resumeProducing()
        self.switchedTo = protocol
        if type(self).dataReceived is SwitchableProtocol.dataReceived:
            # Nothing to do here any more but forward: let the transport call the new protocol
            # directly, one Python call less per received chunk (subclasses that override
            # dataReceived, to count bytes for instance, keep their method).
            self.dataReceived = protocol.dataReceived  # type: ignore[method-assign]
        held = b"".join(self._held) + leftover
        self._held = []
        self._heldSize = 0
        protocol.makeConnection(self.transport)
        if held:
            protocol.dataReceived(held)
        if self._lostReason is not None:
            protocol.connectionLost(self._lostReason)
        elif self._readLost:
            self.readConnectionLost()
