"""Go's ``host:port`` rules, sans-IO: one place for how frp joins and splits addresses.

frp writes every address with ``net.JoinHostPort`` (IPv6 in brackets: ``[::1]:80``) and reads
the ``ip:port`` strings it receives (NAT-hole candidates, STUN servers, a plugin's
``localAddr``, a SOCKS5 or CONNECT target) with ``net.SplitHostPort`` and ``Atoi``.  frpc,
frps, their plugins and the wire machines all use these two, so that a log line, a message
field and a dial target are spelled the same way.
"""

from ipaddress import ip_address
from typing import Optional, Tuple

__all__ = ["dns_server_address", "join_host_port", "split_host_port"]

#: The port of a ``dnsServer`` given without one.
DNS_PORT = 53


def split_host_port(text: str) -> Tuple[str, int]:
    """``"1.2.3.4:5"`` or ``"[::1]:5"`` -> (host, port); ValueError as Go's SplitHostPort +
    Atoi would fail."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"address {text}: missing port or host")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"address {text}: missing ']'")
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {text}: too many colons")
    return host, int(port)


def join_host_port(host: str, port: int) -> str:
    """Go's ``net.JoinHostPort``: ``host:port``, an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dns_server_address(text: str) -> Optional[Tuple[str, int]]:
    """frpc's ``dnsServer`` as (IP, port): ``"8.8.8.8"`` and ``"::1"`` get port 53 (Go adds
    ``:53`` when SplitHostPort fails), ``"1.2.3.4:5353"`` and ``"[::1]:53"`` keep theirs; None
    for a host name or a port out of range, which Go frpc could not use either."""
    try:
        host, port = split_host_port(text)
    except ValueError:
        host, port = text, DNS_PORT
    try:
        ip_address(host)
    except ValueError:
        return None
    return (host, port) if 0 < port < 65536 else None
