"""Frozen snapshots of frps's proxies and clients, for embedders.

:class:`~frptw.server.service.FrpServerService` hands these out instead of its live protocol
objects, so that an application can look without being able to break anything, and so that
the objects behind them can change shape freely.  The fields follow frp's dashboard API
records (config-reference.md §7.3: ``/api/proxy/{type}`` items and ``/api/clients``), in
Python spelling, with ports as ints and times as Unix seconds; fields frptw does not track
(traffic counters, first connection of a client id) are left out rather than faked.
"""

from dataclasses import dataclass
from typing import Tuple

from frptw.server.control_protocol import ControlProtocol
from frptw.server.proxy_base import BaseProxy
from frptw.wire.messages import Login


@dataclass(frozen=True)
class ProxyRecord:
    """One running proxy."""

    #: The wire name (``user.name`` when the client has a user).
    name: str
    type: str
    user: str
    client_id: str
    run_id: str
    #: frpc's version, from its Login.
    client_version: str
    #: What frps answered in ``NewProxyResp`` (``":6000"``, ``"a.example.com:8080"``, ...).
    remote_addr: str
    #: The port a tcp or udp proxy listens on; 0 for the other types.
    remote_port: int
    custom_domains: Tuple[str, ...]
    subdomain: str
    use_encryption: bool
    use_compression: bool
    bandwidth_limit: str
    bandwidth_limit_mode: str
    #: When the proxy started.
    last_start_time: float
    status: str = "online"


@dataclass(frozen=True)
class ClientRecord:
    """One logged-in frpc."""

    #: frp's client key: ``user.client_id`` (just ``client_id`` without a user), where the run id
    #: stands in for a client id the client did not send.
    key: str
    user: str
    client_id: str
    run_id: str
    version: str
    hostname: str
    #: The address the control connection comes from.
    client_ip: str
    #: When this control connection logged in.
    last_connected_at: float
    proxy_count: int
    online: bool = True


def proxyRecord(proxy: BaseProxy, login: Login) -> ProxyRecord:
    """A snapshot of ``proxy``, registered by the client that sent ``login``."""
    request = proxy.request
    return ProxyRecord(
        name=proxy.name,
        type=proxy.type,
        user=login.user,
        client_id=login.client_id,
        run_id=proxy.runId,
        client_version=login.version,
        remote_addr=proxy.remote_addr,
        remote_port=proxy.remote_port,
        custom_domains=tuple(request.custom_domains),
        subdomain=request.subdomain,
        use_encryption=request.use_encryption,
        use_compression=request.use_compression,
        bandwidth_limit=request.bandwidth_limit,
        bandwidth_limit_mode=request.bandwidth_limit_mode or "client",
        last_start_time=proxy.startedAt,
    )


def clientRecord(control: ControlProtocol) -> ClientRecord:
    """A snapshot of the client logged in on ``control``."""
    login = control.login
    peer = control.transport.getPeer() if control.transport is not None else None
    return ClientRecord(
        key=".".join(part for part in (login.user, login.client_id or control.runId) if part),
        user=login.user,
        client_id=login.client_id,
        run_id=control.runId,
        version=login.version,
        hostname=login.hostname,
        client_ip=getattr(peer, "host", ""),
        last_connected_at=control.connectedAt,
        proxy_count=control.proxyCount,
    )
