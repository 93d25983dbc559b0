"""xtcp on frpc: the proxy owner's and the visitor's halves of a P2P tunnel (wire-protocol.md §9.4).

Both halves run the same *hole-punching run* (:class:`NatHoleRun`):

    discover (STUN, two mapped addresses) ──> exchange (NatHoleVisitor / NatHoleClient on the
    control connection, NatHoleResp back) ──> punch (:class:`~frptw.client._punch.Punch`) ──> tunnel

The owner starts a run for each ``StartWorkConn`` + ``NatHoleSid`` frps writes on one of its work
connections, reports the outcome (``NatHoleReport``) and then serves the tunnel as the QUIC
server: each stream the visitor opens is one user connection, layered with AES-CFB(sk)/snappy
as the proxy's ``use_encryption``/``use_compression`` say, and joined to the local service.

The visitor (:class:`XTCPVisitor`) listens locally and keeps at most one tunnel (a QUIC client
session): a user connection opens a stream on it; without a live tunnel it asks for a run
(pre-check first; runs start at least :data:`MIN_RUN_GAP` s apart) and waits up to
:data:`OPEN_TUNNEL_TIMEOUT` s -- or only ``fallback_timeout_ms`` when ``fallback_to`` names
another visitor, which then gets the connection.  ``keep_tunnel_open`` starts a run at once and
checks every ``min_retry_interval`` s, at most ``max_retries_an_hour`` runs an hour.

The tunnel is QUIC (``protocol = "quic"``, the default: visitor = client, owner = server, one
QUIC stream per user connection) or KCP (``"kcp"``: conversation 1 with frps's KCP settings on
the punched 5-tuple, yamux above it with a 10 s keep-alive and 6 MiB windows, the visitor as the
yamux client), as frp does.
"""

from typing import Callable, List, Optional, Tuple

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptw.client._holesocket import HoleSocket, discover, localIPsForNatHole, openHoleSocket
from frptw.client._nathole_exchange import NatHoleError, NatHoleExchange
from frptw.client._punch import Punch, PunchError
from frptw.client._work import LOCAL_DIAL_TIMEOUT
from frptw.config import ClientConfig, ProxyConfig, XTCPVisitorConfig
from frptw.errors import FrpError
from frptw.logs import FrpLogger
from frptw.transport.addresses import udpAddress
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.kcp import SERVER_WINDOWS, KcpSession
from frptw.transport.quic import QuicSession
from frptw.transport.quicudp import QuicClientSocket, QuicListener, clientConfiguration, serverConfiguration
from frptw.transport.sockets import quietFactory, tcpEndpoint
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.transport.yamux import YamuxSession
from frptw.wire.auth import privilege_key
from frptw.wire.crypto import derive_key
from frptw.wire.hostport import join_host_port
from frptw.wire.messages import NatHoleClient, NatHoleReport, NatHoleResp, NatHoleVisitor
from frptw.wire.nathole import classify, new_transaction_id

#: How long a visitor's user connection waits for a tunnel (frp's).
OPEN_TUNNEL_TIMEOUT = 20.0
#: Hole-punching runs of one visitor start at least this far apart (frp's).
MIN_RUN_GAP = 10.0
#: How long the owner waits for the visitor's QUIC connection on the punched socket.
ACCEPT_TIMEOUT = 30.0
#: QUIC handshake timeout of the visitor on the punched socket.
DIAL_TIMEOUT = 10.0

_log = FrpLogger(namespace="frptw.client.xtcp")


class P2PTunnelError(FrpError):
    """No P2P tunnel (frp's text)."""


def _plane(sk: str, useEncryption: bool, useCompression: bool) -> DataPlane:
    # Nothing negotiates on the P2P path: snappy, as Go frpc (both ends must agree).
    return DataPlane(derive_key(sk), useEncryption, useCompression)


class NatHoleRun:
    """Discovery, then a NatHoleResp from ``exchange``, then punching; :meth:`prepare` and
    :meth:`punch` raise FrpError subclasses with frp's texts."""

    def __init__(self, reactor, stunServer: str, disableAssisted: bool, label: str) -> None:
        self.reactor = reactor
        self._stun = stunServer
        self._disableAssisted = disableAssisted
        self.label = label
        self.hole: Optional[HoleSocket] = None
        self.mapped: List[str] = []
        self.assisted: List[str] = []

    async def prepare(self) -> None:
        self.hole = openHoleSocket(self.reactor)
        try:
            self.mapped = await discover(self.reactor, self.hole, self._stun)
        except FrpError as e:
            raise P2PTunnelError(f"nathole prepare error: discover error: {e}") from None
        if len(self.mapped) < 2:
            raise P2PTunnelError("nathole prepare error: discover error: not enough addresses")
        localIPs = localIPsForNatHole()
        feature = classify(self.mapped, localIPs)
        if not self._disableAssisted:
            self.assisted = [join_host_port(ip, self.hole.localPort) for ip in localIPs]
        _log.info("{label} nathole prepare success, nat type: {type}, behavior: {behavior}, addresses: {addrs}, "
                  "assistedAddresses: {assisted}", label=self.label, type=feature.nat_type,
                  behavior=feature.behavior, addrs=_go_list(self.mapped), assisted=_go_list(self.assisted))

    async def exchange(self, exchange: NatHoleExchange, message) -> NatHoleResp:
        try:
            resp = await exchange.request(message)
        except NatHoleError as e:
            raise P2PTunnelError(f"nathole exchange info error: {e}") from None
        if resp.error:
            raise P2PTunnelError(f"nathole exchange info error: natHoleRespMsg get error info: {resp.error}")
        if not resp.candidate_addrs:
            raise P2PTunnelError("nathole exchange info error: natHoleRespMsg get empty candidate addresses")
        b = resp.detect_behavior
        _log.info("{label} get natHoleRespMsg, sid [{sid}], protocol [{protocol}], candidate address {c}, "
                  "assisted address {a}, detectBehavior: role {role} mode {mode} ttl {ttl}", label=self.label,
                  sid=resp.sid, protocol=resp.protocol, c=_go_list(resp.candidate_addrs),
                  a=_go_list(resp.assisted_addrs), role=b.role, mode=b.mode, ttl=b.ttl)
        return resp

    async def punch(self, resp: NatHoleResp, sk: str) -> Tuple[HoleSocket, Tuple[str, int]]:
        assert self.hole is not None
        try:
            sock, peer = await Punch(self.reactor, self.hole, resp, derive_key(sk), self.label).run()
        except PunchError as e:
            raise P2PTunnelError(f"make hole error: {e}") from None
        _log.info("{label} establishing nat hole connection successful, sid [{sid}], remoteAddr [{addr}]",
                  label=self.label, sid=resp.sid, addr=join_host_port(*peer))
        return sock, peer

    def close(self) -> None:
        if self.hole is not None:
            self.hole.close()


def _go_list(items: List[str]) -> str:
    return "[" + " ".join(items) + "]"


def _onlyFrom(peer: Tuple[str, int], handler: Callable) -> Callable:
    def receive(data: bytes, addr: Tuple[str, int]) -> None:
        if addr == peer:
            handler(data, addr)
    return receive


# -- the owner ---------------------------------------------------------------------------------
class _OwnerStream(SwitchableProtocol):
    """One stream the visitor opened: a user connection for the local service."""

    def __init__(self, owner: "XTCPOwnerRun") -> None:
        super().__init__(pauseOnConnect=True)
        self._owner = owner

    def connectionMade(self) -> None:
        super().connectionMade()
        self._owner.streamOpened(self)


class _OwnerStreams(Factory):
    noisy = False

    def __init__(self, owner: "XTCPOwnerRun") -> None:
        self.owner = owner

    def buildProtocol(self, addr) -> _OwnerStream:
        return _OwnerStream(self.owner)


class XTCPOwnerRun:
    """The owner's side of one session ``sid`` of an xtcp proxy (one StartWorkConn)."""

    def __init__(self, reactor, clientConfig: ClientConfig, proxy: ProxyConfig, wireName: str,
                 exchange: NatHoleExchange, sid: str) -> None:
        self._reactor = reactor
        self._client = clientConfig
        self._proxy = proxy
        self._wireName = wireName
        self._exchange = exchange
        self._sid = sid
        traversal = getattr(proxy, "nat_traversal", None)
        self._run = NatHoleRun(reactor, clientConfig.nat_hole_stun_server,
                               bool(traversal and traversal.disable_assisted_addrs), f"[{proxy.name}]")
        self.session: Optional[QuicSession] = None
        self._acceptTimer: Optional[IDelayedCall] = None
        self.done = Deferred.fromCoroutine(self._serve())
        self.done.addErrback(self._failed)

    async def _serve(self) -> None:
        run = self._run
        await run.prepare()
        message = NatHoleClient(transaction_id=new_transaction_id(self._reactor.seconds()), proxy_name=self._wireName,
                                sid=self._sid, mapped_addrs=run.mapped, assisted_addrs=run.assisted)
        resp = await run.exchange(self._exchange, message)
        try:
            sock, peer = await run.punch(resp, self._proxy.secret_key)
        except P2PTunnelError:
            self._exchange.send(NatHoleReport(sid=resp.sid, success=False))
            raise
        self._exchange.send(NatHoleReport(sid=resp.sid, success=True))
        if resp.protocol == "kcp":
            self.session = _KcpTunnel(self._reactor, sock, peer, isClient=False, accept=_OwnerStreams(self))
            self.session.whenClosed().addCallback(lambda _: sock.close())
            return
        self._listen(sock, peer)

    def _listen(self, sock: HoleSocket, peer: Tuple[str, int]) -> None:
        options = self._client.transport.quic
        listener = QuicListener(self._reactor, serverConfiguration(options), options, _OwnerStreams(self))
        listener.makeConnection(sock.transport)

        def receive(data: bytes, addr: Tuple[str, int]) -> None:
            listener.datagramReceived(data, addr)
            if self.session is None and addr in listener.sessions:
                self.session = listener.sessions[addr]
                cancelCall(self._acceptTimer)
                self.session.whenClosed().addCallback(lambda _: sock.close())

        sock.handler = _onlyFrom(peer, receive)
        self._acceptTimer = self._reactor.callLater(ACCEPT_TIMEOUT, self._noVisitor, sock)

    def _noVisitor(self, sock: HoleSocket) -> None:
        _log.warn("[{name}] quic accept connection error: no connection from the visitor", name=self._proxy.name)
        sock.close()

    def streamOpened(self, stream: _OwnerStream) -> None:
        transport = self._proxy.transport
        top = stackDataPlane(stream, _plane(self._proxy.secret_key, transport.use_encryption,
                                            transport.use_compression), "client", self._reactor)
        endpoint = tcpEndpoint(self._reactor, self._proxy.local_ip, self._proxy.local_port, LOCAL_DIAL_TIMEOUT)
        d = endpoint.connect(quietFactory(SwitchableProtocol))
        d.addCallbacks(lambda local: splice(top, local), self._localFailed, errbackArgs=(stream,))

    def _localFailed(self, failure: Failure, stream: _OwnerStream) -> None:
        _log.warn("[{name}] connect to local service [{ip}:{port}] error: {error}", name=self._proxy.name,
                  ip=self._proxy.local_ip, port=self._proxy.local_port, error=failure.value)
        stream.transport.loseConnection()

    def _failed(self, failure: Failure) -> None:
        self._run.close()
        if failure.check(CancelledError):
            return
        if failure.check(FrpError):
            _log.warn("[{name}] {error}", name=self._proxy.name, error=failure.value)
        else:
            _log.failure("[{name}] xtcp session", failure, name=self._proxy.name)

    def stop(self) -> None:
        self.done.cancel()
        cancelCall(self._acceptTimer)
        if self.session is not None:
            self.session.close()
        self._run.close()


# -- the visitor -------------------------------------------------------------------------------
class XTCPVisitor:
    """The tunnel side of an xtcp visitor (the listener is the caller's: see
    :class:`frptw.client._visitors.XTCPVisitorRunner`)."""

    def __init__(self, reactor, clientConfig: ClientConfig, config: XTCPVisitorConfig, user: str,
                 exchange: NatHoleExchange) -> None:
        self._reactor = reactor
        self._client = clientConfig
        self.config = config
        self._target = config.target_wire_name(user)
        self._exchange = exchange
        self.session: Optional[QuicSession] = None
        self._running = False
        self._lastStart: Optional[float] = None
        self._pendingStart: Optional[IDelayedCall] = None
        self._waiters: List[Deferred] = []
        self._keeper: Optional[LoopingCall] = None
        self._retries: List[float] = []
        self._stopped = False
        self._run: Optional[NatHoleRun] = None

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        if self.config.keep_tunnel_open:
            self._keeper = LoopingCall(self._keepOpen)
            self._keeper.clock = self._reactor
            self._keeper.start(self.config.min_retry_interval, now=False)

    def loggedIn(self) -> None:
        """frpc logged in: a visitor that keeps its tunnel open punches now (frp starts its
        visitors once logged in and punches at once)."""
        if self.config.keep_tunnel_open and not self._alive():
            self._want()

    def stop(self) -> None:
        self._stopped = True
        if self._keeper is not None and self._keeper.running:
            self._keeper.stop()
        cancelCall(self._pendingStart)
        if self._run is not None:
            self._run.close()
        if self.session is not None:
            self.session.close()
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.cancel()

    def _keepOpen(self) -> None:
        if self._alive():
            return
        now = self._reactor.seconds()
        self._retries = [t for t in self._retries if now - t < 3600]
        if len(self._retries) >= self.config.max_retries_an_hour:
            _log.debug("[{name}] keepTunnelOpen: retry limit reached", name=self.config.name)
            return
        self._retries.append(now)
        self._want()

    def _alive(self) -> bool:
        return self.session is not None and not self.session.closed

    # -- tunnels -------------------------------------------------------------------------------
    def tunnel(self, timeout: float) -> "Deferred[QuicSession]":
        """The live tunnel, or the next one punched within ``timeout`` s (P2PTunnelError)."""
        if self._alive():
            return succeed(self.session)
        d: Deferred = Deferred(lambda _: self._waiters.remove(d) if d in self._waiters else None)
        self._waiters.append(d)
        timer = self._reactor.callLater(timeout, lambda: d.called or d.errback(P2PTunnelError("open tunnel timeout")))
        d.addBoth(lambda r: (cancelCall(timer), r)[1])
        self._want()
        return d

    def _want(self) -> None:
        """A tunnel is wanted: start a run now, or once the gap since the last one is over."""
        if self._running or self._stopped or (self._pendingStart is not None and self._pendingStart.active()):
            return
        now = self._reactor.seconds()
        wait = 0.0 if self._lastStart is None else self._lastStart + MIN_RUN_GAP - now
        if wait > 0:
            self._pendingStart = self._reactor.callLater(wait, self._startRun)
        else:
            self._startRun()

    def _startRun(self) -> None:
        self._pendingStart = None
        if self._stopped or self._alive():
            return
        self._running = True
        self._lastStart = self._reactor.seconds()
        d = Deferred.fromCoroutine(self._makeHole())
        d.addCallbacks(self._tunnelReady, self._runFailed)
        d.addBoth(self._runEnded)

    def _runEnded(self, _: object) -> None:
        self._running = False
        self._run = None
        if self._waiters and not self._stopped:
            self._want()

    async def _makeHole(self) -> QuicSession:
        config = self.config
        pre = NatHoleVisitor(transaction_id=new_transaction_id(self._reactor.seconds()), proxy_name=self._target,
                             pre_check=True)
        try:
            answer = await self._exchange.request(pre)
        except NatHoleError as e:
            raise P2PTunnelError(f"nathole precheck error: {e}") from None
        if answer.error:
            raise P2PTunnelError(f"nathole precheck error: {answer.error}")
        traversal = config.nat_traversal
        run = self._run = NatHoleRun(self._reactor, self._client.nat_hole_stun_server,
                                     bool(traversal and traversal.disable_assisted_addrs), f"[{config.name}]")
        try:
            await run.prepare()
            now = int(self._reactor.seconds())
            message = NatHoleVisitor(transaction_id=new_transaction_id(now), proxy_name=self._target,
                                     protocol=config.protocol, sign_key=privilege_key(config.secret_key, now),
                                     timestamp=now, mapped_addrs=run.mapped, assisted_addrs=run.assisted)
            resp = await run.exchange(self._exchange, message)
            sock, peer = await run.punch(resp, config.secret_key)
        except BaseException:
            run.close()
            raise
        if resp.protocol == "kcp":
            tunnel = _KcpTunnel(self._reactor, sock, peer, isClient=True)
            tunnel.whenClosed().addCallback(lambda _: sock.close())
            return tunnel  # type: ignore[return-value]
        return await self._dial(sock, peer)

    async def _dial(self, sock: HoleSocket, peer: Tuple[str, int]) -> QuicSession:
        options = self._client.transport.quic
        client = QuicClientSocket(self._reactor, clientConfiguration(options, ""), options, peer)
        client.makeConnection(sock.transport)
        sock.handler = _onlyFrom(peer, client.datagramReceived)
        session = client.session
        assert session is not None
        timer = self._reactor.callLater(DIAL_TIMEOUT, session.abort)
        try:
            await session.whenConnected()
        except FrpError as e:
            raise P2PTunnelError(f"init tunnel session error: dial quic error: {e}") from None
        finally:
            cancelCall(timer)
        return session

    def _tunnelReady(self, session: QuicSession) -> None:
        if self._stopped:
            session.close()
            return
        self.session = session
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(session)

    def _runFailed(self, failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        if failure.check(FrpError):
            _log.warn("[{name}] {error}", name=self.config.name, error=failure.value)
        else:
            _log.failure("[{name}] xtcp hole punching", failure, name=self.config.name)

    def openStream(self, session, protocol: SwitchableProtocol) -> "Deferred[SwitchableProtocol]":
        """Open a stream for ``protocol``; fires with the top of its data plane."""
        transport = self.config.transport
        plane = _plane(self.config.secret_key, transport.use_encryption, transport.use_compression)
        return session.openStream(protocol).addCallback(
            lambda _: stackDataPlane(protocol, plane, "client", self._reactor))


class _KcpTunnel:
    """frp's KCP P2P tunnel: KCP conversation 1 on the punched socket, yamux above it."""

    def __init__(self, reactor, sock: HoleSocket, peer: Tuple[str, int], isClient: bool, accept=None) -> None:
        local = sock.transport.getHost()
        self._kcp = KcpSession(1, reactor, lambda data: sock.send(data, peer), udpAddress(*peer),
                               udpAddress(local.host, local.port), SERVER_WINDOWS)
        sock.handler = _onlyFrom(peer, lambda data, addr: self._kcp.datagramReceived(data))
        self._mux = YamuxSession(isClient=isClient, clock=reactor, acceptFactory=accept, keepaliveInterval=10.0,
                                 maxStreamWindow=6 * 1024 * 1024)
        self._kcp.connect(self._mux)
        self.closed = False
        self._mux.whenClosed().addCallback(self._ended)

    def _ended(self, _: object) -> None:
        self.closed = True

    def openStream(self, protocol) -> Deferred:
        return self._mux.openStream(protocol)

    def whenClosed(self) -> Deferred:
        return self._mux.whenClosed()

    def close(self) -> None:
        self._mux.close()
