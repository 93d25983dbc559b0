"""The decisions of frpc's control session, as a state machine without I/O.

Theory of operation
-------------------
One :class:`ControlMachine` lives as long as one control connection to frps.  It is fed what
happens -- the connection opened, a message arrived, time passed, the service added or removed
a proxy -- and answers with *actions*: send these messages, open a work connection, update a
proxy's status, report the login, fail the session, close it.  It never touches a socket, a
timer or a Deferred: the current time is an argument, and instead of timers it exposes
:meth:`ControlMachine.deadline`, the earliest moment it wants :meth:`ControlMachine.tick` to
be called.  :class:`~frptw.client._control_protocol.ControlProtocol` carries the actions out
on Twisted; the tests here feed messages and read actions back.

States::

    NEW ──start: Send(Login)──> LOGGING_IN ──LoginResp ok──> RUNNING
                                     │                          │
               LoginResp error / 10 s without answer            │ Pong error, heartbeat
                                     │                          │ timeout, bad data, close()
                                     v                          v
                                   CLOSED <─────────────────────┘   (also: connection lost)

``NEW``
    Built; :meth:`~ControlMachine.start` sends ``Login`` (in clear, by the channel's rule).
``LOGGING_IN``
    Waiting at most :data:`LOGIN_TIMEOUT` s for ``LoginResp``; nothing else is sent.  Proxies
    added meanwhile are queued.  An error answer is :class:`Fail` with
    :class:`~frptw.errors.LoginError` carrying frps's text verbatim.
``RUNNING``
    Registration is pipelined (issue 13): the answer to ``LoginResp`` is *one* batch holding
    a ``NewProxy`` for every queued proxy, so N proxies cost N messages and one write, never
    N round trips; answers are matched by proxy name in whatever order they come.  A proxy
    without an answer after :data:`NEW_PROXY_RESEND` s is sent again; a refused one is sent
    again :data:`START_ERROR_RETRY` s later (wire-protocol.md §5.9).  ``Ping`` goes out every
    ``heartbeat_interval`` s when that is positive, checked every :data:`HEARTBEAT_CHECK` s
    against ``heartbeat_timeout``; a ``Pong`` with an error ends the session.  Each
    ``ReqWorkConn`` becomes one :class:`OpenWorkConn`.
``CLOSED``
    Terminal: every later input is ignored and :meth:`~ControlMachine.deadline` is None.

The protocol writes all :class:`Send` actions of one batch at once, in order, before it carries
out the others in order; :class:`LoggedIn` comes last, so whoever reacts to the login already
sees the proxies in ``wait start``.
"""

import enum
import heapq
from dataclasses import dataclass
from typing import Callable, Dict, Hashable, List, Optional, Tuple, Union

from frptw import FRP_VERSION
from frptw.config import ClientConfig
from frptw.config.proxies import local_name
from frptw.errors import ConnectionClosed, LoginError, ProtocolError
from frptw.wire.auth import SCOPE_HEARTBEATS, SCOPE_NEW_WORK_CONNS, TokenSigner
from frptw.wire.messages import (
    CloseProxy,
    Login,
    LoginResp,
    Message,
    NatHoleResp,
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


# Phases of a proxy as frps sees it (the names frp shows; see frptw.client._proxies).
WAIT_START = "wait start"
RUNNING = "running"
START_ERROR = "start error"


class ControlState(enum.Enum):
    NEW = "new"
    LOGGING_IN = "logging in"
    RUNNING = "running"
    CLOSED = "closed"


@dataclass(frozen=True)
class Send:
    """Write ``message`` on the control connection."""

    message: Message


@dataclass(frozen=True)
class OpenWorkConn:
    """Open a new work connection to frps and write ``hello`` on it first."""

    hello: NewWorkConn


@dataclass(frozen=True)
class ProxyUpdate:
    """The proxy ``name`` entered ``state`` (``wait start``, ``running``, ``start error``)."""

    name: str
    state: str
    error: str = ""
    remote_addr: str = ""


@dataclass(frozen=True)
class LoggedIn:
    """frps accepted the Login."""

    response: LoginResp


@dataclass(frozen=True)
class Fail:
    """The session is over because of ``error``: abort the connection."""

    error: Exception


@dataclass(frozen=True)
class Close:
    """The session ends gracefully: close the connection once the sends are flushed."""


@dataclass(frozen=True)
class NatHoleAnswer:
    """frps answered an xtcp request (``NatHoleResp``): hand it to whoever waits for it."""

    message: NatHoleResp


Action = Union[Send, OpenWorkConn, ProxyUpdate, LoggedIn, Fail, Close, NatHoleAnswer]


class _Deadlines:
    """Named deadlines; a heap with lazy deletion, so 1000 proxies cost O(log n) per change."""

    def __init__(self) -> None:
        self._when: Dict[Hashable, float] = {}
        self._heap: List[Tuple[float, int, Hashable]] = []
        self._counter = 0

    def set(self, key: Hashable, when: float) -> None:
        self._when[key] = when
        self._counter += 1
        heapq.heappush(self._heap, (when, self._counter, key))

    def cancel(self, key: Hashable) -> None:
        self._when.pop(key, None)

    def clear(self) -> None:
        self._when.clear()
        self._heap.clear()

    def _dropStale(self) -> None:
        heap = self._heap
        while heap and self._when.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)

    def earliest(self) -> Optional[float]:
        self._dropStale()
        return self._heap[0][0] if self._heap else None

    def popDue(self, now: float) -> Optional[Tuple[Hashable, float]]:
        """The earliest deadline at or before ``now`` (removed), or None."""
        self._dropStale()
        if not self._heap or self._heap[0][0] > now:
            return None
        when, _, key = heapq.heappop(self._heap)
        del self._when[key]
        return key, when


_LOGIN = "login"
_PING = "ping"
_CHECK = "heartbeat check"


class ControlMachine:
    """frpc's side of one control session (see the module docstring).

    :param config: the ClientConfig (user, token, scopes, pool count, heartbeats).
    :param runId: the run id of the previous session ("" the first time).
    :param sign: the fields that prove who we are, for a time (default: the token's
        ``privilege_key`` and ``timestamp``; OIDC gives its access token).
    """

    def __init__(self, config: ClientConfig, runId: str = "", sign: Optional[Callable[[float], dict]] = None) -> None:
        self._config = config
        self._sign = sign or TokenSigner(config.auth.token)
        self.runId = runId
        self.state = ControlState.NEW
        self._deadlines = _Deadlines()
        #: NewProxy of every proxy this session registers, by configured name.
        self._requests: Dict[str, NewProxy] = {}
        #: Phase of each registered proxy once sent (absent: queued until login).
        self._phases: Dict[str, str] = {}
        self._lastPong = 0.0

    # -- inputs -------------------------------------------------------------------------------
    def start(self, now: float) -> List[Action]:
        """The connection to frps is open: send Login, wait for the answer."""
        if self.state is not ControlState.NEW:
            return []
        self.state = ControlState.LOGGING_IN
        self._deadlines.set(_LOGIN, now + LOGIN_TIMEOUT)
        return [Send(self.loginMessage(now))]

    def messageReceived(self, msg: Message, now: float) -> List[Action]:
        """A message from frps (the first is always a LoginResp: the channel sees to that)."""
        if self.state is ControlState.LOGGING_IN:
            return self._loginAnswered(msg, now)
        if self.state is not ControlState.RUNNING:
            return []
        if isinstance(msg, ReqWorkConn):
            return [OpenWorkConn(NewWorkConn(run_id=self.runId, **self._scoped(SCOPE_NEW_WORK_CONNS, now)))]
        if isinstance(msg, NewProxyResp):
            return self._proxyAnswered(msg, now)
        if isinstance(msg, NatHoleResp):
            return [NatHoleAnswer(msg)]
        if isinstance(msg, Pong):
            if msg.error:
                return self._fail(ConnectionClosed(f"frps refused our heartbeat: {msg.error}"))
            self._lastPong = now
        return []  # frpc ignores every other known message (§5.1)

    def badData(self, error: ProtocolError) -> List[Action]:
        """frps broke framing, JSON or the cipher stream."""
        if self.state in (ControlState.NEW, ControlState.CLOSED):
            return []
        return self._fail(ConnectionClosed(f"frps sent bad data: {error}"))

    def tick(self, now: float) -> List[Action]:
        """Time passed: act on every deadline that is due."""
        actions: List[Action] = []
        while self.state is not ControlState.CLOSED:
            due = self._deadlines.popDue(now)
            if due is None:
                break
            key, when = due
            if key == _LOGIN:
                actions += self._fail(ConnectionClosed(f"no LoginResp within {LOGIN_TIMEOUT:g} s"))
            elif key == _PING:
                actions.append(Send(Ping(**self._scoped(SCOPE_HEARTBEATS, now))))
                self._deadlines.set(_PING, _next(when, self._config.transport.heartbeat_interval, now))
            elif key == _CHECK:
                actions += self._checkHeartbeat(when, now)
            else:
                actions += self._sendNewProxies([key], now)
        return actions

    def deadline(self) -> Optional[float]:
        """When :meth:`tick` must be called next (None: nothing is pending)."""
        return self._deadlines.earliest()

    def addProxy(self, name: str, request: NewProxy, now: float) -> List[Action]:
        """Register a proxy: now if running, else at login.  ``request`` carries the wire name."""
        if self.state is ControlState.CLOSED:
            return []
        self._requests[name] = request
        if self.state is not ControlState.RUNNING:
            return []
        return self._sendNewProxies([name], now)

    def removeProxy(self, name: str) -> List[Action]:
        """Unregister a proxy; frps is told only if it knows the proxy."""
        request = self._requests.pop(name, None)
        phase = self._phases.pop(name, None)
        self._deadlines.cancel(name)
        if request is None or self.state is not ControlState.RUNNING or phase not in (WAIT_START, RUNNING):
            return []
        return [Send(CloseProxy(proxy_name=request.proxy_name))]

    def close(self) -> List[Action]:
        """Graceful end: CloseProxy for every proxy frps knows, then close."""
        if self.state is ControlState.CLOSED:
            return []
        actions: List[Action] = []
        if self.state is ControlState.RUNNING:
            actions = [
                Send(CloseProxy(proxy_name=self._requests[name].proxy_name))
                for name, phase in self._phases.items()
                if phase in (WAIT_START, RUNNING)
            ]
        self._end()
        return actions + [Close()]

    def connectionLost(self) -> None:
        """The connection is gone, whoever closed it."""
        self._end()

    # -- decisions ------------------------------------------------------------------------------
    def loginMessage(self, now: float) -> Login:
        config = self._config
        proof = {"timestamp": int(now), **self._sign(now)}
        return Login(
            version=FRP_VERSION,
            os="linux",
            arch="amd64",
            user=config.user,
            run_id=self.runId,
            metas=dict(config.metadatas),
            pool_count=config.transport.pool_count,
            **proof,
        )

    def _scoped(self, scope: str, now: float) -> dict:
        """``privilege_key``/``timestamp`` for a message when ``scope`` is configured."""
        if scope not in self._config.auth.additional_scopes:
            return {}
        return self._sign(now)

    def _loginAnswered(self, resp: LoginResp, now: float) -> List[Action]:
        self._deadlines.cancel(_LOGIN)
        if resp.error:
            return self._fail(LoginError(resp.error))
        self.runId = resp.run_id
        self.state = ControlState.RUNNING
        actions = self._sendNewProxies(list(self._requests), now)
        transport = self._config.transport
        if transport.heartbeat_interval > 0:
            self._lastPong = now
            self._deadlines.set(_PING, now)
            if transport.heartbeat_timeout > 0:
                self._deadlines.set(_CHECK, now + HEARTBEAT_CHECK)
            actions += self.tick(now)  # the first Ping goes out with the batch
        return actions + [LoggedIn(resp)]

    def _sendNewProxies(self, names: List[str], now: float) -> List[Action]:
        sends: List[Action] = []
        updates: List[Action] = []
        for name in names:
            sends.append(Send(self._requests[name]))
            self._phases[name] = WAIT_START
            self._deadlines.set(name, now + NEW_PROXY_RESEND)
            updates.append(ProxyUpdate(name, WAIT_START))
        return sends + updates

    def _proxyAnswered(self, resp: NewProxyResp, now: float) -> List[Action]:
        name = local_name(self._config.user, resp.proxy_name)
        if self._phases.get(name) != WAIT_START:
            return []  # not ours, removed, or answered twice
        if resp.error:
            self._phases[name] = START_ERROR
            self._deadlines.set(name, now + START_ERROR_RETRY)
            return [ProxyUpdate(name, START_ERROR, error=resp.error)]
        self._phases[name] = RUNNING
        self._deadlines.cancel(name)
        return [ProxyUpdate(name, RUNNING, remote_addr=resp.remote_addr)]

    def _checkHeartbeat(self, when: float, now: float) -> List[Action]:
        timeout = self._config.transport.heartbeat_timeout
        if now - self._lastPong > timeout:
            return self._fail(ConnectionClosed(f"no Pong from frps for {timeout} s"))
        self._deadlines.set(_CHECK, _next(when, HEARTBEAT_CHECK, now))
        return []

    def _fail(self, error: Exception) -> List[Action]:
        self._end()
        return [Fail(error)]

    def _end(self) -> None:
        self.state = ControlState.CLOSED
        self._deadlines.clear()


def _next(when: float, period: float, now: float) -> float:
    """The next run of something periodic that was due at ``when``; late runs are skipped."""
    following = when + period
    return following if following > now else now + period
