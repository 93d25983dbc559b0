"""frpc's configuration (v1 ``ClientConfig``), with frp 0.65's defaults."""

import os
from dataclasses import dataclass, field
from typing import Dict, List

from frptw.config.model_common import (
    AuthConfig,
    LogConfig,
    QUICOptions,
    WebServerConfig,
    fill_zero,
    key,
)
from frptw.config.proxies import ProxyConfig
from frptw.config.visitors import VisitorConfig


@dataclass
class AuthOIDCClientConfig:
    client_id: str = field(default="", metadata=key("clientID"))
    client_secret: str = ""
    audience: str = ""
    scope: str = ""
    token_endpoint_url: str = field(default="", metadata=key("tokenEndpointURL"))
    additional_endpoint_params: Dict[str, str] = field(default_factory=dict)
    trusted_ca_file: str = ""
    insecure_skip_verify: bool = False
    proxy_url: str = field(default="", metadata=key("proxyURL"))


@dataclass
class AuthClientConfig(AuthConfig):
    oidc: AuthOIDCClientConfig = field(default_factory=AuthOIDCClientConfig, metadata=key("oidc"))


@dataclass
class TLSClientConfig:
    enable: bool = True
    disable_custom_tls_first_byte: bool = field(default=True, metadata=key("disableCustomTLSFirstByte"))
    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    server_name: str = ""


@dataclass
class ClientTransportConfig:
    """How frpc reaches frps.  Heartbeats are off (-1) by default when tcp_mux is on, because
    yamux keep-alives already detect a dead connection; otherwise 30 s / 90 s."""

    protocol: str = "tcp"
    dial_server_timeout: int = 10
    dial_server_keepalive: int = 7200
    connect_server_local_ip: str = field(default="", metadata=key("connectServerLocalIP"))
    #: Defaults to the ``http_proxy`` environment variable, as in frp.
    proxy_url: str = field(default="", metadata=key("proxyURL"))
    pool_count: int = 1
    tcp_mux: bool = True
    tcp_mux_keepalive_interval: int = 30
    quic: QUICOptions = field(default_factory=QUICOptions, metadata=key("quic"))
    heartbeat_interval: int = 0
    heartbeat_timeout: int = 0
    tls: TLSClientConfig = field(default_factory=TLSClientConfig, metadata=key("tls"))

    def __post_init__(self) -> None:
        fill_zero(
            self,
            protocol="tcp",
            dial_server_timeout=10,
            dial_server_keepalive=7200,
            proxy_url=os.environ.get("http_proxy", ""),
            pool_count=1,
            tcp_mux_keepalive_interval=30,
            heartbeat_interval=-1 if self.tcp_mux else 30,
            heartbeat_timeout=-1 if self.tcp_mux else 90,
        )


@dataclass
class VirtualNetConfig:
    address: str = ""


@dataclass
class ClientConfig:
    """Everything frpc reads: common settings plus the proxies and visitors to run.

    ``proxies``/``visitors`` hold only the entries selected by ``start`` (all when it is
    empty), like the ones frpc actually runs.  ``warnings`` lists what frp would silently
    accept but is probably a mistake; ``source`` and ``format`` say where it came from.
    """

    version: str = ""
    auth: AuthClientConfig = field(default_factory=AuthClientConfig)
    user: str = ""
    server_addr: str = "0.0.0.0"
    server_port: int = 7000
    nat_hole_stun_server: str = "stun.easyvoip.com:3478"
    dns_server: str = ""
    login_fail_exit: bool = True
    start: List[str] = field(default_factory=list)
    log: LogConfig = field(default_factory=LogConfig)
    web_server: WebServerConfig = field(default_factory=WebServerConfig)
    transport: ClientTransportConfig = field(default_factory=ClientTransportConfig)
    virtual_net: VirtualNetConfig = field(default_factory=VirtualNetConfig)
    feature_gates: Dict[str, bool] = field(default_factory=dict)
    udp_packet_size: int = 1500
    metadatas: Dict[str, str] = field(default_factory=dict)
    includes: List[str] = field(default_factory=list)
    proxies: List[ProxyConfig] = field(default_factory=list)
    visitors: List[VisitorConfig] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list, compare=False, metadata={"internal": True})
    source: str = field(default="<string>", compare=False, metadata={"internal": True})
    format: str = field(default="", compare=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        fill_zero(
            self,
            server_addr="0.0.0.0",
            server_port=7000,
            nat_hole_stun_server="stun.easyvoip.com:3478",
            udp_packet_size=1500,
        )
