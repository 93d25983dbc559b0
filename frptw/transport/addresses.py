"""Addresses as frp writes them: ``host:port`` in log lines, ``(host, port)`` in StartWorkConn.

One place for what frps and frpc both do with ``getPeer()`` / ``getHost()``: a transport
without an IP address (a yamux stream's is its session's; an in-memory test transport may
have none) gives ``("", 0)``, which is what frp sends when it has no address either.
"""

import socket
from typing import Optional, Tuple

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress

from frptw.wire.hostport import join_host_port


def hostPort(address: Optional[IAddress]) -> Tuple[str, int]:
    """``(host, port)`` of an IP address; ``("", 0)`` for anything else."""
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    if not isinstance(host, str) or not isinstance(port, int):
        return "", 0
    return host, port


def describePeer(transport) -> str:
    """``ip:port`` (``[ip]:port`` for IPv6, as Go prints it) of the far end of ``transport``
    for log lines (its repr when it has no IP address)."""
    peer = transport.getPeer()
    host, port = hostPort(peer)
    return join_host_port(host, port) if host else str(peer)


def udpAddress(host: str, port: int) -> IAddress:
    """The ``getPeer()`` / ``getHost()`` of a session carried over UDP (QUIC, KCP)."""
    return IPv6Address("UDP", host, port) if ":" in host else IPv4Address("UDP", host, port)


#: How a dual-stack (``::``) socket reports an IPv4 peer: ``::ffff:`` and the IPv4 address.
_MAPPED = "::ffff:"


def unmappedHost(host: str) -> str:
    """An IPv4-mapped IPv6 host as Go prints it (the IPv4 address): what frps sends in
    ``UDPPacket.r`` for a user of a udp port bound to ``::``; any other host unchanged."""
    if host.startswith(_MAPPED) and "." in host:
        return host[len(_MAPPED):]
    return host


def datagramHost(host: str, family: int) -> str:
    """The host to write a datagram to from a socket of ``family``: an IPv4 address on an
    AF_INET6 (dual-stack) socket becomes IPv4-mapped, as Go's ``WriteToUDP`` maps it (Twisted
    refuses an IPv4 destination on an IPv6 port)."""
    if family == socket.AF_INET6 and ":" not in host:
        return _MAPPED + host
    return host
