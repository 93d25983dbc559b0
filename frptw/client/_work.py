"""One work connection of frpc, from ``NewWorkConn`` to a spliced byte pipe (wire-protocol.md §7).

States of a :class:`WorkConnection`::

    WAITING ──StartWorkConn──> DIALING ──local service connected──> SPLICED
       │   │                      │
       │   └──StartWorkConn, proxy with a plugin──> PLUGIN
       │                          │
       └── error / unknown proxy / local dial failed / connection lost ──> CLOSED

* ``WAITING``: ``NewWorkConn`` written; frps may keep a pooled work connection idle for as
  long as it likes, so there is no timeout.
* ``DIALING``: ``StartWorkConn`` named a running proxy; we connect to its local service (10 s).
  Bytes frps already sent after ``StartWorkConn`` are held (bounded: the switchable protocol
  pauses the connection past its buffer limit).
* ``SPLICED``: the PROXY protocol header (if configured) went to the local service first; the
  work side is stacked as the proxy asks (bandwidth limiter, then AES-CFB, then snappy,
  outermost first) and :func:`~frptw.transport.splice.splice` joins the two connections.
* ``PLUGIN``: the proxy has a client plugin (:mod:`frptw.client.plugins`): instead of dialing,
  the stacked work side goes to the plugin's ``handle`` with the ``StartWorkConn`` addresses
  and the PROXY protocol header; the plugin owns the connection from then on.
* ``FORWARDING`` (udp, sudp): instead of dialing, the layered work side carries datagrams
  (:mod:`frptw.client._udp`) once the local service's address is resolved.
"""

import ipaddress
from enum import Enum
from typing import Callable, NamedTuple, Optional

from twisted.internet.interfaces import IReactorTCP
from twisted.python.failure import Failure

from frptw.client._udp import UDPForwarder
from frptw.client.plugins import ConnectionInfo, IClientPlugin
from frptw.config import ProxyConfig
from frptw.logs import FrpLogger
from frptw.transport.bandwidth import TokenBucket
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.preamble import PreambleProtocol
from frptw.transport.sockets import quietFactory, tcpEndpoint
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import FRPTW_COMPRESSIONS
from frptw.wire.crypto import derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import NatHoleSid, NewWorkConn, StartWorkConn

LOCAL_DIAL_TIMEOUT = 10.0


class RunningProxy(NamedTuple):
    """What a work connection needs of a running proxy: its configuration, its client plugin
    (None: dial ``local_ip:local_port``) and the token bucket all its work connections spend
    when frpc limits its bandwidth (None: no limit here)."""

    config: ProxyConfig
    plugin: Optional[IClientPlugin] = None
    bucket: Optional[TokenBucket] = None


class WorkState(Enum):
    WAITING = "waiting for StartWorkConn"
    DIALING = "dialing the local service"
    SPLICED = "spliced"
    PLUGIN = "handed to the client plugin"
    FORWARDING = "forwarding datagrams"
    CLOSED = "closed"


class WorkConnection(PreambleProtocol):
    """Protocol of a new work connection (a yamux stream or its own TCP(+TLS) connection).

    :param hello: the ``NewWorkConn`` to send first.
    :param lookup: maps the proxy name in ``StartWorkConn`` to a *running* proxy, or None.
    :param token: ``auth.token``, the key material of ``use_encryption``.
    :param udpPacketSize: read buffer for the local sockets of udp/sudp proxies.
    :param xtcp: ``xtcp(config, wire name, sid)`` starts an xtcp owner's hole punching; frps
        writes ``NatHoleSid`` right after ``StartWorkConn`` on the work connection.
    """

    _log = FrpLogger()

    def __init__(
        self,
        hello: NewWorkConn,
        lookup: Callable[[str], Optional[RunningProxy]],
        reactor: IReactorTCP,
        token: str,
        udpPacketSize: int = 1500,
        xtcp: Optional[Callable[[ProxyConfig, str, str], None]] = None,
    ) -> None:
        super().__init__(greeting=hello)
        self._xtcp = xtcp
        self._udpPacketSize = udpPacketSize
        self._lookup = lookup
        self._reactor = reactor
        self._token = token
        self.state = WorkState.WAITING
        #: The compression frps chose in StartWorkConn (``""``: snappy, frp's).
        self._compression = ""
        #: The proxy's bandwidth bucket, once StartWorkConn named the proxy.
        self._bucket: Optional[TokenBucket] = None

    def badMessage(self, error: ProtocolError) -> None:
        self._log.warn("closing work connection: frps sent bad data: {error}", error=error)
        self._close(abort=True)

    def messageReceived(self, msg, leftover: bytes) -> None:
        self.hold(leftover)
        if not isinstance(msg, StartWorkConn):
            self._log.warn("closing work connection: expected StartWorkConn, got {type}", type=type(msg).__name__)
            self._close()
        else:
            self._start(msg)

    def readConnectionLost(self) -> None:
        if self.state is WorkState.WAITING:
            # frps closed an idle work connection (its pool was full, or it is shutting down):
            # close ours too, or the half-closed stream would linger on both sides.
            self._log.debug("frps closed an idle work connection")
            self._close()
            return
        super().readConnectionLost()

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        if self.state in (WorkState.WAITING, WorkState.DIALING, WorkState.FORWARDING):
            self.state = WorkState.CLOSED

    def _close(self, abort: bool = False) -> None:
        self.state = WorkState.CLOSED
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def _start(self, msg: StartWorkConn) -> None:
        if msg.error:
            self._log.warn("work connection refused by frps: {error}", error=msg.error)
            self._close()
            return
        running = self._lookup(msg.proxy_name)
        if running is None:
            self._log.warn("work connection for unknown or stopped proxy [{name}]", name=msg.proxy_name)
            self._close()
            return
        config = running.config
        if msg.frptw_compression and msg.frptw_compression not in FRPTW_COMPRESSIONS:
            self._log.warn("[{name}] frps chose compression [{c}], which was not offered", name=config.name,
                           c=msg.frptw_compression)
            self._close(abort=True)
            return
        self._compression = msg.frptw_compression
        self._bucket = running.bucket
        if config.type in ("udp", "sudp"):
            self._startDatagrams(config)
            return
        if config.type == "xtcp":
            self.state = WorkState.PLUGIN
            self.switchTo(_SidReader(self, config, msg.proxy_name))
            return
        if running.plugin is not None:
            self.state = WorkState.PLUGIN
            info = ConnectionInfo.fromStartWorkConn(msg, config.transport.proxy_protocol_version)
            running.plugin.handle(self._stack(config), info)
            return
        self.state = WorkState.DIALING
        endpoint = tcpEndpoint(self._reactor, config.local_ip, config.local_port, LOCAL_DIAL_TIMEOUT)
        d = endpoint.connect(quietFactory(SwitchableProtocol))
        d.addCallbacks(self._localConnected, self._localFailed, callbackArgs=(config, msg), errbackArgs=(config,))

    def _startDatagrams(self, config: ProxyConfig) -> None:
        self.state = WorkState.FORWARDING
        try:
            ipaddress.ip_address(config.local_ip)
        except ValueError:
            d = self._reactor.resolve(config.local_ip)
            d.addCallbacks(self._forward, self._resolveFailed, callbackArgs=(config,), errbackArgs=(config,))
        else:
            self._forward(config.local_ip, config)

    def _resolveFailed(self, failure: Failure, config: ProxyConfig) -> None:
        self._log.warn(
            "[{name}] cannot resolve local address [{ip}]: {error}", name=config.name, ip=config.local_ip, error=failure.value
        )
        if self.state is WorkState.FORWARDING:
            self._close()

    def _forward(self, localIp: str, config: ProxyConfig) -> None:
        if self.lost:  # the work connection went away while resolving
            return
        forwarder = UDPForwarder(self._reactor, config, localIp, self._udpPacketSize)
        self._stack(config).switchTo(forwarder.channel)

    def _localFailed(self, failure: Failure, config: ProxyConfig) -> None:
        self._log.warn(
            "[{name}] connect to local service [{ip}:{port}] error: {error}",
            name=config.name,
            ip=config.local_ip,
            port=config.local_port,
            error=failure.value,
        )
        if self.state is WorkState.DIALING:
            self._close()

    def _localConnected(self, local: SwitchableProtocol, config: ProxyConfig, msg: StartWorkConn) -> None:
        if self.state is not WorkState.DIALING:  # the work connection went away meanwhile
            local.transport.loseConnection()
            return
        self.state = WorkState.SPLICED
        header = ConnectionInfo.fromStartWorkConn(msg, config.transport.proxy_protocol_version).proxy_protocol_header
        if header:
            local.transport.write(header)
        splice(self._stack(config), local)

    def _stack(self, config: ProxyConfig) -> SwitchableProtocol:
        """The work side as the proxy wants it (:mod:`frptw.transport.dataplane`)."""
        transport = config.transport
        plane = DataPlane.parse(derive_key(self._token), transport.use_encryption, transport.use_compression,
                                transport.bandwidth_limit, transport.bandwidth_limit_mode)
        return stackDataPlane(self, plane.compressedWith(self._compression), "client", self._reactor, self._bucket)



class _SidReader(PreambleProtocol):
    """The rest of an xtcp work connection: one ``NatHoleSid``, then frps closes it."""

    def __init__(self, work: WorkConnection, config: ProxyConfig, wireName: str) -> None:
        super().__init__()
        self._work = work
        self._config = config
        self._wireName = wireName

    def messageReceived(self, msg, leftover: bytes) -> None:
        self.transport.loseConnection()
        if not isinstance(msg, NatHoleSid):
            self._work._log.warn("[{name}] xtcp read from workConn error: expected NatHoleSid, got {type}",
                                 name=self._config.name, type=type(msg).__name__)
        elif self._work._xtcp is not None:
            self._work._xtcp(self._config, self._wireName, msg.sid)

    def badMessage(self, error: ProtocolError) -> None:
        self._work._log.warn("[{name}] xtcp read from workConn error: {error}", name=self._config.name, error=error)
        self.transport.abortConnection()
