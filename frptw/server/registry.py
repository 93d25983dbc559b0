"""The server-wide proxy registry: proxy names are global on one frps (wire-protocol.md §5.8).

:class:`ProxyRegistry` starts a proxy for a client's ``NewProxy`` (checking, in frp's order,
the type, then that the name is free, then whatever the proxy type checks, such as its port)
and stops it on ``CloseProxy`` or when the client goes away.  Each proxy type is a builder
registered in :attr:`ProxyRegistry.builders`; a later proxy type adds itself there.

The vhost modules (and h11 with them) are imported only when their port is configured: an frps
without vhosts, the common case, starts without loading them.
"""

from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Dict, List, Mapping, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from frptw.errors import ProxyError
from frptw.logs import FrpLogger
from frptw.server._event import whenAll
from frptw.server.control_machine import proxy_type
from frptw.server.nathole import NatHoleController
from frptw.server.ports import PortAllocator
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.server.stats import ServerStats
from frptw.server.stcp import SecretProxy
from frptw.server.tcp import TCPProxy
from frptw.server.tcpgroup import TCPGroups
from frptw.server.udp import UDPProxy
from frptw.server.xtcp import XTCPProxy
from frptw.wire import messages as m
from frptw.wire.messages import NewProxy

if TYPE_CHECKING:
    from frptw.server.vhost.http import HTTPVhost
    from frptw.server.vhost.https import HTTPSVhost
    from frptw.server.vhost.tcpmux import TCPMuxVhost

log = FrpLogger()

#: Every proxy type frp knows; others are ``unknown proxy type``.
KNOWN_TYPES = ("tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp", "xtcp")

Builder = Callable[["ProxyRegistry", ProxyOwner, NewProxy], BaseProxy]


class ProxyRegistry:
    """All running proxies of one frps, by wire name."""

    def __init__(self, config, reactor, key: bytes, clock: IReactorTime,
                 stats: Optional[ServerStats] = None) -> None:
        self.config = config
        self.reactor = reactor
        #: The statistics each proxy counts into, when frps keeps them (it has a dashboard).
        self.stats = stats
        #: The token key of the data plane (use_encryption on work connections).
        self.key = key
        self.bindAddr = config.proxy_bind_addr or config.bind_addr
        self.tcpPorts = PortAllocator(config.allow_ports, clock)
        self.udpPorts = PortAllocator(config.allow_ports, clock)
        self.tcpGroups = TCPGroups(self.tcpPorts)
        self._proxies: Dict[str, BaseProxy] = {}
        self._runningWaiters: Dict[str, List[Deferred]] = {}
        self.builders: Dict[str, Builder] = {
            "tcp": _buildTCP,
            "udp": _buildUDP,
            "stcp": _buildSecretProxy,
            "sudp": _buildSecretProxy,
            "xtcp": _buildXTCP,
        }
        #: The rendezvous of xtcp visitors and owners (frp always has one).
        self.natHole = NatHoleController(clock, config.nathole_analysis_data_reserve_hours)
        #: The HTTPS (SNI) vhost and the tcpmux httpconnect port, when configured; the
        #: service listens for them (or shares the bind port with the HTTPS one).
        self.httpsVhost: "Optional[HTTPSVhost]" = None
        self.tcpmuxVhost: "Optional[TCPMuxVhost]" = None
        #: The HTTP vhost (its listener is the service's), when vhost_http_port is set.
        self.httpVhost: "Optional[HTTPVhost]" = None
        if config.vhost_http_port:
            from frptw.server.vhost.http import HTTPVhost

            self.httpVhost = HTTPVhost(clock, config.vhost_http_port, config.subdomain_host,
                                       config.vhost_http_timeout, config.custom404_page)
            self.builders["http"] = _buildHTTP
        if config.vhost_https_port:
            from frptw.server.vhost.https import HTTPSVhost

            self.httpsVhost = HTTPSVhost(clock, config.vhost_https_port)
            self.builders["https"] = _buildHTTPS
        if config.tcpmux_http_connect_port:
            from frptw.server.vhost.tcpmux import TCPMuxVhost

            self.tcpmuxVhost = TCPMuxVhost(clock, config.tcpmux_http_connect_port, config.tcpmux_passthrough)
            self.builders["tcpmux"] = _buildTCPMux

    def view(self) -> Mapping[str, BaseProxy]:
        """A read-only live view of the running proxies by name."""
        return MappingProxyType(self._proxies)

    def whenRunning(self, name: str) -> "Deferred[BaseProxy]":
        """Fires with the proxy called ``name`` once it runs (at once if it does already).
        Cancelling the Deferred withdraws the wait."""
        proxy = self._proxies.get(name)
        if proxy is not None:
            return succeed(proxy)
        waiters = self._runningWaiters.setdefault(name, [])

        def cancel(d: Deferred) -> None:
            waiters.remove(d)
            if not waiters and self._runningWaiters.get(name) is waiters:
                del self._runningWaiters[name]

        d: Deferred = Deferred(cancel)
        waiters.append(d)
        return d

    def cancelWaiters(self) -> None:
        """Nothing will start any more (the server stops): cancel every :meth:`whenRunning`."""
        for waiters in list(self._runningWaiters.values()):
            for d in list(waiters):
                d.cancel()

    def _unsupported(self, kind: str) -> str:
        if kind == "http" and not self.config.vhost_http_port:
            return "type [http] not supported when vhost http port is not set"
        if kind == "https" and not self.config.vhost_https_port:
            return "type [https] not supported when vhost https port is not set"
        if kind == "tcpmux" and not self.config.tcpmux_http_connect_port:
            return "tcpmux with multiplexer httpconnect not supported because this feature is not enabled in server"
        if kind in KNOWN_TYPES:
            return f"type [{kind}] not supported by this frps"
        return f"unknown proxy type: {kind}"

    def startProxy(self, owner: ProxyOwner, request: NewProxy) -> str:
        """Start the proxy ``request`` asks for; its remote address, or ProxyError."""
        kind = proxy_type(request)
        builder = self.builders.get(kind)
        if builder is None:
            raise ProxyError(self._unsupported(kind))
        if request.proxy_name in self._proxies:
            raise ProxyError(f"proxy [{request.proxy_name}] already exists")
        proxy = builder(self, owner, request)
        self._proxies[proxy.name] = proxy
        if self.stats is not None:
            proxy.stats = self.stats.proxyOpened(proxy.name, proxy.type)
        for d in self._runningWaiters.pop(proxy.name, []):
            d.callback(proxy)
        return proxy.remote_addr

    def visitorTarget(self, name: str) -> Optional[SecretProxy]:
        """The stcp/sudp proxy a visitor connection names, if there is one."""
        proxy = self._proxies.get(name)
        return proxy if isinstance(proxy, SecretProxy) else None

    def natHoleMessage(self, owner: ProxyOwner, message: m.Message, reply: Callable[[m.Message], None]) -> None:
        """A NatHoleVisitor/NatHoleClient/NatHoleReport on ``owner``'s control connection."""
        if isinstance(message, m.NatHoleVisitor):
            self.natHole.handle_visitor(message, reply, owner.user)
        elif isinstance(message, m.NatHoleClient):
            self.natHole.handle_client(message, reply, owner.runId)
        elif isinstance(message, m.NatHoleReport):
            self.natHole.handle_report(message)

    def stopProxy(self, name: str) -> "Deferred[None]":
        proxy = self._proxies.pop(name, None)
        if proxy is None:
            return succeed(None)
        if proxy.stats is not None:
            self.stats.proxyClosed(proxy.stats)
        d = proxy.close()
        d.addCallback(lambda _: log.info("[{run_id}] close proxy [{name}] success", run_id=proxy.runId, name=name))
        return d

    def stopAll(self) -> "Deferred[None]":
        return whenAll([self.stopProxy(name) for name in list(self._proxies)])


def _buildTCP(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    return TCPProxy(owner, request, registry.key, registry.reactor, registry.tcpPorts, registry.bindAddr,
                    registry.tcpGroups)


def _buildUDP(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    return UDPProxy(owner, request, registry.key, registry.reactor, registry.udpPorts, registry.bindAddr,
                    registry.config.udp_packet_size)


def _buildHTTP(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    from frptw.server.vhost.http_proxy import HTTPProxy

    return HTTPProxy(owner, request, registry.key, registry.httpVhost)


def _buildHTTPS(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    from frptw.server.vhost.https import HTTPSProxy

    return HTTPSProxy(owner, request, registry.key, registry.httpsVhost, registry.config.subdomain_host)


def _buildTCPMux(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    from frptw.server.vhost.tcpmux import TCPMuxProxy

    return TCPMuxProxy(owner, request, registry.key, registry.tcpmuxVhost, registry.config.subdomain_host)


def _buildXTCP(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    return XTCPProxy(owner, request, registry.key, registry.natHole)


def _buildSecretProxy(registry: ProxyRegistry, owner: ProxyOwner, request: NewProxy) -> BaseProxy:
    return SecretProxy(owner, request, registry.key, proxy_type(request))
