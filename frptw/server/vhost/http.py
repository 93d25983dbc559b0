"""frps's HTTP vhost (``vhost_http_port``): an HTTP/1.1 reverse proxy in front of http proxies.

Port sharing (``vhost_http_port == bind_port``): the bind-port sniffer hands a connection
that starts with an HTTP method to ``HTTPVhost.buildProtocol(addr)`` and switches it to the
returned protocol with the bytes it peeked (``SwitchableProtocol.switchTo(proto, leftover)``).
The service's vhost is ``FrpServerService.httpVhost`` (``ProxyRegistry.httpVhost``).

Theory of operation (wire-protocol.md §10.2).  Each user connection is an
:class:`HTTPUserConnection`, an :class:`~frptw.transport.http_front.HTTPFrontConnection`
(parsing, limits, exchanges, tunnels: see that module for the connection's states) that routes
each request on its own (keep-alive requests may reach different proxies): an unknown route is
answered 404 (or ``custom_404_page``), failed Basic auth 401, a failed exchange 404 (504 for
``vhost_http_timeout``); a routed request is forwarded to the proxy's pool of work connections.
"""

from typing import Set, Union

import h11
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.server._event import Event, abortAll
from frptw.server.vhost.http_proxy import HTTPProxy, check_auth
from frptw.server.vhost.http_rewrite import rewrite_request, route_key
from frptw.server.vhost.routegroup import RouteGroup, RouteGroups
from frptw.server.vhost.routes import NOT_FOUND_PAGE, RouteTable, canonical_addr, canonical_host
from frptw.transport.http_exchange import Exchange
from frptw.transport.http_front import HTTPFrontConnection
from frptw.transport.http_headers import Headers, is_upgrade

log = FrpLogger()

_TEXT = [(b"Content-Type", b"text/plain; charset=utf-8")]


class HTTPVhost(Factory):
    """The HTTP vhost of one frps: route table, settings, live user connections.

    :param clock: the reactor's clock (timers).
    :param port: the vhost port (for NewProxyResp addresses; 80 is left out as frp does).
    :param subdomainHost: frps ``subdomain_host``.
    :param responseTimeout: ``vhost_http_timeout``: seconds to wait for a response head.
    :param custom404Page: ``custom_404_page``, a file read at each 404 (frp's page if unreadable).
    """

    noisy = False

    def __init__(self, clock, port: int, subdomainHost: str = "", responseTimeout: float = 60.0,
                 custom404Page: str = "") -> None:
        self.clock = clock
        self.port = port
        self.subdomainHost = subdomainHost
        self.responseTimeout = responseTimeout
        self.custom404Page = custom404Page
        self.routes: RouteTable[Union[HTTPProxy, RouteGroup]] = RouteTable()
        #: http load-balancing groups; a group is the target of its route.
        self.groups = RouteGroups(self.routes)
        self._connections: Set["HTTPUserConnection"] = set()

    def buildProtocol(self, addr) -> "HTTPUserConnection":
        return HTTPUserConnection(self)

    def canonicalAddr(self, domain: str) -> str:
        return canonical_addr(domain, self.port)

    def notFoundPage(self) -> bytes:
        if self.custom404Page:
            try:
                with open(self.custom404Page, "rb") as f:
                    return f.read()
            except OSError as e:
                log.warn("read custom 404 page error: {error}", error=e)
        return NOT_FOUND_PAGE

    def closeConnections(self) -> "Deferred[None]":
        """Close every user connection; fires when they are closed."""
        return abortAll(self._connections)


class HTTPUserConnection(HTTPFrontConnection):
    """One user connection to the HTTP vhost: each request routed on its own."""

    def __init__(self, vhost: HTTPVhost) -> None:
        super().__init__(vhost.clock)
        self.vhost = vhost
        self.closed = Event()

    def connectionMade(self) -> None:
        self.vhost._connections.add(self)
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.vhost._connections.discard(self)
        super().connectionLost(reason)
        self.closed.fire()

    def handleRequest(self, request: h11.Request, headers: Headers, chunked: bool) -> None:
        try:
            key = route_key(request.method, request.target, headers)
        except ValueError:  # an absolute-form target urlsplit cannot read ("http://[x/"): Go's 400 too
            self._badRequest(h11.RemoteProtocolError("malformed request target", 400))
            return
        proxy = self.vhost.routes.lookup(canonical_host(key.host), key.path, key.route_user)
        if proxy is None:
            log.debug("http request for [{host}{path}]: no route", host=key.host, path=key.path)
            self._notFound()
            return
        if not check_auth(proxy.request, key.credentials):
            # Go's http.Error after Header().Set: the handler's headers sorted, names canonical.
            self.answer(401, _TEXT + [(b"Www-Authenticate", b'Basic realm="Restricted"'),
                                      (b"X-Content-Type-Options", b"nosniff")], b"Unauthorized\n")
            return
        forwarded = rewrite_request(headers, key, getattr(self.transport.getPeer(), "host", ""),
                                    proxy.request.host_header_rewrite, proxy.request.headers, chunked)
        target = key.target
        if key.absolute:
            # frp's transport forwards a proxy-style request in proxy form, to the Host it sends.
            target = b"http://" + (proxy.request.host_header_rewrite or key.host).encode("latin-1") + target
        member = proxy.choose()  # a group's route: its next member
        self.forward(Exchange(self, member.pool, member.name,
                              h11.Request(method=request.method, target=target, headers=forwarded),
                              is_upgrade(headers), proxy.request.response_headers, self.vhost.responseTimeout))

    def answerFailed(self, status: int) -> None:
        if status == 504:
            self.answer(504, [], b"")
        else:
            self._notFound()

    def _notFound(self) -> None:
        self.answer(404, [], self.vhost.notFoundPage(), sniffedType=b"text/html; charset=utf-8")
