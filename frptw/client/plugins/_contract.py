"""The contract between frpc's work connections and a client plugin (frp's ``plugin.Plugin``).

A proxy with a ``plugin`` gets one plugin object, built once from its options when the proxy
is added (:mod:`frptw.client.plugins._registry`) and closed when the proxy is removed or the
service stops.  For every work connection of the proxy, frpc stacks the data plane
(bandwidth limiter, AES-CFB, compression) and hands the switchable protocol on top of it,
still holding whatever plaintext already arrived, to :meth:`IClientPlugin.handle`, together
with a :class:`ConnectionInfo`.  From then on the connection is the plugin's: it switches it
to its own protocol or splices it, and closes it when it is done.
"""

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

from frptw.client.proxyprotocol import proxy_protocol_header
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.messages import StartWorkConn


@dataclass(frozen=True)
class ConnectionInfo:
    """Who the user is, as frps told frpc in ``StartWorkConn`` (empty/0 when frps did not say).

    ``dst_addr`` is ``127.0.0.1`` when frps gave a source but no destination (http proxies),
    as frp fills it in.  ``proxy_protocol_header`` is the PROXY protocol header the plugin
    writes to its backend before any payload when the proxy sets ``proxyProtocolVersion``
    (``b""`` otherwise, or when the source is unknown).
    """

    src_addr: str = ""
    src_port: int = 0
    dst_addr: str = ""
    dst_port: int = 0
    proxy_protocol_header: bytes = b""

    @classmethod
    def fromStartWorkConn(cls, msg: StartWorkConn, proxyProtocolVersion: str = "") -> "ConnectionInfo":
        if not msg.src_addr or not msg.src_port:
            return cls()
        dst = msg.dst_addr or "127.0.0.1"
        header = b""
        if proxyProtocolVersion:
            header = proxy_protocol_header(proxyProtocolVersion, msg.src_addr, msg.src_port, dst, msg.dst_port)
        return cls(msg.src_addr, msg.src_port, dst, msg.dst_port, header)


@dataclass(frozen=True)
class PluginContext:
    """What a plugin may use besides its options: the proxy's configured name (for log
    lines, ``[name] ...`` as frp prefixes them) and the reactor (dialing, listening, clock)."""

    name: str
    reactor: Any


class IClientPlugin(Interface):
    """One proxy's client plugin (frp's ``Plugin``: ``Handle`` and ``Close``)."""

    type = Attribute("The plugin type name, as configured (``unix_domain_socket``, ...).")

    def handle(conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        """Serve one started work connection.

        ``conn`` is connected (it may have lost its connection already; switching to a
        protocol then delivers ``connectionLost``) and holds the plaintext received so far.
        The plugin owns it from now on: it must switch or splice it, and close it (bad input:
        one log line, that connection closed).  Must not raise.
        """

    def close() -> "Deferred[None]":
        """The proxy is gone: stop whatever the plugin runs besides its connections (listeners,
        timers).  Connections being served may finish on their own."""
