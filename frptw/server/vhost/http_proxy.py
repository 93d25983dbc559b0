"""The ``http`` proxy of frps and its pool of work connections.

An :class:`HTTPProxy` owns no listener: it registers its routes (domains x locations x
``route_by_http_user``) in the HTTP vhost's route table, checks Basic credentials, and lends
its work connections to the vhost's exchanges (:mod:`frptw.transport.http_exchange`)
through a :class:`~frptw.transport.http_pool.BackendPool`, so that one work connection may
carry many requests (wire-protocol.md §7.7, §10.2).
"""

from typing import List, Optional, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress

from frptw.logs import FrpLogger
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.server.vhost.routegroup import RouteGroup
from frptw.server.vhost.routes import proxy_domains
from frptw.transport.http_exchange import Backend
from frptw.transport.http_pool import BackendPool
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.messages import NewProxy

log = FrpLogger()


def check_auth(request: NewProxy, credentials: Optional[Tuple[str, str]]) -> bool:
    """frp's check of the route's proxy (or group's first member): one with ``http_user`` or
    ``http_pwd`` needs both to match."""
    want = (request.http_user, request.http_pwd)
    if want == ("", ""):
        return True
    return credentials == want


class HTTPProxy(BaseProxy):
    """An ``http`` proxy: routes in the vhost, work connections lent per request."""

    type = "http"

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes, vhost) -> None:
        super().__init__(owner, request, key)
        self.vhost = vhost
        self.domains = proxy_domains(request, vhost.subdomainHost)
        self.pool = BackendPool(owner.clock, self._dial)
        locations = list(request.locations) or [""]
        self._groups: List[RouteGroup] = []
        if request.group:
            routes = [(domain.lower(), location, request.route_by_http_user)
                      for domain in self.domains for location in locations]
            self._groups = vhost.groups.joinEach(self, request, routes)
        else:
            vhost.routes.add(self.domains, locations, request.route_by_http_user, self)
        self.remote_addr = ",".join(vhost.canonicalAddr(domain) for domain in self.domains for _ in locations)
        for domain in self.domains:
            for location in locations:
                log.info("[{run_id}] [{name}] http proxy listen for host [{domain}] location [{location}] "
                         "group [{group}] routeByHTTPUser [{user}]", run_id=self.runId, name=self.name,
                         domain=domain, location=location, group=request.group, user=request.route_by_http_user)

    def choose(self) -> "HTTPProxy":
        """The proxy that serves a request routed here (a group's target chooses a member)."""
        return self

    def _dial(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        """A new work connection (StartWorkConn with the HTTP client's address as src),
        layered as the client asked, speaking HTTP."""
        return Deferred.fromCoroutine(self._startWorkConn(src, None)).addCallback(self._wrap)

    def _wrap(self, work: SwitchableProtocol) -> Backend:
        backend = Backend(self.owner.clock, self.name, self.stats)
        self.stackWorkConn(work).switchTo(backend)
        return backend

    def released(self) -> None:
        for group in self._groups:
            self.vhost.groups.leave(self, group)
        self.vhost.routes.remove(self)
        self.pool.close()
