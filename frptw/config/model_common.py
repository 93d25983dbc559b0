"""Building blocks of the configuration model shared by frpc and frps.

Naming rule of the whole model: a Python attribute is the snake_case of frp's v1 (TOML) key and
is nested exactly like v1.  The v1 key is derived from the attribute (``server_addr`` ->
``serverAddr``); where frp's key has an acronym the exact key is given with :func:`key`, only
for error messages: frp matches keys case-insensitively, so ``connectserverlocalip`` and
``connectServerLocalIP`` are the same key.

frp fills defaults *after* decoding, and for most options "zero means default" (``serverPort =
0`` is 7000).  The dataclasses do the same in ``__post_init__`` (see :func:`fill_zero`), so an
object built directly, decoded from v1 or converted from INI always carries frp's effective
values.
"""

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


def key(v1_key: str, **metadata: Any) -> Dict[str, Any]:
    """Field metadata naming the exact v1 key (for messages) and optional decoder hints."""
    return {"key": v1_key, **metadata}


def fill_zero(obj: Any, **defaults: Any) -> None:
    """frp's ``EmptyOr``: replace each attribute that holds its zero value by the default."""
    for name, default in defaults.items():
        if getattr(obj, name) in (0, "", None) and not isinstance(getattr(obj, name), bool):
            setattr(obj, name, default)


@dataclass
class QUICOptions:
    keepalive_period: int = 10
    max_idle_timeout: int = 30
    max_incoming_streams: int = 100000

    def __post_init__(self) -> None:
        fill_zero(self, keepalive_period=10, max_idle_timeout=30, max_incoming_streams=100000)


@dataclass
class TLSConfig:
    """Certificate files; for a web server the presence of this object turns HTTPS on."""

    cert_file: str = ""
    key_file: str = ""
    trusted_ca_file: str = ""
    server_name: str = ""


@dataclass
class WebServerConfig:
    """frpc admin API / frps dashboard (``port = 0`` disables it)."""

    addr: str = "127.0.0.1"
    port: int = 0
    user: str = ""
    password: str = ""
    assets_dir: str = ""
    pprof_enable: bool = False
    tls: Optional[TLSConfig] = None

    def __post_init__(self) -> None:
        fill_zero(self, addr="127.0.0.1")


@dataclass
class LogConfig:
    to: str = "console"
    level: str = "info"
    max_days: int = 3
    disable_print_color: bool = False

    def __post_init__(self) -> None:
        fill_zero(self, to="console", level="info", max_days=3)


@dataclass
class FileSource:
    path: str = ""


@dataclass
class ValueSource:
    """``auth.tokenSource``: read the token from somewhere else (0.65 knows only ``file``)."""

    type: str = ""
    file: Optional[FileSource] = None


@dataclass
class AuthConfig:
    """``auth``: what frpc and frps share; each adds its own ``oidc`` table."""

    method: str = "token"
    additional_scopes: List[str] = field(default_factory=list)
    token: str = ""
    token_source: Optional[ValueSource] = None

    def __post_init__(self) -> None:
        fill_zero(self, method="token")


@dataclass
class HTTPPluginOptions:
    """One frps server plugin (``[[httpPlugins]]`` / INI ``[plugin.NAME]``)."""

    name: str = ""
    addr: str = ""
    path: str = ""
    ops: List[str] = field(default_factory=list)
    tls_verify: bool = False


@dataclass
class HTTPHeader:
    name: str = ""
    value: str = ""


@dataclass
class HeaderOperations:
    set: Dict[str, str] = field(default_factory=dict)


@dataclass
class NatTraversalConfig:
    disable_assisted_addrs: bool = False


AUTH_METHODS = ("token", "oidc")
LOG_LEVELS = ("trace", "debug", "info", "warn", "error")
