"""The typed exceptions of frptw: one hierarchy, rooted in :class:`FrpError`.

Deferreds returned by the public API fail with these, never with bare strings, so embedders
can ``trap`` them.  This module imports nothing (not Twisted, not the rest of frptw), so every
layer can raise these, the sans-IO wire layer included: :mod:`frptw.wire.errors` re-exports
:class:`ProtocolError` from here.
"""


class FrpError(Exception):
    """Base class of every error frptw raises on purpose."""


class ConfigError(FrpError):
    """A configuration file or object is invalid.

    The message names the file, the section (or proxy name), the key and the rule broken, e.g.
    ``frpc.ini [ssh] local_port: "abc" is not a port number``.
    """


class ProtocolError(FrpError):
    """The peer sent bytes that break the protocol (bad frame, oversize length, bad JSON...).

    The connection that produced them must be closed; nothing else is affected.
    """


class LoginError(FrpError):
    """frps refused our Login; the message is frps's own error text, verbatim."""


class ProxyError(FrpError):
    """frps refused a NewProxy (or the proxy could not start); the message is frps's text."""


class ProxyNotFound(FrpError, KeyError):
    """A proxy name that is not registered was asked for."""


class VisitorNotFound(FrpError, KeyError):
    """A visitor name that is not configured was asked for."""


class ConnectionClosed(FrpError):
    """The connection to frps closed before the operation could complete."""


class NoWorkConnection(FrpError):
    """frps has no work connection for a user connection: frpc did not deliver one in time,
    every one tried was already closed, or the client is gone.  The message is frp's text
    (``timeout trying to get work connection``, ``control is already closed``...)."""


class PluginRejected(FrpError):
    """A server plugin refused an operation, or frps could not ask it.  The message is the text
    frp reports: the plugin's ``reject_reason``, or ``send <Op> request to plugin error``."""


__all__ = [
    "FrpError",
    "ConfigError",
    "ProtocolError",
    "LoginError",
    "ProxyError",
    "ProxyNotFound",
    "VisitorNotFound",
    "ConnectionClosed",
    "NoWorkConnection",
    "PluginRejected",
]
