"""One control session of frpc: login, proxy registration, heartbeats, work-connection requests.

Theory of operation
-------------------
:class:`ControlSession` is the protocol of the control connection (a yamux stream, or the
(TLS) connection itself when tcp_mux is off).  It does no I/O of its own beyond writing to its
transport; time comes from an injected clock and new work connections are opened through a
callback, so it is tested with a ``StringTransport`` and ``task.Clock``.

States::

    NEW ──connectionMade: write Login──> LOGGING_IN ──LoginResp ok──> RUNNING
                                              │                          │
                  LoginResp error / 10 s timeout / connection lost       │ connection lost,
                                              │                          │ Pong error, heartbeat
                                              v                          v timeout, close()
                                            CLOSED <─────────────────────┘

* ``NEW``: built, not yet connected.
* ``LOGGING_IN``: ``Login`` written in clear; waiting at most 10 s for ``LoginResp``.  Nothing
  else is written meanwhile.  An error answer fails :attr:`loggedIn` with
  :class:`~frptw.errors.LoginError` carrying frps's text verbatim, and the connection is closed.
* ``RUNNING``: the channel is encrypted.  ``NewProxy`` is sent for every proxy of the table
  (and for proxies added later); answers update the table (§5.9: no answer in 20 s -> send
  again; an error -> retry after 30 s).  ``Ping`` every ``heartbeat_interval`` s when positive,
  and the session is dropped when no ``Pong`` came for ``heartbeat_timeout`` s or a Pong
  carries an error.  Each ``ReqWorkConn`` opens one work connection (``openWork``).
* ``CLOSED``: timers cancelled, the table's proxies back to ``new``, :attr:`ended` fired.

Bad bytes from frps (framing, JSON, cipher stream) end the session with one log line.
"""

from enum import Enum
from typing import Callable, Dict, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from frptw import FRP_VERSION
from frptw.client._channel import ControlChannel
from frptw.client._proxies import RUNNING, START_ERROR, WAIT_START, ProxyEntry, ProxyTable
from frptw.config import ClientConfig
from frptw.errors import ConnectionClosed, LoginError
from frptw.logs import FrpLogger
from frptw.wire.auth import privilege_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import (
    CloseProxy,
    Login,
    LoginResp,
    Message,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
)

LOGIN_TIMEOUT = 10.0
NEW_PROXY_RESEND = 20.0
START_ERROR_RETRY = 30.0
HEARTBEAT_CHECK = 1.0

HEARTBEATS_SCOPE = "HeartBeats"
NEW_WORK_CONNS_SCOPE = "NewWorkConns"


class SessionState(Enum):
    NEW = "new"
    LOGGING_IN = "logging in"
    RUNNING = "running"
    CLOSED = "closed"


class ControlSession(Protocol):
    """The control connection's protocol; see the module docstring for the state machine.

    :param config: the ClientConfig.
    :param proxies: the service's proxy table (outlives the session).
    :param clock: time source for the Login timestamp, timeouts and heartbeats.
    :param runId: the run id of the previous session ("" the first time).
    :param openWork: called with the ``NewWorkConn`` to send on each new work connection.
    """

    _log = FrpLogger()

    def __init__(
        self,
        config: ClientConfig,
        proxies: ProxyTable,
        clock: IReactorTime,
        runId: str,
        openWork: Callable[[NewWorkConn], None],
    ) -> None:
        self.config = config
        self.proxies = proxies
        self.clock = clock
        self.runId = runId
        self._openWork = openWork
        self.state = SessionState.NEW
        self._channel = ControlChannel(config.auth.token)
        #: Fires with the LoginResp; fails with LoginError or ConnectionClosed.
        self.loggedIn: Deferred = Deferred()
        #: Fires (with None) once the session is CLOSED; the reason is then :attr:`endReason`.
        self.ended: Deferred = Deferred()
        self.endReason: Optional[Failure] = None
        self._loginTimer: Optional[IDelayedCall] = None
        self._proxyTimers: Dict[str, IDelayedCall] = {}
        self._heartbeat: Optional[LoopingCall] = None
        self._heartbeatCheck: Optional[LoopingCall] = None
        self._lastPong = 0.0
        self._closeReason: Optional[Exception] = None

    # -- helpers ----------------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock.seconds())

    def _scoped(self, scope: str) -> dict:
        """``privilege_key``/``timestamp`` for a message when ``scope`` is configured."""
        if scope not in self.config.auth.additional_scopes:
            return {}
        timestamp = self._now()
        return {"privilege_key": privilege_key(self.config.auth.token, timestamp), "timestamp": timestamp}

    def _send(self, msg: Message) -> None:
        self.transport.write(self._channel.send(msg))

    def _drop(self, why: Exception) -> None:
        """End the session from our side (frps misbehaved or stopped answering)."""
        if self._closeReason is None:
            self._closeReason = why
        self.transport.abortConnection()

    def loginMessage(self) -> Login:
        timestamp = self._now()
        return Login(
            version=FRP_VERSION,
            os="linux",
            arch="amd64",
            user=self.config.user,
            privilege_key=privilege_key(self.config.auth.token, timestamp),
            timestamp=timestamp,
            run_id=self.runId,
            metas=dict(self.config.metadatas),
            pool_count=self.config.transport.pool_count,
        )

    # -- connection events -----------------------------------------------------------------
    def connectionMade(self) -> None:
        self.state = SessionState.LOGGING_IN
        self.transport.write(self._channel.login(self.loginMessage()))
        self._loginTimer = self.clock.callLater(LOGIN_TIMEOUT, self._loginTimedOut)

    def _loginTimedOut(self) -> None:
        self._loginTimer = None
        # No log line here: the failed login attempt is logged once, with this reason.
        self._drop(ConnectionClosed(f"no LoginResp within {LOGIN_TIMEOUT:g} s"))

    def dataReceived(self, data: bytes) -> None:
        if self.state is SessionState.CLOSED or self._closeReason is not None:
            return
        try:
            self._channel.receive_data(data)
            while self.state is not SessionState.CLOSED and self._closeReason is None:
                msg = self._channel.next_message()
                if msg is None:
                    break
                self._dispatch(msg)
        except ProtocolError as e:
            if self.state is SessionState.RUNNING:  # during login, the failed attempt is logged
                self._log.warn("closing control connection: frps sent bad data: {error}", error=e)
            self._drop(e)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        previous = self.state
        self.state = SessionState.CLOSED
        if self._loginTimer is not None and self._loginTimer.active():
            self._loginTimer.cancel()
        self._loginTimer = None
        for timer in self._proxyTimers.values():
            if timer.active():
                timer.cancel()
        self._proxyTimers.clear()
        for loop in (self._heartbeat, self._heartbeatCheck):
            if loop is not None and loop.running:
                loop.stop()
        if previous is not SessionState.NEW:
            self.proxies.sessionEnded()
        if self._closeReason is not None:
            reason = Failure(self._closeReason)
        if not self.loggedIn.called:
            if isinstance(reason.value, LoginError):
                self.loggedIn.errback(reason)
            else:
                self.loggedIn.errback(ConnectionClosed(f"control connection closed during login: {reason.value}"))
        elif previous is SessionState.RUNNING:
            self._log.info("control session with frps ended: {reason}", reason=reason.value)
        self.endReason = reason
        self.ended.callback(None)

    # -- messages ---------------------------------------------------------------------------
    def _dispatch(self, msg: Message) -> None:
        if self.state is SessionState.LOGGING_IN:
            self._loginAnswered(msg)  # the channel guarantees a LoginResp here
        elif isinstance(msg, ReqWorkConn):
            self._openWork(NewWorkConn(run_id=self.runId, **self._scoped(NEW_WORK_CONNS_SCOPE)))
        elif isinstance(msg, NewProxyResp):
            self._proxyAnswered(msg)
        elif isinstance(msg, Pong):
            self._pong(msg)
        # frpc ignores every other known message (§5.1).

    def _loginAnswered(self, resp: LoginResp) -> None:
        if self._loginTimer is not None:
            self._loginTimer.cancel()
            self._loginTimer = None
        if resp.error:
            self._log.error("login to frps failed: {error}", error=resp.error)
            self._drop(LoginError(resp.error))
            return
        self.runId = resp.run_id
        self.state = SessionState.RUNNING
        self._log.info("login to server success, get run id [{runId}]", runId=self.runId)  # frp's words
        self.loggedIn.callback(resp)
        if self.state is not SessionState.RUNNING:
            return
        for entry in self.proxies:
            # A proxy added from a loggedIn callback was sent already.
            if entry.sendable and entry.status.state != WAIT_START:
                self._sendNewProxy(entry)
        self._startHeartbeat()

    def _proxyAnswered(self, resp: NewProxyResp) -> None:
        entry = self.proxies.find(self.proxies.localName(resp.proxy_name))
        if entry is None or entry.status.state != WAIT_START:
            self._log.debug("ignoring NewProxyResp for [{name}]", name=resp.proxy_name)
            return
        self._cancelProxyTimer(entry.config.name)
        if resp.error:
            self._log.warn("[{name}] start error: {error}", name=entry.config.name, error=resp.error)
            entry.update(START_ERROR, error=resp.error)
            self._proxyTimers[entry.config.name] = self.clock.callLater(
                START_ERROR_RETRY, self._retryProxy, entry.config.name
            )
        else:
            self._log.info(
                "[{name}] start proxy success, remote address [{addr}]", name=entry.config.name, addr=resp.remote_addr
            )
            entry.update(RUNNING, remote_addr=resp.remote_addr)
        entry.settle()

    def _pong(self, pong: Pong) -> None:
        if pong.error:
            self._log.warn("frps refused our heartbeat: {error}", error=pong.error)
            self._drop(ConnectionClosed(f"Pong error: {pong.error}"))
            return
        self._lastPong = self.clock.seconds()

    # -- proxies ----------------------------------------------------------------------------
    def _cancelProxyTimer(self, name: str) -> None:
        timer = self._proxyTimers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _sendNewProxy(self, entry: ProxyEntry) -> None:
        name = entry.config.name
        self._cancelProxyTimer(name)
        entry.update(WAIT_START)
        self._send(NewProxy(proxy_name=self.proxies.wireName(name), **entry.config.to_new_proxy_fields()))
        self._proxyTimers[name] = self.clock.callLater(NEW_PROXY_RESEND, self._retryProxy, name)

    def _retryProxy(self, name: str) -> None:
        self._proxyTimers.pop(name, None)
        entry = self.proxies.find(name)
        if entry is not None and self.state is SessionState.RUNNING:
            self._sendNewProxy(entry)

    def registerProxy(self, name: str) -> None:
        """Send NewProxy for a proxy just added to the table (no-op unless RUNNING)."""
        entry = self.proxies.get(name)
        if self.state is SessionState.RUNNING and entry.sendable:
            self._sendNewProxy(entry)

    def unregisterProxy(self, entry: ProxyEntry, previousState: str) -> None:
        """Tell frps a proxy removed from the table is gone (no-op unless RUNNING)."""
        self._cancelProxyTimer(entry.config.name)
        if self.state is SessionState.RUNNING and previousState in (WAIT_START, RUNNING):
            self._send(CloseProxy(proxy_name=self.proxies.wireName(entry.config.name)))

    # -- heartbeats ---------------------------------------------------------------------------
    def _startHeartbeat(self) -> None:
        interval = self.config.transport.heartbeat_interval
        if interval <= 0:
            return
        self._lastPong = self.clock.seconds()
        self._heartbeat = LoopingCall(self._ping)
        self._heartbeat.clock = self.clock
        self._heartbeat.start(interval, now=True)
        if self.config.transport.heartbeat_timeout > 0:
            self._heartbeatCheck = LoopingCall(self._checkHeartbeat)
            self._heartbeatCheck.clock = self.clock
            self._heartbeatCheck.start(HEARTBEAT_CHECK, now=False)

    def _ping(self) -> None:
        self._send(Ping(**self._scoped(HEARTBEATS_SCOPE)))

    def _checkHeartbeat(self) -> None:
        timeout = self.config.transport.heartbeat_timeout
        if self.clock.seconds() - self._lastPong > timeout:
            self._log.warn("no Pong from frps for {timeout} s: dropping the session", timeout=timeout)
            self._drop(ConnectionClosed(f"heartbeat timeout ({timeout} s)"))

    # -- shutdown ---------------------------------------------------------------------------
    def close(self) -> None:
        """Graceful end: CloseProxy for every proxy frps knows, then close the connection."""
        if self.state is SessionState.RUNNING:
            for entry in self.proxies:
                if entry.status.state in (WAIT_START, RUNNING):
                    self._send(CloseProxy(proxy_name=self.proxies.wireName(entry.config.name)))
        if self.state is not SessionState.CLOSED:
            self.transport.loseConnection()

