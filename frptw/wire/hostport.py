"""Go's ``host:port`` rules, sans-IO: one place for how frp joins and splits addresses.

frp writes every address with ``net.JoinHostPort`` (IPv6 in brackets: ``[::1]:80``) and reads
the ``ip:port`` strings it receives (NAT-hole candidates, STUN servers, a plugin's
``localAddr``, a SOCKS5 or CONNECT target) with ``net.SplitHostPort`` and ``Atoi``.  frpc,
frps, their plugins and the wire machines all use these two, so that a log line, a message
field and a dial target are spelled the same way.
"""

from typing import Tuple

__all__ = ["join_host_port", "split_host_port"]


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
