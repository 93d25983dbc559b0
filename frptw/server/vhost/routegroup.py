"""http and tcpmux load-balancing groups: proxies with the same ``group`` share one route
(config-reference.md §5.2).

A group is one (domain, location, ``route_by_http_user``) route of a vhost (tcpmux routes have
no location), named by the group alone: the first member's route is added with the group as
its target, and its settings (``request``: credentials, request headers, host rewrite,
response headers) serve the group from then on, as in frp, where the route keeps the first
member's configuration.  Later members must name the same route, and in tcpmux have the same
credentials (``group params invalid``),
carry the same key (``group auth failed``) and not be in the group already (``group proxy
repeated``); so a proxy with several domains or locations can only be alone in its group, as
in frp.  Each request (http) or connection (tcpmux) goes to the next member in turn; the
last member leaving removes the route.
"""

from typing import Dict, List, Optional, Tuple

from frptw.errors import ProxyError
from frptw.server.rotation import Rotation
from frptw.server.vhost.routes import RouteTable
from frptw.wire.messages import NewProxy

GROUP_PARAMS_INVALID = "group params invalid"
GROUP_AUTH_FAILED = "group auth failed"
GROUP_PROXY_REPEATED = "group proxy repeated"

#: (domain, location, route_by_http_user)
Route = Tuple[str, str, str]


class RouteGroup:
    """One group's route and its members, in the order requests go to them."""

    def __init__(self, name: str, key: str, route: Route, same: Tuple[str, ...], request: NewProxy) -> None:
        self.name = name
        self.key = key
        self.route = route
        #: Further settings every member must share (tcpmux: the credentials).
        self.same = same
        #: The first member's NewProxy: the route's settings for as long as the group lives.
        self.request = request
        self.members: Rotation = Rotation()

    def choose(self):
        """The member that serves the next request or connection, in turn."""
        return self.members.next()


class RouteGroups:
    """The groups of one vhost, by group name; they add and remove their routes."""

    def __init__(self, routes: RouteTable) -> None:
        self._routes = routes
        self._groups: Dict[str, RouteGroup] = {}

    def get(self, name: str) -> Optional[RouteGroup]:
        """The running group called ``name``, if any."""
        return self._groups.get(name)

    def join(self, member, request: NewProxy, route: Route, same: Tuple[str, ...] = ()) -> RouteGroup:
        """Add ``member`` to ``request.group`` for ``route``; ProxyError with frp's text
        (or the route table's ``router config conflict`` for the first member).  ``same``:
        further settings that must equal the first member's."""
        group = self._groups.get(request.group)
        if group is None:
            group = RouteGroup(request.group, request.group_key, route, same, request)
            domain, location, user = route
            self._routes.add([domain], [location], user, group)
            self._groups[group.name] = group
        elif (route, same) != (group.route, group.same):
            raise ProxyError(GROUP_PARAMS_INVALID)
        elif request.group_key != group.key:
            raise ProxyError(GROUP_AUTH_FAILED)
        if member in group.members:
            raise ProxyError(GROUP_PROXY_REPEATED)
        group.members.add(member)
        return group

    def joinEach(self, member, request: NewProxy, routes: List[Route], same: Tuple[str, ...] = ()) -> List[RouteGroup]:
        """Join ``request.group`` once per route, as frp does (so a second route is refused);
        all or nothing."""
        joined: List[RouteGroup] = []
        try:
            for route in routes:
                joined.append(self.join(member, request, route, same))
        except ProxyError:
            for group in joined:
                self.leave(member, group)
            raise
        return joined

    def leave(self, member, group: RouteGroup) -> None:
        """``member`` takes no more requests; the last one to leave removes the route."""
        if member not in group.members:
            return
        group.members.remove(member)
        if not len(group.members):
            self._routes.remove(group)
            del self._groups[group.name]
