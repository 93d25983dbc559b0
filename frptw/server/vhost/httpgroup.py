"""http load-balancing groups: proxies with the same ``group`` share one route
(config-reference.md §5.2).

A group is one (domain, location, ``route_by_http_user``) route of the HTTP vhost, named by
the group alone: the first member's route is added with the group as its target, and its
route settings (Basic credentials, request headers, host rewrite, response headers) serve the
group from then on, as in frp, where the route keeps the first member's configuration.  Later
members must name the same route (``group params invalid``), carry the same key
(``group auth failed``) and not be in the group already (``group proxy repeated``); so a
proxy with several domains or locations can only be alone in its group, as in frp.  Each
request goes to the next member in turn (its pool of work connections, its name in the
logs); the last member leaving removes the route.
"""

from typing import Dict, Optional, Tuple

from frptw.errors import ProxyError
from frptw.server.rotation import Rotation
from frptw.server.vhost.routes import RouteTable
from frptw.wire.messages import NewProxy

GROUP_PARAMS_INVALID = "group params invalid"
GROUP_AUTH_FAILED = "group auth failed"
GROUP_PROXY_REPEATED = "group proxy repeated"

#: (domain, location, route_by_http_user)
Route = Tuple[str, str, str]


def check_auth(request: NewProxy, credentials: Optional[Tuple[str, str]]) -> bool:
    """frp's check: a proxy with ``http_user`` or ``http_pwd`` needs both to match."""
    want = (request.http_user, request.http_pwd)
    if want == ("", ""):
        return True
    return credentials == want


class HTTPGroup:
    """One group's route and its members, in the order requests go to them."""

    def __init__(self, name: str, key: str, route: Route, request: NewProxy) -> None:
        self.name = name
        self.key = key
        self.route = route
        #: The first member's NewProxy: the route's settings for as long as the group lives.
        self.request = request
        self.members: Rotation = Rotation()

    @property
    def requestHeaders(self) -> Dict[str, str]:
        return self.request.headers

    def checkAuth(self, credentials: Optional[Tuple[str, str]]) -> bool:
        return check_auth(self.request, credentials)

    def choose(self):
        """The member (an http proxy) that serves the next request, in turn."""
        return self.members.next()


class HTTPGroups:
    """The http groups of one vhost, by group name; they add and remove their routes."""

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes
        self._groups: Dict[str, HTTPGroup] = {}

    def get(self, name: str) -> Optional[HTTPGroup]:
        """The running group called ``name``, if any."""
        return self._groups.get(name)

    def join(self, member, request: NewProxy, route: Route) -> HTTPGroup:
        """Add ``member`` to ``request.group`` for ``route``; ProxyError with frp's text
        (or the route table's ``router config conflict`` for the first member)."""
        group = self._groups.get(request.group)
        if group is None:
            group = HTTPGroup(request.group, request.group_key, route, request)
            domain, location, user = route
            self._routes.add([domain], [location], user, group)
            self._groups[group.name] = group
        elif route != group.route:
            raise ProxyError(GROUP_PARAMS_INVALID)
        elif request.group_key != group.key:
            raise ProxyError(GROUP_AUTH_FAILED)
        if member in group.members:
            raise ProxyError(GROUP_PROXY_REPEATED)
        group.members.add(member)
        return group

    def leave(self, member, group: HTTPGroup) -> None:
        """``member`` takes no more requests; the last one to leave removes the route."""
        if member not in group.members:
            return
        group.members.remove(member)
        if not len(group.members):
            self._routes.remove(group)
            del self._groups[group.name]
