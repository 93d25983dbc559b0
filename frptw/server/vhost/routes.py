"""The vhost route table shared by http, https and tcpmux proxies (wire-protocol.md §10.1).

Sans-IO: a route maps *(domain, location, route user)* to a target (whatever the caller
registers: a proxy, a group, ...).  frps answers a request by host, path and HTTP user:

1. the host is lower-cased, its port and a trailing dot removed;
2. candidate hosts are tried in order: the exact host, then with the first label replaced by
   ``*`` while at least three labels remain (``a.b.example.com`` -> ``*.b.example.com`` ->
   ``*.example.com``, never ``*.com``), finally the catch-all ``*``;
3. for each candidate the routes of that exact user come first, then those registered without
   a user; within one (host, user) the longest location that is a plain string prefix of the
   path wins (frp sorts locations in descending byte order and takes the first prefix).

:func:`proxy_domains` turns a ``NewProxy`` into its domains with frp's validation texts;
:func:`canonical_addr` is how a routed domain is reported back (``NewProxyResp.remote_addr``);
:data:`NOT_FOUND_PAGE` is what frps answers when no route matches.
"""

from typing import Dict, Generic, List, Optional, Tuple, TypeVar

from frptw.errors import ProxyError

T = TypeVar("T")

#: frp's text when (domain, location, user) is already routed.
ROUTER_CONFLICT = "router config conflict"

#: frp 0.65's built-in page for unknown routes and failed backends (pkg/util/vhost/resource.go,
#: 489 bytes), on the http vhost port and in tcpmux's 404 answer.
NOT_FOUND_PAGE = (
    b"<!DOCTYPE html>\n<html>\n<head>\n<title>Not Found</title>\n<style>\n    body {\n        width: 35em;\n"
    b"        margin: 0 auto;\n        font-family: Tahoma, Verdana, Arial, sans-serif;\n    }\n</style>\n"
    b"</head>\n<body>\n<h1>The page you requested was not found.</h1>\n<p>Sorry, the page you are looking for "
    b"is currently unavailable.<br/>\nPlease try again later.</p>\n<p>The server is powered by <a "
    b'href="https://github.com/fatedier/frp">frp</a>.</p>\n<p><em>Faithfully yours, frp.</em></p>\n'
    b"</body>\n</html>\n"
)


def canonical_addr(domain: str, port: int) -> str:
    """``domain`` on a vhost ``port`` as frps reports it: without the port when it is one of
    the standard ports 80 and 443, whichever vhost listens there (the real frps 0.65 answers
    ``a.test`` for an http proxy on a vhost port 443 as on 80, and ``a.test:8443`` on 8443)."""
    return domain if port in (80, 443) else f"{domain}:{port}"


class RouteConflict(ProxyError):
    """The (domain, location, route user) is already taken by another target."""

    def __init__(self) -> None:
        super().__init__(ROUTER_CONFLICT)


def canonical_host(host: str) -> str:
    """``host`` as frp compares it: lower case, without port or trailing dot.

    An IPv6 literal keeps its brackets off (``[::1]:80`` -> ``::1``).
    """
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end != -1:
            host = host[1:end]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host[:-1] if host.endswith(".") else host


def candidate_hosts(host: str) -> List[str]:
    """The host names tried for ``host`` (already canonical), in frp's order."""
    candidates = [host]
    labels = host.split(".")
    while len(labels) >= 3:
        labels[0] = "*"
        candidates.append(".".join(labels))
        labels = labels[1:]
    if host != "*":
        candidates.append("*")
    return candidates


class RouteTable(Generic[T]):
    """Routes by (domain, location, route user); see the module docstring for lookup."""

    def __init__(self) -> None:
        # domain -> user -> [(location, target)] sorted by location, descending.
        self._routes: Dict[str, Dict[str, List[Tuple[str, T]]]] = {}

    def add(self, domains: List[str], locations: List[str], route_user: str, target: T) -> None:
        """Route every (domain, location) pair for ``route_user`` to ``target``, all or
        nothing: a pair that is already routed raises :class:`RouteConflict`.

        Empty ``locations`` means ``[""]`` (every path)."""
        locations = locations or [""]
        pairs = [(domain.lower(), location) for domain in domains for location in locations]
        if len(set(pairs)) != len(pairs) or any(self._exists(d, loc, route_user) for d, loc in pairs):
            raise RouteConflict()
        for domain, location in pairs:
            entries = self._routes.setdefault(domain, {}).setdefault(route_user, [])
            entries.append((location, target))
            entries.sort(key=lambda entry: entry[0].encode("utf-8"), reverse=True)

    def _exists(self, domain: str, location: str, route_user: str) -> bool:
        entries = self._routes.get(domain, {}).get(route_user, [])
        return any(existing == location for existing, _ in entries)

    def remove(self, target: T) -> None:
        """Drop every route of ``target`` (nothing happens if it has none)."""
        for domain in list(self._routes):
            users = self._routes[domain]
            for user in list(users):
                users[user] = [entry for entry in users[user] if entry[1] is not target]
                if not users[user]:
                    del users[user]
            if not users:
                del self._routes[domain]

    def lookup(self, host: str, path: str, user: str) -> Optional[T]:
        """The target serving ``path`` on ``host`` for HTTP user ``user``, or None."""
        for candidate in candidate_hosts(canonical_host(host)):
            users = self._routes.get(candidate)
            if users is None:
                continue
            for who in (user, "") if user else ("",):
                for location, target in users.get(who, ()):
                    if path.startswith(location):
                        return target
        return None

    def __len__(self) -> int:
        return sum(len(entries) for users in self._routes.values() for entries in users.values())


def proxy_domains(request, subdomain_host: str) -> List[str]:
    """The domains an http/https/tcpmux ``NewProxy`` registers, checked as frps does.

    Raises :class:`~frptw.errors.ProxyError` with frp's texts: a custom domain inside
    ``subdomain_host`` (frp tests *contains* and more labels than the host), a ``subdomain``
    without ``subdomain_host``, a ``subdomain`` containing ``.`` or ``*``.
    """
    domains = [domain for domain in request.custom_domains if domain]
    if subdomain_host:
        host_labels = len(subdomain_host.split("."))
        for domain in domains:
            if host_labels < len(domain.split(".")) and subdomain_host in domain:
                raise ProxyError(f"custom domain [{domain}] should not belong to subdomain host [{subdomain_host}]")
    if request.subdomain:
        if not subdomain_host:
            raise ProxyError("subdomain is not supported because this feature is not enabled in server")
        if "." in request.subdomain or "*" in request.subdomain:
            raise ProxyError("'.' and '*' are not supported in subdomain")
        domains.append(f"{request.subdomain}.{subdomain_host}")
    return domains
