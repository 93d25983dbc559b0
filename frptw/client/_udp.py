"""The frpc end of a udp (or sudp-owner) work connection: datagrams to and from the local service.

Theory of operation (wire-protocol.md §8, §9.3).  After ``StartWorkConn`` for a udp or sudp
proxy the work connection (inside its AES/snappy layers) carries ``UDPPacket`` messages; a
:class:`~frptw.transport.datagrams.DatagramChannel` frames them.  :class:`UDPForwarder` is its
receiver: for every distinct user address ``r`` it opens one *connected* UDP socket towards
``local_ip:local_port`` (a :class:`_LocalSocket`), so that the local service sees one peer per
user and its replies come back on the socket that belongs to that user; each reply becomes a
``UDPPacket`` with the same ``r``.

* A user's socket closes after :data:`LOCAL_IDLE_TIMEOUT` seconds without a datagram either way
  (frp counts only replies; counting both keeps a one-way stream on one socket), or when the
  local service answers with ICMP port unreachable; the next datagram for that user opens a
  new one.
* With ``transport.proxy_protocol_version`` set, every datagram sent for a user carries a PROXY
  header (DGRAM family) built from ``r`` and the local service address, as frp 0.65 does: a
  datagram service cannot tell the first datagram of a user from the others.
* ``Ping {}`` goes out every :data:`PING_INTERVAL` seconds: frps drops a work connection that
  stays silent for 60 s.
* When the work connection ends, every socket is closed; frps asks for a new work connection.
"""

import ipaddress
from typing import Dict, List, Optional

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.error import CannotListenError, InvalidAddressError
from twisted.internet.interfaces import IReactorTime, IReactorUDP
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from frptw.client.proxyprotocol import proxy_protocol_header
from frptw.config import ProxyConfig
from frptw.logs import FrpLogger
from frptw.transport.datagrams import Address, DatagramChannel
from frptw.transport.lazytimer import LazyTimer
from frptw.transport.sockets import listenUDP

#: frpc's keep-alive on a udp/sudp work connection (frps's read deadline is 60 s).
PING_INTERVAL = 30.0
#: A user's local socket closes after this long without traffic.
LOCAL_IDLE_TIMEOUT = 30.0


def _bindInterface(localIp: str) -> str:
    """Where a user's socket binds: loopback for a loopback service, else the wildcard of the
    service's address family (like Go's DialUDP with no local address)."""
    ip = ipaddress.ip_address(localIp)
    if ip.is_loopback:
        return localIp
    return "::" if ip.version == 6 else ""


class _LocalSocket(DatagramProtocol):
    """One user's connected UDP socket towards the local service."""

    noisy = False

    def __init__(self, forwarder: "UDPForwarder", user: Address, header: bytes) -> None:
        self.forwarder = forwarder
        self.user = user
        self.header = header  # the PROXY header put before each datagram (b"" without one)
        # Restarted by every datagram either way, fired almost never: no DelayedCall.reset
        # (a heap operation) per datagram.
        self._idle = LazyTimer(forwarder.clock, self._expired)
        self.closed = False

    def startProtocol(self) -> None:
        self._idle.start(LOCAL_IDLE_TIMEOUT)

    def touch(self) -> None:
        self._idle.start(LOCAL_IDLE_TIMEOUT)

    def send(self, payload: bytes) -> None:
        self.touch()
        self.transport.write(self.header + payload if self.header else payload)

    def datagramReceived(self, data: bytes, addr) -> None:
        self.touch()
        self.forwarder.channel.sendPacket(data, self.user)

    def readBatchStarted(self) -> None:
        """The datagrams of one read of the socket go to frps as one write."""
        self.forwarder.channel.holdWrites()

    def readBatchEnded(self) -> None:
        self.forwarder.channel.releaseWrites()

    def connectionRefused(self) -> None:
        self.forwarder._log.debug(
            "{who}: local service refused a datagram for {user}", who=self.forwarder.description, user=self.user
        )
        self.forwarder.forget(self)

    def _expired(self) -> None:
        self.forwarder.forget(self)

    def close(self) -> Deferred:
        """Stop the socket; fires once it is closed."""
        self.closed = True
        self._idle.cancel()
        return maybeDeferred(self.transport.stopListening)


class UDPForwarder:
    """Receiver of a udp/sudp work connection's :class:`DatagramChannel` (see module doc).

    :param reactor: for the UDP sockets and the timers.
    :param config: the proxy (``local_port``, PROXY protocol version, name for logs).
    :param localIp: the local service's IP address (already resolved).
    :param packetSize: read buffer of the users' sockets (``udp_packet_size``).
    """

    _log = FrpLogger()

    def __init__(self, reactor: IReactorUDP, config: ProxyConfig, localIp: str, packetSize: int) -> None:
        self.reactor = reactor
        self.clock: IReactorTime = reactor  # type: ignore[assignment]
        self.config = config
        self.localIp = localIp
        self.packetSize = packetSize
        self.description = f"[{config.name}] udp work connection"
        self.sockets: Dict[Address, _LocalSocket] = {}
        self._closing: List[Deferred] = []
        self.channel = DatagramChannel(self, self.clock, pingInterval=PING_INTERVAL, description=self.description)

    # -- DatagramReceiver ----------------------------------------------------------------
    def packetReceived(self, payload: bytes, user: Address) -> None:
        sock = self.sockets.get(user)
        if sock is None:
            sock = self._open(user)
            if sock is None:
                return
        sock.send(payload)

    def channelClosed(self, reason: Failure) -> None:
        for sock in list(self.sockets.values()):
            self.forget(sock)

    # -- users' sockets ------------------------------------------------------------------
    def _open(self, user: Address) -> Optional[_LocalSocket]:
        version = self.config.transport.proxy_protocol_version
        header = b""
        if version:
            header = proxy_protocol_header(
                version, user[0], user[1], self.localIp, self.config.local_port, transport="udp"
            )
        sock = _LocalSocket(self, user, header)
        try:
            port = listenUDP(self.reactor, 0, sock, interface=_bindInterface(self.localIp), maxPacketSize=self.packetSize)
            port.connect(self.localIp, self.config.local_port)
        except (CannotListenError, InvalidAddressError, OSError) as e:
            self._log.warn("{who}: cannot open a UDP socket for {user}: {error}", who=self.description, user=user, error=e)
            return None
        self.sockets[user] = sock
        return sock

    def forget(self, sock: _LocalSocket) -> None:
        """Close a user's socket and drop it from the table."""
        if sock.closed:
            return
        if self.sockets.get(sock.user) is sock:
            del self.sockets[sock.user]
        d = sock.close()
        self._closing.append(d)
        d.addBoth(lambda r: (self._closing.remove(d), None)[1])

    def whenSocketsClosed(self) -> Deferred:
        """Fires once every socket closed so far has finished closing (tests, shutdown)."""
        return gatherResults(list(self._closing)).addCallback(lambda _: None)
