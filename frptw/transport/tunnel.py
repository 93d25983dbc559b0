"""A tunnel through a forward proxy, opened on a live connection to the proxy.

:func:`startTunnel` runs one of :mod:`frptw.wire.tunnels`' clients (HTTP CONNECT or SOCKS5)
over a :class:`~frptw.transport.switch.SwitchableProtocol`'s connection and, once the proxy has
opened the tunnel, hands the connection to a fresh switchable protocol above it (with any bytes
that came after the proxy's answer), like :func:`frptw.transport.tls.startClientTLS` does for
TLS.  The tunnel adds no layer: above it the bytes are the target's.  The proxy must answer
within ``timeout`` seconds.
"""

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from frptw.errors import ConnectionClosed
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.wire.tunnels import TunnelError


class _Handshake(SwitchableProtocol):
    """The proxy's side of the conversation, until the tunnel is open."""

    def __init__(self, client, clock: IReactorTime, timeout: float) -> None:
        super().__init__()
        self._client = client
        self._clock = clock
        self._timeout = timeout
        self._timer = None
        self.opened: Deferred = Deferred(lambda _: self._abort())

    def _abort(self) -> None:
        cancelCall(self._timer)
        if self.transport is not None:
            self.transport.abortConnection()

    def _fail(self, error: Exception) -> None:
        self._abort()
        if not self.opened.called:
            self.opened.errback(error)

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self._clock.callLater(self._timeout, self._expired)
        self.transport.write(self._client.start())

    def _expired(self) -> None:
        self._timer = None
        self._fail(TunnelError(f"the forward proxy did not open the tunnel within {self._timeout:g} s"))

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
            return
        if self.opened.called:
            return
        try:
            answer = self._client.receive_data(data)
        except TunnelError as e:
            self._fail(e)
            return
        if answer:
            self.transport.write(answer)
        if self._client.established:
            cancelCall(self._timer)
            top = SwitchableProtocol()
            self.switchTo(top, self._client.take_unconsumed())
            self.opened.callback(top)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        cancelCall(self._timer)
        if not self.opened.called:
            self.opened.errback(ConnectionClosed(f"forward proxy closed the connection: {reason.getErrorMessage()}"))


def startTunnel(proto: SwitchableProtocol, client, clock: IReactorTime, timeout: float) -> "Deferred[SwitchableProtocol]":
    """Open a tunnel with ``client`` (a :mod:`frptw.wire.tunnels` client) on ``proto``'s
    connection to the proxy; fires with the protocol above the tunnel, fails with TunnelError
    (refused, bad answer, no answer in ``timeout`` s) or ConnectionClosed, having closed the
    connection."""
    handshake = _Handshake(client, clock, timeout)
    proto.switchTo(handshake)
    return handshake.opened
