"""frpc as a Twisted service: connect, log in, keep the session alive, serve work connections.

Theory of operation
-------------------
Reconnecting is Twisted's :class:`~twisted.application.internet.ClientService`.  Its endpoint
is :class:`_SessionEndpoint`, whose ``connect`` only succeeds once frps has *accepted our
Login*: it dials frps (TCP, the websocket for `websocket`/`wss`, TLS, then a yamux session when tcp_mux is on), runs a
:class:`~frptw.client._control_protocol.ControlProtocol` on the control stream and fires when
``LoginResp`` was positive.  So a refused login counts as a failed connection attempt for the
retry policy (:class:`~frptw.client._reconnect.ReconnectPolicy`, frp's back-off), and the
"connection" ``ClientService`` then holds stands for the whole logged-in session: it is lost
when the TCP connection to frps is gone, which makes ``ClientService`` log in again with the
same run id, and the new session registers every proxy of the table again.  (Logging in from
``prepareConnection`` instead would not work: when a connection it rejected closes later,
Twisted 26.10's ClientService state machine raises ``NoTransition`` from ``connectionLost``.)

With ``login_fail_exit`` (frp's default) the first failed attempt is fatal: the service stops
itself, fails :meth:`FrpClientService.whenLoggedIn` with the reason (a
:class:`~frptw.errors.LoginError` carrying frps's text when frps refused us) and calls
``onFatal`` if one was given.  The service never acts on the process: exiting, like frpc does,
is the program's decision, which ``twistd frpc`` (:mod:`frptw.tap`) makes by passing an
``onFatal`` that exits with status 1.

Health checks (:mod:`frptw.client._health`) run for the service's lifetime, across sessions:
a proxy found unhealthy is withdrawn from frps (CloseProxy) and registered again (NewProxy)
once healthy; while unhealthy, a new session does not register it.

Work connections are new yamux streams of the session's connection, or (tcp_mux off) new
TCP(+TLS) connections; see :mod:`frptw.client._work`.
"""

from typing import Callable, Dict, List, Optional, Set, Tuple

from twisted.application.internet import ClientService
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, fail, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client._control_machine import ControlState
from frptw.client._control_protocol import ControlProtocol
from frptw.client._health import HealthChecker, probeFor
from frptw.client._health_machine import isChecked
from frptw.client._nathole_exchange import NatHoleExchange
from frptw.client._proxies import CHECK_FAILED, NEW, RUNNING, WAIT_START, ProxyEntry, ProxyStatus, ProxyTable
from frptw.client._reconnect import ReconnectPolicy
from frptw.client._reload import applyConfig
from frptw.client._visitors import VisitorManager, VisitorStatus
from frptw.client._work import RunningProxy, WorkConnection
from frptw.client.plugins import PluginContext, buildPlugin
from frptw.config import ClientConfig, ProxyConfig, VisitorConfig
from frptw.config.proxies import wire_name
from frptw.errors import ConfigError, ConnectionClosed, LoginError, ProxyError, ProxyNotFound, VisitorNotFound
from frptw.logs import FrpLogger
from frptw.transport.sockets import quietFactory, setKeepalive, tcpEndpoint
from frptw.transport.splice import widenWriteBuffer
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.transport.tls import clientContextFactory, startClientTLS
from frptw.transport.yamux import YamuxSession
from frptw.wire.auth import TokenSigner
from frptw.wire.messages import NewWorkConn

#: After a graceful close, how long the connection to frps may take to flush before it is aborted.
CLOSE_GRACE = 5.0

_log = FrpLogger(namespace="frptw.client")


class _RootProtocol(SwitchableProtocol):
    """The raw TCP connection to frps; :attr:`whenLost` fires (with None; the reason is
    :attr:`lostReason`) after the stack above saw the end."""

    def __init__(self, keepalive: int = -1) -> None:
        super().__init__()
        #: ``transport.dial_server_keepalive``: TCP keep-alive period towards frps.
        self.keepalive = keepalive
        self.whenLost: Deferred = Deferred()
        self.lostReason: Optional[Failure] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        widenWriteBuffer(self.transport)
        setKeepalive(self.transport, self.keepalive)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.lostReason = reason
        self.whenLost.callback(None)


class _Dialer:
    """Opens one connection to frps as frp 0.65's connector does: TCP (with the configured
    timeout and source address) to frps, or to the forward proxy of ``transport.proxyURL`` and
    through its tunnel (HTTP CONNECT or SOCKS5), then per ``transport.protocol``:

    * ``tcp``: TLS when enabled (after the ``0x17`` byte unless disabled);
    * ``websocket``: the websocket upgrade, then TLS inside it when enabled (``0x17`` likewise);
    * ``wss``: TLS always (never ``0x17``), then the upgrade inside it, addressed to the TLS
      server name alone.

    Fires with ``(root, top)``: the raw connection and the protocol the frp bytes go through."""

    def __init__(self, config: ClientConfig, reactor) -> None:
        transport = config.transport
        local = transport.connect_server_local_ip
        self._reactor = reactor
        self._timeout = transport.dial_server_timeout
        self._proxy = None
        if transport.proxy_url and transport.protocol != "kcp":  # KCP (UDP) never takes the proxy, as in frp
            from frptw.wire.tunnels import parse_proxy_url  # h11: only for configurations with a proxy

            self._proxy = parse_proxy_url(transport.proxy_url)
        self._target = (config.server_addr, config.server_port)
        host, port = (self._proxy.host, self._proxy.port) if self._proxy else self._target
        self._endpoint = tcpEndpoint(
            reactor, host, port, transport.dial_server_timeout, bindAddress=(local, 0) if local else None
        )
        tls = transport.tls
        protocol = transport.protocol
        serverName = tls.server_name or config.server_addr
        self._tls = None
        if tls.enable or protocol == "wss":
            self._tls = clientContextFactory(
                serverName,
                tls.trusted_ca_file or None,
                tls.cert_file or None,
                tls.key_file or None,
            )
        self._customFirstByte = not tls.disable_custom_tls_first_byte and protocol != "wss"
        self._websocket = None
        self._tlsUnderWebSocket = protocol == "wss"
        if protocol in ("websocket", "wss"):
            from frptw.transport.websocket import WebSocketDialer  # autobahn: only for these transports

            if protocol == "websocket":
                self._websocket = WebSocketDialer(config.server_addr, config.server_port)
            else:
                self._websocket = WebSocketDialer(serverName, None)
        self._keepalive = transport.dial_server_keepalive
        self._kcp = transport.protocol == "kcp"
        self._config = config
        self.description = f"{config.server_addr}:{config.server_port}"

    def dial(self) -> Deferred:
        if self._kcp:
            return self._dialKcp().addCallback(self._stack)
        d = self._endpoint.connect(quietFactory(lambda: _RootProtocol(self._keepalive)))
        return d.addCallback(self._stack)

    def _stack(self, root: _RootProtocol) -> Deferred:
        d = succeed(root)
        if self._proxy is not None:
            d.addCallback(self._startTunnel)
        if self._tlsUnderWebSocket:
            d.addCallback(self._startTLS)
        if self._websocket is not None:
            d.addCallback(self._websocket.start)
        if self._tls is not None and not self._tlsUnderWebSocket:
            d.addCallback(self._startTLS)

        def failed(failure: Failure) -> Failure:
            root.transport.abortConnection()
            return failure

        return d.addCallbacks(lambda top: (root, top), failed)

    def _startTunnel(self, proto: SwitchableProtocol) -> Deferred:
        from frptw.transport.tunnel import startTunnel
        from frptw.wire.tunnels import tunnel_client

        client = tunnel_client(self._proxy, *self._target)
        return startTunnel(proto, client, self._reactor, self._timeout)

    def _startTLS(self, proto: SwitchableProtocol) -> SwitchableProtocol:
        return startClientTLS(proto, self._tls, self._customFirstByte)

    def _dialKcp(self) -> Deferred:
        """A KCP conversation with frps (UDP to its kcpBindPort) carrying a root protocol."""
        from frptw.transport.kcp import dialKcp  # only for configurations that use it

        config = self._config

        def run(session) -> _RootProtocol:
            root = _RootProtocol()
            session.connect(root)
            return root

        d = dialKcp(self._reactor, config.server_addr, config.server_port, config.transport.connect_server_local_ip)
        return d.addCallback(run)


class _Session:
    """A logged-in session: its TCP connection, its control session and its yamux session
    (None with tcp_mux off)."""

    def __init__(self, root: _RootProtocol, control: ControlProtocol, mux: Optional[YamuxSession]) -> None:
        self.root = root
        self.control = control
        self.mux = mux


class _SessionLink:
    """What ClientService sees as the transport of its connection: closing it ends the
    session gracefully (CloseProxy for each proxy first)."""

    def __init__(self, session: _Session, reactor) -> None:
        self._session = session
        self._reactor = reactor

    def loseConnection(self) -> None:
        self._session.control.close()
        closeGracefully(self._session.root, self._reactor)

    def getPeer(self):
        return self._session.root.transport.getPeer()

    def getHost(self):
        return self._session.root.transport.getHost()


def closeGracefully(root: _RootProtocol, reactor) -> None:
    """Close a connection to frps, flushing first, but abort it if that takes too long."""
    if root.whenLost.called:
        return
    root.transport.loseConnection()
    timer = reactor.callLater(CLOSE_GRACE, root.transport.abortConnection)
    root.whenLost.addBoth(lambda r: (cancelCall(timer), r)[1])


class _LoginAttempt:
    """One connection attempt of ClientService: dial, stack, log in.  Cancellable throughout."""

    def __init__(self, service: "FrpClientService", factory) -> None:
        self._service = service
        self._factory = factory
        self._root: Optional[_RootProtocol] = None
        self._dialing: Optional[Deferred] = None
        self.result: Deferred = Deferred(self._cancel)

    def start(self) -> Deferred:
        credentials = self._service._credentials
        if credentials is None:
            self._dial(None)
        else:  # OIDC: a token first (frp's "couldn't generate OIDC token for login")
            self._dialing = credentials.fresh()
            self._dialing.addCallbacks(self._dial, self._tokenFailed)
        return self.result

    def _dial(self, _: object) -> None:
        if self.result.called:  # cancelled meanwhile
            return
        self._dialing = self._service._dialer.dial()
        self._dialing.addCallbacks(self._connected, self._failed)

    def _tokenFailed(self, failure: Failure) -> None:
        if not failure.check(CancelledError):
            _log.error("login to frps failed: {error}", error=failure.getErrorMessage())
        self._failed(failure)

    def _cancel(self, _: Deferred) -> None:
        if self._root is not None:
            self._root.transport.abortConnection()
        elif self._dialing is not None:
            self._dialing.cancel()

    def _failed(self, failure: Failure) -> None:
        if not self.result.called:
            self.result.errback(failure)

    def _connected(self, pair: Tuple[_RootProtocol, Optional[SwitchableProtocol]]) -> None:
        root, top = pair  # top is None for QUIC: every logical connection is a stream of root.session
        self._dialing = None
        if self.result.called:  # cancelled while dialing
            root.transport.abortConnection()
            return
        self._root = root
        service = self._service
        mux = None
        if top is None:
            mux = root.session
        elif service.config.transport.tcp_mux:
            mux = YamuxSession(
                isClient=True,
                clock=service._reactor,
                keepaliveInterval=service.config.transport.tcp_mux_keepalive_interval,
            )
        control = ControlProtocol(
            service.config, service._proxies, service._reactor, service.runId, lambda hello: service._openWork(hello, mux),
            service._sign,
            natHole=service._natHole.answered,
        )
        service._control = control
        if mux is not None:
            if top is not None:
                top.switchTo(mux)
            mux.openStream(control).addErrback(self._streamFailed, root)
        else:
            top.switchTo(control)
        control.ended.addCallback(lambda _: closeGracefully(root, service._reactor))
        root.whenLost.addCallback(self._lostEarly, root)
        control.loggedIn.addCallbacks(self._loggedIn, self._failed, callbackArgs=(root, control, mux))

    def _streamFailed(self, failure: Failure, root: _RootProtocol) -> None:
        self._failed(failure)
        root.transport.abortConnection()

    def _lostEarly(self, _: None, root: _RootProtocol) -> None:
        if not self.result.called:
            why = root.lostReason.getErrorMessage()
            self.result.errback(ConnectionClosed(f"connection to frps lost during login: {why}"))

    def _loggedIn(self, _resp, root: _RootProtocol, control: ControlProtocol, mux: Optional[YamuxSession]) -> None:
        if self.result.called:  # cancelled while logging in
            return
        if control.state is not ControlState.RUNNING:
            self.result.errback(ConnectionClosed("control session ended right after login"))
            return
        proto = self._factory.buildProtocol(root.transport.getPeer())
        session = _Session(root, control, mux)
        proto.makeConnection(_SessionLink(session, self._service._reactor))
        root.whenLost.addCallback(self._service._sessionDown, session, proto)
        self.result.callback(proto)
        # Last: whoever waits for the login may stop the service at once, which ClientService
        # must see as closing a connection it holds, not as cancelling an attempt.
        self._service._sessionUp(session)


@implementer(IStreamClientEndpoint)
class _SessionEndpoint:
    """ClientService's endpoint: "connected" means "logged in to frps"."""

    def __init__(self, service: "FrpClientService") -> None:
        self._service = service

    def connect(self, protocolFactory) -> Deferred:
        attempt = _LoginAttempt(self._service, protocolFactory)
        return attempt.start().addErrback(self._service._attemptFailed)

    def __repr__(self) -> str:
        return f"<frps {self._service._dialer.description}>"


class FrpClientService(Service):
    """frpc: keeps a session with frps and serves the configured proxies.

    :param config: a ``frptw.config`` ClientConfig.
    :param reactor: the reactor (default: the global one); also the clock.
    :param onFatal: called with the Failure after the service stopped itself because the first
        login failed and ``login_fail_exit`` is set (default: nothing more).
    """

    def __init__(
        self, config: ClientConfig, reactor=None, onFatal: Optional[Callable[[Failure], None]] = None
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self._reactor = reactor
        self._onFatal = onFatal
        #: Why the service stopped itself (login_fail_exit), for later whenLoggedIn() calls.
        self._fatalFailure: Optional[Failure] = None
        if config.transport.protocol == "quic":
            from frptw.client._quicdial import QuicDialer  # aioquic only for configurations that use it

            self._dialer = QuicDialer(config, reactor)
        else:
            self._dialer = _Dialer(config, reactor)
        #: OIDC's token source (None with tokens); its ``fields`` sign our messages.
        self._credentials = None
        self._sign: Callable[[float], dict] = TokenSigner(config.auth.token)
        if config.auth.method == "oidc":
            from frptw.client._oidc import OIDCCredentials  # the HTTP client: only for OIDC

            self._credentials = OIDCCredentials(config.auth, reactor)
            self._sign = self._credentials.fields
        self._proxies = ProxyTable(config.user, config.server_addr)
        for proxy in config.proxies:
            self._proxies.add(proxy)
        self._policy = ReconnectPolicy(reactor)
        self._clientService: Optional[ClientService] = None
        self._session: Optional[_Session] = None
        #: The control protocol of the latest attempt (logging in or logged in): proxies added
        #: while it logs in are queued by it and registered at login.
        self._control: Optional[ControlProtocol] = None
        self._everLoggedIn = False
        self._loginWaiters: List[Deferred] = []
        self._workRoots: Set[_RootProtocol] = set()
        #: The running health checkers, by proxy name.
        self._checkers: Dict[str, HealthChecker] = {}
        #: xtcp requests on the control connection and their NatHoleResp answers.
        self._natHole = NatHoleExchange(reactor, self._sendControl)
        #: The xtcp owner sessions being punched or served.
        self._xtcpRuns: Set = set()
        self._visitors = VisitorManager(config, reactor, self._openVisitorConnection, lambda: self.runId,
                                        natHole=self._natHole)
        #: The run id frps gave us; sent again on every reconnect.
        self.runId = ""

    # -- IService -------------------------------------------------------------------------
    def startService(self) -> None:
        if self._clientService is not None:
            return
        super().startService()
        self._fatalFailure = None
        for entry in self._proxies:
            self._startPlugin(entry)
            if not entry.sendable:
                _log.warn("[{name}] {error}", name=entry.config.name, error=entry.error)
            self._startChecking(entry)
        self._visitors.start()
        self._clientService = ClientService(
            _SessionEndpoint(self),
            Factory.forProtocol(Protocol),
            retryPolicy=self._policy,
            clock=self._reactor,
        )
        self._clientService.startService()

    def stopService(self) -> Deferred:
        super().stopService()
        clientService, self._clientService = self._clientService, None
        if clientService is None:
            return succeed(None)
        self._failLoginWaiters(Failure(ConnectionClosed("frpc service stopped")))
        self._proxies.abandon("frpc service stopped")
        for name in list(self._checkers):
            self._stopChecking(name)
        for entry in self._proxies:
            self._stopPlugin(entry)
        for root in list(self._workRoots):
            root.transport.abortConnection()
        if self._credentials is not None:
            self._credentials.stop()
        for run in list(self._xtcpRuns):
            run.stop()
        return gatherResults([self._visitors.stop(), clientService.stopService()]).addCallback(lambda _: None)

    # -- public API -----------------------------------------------------------------------
    def whenLoggedIn(self) -> Deferred:
        """Fires with the run id once a session is logged in (now, if one is).  Fails with the
        reason if the service stopped itself because the first login failed (login_fail_exit),
        and with ConnectionClosed if the service is stopped while waiting."""
        if self._session is not None:
            return succeed(self.runId)
        if self._fatalFailure is not None:
            return fail(self._fatalFailure)
        d: Deferred = Deferred()
        self._loginWaiters.append(d)
        return d

    def addProxy(self, proxyConfig: ProxyConfig) -> Deferred:
        """Register a proxy; fires with its ProxyStatus once frps accepted it, fails with
        ProxyError (frps's text) if frps refused it."""
        try:
            self._proxies.add(proxyConfig)
        except ProxyError:
            return fail()
        entry = self._proxies.get(proxyConfig.name)
        if self._clientService is not None:
            self._startPlugin(entry)
        d = self._proxies.waitStarted(proxyConfig.name)
        if self._clientService is not None:
            self._startChecking(entry)
        if self._control is not None:
            self._control.registerProxy(proxyConfig.name)
        return d

    def removeProxy(self, name: str) -> Deferred:
        """Unregister a proxy (CloseProxy to frps); fails with ProxyNotFound."""
        try:
            entry = self._proxies.remove(name)
        except ProxyNotFound:
            return fail()
        self._stopPlugin(entry)
        self._stopChecking(name)
        if self._control is not None:
            self._control.unregisterProxy(name)
        return succeed(None)

    def proxyStatus(self, name: str) -> ProxyStatus:
        """A snapshot of one proxy; raises ProxyNotFound."""
        return self._proxies.get(name).status

    def proxies(self) -> List[ProxyStatus]:
        """Snapshots of every proxy, sorted by name (what frpc's ``/api/status`` lists)."""
        return self._proxies.statuses()

    def whenProxyRunning(self, name: str) -> Deferred:
        """Fires with the proxy's ProxyStatus once it runs (at once if it does); fails with
        ProxyError (frps's text) if frps refuses it, ProxyNotFound for an unknown name, and
        ConnectionClosed if the service stops first."""
        try:
            return self._proxies.whenRunning(name)
        except ProxyNotFound:
            return fail()

    def addVisitor(self, visitorConfig: VisitorConfig) -> Deferred:
        """Add an stcp or sudp visitor; fires with its VisitorStatus once it listens (at once
        if the service runs, else it listens when the service starts).  Fails with ConfigError
        (name taken, unsupported visitor) or the listening error, and then nothing is added."""
        try:
            return succeed(self._visitors.add(visitorConfig))
        except (ConfigError, CannotListenError):
            return fail()

    def removeVisitor(self, name: str) -> Deferred:
        """Close a visitor's listener and forget it; fails with VisitorNotFound."""
        try:
            return self._visitors.remove(name)
        except VisitorNotFound:
            return fail()

    def visitors(self) -> List[VisitorStatus]:
        """Snapshots of every visitor, sorted by name."""
        return self._visitors.statuses()

    def proxyConfigs(self) -> Dict[str, ProxyConfig]:
        """The configuration of every proxy, by name."""
        return {entry.config.name: entry.config for entry in self._proxies}

    def visitorConfigs(self) -> Dict[str, VisitorConfig]:
        """The configuration of every visitor (running or not), by name."""
        return self._visitors.configs()

    def wireName(self, name: str) -> str:
        """The name frps knows a proxy by: ``user.name`` when ``user`` is set (frp 0.65's
        admin API and log lines show this one)."""
        return wire_name(self.config.user, name)

    @property
    def everLoggedIn(self) -> bool:
        """Whether a session was ever logged in (frp's ``/api/status`` is ``{}`` before)."""
        return self._everLoggedIn

    def applyConfig(self, config: ClientConfig) -> Deferred:
        """Hot reload: run exactly ``config``'s proxies and visitors, touching only those that
        are new, gone or changed (frp's reload; other settings need a restart).  Fires with the
        :class:`~frptw.client._reload.ConfigDiff` applied."""
        return applyConfig(self, config.proxies, config.visitors)

    # -- client plugins -------------------------------------------------------------------
    def _startPlugin(self, entry: ProxyEntry) -> None:
        """Build the proxy's client plugin (frp builds it when the proxy starts); options it
        cannot use leave the proxy in ``start error`` with the reason."""
        config = entry.config
        if entry.pluginOptions is None:
            if config.plugin is not None:
                _log.warn("[{name}] plugin {type} ignored: {proxyType} proxies have no plugins", name=config.name,
                          type=config.plugin.type, proxyType=config.type)
            return
        if entry.plugin is not None or not entry.sendable:
            return
        try:
            entry.plugin = buildPlugin(entry.pluginOptions, PluginContext(config.name, self._reactor))
        except ConfigError as e:
            entry.refuse(f"plugin {entry.pluginOptions.type}: {e}")

    def _stopPlugin(self, entry: ProxyEntry) -> None:
        plugin, entry.plugin = entry.plugin, None
        if plugin is not None:
            plugin.close().addErrback(lambda f: _log.failure("[{name}] closing plugin", f, name=entry.config.name))

    # -- health checks --------------------------------------------------------------------
    def _startChecking(self, entry: ProxyEntry) -> None:
        name = entry.config.name
        if not entry.sendable or not isChecked(entry.config) or name in self._checkers:
            return
        entry.healthy = False  # as frp: unregistered until the first check of this run succeeds
        checker = HealthChecker(
            name,
            entry.config,
            self._reactor,
            probeFor(self._reactor, entry.config),
            lambda healthy: self._healthChanged(name, healthy),
        )
        self._checkers[name] = checker
        checker.start()

    def _stopChecking(self, name: str) -> None:
        checker = self._checkers.pop(name, None)
        if checker is not None:
            checker.stop()

    def _healthChanged(self, name: str, healthy: bool) -> None:
        """frp's proxy wrapper: withdraw an unhealthy proxy from frps, register it once healthy."""
        entry = self._proxies.get(name)
        entry.healthy = healthy
        if healthy:
            _log.info("[{name}] health check success", name=name)
            if entry.state == CHECK_FAILED:
                entry.update(NEW)
            if self._control is not None:
                self._control.registerProxy(name)
            return
        _log.info("[{name}] health check failed", name=name)
        if entry.state in (WAIT_START, RUNNING):
            entry.update(CHECK_FAILED)
        if self._control is not None:
            self._control.unregisterProxy(name)

    # -- sessions -------------------------------------------------------------------------
    def _sessionUp(self, session: _Session) -> None:
        self._session = session
        self._everLoggedIn = True
        self.runId = session.control.runId
        self._policy.loggedIn()
        self._visitors.loggedIn()
        waiters, self._loginWaiters = self._loginWaiters, []
        for d in waiters:
            d.callback(self.runId)

    def _sessionDown(self, _: None, session: _Session, proto: Protocol) -> None:
        if self._session is session:
            self._session = None
        self._policy.sessionLost()
        proto.connectionLost(session.root.lostReason)

    def _attemptFailed(self, failure: Failure) -> Failure:
        if failure.check(CancelledError):
            return failure
        if not failure.check(LoginError):  # the session logged frps's text already
            _log.warn("connect to frps [{server}] failed: {error}", server=self._dialer.description, error=failure.value)
        if not self._everLoggedIn and self.config.login_fail_exit and self._clientService is not None:
            # Let ClientService finish handling this failure before we stop it.
            self._reactor.callLater(0, self._fatal, failure)
        return failure

    def _fatal(self, failure: Failure) -> None:
        if self._clientService is None:
            return
        _log.critical(
            "login to frps failed and login_fail_exit is set, stopping: {error}", error=failure.value
        )
        self._fatalFailure = failure
        waiters, self._loginWaiters = self._loginWaiters, []

        def stopped(_: object) -> None:
            if self._onFatal is not None:
                self._onFatal(failure)
            for d in waiters:
                d.errback(failure)

        self.stopService().addBoth(stopped)

    def _failLoginWaiters(self, failure: Failure) -> None:
        waiters, self._loginWaiters = self._loginWaiters, []
        for d in waiters:
            d.errback(failure)

    # -- work connections -----------------------------------------------------------------
    def _runningProxy(self, wireName: str) -> Optional[RunningProxy]:
        entry = self._proxies.find(self._proxies.localName(wireName))
        if entry is None or entry.state != RUNNING:
            return None
        return RunningProxy(entry.config, entry.plugin, entry.bandwidthBucket(self._reactor))

    def _openWork(self, hello: NewWorkConn, mux: Optional[YamuxSession]) -> None:
        """Open a work connection: a stream of the session's yamux ``mux``, or (None) a new
        connection to frps."""
        work = WorkConnection(
            hello, self._runningProxy, self._reactor, self.config.auth.token, self.config.udp_packet_size,
            xtcp=self._startXTCP,
        )
        self._openLogical(work, mux).addErrback(self._workFailed)

    def _sendControl(self, message) -> None:
        control = self._control
        if control is None:
            raise ConnectionClosed("not logged in to frps")
        control.sendMessage(message)

    def _startXTCP(self, config: ProxyConfig, wireName: str, sid: str) -> None:
        """frps woke an xtcp proxy of ours for session ``sid``: punch and serve the tunnel."""
        from frptw.client._xtcp import XTCPOwnerRun  # aioquic only for configurations that use xtcp

        if self._clientService is None:
            return
        run = XTCPOwnerRun(self._reactor, self.config, config, wireName, self._natHole, sid)
        self._xtcpRuns.add(run)
        run.done.addBoth(lambda _: run.session.whenClosed() if run.session is not None else None)
        run.done.addBoth(lambda _: self._xtcpRuns.discard(run))

    def _openLogical(self, protocol: Protocol, mux: Optional[YamuxSession]) -> Deferred:
        """Connect ``protocol`` to frps over a new logical connection: a stream of ``mux``, or
        (None) a new TCP(+TLS) connection.  Fires with ``protocol`` once connected."""
        if mux is not None:
            return mux.openStream(protocol)
        return self._dialer.dial().addCallback(self._dialed, protocol)

    def _dialed(self, pair: Tuple[_RootProtocol, SwitchableProtocol], protocol: Protocol) -> Protocol:
        root, top = pair
        if self._clientService is None:
            root.transport.abortConnection()
            raise ConnectionClosed("frpc service stopped")
        self._workRoots.add(root)
        root.whenLost.addBoth(lambda r: self._workRoots.discard(root))
        top.switchTo(protocol)
        return protocol

    def _openVisitorConnection(self, protocol: Protocol) -> Deferred:
        """A logical connection for a visitor, over the current session (§9.1)."""
        if self._session is None:
            return fail(ConnectionClosed("not logged in to frps"))
        return self._openLogical(protocol, self._session.mux)

    def _workFailed(self, failure: Failure) -> None:
        _log.warn("could not open a work connection to frps: {error}", error=failure.value)

