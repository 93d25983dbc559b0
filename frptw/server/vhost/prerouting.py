"""What the HTTPS and tcpmux vhosts share: a connection that reads a preamble, then routes.

An HTTPS (TLS ClientHello) or tcpmux (HTTP CONNECT request) user connection does not know its
proxy until it has read the first bytes.  :class:`PreambleConnection` reads them under a
deadline (30 s, frp's vhost read timeout), and then either refuses the connection or hands it,
with the bytes the proxy must see first, to a :class:`~frptw.server.proxy_base.UserConnection` of
the proxy its route names; from there on it is an ordinary user connection (work connection,
data-plane layers, splice).  :class:`VhostListener` is the factory of such connections and owns
the routes; it also closes the connections still reading their preamble when frps stops.
"""

from typing import Iterable, Optional, Set

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.server._event import Event, abortAll
from frptw.server.proxy_base import BaseProxy, UserConnection
from frptw.server.vhost.routes import RouteTable, canonical_addr
from frptw.transport.addresses import describePeer
from frptw.transport.switch import SwitchableProtocol

#: Seconds a vhost connection has to send its ClientHello / CONNECT request.
PREAMBLE_TIMEOUT = 30.0

log = FrpLogger()


def remote_addr(domains: Iterable[str], port: int) -> str:
    """``NewProxyResp.remote_addr`` of a vhost proxy: each domain's :func:`canonical_addr`,
    comma separated."""
    return ",".join(canonical_addr(domain, port) for domain in domains)


class PreambleConnection(SwitchableProtocol):
    """A vhost user connection until its route is known; subclasses parse the preamble in
    :meth:`preambleReceived` and end with :meth:`handOver` or :meth:`refuse`."""

    #: What the preamble is, for the timeout log line.
    preamble = "preamble"

    def __init__(self, listener: "VhostListener") -> None:
        super().__init__()
        self.listener = listener
        self._deadline: Optional[IDelayedCall] = None
        self._done = False
        self.closed = Event()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.listener.pending.add(self)
        self._deadline = self.listener.clock.callLater(PREAMBLE_TIMEOUT, self._timedOut)

    def _timedOut(self) -> None:
        self._deadline = None
        self.refuse(b"", f"no complete {self.preamble} in {PREAMBLE_TIMEOUT:.0f} s", abort=True)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
        elif not self._done:
            self.preambleReceived(data)

    def preambleReceived(self, data: bytes) -> None:
        """Bytes that arrived before the connection was routed."""
        raise NotImplementedError

    def _finish(self) -> None:
        self._done = True
        self.listener.pending.discard(self)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def handOver(self, proxy: BaseProxy, replay: bytes) -> None:
        """Make this connection a user connection of ``proxy``, whose work connection will
        receive ``replay`` first."""
        self._finish()
        self.switchTo(UserConnection(proxy), replay)

    def refuse(self, reply: bytes, why: str, abort: bool = False) -> None:
        """Write ``reply`` (may be empty) and close, with one log line saying ``why``."""
        self._finish()
        log.info("closing vhost connection from {peer}: {why}", peer=describePeer(self.transport), why=why)
        if reply:
            self.transport.write(reply)
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.switchedTo is None:
            self._finish()
        super().connectionLost(reason)
        self.closed.fire()


class VhostListener(Factory):
    """Builds the preamble connections of one vhost port and owns its routes."""

    noisy = False

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.routes: RouteTable[BaseProxy] = RouteTable()
        #: Connections still reading their preamble.
        self.pending: Set[PreambleConnection] = set()

    def closeConnections(self) -> "Deferred[None]":
        """Abort the connections still reading their preamble; fires when they are closed."""
        return abortAll(self.pending)
