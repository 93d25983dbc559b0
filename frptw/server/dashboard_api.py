"""frps's dashboard API (config-reference.md §7.1-7.3), as frp 0.65 answers it.

:func:`dashboardAPI` builds the ``/api`` resource tree of the dashboard:

=====================================  ===================================================
``GET /api/serverinfo``                settings and today's totals
``GET /api/proxy/{type}``              ``{"proxies": [...]}``, online and offline, by name
``GET /api/proxy/{type}/{name}``       one proxy; 404 ``no proxy info found``
``GET /api/traffic/{name}``            7 days of traffic in and out, today first; 404 likewise
``DELETE /api/proxies?status=offline`` forget offline proxies; 400 for another status
=====================================  ===================================================

Path segments are matched percent-decoded, as Go's router matches the decoded path (so an
encoded ``/`` in a name is no match); other paths are Go's 404, a known path asked with another
method an empty 405 (:mod:`frptw.web`).  Bodies are Go's JSON (key order, escapes) and, since
frp never sets a content type, carry the one Go's sniffing gives them, ``text/plain;
charset=utf-8``.  Every answer is logged as frp logs it (``http request: [path]`` / ``http
response [path]: code [N]``).

The records come from the service's :class:`~frptw.server.stats.ServerStats`; a proxy is
``online`` while the service runs a proxy of that name, whose ``conf`` and client version are
then added.
"""

from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import unquote

from twisted.web.resource import Resource
from twisted.web.server import Request

from frptw import FRP_VERSION
from frptw.logs import FrpLogger
from frptw.server.stats import ProxyStats, ServerStats, format_time
from frptw.web import ApiResource, NotFound
from frptw.wire.messages import encode_json

log = FrpLogger()

#: The content type Go's ``http.DetectContentType`` gives frp's JSON and error texts.
TEXT = b"text/plain; charset=utf-8"

Answer = Tuple[int, bytes]


def allow_ports_text(ranges: List[Tuple[int, int]]) -> str:
    """``allow_ports`` as frp prints it in ``allowPortsStr`` (``"2000-3000,3001"``)."""
    return ",".join(str(start) if start == end else f"{start}-{end}" for start, end in ranges)


def _segment(path: bytes) -> Optional[str]:
    """A path segment as Go's router sees it, or None where Go's route would not match."""
    text = unquote(path.decode("utf-8", "replace"))
    return text if text and "/" not in text else None


def _answer(request: Request, answer: Answer) -> bytes:
    code, body = answer
    path = request.path.decode("utf-8", "replace")
    log.info("http request: [{path}]", path=path)
    log.info("http response [{path}]: code [{code}]", path=path, code=code)
    request.setResponseCode(code)
    request.setHeader(b"content-type", TEXT)
    return body


class _Level(NotFound):
    """A path level that is no endpoint itself (Go's 404 for any method, no auth asked), with
    the children put in it or named by one segment through ``make``."""

    isLeaf = False

    def __init__(self, make=None) -> None:
        super().__init__()
        self._make = make

    def getChild(self, path: bytes, request: Request) -> Resource:
        segment = _segment(path)
        if self._make is None or segment is None:
            return NotFound()
        return self._make(segment)


class _Endpoint(ApiResource):
    """One endpoint, answered by :class:`ApiAnswers`; nothing below it."""

    def __init__(self, dashboard: "ApiAnswers", *args: str) -> None:
        super().__init__()
        self._dashboard = dashboard
        self._args = args


class _ServerInfo(_Endpoint):
    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self._dashboard.serverInfo())


class _ProxiesOfType(_Endpoint):
    """``/api/proxy/{type}``; its children are ``/api/proxy/{type}/{name}``."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        name = _segment(path)
        return NotFound() if name is None else _Proxy(self._dashboard, *self._args, name)

    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self._dashboard.proxiesOfType(*self._args))


class _Proxy(_Endpoint):
    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self._dashboard.proxy(*self._args))


class _Traffic(_Endpoint):
    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self._dashboard.traffic(*self._args))


class _ClearOffline(_Endpoint):
    def render_DELETE(self, request: Request) -> bytes:
        status = request.args.get(b"status", [b""])[0].decode("utf-8", "replace")
        return _answer(request, self._dashboard.clearOffline(status))


def dashboardAPI(service) -> Resource:
    """The ``/api`` resource of the dashboard of ``service`` (an ``FrpServerService`` that
    keeps statistics)."""
    dashboard = ApiAnswers(service)
    api = _Level()
    api.putChild(b"serverinfo", _ServerInfo(dashboard))
    api.putChild(b"proxy", _Level(lambda kind: _ProxiesOfType(dashboard, kind)))
    api.putChild(b"traffic", _Level(lambda name: _Traffic(dashboard, name)))
    api.putChild(b"proxies", _ClearOffline(dashboard))
    return api


class ApiAnswers:
    """The answers of the dashboard API, as (status code, body), from ``service``."""

    def __init__(self, service) -> None:
        self._service = service
        self._config = service.config
        self._stats: ServerStats = service.stats

    # -- the endpoints ----------------------------------------------------------------------
    def serverInfo(self) -> Answer:
        config, stats = self._config, self._stats
        stats.rollover()
        info: Dict[str, Any] = {
            "version": FRP_VERSION,
            "bindPort": config.bind_port,
            "vhostHTTPPort": config.vhost_http_port,
            "vhostHTTPSPort": config.vhost_https_port,
            "tcpmuxHTTPConnectPort": config.tcpmux_http_connect_port,
            "kcpBindPort": config.kcp_bind_port,
            "quicBindPort": config.quic_bind_port,
            "subdomainHost": config.subdomain_host,
            "maxPoolCount": config.transport.max_pool_count,
            "maxPortsPerClient": config.max_ports_per_client,
            "heartbeatTimeout": config.transport.heartbeat_timeout,
        }
        ports = allow_ports_text(config.allow_ports)
        if ports:
            info["allowPortsStr"] = ports
        if config.transport.tls.force:
            info["tlsForce"] = True
        info.update({
            "totalTrafficIn": stats.trafficIn.today,
            "totalTrafficOut": stats.trafficOut.today,
            "curConns": stats.curConns,
            "clientCounts": len(self._service.clients()),
            "proxyTypeCount": dict(sorted(stats.proxyTypeCounts.items())),
        })
        return 200, encode_json(info)

    def proxiesOfType(self, kind: str) -> Answer:
        self._stats.rollover()
        running = self._service.proxies()
        items = []
        for record in sorted(self._stats.byType(kind), key=lambda r: r.name):
            live = running.get(record.name)
            items.append(self._item(record, live.client_version if live is not None else None))
        return 200, encode_json({"proxies": items})

    def proxy(self, kind: str, name: str) -> Answer:
        self._stats.rollover()
        record = self._stats.proxies.get(name)
        if record is None or record.type != kind:
            return 404, b"no proxy info found"
        item = self._item(record, None)
        return 200, encode_json(item)

    def _item(self, record: ProxyStats, clientVersion: Optional[str]) -> Dict[str, Any]:
        """A proxy as both proxy endpoints show it; ``clientVersion`` only in the list (and
        only when online and known), as in frp."""
        conf = self._service.proxyConf(record.name)
        item: Dict[str, Any] = {"name": record.name, "conf": conf}
        if clientVersion:
            item["clientVersion"] = clientVersion
        item.update({
            "todayTrafficIn": record.trafficIn.today,
            "todayTrafficOut": record.trafficOut.today,
            "curConns": record.curConns,
            "lastStartTime": format_time(record.lastStartTime),
            "lastCloseTime": format_time(record.lastCloseTime),
            "status": "offline" if conf is None else "online",
        })
        return item

    def traffic(self, name: str) -> Answer:
        self._stats.rollover()
        record = self._stats.proxies.get(name)
        if record is None:
            return 404, b"no proxy info found"
        return 200, encode_json({"name": name, "trafficIn": record.trafficIn.days(),
                                 "trafficOut": record.trafficOut.days()})

    def clearOffline(self, status: str) -> Answer:
        if status != "offline":
            return 400, b"status only support offline"
        cleared, total = self._stats.clearOffline()
        log.info("cleared [{cleared}] offline proxies, total [{total}] proxies", cleared=cleared, total=total)
        return 200, b""
