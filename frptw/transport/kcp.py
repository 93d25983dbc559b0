"""frp's KCP transport on Twisted: a KCP conversation as a byte-stream transport.

frp runs kcp-go with FEC (10 data, 3 parity shards), no block cipher, stream mode and
``nodelay 1, interval 20 ms, resend 2, nc 1``, MTU 1350; frpc's windows are 128 (send) and 512
(receive) segments, frps's 1024 and 1024 (wire-protocol.md §2.7).  Above KCP the stack is the
one of TCP: frps sniffs for TLS, then yamux when tcpMux is on.

:class:`KcpSession` is the transport (``ITransport``, ``IConsumer``, ``IPushProducer``) of one
conversation, over the sans-IO :class:`frptw.wire.kcp.KcpConnection` and
:mod:`frptw.wire.kcpfec`.  Like :class:`frptw.transport.quic.QuicSession` it is fed datagrams
and given a ``send(datagram)`` callable, so any UDP socket can carry it: frpc's
(:func:`dialKcp`), frps's shared ``kcpBindPort`` (:class:`KcpListener`), or a punched hole.
It flushes every ``interval`` ms while it has anything to send or acknowledge, as kcp-go does
with ``writeDelay``, and goes quiet otherwise; a write to a quiet conversation is flushed at
the end of the reactor turn instead of waiting up to one interval.

Backpressure: the writer's producer is paused while more than two send windows of segments
wait (kcp-go blocks ``Write`` at one); a paused reader leaves data in KCP's receive queue, so
the announced window shrinks to zero and the peer stops after one window.

KCP has no connection close: ``loseConnection`` sends what the windows allow and ends the
conversation here, as kcp-go's ``Close`` does (the peer notices by its own keep-alives), and a
peer that stops acknowledging ends it after a segment went out ``DEAD_LINK`` times.
"""

import os
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.errors import ProtocolError
from frptw.logs import FrpLogger
from frptw.transport.addresses import udpAddress
from frptw.transport.sockets import sendDatagram, widenDatagramBuffers
from frptw.transport.timers import cancelCall
from frptw.wire import kcpfec
from frptw.wire.kcp import CMD_PUSH, KcpConnection
from frptw.wire.kcp import HEADER as KCP_HEADER
from frptw.wire.kcp import OVERHEAD as KCP_OVERHEAD

log = FrpLogger()

MTU = 1350
INTERVAL_MS = 20
DATA_SHARDS = 10
PARITY_SHARDS = 3
#: (send, receive) windows in segments, as frp configures them.
CLIENT_WINDOWS = (128, 512)
SERVER_WINDOWS = (1024, 1024)

Address = Tuple[str, int]


@implementer(ITransport, IConsumer, IPushProducer)
class KcpSession:
    """One KCP conversation as a transport (see the module docstring).

    :param windows: ``(send, receive)`` windows in segments.
    :param onClosed: called once the conversation ended (the socket owner forgets it).
    """

    def __init__(
        self,
        conv: int,
        clock: IReactorTime,
        send: Callable[[bytes], None],
        peer: IAddress,
        host: IAddress,
        windows: Tuple[int, int] = CLIENT_WINDOWS,
        onClosed: Optional[Callable[["KcpSession"], None]] = None,
    ) -> None:
        self.conv = conv
        self._kcp = KcpConnection(conv, mtu=MTU - kcpfec.OVERHEAD, sendWindow=windows[0],
                                  receiveWindow=windows[1], interval=INTERVAL_MS)
        self._encoder = kcpfec.FecEncoder(DATA_SHARDS, PARITY_SHARDS)
        self._decoder = kcpfec.FecDecoder(DATA_SHARDS, PARITY_SHARDS)
        self._clock = clock
        self._epoch = clock.seconds()
        self._send = send
        self._peer = peer
        self._host = host
        self._onClosed = onClosed
        self.protocol: Optional[IProtocol] = None
        self.connected = False
        self.disconnecting = False
        self._closed = False
        self._readPaused = False
        self._delivering = False
        self._producer: Optional[IProducer] = None
        self._producerPaused = False
        self._tick: Optional[IDelayedCall] = None
        self._closeWaiters: List[Deferred] = []

    def __repr__(self) -> str:
        return f"<KcpSession conv={self.conv} peer={self._peer}>"

    def _now(self) -> int:
        return int((self._clock.seconds() - self._epoch) * 1000)

    def connect(self, protocol: IProtocol) -> None:
        """Run ``protocol`` on this conversation."""
        self.protocol = protocol
        self.connected = True
        protocol.makeConnection(self)

    # -- datagrams -------------------------------------------------------------------------
    def datagramReceived(self, datagram: bytes) -> None:
        if self._closed:
            return
        now = self._now()
        try:
            for packet in self._decoder.decode(datagram):
                self._kcp.input(packet, now)
        except ProtocolError as e:
            log.warn("closing KCP conversation with {peer}: {error}", peer=self._peer, error=e)
            self._end(Failure(ConnectionLost(f"bad KCP datagram: {e}")))
            return
        self._deliver()
        self._updateProducer()
        self._schedule()

    def _flush(self) -> None:
        now = self._now()
        rto = self._kcp.rto
        send = self._send
        for packet in self._kcp.flush(now):
            for datagram in self._encoder.encode(packet, now, rto):
                send(datagram)

    def _onTick(self) -> None:
        self._tick = None
        if self._closed:
            return
        self._flush()
        if self._kcp.dead:
            self._end(Failure(ConnectionLost("KCP peer stopped acknowledging")))
            return
        self._updateProducer()
        self._schedule()

    def _schedule(self) -> None:
        if self._tick is None and not self._closed and self._kcp.busy:
            self._tick = self._clock.callLater(INTERVAL_MS / 1000.0, self._onTick)

    # -- ITransport ------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue ``data``; a quiet conversation flushes at the end of this reactor turn (so a
        request does not wait for a tick), a busy one on its next tick."""
        if self._closed or self.disconnecting or not data:
            return
        self._kcp.send(bytes(data))
        if self._tick is None:
            self._tick = self._clock.callLater(0, self._onTick)
        self._updateProducer()

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        """Send what the windows allow now and end the conversation, as kcp-go's ``Close``
        does (a conversation must not keep sending once the peer may have forgotten it: Go
        frps would take its retransmissions for a new conversation)."""
        if self._closed or self.disconnecting:
            return
        self.disconnecting = True
        self._flush()
        self._clock.callLater(0, self._end, Failure(ConnectionDone()))

    def abortConnection(self) -> None:
        if not self._closed:
            self._clock.callLater(0, self._end, Failure(ConnectionAborted()))
            self._closed = True
            cancelCall(self._tick)

    def getPeer(self) -> IAddress:
        return self._peer

    def getHost(self) -> IAddress:
        return self._host

    def whenClosed(self) -> Deferred:
        if self._closed and not self.connected:
            return succeed(None)
        d: Deferred = Deferred()
        self._closeWaiters.append(d)
        return d

    def _end(self, reason: Failure) -> None:
        if not self.connected:
            return
        self._closed = True
        self.connected = False
        cancelCall(self._tick)
        self._tick = None
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.stopProducing()
        if self._onClosed is not None:
            self._onClosed(self)
        if self.protocol is not None:
            self.protocol.connectionLost(reason)
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    # -- IConsumer -------------------------------------------------------------------------
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"{self!r} already has a producer")
        if not streaming:
            raise NotImplementedError("KCP sessions take push producers only")
        self._producer = producer
        self._producerPaused = False
        self._updateProducer()

    def unregisterProducer(self) -> None:
        self._producer = None

    def _updateProducer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        waiting = self._kcp.waitingToSend
        if not self._producerPaused and waiting > 2 * self._kcp.sendWindow:
            self._producerPaused = True
            producer.pauseProducing()
        elif self._producerPaused and waiting <= self._kcp.sendWindow:
            self._producerPaused = False
            producer.resumeProducing()

    # -- IPushProducer (reading) -----------------------------------------------------------
    def pauseProducing(self) -> None:
        self._readPaused = True

    def resumeProducing(self) -> None:
        self._readPaused = False
        self._deliver()
        self._schedule()

    def stopProducing(self) -> None:
        self.loseConnection()

    def _deliver(self) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            while not self._readPaused and self.connected and not self.disconnecting:
                data = self._kcp.recv()
                if not data:
                    break
                self.protocol.dataReceived(data)
        finally:
            self._delivering = False


class KcpClientSocket(DatagramProtocol):
    """frpc's UDP socket to frps, carrying one :class:`KcpSession` (``session``)."""

    def __init__(self, clock: IReactorTime, server: Address) -> None:
        self._clock = clock
        self._server = server
        self.session: Optional[KcpSession] = None

    def startProtocol(self) -> None:
        widenDatagramBuffers(self.transport)
        local = self.transport.getHost()
        conv = int.from_bytes(os.urandom(4), "little")
        self.session = KcpSession(conv, self._clock, partial(sendDatagram, self.transport, addr=self._server),
                                  udpAddress(*self._server), udpAddress(local.host, local.port),
                                  CLIENT_WINDOWS, onClosed=lambda s: self.transport.stopListening())

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        if addr[:2] == self._server and self.session is not None:
            self.session.datagramReceived(data)


def dialKcp(reactor, host: str, port: int, localIP: str = "") -> "Deferred[KcpSession]":
    """Open frpc's KCP conversation with ``host:port`` (KCP has no handshake: fires once the
    socket is open)."""
    resolved = succeed(host) if isIPAddress(host) or isIPv6Address(host) else reactor.resolve(host)

    def open(ip: str) -> KcpSession:
        proto = KcpClientSocket(reactor, (ip, port))
        reactor.listenUDP(0, proto, interface=localIP or ("::" if ":" in ip else "0.0.0.0"))
        return proto.session

    return resolved.addCallback(open)


class KcpListener(DatagramProtocol):
    """frps's ``kcpBindPort``: one conversation per client address, each run by a protocol
    from ``factory`` (frps's bind-port connection, which then sniffs TLS and yamux)."""

    def __init__(self, clock: IReactorTime, factory: IProtocolFactory) -> None:
        self._clock = clock
        self._factory = factory
        self._sessions: Dict[Address, KcpSession] = {}

    def startProtocol(self) -> None:
        widenDatagramBuffers(self.transport)

    @property
    def sessions(self) -> Dict[Address, KcpSession]:
        """The live conversations by client address (read them, do not change them)."""
        return self._sessions

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        addr = addr[:2]
        conv, opening = _convOf(data)
        session = self._sessions.get(addr)
        if session is not None and conv is not None and conv != session.conv:
            if not opening:
                return  # a stray datagram of an older conversation
            session.abortConnection()  # the client started over (kcp-go replaces it too)
            self._sessions.pop(addr, None)
            session = None
        if session is None:
            # Only a conversation's first segment opens it: retransmissions to a conversation
            # that ended here must not start a new one that never gets its first bytes.
            if not opening:
                return
            session = self._open(conv, addr)
            if session is None:
                return
        session.datagramReceived(data)

    def _open(self, conv: int, addr: Address) -> Optional[KcpSession]:
        protocol = self._factory.buildProtocol(udpAddress(*addr))
        if protocol is None:
            return None
        local = self.transport.getHost()
        session = KcpSession(conv, self._clock, partial(sendDatagram, self.transport, addr=addr), udpAddress(*addr),
                             udpAddress(local.host, local.port), SERVER_WINDOWS, onClosed=self._forget)
        self._sessions[addr] = session
        session.connect(protocol)
        return session

    def _forget(self, session: KcpSession) -> None:
        addr = (session.getPeer().host, session.getPeer().port)
        if self._sessions.get(addr) is session:
            del self._sessions[addr]

    def closeAll(self) -> None:
        for session in list(self._sessions.values()):
            session.abortConnection()


def _convOf(datagram: bytes) -> Tuple[Optional[int], bool]:
    """The conversation id of a datagram's KCP packet (None for parity datagrams and runts),
    and whether that packet opens the conversation (its first segment is push number 0)."""
    if len(datagram) >= kcpfec.HEADER_SIZE:
        flag = int.from_bytes(datagram[4:6], "little")
        if flag in (kcpfec.TYPE_DATA, kcpfec.TYPE_PARITY):
            if flag == kcpfec.TYPE_PARITY or len(datagram) < kcpfec.OVERHEAD + KCP_OVERHEAD:
                return None, False
            datagram = datagram[kcpfec.OVERHEAD:]
    if len(datagram) < KCP_OVERHEAD:
        return None, False
    conv, cmd, _frg, _wnd, _ts, sn, _una, _len = KCP_HEADER.unpack_from(datagram)
    return conv, cmd == CMD_PUSH and sn == 0
