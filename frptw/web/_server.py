"""A management web server: where it listens (TCP or TLS) and its lifetime.

frp's ``httppkg.NewServer`` listens on ``webServer.addr:port`` at start-up (an empty address
means every interface, the backlog is the system's maximum as for every frptw listener) and, with ``webServer.tls``, serves HTTPS with the given certificate;
stopping it closes the listener and every open connection.
"""

from typing import Optional

from twisted.internet.abstract import isIPv6Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint
from twisted.internet.interfaces import IListeningPort
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.resource import IResource

from frptw.config import WebServerConfig
from frptw.logs import FrpLogger
from frptw.transport.sockets import systemBacklog
from frptw.transport.tls import serverContextFactory
from frptw.web._site import BoundedSite

_log = FrpLogger(namespace="frptw.web")


class WebServer:
    """Serve ``root`` on ``config.addr:config.port`` (HTTPS when ``config.tls`` is set).

    :param config: ``webServer`` settings (``frptw.config.WebServerConfig``).
    :param root: the resource tree (usually a :class:`~frptw.web.BasicAuthGate`).
    :param reactor: the reactor (listening and the site's timeouts).
    :param what: how log lines name it: frp says ``admin server`` (frpc) and ``dashboard``
        (frps), as in ``admin server listen on 127.0.0.1:7400``.
    """

    def __init__(self, config: WebServerConfig, root: IResource, reactor, what: str = "web server") -> None:
        self.config = config
        self.what = what
        self._reactor = reactor
        self.site = BoundedSite(root, reactor=reactor)
        #: Knows the open connections, so that stopping can close them.
        self._tracking = WrappingFactory(self.site)
        self.port: Optional[IListeningPort] = None

    def listen(self) -> Deferred:
        """Start listening; fires with the ``IListeningPort``, fails with ``CannotListenError``
        (or ``ConfigError`` for unusable TLS files)."""
        return maybeDeferred(self._factory).addCallback(self._listen)

    def _factory(self):
        tls = self.config.tls
        if tls is None:
            return self._tracking
        return TLSMemoryBIOFactory(serverContextFactory(tls.cert_file, tls.key_file), False, self._tracking)

    def _listen(self, factory) -> Deferred:
        addr = self.config.addr
        if isIPv6Address(addr):
            endpoint = TCP6ServerEndpoint(self._reactor, self.config.port, backlog=systemBacklog(), interface=addr)
        else:
            endpoint = TCP4ServerEndpoint(self._reactor, self.config.port, backlog=systemBacklog(),
                                          interface=addr or "0.0.0.0")
        return endpoint.listen(factory).addCallback(self._listening)

    def _listening(self, port: IListeningPort) -> IListeningPort:
        self.port = port
        host = port.getHost()
        shown = f"[{host.host}]" if ":" in host.host else host.host
        _log.info("{what} listen on {addr}", what=self.what, addr=f"{shown}:{host.port}")
        return port

    def stop(self) -> Deferred:
        """Stop listening and close every open connection (each flushes what it has written)."""
        port, self.port = self.port, None
        for connection in list(self._tracking.protocols):
            connection.transport.loseConnection()
        if port is None:
            return succeed(None)
        return maybeDeferred(port.stopListening)
