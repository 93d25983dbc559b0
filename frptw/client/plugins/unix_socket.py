"""``unix_domain_socket``: every work connection spliced to a UNIX socket (``unixPath``).

As frp: the PROXY protocol header (``proxyProtocolVersion``) goes to the socket first; a
socket that refuses is one warning (``dial to uds <path> error: ...``) and that work
connection closed.
"""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._dial import DIAL_TIMEOUT, forward
from frptw.config.plugins import UnixDomainSocketPluginOptions
from frptw.logs import FrpLogger
from frptw.transport.switch import SwitchableProtocol

_log = FrpLogger(namespace="frptw.client.plugins")


@implementer(IClientPlugin)
class UnixDomainSocketPlugin:
    type = "unix_domain_socket"

    def __init__(self, path: str, context: PluginContext) -> None:
        self._path = path
        self._context = context

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        endpoint = UNIXClientEndpoint(self._context.reactor, self._path, timeout=DIAL_TIMEOUT)
        forward(conn, endpoint, info.proxy_protocol_header, self._dialFailed)

    def _dialFailed(self, failure: Failure) -> None:
        _log.warn("[{name}] dial to uds {path} error: {error}", name=self._context.name, path=self._path,
                  error=failure.value)

    def close(self) -> "Deferred[None]":
        return succeed(None)


def build(options: UnixDomainSocketPluginOptions, context: PluginContext) -> UnixDomainSocketPlugin:
    return UnixDomainSocketPlugin(options.unix_path, context)
