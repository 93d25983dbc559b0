"""What every frps proxy that carries user connections over work connections shares.

A user connection (a :class:`~frptw.transport.switch.SwitchableProtocol`) that has to wait
for its work connection waits paused: its bytes wait in the kernel, not in our memory.  One
that gets a pooled work connection at once is joined before it would have been paused (no
stop and restart of reading: two ``epoll_ctl`` calls per connection).  :class:`BaseProxy`
then (wire-protocol.md §7.1):

0. asks the server plugins that take ``NewUserConn`` (through its owner), if any; a rejected
   connection is closed (frp: ``the user conn [addr] was rejected``);
1. gets a work connection from the owning client's pool, writes ``StartWorkConn`` on it and, if
   that connection turned out to be gone already, tries another, up to ``pool_count + 1``
   times;
2. stacks the proxy's data plane (:mod:`frptw.transport.dataplane`: AES-128-CFB with the token
   key, snappy, the server-mode bandwidth limit, as the NewProxy asked) on the work connection;
3. splices the two connections (:func:`frptw.transport.splice.splice`), which also gives
   backpressure and frp's close rule, and counts the traffic and the open connection in the
   proxy's :attr:`BaseProxy.stats` when frps keeps statistics (it has a dashboard).

A user connection that gets no work connection within ``user_conn_timeout`` is closed.
Closing the proxy closes its user connections, including those still waiting.
"""

from typing import ContextManager, Dict, List, Optional, Set
from typing import Protocol as TypingProtocol

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from frptw.config.bandwidth import BandwidthError
from frptw.errors import NoWorkConnection, PluginRejected
from frptw.logs import FrpLogger
from frptw.server._event import Event, abortAll, whenAll
from frptw.server.stats import ProxyStats
from frptw.transport.addresses import hostPort
from frptw.transport.bandwidth import TokenBucket
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import choose_compression
from frptw.wire.hostport import join_host_port
from frptw.wire.messages import NewProxy, StartWorkConn, encode_message

log = FrpLogger()


class ProxyOwner(TypingProtocol):
    """The logged-in client a proxy belongs to: what a proxy may use of its session.

    frps's :class:`~frptw.server.control_protocol.ControlProtocol` is the one real owner;
    tests give proxies a small fake.  Declared here so that a proxy never reaches further into
    the control connection than this.
    """

    @property
    def clock(self) -> IReactorTime:
        """The clock of every timer of the client's proxies."""

    @property
    def runId(self) -> str:
        """The client's run id (the prefix of every log line about it)."""

    @property
    def user(self) -> str:
        """The ``user`` of the client's Login (an stcp proxy admits it by default)."""

    @property
    def poolCount(self) -> int:
        """The client's ``pool_count``: how many pooled work connections may be stale at once."""

    def getWorkConn(self) -> "Deferred[SwitchableProtocol]":
        """A work connection of this client, pooled or asked for (fails when none comes)."""

    def admitUser(self, proxyName: str, proxyType: str, remoteAddr: str) -> "Optional[Deferred[None]]":
        """None if no server plugin judges user connections; else a Deferred that fails with
        :class:`~frptw.errors.PluginRejected` if this one is refused."""

    def writesTogether(self) -> ContextManager[None]:
        """A block whose messages to the client leave as one write (a pooled work connection's
        ``StartWorkConn`` and the ``ReqWorkConn`` for its replacement)."""


class UserConnection(SwitchableProtocol):
    """A user's connection to a proxy, paused while it waits for its work connection."""

    def __init__(self, proxy: "BaseProxy") -> None:
        super().__init__()
        self._proxy = proxy
        self.closed = Event()

    def connectionMade(self) -> None:
        super().connectionMade()
        self._proxy.userConnected(self)
        if self.switchedTo is None:  # not joined at once: read nothing until it is
            self._pause()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self._proxy.userLeft(self)
        self.closed.fire()


class BaseProxy:
    """A running proxy of one client; subclasses open the listener(s) and feed user
    connections to :meth:`userConnected`."""

    type = ""
    #: The port of a tcp or udp proxy (0 for types without one of their own).
    remote_port = 0
    #: Where this proxy's traffic and connections are counted; set by the registry once the
    #: proxy runs, and only when frps keeps statistics.
    stats: Optional[ProxyStats] = None

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes) -> None:
        self.owner = owner
        self.startedAt = owner.clock.seconds()
        self.request = request
        self.name = request.proxy_name
        self.remote_addr = ""
        self.listeners: List[IListeningPort] = []
        self._waiting: Dict[UserConnection, Deferred] = {}
        self._users: Set[UserConnection] = set()
        self._closing = False
        # A frptw frpc offers lz4 (or more) for use_compression; Go frpc offers nothing: snappy.
        self.dataPlane = self._dataPlane(request, key).compressedWith(choose_compression(request.frptw_compressions))
        # frp limits a proxy in server mode with one bucket shared by all its connections and
        # both directions.
        self._bucket: Optional[TokenBucket] = None
        if self.dataPlane.limitsOn("server"):
            self._bucket = self.dataPlane.bucket(owner.clock)

    def _dataPlane(self, request: NewProxy, key: bytes) -> DataPlane:
        try:
            return DataPlane.parse(key, request.use_encryption, request.use_compression, request.bandwidth_limit,
                                   request.bandwidth_limit_mode)
        except BandwidthError as e:
            # frp 0.65 accepts such a NewProxy and runs the proxy unlimited; so do we, saying so.
            log.warn("[{run_id}] [{name}] bandwidth_limit {error}: the proxy is not limited, as in frp",
                     run_id=self.runId, name=self.name, error=e)
            return DataPlane(key, request.use_encryption, request.use_compression)

    @property
    def runId(self) -> str:
        return self.owner.runId

    # -- user connections ----------------------------------------------------------------------
    def userConnected(self, user: UserConnection) -> None:
        """A user connected: find a work connection for it, then join the two."""
        self._users.add(user)
        host, port = hostPort(user.transport.getPeer())
        log.info("[{run_id}] [{name}] get a user connection [{host}:{port}]", run_id=self.runId, name=self.name,
                 host=host, port=port)
        if self._closing:
            user.transport.abortConnection()
            return
        remoteAddr = join_host_port(host, port)
        admitted = self.owner.admitUser(self.name, self.type, remoteAddr)
        if admitted is None:
            with self.owner.writesTogether():
                self._findWorkConn(user)
            return
        self._waiting[user] = admitted
        admitted.addCallbacks(lambda _: self._findWorkConn(user), lambda f: self._rejected(user, remoteAddr, f))

    def _findWorkConn(self, user: UserConnection) -> None:
        d = Deferred.fromCoroutine(self._startWorkConn(user.transport.getPeer(), user.transport.getHost()))
        self._waiting[user] = d
        d.addCallbacks(lambda work: self._join(user, work), lambda f: self._noWorkConn(user, f))

    def _rejected(self, user: UserConnection, remoteAddr: str, failure: Failure) -> None:
        self._waiting.pop(user, None)
        if failure.check(CancelledError):
            return  # the user left first
        failure.trap(PluginRejected)
        log.warn("[{run_id}] [{name}] the user conn [{addr}] was rejected, err:{error}", run_id=self.runId,
                 name=self.name, addr=remoteAddr, error=failure.getErrorMessage())
        user.transport.loseConnection()

    def userLeft(self, user: UserConnection) -> None:
        """A user connection closed; if it was still waiting, withdraw its request."""
        self._users.discard(user)
        waiting = self._waiting.pop(user, None)
        if waiting is not None:
            waiting.cancel()

    async def _startWorkConn(self, src: IAddress, dst: IAddress) -> SwitchableProtocol:
        srcAddr, srcPort = hostPort(src)
        dstAddr, dstPort = hostPort(dst)
        start = encode_message(
            StartWorkConn(proxy_name=self.name, src_addr=srcAddr, src_port=srcPort, dst_addr=dstAddr, dst_port=dstPort,
                          frptw_compression=self.dataPlane.compression)
        )
        attempts = self.owner.poolCount + 1
        for attempt in range(attempts):
            work = await self.owner.getWorkConn()
            if work.lost or getattr(work.transport, "disconnecting", False):
                log.warn("[{run_id}] [{name}] work connection from the pool is closed, times: {n}", run_id=self.runId,
                         name=self.name, n=attempt)
                continue
            work.transport.write(start)
            return work
        raise NoWorkConnection("try to get work connection failed in the end")

    def stackWorkConn(self, work: SwitchableProtocol) -> SwitchableProtocol:
        """``work`` with this proxy's data plane stacked on it (the top carries plaintext)."""
        return stackDataPlane(work, self.dataPlane, "server", self.owner.clock, self._bucket)

    def _join(self, user: UserConnection, work: SwitchableProtocol) -> None:
        self._waiting.pop(user, None)
        stats = self.stats
        done = splice(user, self.stackWorkConn(work), stats)
        if stats is not None:
            stats.connectionOpened()
            done.addCallback(lambda _: stats.connectionClosed())

    def _noWorkConn(self, user: UserConnection, failure: Failure) -> None:
        self._waiting.pop(user, None)
        if failure.check(CancelledError):
            return  # the user left first
        log.warn("[{run_id}] [{name}] failed to get work connection: {error}", run_id=self.runId, name=self.name,
                 error=failure.getErrorMessage())
        user.transport.loseConnection()

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> "Deferred[None]":
        """Stop accepting, close every user connection; fires when all are closed."""
        if self._closing:
            return succeed(None)
        self._closing = True
        log.info("[{run_id}] [{name}] proxy closing", run_id=self.runId, name=self.name)
        waits = [maybeDeferred(port.stopListening) for port in self.listeners]
        waits.append(maybeDeferred(self.released))
        waits.append(abortAll(self._users))
        return whenAll(waits)

    def released(self) -> "Optional[Deferred[None]]":
        """The listeners are closing: give back what the proxy holds (ports, routes); a
        Deferred, if any, fires once what was given back is closed (a group's last listener)."""
