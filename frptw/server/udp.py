"""The ``udp`` proxy: a UDP port on ``proxy_bind_addr:remote_port`` (wire-protocol.md §8).

Unlike a tcp proxy there are no user connections.  Every datagram of every user travels over
**one** work connection of the owning client, as a framed ``UDPPacket`` whose ``r`` is the
user's address (the datagram's source); frpc answers with ``UDPPacket`` messages carrying the
same ``r``, and the proxy sends their payloads to ``r`` from its UDP socket.  frpc also sends a
``Ping`` every 30 s, which is not answered: it only proves the connection is alive.

Life cycle, as frp's server does it:

* about :data:`FIRST_WORK_CONN_DELAY` after registration (so that ``NewProxyResp`` reaches
  frpc first) the proxy asks the client's pool for a work connection, exactly as for a tcp
  user (``StartWorkConn`` with only ``proxy_name``), then stacks the AES/snappy (and, in
  server bandwidth mode, limiter) layers of the NewProxy on it;
* the connection is closed after :data:`READ_TIMEOUT` seconds without a message from frpc;
  when it closes for any reason a new one is requested at once, and after a failed request
  again every :data:`RETRY_DELAY` seconds;
* closing the proxy closes the UDP port, the work connection and any pending request.

Datagrams are read with a buffer of ``udp_packet_size`` bytes, as frp's are, so a longer one is
truncated to that size; unlike frp (silent) we log it, at most once per burst.

The message stream and its bounded queue (frp's 1024 packets; when the work connection is
slow or not there yet, further datagrams are dropped and counted, per proxy in frps's
statistics: ``frptw_server_udp_dropped_datagrams``) are
:class:`frptw.transport.datagrams.DatagramChannel`.  The channel for the *next* work
connection exists before it is connected, so datagrams arriving while there is none wait in
its queue, as they wait in frp's shared send channel.
"""

from typing import Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.error import CannotListenError, MessageLengthError
from twisted.internet.interfaces import IDelayedCall, IListeningPort
from twisted.internet.protocol import DatagramProtocol
from twisted.python.failure import Failure

from frptw.errors import ProxyError
from frptw.logs import FrpLogger
from frptw.server.ports import PortAllocator
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.transport.addresses import datagramHost, unmappedHost
from frptw.transport.datagrams import DatagramChannel, LogLimiter
from frptw.transport.sockets import listenUDP
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.wire.messages import NewProxy

log = FrpLogger()

#: Seconds between registering the proxy and asking for its work connection (frp: 500 ms).
FIRST_WORK_CONN_DELAY = 0.5

#: Seconds between attempts after a work connection could not be obtained.
RETRY_DELAY = 1.0

#: Seconds of silence from frpc (no packet, no ping) after which the work connection is dropped.
READ_TIMEOUT = 60.0

Address = Tuple[str, int]


class _UserSocket(DatagramProtocol):
    """The proxy's UDP port: hands every user datagram to the proxy."""

    noisy = False

    def __init__(self, proxy: "UDPProxy") -> None:
        self._proxy = proxy

    def datagramReceived(self, datagram: bytes, addr: Address) -> None:
        self._proxy.userDatagram(datagram, (unmappedHost(addr[0]), addr[1]))

    def send(self, datagram: bytes, user: Address) -> None:
        """``datagram`` to ``user`` (an IPv4 user of a ``::`` port as IPv4-mapped)."""
        family = getattr(self.transport, "addressFamily", None)
        self.transport.write(datagram, (datagramHost(user[0], family), user[1]))

    def readBatchStarted(self) -> None:
        """The datagrams of one read of the port go to frpc as one write."""
        self._proxy.channel.holdWrites()

    def readBatchEnded(self) -> None:
        self._proxy.channel.releaseWrites()


class UDPProxy(BaseProxy):
    """A udp proxy; raises ProxyError (frp's ``acquire port N error: ...`` texts) if it cannot
    bind its port."""

    type = "udp"

    def __init__(
        self,
        owner: ProxyOwner,
        request: NewProxy,
        key: bytes,
        reactor,
        ports: PortAllocator,
        bindAddr: str,
        packetSize: int,
    ) -> None:
        super().__init__(owner, request, key)
        self._ports = ports
        self._socket = _UserSocket(self)
        self._clock = owner.clock
        self._timer: Optional[IDelayedCall] = None
        self._pending: Optional[Deferred] = None
        #: Work connections obtained so far (the first, then one per reconnect).
        self.workConnections = 0

        self._packetSize = packetSize
        self._truncatedLog = LogLimiter(self._clock)

        def bind(port: int) -> Optional[IListeningPort]:
            try:
                listener = listenUDP(reactor, port, self._socket, interface=bindAddr, maxPacketSize=packetSize)
            except CannotListenError as e:
                log.debug("[{name}] cannot bind udp {addr}:{port}: {error}", name=self.name, addr=bindAddr,
                          port=port, error=e.socketError)
                return None
            # Read one byte more than frp does, so that a longer datagram is noticed (and
            # logged) before it is truncated to udp_packet_size like frp's read buffer does.
            listener.maxPacketSize = packetSize + 1
            return listener

        try:
            self.remote_port, listener = ports.acquire(self.name, request.remote_port, bind)
        except ProxyError as e:  # frp's udp proxy (not its tcp proxy) says which port it asked for
            raise ProxyError(f"acquire port {request.remote_port} error: {e}") from None
        self.listeners.append(listener)
        self.remote_addr = f":{self.remote_port}"
        self.channel = self._newChannel()
        log.info("[{run_id}] [{name}] udp proxy listen port [{port}]", run_id=self.runId, name=self.name,
                 port=self.remote_port)
        self._timer = self._clock.callLater(FIRST_WORK_CONN_DELAY, self._getWorkConn)

    # -- datagrams ---------------------------------------------------------------------------
    def userDatagram(self, datagram: bytes, user: Address) -> None:
        """A user sent ``datagram``: queue it for frpc (dropped if it cannot be carried)."""
        if len(datagram) > self._packetSize:
            datagram = datagram[:self._packetSize]
            unlogged = self._truncatedLog.allow()
            if unlogged is not None:
                log.warn("[{run_id}] [{name}] datagram from {user} longer than udp_packet_size {size}: truncated, "
                         "as frp does ({unlogged} more since the last line)", run_id=self.runId, name=self.name,
                         user=user, size=self._packetSize, unlogged=unlogged)
        if self.stats is not None:
            self.stats.addIn(len(datagram))
        self.channel.sendPacket(datagram, user)

    def packetReceived(self, payload: bytes, user: Address) -> None:
        """frpc sent a reply for ``user``: send it there from the proxy's port."""
        if self.stats is not None:
            self.stats.addOut(len(payload))
        try:
            self._socket.send(payload, user)
        except (OSError, OverflowError, MessageLengthError, ValueError) as e:
            # frp ignores write errors on the UDP socket too: the user is unreachable.
            log.debug("[{name}] cannot send a datagram to {user}: {error}", name=self.name, user=user, error=e)

    def channelClosed(self, reason: Failure) -> None:
        """The work connection is gone: unless the proxy is closing, get a new one now."""
        if self._closing:
            return
        log.info("[{run_id}] [{name}] udp work connection closed, getting a new one", run_id=self.runId,
                 name=self.name)
        self.channel = self._newChannel()
        self._getWorkConn()

    # -- the work connection -----------------------------------------------------------------
    def _newChannel(self) -> DatagramChannel:
        return DatagramChannel(self, self._clock, idleTimeout=READ_TIMEOUT,
                               description=f"[{self.runId}] [udp proxy {self.name}]", onDropped=self._dropped)

    def _dropped(self) -> None:
        if self.stats is not None:
            self.stats.addDropped()

    def _getWorkConn(self) -> None:
        self._timer = None
        if self._closing:
            return
        self._pending = Deferred.fromCoroutine(self._startWorkConn(None, None))
        self._pending.addCallbacks(self._attach, self._failed)

    def _attach(self, work: SwitchableProtocol) -> None:
        self._pending = None
        self.workConnections += 1
        self.stackWorkConn(work).switchTo(self.channel)

    def _failed(self, failure: Failure) -> None:
        self._pending = None
        if failure.check(CancelledError) or self._closing:
            return
        log.warn("[{run_id}] [{name}] failed to get a work connection for the udp proxy: {error}",
                 run_id=self.runId, name=self.name, error=failure.getErrorMessage())
        self._timer = self._clock.callLater(RETRY_DELAY, self._getWorkConn)

    # -- closing -----------------------------------------------------------------------------
    def close(self) -> "Deferred[None]":
        """Close the UDP port, the work connection and any pending request for one."""
        done = super().close()
        cancelCall(self._timer)
        self._timer = None
        if self._pending is not None:
            self._pending.cancel()
        self.channel.close()
        return done

    def released(self) -> None:
        self._ports.release(self.remote_port)
