"""frps's dashboard: the web server on ``webServer.addr:port`` (INI ``dashboard_addr/port``).

What it serves, as frp 0.65 does (config-reference.md §7, §9):

* ``/healthz`` -- 200, to anyone;
* everything else behind Basic auth (``webServer.user``/``password``; none when both are
  empty), with frp's delayed 401 (:class:`frptw.web.BasicAuthGate`):

  - ``/api/...`` -- the dashboard API (:mod:`frptw.server.dashboard_api`);
  - ``/metrics`` -- Prometheus metrics (:mod:`frptw.server.prometheus`), only with
    ``enablePrometheus``;
  - ``/`` -- a redirect to ``/static/``, the web page: the files of ``webServer.assetsDir``
    if set, else frptw's own page, shipped in the package (``dashboard_ui/``: one HTML page,
    a stylesheet and a dependency-free script that reads the API and draws the traffic
    charts in SVG).

The listener, TLS (``webServer.tls``) and the timeouts are :class:`frptw.web.WebServer`'s.
The service imports this module only when a dashboard port is configured.
"""

import os

from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from twisted.web.server import Request

from frptw.server.dashboard_api import dashboardAPI
from frptw.web import ApiResource, BasicAuthGate, Healthz, RedirectToStatic, WebServer, staticAssets

#: frptw's own web page, used when ``webServer.assetsDir`` is not set.
UI_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard_ui")


class _Metrics(ApiResource):
    """``GET /metrics``: frp's Prometheus families (and the process's), collected now."""

    isLeaf = True

    def __init__(self, service) -> None:
        super().__init__()
        # prometheus_client is loaded only by an frps that enables Prometheus.
        from frptw.server import prometheus

        self._prometheus = prometheus
        self._registry = prometheus.metrics_registry(service)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self._prometheus.CONTENT_TYPE)
        return self._prometheus.exposition(self._registry.collect())


def dashboardResource(service, clock: IReactorTime) -> IResource:
    """The dashboard's resource tree for ``service`` (an ``FrpServerService`` keeping stats)."""
    web = service.config.web_server
    tree = ApiResource()
    tree.putChild(b"", RedirectToStatic())
    tree.putChild(b"api", dashboardAPI(service))
    tree.putChild(b"static", staticAssets(web.assets_dir or UI_DIR))
    if service.config.enable_prometheus:
        tree.putChild(b"metrics", _Metrics(service))
    return BasicAuthGate(tree, web.user, web.password, clock, public={b"healthz": Healthz()})


def dashboardServer(service, reactor) -> WebServer:
    """The dashboard web server of ``service``, not listening yet."""
    return WebServer(service.config.web_server, dashboardResource(service, reactor), reactor, what="dashboard")
