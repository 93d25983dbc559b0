"""The Twisted side of a control session: bytes, encryption, timers and proxies.

:class:`ControlProtocol` is the protocol of a control connection after its ``Login``.  It
decrypts (AES-128-CFB with the token key, wire-protocol.md §6.1), parses messages, asks the
:class:`~frptw.server.control_machine.ControlMachine` what they mean and carries out the actions.
Messages are handled one at a time in arrival order: starting or stopping a proxy may take a
reactor turn (a closed listening port is only free once the reactor has closed it), and a
``CloseProxy`` followed by a ``NewProxy`` for the same port must see the port free.  At most
:data:`MAX_QUEUED` parsed messages wait; beyond that the connection stops being read.

Server plugins that take ``NewProxy`` or ``Ping`` are asked before the machine sees the message,
in that same one-at-a-time order, so a slow plugin delays the messages behind it (as in frp,
whose control reads messages one by one) and never reorders them.  Closed proxies are reported
to ``CloseProxy`` plugins without waiting for them.  As the owner of the client's proxies it
also asks ``NewUserConn`` plugins about their user connections (:meth:`admitUser`).

It also owns the client's :class:`~frptw.server.workpool.WorkConnPool`, asking frpc for work
connections with ``ReqWorkConn``, and checks heartbeats once per second when
``heartbeat_timeout > 0``.
"""

from collections import deque
from typing import Callable, ContextManager, Deque, List, Optional
from typing import Protocol as TypingProtocol

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptw.errors import PluginRejected, ProxyError
from frptw.logs import FrpLogger
from frptw.server import plugin_rpc as rpc
from frptw.server._event import Event
from frptw.server.control_machine import (
    Action,
    ControlMachine,
    ControlState,
    NatHole,
    Send,
    StartProxy,
    StopProxy,
    proxy_type,
)
from frptw.server.plugins import PluginManager
from frptw.server.proxy_base import ProxyOwner
from frptw.server.workpool import WorkConnPool
from frptw.transport.addresses import describePeer
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.yamux import writesTogether
from frptw.wire import messages as m
from frptw.wire.crypto import AESCFBCodec
from frptw.wire.errors import ProtocolError

#: Parsed control messages that may wait for the one being handled before reading pauses.
MAX_QUEUED = 64

#: Work connections frps keeps beyond the client's pool_count (frp: pool_count + 10).
POOL_HEADROOM = 10

log = FrpLogger()


class ProxyHost(TypingProtocol):
    """The server-wide proxy registry, as a control session uses it."""

    def startProxy(self, owner: ProxyOwner, request: m.NewProxy) -> "Deferred[str] | str":
        """Start the proxy; its remote address, or fail/raise ProxyError with frp's text."""

    def stopProxy(self, name: str) -> "Deferred[None]":
        """Close the named proxy and everything it holds."""

    def natHoleMessage(self, owner: ProxyOwner, message: m.Message, reply: Callable[[m.Message], None]) -> None:
        """Handle an xtcp NatHole* message of ``owner``; answers go through ``reply``."""


class ControlProtocol(Protocol):
    """One logged-in client's control connection, and the
    :class:`~frptw.server.proxy_base.ProxyOwner` of its proxies.

    :attr:`pool` holds the client's idle work connections; the bind port's dispatcher puts new
    ones there directly.
    """

    def __init__(
        self,
        machine: ControlMachine,
        proxies: ProxyHost,
        key: bytes,
        clock: IReactorTime,
        userConnTimeout: float,
        onClosed: Callable[["ControlProtocol"], None],
        plugins: PluginManager,
    ) -> None:
        self.machine = machine
        self._plugins = plugins
        self._proxies = proxies
        self._codec = AESCFBCodec(key)
        self._reader = m.MessageReader()
        self.clock = clock
        self._onClosed = onClosed
        self._queue: Deque[m.Message] = deque()
        self._busy = False
        self._readPaused = False
        self._heartbeat: Optional[LoopingCall] = None
        self._lost = False
        self._closing = False
        self._closed = Event()
        #: When the client logged in (its Login was accepted).
        self.connectedAt = clock.seconds()
        self.pool = WorkConnPool(machine.pool_count + POOL_HEADROOM, userConnTimeout, clock, self._requestWorkConn)

    # -- ProxyOwner: what this client's proxies use ------------------------------------------
    @property
    def runId(self) -> str:
        return self.machine.run_id

    @property
    def user(self) -> str:
        return self.machine.user

    @property
    def poolCount(self) -> int:
        return self.machine.pool_count

    def getWorkConn(self) -> "Deferred[SwitchableProtocol]":
        """A work connection of this client (see :meth:`WorkConnPool.get`)."""
        return self.pool.get()

    def writesTogether(self) -> ContextManager[None]:
        """Messages to this client written inside leave as one write (with tcp_mux, the control
        stream and the work streams share one yamux session)."""
        return writesTogether(self.transport)

    def admitUser(self, proxyName: str, proxyType: str, remoteAddr: str) -> "Optional[Deferred[None]]":
        """Ask the ``NewUserConn`` plugins about a user connection; None when none takes it,
        else a Deferred that fails with PluginRejected if the connection is refused."""
        if not self._plugins.handles(rpc.NEW_USER_CONN):
            return None
        return self._plugins.newUserConn(self.userInfo, proxyName, proxyType, remoteAddr)

    @property
    def userInfo(self) -> rpc.UserInfo:
        """Who this client is, as server plugins are told."""
        login = self.machine.login
        return rpc.UserInfo(login.user, dict(login.metas), self.machine.run_id)

    @property
    def login(self) -> m.Login:
        """The client's accepted Login."""
        return self.machine.login

    @property
    def proxyCount(self) -> int:
        """How many proxies of this client are running."""
        return len(self.machine.proxies)

    @property
    def peer(self) -> str:
        return describePeer(self.transport)

    # -- life cycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Answer the Login (the server calls this once an older control is gone)."""
        if self._lost or self._closing:
            return
        self._perform(self.machine.start(self.clock.seconds()))
        if self.machine.heartbeat_timeout > 0:
            self._heartbeat = LoopingCall(self._checkHeartbeat)
            self._heartbeat.clock = self.clock
            self._heartbeat.start(1.0, now=False)
        self._drain()

    def _checkHeartbeat(self) -> None:
        if self.machine.heartbeat_expired(self.clock.seconds()):
            log.warn("[{run_id}] heartbeat timeout", run_id=self.runId)
            self.close(abort=True)

    def close(self, abort: bool = False) -> "Deferred[None]":
        """End the session: stop its proxies, close its idle work connections and the control
        connection.  Fires once the proxies are closed (their ports are free).

        ``abort`` when the client is presumed gone (heartbeat timeout, replaced by its own new
        login): its connections are dropped at once, as Go's ``Close`` does.  A TLS
        ``loseConnection`` would wait for the peer's close_notify, which a dead peer never
        sends, and keep the sockets open for as long as the kernel's keep-alive allows."""
        if not self._closing:
            self._closing = True
            self._queue.clear()
            if self._heartbeat is not None and self._heartbeat.running:
                self._heartbeat.stop()
            for conn in self.pool.close():
                _end(conn.transport, abort)
            done = self._perform(self.machine.close())
            self._onClosed(self)
            if not self._lost:
                _end(self.transport, abort)
            done.addBoth(lambda _: self._closed.fire())
        return self._closed.wait()

    def replaced(self) -> "Deferred[None]":
        """A newer Login with our run id arrived: close, as frp does, before it goes on."""
        log.info("[{run_id}] replaced by a new login of the same client", run_id=self.runId)
        return self.close(abort=True)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._lost = True
        if not self._closing:
            log.info("[{run_id}] client exit success", run_id=self.runId)
        self.close()

    # -- bytes in ------------------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._reader.feed(self._codec.decode(data))
            while True:
                message = self._reader.next_message()
                if message is None:
                    break
                self._queue.append(message)
        except ProtocolError as e:
            log.warn("[{run_id}] closing control connection from {peer}: {error}", run_id=self.runId,
                     peer=self.peer, error=e)
            self.transport.abortConnection()
            self.close()
            return
        if len(self._queue) >= MAX_QUEUED and not self._readPaused:
            self._readPaused = True
            self.transport.pauseProducing()
        self._drain()

    def _drain(self) -> None:
        """Handle queued messages in order, waiting whenever one takes a reactor turn."""
        while self._queue and not self._busy and self.machine.state is ControlState.ACTIVE:
            message = self._queue.popleft()
            asked = self._askPlugins(message)
            if asked is None:
                done = self._handle(message)
            else:
                done = asked.addCallbacks(self._handle, self._pluginRefused, errbackArgs=(message,))
                done.addErrback(lambda f: log.failure("[{run_id}] handling {kind}", f, run_id=self.runId,
                                                      kind=type(message).__name__))
            finished: List[object] = []
            done.addBoth(finished.append)  # ``done.called`` is already true while it waits
            if not finished:
                self._busy = True
                done.addBoth(self._handled)
                return
        if self._readPaused and len(self._queue) < MAX_QUEUED // 2 and not self._closing:
            self._readPaused = False
            self.transport.resumeProducing()

    def _askPlugins(self, message: m.Message) -> "Optional[Deferred[m.Message]]":
        """The plugins' version of ``message``, if some plugin takes messages of its kind."""
        if isinstance(message, m.NewProxy) and self._plugins.handles(rpc.NEW_PROXY):
            return self._plugins.newProxy(self.userInfo, message)
        if isinstance(message, m.Ping) and self._plugins.handles(rpc.PING):
            return self._plugins.ping(self.userInfo, message)
        return None

    def _handle(self, message: m.Message) -> "Deferred[None]":
        actions = self.machine.receive(message, self.clock.seconds())
        if isinstance(message, m.NewProxy):
            self._logRefusal(message, actions)
        return self._perform(actions)

    def _pluginRefused(self, failure: Failure, message: m.Message) -> "Deferred[None]":
        if failure.check(CancelledError):
            return succeed(None)  # frps is stopping
        failure.trap(PluginRejected)
        error = failure.getErrorMessage()
        if isinstance(message, m.NewProxy):
            log.warn("[{run_id}] new proxy [{name}] type [{type}] error: {error}", run_id=self.runId,
                     name=message.proxy_name, type=proxy_type(message), error=error)
        elif isinstance(message, m.Ping):
            log.warn("[{run_id}] received invalid ping: {error}", run_id=self.runId, error=error)
        return self._perform(self.machine.refused(message, error))

    def _logRefusal(self, request: m.NewProxy, actions: List[Action]) -> None:
        """The session refused a NewProxy outright (e.g. max_ports_per_client): say so, as
        :meth:`_startProxy` does for a proxy that fails to start."""
        for action in actions:
            if isinstance(action, Send) and isinstance(action.message, m.NewProxyResp) and action.message.error:
                log.warn("[{run_id}] new proxy [{name}] type [{type}] error: {error}", run_id=self.runId,
                         name=request.proxy_name, type=proxy_type(request), error=action.message.error)

    def _handled(self, _: object) -> None:
        self._busy = False
        self._drain()

    # -- actions -------------------------------------------------------------------------------
    def _perform(self, actions: List[Action]) -> "Deferred[None]":
        d: Deferred = succeed(None)
        for action in actions:
            d.addCallback(lambda _, a=action: self._performOne(a))
        return d

    def _performOne(self, action: Action) -> "Deferred[None] | None":
        if isinstance(action, Send):
            self._send(action.message)
            return None
        if isinstance(action, NatHole):
            self._proxies.natHoleMessage(self, action.message, self.sendMessage)
            return None
        if isinstance(action, StopProxy):
            d = self._proxies.stopProxy(action.name)
            d.addErrback(lambda f: log.failure("closing proxy [{name}]", f, name=action.name))
            self._plugins.closeProxy(self.userInfo, action.name)
            return d
        return self._startProxy(action)

    def _startProxy(self, action: StartProxy) -> "Deferred[None]":
        request = action.request
        kind = proxy_type(request)

        def started(remoteAddr: str) -> "Deferred[None]":
            log.info("[{run_id}] new proxy [{name}] type [{type}] success", run_id=self.runId,
                     name=request.proxy_name, type=kind)
            return self._perform(self.machine.proxy_started(request, remoteAddr))

        def failed(f: Failure) -> "Deferred[None]":
            if not f.check(ProxyError):
                log.failure("[{run_id}] starting proxy [{name}]", f, run_id=self.runId, name=request.proxy_name)
            log.warn("[{run_id}] new proxy [{name}] type [{type}] error: {error}", run_id=self.runId,
                     name=request.proxy_name, type=kind, error=f.getErrorMessage())
            return self._perform(self.machine.proxy_failed(request, f.getErrorMessage()))

        d = maybeDeferred(self._proxies.startProxy, self, request)
        d.addCallbacks(started, failed)
        return d

    def sendMessage(self, message: m.Message) -> None:
        """Send ``message`` to the client, if the session still runs (nat-hole answers may
        come late)."""
        if self.machine.state is ControlState.ACTIVE and not self._closing:
            self._send(message)

    def _send(self, message: m.Message) -> None:
        data = m.encode_message(message)
        if isinstance(message, m.LoginResp):
            self.transport.write(data)  # the only message in clear; encryption starts after it
        else:
            self.transport.write(self._codec.encode(data))

    # -- work connections ----------------------------------------------------------------------
    def _requestWorkConn(self) -> None:
        if self.machine.state is ControlState.ACTIVE and not self._closing:
            self._send(m.ReqWorkConn())


def _end(transport, abort: bool) -> None:
    if abort:
        transport.abortConnection()
    else:
        transport.loseConnection()
