"""Visitors: the frpc side that reaches another client's stcp or sudp proxy (wire-protocol.md §9).

Theory of operation.  A visitor listens locally (TCP for stcp, UDP for sudp) and, per user
connection (stcp) or per tunnel (sudp), opens a new logical connection to frps -- a yamux stream
of the session, or a new TCP(+TLS) connection, exactly like a work connection -- through the
``connect`` callable the service gives it.  A :class:`VisitorConnection` runs on it:

    HELLO ──connectionMade: NewVisitorConn──> WAITING ──NewVisitorConnResp ok──> OPEN
                                                 │
               error answer / 10 s / connection lost ──> CLOSED (one log line)

``NewVisitorConn`` names ``<server_user or own user>.<server_name>`` and proves knowledge of the
secret key with ``sign_key = md5(sk + timestamp)``.  Once open, the connection is layered with
AES-128-CFB keyed by ``derive_key(sk)`` and/or snappy, per the visitor's own settings, and:

* stcp: spliced with the user connection, which was paused since it was accepted;
* sudp: switched to a :class:`~frptw.transport.datagrams.DatagramChannel`; every datagram from a
  local user goes out as a ``UDPPacket`` whose ``r`` is that user's address, and replies go back
  to ``r``.  The tunnel closes after :data:`SUDP_IDLE_TIMEOUT` s without any message (the owner
  pings every 30 s) and is opened again on the next datagram.
"""

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IProtocol
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.python.failure import Failure

from frptw.config import ClientConfig, VisitorConfig
from frptw.errors import ConfigError, ConnectionClosed, ProxyError, VisitorNotFound
from frptw.logs import FrpLogger
from frptw.transport.addresses import datagramHost, unmappedHost
from frptw.transport.datagrams import Address, DatagramChannel
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.preamble import PreambleProtocol
from frptw.transport.sockets import listenTCP
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.wire.auth import privilege_key
from frptw.wire.codec import FRPTW_COMPRESSIONS
from frptw.wire.crypto import derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import NewVisitorConn, NewVisitorConnResp

NEW = "new"
RUNNING = "running"
START_ERROR = "start error"
CLOSED = "closed"

#: How long a visitor waits for NewVisitorConnResp.
RESPONSE_TIMEOUT = 10.0
#: An sudp tunnel closes after this long without a message.
SUDP_IDLE_TIMEOUT = 60.0

#: Opens a logical connection to frps for a protocol; fires once it is connected.
Connector = Callable[[IProtocol], Deferred]

_log = FrpLogger(namespace="frptw.client.visitor")


class VisitorConnection(PreambleProtocol):
    """A visitor's logical connection to frps (see the module docstring for its states).

    :attr:`ready` fires with the switchable protocol above the visitor-leg layers once frps
    accepted us, and fails with :class:`~frptw.errors.ProxyError` (frps's text) or
    :class:`~frptw.errors.ConnectionClosed`.
    """

    def __init__(self, hello: NewVisitorConn, config: VisitorConfig, clock) -> None:
        super().__init__(greeting=hello)
        self._config = config
        self._clock = clock
        self._timer: Optional[IDelayedCall] = None
        self.ready: Deferred = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self._clock.callLater(RESPONSE_TIMEOUT, self._timedOut)

    def _timedOut(self) -> None:
        self._timer = None
        self._fail(ConnectionClosed(f"no NewVisitorConnResp from frps within {RESPONSE_TIMEOUT:g} s"), abort=True)

    def _cancelTimer(self) -> None:
        cancelCall(self._timer)
        self._timer = None

    def _fail(self, error: Exception, abort: bool = False) -> None:
        self._cancelTimer()
        if not self.ready.called:
            self.ready.errback(error)
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def badMessage(self, error: ProtocolError) -> None:
        self._fail(ConnectionClosed(f"frps sent bad data: {error}"), abort=True)

    def messageReceived(self, msg, leftover: bytes) -> None:
        self._cancelTimer()
        if not isinstance(msg, NewVisitorConnResp):
            self._fail(ConnectionClosed(f"expected NewVisitorConnResp, got {type(msg).__name__}"))
            return
        if msg.error:
            self._fail(ProxyError(msg.error))
            return
        if msg.frptw_compression and msg.frptw_compression not in FRPTW_COMPRESSIONS:
            self._fail(ConnectionClosed(f"frps chose compression {msg.frptw_compression!r}, which was not offered"),
                       abort=True)
            return
        transport = self._config.transport
        plane = DataPlane(derive_key(self._config.secret_key), transport.use_encryption, transport.use_compression)
        plane = plane.compressedWith(msg.frptw_compression)
        self.ready.callback(stackDataPlane(self, plane, "client", self._clock, leftover=leftover))

    def connectionLost(self, reason: Failure) -> None:
        self._cancelTimer()
        super().connectionLost(reason)
        if not self.ready.called:
            self.ready.errback(ConnectionClosed(f"connection to frps lost: {reason.getErrorMessage()}"))


class _Visitor:
    """What stcp and sudp visitors share: their config and how to open a visitor connection."""

    def __init__(self, config: VisitorConfig, user: str, reactor, connect: Connector, runId: Callable[[], str]) -> None:
        self.config = config
        self.user = user
        self.reactor = reactor
        self._connect = connect
        self._runId = runId
        self.port: Optional[IListeningPort] = None
        self.state = NEW
        #: Why the visitor does not listen (``start error``).
        self.error = ""

    @property
    def status(self) -> "VisitorStatus":
        port = self.port.getHost().port if self.port is not None else None
        return _record(self.config, self.state, self.error, port)

    def hello(self) -> NewVisitorConn:
        """The NewVisitorConn for a new connection, signed now."""
        timestamp = int(self.reactor.seconds())
        return NewVisitorConn(
            run_id=self._runId(),
            proxy_name=self.config.target_wire_name(self.user),
            sign_key=privilege_key(self.config.secret_key, timestamp),
            timestamp=timestamp,
            use_encryption=self.config.transport.use_encryption,
            use_compression=self.config.transport.use_compression,
            # Go frps ignores the offer (and so stays with snappy).
            frptw_compressions=list(FRPTW_COMPRESSIONS) if self.config.transport.use_compression else [],
        )

    def open(self) -> VisitorConnection:
        """Open a visitor connection to frps; errors end up in its ``ready`` (and are logged)."""
        conn = VisitorConnection(self.hello(), self.config, self.reactor)
        self._connect(conn).addErrback(self._connectFailed, conn)
        conn.ready.addErrback(self._refused)
        return conn

    def _connectFailed(self, failure: Failure, conn: VisitorConnection) -> None:
        if not conn.ready.called:
            conn.ready.errback(failure)

    def _refused(self, failure: Failure) -> Failure:
        _log.warn("[{name}] start new visitor connection error: {error}", name=self.config.name, error=failure.value)
        return failure

    def stop(self) -> Deferred:
        self.state = CLOSED
        port, self.port = self.port, None
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)


class _UserConnection(SwitchableProtocol):
    """A local user of an stcp visitor: paused until its visitor connection is open."""

    def __init__(self, visitor: "STCPVisitor") -> None:
        super().__init__(pauseOnConnect=True)
        self.visitor = visitor

    def connectionMade(self) -> None:
        super().connectionMade()
        self.visitor.userConnected(self)


class _UserFactory(Factory):
    noisy = False

    def __init__(self, visitor) -> None:
        self.visitor = visitor

    def buildProtocol(self, addr) -> _UserConnection:
        return _UserConnection(self.visitor)


class STCPVisitor(_Visitor):
    """Listens on ``bind_addr:bind_port`` (nowhere when negative) and tunnels each user
    connection through its own visitor connection."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.users: List[_UserConnection] = []

    def listen(self) -> None:
        if self.config.bind_port >= 0:
            self.port = listenTCP(self.reactor, self.config.bind_port, _UserFactory(self), interface=self.config.bind_addr)

    def userConnected(self, user: _UserConnection) -> None:
        self.users.append(user)
        conn = self.open()
        conn.ready.addCallbacks(self._opened, self._failed, callbackArgs=(user, conn), errbackArgs=(user,))

    def _opened(self, top: SwitchableProtocol, user: _UserConnection, conn: VisitorConnection) -> None:
        if user.lost:
            conn.transport.loseConnection()
            self._done(None, user)
            return
        splice(top, user).addCallback(self._done, user)

    def _failed(self, failure: Failure, user: _UserConnection) -> None:
        if not user.lost:
            user.transport.loseConnection()
        self._done(None, user)

    def _done(self, _: None, user: _UserConnection) -> None:
        if user in self.users:
            self.users.remove(user)

    def stop(self) -> Deferred:
        for user in list(self.users):
            user.transport.abortConnection()
        return super().stop()


class SUDPVisitor(_Visitor, DatagramProtocol):
    """Listens on UDP ``bind_addr:bind_port`` and carries every local user's datagrams through
    one tunnel, opened on demand."""

    noisy = False

    def __init__(self, *args, packetSize: int = 1500, **kwargs) -> None:
        _Visitor.__init__(self, *args, **kwargs)
        self.packetSize = packetSize
        self.channel: Optional[DatagramChannel] = None

    def listen(self) -> None:
        if self.config.bind_port < 0:
            raise ConfigError(f"bind port {self.config.bind_port}: sudp visitors need a UDP port to listen on")
        self.port = self.reactor.listenUDP(
            self.config.bind_port, self, interface=self.config.bind_addr, maxPacketSize=self.packetSize
        )

    def datagramReceived(self, data: bytes, addr) -> None:
        user = (unmappedHost(addr[0]), addr[1])
        if self.channel is not None:
            self.channel.sendPacket(data, user)
            return
        channel = self.channel = DatagramChannel(
            self, self.reactor, idleTimeout=SUDP_IDLE_TIMEOUT, description=f"[{self.config.name}] sudp visitor tunnel"
        )
        channel.sendPacket(data, user)  # queued (bounded) until the tunnel is open
        self._openTunnel(channel)

    def _openTunnel(self, channel: DatagramChannel) -> None:
        """Open the visitor connection ``channel`` runs on.  It may fail at once (frpc is not
        logged in while frps is down): ``channel`` is already :attr:`channel` by then, so
        :meth:`_tunnelFailed` drops it and the next datagram tries again, instead of every
        later datagram landing in a dead channel."""
        conn = self.open()
        conn.ready.addCallbacks(lambda top: top.switchTo(channel), self._tunnelFailed, errbackArgs=(channel,))

    def _tunnelFailed(self, failure: Failure, channel: DatagramChannel) -> None:
        channel.close()
        if self.channel is channel:
            self.channel = None

    # -- DatagramReceiver ----------------------------------------------------------------
    def packetReceived(self, payload: bytes, user: Address) -> None:
        if self.transport is not None:
            family = getattr(self.transport, "addressFamily", None)
            self.transport.write(payload, (datagramHost(user[0], family), user[1]))

    def channelClosed(self, reason: Failure) -> None:
        self.channel = None

    def stop(self) -> Deferred:
        channel, self.channel = self.channel, None
        if channel is not None:
            channel.close()
        return super().stop()


class XTCPVisitorRunner(_Visitor):
    """An xtcp visitor: listens like an stcp visitor, carries each user connection over the P2P
    tunnel (:class:`frptw.client._xtcp.XTCPVisitor`), or hands it to its ``fallback_to`` visitor
    when no tunnel is ready within ``fallback_timeout_ms``."""

    def __init__(self, *args, clientConfig: ClientConfig, exchange, lookup: Callable[[str], Optional[_Visitor]],
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        from frptw.client._xtcp import XTCPVisitor  # aioquic only for configurations that use xtcp

        self.tunnel = XTCPVisitor(self.reactor, clientConfig, self.config, self.user, exchange)
        self._lookup = lookup
        self.users: List[_UserConnection] = []

    def listen(self) -> None:
        if self.config.bind_port > 0:
            self.port = listenTCP(self.reactor, self.config.bind_port, _UserFactory(self), interface=self.config.bind_addr)
        self.tunnel.start()

    def userConnected(self, user: _UserConnection) -> None:
        self.users.append(user)
        fallback = self.config.fallback_to
        timeout = self.config.fallback_timeout_ms / 1000.0 if fallback else None
        from frptw.client._xtcp import OPEN_TUNNEL_TIMEOUT

        d = self.tunnel.tunnel(timeout if timeout is not None else OPEN_TUNNEL_TIMEOUT)
        d.addCallbacks(self._opened, self._failed, callbackArgs=(user,), errbackArgs=(user,))

    def _opened(self, session, user: _UserConnection) -> None:
        if user.lost:
            self._forget(user)
            return
        d = self.tunnel.openStream(session, SwitchableProtocol())
        d.addCallback(lambda top: splice(top, user).addCallback(lambda _: self._forget(user)))
        d.addErrback(self._failed, user)

    def _failed(self, failure: Failure, user: _UserConnection) -> None:
        self._forget(user)
        if user.lost:
            return
        _log.warn("[{name}] open tunnel error: {error}", name=self.config.name, error=failure.getErrorMessage())
        fallback = self.config.fallback_to
        target = self._lookup(fallback) if fallback else None
        if isinstance(target, STCPVisitor):
            _log.debug("[{name}] try to transfer connection to visitor: {to}", name=self.config.name, to=fallback)
            target.userConnected(user)
            return
        if fallback:
            _log.warn("[{name}] transfer connection to visitor {to} error: visitor not found", name=self.config.name,
                      to=fallback)
        user.transport.loseConnection()

    def _forget(self, user: _UserConnection) -> None:
        if user in self.users:
            self.users.remove(user)

    def stop(self) -> Deferred:
        self.tunnel.stop()
        for user in list(self.users):
            user.transport.abortConnection()
        return super().stop()


@dataclass(frozen=True)
class VisitorStatus:
    """A snapshot of one visitor, as ``FrpClientService.visitors()`` lists it.

    ``status`` is ``new`` (the service has not started), ``running`` (listening, or not meant
    to listen: ``bindPort < 0``), ``start error`` (``err`` says why) or ``closed`` (removed);
    ``bind_port`` is the port it listens on -- the one the system chose when ``bindPort = 0``
    -- or None when it does not listen.
    """

    name: str
    type: str
    server_name: str
    status: str
    err: str = ""
    bind_addr: str = ""
    bind_port: Optional[int] = None


class VisitorManager:
    """The visitors of one frpc: started with the service, stopped with it, added and removed
    at run time through the service.

    :param connect: opens a logical connection to frps (fails when not logged in).
    :param runId: the current session's run id.
    """

    def __init__(self, config: ClientConfig, reactor, connect: Connector, runId: Callable[[], str],
                 natHole=None) -> None:
        self._config = config
        self._natHole = natHole
        self._user = config.user
        self._reactor = reactor
        self._connect = connect
        self._runId = runId
        self._packetSize = config.udp_packet_size
        self._started = False
        self.visitors: Dict[str, _Visitor] = {}
        #: Configured visitors this client cannot run, with the reason; logged by :meth:`start`.
        self.unsupported: Dict[str, Tuple[VisitorConfig, str]] = {}
        for cfg in config.visitors:
            try:
                self.visitors[cfg.name] = self._build(cfg)
            except ConfigError as e:
                self.unsupported[cfg.name] = (cfg, str(e))

    def _build(self, cfg: VisitorConfig) -> "_Visitor":
        """The visitor for ``cfg``; ConfigError if this client cannot run it."""
        args = (cfg, self._user, self._reactor, self._connect, self._runId)
        if cfg.plugin is not None:
            raise ConfigError(f"visitor plugin {cfg.plugin.type!r} is not supported by this frpc")
        if cfg.type == "stcp":
            return STCPVisitor(*args)
        if cfg.type == "sudp":
            return SUDPVisitor(*args, packetSize=self._packetSize)
        if cfg.type == "xtcp" and self._natHole is not None:
            return XTCPVisitorRunner(*args, clientConfig=self._config, exchange=self._natHole, lookup=self.visitors.get)
        raise ConfigError(f"{cfg.type} visitors are not supported by this frpc")

    def _listen(self, visitor: "_Visitor") -> Optional[Exception]:
        """Make ``visitor`` listen; the error (logged, and kept in its status) if it cannot."""
        try:
            visitor.listen()
        except (CannotListenError, ConfigError) as e:  # ConfigError: an sudp visitor without a port
            visitor.state, visitor.error = START_ERROR, str(e)
            _log.error("[{name}] start visitor error: {error}", name=visitor.config.name, error=e)
            return e
        visitor.state, visitor.error = RUNNING, ""
        _log.info("[{name}] start visitor success", name=visitor.config.name)
        return None

    def start(self) -> None:
        self._started = True
        for name, (_, reason) in self.unsupported.items():
            _log.warn("[{name}] {reason}", name=name, reason=reason)
        for visitor in self.visitors.values():
            self._listen(visitor)

    def add(self, cfg: VisitorConfig) -> VisitorStatus:
        """Add a visitor and, once started, make it listen.  Raises ConfigError (duplicate name,
        unsupported visitor) or the listening error; the visitor is then not added."""
        if cfg.name in self.visitors or cfg.name in self.unsupported:
            raise ConfigError(f"visitor [{cfg.name}] already exists")
        visitor = self._build(cfg)
        error = self._listen(visitor) if self._started else None
        if error is not None:
            raise error
        self.visitors[cfg.name] = visitor
        return visitor.status

    def remove(self, name: str) -> Deferred:
        """Stop and forget a visitor; fires once its listener is closed."""
        if self.unsupported.pop(name, None) is not None:
            return succeed(None)
        visitor = self.visitors.pop(name, None)
        if visitor is None:
            raise VisitorNotFound(name)
        return visitor.stop()

    def configs(self) -> Dict[str, VisitorConfig]:
        """Every visitor's configuration (unsupported ones included), by name."""
        found = {name: visitor.config for name, visitor in self.visitors.items()}
        found.update((name, cfg) for name, (cfg, _) in self.unsupported.items())
        return found

    def loggedIn(self) -> None:
        """A control session logged in: xtcp visitors that keep their tunnel open punch now."""
        for visitor in self.visitors.values():
            if isinstance(visitor, XTCPVisitorRunner):
                visitor.tunnel.loggedIn()

    def statuses(self) -> List[VisitorStatus]:
        """Snapshots of every visitor, sorted by name."""
        records = [v.status for v in self.visitors.values()]
        records += [_record(cfg, START_ERROR, reason) for cfg, reason in self.unsupported.values()]
        return sorted(records, key=lambda r: r.name)

    def stop(self) -> Deferred:
        return gatherResults([v.stop() for v in self.visitors.values()]).addCallback(lambda _: None)


def _record(cfg: VisitorConfig, state: str, error: str = "", port: Optional[int] = None) -> VisitorStatus:
    return VisitorStatus(cfg.name, cfg.type, cfg.server_name, state, error, cfg.bind_addr, port)
