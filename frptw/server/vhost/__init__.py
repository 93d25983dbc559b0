"""Virtual hosts of frps: the route table shared by http, https and tcpmux proxies
(:mod:`.routes`) and the HTTP vhost (:mod:`.http`)."""

from frptw.server.vhost.routes import RouteConflict, RouteTable, canonical_host, proxy_domains

__all__ = ["RouteConflict", "RouteTable", "canonical_host", "proxy_domains"]
