"""The control session of one logged-in frpc, as a state machine without I/O.

Theory of operation.  A control connection starts with a ``Login`` that frps has already
authenticated (:mod:`frptw.server.dispatch` does that, because a Login may also replace another
client's control).  From then on :class:`ControlMachine` decides what every control message
means and answers with *actions* — send this message, start this proxy, stop that proxy,
disconnect — which the Twisted side (:mod:`frptw.server.control_protocol`) carries out.  The
session never touches a socket, a timer or another session, so it is tested by feeding it
messages and reading the actions back.

States:

``PENDING``
    The Login was accepted, but nothing has been sent yet: frps may first be closing an older
    control with the same ``run_id`` (a reconnecting frpc), whose proxies must be gone before
    this client registers them again.  :meth:`ControlMachine.start` leaves this state.
``ACTIVE``
    ``LoginResp`` and the first ``ReqWorkConn`` messages are sent; ``NewProxy``, ``CloseProxy``
    and ``Ping`` are handled in arrival order, the xtcp ``NatHole*`` messages go to the
    server's nat-hole controller; every other known message is ignored, as frps
    does.  The heartbeat deadline runs only when ``heartbeat_timeout > 0``.
``CLOSED``
    The connection ended, timed out, or was replaced by a newer Login.  All the client's
    proxies were stopped on the way in; later messages are ignored.

A NewProxy is two steps, because starting a proxy is I/O (a port is bound): :meth:`receive`
returns :class:`StartProxy`, and the caller reports the outcome with :meth:`proxy_started` or
:meth:`proxy_failed`, each of which returns the ``NewProxyResp`` to send.

Server plugins (:mod:`frptw.server.plugins`) see a NewProxy or Ping before the machine does;
asking them is the caller's I/O.  The caller then passes on the message as the plugins left it
(:meth:`receive`), or reports their refusal with :meth:`refused`, which returns frp's answer.
"""

import enum
from dataclasses import dataclass
from typing import Dict, List, Union

from frptw import FRP_VERSION
from frptw.server.auth import TokenVerifier, client_error
from frptw.wire import messages as m

#: Proxy types that occupy one remote port each (counted against ``max_ports_per_client``).
PORT_TYPES = frozenset({"tcp", "udp"})


class ControlState(enum.Enum):
    PENDING = "pending"
    ACTIVE = "active"
    CLOSED = "closed"


@dataclass(frozen=True)
class Send:
    """Write ``message`` on the control connection (encrypted, except ``LoginResp``)."""

    message: object


@dataclass(frozen=True)
class StartProxy:
    """Start the proxy ``request`` describes, then report with proxy_started/proxy_failed."""

    request: m.NewProxy


@dataclass(frozen=True)
class StopProxy:
    """Close the proxy called ``name`` and free what it holds."""

    name: str


@dataclass(frozen=True)
class NatHole:
    """Hand a NatHoleVisitor/NatHoleClient/NatHoleReport to the server's nat-hole controller."""

    message: m.Message


Action = Union[Send, StartProxy, StopProxy, NatHole]

_NAT_HOLE_MESSAGES = (m.NatHoleVisitor, m.NatHoleClient, m.NatHoleReport)


def proxy_type(request: m.NewProxy) -> str:
    """The proxy type of a NewProxy; frp reads an empty type as ``tcp``."""
    return request.proxy_type or "tcp"


class ControlMachine:
    """The decisions of frps for one client, from accepted Login to close."""

    def __init__(
        self,
        login: m.Login,
        run_id: str,
        verifier: TokenVerifier,
        now: float,
        *,
        max_pool_count: int = 5,
        heartbeat_timeout: float = -1,
        max_ports_per_client: int = 0,
        detailed_errors: bool = True,
    ) -> None:
        self.login = login
        self.run_id = run_id
        self.state = ControlState.PENDING
        self.pool_count = max(0, min(int(login.pool_count or 0), max_pool_count))
        self._verifier = verifier
        self.heartbeat_timeout = heartbeat_timeout
        self._max_ports = max_ports_per_client
        self._detailed = detailed_errors
        self._last_ping = now
        #: Names of this client's running proxies and the ports each one holds.
        self.proxies: Dict[str, int] = {}

    @property
    def user(self) -> str:
        return self.login.user or ""

    @property
    def ports_used(self) -> int:
        return sum(self.proxies.values())

    def start(self, now: float) -> List[Action]:
        """Answer the Login: ``LoginResp`` then ``pool_count`` work-connection requests."""
        if self.state is not ControlState.PENDING:
            return []
        self.state = ControlState.ACTIVE
        self._last_ping = now
        actions: List[Action] = [Send(m.LoginResp(version=FRP_VERSION, run_id=self.run_id))]
        actions.extend(Send(m.ReqWorkConn()) for _ in range(self.pool_count))
        return actions

    def receive(self, message: object, now: float) -> List[Action]:
        """The actions answering one control message."""
        if self.state is not ControlState.ACTIVE:
            return []
        if isinstance(message, m.Ping):
            return self._ping(message, now)
        if isinstance(message, m.NewProxy):
            return self._new_proxy(message)
        if isinstance(message, m.CloseProxy):
            return self._close_proxy(message)
        if isinstance(message, _NAT_HOLE_MESSAGES):
            return [NatHole(message)]
        return []

    def refused(self, message: object, error: str) -> List[Action]:
        """A server plugin refused ``message`` with ``error`` (frp's text): what frp answers."""
        if self.state is not ControlState.ACTIVE:
            return []
        if isinstance(message, m.Ping):
            return [Send(m.Pong(error=client_error("invalid ping", error, self._detailed)))]
        if isinstance(message, m.NewProxy):
            return self.proxy_failed(message, error)
        return []

    def _ping(self, ping: m.Ping, now: float) -> List[Action]:
        error = self._verifier.verify_ping(ping.privilege_key, ping.timestamp)
        if error is not None:
            return [Send(m.Pong(error=client_error("invalid ping", error, self._detailed)))]
        self._last_ping = now
        return [Send(m.Pong())]

    def _new_proxy(self, request: m.NewProxy) -> List[Action]:
        needed = 1 if proxy_type(request) in PORT_TYPES else 0
        if self._max_ports > 0 and self.ports_used + needed > self._max_ports:
            return self.proxy_failed(request, "exceed the max_ports_per_client")
        return [StartProxy(request)]

    def proxy_started(self, request: m.NewProxy, remote_addr: str) -> List[Action]:
        """The proxy of ``request`` runs; tell the client where."""
        if self.state is not ControlState.ACTIVE:
            # The client left while the proxy was starting: take it down again.
            return [StopProxy(request.proxy_name)]
        self.proxies[request.proxy_name] = 1 if proxy_type(request) in PORT_TYPES else 0
        return [Send(m.NewProxyResp(proxy_name=request.proxy_name, remote_addr=remote_addr))]

    def proxy_failed(self, request: m.NewProxy, error: str) -> List[Action]:
        """The proxy of ``request`` could not start, because of ``error`` (frp's text)."""
        if self.state is not ControlState.ACTIVE:
            return []
        text = client_error(f"new proxy [{request.proxy_name}] error", error, self._detailed)
        return [Send(m.NewProxyResp(proxy_name=request.proxy_name, error=text))]

    def _close_proxy(self, request: m.CloseProxy) -> List[Action]:
        if self.proxies.pop(request.proxy_name, None) is None:
            return []
        return [StopProxy(request.proxy_name)]

    def heartbeat_expired(self, now: float) -> bool:
        """True when heartbeats are enforced and none came for ``heartbeat_timeout`` s."""
        return (
            self.state is ControlState.ACTIVE
            and self.heartbeat_timeout > 0
            and now - self._last_ping > self.heartbeat_timeout
        )

    def close(self) -> List[Action]:
        """The session ends (any reason): stop every proxy of this client."""
        if self.state is ControlState.CLOSED:
            return []
        self.state = ControlState.CLOSED
        names, self.proxies = list(self.proxies), {}
        return [StopProxy(name) for name in names]
