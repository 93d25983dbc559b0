"""tcpmux with the ``httpconnect`` multiplexer (``tcpmux_http_connect_port``, wire-protocol.md §10.5).

Each connection sends one HTTP ``CONNECT`` request (read with h11, 30 s at most).  frps routes
it by the CONNECT authority (the ``Host`` header when the target is a path), lower-cased,
without port, and by the user of ``Proxy-Authorization: Basic`` (``route_by_http_user``):

* not HTTP, or not ``CONNECT``: closed without a reply;
* no route: frp's 404 page (:data:`NOT_FOUND`), then close;
* a route, ``tcpmux_passthrough`` off: ``200 OK`` at once — before the credentials are checked,
  as real frps does — then, if the proxy has an ``http_user``, user and password must match or
  frps sends ``407`` and closes; otherwise the CONNECT request is consumed and the tunnel
  begins (bytes the client sent after the request are kept, where Go may drop them);
* a route, passthrough on: no ``200``; the credentials are checked the same way, and the work
  connection receives the whole CONNECT request and whatever followed it.

Known difference from frps: h11 refuses an HTTP/1.1 request without a ``Host`` header, which Go
accepts; such a connection is closed without a reply.
"""

from typing import List, Tuple

import h11
from twisted.internet.interfaces import IReactorTime

from frptw import FRP_VERSION
from frptw.errors import ProxyError
from frptw.logs import FrpLogger
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.server.vhost.prerouting import PreambleConnection, VhostListener, remote_addr
from frptw.server.vhost.routegroup import RouteGroup, RouteGroups
from frptw.server.vhost.routes import NOT_FOUND_PAGE, proxy_domains
from frptw.transport.http_headers import parse_basic_auth
from frptw.wire.messages import NewProxy

log = FrpLogger()

#: The only multiplexer frp has.
HTTPCONNECT = "httpconnect"
#: Largest CONNECT request header block read.
MAX_REQUEST = 64 * 1024

NOT_FOUND = (
    b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nContent-Type: text/html\r\nServer: frp/%s\r\n\r\n"
    % (len(NOT_FOUND_PAGE), FRP_VERSION.encode("ascii"))
) + NOT_FOUND_PAGE
CONNECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
AUTH_REQUIRED = (
    b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"Restricted\"\r\n"
    b"Content-Length: 0\r\n\r\n"
)


def proxy_credentials(headers: List[Tuple[bytes, bytes]]) -> Tuple[str, str]:
    """User and password of the first ``Proxy-Authorization`` header, read as the http vhost
    reads ``Authorization`` (:func:`~frptw.transport.http_headers.parse_basic_auth`, Go's
    ``BasicAuth``); ``("", "")`` when absent or malformed."""
    for name, value in headers:
        if name == b"proxy-authorization":
            return parse_basic_auth(value) or ("", "")
    return "", ""


def connect_host(request: h11.Request) -> str:
    """The host a CONNECT request names: its authority, or the Host header for a path target."""
    target = request.target.decode("latin-1")
    if not target.startswith("/"):
        return target
    for name, value in request.headers:
        if name == b"host":
            return value.decode("latin-1")
    return ""


class _ConnectConnection(PreambleConnection):
    preamble = "CONNECT request"

    def __init__(self, listener: "TCPMuxVhost") -> None:
        super().__init__(listener)
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
        self._raw: List[bytes] = []

    def preambleReceived(self, data: bytes) -> None:
        self._raw.append(data)
        self._http.receive_data(data)
        try:
            event = self._http.next_event()
            if event is h11.NEED_DATA:
                return
            if not isinstance(event, h11.Request) or event.method != b"CONNECT":
                self.refuse(b"", "not an HTTP CONNECT request")
                return
            request = event
            # Read to the end of the request (a CONNECT has no body unless it declares one),
            # so that what follows it is known.
            while event not in (h11.NEED_DATA, h11.PAUSED):
                event = self._http.next_event()
        except h11.RemoteProtocolError as e:
            self.refuse(b"", f"bad HTTP request: {e}")
            return
        following = self._http.trailing_data[0] if event is h11.PAUSED else b""
        self._route(request, following)

    def _route(self, request: h11.Request, following: bytes) -> None:
        vhost = self.listener
        host = connect_host(request)
        user, password = proxy_credentials(request.headers)
        proxy = vhost.routes.lookup(host, "", user)
        if proxy is None:
            self.refuse(NOT_FOUND, f"no tcpmux proxy for host [{host}]")
            return
        if not vhost.passthrough:
            self.transport.write(CONNECTED)
        if not authorized(proxy.request, user, password):
            self.refuse(AUTH_REQUIRED, f"[{proxy.name}] wrong credentials for user [{user}]")
            return
        self.handOver(proxy.choose(), b"".join(self._raw) if vhost.passthrough else following)


class TCPMuxVhost(VhostListener):
    """The tcpmux httpconnect port of one frps: its routes and the factory of its connections."""

    def __init__(self, clock: IReactorTime, port: int, passthrough: bool) -> None:
        super().__init__(clock)
        self.port = port
        self.passthrough = passthrough
        #: tcpmux load-balancing groups; a group is the target of its route.
        self.groups = RouteGroups(self.routes)

    def buildProtocol(self, addr) -> _ConnectConnection:
        return _ConnectConnection(self)


class TCPMuxProxy(BaseProxy):
    """A tcpmux proxy: routes from its domains (and ``route_by_http_user``) to itself."""

    type = "tcpmux"

    def __init__(
        self, owner: ProxyOwner, request: NewProxy, key: bytes, vhost: TCPMuxVhost, subdomainHost: str
    ) -> None:
        super().__init__(owner, request, key)
        if request.multiplexer != HTTPCONNECT:
            raise ProxyError(f"unknown multiplexer [{request.multiplexer}]")
        self._vhost = vhost
        domains = proxy_domains(request, subdomainHost)
        self._groups: List[RouteGroup] = []
        if request.group:
            routes = [(domain.lower(), "", request.route_by_http_user) for domain in domains]
            # frp's tcpmux groups also compare the credentials, which http groups do not.
            self._groups = vhost.groups.joinEach(self, request, routes, (request.http_user, request.http_pwd))
        else:
            vhost.routes.add(domains, [""], request.route_by_http_user, self)
        self.remote_addr = remote_addr(domains, vhost.port)
        for domain in domains:
            log.info("[{run_id}] [{name}] tcpmux httpconnect multiplexer listens for host [{domain}], group [{group}] "
                     "routeByHTTPUser [{user}]", run_id=self.runId, name=self.name, domain=domain, group=request.group,
                     user=request.route_by_http_user)

    def choose(self) -> "TCPMuxProxy":
        """The proxy that serves a connection routed here (a group's target chooses a member)."""
        return self

    def released(self) -> None:
        for group in self._groups:
            self._vhost.groups.leave(self, group)
        self._vhost.routes.remove(self)


def authorized(request: NewProxy, user: str, password: str) -> bool:
    """Whether credentials pass the route's proxy (or group's first member): only an
    ``http_user`` enables the check."""
    if not request.http_user:
        return True
    return user == request.http_user and password == request.http_pwd
