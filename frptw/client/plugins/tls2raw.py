"""``tls2raw``: terminate TLS on every work connection and forward the plaintext to ``localAddr``.

As frp 0.65: the certificate is ``crtPath``/``keyPath`` when both are set, else a self-signed
one made when the proxy starts (frp's is RSA; frptw's the ECDSA certificate frps also makes,
:func:`frptw.transport.tls.serverContextFactory`); ``localAddr`` is dialled only once the
handshake is complete (10 s), and nothing is written to it first (frp 0.65 sends no PROXY
header here).  A failed handshake is one warning (``tls handshake error: ...``), a failed dial
another (``dial to local addr error: ...``); either closes that connection only.  frp waits for
a handshake for ever; frptw allows 60 s (:data:`HANDSHAKE_TIMEOUT`).
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IHandshakeListener
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._dial import DIAL_TIMEOUT, dial, parseAddress
from frptw.config.plugins import TLS2RawPluginOptions
from frptw.logs import FrpLogger
from frptw.transport.sockets import tcpEndpoint
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.transport.tls import serverContextFactory, startServerTLS

#: How long a client may take to complete its TLS handshake.
HANDSHAKE_TIMEOUT = 60.0

_log = FrpLogger(namespace="frptw.client.plugins")


@implementer(IHandshakeListener)
class TLS2RawSession(SwitchableProtocol):
    """The protocol above TLS on one work connection: waits for the handshake, dials
    ``localAddr``, then is spliced with it (holding, bounded, what arrives meanwhile)."""

    def __init__(self, plugin: "TLS2RawPlugin") -> None:
        super().__init__()
        self._plugin = plugin
        self._timer = None
        self._handshaken = False

    def connectionMade(self) -> None:
        super().connectionMade()
        self._timer = self._plugin.context.reactor.callLater(HANDSHAKE_TIMEOUT, self._timedOut)

    def handshakeCompleted(self) -> None:
        cancelCall(self._timer)
        self._handshaken = True
        try:
            host, port = parseAddress(self._plugin.localAddr)
        except ValueError as e:
            self._dialFailed(Failure(e))
            return
        endpoint = tcpEndpoint(self._plugin.context.reactor, host, port, DIAL_TIMEOUT)
        dial(endpoint).addCallbacks(lambda backend: splice(self, backend), self._dialFailed)

    def _dialFailed(self, failure: Failure) -> None:
        _log.warn("[{name}] tls2raw: dial to local addr error: {error}", name=self._plugin.context.name,
                  error=failure.getErrorMessage())
        self.transport.loseConnection()

    def _timedOut(self) -> None:
        self._timer = None
        _log.warn("[{name}] tls2raw: tls handshake error: no handshake within {t:g} s", name=self._plugin.context.name,
                  t=HANDSHAKE_TIMEOUT)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        cancelCall(self._timer)
        if not self._handshaken and self._timer is not None:
            _log.warn("[{name}] tls2raw: tls handshake error: {error}", name=self._plugin.context.name,
                      error=reason.getErrorMessage()[:200])
        super().connectionLost(reason)


@implementer(IClientPlugin)
class TLS2RawPlugin:
    type = "tls2raw"

    def __init__(self, options: TLS2RawPluginOptions, context: PluginContext) -> None:
        self.localAddr = options.local_addr
        self.context = context
        if options.crt_path and options.key_path:
            self._tls = serverContextFactory(options.crt_path, options.key_path)
        else:
            self._tls = serverContextFactory()

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        startServerTLS(conn, self._tls, top=TLS2RawSession(self))

    def close(self) -> "Deferred[None]":
        return succeed(None)


def build(options: TLS2RawPluginOptions, context: PluginContext) -> TLS2RawPlugin:
    return TLS2RawPlugin(options, context)
