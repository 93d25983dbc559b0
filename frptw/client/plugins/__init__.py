"""Client plugins: what serves a proxy's work connections instead of ``localIP:localPort``.

The seam (frp's ``pkg/plugin/client``): :class:`IClientPlugin` (``handle`` a started work
connection with its :class:`ConnectionInfo`, ``close`` when the proxy goes), built once per
proxy by :func:`buildPlugin` from the proxy's plugin options and a :class:`PluginContext`.
Plugin modules: ``unix_socket`` (``unix_domain_socket``), ``socks5``, ``http_proxy``, ``tls2raw``; shared pieces: ``_dial`` (dial a
backend, write the PROXY header, splice).
"""

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._registry import (
    BUILTIN_MODULES,
    PluginBuilder,
    buildPlugin,
    isSupported,
    register,
    unregister,
)

__all__ = [
    "BUILTIN_MODULES",
    "ConnectionInfo",
    "IClientPlugin",
    "PluginBuilder",
    "PluginContext",
    "buildPlugin",
    "isSupported",
    "register",
    "unregister",
]
