"""Visitor configurations: the frpc side that connects to another client's stcp/sudp/xtcp proxy."""

from dataclasses import dataclass, field
from typing import Dict, Optional, Type

from frptw.config.model_common import NatTraversalConfig, fill_zero
from frptw.config.plugins import VisitorPluginOptions
from frptw.config.proxies import wire_name


@dataclass
class VisitorTransport:
    """Must match the target proxy's settings."""

    use_encryption: bool = False
    use_compression: bool = False


@dataclass
class VisitorConfig:
    """Common visitor options.  ``bind_port < 0`` means no local listener (the visitor only
    serves connections handed over by another visitor's ``fallback_to``)."""

    name: str = ""
    type: str = ""
    transport: VisitorTransport = field(default_factory=VisitorTransport)
    secret_key: str = ""
    server_user: str = ""
    server_name: str = ""
    bind_addr: str = "127.0.0.1"
    bind_port: int = 0
    plugin: Optional[VisitorPluginOptions] = field(default=None, metadata={"decode": "visitor_plugin"})

    def __post_init__(self) -> None:
        fill_zero(self, bind_addr="127.0.0.1")

    def target_wire_name(self, user: str) -> str:
        """Wire name of the proxy this visitor reaches: ``server_user`` (or our own user) + name."""
        return wire_name(self.server_user or user, self.server_name)


@dataclass
class STCPVisitorConfig(VisitorConfig):
    type: str = "stcp"


@dataclass
class SUDPVisitorConfig(VisitorConfig):
    type: str = "sudp"


@dataclass
class XTCPVisitorConfig(VisitorConfig):
    type: str = "xtcp"
    #: Transport over the punched hole: ``"quic"`` or ``"kcp"``.
    protocol: str = "quic"
    keep_tunnel_open: bool = False
    max_retries_an_hour: int = 8
    min_retry_interval: int = 90
    #: Name of another visitor (usually stcp) to use when punching fails.
    fallback_to: str = ""
    fallback_timeout_ms: int = 1000
    nat_traversal: Optional[NatTraversalConfig] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        fill_zero(self, protocol="quic", max_retries_an_hour=8, min_retry_interval=90, fallback_timeout_ms=1000)


VISITOR_TYPES: Dict[str, Type[VisitorConfig]] = {
    cls.type: cls for cls in (STCPVisitorConfig, SUDPVisitorConfig, XTCPVisitorConfig)  # type: ignore[misc]
}
