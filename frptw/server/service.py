"""``FrpServerService``: frps as a Twisted service (what ``twistd frps`` runs).

The service listens on ``bind_addr:bind_port`` (every accepted connection goes through
:mod:`frptw.server.bindport`, hosted by :mod:`frptw.server.dispatch`, which also answers its
first message) and on the vhost ports, and closes everything when stopped.  Its public face is small on purpose:
``whenListening()``, ``whenProxyRunning(name)`` and frozen snapshots of the running proxies
and logged-in clients (:mod:`frptw.server.records`); the live protocol objects stay inside.

Process-wide settings (the open-file limit, the log level) are the program's business
(:mod:`frptw.tap`), not the service's: an application embedding frps keeps its own.
"""

from types import MappingProxyType
from typing import FrozenSet, List, Mapping, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptw.errors import ConfigError
from frptw.logs import FrpLogger
from frptw.server._event import whenAll
from frptw.server.bindport import BindConnection, LogicalConnectionFactory
from frptw.server.control_protocol import ControlProtocol
from frptw.server.dispatch import Dispatcher
from frptw.server.plugins import PluginManager
from frptw.server.proxy_base import BaseProxy
from frptw.server.proxy_conf import JSONObject, proxy_conf
from frptw.server.records import ClientRecord, ProxyRecord, clientRecord, proxyRecord
from frptw.server.registry import ProxyRegistry
from frptw.server.stats import ServerStats
from frptw.transport.sockets import listenTCP
from frptw.wire import messages as m
from frptw.wire.crypto import derive_key

log = FrpLogger()


class _BindFactory(Factory):
    noisy = False

    def __init__(self, host: Dispatcher) -> None:
        self._host = host

    def buildProtocol(self, addr) -> BindConnection:
        return BindConnection(self._host)


class FrpServerService(Service):
    """frps: the bind port, the clients' control sessions and their proxies.

    :param config: a :class:`frptw.config.ServerConfig`.
    :param reactor: the reactor to listen with; the global reactor by default.
    :param clock: the clock of frps's timers (deadlines, heartbeats, work-connection waits,
        vhost timeouts); the reactor by default.
    """

    def __init__(self, config, reactor=None, clock: Optional[IReactorTime] = None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self._reactor = reactor
        clock = reactor if clock is None else clock
        key = derive_key(config.auth.token)
        #: Traffic and connection statistics, kept (as frp keeps them) only when the dashboard
        #: is configured: without one nothing is counted.
        self.stats: Optional[ServerStats] = ServerStats(clock) if config.web_server.port > 0 else None
        self._registry = ProxyRegistry(config, reactor, key, clock, self.stats)
        self._plugins = PluginManager(config.http_plugins, reactor, clock)
        self._dispatcher = Dispatcher(config, clock, key, self._registry, self._plugins, self._reactor)
        self._listeningPort: Optional[IListeningPort] = None
        #: The QUIC port (``quic_bind_port``) and its protocol, when configured.
        self._quicPort: Optional[IListeningPort] = None
        self._quicListener = None
        #: The KCP port (``kcp_bind_port``) and its protocol, when configured.
        self._kcpPort: Optional[IListeningPort] = None
        self._kcpListener = None
        self._vhostPorts: List[IListeningPort] = []
        self._listenFailure: Optional[Failure] = None
        #: The dashboard's web server (frptw.web.WebServer), when webServer.port is set.
        self._dashboard = None
        self._listenWaiters: List[Deferred] = []
        # frps drops the nat-hole score tables of pairs unseen for the reserve hours, hourly.
        self._natHoleCleaner = LoopingCall(self._registry.natHole.clean)
        self._natHoleCleaner.clock = clock

    # -- public API ----------------------------------------------------------------------------
    def whenListening(self) -> "Deferred[IListeningPort]":
        """Fires with the bind port's listening port once listening (fails if it cannot)."""
        if self._listeningPort is not None:
            return succeed(self._listeningPort)
        if self._listenFailure is not None:
            return fail(self._listenFailure)
        d: Deferred = Deferred()
        self._listenWaiters.append(d)
        return d

    def proxies(self) -> Mapping[str, ProxyRecord]:
        """A snapshot of the running proxies, by wire name."""
        return MappingProxyType({name: self._record(proxy) for name, proxy in self._registry.view().items()})

    def clients(self) -> Mapping[str, ClientRecord]:
        """A snapshot of the logged-in clients, by run id."""
        return MappingProxyType({runId: clientRecord(control)
                                 for runId, control in self._dispatcher.controls.items()})

    def proxyConf(self, name: str) -> Optional[JSONObject]:
        """The configuration of the running proxy ``name`` as frp's dashboard shows it (v1
        keys, :mod:`frptw.server.proxy_conf`), or None if no such proxy runs."""
        proxy = self._registry.view().get(name)
        if proxy is None:
            return None
        return proxy_conf(proxy.request, proxy.type, proxy.remote_port)

    def whenProxyRunning(self, name: str) -> "Deferred[ProxyRecord]":
        """Fires with the record of the proxy called ``name`` (its wire name) once frps has
        started it for a client (at once if it runs already); cancelled if the service stops
        first.  The client learns of it a moment later, from ``NewProxyResp``."""
        return self._registry.whenRunning(name).addCallback(self._record)

    def _record(self, proxy: BaseProxy) -> ProxyRecord:
        control = self._dispatcher.controls.get(proxy.runId)
        return proxyRecord(proxy, control.login if control is not None else m.Login())

    # -- for tests only: the live objects behind the snapshots ---------------------------------
    def _liveProxies(self) -> Mapping[str, BaseProxy]:
        """Tests only: the running proxy objects, by wire name (read-only, live)."""
        return self._registry.view()

    def _liveControls(self) -> Mapping[str, ControlProtocol]:
        """Tests only: the logged-in clients' control connections, by run id (read-only, live)."""
        return MappingProxyType(self._dispatcher.controls)

    def _liveConnections(self) -> FrozenSet[BindConnection]:
        """Tests only: the open bind-port connections."""
        return frozenset(self._dispatcher.connections)

    # -- service life cycle --------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._listenFailure = None
        if self.stats is not None:
            self.stats.start()
        self._natHoleCleaner.start(3600, now=False)
        try:
            self._listenVhosts()
        except CannotListenError as e:
            self._cannotListen(Failure(), e.interface, e.port)
            return
        # OIDC: the issuer is read before frps listens, as Go frps does (which panics if it cannot).
        self._dispatcher.startAuth().addCallbacks(self._listenBindPort, self._authFailed)

    def _listenBindPort(self, _: object = None) -> None:
        if not self.running:
            return
        d = self._listenDashboard()
        d.addCallback(lambda _: listenTCP(self._reactor, self.config.bind_port, _BindFactory(self._dispatcher),
                                          self.config.bind_addr))
        d.addCallbacks(self._listening, self._cannotListen)

    def _listenDashboard(self) -> Deferred:
        """Listen for the dashboard, if configured (twisted.web is loaded only then); frp does
        not start without its dashboard either."""
        if self.stats is None:
            return succeed(None)
        from frptw.server.dashboard import dashboardServer

        self._dashboard = dashboardServer(self, self._reactor)
        return self._dashboard.listen()

    def _listenVhosts(self) -> None:
        """Listen on the HTTPS vhost and tcpmux ports on ``proxy_bind_addr`` (not on a port
        shared with the bind port); raises CannotListenError."""
        addr = self.config.proxy_bind_addr
        https, tcpmux = self._registry.httpsVhost, self._registry.tcpmuxVhost
        if tcpmux is not None:
            self._vhostPorts.append(listenTCP(self._reactor, tcpmux.port, tcpmux, interface=addr))
            log.info("tcpmux httpconnect multiplexer listen on {addr}:{port}, passthough: {passthrough}", addr=addr,
                     port=tcpmux.port, passthrough=str(tcpmux.passthrough).lower())
        http = self._registry.httpVhost
        if http is not None and not (addr == self.config.bind_addr and http.port == self.config.bind_port):
            self._vhostPorts.append(listenTCP(self._reactor, http.port, http, interface=addr))
            log.info("http service listen on {addr}:{port}", addr=addr, port=http.port)
        if https is not None and https is not self._dispatcher.sharedHTTPS:
            self._vhostPorts.append(listenTCP(self._reactor, https.port, https, interface=addr))
            log.info("https service listen on {addr}:{port}", addr=addr, port=https.port)

    def _listenKcp(self) -> None:
        """Listen on ``kcp_bind_port`` (UDP): each KCP conversation is a bind-port connection."""
        from frptw.transport.kcp import KcpListener

        self._kcpListener = KcpListener(self._reactor, _BindFactory(self._dispatcher))
        self._kcpPort = self._reactor.listenUDP(self.config.kcp_bind_port, self._kcpListener,
                                                interface=self.config.bind_addr)
        log.info("frps kcp listen on udp {addr}:{port}", addr=self.config.bind_addr, port=self.config.kcp_bind_port)

    def _listenQuic(self) -> None:
        """Listen on ``quic_bind_port`` (UDP): each stream a client opens is a logical connection."""
        from frptw.transport.quicudp import QuicListener, clientCertificateCheck, serverConfiguration

        transport = self.config.transport
        tls = transport.tls
        configuration = serverConfiguration(transport.quic, tls.cert_file, tls.key_file)
        checkClient = clientCertificateCheck(tls.trusted_ca_file) if tls.trusted_ca_file else None
        self._quicListener = QuicListener(self._reactor, configuration, transport.quic,
                                          LogicalConnectionFactory(self._dispatcher), checkClient)
        self._quicPort = self._reactor.listenUDP(self.config.quic_bind_port, self._quicListener,
                                                 interface=self.config.bind_addr)
        log.info("frps quic listen on {addr}:{port}", addr=self.config.bind_addr, port=self.config.quic_bind_port)

    def _listening(self, port: IListeningPort) -> None:
        self._listeningPort = port
        host = port.getHost()
        log.info("frps tcp listen on {host}:{port}", host=host.host, port=host.port)
        for udpPort, listen in ((self.config.kcp_bind_port, self._listenKcp),
                                (self.config.quic_bind_port, self._listenQuic)):
            if not udpPort:
                continue
            try:
                listen()
            except (CannotListenError, ConfigError) as e:
                port.stopListening()
                self._listeningPort = None
                self._cannotListen(Failure(e), self.config.bind_addr, udpPort)
                return
        log.info("frps started successfully, listening on {host}:{port}", host=host.host, port=host.port)
        waiters, self._listenWaiters = self._listenWaiters, []
        for d in waiters:
            d.callback(port)

    def _authFailed(self, failure: Failure) -> None:
        log.critical("frps cannot start: the OIDC issuer {issuer} could not be read: {error}",
                     issuer=self.config.auth.oidc.issuer, error=failure.getErrorMessage())
        self._failStart(failure)

    def _cannotListen(self, failure: Failure, addr: Optional[str] = None, port: Optional[int] = None) -> None:
        if failure.check(CannotListenError):
            addr, port = failure.value.interface, failure.value.port
        log.critical("frps cannot listen on {addr}:{port}: {error}", addr=addr or self.config.bind_addr,
                     port=port if port is not None else self.config.bind_port, error=failure.getErrorMessage())
        self._failStart(failure)

    def _failStart(self, failure: Failure) -> None:
        """The service cannot serve: it stops itself (closing what it opened, its timers
        included) and fails whoever waits to hear it listens.  The process is left alone:
        ``twistd frps`` is what exits, as Go frps does."""
        self._listenFailure = failure
        waiters, self._listenWaiters = self._listenWaiters, []
        if self.running:
            self.stopService()
        for d in waiters:
            d.errback(failure)

    def stopService(self) -> "Deferred[None]":
        """Stop listening, close every control (and so every proxy) and every connection."""
        super().stopService()
        if self.stats is not None:
            self.stats.stop()
        waits = []
        if self._listeningPort is not None:
            waits.append(maybeDeferred(self._listeningPort.stopListening))
            self._listeningPort = None
        if self._quicPort is not None:
            self._quicListener.closeAll()
            waits.append(maybeDeferred(self._quicPort.stopListening))
            self._quicPort = None
        if self._kcpPort is not None:
            self._kcpListener.closeAll()
            waits.append(maybeDeferred(self._kcpPort.stopListening))
            self._kcpPort = None
        waits.extend(maybeDeferred(port.stopListening) for port in self._vhostPorts)
        self._vhostPorts = []
        if self._dashboard is not None:
            waits.append(self._dashboard.stop())
        for vhost in (self._registry.httpVhost, self._registry.httpsVhost, self._registry.tcpmuxVhost):
            if vhost is not None:
                waits.append(vhost.closeConnections())
        self._registry.cancelWaiters()
        if self._natHoleCleaner.running:
            self._natHoleCleaner.stop()
        self._registry.natHole.stop()
        waits.append(self._dispatcher.closeControls())
        waits.append(self._registry.stopAll())
        waits.append(self._dispatcher.abortConnections())
        waits.append(self._plugins.close())
        d = whenAll(waits)
        d.addCallback(lambda _: log.info("frps stopped"))
        return d
