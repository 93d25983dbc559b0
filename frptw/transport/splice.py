"""Join two connections so that bytes flow both ways, with backpressure and frp's close rule.

Theory of operation.  Each side gets a :class:`_Relay` protocol that writes whatever its
connection receives to the other side's transport.  Each transport is registered as the
streaming producer of the other one: when the transport of side B cannot send as fast as
side A delivers, B's transport calls ``pauseProducing`` on A's transport, which stops reading
A (a TCP socket stops being read, a yamux stream stops granting window, a layered transport
pauses whatever is under it), and ``resumeProducing`` once B's buffer has drained.  The memory
a splice costs is therefore each transport's own write buffer plus one read, whatever the
speeds of the two ends (design.md, backpressure rules 1 and 4).

Closing follows frp (wire-protocol.md §7.6): when either connection ends — end of file, error
or an explicit close — both are closed with ``loseConnection`` so that what is already written
is flushed first; half-closes are not propagated.  Producers are unregistered before that,
since a transport with a registered producer waits for it before it closes.

Traffic statistics (frps's dashboard and metrics) are counted here, once per chunk received,
when :func:`splice` is given a :class:`TrafficMeter`: no copy, no per-byte work.
"""

from typing import Optional
from typing import Protocol as TypingProtocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHalfCloseableProtocol, ITransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.transport.switch import SwitchableProtocol

#: Write buffer, in bytes, past which a connection between frpc and frps pauses its producer.
#: Twisted's default (64 KiB) equals the size of one read from a TCP connection, so every full
#: read, once framed (yamux header, TLS records), overflowed it: the producer was paused and
#: resumed once per read (a yamux session pausing every stream, each one a reactor
#: (un)registration).  Twice the read size holds one framed read without pausing; it is also
#: what one ``doWrite`` sends at most (Twisted's ``SEND_LIMIT``).  It is per connection to the
#: peer process (a whole yamux session, or one work connection without mux), and still a
#: constant, so memory stays bounded (design.md, backpressure rule 4).
CARRIER_BUFFER_SIZE = 128 * 1024


def widenWriteBuffer(transport: ITransport, size: int = CARRIER_BUFFER_SIZE) -> None:
    """Let the TCP ``transport`` of a connection to the peer frp process buffer ``size`` bytes
    before pausing its producer (see :data:`CARRIER_BUFFER_SIZE`).  It also reads up to
    ``size`` bytes at a time, which suits a connection that carries many streams' data.
    Transports without a Twisted file-descriptor buffer are left alone."""
    if hasattr(transport, "bufferSize"):
        transport.bufferSize = size


class _Splice:
    """The state shared by the two relays of one splice: teardown and the result Deferred."""

    def __init__(self, a: ITransport, b: ITransport) -> None:
        self.transports = (a, b)
        self.wired = False
        self.closing = False
        self.open = 2
        self.done: "Deferred[None]" = Deferred()

    def wire(self) -> None:
        """Make each transport the streaming producer of the other."""
        a, b = self.transports
        b.registerProducer(a, True)
        a.registerProducer(b, True)
        self.wired = True

    def teardown(self) -> None:
        """Close both sides once (flushing), whichever side noticed the end first."""
        if self.closing:
            return
        self.closing = True
        for transport in self.transports:
            if self.wired:
                transport.unregisterProducer()
            transport.loseConnection()

    def lost(self) -> None:
        self.open -= 1
        if self.open == 0:
            self.done.callback(None)


@implementer(IHalfCloseableProtocol)
class _Relay(Protocol):
    """Writes what its connection receives to the other side's transport."""

    def __init__(self, splice: _Splice, peerTransport: ITransport) -> None:
        self.splice = splice
        self.peerTransport = peerTransport

    def dataReceived(self, data: bytes) -> None:
        self.peerTransport.write(data)

    def readConnectionLost(self) -> None:
        self.splice.teardown()

    def writeConnectionLost(self) -> None:
        self.splice.teardown()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.splice.teardown()
        self.splice.lost()


class TrafficMeter(TypingProtocol):
    """Where a proxy's traffic is counted (frps's :class:`~frptw.server.stats.ProxyStats`).

    :func:`splice` calls ``addIn`` with what its first connection received (a user's bytes
    towards the backend) and ``addOut`` with what its second one received, once per chunk;
    whoever opens and closes a counted connection reports it with ``connectionOpened`` and
    ``connectionClosed``."""

    def addIn(self, n: int) -> None: ...

    def addOut(self, n: int) -> None: ...

    def connectionOpened(self) -> None: ...

    def connectionClosed(self) -> None: ...


class _CountingRelay(_Relay):
    """A relay that also reports the size of each chunk it forwards."""

    def __init__(self, splice: _Splice, peerTransport: ITransport, count) -> None:
        super().__init__(splice, peerTransport)
        self.count = count

    def dataReceived(self, data: bytes) -> None:
        self.count(len(data))
        self.peerTransport.write(data)


def splice(a: SwitchableProtocol, b: SwitchableProtocol, meter: Optional[TrafficMeter] = None) -> "Deferred[None]":
    """Forward bytes between the connections of ``a`` and ``b`` until either ends.

    Both must be connected (they may have lost their connection since).  Bytes ``a`` or ``b``
    still hold are forwarded first.  The returned Deferred fires (with ``None``) once both
    connections are closed; it never fails, since the end of a connection, however it
    happens, is the normal end of a splice.  With a ``meter``, what ``a`` receives is counted
    as in, what ``b`` receives as out (bytes ``a`` or ``b`` still held included).
    """
    state = _Splice(a.transport, b.transport)
    if meter is None:
        relayA, relayB = _Relay(state, b.transport), _Relay(state, a.transport)
    else:
        relayA, relayB = _CountingRelay(state, b.transport, meter.addIn), _CountingRelay(state, a.transport,
                                                                                          meter.addOut)
    # Switch both sides before wiring the producers: a switch resumes a transport that its
    # switchable protocol had paused, which must not undo a pause requested by the other side.
    a.switchTo(relayA)
    b.switchTo(relayB)
    if not state.closing:
        state.wire()
    return state.done
