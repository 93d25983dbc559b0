"""Client plugin options (v1 ``plugin = {type = ...}``, INI ``plugin`` + ``plugin_*``).

A plugin replaces the plain "dial local_ip:local_port" backend of a proxy.  One class per
plugin type; ``REQUIRED`` names the option frp insists on.  :class:`ClientPluginOptions`
itself stands for a plugin name frp's INI loader accepts without knowing it (verify passes; the
proxy cannot start).
"""

from dataclasses import dataclass, field
from typing import ClassVar, Dict, Optional, Type

from frptw.config.model_common import HeaderOperations, key


@dataclass
class ClientPluginOptions:
    type: str = ""
    REQUIRED: ClassVar[Optional[str]] = None


@dataclass
class _LocalAddrOptions(ClientPluginOptions):
    """Plugins that forward to another address, optionally rewriting HTTP headers."""

    local_addr: str = ""
    host_header_rewrite: str = ""
    request_headers: HeaderOperations = field(default_factory=HeaderOperations)
    REQUIRED: ClassVar[Optional[str]] = "local_addr"


@dataclass
class HTTP2HTTPSPluginOptions(_LocalAddrOptions):
    type: str = "http2https"


@dataclass
class HTTP2HTTPPluginOptions(_LocalAddrOptions):
    type: str = "http2http"
    REQUIRED: ClassVar[Optional[str]] = None


@dataclass
class HTTPS2HTTPPluginOptions(_LocalAddrOptions):
    type: str = "https2http"
    enable_http2: bool = field(default=True, metadata=key("enableHTTP2"))
    crt_path: str = ""
    key_path: str = ""


@dataclass
class HTTPS2HTTPSPluginOptions(HTTPS2HTTPPluginOptions):
    type: str = "https2https"


@dataclass
class HTTPProxyPluginOptions(ClientPluginOptions):
    type: str = "http_proxy"
    http_user: str = field(default="", metadata=key("httpUser"))
    http_password: str = field(default="", metadata=key("httpPassword"))


@dataclass
class Socks5PluginOptions(ClientPluginOptions):
    type: str = "socks5"
    username: str = ""
    password: str = ""


@dataclass
class StaticFilePluginOptions(ClientPluginOptions):
    type: str = "static_file"
    local_path: str = ""
    strip_prefix: str = ""
    http_user: str = field(default="", metadata=key("httpUser"))
    http_password: str = field(default="", metadata=key("httpPassword"))
    REQUIRED: ClassVar[Optional[str]] = "local_path"


@dataclass
class UnixDomainSocketPluginOptions(ClientPluginOptions):
    type: str = "unix_domain_socket"
    unix_path: str = ""
    REQUIRED: ClassVar[Optional[str]] = "unix_path"


@dataclass
class TLS2RawPluginOptions(ClientPluginOptions):
    type: str = "tls2raw"
    local_addr: str = ""
    crt_path: str = ""
    key_path: str = ""
    REQUIRED: ClassVar[Optional[str]] = "local_addr"


@dataclass
class VirtualNetPluginOptions(ClientPluginOptions):
    type: str = "virtual_net"


PLUGIN_TYPES: Dict[str, Type[ClientPluginOptions]] = {
    cls.type: cls  # type: ignore[misc]
    for cls in (
        HTTP2HTTPSPluginOptions,
        HTTP2HTTPPluginOptions,
        HTTPS2HTTPPluginOptions,
        HTTPS2HTTPSPluginOptions,
        HTTPProxyPluginOptions,
        Socks5PluginOptions,
        StaticFilePluginOptions,
        UnixDomainSocketPluginOptions,
        TLS2RawPluginOptions,
        VirtualNetPluginOptions,
    )
}


@dataclass
class VisitorPluginOptions:
    type: str = ""


@dataclass
class VirtualNetVisitorPluginOptions(VisitorPluginOptions):
    type: str = "virtual_net"
    destination_ip: str = field(default="", metadata=key("destinationIP"))


VISITOR_PLUGIN_TYPES: Dict[str, Type[VisitorPluginOptions]] = {"virtual_net": VirtualNetVisitorPluginOptions}
