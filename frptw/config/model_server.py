"""frps's configuration (v1 ``ServerConfig``), with frp 0.65's defaults."""

from dataclasses import dataclass, field
from typing import List, Tuple

from frptw.config.model_common import (
    AuthConfig,
    HTTPPluginOptions,
    LogConfig,
    QUICOptions,
    WebServerConfig,
    fill_zero,
    key,
)


@dataclass
class AuthOIDCServerConfig:
    issuer: str = ""
    audience: str = ""
    skip_expiry_check: bool = False
    skip_issuer_check: bool = False


@dataclass
class AuthServerConfig(AuthConfig):
    oidc: AuthOIDCServerConfig = field(default_factory=AuthOIDCServerConfig, metadata=key("oidc"))


@dataclass
class TLSServerConfig:
    """``force`` refuses plain connections; a trusted CA (client certificates) implies it."""

    force: bool = False
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    server_name: str = ""

    def __post_init__(self) -> None:
        if self.trusted_ca_file:
            self.force = True


@dataclass
class ServerTransportConfig:
    tcp_mux: bool = True
    tcp_mux_keepalive_interval: int = 30
    tcp_keepalive: int = 7200
    max_pool_count: int = 5
    heartbeat_timeout: int = 0
    quic: QUICOptions = field(default_factory=QUICOptions, metadata=key("quic"))
    tls: TLSServerConfig = field(default_factory=TLSServerConfig, metadata=key("tls"))

    def __post_init__(self) -> None:
        fill_zero(
            self,
            tcp_mux_keepalive_interval=30,
            tcp_keepalive=7200,
            max_pool_count=5,
            heartbeat_timeout=-1 if self.tcp_mux else 90,
        )


@dataclass
class SSHTunnelGateway:
    bind_port: int = 0
    private_key_file: str = ""
    auto_gen_private_key_path: str = "./.autogen_ssh_key"
    authorized_keys_file: str = ""

    def __post_init__(self) -> None:
        fill_zero(self, auto_gen_private_key_path="./.autogen_ssh_key")


@dataclass
class ServerConfig:
    """Everything frps reads.

    ``allow_ports`` is a list of inclusive ``(start, end)`` ranges (a single port ``p`` is
    ``(p, p)``); empty means every port is allowed -- see :meth:`port_allowed`.
    """

    version: str = ""
    auth: AuthServerConfig = field(default_factory=AuthServerConfig)
    bind_addr: str = "0.0.0.0"
    bind_port: int = 7000
    kcp_bind_port: int = 0
    quic_bind_port: int = field(default=0, metadata=key("quicBindPort"))
    #: Where tcp/udp proxies listen; defaults to ``bind_addr``.
    proxy_bind_addr: str = ""
    vhost_http_port: int = field(default=0, metadata=key("vhostHTTPPort"))
    vhost_http_timeout: int = field(default=60, metadata=key("vhostHTTPTimeout"))
    vhost_https_port: int = field(default=0, metadata=key("vhostHTTPSPort"))
    tcpmux_http_connect_port: int = field(default=0, metadata=key("tcpmuxHTTPConnectPort"))
    tcpmux_passthrough: bool = False
    subdomain_host: str = field(default="", metadata=key("subDomainHost"))
    custom404_page: str = field(default="", metadata=key("custom404Page"))
    ssh_tunnel_gateway: SSHTunnelGateway = field(default_factory=SSHTunnelGateway, metadata=key("sshTunnelGateway"))
    web_server: WebServerConfig = field(default_factory=WebServerConfig)
    enable_prometheus: bool = False
    log: LogConfig = field(default_factory=LogConfig)
    transport: ServerTransportConfig = field(default_factory=ServerTransportConfig)
    detailed_errors_to_client: bool = True
    max_ports_per_client: int = 0
    user_conn_timeout: int = 10
    udp_packet_size: int = 1500
    nathole_analysis_data_reserve_hours: int = 168
    allow_ports: List[Tuple[int, int]] = field(default_factory=list, metadata={"decode": "ports"})
    http_plugins: List[HTTPPluginOptions] = field(default_factory=list, metadata=key("httpPlugins"))
    warnings: List[str] = field(default_factory=list, compare=False, metadata={"internal": True})
    source: str = field(default="<string>", compare=False, metadata={"internal": True})
    format: str = field(default="", compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        fill_zero(
            self,
            bind_addr="0.0.0.0",
            bind_port=7000,
            vhost_http_timeout=60,
            user_conn_timeout=10,
            udp_packet_size=1500,
            nathole_analysis_data_reserve_hours=168,
        )
        fill_zero(self, proxy_bind_addr=self.bind_addr)

    def port_allowed(self, port: int) -> bool:
        """Whether a client may bind ``port`` (``allow_ports`` empty = any port)."""
        return not self.allow_ports or any(start <= port <= end for start, end in self.allow_ports)
