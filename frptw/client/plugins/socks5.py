"""``socks5``: a SOCKS5 server on every work connection (``username``/``password``).

The negotiation is :class:`frptw.wire.socks5.Socks5Server` (go-socks5's answers, as frp 0.65
runs it); this module is the thin Twisted side: it writes what the machine says, dials the
CONNECT target (names resolved by the reactor, 10 s), answers with the local address of the
outgoing connection, or ``05``/``03``/``04`` when the dial fails as go-socks5 maps Go's errors,
and splices.  Bytes the client pipelines after its request wait (bounded) for the splice.

go-socks5 waits for a silent client for ever; frptw gives a negotiation 60 s
(:data:`NEGOTIATION_TIMEOUT`).  Every refusal is one warning naming the proxy and the reason.
"""

from typing import Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionRefusedError, NoRouteError
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._dial import DIAL_TIMEOUT, dial
from frptw.config.plugins import Socks5PluginOptions
from frptw.logs import FrpLogger
from frptw.transport.sockets import tcpEndpoint
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.wire import socks5 as wire
from frptw.wire.hostport import join_host_port

#: How long a client may take from its first byte to a complete CONNECT request.
NEGOTIATION_TIMEOUT = 60.0

_log = FrpLogger(namespace="frptw.client.plugins")


def _failureCode(failure: Failure) -> int:
    """go-socks5's reply for a failed dial: refused, network unreachable, else host unreachable."""
    if failure.check(ConnectionRefusedError):
        return wire.CONNECTION_REFUSED
    if failure.check(NoRouteError):
        return wire.NETWORK_UNREACHABLE
    return wire.HOST_UNREACHABLE


class SocksSession(SwitchableProtocol):
    """One user's SOCKS5 connection: negotiate, dial, then hand the transport to the splice."""

    def __init__(self, machine: wire.Socks5Server, context: PluginContext, user: str) -> None:
        super().__init__()
        self._machine = machine
        self._context = context
        self._user = user
        self._timer = None
        self._target = ""

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self._context.reactor.callLater(NEGOTIATION_TIMEOUT, self._timedOut)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
        elif self._machine.stage in (wire.Stage.CONNECT, wire.Stage.CLOSED):
            self.hold(data)
        else:
            for event in self._machine.receive_data(data):
                self._act(event)

    def _act(self, event: wire.Event) -> None:
        if isinstance(event, wire.Send):
            self.transport.write(event.data)
        elif isinstance(event, wire.Close):
            self._refuse(event.reason)
        else:
            self._connect(event)

    def _refuse(self, reason: str) -> None:
        cancelCall(self._timer)
        _log.warn("[{name}] socks5: {reason}, closing connection from {user}", name=self._context.name,
                  reason=reason, user=self._user)
        self.transport.loseConnection()

    def _timedOut(self) -> None:
        self._timer = None
        _log.warn("[{name}] socks5: no complete request within {timeout:g} s ({stage}), closing connection",
                  name=self._context.name, timeout=NEGOTIATION_TIMEOUT, stage=self._machine.stage.value)
        self.transport.abortConnection()

    def _connect(self, request: wire.Connect) -> None:
        cancelCall(self._timer)
        self.hold(self._machine.take_unconsumed())
        self._target = join_host_port(request.host, request.port)
        endpoint = tcpEndpoint(self._context.reactor, request.host, request.port, DIAL_TIMEOUT)
        dial(endpoint).addCallbacks(self._connected, self._dialFailed)

    def _connected(self, backend: SwitchableProtocol) -> None:
        local = backend.transport.getHost()
        self.transport.write(wire.reply(wire.SUCCEEDED, local.host, local.port))
        splice(self, backend)

    def _dialFailed(self, failure: Failure) -> None:
        _log.warn("[{name}] socks5: connect to {target} error: {error}", name=self._context.name, target=self._target,
                  error=failure.value)
        self.transport.write(wire.reply(_failureCode(failure)))
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        cancelCall(self._timer)
        super().connectionLost(reason)


@implementer(IClientPlugin)
class Socks5Plugin:
    type = "socks5"

    def __init__(self, credentials: Optional[tuple], context: PluginContext) -> None:
        self._credentials = credentials
        self._context = context

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        user = f"{info.src_addr}:{info.src_port}" if info.src_addr else "an unknown user"
        conn.switchTo(SocksSession(wire.Socks5Server(self._credentials), self._context, user))

    def close(self) -> "Deferred[None]":
        return succeed(None)


def build(options: Socks5PluginOptions, context: PluginContext) -> Socks5Plugin:
    credentials = None
    if options.username or options.password:  # frp: authentication when either is set
        credentials = (options.username.encode("utf-8"), options.password.encode("utf-8"))
    return Socks5Plugin(credentials, context)
