"""Proxy configurations: one class per proxy type, and what frpc sends for each in NewProxy.

Common options live in :class:`ProxyConfig`; the per-type options come from small mixins so
that types sharing options (tcp/udp ``remote_port``, http/https/tcpmux domains, stcp/sudp/xtcp
secret key) share their definition too.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, List, Optional, Type

from frptw.config.model_common import HeaderOperations, HTTPHeader, NatTraversalConfig, fill_zero, key
from frptw.config.plugins import ClientPluginOptions


def wire_name(user: str, name: str) -> str:
    """The name frpc uses on the wire for a proxy (and a visitor's target): ``user.name``."""
    return f"{user}.{name}" if user else name


def local_name(user: str, wireName: str) -> str:
    """The inverse of :func:`wire_name` for names frps sends back: strip exactly one ``user.``."""
    prefix = f"{user}."
    if user and wireName.startswith(prefix):
        return wireName[len(prefix):]
    return wireName


@dataclass
class ProxyTransport:
    use_encryption: bool = False
    use_compression: bool = False
    #: ``"1MB"``, ``"512KB"``, ``"1.5MB"``; ``""`` means unlimited.
    bandwidth_limit: str = field(default="", metadata={"decode": "bandwidth"})
    bandwidth_limit_mode: str = "client"
    #: ``""`` (none), ``"v1"`` or ``"v2"``: PROXY protocol header frpc sends to the backend.
    proxy_protocol_version: str = ""

    def __post_init__(self) -> None:
        fill_zero(self, bandwidth_limit_mode="client")


@dataclass
class LoadBalancerConfig:
    group: str = ""
    group_key: str = ""


@dataclass
class HealthCheckConfig:
    """``type`` ``""`` (off), ``"tcp"`` or ``"http"``; non-positive numbers mean frp's defaults."""

    type: str = ""
    timeout_seconds: int = 3
    max_failed: int = 1
    interval_seconds: int = 10
    path: str = ""
    http_headers: List[HTTPHeader] = field(default_factory=list, metadata=key("httpHeaders"))

    def __post_init__(self) -> None:
        for name, default in (("timeout_seconds", 3), ("max_failed", 1), ("interval_seconds", 10)):
            if getattr(self, name) <= 0:
                setattr(self, name, default)


@dataclass
class ProxyConfig:
    """Options every proxy type has.  ``plugin`` is None for a plain local_ip:local_port backend."""

    name: str = ""
    type: str = ""
    annotations: Dict[str, str] = field(default_factory=dict)
    transport: ProxyTransport = field(default_factory=ProxyTransport)
    metadatas: Dict[str, str] = field(default_factory=dict)
    load_balancer: LoadBalancerConfig = field(default_factory=LoadBalancerConfig)
    health_check: HealthCheckConfig = field(default_factory=HealthCheckConfig)
    local_ip: str = field(default="127.0.0.1", metadata=key("localIP"))
    local_port: int = 0
    plugin: Optional[ClientPluginOptions] = field(default=None, metadata={"decode": "plugin"})

    #: Types that need ``custom_domains`` or ``subdomain``.
    NEEDS_DOMAIN: ClassVar[bool] = False

    def __post_init__(self) -> None:
        fill_zero(self, local_ip="127.0.0.1")

    def to_new_proxy_fields(self) -> Dict[str, Any]:
        """The NewProxy message fields for this proxy, in frp's order and with Go's omitempty,
        without ``proxy_name`` (that needs the user prefix: :func:`wire_name`)."""
        out: Dict[str, Any] = {}
        for wire_key, path in _NEW_PROXY_FIELDS:
            value: Any = self
            for part in path.split("."):
                value = getattr(value, part, None)
            if wire_key == "bandwidth_limit_mode" and value == "client":
                continue
            if value not in (None, False, 0, "", [], {}):
                out[wire_key] = list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value
        return out


# NewProxy's JSON keys in Go struct order, and the attribute each comes from (types without the
# attribute simply have nothing to send for that key).
_NEW_PROXY_FIELDS = [
    ("proxy_type", "type"),
    ("use_encryption", "transport.use_encryption"),
    ("use_compression", "transport.use_compression"),
    ("bandwidth_limit", "transport.bandwidth_limit"),
    ("bandwidth_limit_mode", "transport.bandwidth_limit_mode"),
    ("group", "load_balancer.group"),
    ("group_key", "load_balancer.group_key"),
    ("metas", "metadatas"),
    ("annotations", "annotations"),
    ("remote_port", "remote_port"),
    ("custom_domains", "custom_domains"),
    ("subdomain", "subdomain"),
    ("locations", "locations"),
    ("http_user", "http_user"),
    ("http_pwd", "http_password"),
    ("host_header_rewrite", "host_header_rewrite"),
    ("headers", "request_headers.set"),
    ("response_headers", "response_headers.set"),
    ("route_by_http_user", "route_by_http_user"),
    ("sk", "secret_key"),
    ("allow_users", "allow_users"),
    ("multiplexer", "multiplexer"),
]


@dataclass
class _RemotePort:
    #: Port frps listens on for users; 0 lets frps choose.
    remote_port: int = 0


@dataclass
class _Domains:
    custom_domains: List[str] = field(default_factory=list)
    subdomain: str = ""
    NEEDS_DOMAIN: ClassVar[bool] = True


@dataclass
class _HTTPAuth:
    http_user: str = field(default="", metadata=key("httpUser"))
    http_password: str = field(default="", metadata=key("httpPassword"))
    route_by_http_user: str = field(default="", metadata=key("routeByHTTPUser"))


@dataclass
class _Secret:
    secret_key: str = ""
    #: Users whose visitors may connect; empty = only our own user, ``"*"`` = anyone.
    allow_users: List[str] = field(default_factory=list)


@dataclass
class TCPProxyConfig(_RemotePort, ProxyConfig):
    type: str = "tcp"


@dataclass
class UDPProxyConfig(_RemotePort, ProxyConfig):
    type: str = "udp"


@dataclass
class HTTPProxyConfig(_Domains, _HTTPAuth, ProxyConfig):
    type: str = "http"
    locations: List[str] = field(default_factory=list)
    host_header_rewrite: str = ""
    request_headers: HeaderOperations = field(default_factory=HeaderOperations)
    response_headers: HeaderOperations = field(default_factory=HeaderOperations)


@dataclass
class HTTPSProxyConfig(_Domains, ProxyConfig):
    type: str = "https"


@dataclass
class TCPMuxProxyConfig(_Domains, _HTTPAuth, ProxyConfig):
    type: str = "tcpmux"
    #: Only ``"httpconnect"`` exists.
    multiplexer: str = ""


@dataclass
class STCPProxyConfig(_Secret, ProxyConfig):
    type: str = "stcp"


@dataclass
class SUDPProxyConfig(_Secret, ProxyConfig):
    type: str = "sudp"


@dataclass
class XTCPProxyConfig(_Secret, ProxyConfig):
    type: str = "xtcp"
    nat_traversal: Optional[NatTraversalConfig] = None


PROXY_TYPES: Dict[str, Type[ProxyConfig]] = {
    cls.type: cls  # type: ignore[misc]
    for cls in (
        TCPProxyConfig,
        UDPProxyConfig,
        HTTPProxyConfig,
        HTTPSProxyConfig,
        TCPMuxProxyConfig,
        STCPProxyConfig,
        SUDPProxyConfig,
        XTCPProxyConfig,
    )
}
