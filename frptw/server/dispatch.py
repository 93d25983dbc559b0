"""What frps does with the connections to its bind port, once :mod:`frptw.server.bindport` has
read them: the host of every bind-port connection.

:class:`Dispatcher` is the :class:`~frptw.server.bindport.ConnectionHost`: it holds the
settings a bind-port connection follows (TLS, yamux, the vhosts that share the port), keeps the
open connections (so stopping frps can close them), and answers the first message of each
logical connection as frp does:

``Login``
    First shown to the server plugins that take ``Login`` (they may reject or rewrite it,
    :mod:`frptw.server.plugins`), then authenticated with the token (frp's error texts; only ``register control error`` when
    ``detailed_errors_to_client`` is off).  A run id is assigned when the client has none; a
    Login carrying the run id of a live control replaces it: the old control and its proxies
    are closed first, so the reconnecting client can register the same proxies and ports
    again.  Then the connection becomes a :class:`~frptw.server.control_protocol.ControlProtocol`.
``NewWorkConn``
    Put into the work-connection pool of the control with that run id (after the
    ``NewWorkConn`` plugins and the ``NewWorkConns`` scope check, either of which may refuse it
    with ``StartWorkConn`` carrying frp's error text).
``NewVisitorConn``
    Checked against the stcp/sudp proxy it names (:mod:`frptw.server.stcp`) and answered
    with ``NewVisitorConnResp``; an accepted one is then served like a user connection.
anything else
    Closed, with one log line.

The dispatcher keeps the logged-in clients by run id, since all three messages are about them.
While the plugins are asked, the connection waits (what arrives is held); if it closes in the
meantime, the answer is dropped.
"""

import secrets
from typing import Dict, List, Optional, Set

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IProtocolFactory, IReactorTime

from frptw import FRP_VERSION
from frptw.errors import PluginRejected
from frptw.logs import FrpLogger
from frptw.server import plugin_rpc as rpc
from frptw.server._event import whenAll
from frptw.server.auth import TokenVerifier, client_error
from frptw.server.bindport import BindConnection, LogicalConnection
from frptw.server.control_machine import ControlMachine
from frptw.server.control_protocol import ControlProtocol
from frptw.server.plugins import PluginManager
from frptw.server.registry import ProxyRegistry
from frptw.transport.addresses import describePeer
from frptw.transport.sockets import setKeepalive
from frptw.transport.tls import serverContextFactory
from frptw.wire import messages as m

log = FrpLogger()


class Dispatcher:
    """The host of frps's bind-port connections; turns each logical connection into what its
    first message asks for.

    :param config: the :class:`frptw.config.ServerConfig`; a TLS file it names is read now, so
        that a bad one fails (``ConfigError``) before any port is opened.
    :param clock: the clock of the connections' deadlines and of the control sessions.
    :param key: the token's AES key (control connections are encrypted with it).
    :param plugins: the server plugins.
    :param reactor: what OIDC's HTTP requests run on (default: ``clock``).
    """

    def __init__(self, config, clock: IReactorTime, key: bytes, registry: ProxyRegistry,
                 plugins: PluginManager, reactor=None) -> None:
        self._config = config
        self._plugins = plugins
        self.clock = clock
        #: Checks the proof in Login (and, per scope, Ping and NewWorkConn): the token, or OIDC
        #: (whose issuer the service contacts before it listens, :meth:`startAuth`).
        self._verifier = TokenVerifier(config.auth.token, config.auth.additional_scopes)
        if config.auth.method == "oidc":
            from frptw.server.oidc import oidcVerifier  # the HTTP client and JOSE: only for OIDC

            self._verifier = oidcVerifier(config.auth, clock, reactor or clock)
        self._key = key
        self._registry = registry
        transport = config.transport
        self.tcpMux = bool(transport.tcp_mux)
        self.muxKeepaliveInterval = transport.tcp_mux_keepalive_interval
        tls = transport.tls
        self.tlsRequired = bool(tls.force or tls.trusted_ca_file)
        self._tlsFiles = (tls.cert_file or None, tls.key_file or None, tls.trusted_ca_file or None)
        # The self-signed certificate is only made when a client first speaks TLS.
        self._tlsContext = serverContextFactory(*self._tlsFiles) if any(self._tlsFiles) else None
        # A vhost on the bind port itself (wire-protocol.md §2.1): bind-port connections that
        # start with a TLS handshake byte go to the HTTPS vhost instead of frp's own TLS, those
        # that start with an HTTP method to the HTTP vhost.
        sameAddr = config.proxy_bind_addr == config.bind_addr
        self.sharedHTTPS: Optional[IProtocolFactory] = (
            registry.httpsVhost if sameAddr and config.vhost_https_port == config.bind_port else None)
        self.sharedHTTP: Optional[IProtocolFactory] = (
            registry.httpVhost if sameAddr and config.vhost_http_port == config.bind_port else None)
        #: The open bind-port connections.
        self.connections: Set[BindConnection] = set()
        #: The logged-in clients' control connections, by run id.
        self.controls: Dict[str, ControlProtocol] = {}

    # -- ConnectionHost ------------------------------------------------------------------------
    def tlsContextFactory(self):
        if self._tlsContext is None:
            self._tlsContext = serverContextFactory(*self._tlsFiles)
        return self._tlsContext

    def connectionOpened(self, conn: BindConnection) -> None:
        self.connections.add(conn)
        setKeepalive(conn.transport, self._config.transport.tcp_keepalive)

    def connectionClosed(self, conn: BindConnection) -> None:
        self.connections.discard(conn)

    def dispatch(self, conn: LogicalConnection, message: m.Message, leftover: bytes) -> None:
        """Answer the first message of ``conn`` (``leftover``: the bytes read after it)."""
        if isinstance(message, m.Login):
            self._login(conn, message, leftover)
        elif isinstance(message, m.NewWorkConn):
            self._newWorkConn(conn, message, leftover)
        elif isinstance(message, m.NewVisitorConn):
            self._newVisitorConn(conn, message)
        else:
            log.warn("closing connection from {peer}: unexpected first message {kind}",
                     peer=describePeer(conn.transport), kind=type(message).__name__)
            conn.transport.loseConnection()

    def startAuth(self) -> "Deferred[None]":
        """Whatever authentication needs before the first client: OIDC's discovery document
        and keys (fails if the issuer cannot be read, as Go frps does not start then)."""
        start = getattr(self._verifier, "start", None)
        return start() if start is not None else succeed(None)

    def closeControls(self) -> "Deferred[None]":
        """Close every control (and so its proxies); fires when all are closed."""
        return whenAll([control.close() for control in list(self.controls.values())])

    def abortConnections(self) -> "Deferred[None]":
        """Abort every bind-port connection; fires when all are closed."""
        waits: List[Deferred] = []
        for conn in list(self.connections):
            waits.append(conn.whenClosed())
            conn.transport.abortConnection()
        return whenAll(waits)

    def _refuse(self, conn: LogicalConnection, answer: m.Message) -> None:
        conn.transport.write(m.encode_message(answer))
        conn.transport.loseConnection()

    # -- Login -----------------------------------------------------------------------------------
    def _login(self, conn: LogicalConnection, login: m.Login, leftover: bytes) -> None:
        if not self._plugins.handles(rpc.LOGIN):
            self._register(conn, login, leftover)
            return
        d = self._plugins.login(login, describePeer(conn.transport))
        d.addCallbacks(lambda changed: self._register(conn, changed, leftover),
                       lambda f: self._pluginRefusedLogin(conn, login, f))
        d.addErrback(lambda f: log.failure("login of {peer}", f, peer=describePeer(conn.transport)))

    def _pluginRefusedLogin(self, conn: LogicalConnection, login: m.Login, failure) -> None:
        if failure.check(CancelledError):
            return  # frps is stopping
        failure.trap(PluginRejected)
        if conn.lost:
            return
        error = failure.getErrorMessage()
        log.warn("register control error of {peer}: {error}", peer=describePeer(conn.transport), error=error)
        text = client_error("register control error", error, self._config.detailed_errors_to_client)
        self._refuse(conn, m.LoginResp(version=FRP_VERSION, error=text))

    def _register(self, conn: LogicalConnection, login: m.Login, leftover: bytes) -> None:
        """Authenticate ``login`` and make ``conn`` its client's control connection."""
        if conn.lost:
            log.info("login of {peer} dropped: the connection closed", peer=describePeer(conn.transport))
            return
        runId = login.run_id or secrets.token_hex(8)
        log.info("[{run_id}] client login info: ip [{peer}] version [{version}] hostname [{hostname}] os [{os}] "
                 "arch [{arch}]", run_id=runId, peer=describePeer(conn.transport), version=login.version,
                 hostname=login.hostname, os=login.os, arch=login.arch)
        verdict = self._verifier.verify_login(login.privilege_key, login.timestamp)
        if isinstance(verdict, Deferred):  # OIDC fetching the issuer's keys again
            verdict.addCallback(lambda error: self._authenticated(conn, login, runId, leftover, error))
            verdict.addErrback(lambda f: log.failure("login of {peer}", f, peer=describePeer(conn.transport)))
            return
        self._authenticated(conn, login, runId, leftover, verdict)

    def _authenticated(self, conn: LogicalConnection, login: m.Login, runId: str, leftover: bytes,
                       error: Optional[str]) -> None:
        """Refuse ``login`` with ``error``, or make ``conn`` the control connection of ``runId``."""
        config = self._config
        if conn.lost:
            log.info("login of {peer} dropped: the connection closed", peer=describePeer(conn.transport))
            return
        if error is not None:
            log.warn("[{run_id}] register control error: {error}", run_id=runId, error=error)
            text = client_error("register control error", error, config.detailed_errors_to_client)
            self._refuse(conn, m.LoginResp(version=FRP_VERSION, error=text))
            return
        machine = ControlMachine(
            login,
            runId,
            self._verifier,
            self.clock.seconds(),
            max_pool_count=config.transport.max_pool_count,
            heartbeat_timeout=config.transport.heartbeat_timeout,
            max_ports_per_client=config.max_ports_per_client,
            detailed_errors=config.detailed_errors_to_client,
        )
        control = ControlProtocol(
            machine, self._registry, self._key, self.clock, config.user_conn_timeout, self._controlClosed,
            self._plugins,
        )
        conn.switchTo(control, leftover)
        old = self.controls.get(runId)
        self.controls[runId] = control
        if old is None:
            control.start()
        else:
            old.replaced().addCallback(lambda _: control.start())

    def _controlClosed(self, control: ControlProtocol) -> None:
        if self.controls.get(control.runId) is control:
            del self.controls[control.runId]

    # -- NewWorkConn -----------------------------------------------------------------------------
    def _newWorkConn(self, conn: LogicalConnection, request: m.NewWorkConn, leftover: bytes) -> None:
        peer = describePeer(conn.transport)
        control = self.controls.get(request.run_id)
        if control is None:
            log.warn("no client control found for run id [{run_id}] (work connection from {peer})",
                     run_id=request.run_id, peer=peer)
            conn.transport.loseConnection()
            return
        conn.hold(leftover)
        if not self._plugins.handles(rpc.NEW_WORK_CONN):
            self._verifyWorkConn(conn, control, request)
            return
        d = self._plugins.newWorkConn(control.userInfo, request)
        d.addCallbacks(lambda changed: self._verifyWorkConn(conn, control, changed),
                       lambda f: self._pluginRefusedWorkConn(conn, request, f))
        d.addErrback(lambda f: log.failure("work connection from {peer}", f, peer=peer))

    def _verifyWorkConn(self, conn: LogicalConnection, control: ControlProtocol, request: m.NewWorkConn) -> None:
        """Check the key of a work connection for ``control``, then pool it."""
        error = self._verifier.verify_new_work_conn(request.privilege_key, request.timestamp)
        if error is not None:
            self._refuseWorkConn(conn, request, error)
            return
        if conn.lost:
            return
        conn.onLost = control.pool.discard
        if not control.pool.put(conn):
            log.debug("[{run_id}] work connection pool is full, discarding", run_id=request.run_id)
            conn.transport.loseConnection()

    def _pluginRefusedWorkConn(self, conn: LogicalConnection, request: m.NewWorkConn, failure) -> None:
        if failure.check(CancelledError):
            return  # frps is stopping
        failure.trap(PluginRejected)
        self._refuseWorkConn(conn, request, failure.getErrorMessage())

    def _refuseWorkConn(self, conn: LogicalConnection, request: m.NewWorkConn, error: str) -> None:
        if conn.lost:
            return
        log.warn("[{run_id}] invalid NewWorkConn from {peer}: {error}", run_id=request.run_id,
                 peer=describePeer(conn.transport), error=error)
        text = client_error("invalid NewWorkConn", error, self._config.detailed_errors_to_client)
        self._refuse(conn, m.StartWorkConn(error=text))

    # -- NewVisitorConn --------------------------------------------------------------------------
    def _newVisitorConn(self, conn: LogicalConnection, request: m.NewVisitorConn) -> None:
        error: Optional[str] = None
        visitorUser = ""  # visitors older than frp 0.50 send no run id: user ""
        if request.run_id:
            control = self.controls.get(request.run_id)
            if control is None:
                error = f"no client control found for run id [{request.run_id}]"
            else:
                visitorUser = control.user
        target = self._registry.visitorTarget(request.proxy_name)
        if error is None:
            if target is None:
                error = f"custom listener for [{request.proxy_name}] doesn't exist"
            else:
                error = target.refusal(request, visitorUser)
        if error is not None:
            log.warn("register visitor conn error from {peer}: {error}", peer=describePeer(conn.transport), error=error)
            text = client_error("register visitor conn error", error, self._config.detailed_errors_to_client)
            self._refuse(conn, m.NewVisitorConnResp(proxy_name=request.proxy_name, error=text))
            return
        target.visitorConnected(conn, request)

