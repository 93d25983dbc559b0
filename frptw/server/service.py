"""``FrpServerService``: frps as a Twisted service (what ``twistd frps`` runs).

The service listens on ``bind_addr:bind_port`` (every accepted connection goes through
:mod:`frptw.server.bindport`), and dispatches each logical connection by its first message:

``Login``
    Authenticated with the token (frp's error texts; only ``register control error`` when
    ``detailed_errors_to_client`` is off).  A run id is assigned when the client has none; a
    Login carrying the run id of a live control replaces it: the old control and its proxies
    are closed first, so the reconnecting client can register the same proxies and ports
    again.  Then the connection becomes a :class:`~frptw.server.control_protocol.ControlProtocol`.
``NewWorkConn``
    Put into the work-connection pool of the control with that run id (after the
    ``NewWorkConns`` scope check, which answers ``StartWorkConn`` with frp's error text).
``NewVisitorConn``
    Checked against the stcp/sudp proxy it names (:mod:`frptw.server.stcp`) and answered
    with ``NewVisitorConnResp``; an accepted one is then served like a user connection.
anything else
    Closed, with one log line.
"""

import secrets
from types import MappingProxyType
from typing import Dict, List, Mapping, Optional, Set

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import Factory
from twisted.python.failure import Failure

from frptw import FRP_VERSION
from frptw.logs import FrpLogger
from frptw.server.auth import TokenVerifier, client_error
from frptw.server.bindport import BindConnection, LogicalConnection, describePeer
from frptw.server.control_machine import ControlMachine
from frptw.server.control_protocol import ControlProtocol
from frptw.server.registry import ProxyRegistry
from frptw.server.proxy_base import BaseProxy
from frptw.transport.sockets import listenTCP, raiseFileLimit, setKeepalive
from frptw.transport.tls import serverContextFactory
from frptw.wire import messages as m
from frptw.wire.crypto import derive_key

log = FrpLogger()


class _BindFactory(Factory):
    noisy = False

    def __init__(self, service: "FrpServerService") -> None:
        self._service = service

    def buildProtocol(self, addr) -> BindConnection:
        return BindConnection(self._service)


class FrpServerService(Service):
    """frps: the bind port, the clients' control sessions and their proxies.

    :param config: a :class:`frptw.config.ServerConfig`.
    :param reactor: the reactor (and clock) to use; the global reactor by default.
    """

    def __init__(self, config, reactor=None) -> None:
        if reactor is None:
            from twisted.internet import reactor
        self.config = config
        self.reactor = reactor
        self.clock = reactor
        transport = config.transport
        self.tcpMux = bool(transport.tcp_mux)
        self.muxKeepaliveInterval = transport.tcp_mux_keepalive_interval
        tls = transport.tls
        self.tlsRequired = bool(tls.force or tls.trusted_ca_file)
        self._tlsFiles = (tls.cert_file or None, tls.key_file or None, tls.trusted_ca_file or None)
        # Configured files are read now, so a bad one fails (ConfigError) before any port is
        # opened; the self-signed certificate is only made when a client first speaks TLS.
        self._tlsContext = serverContextFactory(*self._tlsFiles) if any(self._tlsFiles) else None
        self._verifier = TokenVerifier(config.auth.token, config.auth.additional_scopes)
        self._key = derive_key(config.auth.token)
        self._registry = ProxyRegistry(config, reactor, self._key)
        self._controls: Dict[str, ControlProtocol] = {}
        self._connections: Set[BindConnection] = set()
        self.listeningPort: Optional[IListeningPort] = None
        #: The HTTPS vhost when it shares the bind port (wire-protocol.md §2.1): bind-port
        #: connections starting with a TLS handshake byte go to it instead of frp's own TLS.
        sameAddr = config.proxy_bind_addr == config.bind_addr
        self.sharedHTTPS = (self._registry.httpsVhost
                            if sameAddr and config.vhost_https_port == config.bind_port else None)
        self._vhostPorts: List[IListeningPort] = []
        #: The HTTP vhost (None without vhost_http_port); when vhost_http_port == bind_port the
        #: bind port hands it connections that start with an HTTP method (buildProtocol).
        self.httpVhost = self._registry.httpVhost
        self.sharedHTTP = self.httpVhost if sameAddr and config.vhost_http_port == config.bind_port else None
        self._listenFailure: Optional[Failure] = None
        self._listenWaiters: List[Deferred] = []

    # -- public API ----------------------------------------------------------------------------
    def whenListening(self) -> "Deferred[IListeningPort]":
        """Fires with the bind port's listening port once listening (fails if it cannot)."""
        if self.listeningPort is not None:
            return succeed(self.listeningPort)
        if self._listenFailure is not None:
            return fail(self._listenFailure)
        d: Deferred = Deferred()
        self._listenWaiters.append(d)
        return d

    def proxies(self) -> Mapping[str, BaseProxy]:
        """Running proxies by wire name (read-only, live)."""
        return self._registry.view()

    def controls(self) -> Mapping[str, ControlProtocol]:
        """Logged-in clients by run id (read-only, live)."""
        return MappingProxyType(self._controls)

    # -- service life cycle --------------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        limit = raiseFileLimit()
        if limit is not None:
            log.debug("open file limit: {limit}", limit=limit)
        try:
            self._listenVhosts()
        except CannotListenError as e:
            self._cannotListen(Failure(), e.interface, e.port)
            return
        d = maybeDeferred(listenTCP, self.reactor, self.config.bind_port, _BindFactory(self), self.config.bind_addr)
        d.addCallbacks(self._listening, self._cannotListen)

    def _listenVhosts(self) -> None:
        """Listen on the HTTPS vhost and tcpmux ports on ``proxy_bind_addr`` (not on a port
        shared with the bind port); raises CannotListenError."""
        addr = self.config.proxy_bind_addr
        https, tcpmux = self._registry.httpsVhost, self._registry.tcpmuxVhost
        if tcpmux is not None:
            self._vhostPorts.append(listenTCP(self.reactor, tcpmux.port, tcpmux, interface=addr))
            log.info("tcpmux httpconnect multiplexer listen on {addr}:{port}, passthough: {passthrough}", addr=addr,
                     port=tcpmux.port, passthrough=str(tcpmux.passthrough).lower())
        http = self._registry.httpVhost
        if http is not None and not (addr == self.config.bind_addr and http.port == self.config.bind_port):
            self._vhostPorts.append(listenTCP(self.reactor, http.port, http, interface=addr))
            log.info("http service listen on {addr}:{port}", addr=addr, port=http.port)
        if https is not None and https is not self.sharedHTTPS:
            self._vhostPorts.append(listenTCP(self.reactor, https.port, https, interface=addr))
            log.info("https service listen on {addr}:{port}", addr=addr, port=https.port)

    def _listening(self, port: IListeningPort) -> None:
        self.listeningPort = port
        host = port.getHost()
        log.info("frps tcp listen on {host}:{port}", host=host.host, port=host.port)
        log.info("frps started successfully, listening on {host}:{port}", host=host.host, port=host.port)
        waiters, self._listenWaiters = self._listenWaiters, []
        for d in waiters:
            d.callback(port)

    def _cannotListen(self, failure: Failure, addr: Optional[str] = None, port: Optional[int] = None) -> None:
        self._listenFailure = failure
        log.critical("frps cannot listen on {addr}:{port}: {error}", addr=addr or self.config.bind_addr,
                     port=port if port is not None else self.config.bind_port, error=failure.getErrorMessage())
        for vhostPort in self._vhostPorts:
            vhostPort.stopListening()
        self._vhostPorts = []
        waiters, self._listenWaiters = self._listenWaiters, []
        for d in waiters:
            d.errback(failure)

    def stopService(self) -> "Deferred[None]":
        """Stop listening, close every control (and so every proxy) and every connection."""
        super().stopService()
        waits = []
        if self.listeningPort is not None:
            waits.append(maybeDeferred(self.listeningPort.stopListening))
            self.listeningPort = None
        waits.extend(maybeDeferred(port.stopListening) for port in self._vhostPorts)
        self._vhostPorts = []
        for vhost in (self._registry.httpVhost, self._registry.httpsVhost, self._registry.tcpmuxVhost):
            if vhost is not None:
                waits.append(vhost.closeConnections())
        for control in list(self._controls.values()):
            waits.append(control.close())
        waits.append(self._registry.stopAll())
        for conn in list(self._connections):
            waits.append(conn.whenClosed())
            conn.transport.abortConnection()
        d = DeferredList(waits, consumeErrors=True)
        d.addCallback(lambda _: log.info("frps stopped"))
        return d

    # -- ConnectionHost, for frptw.server.bindport --------------------------------------------
    def tlsContextFactory(self):
        if self._tlsContext is None:
            self._tlsContext = serverContextFactory(*self._tlsFiles)
        return self._tlsContext

    def connectionOpened(self, conn: BindConnection) -> None:
        self._connections.add(conn)
        setKeepalive(conn.transport, self.config.transport.tcp_keepalive)

    def connectionClosed(self, conn: BindConnection) -> None:
        self._connections.discard(conn)

    def dispatch(self, conn: LogicalConnection, message: m.Message, leftover: bytes) -> None:
        if isinstance(message, m.Login):
            self._login(conn, message, leftover)
        elif isinstance(message, m.NewWorkConn):
            self._newWorkConn(conn, message, leftover)
        elif isinstance(message, m.NewVisitorConn):
            self._newVisitorConn(conn, message)
        else:
            log.warn("closing connection from {peer}: unexpected first message {kind}", peer=describePeer(conn.transport),
                     kind=type(message).__name__)
            conn.transport.loseConnection()

    # -- Login -----------------------------------------------------------------------------------
    def _login(self, conn: LogicalConnection, login: m.Login, leftover: bytes) -> None:
        runId = login.run_id or secrets.token_hex(8)
        log.info("[{run_id}] client login info: ip [{peer}] version [{version}] hostname [{hostname}] os [{os}] "
                 "arch [{arch}]", run_id=runId, peer=describePeer(conn.transport), version=login.version,
                 hostname=login.hostname, os=login.os, arch=login.arch)
        if self.config.auth.method != "token":
            error: Optional[str] = f"auth method [{self.config.auth.method}] is not supported by this frps"
        else:
            error = self._verifier.verify_login(login.privilege_key, login.timestamp)
        if error is not None:
            log.warn("[{run_id}] register control error: {error}", run_id=runId, error=error)
            text = client_error("register control error", error, self.config.detailed_errors_to_client)
            conn.transport.write(m.encode_message(m.LoginResp(version=FRP_VERSION, error=text)))
            conn.transport.loseConnection()
            return
        session = ControlMachine(
            login,
            runId,
            self._verifier,
            self.clock.seconds(),
            max_pool_count=self.config.transport.max_pool_count,
            heartbeat_timeout=self.config.transport.heartbeat_timeout,
            max_ports_per_client=self.config.max_ports_per_client,
            detailed_errors=self.config.detailed_errors_to_client,
        )
        control = ControlProtocol(
            session, self._registry, self._key, self.clock, self.config.user_conn_timeout, self._controlClosed
        )
        conn.switchTo(control, leftover)
        old = self._controls.get(runId)
        self._controls[runId] = control
        if old is None:
            control.start()
        else:
            old.replaced().addCallback(lambda _: control.start())

    def _controlClosed(self, control: ControlProtocol) -> None:
        if self._controls.get(control.runId) is control:
            del self._controls[control.runId]

    # -- NewWorkConn -----------------------------------------------------------------------------
    def _newWorkConn(self, conn: LogicalConnection, request: m.NewWorkConn, leftover: bytes) -> None:
        peer = describePeer(conn.transport)
        control = self._controls.get(request.run_id)
        if control is None:
            log.warn("no client control found for run id [{run_id}] (work connection from {peer})",
                     run_id=request.run_id, peer=peer)
            conn.transport.loseConnection()
            return
        error = self._verifier.verify_new_work_conn(request.privilege_key, request.timestamp)
        if error is not None:
            log.warn("[{run_id}] invalid NewWorkConn from {peer}: {error}", run_id=request.run_id, peer=peer,
                     error=error)
            text = client_error("invalid NewWorkConn", error, self.config.detailed_errors_to_client)
            conn.transport.write(m.encode_message(m.StartWorkConn(error=text)))
            conn.transport.loseConnection()
            return
        conn.hold(leftover)
        if not control.registerWorkConn(conn):
            log.debug("[{run_id}] work connection pool is full, discarding", run_id=request.run_id)
            conn.transport.loseConnection()

    # -- NewVisitorConn --------------------------------------------------------------------------
    def _newVisitorConn(self, conn: LogicalConnection, request: m.NewVisitorConn) -> None:
        error: Optional[str] = None
        visitorUser = ""  # visitors older than frp 0.50 send no run id: user ""
        if request.run_id:
            control = self._controls.get(request.run_id)
            if control is None:
                error = f"no client control found for run id [{request.run_id}]"
            else:
                visitorUser = control.session.user
        target = self._registry.visitorTarget(request.proxy_name)
        if error is None:
            if target is None:
                error = f"custom listener for [{request.proxy_name}] doesn't exist"
            else:
                error = target.refusal(request, visitorUser)
        if error is not None:
            log.warn("register visitor conn error from {peer}: {error}", peer=describePeer(conn.transport), error=error)
            text = client_error("register visitor conn error", error, self.config.detailed_errors_to_client)
            conn.transport.write(m.encode_message(m.NewVisitorConnResp(proxy_name=request.proxy_name, error=text)))
            conn.transport.loseConnection()
            return
        target.visitorConnected(conn, request)
