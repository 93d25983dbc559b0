"""PROXY protocol headers (HAProxy v1 text, v2 binary) that frpc writes to a local service.

A proxy with ``transport.proxy_protocol_version`` set tells its local service who the real
user is: right after frpc dials the local service it writes one header built from the
``StartWorkConn`` addresses (wire-protocol.md §7.4), before any payload.  Nothing of this
travels on the frp wire.

Sans-IO: :func:`proxy_protocol_header` only builds bytes.  It follows Go's go-proxyproto as
frp uses it: no header when the source is unknown (empty address or port 0); ``127.0.0.1`` as
destination when frps sent none (http proxies); a source that is not an IP address gives the
"unknown"/LOCAL form, which tells the service to use the connection's own addresses.
"""

import ipaddress
import struct
from typing import Optional, Union

#: The 12 bytes every v2 header starts with.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

_V2_PROXY = 0x21  # version 2, command PROXY
_V2_LOCAL = 0x20  # version 2, command LOCAL
#: v2 address family/transport byte by (IP version, transport).
_V2_FAMILY = {(4, "tcp"): 0x11, (6, "tcp"): 0x21, (4, "udp"): 0x12, (6, "udp"): 0x22}

_IP = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def _parse(address: str) -> Optional[_IP]:
    """The address as IPv4 when it is one (Go treats v4-mapped IPv6 as IPv4), else IPv6."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _same_family(src: _IP, dst: _IP) -> "tuple[_IP, _IP]":
    """Both addresses in one family (a header has one): IPv6, v4-mapped, when they differ.

    go-proxyproto picks the family from the source alone, so with an IPv4 source and an IPv6
    destination Go's frpc fails to write a v1 header (and writes a short v2 one); frptw writes
    the TCP6 form instead."""
    if src.version == dst.version:
        return src, dst
    as6 = [a if a.version == 6 else ipaddress.IPv6Address(f"::ffff:{a}") for a in (src, dst)]
    return as6[0], as6[1]


def _text(ip: _IP) -> str:
    """An address as Go's ``net.IP.String`` writes it: a v4-mapped IPv6 address (one side of a
    mixed-family header) in dotted IPv4 form, the same on every Python (3.13 writes
    ``::ffff:1.1.1.1``, older ones ``::ffff:101:101``)."""
    mapped = ip.ipv4_mapped if ip.version == 6 else None
    return str(mapped if mapped is not None else ip)


def proxy_protocol_header(
    version: str, src_addr: str, src_port: int, dst_addr: str = "", dst_port: int = 0, transport: str = "tcp"
) -> bytes:
    """The PROXY protocol ``version`` ("v1" or "v2") header for one TCP connection, or (with
    ``transport="udp"``) for the first datagram of one user of a udp proxy.

    Returns ``b""`` when frp writes no header (``src_addr`` empty or ``src_port`` 0).
    Raises ValueError for any other ``version`` or ``transport``.  v1 has no datagram
    families, so go-proxyproto (and frp) write ``PROXY UNKNOWN`` for UDP in v1.
    """
    if version not in ("v1", "v2"):
        raise ValueError(f"unknown PROXY protocol version {version!r} (expected v1 or v2)")
    if transport not in ("tcp", "udp"):
        raise ValueError(f"unknown PROXY protocol transport {transport!r} (expected tcp or udp)")
    if not src_addr or not src_port:
        return b""
    src = _parse(src_addr)
    dst = _parse(dst_addr or "127.0.0.1")
    if src is None or dst is None or (version == "v1" and transport == "udp"):
        if version == "v1":
            return b"PROXY UNKNOWN\r\n"
        return V2_SIGNATURE + bytes([_V2_LOCAL, 0x00]) + struct.pack(">H", 0)
    src, dst = _same_family(src, dst)
    if version == "v1":
        family = "TCP4" if src.version == 4 else "TCP6"
        return f"PROXY {family} {_text(src)} {_text(dst)} {src_port} {dst_port}\r\n".encode("ascii")
    body = src.packed + dst.packed + struct.pack(">HH", src_port, dst_port)
    family_byte = _V2_FAMILY[(src.version, transport)]
    return V2_SIGNATURE + bytes([_V2_PROXY, family_byte]) + struct.pack(">H", len(body)) + body
