"""Which plugin type is served by what: plugin type name -> builder.

Built-in plugins live in modules of this package, imported only when a proxy uses them (a
frpc without a ``static_file`` proxy never imports twisted.web's file serving); each such
module has a ``build(options, context)`` function.  :func:`register` adds or replaces a
builder at run time and :func:`unregister` removes it again (embedders, tests).

A builder takes the proxy's :class:`~frptw.config.plugins.ClientPluginOptions` and a
:class:`~frptw.client.plugins.PluginContext` and returns an
:class:`~frptw.client.plugins.IClientPlugin`; it raises :class:`~frptw.errors.ConfigError` for
options it cannot use (an unreadable certificate), which leaves the proxy in ``start error``
with that text.
"""

from importlib import import_module
from typing import Callable, Dict, Optional

from frptw.client.plugins._contract import IClientPlugin, PluginContext
from frptw.config.plugins import ClientPluginOptions
from frptw.errors import ConfigError

PluginBuilder = Callable[[ClientPluginOptions, PluginContext], IClientPlugin]

#: Built-in plugin types and the module (in this package) whose ``build`` makes them.
BUILTIN_MODULES: Dict[str, str] = {
    "http2http": "reverse_proxy",
    "http2https": "reverse_proxy",
    "https2http": "reverse_proxy",
    "https2https": "reverse_proxy",
    "http_proxy": "http_proxy",
    "socks5": "socks5",
    "static_file": "static_file",
    "tls2raw": "tls2raw",
    "unix_domain_socket": "unix_socket",
}

_registered: Dict[str, PluginBuilder] = {}


def register(type: str, builder: PluginBuilder) -> None:
    """Serve plugin ``type`` with ``builder`` from now on (proxies added later)."""
    _registered[type] = builder


def unregister(type: str) -> None:
    """Undo :func:`register` (a built-in type is served by its module again)."""
    _registered.pop(type, None)


def isSupported(type: str) -> bool:
    """Whether this frpc can run plugin ``type``."""
    return type in _registered or type in BUILTIN_MODULES


def _builder(type: str) -> Optional[PluginBuilder]:
    builder = _registered.get(type)
    if builder is None and type in BUILTIN_MODULES:
        builder = import_module(f"{__package__}.{BUILTIN_MODULES[type]}").build
    return builder


def buildPlugin(options: ClientPluginOptions, context: PluginContext) -> IClientPlugin:
    """The plugin for one proxy; raises ConfigError for an unsupported type or bad options."""
    builder = _builder(options.type)
    if builder is None:
        raise ConfigError(f"client plugin {options.type!r} is not supported by this frpc")
    return builder(options, context)
