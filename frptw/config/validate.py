"""Validation with frp 0.65's verdicts (``frpc verify`` / ``frps verify``) and clearer messages.

Each check below corresponds to one of frp's (``pkg/config/v1/validation``), checked against the
real binaries; where frp accepts something odd we accept it too and return a warning.  Problems
are raised as :class:`~frptw.config.problems.Problem` with v1 key paths; the loader adds the
file name and spells keys as the file does.
"""

import re
from collections import Counter
from typing import Any, Callable, Iterable, List, Optional, Sequence

from frptw.config.model_client import ClientConfig
from frptw.config.model_common import AUTH_METHODS, LOG_LEVELS, ValueSource, WebServerConfig
from frptw.config.model_server import ServerConfig
from frptw.config.problems import Problem, Scope, quote
from frptw.config.proxies import ProxyConfig, TCPMuxProxyConfig
from frptw.config.visitors import VisitorConfig, XTCPVisitorConfig
from frptw.wire.auth import AUTH_SCOPES
from frptw.wire.hostport import dns_server_address

TRANSPORT_PROTOCOLS = ("tcp", "kcp", "quic", "websocket", "wss")
HTTP_PLUGIN_OPS = ("Login", "NewProxy", "CloseProxy", "Ping", "NewWorkConn", "NewUserConn")
KNOWN_FEATURE_GATES = ("VirtualNet",)
ANNOTATIONS_SIZE_LIMIT = 256 * 1024


def _one_of(value: str, allowed: Sequence[str], key: str, scope: Scope = None) -> None:
    if value not in allowed:
        choices = ", ".join(v or '"" (none)' for v in allowed)
        raise Problem(f"{quote(value)} is not one of {choices}", key, scope)


def check_port(port: int, key: str, scope: Scope = None) -> None:
    if not 0 <= port <= 65535:
        raise Problem(f"{port} is not a port number (0..65535)", key, scope)


def _auth(method: str, scopes: Iterable[str]) -> None:
    _one_of(method, AUTH_METHODS, "auth.method")
    for item in scopes:
        _one_of(item, AUTH_SCOPES, "auth.additionalScopes")


def check_value_source(source: ValueSource, key: str) -> None:
    """frp 0.65 only knows ``{type = "file", file = {path = ...}}``."""
    if source.type != "file":
        raise Problem(f"unsupported value source type: {source.type} (only 'file' is supported)", f"{key}.type")
    if source.file is None or not source.file.path:
        raise Problem("a file path is required", f"{key}.file.path")


def _log_and_web(level: str, web: WebServerConfig) -> None:
    _one_of(level, LOG_LEVELS, "log.level")
    if web.tls is not None:
        for attr, name in (("cert_file", "certFile"), ("key_file", "keyFile")):
            if not getattr(web.tls, attr):
                raise Problem("required when the web server uses TLS", f"webServer.tls.{name}")
    check_port(web.port, "webServer.port")


def validate_client(config: ClientConfig) -> List[Problem]:
    """Raise the first problem frpc would refuse; return (unraised) warnings for what it
    silently accepts."""
    warnings: List[Problem] = []
    if config.virtual_net.address:
        raise Problem("VirtualNet is an alpha feature that frp's verify never enables, and frptw does not implement it", "virtualNet.address")
    for gate in config.feature_gates:
        if gate not in KNOWN_FEATURE_GATES:
            warnings.append(Problem(f"unknown gate {gate!r} (frp refuses it when frpc starts)", "featureGates"))
    _auth(config.auth.method, config.auth.additional_scopes)
    if config.dns_server and dns_server_address(config.dns_server) is None:
        warnings.append(Problem("not an IP address with an optional port: names are resolved by the system's "
                                "resolver (Go frpc would fail every lookup)", "dnsServer"))
    if config.auth.token_source is not None:
        if config.auth.token:
            raise Problem("cannot be used together with auth.tokenSource", "auth.token")
        check_value_source(config.auth.token_source, "auth.tokenSource")
    _log_and_web(config.log.level, config.web_server)
    transport = config.transport
    if 0 < transport.heartbeat_timeout < transport.heartbeat_interval:
        raise Problem(
            f"{transport.heartbeat_timeout} is shorter than the heartbeat interval ({transport.heartbeat_interval})",
            "transport.heartbeatTimeout",
        )
    if not transport.tls.enable:
        for attr, name in (("cert_file", "certFile"), ("key_file", "keyFile"), ("trusted_ca_file", "trustedCaFile")):
            if getattr(transport.tls, attr):
                warnings.append(Problem("ignored because transport.tls.enable is false", f"transport.tls.{name}"))
    _one_of(transport.protocol, TRANSPORT_PROTOCOLS, "transport.protocol")
    for index, proxy in enumerate(config.proxies):
        warnings.extend(_at(index, validate_proxy, proxy))
    for index, visitor in enumerate(config.visitors):
        _at(index, validate_visitor, visitor)
    for what, entries in (("proxy", config.proxies), ("visitor", config.visitors)):
        for name, count in Counter(e.name for e in entries).items():
            if count > 1:
                warnings.append(Problem(f"{count} {what} entries share this name; frp 0.65 runs them all (the later "
                                        "ones fail to register), frp 0.70 refuses the file", "name", (what, name)))
    return warnings


def _at(index: int, check: Callable[[Any], Any], entry: Any) -> Any:
    """Run ``check``; a problem it raises also records the entry's position (for nameless ones)."""
    try:
        return check(entry)
    except Problem as problem:
        problem.index = index
        raise


_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z")


def annotation_key_problem(key: str) -> Optional[str]:
    """Why ``key`` is not a Kubernetes qualified name (frp lowercases it first), or None."""
    parts = key.lower().split("/")
    if len(parts) > 2:
        return "must be NAME or PREFIX/NAME"
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            return "the prefix before '/' must not be empty"
        if len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix):
            return "the prefix before '/' must be a DNS subdomain (like example.com)"
    if not name:
        return "the name must not be empty"
    if len(name) > 63:
        return "the name must be at most 63 characters"
    if not _NAME_PART.match(name):
        return "the name must be letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
    return None


def validate_proxy(proxy: ProxyConfig) -> List[Problem]:
    """frp's client-side proxy checks; returns warnings."""
    scope: Scope = ("proxy", proxy.name)
    if not proxy.name:
        raise Problem("a proxy needs a name", "name", scope)
    for name in proxy.annotations:
        problem = annotation_key_problem(name)
        if problem:
            raise Problem(f"key {quote(name)}: {problem}", "annotations", scope)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in proxy.annotations.items())
    if size > ANNOTATIONS_SIZE_LIMIT:
        raise Problem(f"{size} bytes, more than the {ANNOTATIONS_SIZE_LIMIT} allowed", "annotations", scope)
    _one_of(proxy.transport.proxy_protocol_version, ("", "v1", "v2"), "transport.proxyProtocolVersion", scope)
    _one_of(proxy.transport.bandwidth_limit_mode, ("client", "server"), "transport.bandwidthLimitMode", scope)
    warnings: List[Problem] = []
    if proxy.plugin is None:
        check_port(proxy.local_port, "localPort", scope)
        if proxy.local_port == 0:
            warnings.append(Problem("not set, so frpc has no backend to connect to (frp accepts this; "
                                    "set the port or a plugin)", "localPort", scope))
    _one_of(proxy.health_check.type, ("", "tcp", "http"), "healthCheck.type", scope)
    if proxy.health_check.type == "http" and not proxy.health_check.path:
        raise Problem("required for an http health check", "healthCheck.path", scope)
    if proxy.plugin is not None and proxy.plugin.REQUIRED and not getattr(proxy.plugin, proxy.plugin.REQUIRED):
        required = proxy.plugin.REQUIRED.split("_")
        raise Problem(f"required by the {proxy.plugin.type} plugin",
                      "plugin." + required[0] + "".join(p.title() for p in required[1:]), scope)
    if proxy.NEEDS_DOMAIN and not proxy.subdomain and not proxy.custom_domains:  # type: ignore[attr-defined]
        raise Problem(f"{proxy.type} proxies need customDomains or subdomain (or both)", "customDomains", scope)
    if isinstance(proxy, TCPMuxProxyConfig):
        _one_of(proxy.multiplexer, ("httpconnect",), "multiplexer", scope)
    return warnings


def validate_visitor(visitor: VisitorConfig) -> None:
    scope: Scope = ("visitor", visitor.name)
    if not visitor.name:
        raise Problem("a visitor needs a name", "name", scope)
    if not visitor.server_name:
        raise Problem("required (the name of the proxy to visit)", "serverName", scope)
    if visitor.bind_port == 0:
        raise Problem("required (a local port, or -1 for no listener)", "bindPort", scope)
    if isinstance(visitor, XTCPVisitorConfig):
        _one_of(visitor.protocol, ("kcp", "quic"), "protocol", scope)


def validate_server(config: ServerConfig) -> List[Problem]:
    """Raise the first problem frps would refuse; return (unraised) warnings."""
    warnings: List[Problem] = []
    _auth(config.auth.method, config.auth.additional_scopes)
    _log_and_web(config.log.level, config.web_server)
    for attr, key in (
        ("bind_port", "bindPort"),
        ("kcp_bind_port", "kcpBindPort"),
        ("quic_bind_port", "quicBindPort"),
        ("vhost_http_port", "vhostHTTPPort"),
        ("vhost_https_port", "vhostHTTPSPort"),
        ("tcpmux_http_connect_port", "tcpmuxHTTPConnectPort"),
    ):
        check_port(getattr(config, attr), key)
    for plugin in config.http_plugins:
        for op in plugin.ops:
            if op not in HTTP_PLUGIN_OPS:
                raise Problem(f"{quote(op)} is not one of {', '.join(HTTP_PLUGIN_OPS)}", "ops", ("plugin", plugin.name))
    for start, end in config.allow_ports:
        if end < start:
            warnings.append(Problem(f"range {start}-{end} is empty (its end is before its start)", "allowPorts"))
    if config.ssh_tunnel_gateway.bind_port > 0:
        warnings.append(Problem("frptw has no SSH tunnel gateway: nothing will listen on this port (Go frps 0.65 "
                                "serves one)", "sshTunnelGateway.bindPort"))
    return warnings
