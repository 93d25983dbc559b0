"""A running proxy's configuration as frps's dashboard shows it (the ``conf`` of config-reference.md §7.3).

frp 0.65 rebuilds the v1 proxy configuration from the client's ``NewProxy`` (filling the
server-side defaults: ``localIP`` ``127.0.0.1``, bandwidth mode ``client``), marshals it to
JSON, and decodes that into a per-type "out" structure, which decides the keys shown:

* every type: ``name``, ``type``, ``annotations`` and ``metadatas`` (when not empty),
  ``transport``, ``loadBalancer``, ``healthCheck`` (always empty on the server), ``localIP``,
  ``plugin`` (``null``);
* tcp, udp: ``remotePort`` (the port listened on, also when frps chose it); http: ``customDomains``/``subdomain`` (when set), ``locations``
  (``null`` when none) and ``hostHeaderRewrite``; https: the domains; tcpmux: the domains,
  ``multiplexer`` and ``routeByHTTPUser``; stcp and xtcp: nothing more;
* sudp has no out structure in frp 0.65, so its whole configuration is shown, keys sorted as
  Go prints a map, its ``secretKey`` and ``allowUsers`` included.

:func:`proxy_conf` returns that object as plain JSON-ready Python, in Go's key order.
"""

from typing import Any, Dict

from frptw.config.bandwidth import BandwidthError, parse_bandwidth
from frptw.wire.messages import NewProxy

JSONObject = Dict[str, Any]


def _bandwidth(text: str) -> str:
    """What frps keeps of ``bandwidth_limit``: the text if it parses, else nothing."""
    if not text:
        return ""
    try:
        parse_bandwidth(text)
    except BandwidthError:
        return ""
    return text.strip()


def _base(request: NewProxy, kind: str) -> JSONObject:
    transport: JSONObject = {}
    if request.use_encryption:
        transport["useEncryption"] = True
    if request.use_compression:
        transport["useCompression"] = True
    transport["bandwidthLimit"] = _bandwidth(request.bandwidth_limit)
    transport["bandwidthLimitMode"] = request.bandwidth_limit_mode or "client"
    conf: JSONObject = {"name": request.proxy_name, "type": kind}
    if request.annotations:
        conf["annotations"] = dict(sorted(request.annotations.items()))
    conf["transport"] = transport
    if request.metas:
        conf["metadatas"] = dict(sorted(request.metas.items()))
    balancer: JSONObject = {"group": request.group}
    if request.group_key:
        balancer["groupKey"] = request.group_key
    conf["loadBalancer"] = balancer
    conf["healthCheck"] = {"type": "", "intervalSeconds": 0}
    conf["localIP"] = "127.0.0.1"
    conf["plugin"] = None
    return conf


def _domains(conf: JSONObject, request: NewProxy) -> None:
    if request.custom_domains:
        conf["customDomains"] = list(request.custom_domains)
    if request.subdomain:
        conf["subdomain"] = request.subdomain


def _sorted(value: Any) -> Any:
    """``value`` with every object's keys sorted, as Go marshals a map."""
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    return value


def proxy_conf(request: NewProxy, kind: str, remotePort: int = 0) -> JSONObject:
    """The dashboard's ``conf`` of a running proxy of type ``kind`` registered by ``request``
    (listening on ``remotePort`` if it is a tcp or udp proxy)."""
    conf = _base(request, kind)
    if kind in ("tcp", "udp"):
        conf["remotePort"] = remotePort
    elif kind == "http":
        _domains(conf, request)
        conf["locations"] = list(request.locations) or None
        conf["hostHeaderRewrite"] = request.host_header_rewrite
    elif kind == "https":
        _domains(conf, request)
    elif kind == "tcpmux":
        _domains(conf, request)
        conf["multiplexer"] = request.multiplexer
        conf["routeByHTTPUser"] = request.route_by_http_user
    elif kind == "sudp":
        if request.sk:
            conf["secretKey"] = request.sk
        if request.allow_users:
            conf["allowUsers"] = list(request.allow_users)
        return _sorted(conf)
    return conf
