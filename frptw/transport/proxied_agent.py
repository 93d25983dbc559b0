"""HTTP requests through a forward proxy, as Go's ``http.Transport`` makes them with
``Proxy = http.ProxyURL(u)`` (frpc's ``auth.oidc.proxyURL``, for the OIDC token endpoint).

Go picks the way by the proxy's scheme and the target's:

* ``http``/``https`` proxy (``https``: TLS to the proxy first), ``http://`` target: the request
  goes to the proxy in absolute form (``POST http://idp/token HTTP/1.1``), with
  ``Proxy-Authorization: Basic ...`` when the proxy URL has credentials;
* ``http``/``https`` proxy, ``https://`` target: a ``CONNECT host:port`` tunnel (credentials on
  the CONNECT), then TLS with the target inside it;
* ``socks5``/``socks5h`` proxy: a SOCKS5 tunnel (RFC 1929 credentials), the target's name
  sent to the proxy, then TLS for an ``https://`` target.

:class:`ProxiedAgent` is an ``IAgent`` doing exactly that on Twisted's agents: ``ProxyAgent``
for absolute-form requests, and ``Agent.usingEndpointFactory`` with :class:`TunnelEndpoint`
(the tunnel clients of :mod:`frptw.wire.tunnels`, run by :func:`frptw.transport.tunnel.startTunnel`,
as for ``transport.proxyURL``) for tunnels.
"""

import base64
from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.web.client import URI, Agent, HTTPConnectionPool, ProxyAgent
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from frptw.transport.sockets import quietFactory
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tunnel import startTunnel
from frptw.wire.tunnels import ProxyURL, tunnel_client

#: The proxy schemes Go's http.Transport knows.
SCHEMES = ("http", "https", "socks5", "socks5h")


@implementer(IStreamClientEndpoint)
class TunnelEndpoint:
    """Connections to ``host:port`` through a tunnel that the proxy reached by ``proxyEndpoint``
    opens (CONNECT or SOCKS5, by ``proxy``'s scheme) within ``timeout`` seconds."""

    def __init__(self, clock, proxyEndpoint: IStreamClientEndpoint, proxy: ProxyURL, host: str, port: int,
                 timeout: float) -> None:
        self._clock = clock
        self._proxyEndpoint = proxyEndpoint
        self._proxy = proxy
        self._host = host
        self._port = port
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred:
        d = self._proxyEndpoint.connect(quietFactory(SwitchableProtocol))

        def connected(root: SwitchableProtocol) -> Deferred:
            client = tunnel_client(self._proxy, self._host, self._port)
            opened = startTunnel(root, client, self._clock, self._timeout)
            return opened.addCallback(lambda top: self._run(top, root.transport.getPeer(), protocolFactory))

        return d.addCallback(connected)

    @staticmethod
    def _run(top: SwitchableProtocol, peer, protocolFactory: IProtocolFactory):
        protocol = protocolFactory.buildProtocol(peer)
        top.switchTo(protocol)
        return protocol


@implementer(IAgentEndpointFactory)
class _Tunnels:
    """Endpoints for ``Agent.usingEndpointFactory``: a tunnel per target, TLS inside it for
    ``https://`` targets."""

    def __init__(self, clock, proxyEndpoint: IStreamClientEndpoint, proxy: ProxyURL, policy: IPolicyForHTTPS,
                 timeout: float) -> None:
        self._clock = clock
        self._proxyEndpoint = proxyEndpoint
        self._proxy = proxy
        self._policy = policy
        self._timeout = timeout

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        endpoint = TunnelEndpoint(self._clock, self._proxyEndpoint, self._proxy, host, uri.port, self._timeout)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._policy.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


@implementer(IAgent)
class ProxiedAgent:
    """Requests through ``proxy`` (see the module docstring); ``policy`` checks TLS servers
    (the targets, and an ``https`` proxy itself, as Go applies one TLS configuration to both)."""

    def __init__(self, reactor, proxy: ProxyURL, policy: IPolicyForHTTPS, pool: HTTPConnectionPool,
                 timeout: float) -> None:
        if proxy.scheme not in SCHEMES:
            raise ValueError(f"proxy scheme {proxy.scheme!r} is not one of {', '.join(SCHEMES)}")
        proxyEndpoint: IStreamClientEndpoint = HostnameEndpoint(reactor, proxy.host, proxy.port, timeout)
        if proxy.scheme == "https":
            proxyEndpoint = wrapClientTLS(policy.creatorForNetloc(proxy.host.encode("idna"), proxy.port),
                                          proxyEndpoint)
        self._authorization: Optional[bytes] = None
        if proxy.username is not None:
            self._authorization = b"Basic " + base64.b64encode(f"{proxy.username}:{proxy.password}".encode())
        self._forwarding = ProxyAgent(proxyEndpoint, reactor, pool) if proxy.scheme.startswith("http") else None
        self._tunnelled = Agent.usingEndpointFactory(reactor, _Tunnels(reactor, proxyEndpoint, proxy, policy, timeout),
                                                     pool)

    def request(self, method: bytes, uri: bytes, headers: Optional[Headers] = None,
                bodyProducer: Optional[IBodyProducer] = None) -> "Deferred[IResponse]":
        if self._forwarding is not None and uri.lower().startswith(b"http://"):
            headers = headers.copy() if headers is not None else Headers()
            if self._authorization is not None:
                headers.setRawHeaders(b"proxy-authorization", [self._authorization])
            return self._forwarding.request(method, uri, headers, bodyProducer)
        return self._tunnelled.request(method, uri, headers, bodyProducer)
