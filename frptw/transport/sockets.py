"""Process and socket settings frpc and frps both apply: the open-file limit, TCP keep-alive,
and how every TCP socket is opened.

Every TCP socket frptw opens goes through :func:`listenTCP` or :func:`tcpEndpoint`, so that all
of them get Go's defaults:

* ``TCP_NODELAY``.  Go sets it on every TCP connection.  Without it, a connection that writes a
  small segment (``StartWorkConn``, a yamux header) and then, before the peer's ACK, another
  small one (the user's first bytes) has the second held back by Nagle's algorithm until the
  peer's *delayed* ACK, about 40 ms on Linux: measured through a tcp proxy
  (``bench/bench_connect.py``), first echo p90 48 ms and 43 sequential connections/s without
  it.  Listening sockets get it too: on Linux accepted sockets inherit it from the listener, so
  an accepted connection has it before its first byte; :func:`setNoDelay` covers the rest.
* the system's maximum listen backlog (``net.core.somaxconn``), which Go's ``net.Listen`` uses,
  instead of Twisted's 50: a burst of connects waits in the kernel's queue instead of being
  dropped and retried after a SYN timeout.
* a small write on a connection with nothing queued goes to the socket at once, as Go's
  ``Write`` does (:class:`_SendsAtOnce`).  Twisted's TCP transport queues every write and sends it when
  the next reactor turn finds the socket writable: per write a writer registration, one more
  ``epoll_wait``, the ``doWrite`` dispatch and the deregistration.  Profiled on sequential new
  connections through a tcp proxy (``bench/bench_connect.py``), frps made 5.4 such writes per
  connection and frpc 4.3, each on the path of the connection's first bytes.  Only the real
  reactor's TCP gets this; other reactors (tests' memory reactors) are used as they are.
"""

import resource
import socket
from typing import Optional, Tuple

from twisted.internet import tcp, udp
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, TCP4ClientEndpoint
from twisted.internet.interfaces import (
    IConnector,
    IListeningPort,
    IProtocolFactory,
    IStreamClientEndpoint,
    IUDPTransport,
)
from twisted.internet.main import CONNECTION_DONE
from twisted.internet.posixbase import PosixReactorBase
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.logs import FrpLogger

log = FrpLogger()

_SOMAXCONN_FILE = "/proc/sys/net/core/somaxconn"


def systemBacklog() -> int:
    """The kernel's maximum accept queue (what Go listens with), or ``socket.SOMAXCONN``."""
    try:
        with open(_SOMAXCONN_FILE, "rb") as f:
            value = int(f.read().strip())
    except (OSError, ValueError):
        return socket.SOMAXCONN
    return max(value, 1)


def setNoDelay(transport) -> None:
    """Set ``TCP_NODELAY`` on a TCP transport (or on a TLS transport over one); other
    transports (yamux streams, in-memory test transports) are left alone."""
    setter = getattr(transport, "setTcpNoDelay", None)
    if setter is None:
        return
    try:
        setter(True)
    except (AttributeError, OSError) as e:
        log.debug("cannot set TCP_NODELAY: {error}", error=e)


#: The largest write sent at once.  Small writes (messages, yamux frames, a proxied request)
#: are what waits on the reactor turn; bulk writes keep Twisted's way, whose partial sends slice
#: a memoryview of the queue instead of copying the rest of the write (measured: frps's peak RSS
#: moving 32 MiB through a stalled stcp path, tests/test_backpressure_paths.py, stays under its
#: bound only this way).
SEND_AT_ONCE_LIMIT = 16 * 1024


class _SendsAtOnce:
    """Twisted's TCP connection, sending a write at once when nothing is queued before it.

    What the socket does not take now is queued as Twisted queues it (with the same producer
    pause when the queue is full), and everything after it waits behind it, so the order of
    the bytes never changes.  An error from ``send`` is left for Twisted's own ``doWrite`` to
    meet and report, which it does on the same write, queued.
    """

    def write(self, data: bytes) -> None:
        if (
            type(data) is bytes
            and 0 < len(data) <= SEND_AT_ONCE_LIMIT
            and not self._tempDataLen
            and self.offset == len(self.dataBuffer)
            and self.connected
            and not self.disconnecting
            and not self._writeDisconnected
            and not self.TLS
        ):
            try:
                sent = self.socket.send(data)
            except OSError:  # EAGAIN, or an error doWrite meets again and reports
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        super().write(data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def _flushed(self) -> bool:
        return not self._tempDataLen and self.offset == len(self.dataBuffer) and self.producer is None

    def loseConnection(self) -> None:
        """Close on the next reactor turn when nothing waits to be sent.

        Twisted's own ``loseConnection`` always registers the socket for writing and closes it
        when the reactor finds it writable: two ``epoll_ctl`` calls, a zero-byte ``send`` and a
        ``doWrite`` per closed connection even when everything was sent already, which is the
        usual case here (writes go at once).  Bytes written after this call, before the close,
        still go first: they put the connection back on Twisted's path."""
        if self.connected and not self.disconnecting and not self._writeDisconnected and self._flushed():
            self.stopReading()
            self.disconnecting = True
            self.reactor.callLater(0, self._closeIfFlushed)
            return
        super().loseConnection()

    def _closeIfFlushed(self) -> None:
        if not self.connected or self._aborting or not hasattr(self, "socket"):
            return  # lost meanwhile, or aborted (abortConnection's own call reports it)
        if self._flushed():
            self.stopWriting()
            self.connectionLost(Failure(CONNECTION_DONE))
        # else: a write since loseConnection registered the writer; doWrite closes when sent


class _Server(_SendsAtOnce, tcp.Server):
    """An accepted connection that sends at once."""


class _Port(tcp.Port):
    transport = _Server


class _Client(_SendsAtOnce, tcp.Client):
    """A dialled connection that sends at once."""


class _Connector(tcp.Connector):
    def _makeTransport(self) -> tcp.Client:
        return _Client(self.host, self.port, self.bindAddress, self, self.reactor)


class _SendsAtOnceTCP:
    """The reactor's ``connectTCP`` with :class:`_Client` connections (all a
    ``TCP4ClientEndpoint`` asks of its reactor)."""

    def __init__(self, reactor: PosixReactorBase) -> None:
        self._reactor = reactor

    def connectTCP(self, host: str, port: int, factory, timeout: float = 30.0,
                   bindAddress: Optional[Tuple[str, int]] = None) -> IConnector:
        connector = _Connector(host, port, factory, timeout, bindAddress, self._reactor)
        connector.connect()
        return connector


def listenTCP(reactor, port: int, factory: IProtocolFactory, interface: str = "") -> IListeningPort:
    """``reactor.listenTCP`` with the system's backlog, ``TCP_NODELAY`` inherited by every
    accepted connection and writes sent at once (:class:`_SendsAtOnce`); raises
    ``CannotListenError`` as ``listenTCP`` does."""
    if isinstance(reactor, PosixReactorBase):
        listening = _Port(port, factory, systemBacklog(), interface, reactor)
        listening.startListening()
    else:
        listening = reactor.listenTCP(port, factory, backlog=systemBacklog(), interface=interface)
    sock = getattr(listening, "socket", None)
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            log.debug("cannot set TCP_NODELAY on a listening socket: {error}", error=e)
    return listening


@implementer(IStreamClientEndpoint)
class _NoDelayEndpoint:
    """A TCP client endpoint whose connections get ``TCP_NODELAY`` once connected.  Setting it
    when ``connect`` fires is early enough: Twisted's TCP ``write`` only buffers, and the first
    bytes leave on a later reactor turn."""

    def __init__(self, wrapped: IStreamClientEndpoint) -> None:
        self._wrapped = wrapped

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        return self._wrapped.connect(protocolFactory).addCallback(_tuned)


def _tuned(protocol):
    setNoDelay(protocol.transport)
    return protocol


def quietFactory(protocol) -> Factory:
    """A factory for client connections, without Twisted's start/stop log line per connection."""
    factory = Factory.forProtocol(protocol)
    factory.noisy = False
    return factory


def tcpEndpoint(
    reactor, host: str, port: int, timeout: float, bindAddress: Optional[Tuple[str, int]] = None
) -> IStreamClientEndpoint:
    """A TCP client endpoint for ``host`` with ``TCP_NODELAY`` (and writes sent at once, for an
    address literal on the real reactor), resolving ``host`` only if it is a name.

    ``HostnameEndpoint`` calls getaddrinfo in the reactor's thread pool even for "127.0.0.1",
    which costs a thread hand-off per connection (a quarter of frpc's time when connections
    are short).  ``reactor.connectTCP`` (what ``TCP4ClientEndpoint`` calls) takes IPv4 and
    IPv6 literals as they are, so only names go through the resolver.
    """
    if isIPAddress(host) or isIPv6Address(host):
        tcpReactor = _SendsAtOnceTCP(reactor) if isinstance(reactor, PosixReactorBase) else reactor
        inner = TCP4ClientEndpoint(tcpReactor, host, port, timeout=timeout, bindAddress=bindAddress)
    else:
        inner = HostnameEndpoint(reactor, host, port, timeout=timeout, bindAddress=bindAddress)
    return _NoDelayEndpoint(inner)


_NR_OPEN_FILE = "/proc/sys/fs/nr_open"


def raiseFileLimit() -> Optional[int]:
    """Raise the soft limit of open files to the hard limit (design lesson 5: descriptor
    exhaustion is a top frp complaint; Go raises it the same way at start-up); return the soft
    limit now in force, or None if it could not be raised (logged, not fatal).

    An unlimited hard limit is not a value the soft limit can take (the kernel caps it at
    ``fs.nr_open``), so the soft limit is then raised to ``fs.nr_open``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open(_NR_OPEN_FILE, "rb") as f:
                target = int(f.read().strip())
        except (OSError, ValueError):
            target = soft
    if soft != resource.RLIM_INFINITY and soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as e:
        log.warn("cannot raise the open file limit from {soft} to {hard}: {error}", soft=soft, hard=target, error=e)
        return None
    log.debug("open file limit raised from {soft} to {hard}", soft=soft, hard=target)
    return target


def setKeepalive(transport, seconds: int) -> None:
    """TCP keep-alive probes every ``seconds`` on a TCP transport (frps
    ``transport.tcp_keepalive``, frpc ``transport.dial_server_keepalive``; negative disables),
    like Go's keep-alive period, which sets both the idle time and the probe interval."""
    if seconds is None or seconds < 0:
        return
    try:
        transport.setTcpKeepAlive(1)
        sock = transport.getHandle()
        for option in ("TCP_KEEPIDLE", "TCP_KEEPINTVL"):
            if seconds > 0 and hasattr(socket, option):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), seconds)
    except (AttributeError, OSError) as e:
        log.debug("cannot set TCP keep-alive: {error}", error=e)


class _BatchedUDPPort(udp.Port):
    """A UDP port that tells its protocol, if it asks (``readBatchStarted`` and
    ``readBatchEnded``), when one read of the socket's queue starts and ends: the datagrams of
    that read, which Twisted delivers one by one, can then leave on a stream as one write."""

    def doRead(self):
        protocol = self.protocol
        started = getattr(protocol, "readBatchStarted", None)
        if started is None:
            return super().doRead()
        started()
        try:
            return super().doRead()
        finally:
            protocol.readBatchEnded()


def listenUDP(reactor, port: int, protocol, interface: str = "", maxPacketSize: int = 8192) -> IUDPTransport:
    """``reactor.listenUDP``; on the real reactor with :class:`_BatchedUDPPort`, whose protocol
    hears when a read of queued datagrams starts and ends.  Raises ``CannotListenError`` as
    ``listenUDP`` does."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=maxPacketSize)
    listening = _BatchedUDPPort(port, protocol, interface, maxPacketSize, reactor)
    listening.startListening()
    return listening


#: Kernel buffers asked for the UDP sockets under QUIC and KCP (frp sets 4 MiB for KCP): a burst
#: of datagrams the reactor has not read yet is queued rather than dropped.
DATAGRAM_SOCKET_BUFFER = 4 * 1024 * 1024


def widenDatagramBuffers(port) -> None:
    """Ask for :data:`DATAGRAM_SOCKET_BUFFER` receive and send buffers on a listening UDP port
    (the kernel may grant less, or refuse: then the defaults stay)."""
    sock = port.getHandle()
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, DATAGRAM_SOCKET_BUFFER)
        except OSError:
            pass


def sendDatagram(port, datagram: bytes, addr: Tuple[str, int]) -> None:
    """Write one datagram; a full socket buffer or an ICMP error loses it, and the reliable
    layer above (QUIC's or KCP's retransmission) resends it."""
    try:
        port.write(datagram, addr)
    except OSError:
        pass
