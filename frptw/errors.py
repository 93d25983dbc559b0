"""Typed exceptions of frptw's public API.

Deferreds returned by the public API fail with these, never with bare strings, so embedders
can ``trap`` them.  Wire-level decoding errors live in :mod:`frptw.wire.errors` (the wire layer
imports nothing from here) and are re-exported below.
"""

from frptw.wire.errors import ProtocolError


class FrpError(Exception):
    """Base class of every error frptw raises on purpose."""


class ConfigError(FrpError):
    """A configuration file or object is invalid.

    The message names the file, the section (or proxy name), the key and the rule broken, e.g.
    ``frpc.ini [ssh] local_port: "abc" is not a port number``.
    """


class LoginError(FrpError):
    """frps refused our Login; the message is frps's own error text, verbatim."""


class ProxyError(FrpError):
    """frps refused a NewProxy (or the proxy could not start); the message is frps's text."""


class ProxyNotFound(FrpError, KeyError):
    """A proxy name that is not registered was asked for."""


class ConnectionClosed(FrpError):
    """The connection to frps closed before the operation could complete."""


__all__ = [
    "FrpError",
    "ConfigError",
    "LoginError",
    "ProxyError",
    "ProxyNotFound",
    "ConnectionClosed",
    "ProtocolError",
]
