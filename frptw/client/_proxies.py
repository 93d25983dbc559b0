"""The client's proxy table: which proxies exist, what frps said about each, who is waiting.

The table outlives control sessions: a session registers the proxies it finds here and writes
their outcome back; after a reconnect the next session registers the same proxies again.

Phases of a proxy (frp's names, shown by ``proxyStatus``)::

    new ──NewProxy sent──> wait start ──NewProxyResp ok──> running
                               │                              │
                               └──NewProxyResp error──> start error ──30 s──> wait start
    session lost: wait start / running / start error ──> new  (registered again after login)
    removed: any ──> closed  (the record leaves the table)
    health check failed: wait start / running ──CloseProxy──> check failed
    health check success: check failed ──> new ──> wait start ...

A health-checked proxy (frptw.client._health) starts unhealthy: it stays ``new`` and is not
sent before its first successful check, nor while unhealthy.

A proxy this client cannot serve (its type, a client plugin type it does not know, or plugin
options the plugin cannot use) stays in ``start error`` and is never sent.  A proxy's client
plugin (:mod:`frptw.client.plugins`) is built while the service runs and closed when the proxy
is removed or the service stops; udp and sudp proxies ignore their plugin, as frp 0.65 does.
"""

from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime

from frptw.client._health_machine import isChecked
from frptw.client.plugins import IClientPlugin, isSupported
from frptw.config.bandwidth import parse_bandwidth
from frptw.config.proxies import ProxyConfig, local_name, wire_name
from frptw.errors import ConnectionClosed, ProxyError, ProxyNotFound
from frptw.transport.bandwidth import TokenBucket
from frptw.wire.codec import FRPTW_COMPRESSIONS
from frptw.wire.messages import NewProxy

NEW = "new"
WAIT_START = "wait start"
RUNNING = "running"
START_ERROR = "start error"
CHECK_FAILED = "check failed"
CLOSED = "closed"

#: Proxy types this client serves: byte pipes, and datagrams (udp, sudp) over work connections.
SUPPORTED_TYPES = frozenset({"tcp", "http", "https", "tcpmux", "stcp", "udp", "sudp", "xtcp"})
#: Proxy types whose work connections carry datagrams: frp never hands them to a plugin.
DATAGRAM_TYPES = frozenset({"udp", "sudp"})


@dataclass(frozen=True)
class ProxyStatus:
    """A snapshot of one proxy, shaped like an entry of frpc's admin ``GET /api/status``
    (config-reference.md §6.2), plus the remote port as an int.

    ``name`` is the configured name (no ``user.`` prefix, as frp 0.70 shows it); ``status`` is
    one of ``new``, ``wait start``, ``running``, ``start error``, ``check failed`` (withdrawn
    from frps because its health check failed), ``closed``; ``err`` is frps's
    text or why this client cannot serve the proxy; ``local_addr`` is ``localIP:localPort``
    (empty without a local port); ``plugin`` the client plugin's type or empty;
    ``remote_addr`` what frps answered, prefixed with ``serverAddr`` for tcp and udp as frpc
    does, and empty unless running; ``remote_port`` the port frps listens on for a running tcp
    or udp proxy, else None.
    """

    name: str
    type: str
    status: str
    err: str = ""
    local_addr: str = ""
    plugin: str = ""
    remote_addr: str = ""
    remote_port: Optional[int] = None


#: Proxy types whose remote address is a port on frps (frpc shows it after ``serverAddr``).
PORT_TYPES = frozenset({"tcp", "udp"})


class ProxyEntry:
    """One proxy: its configuration, current status and the Deferreds waiting for frps's answer."""

    def __init__(self, config: ProxyConfig, serverAddr: str) -> None:
        self.config = config
        self._serverAddr = serverAddr
        self.unsupported = ""
        if config.type not in SUPPORTED_TYPES:
            self.unsupported = f"proxy type {config.type!r} is not supported by this frpc"
        elif self.pluginOptions is not None and not isSupported(self.pluginOptions.type):
            self.unsupported = f"client plugin {self.pluginOptions.type!r} is not supported by this frpc"
        self.state = START_ERROR if self.unsupported else NEW
        self.error = self.unsupported
        #: The running client plugin, while the service runs (see :attr:`pluginOptions`).
        self.plugin: Optional[IClientPlugin] = None
        self._bucket: Optional[TokenBucket] = None
        #: What frps answered (``:6000`` for tcp), kept as sent.
        self.remoteAddr = ""
        self.waiters: List[Deferred] = []
        #: False while a health check says the local service is down (and before its first
        #: success); always True without a health check.
        self.healthy = not isChecked(config)

    @property
    def pluginOptions(self):
        """The options of the plugin that serves this proxy's work connections, or None
        (none configured, or a udp/sudp proxy, whose plugin frp ignores)."""
        if self.config.type in DATAGRAM_TYPES:
            return None
        return self.config.plugin

    def bandwidthBucket(self, clock: IReactorTime) -> Optional[TokenBucket]:
        """The token bucket all of this proxy's work connections spend, both ways, when frpc
        limits its bandwidth (mode ``client``), as frp gives a proxy one limiter; None without
        a limit here.  Made on first use."""
        transport = self.config.transport
        if self._bucket is None and transport.bandwidth_limit_mode != "server":
            rate = parse_bandwidth(transport.bandwidth_limit)
            if rate > 0:
                self._bucket = TokenBucket(rate, clock)
        return self._bucket

    def refuse(self, reason: str) -> None:
        """This client cannot serve the proxy (its plugin cannot start): ``start error``."""
        self.unsupported = reason
        self.update(START_ERROR, reason)
        self.settle()

    @property
    def sendable(self) -> bool:
        """Whether this client can serve the proxy at all."""
        return not self.unsupported

    @property
    def registrable(self) -> bool:
        """Whether a session should send NewProxy for this proxy now."""
        return self.sendable and self.healthy

    @property
    def status(self) -> ProxyStatus:
        config = self.config
        local = ""
        if config.local_port:
            host = f"[{config.local_ip}]" if ":" in config.local_ip else config.local_ip
            local = f"{host}:{config.local_port}"
        remote, port = "", None
        if self.state == RUNNING:
            remote = self.remoteAddr
            if config.type in PORT_TYPES:
                remote = self._serverAddr + remote
                port = int(self.remoteAddr.rpartition(":")[2] or 0) or None
        return ProxyStatus(
            name=config.name,
            type=config.type,
            status=self.state,
            err=self.error,
            local_addr=local,
            plugin=config.plugin.type if config.plugin is not None else "",
            remote_addr=remote,
            remote_port=port,
        )

    def update(self, state: str, error: str = "", remote_addr: str = "") -> None:
        self.state, self.error, self.remoteAddr = state, error, remote_addr

    def settle(self) -> None:
        """Fire the waiters once frps has answered (or the proxy cannot be sent at all)."""
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            if self.state == RUNNING:
                d.callback(self.status)
            else:
                d.errback(ProxyError(self.error))


class ProxyTable:
    """Proxies by their configured name; wire names carry the ``user.`` prefix (§5.8)."""

    def __init__(self, user: str, serverAddr: str = "") -> None:
        self._user = user
        self._serverAddr = serverAddr
        self._entries: Dict[str, ProxyEntry] = {}

    def localName(self, wireName: str) -> str:
        return local_name(self._user, wireName)

    def newProxy(self, name: str) -> NewProxy:
        """The NewProxy that registers the proxy ``name`` (wire name ``user.name``, §5.8)."""
        config = self.get(name).config
        fields = config.to_new_proxy_fields()
        if fields.get("use_compression"):
            fields["frptw_compressions"] = list(FRPTW_COMPRESSIONS)  # Go frps ignores the offer
        return NewProxy(proxy_name=wire_name(self._user, name), **fields)

    def add(self, config: ProxyConfig) -> ProxyEntry:
        if config.name in self._entries:
            raise ProxyError(f"proxy [{config.name}] already exists")
        entry = self._entries[config.name] = ProxyEntry(config, self._serverAddr)
        return entry

    def remove(self, name: str) -> ProxyEntry:
        entry = self.get(name)
        del self._entries[name]
        entry.update(CLOSED)
        waiters, entry.waiters = entry.waiters, []
        for d in waiters:
            d.errback(ProxyError(f"proxy [{name}] was removed before frps accepted it"))
        return entry

    def get(self, name: str) -> ProxyEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise ProxyNotFound(name) from None

    def find(self, name: str) -> Optional[ProxyEntry]:
        return self._entries.get(name)

    def __iter__(self) -> Iterator[ProxyEntry]:
        return iter(list(self._entries.values()))

    def whenRunning(self, name: str) -> Deferred:
        """Fires with the ProxyStatus at once if the proxy runs, else like :meth:`waitStarted`."""
        entry = self.get(name)
        if entry.state == RUNNING:
            return succeed(entry.status)
        return self.waitStarted(name)

    def statuses(self) -> List[ProxyStatus]:
        """Snapshots of every proxy, sorted by name."""
        return [self._entries[name].status for name in sorted(self._entries)]

    def waitStarted(self, name: str) -> Deferred:
        """Fires with the ProxyStatus once frps accepted the proxy; fails with ProxyError."""
        entry = self.get(name)
        d: Deferred = Deferred()
        entry.waiters.append(d)
        if not entry.sendable:
            entry.settle()
        return d

    def sessionEnded(self) -> None:
        """The control session is gone: every proxy frps knew of must be registered again."""
        for entry in self:
            if entry.sendable:
                entry.update(NEW)

    def abandon(self, reason: str) -> None:
        """The service stopped: nobody will answer the waiters."""
        for entry in self:
            waiters, entry.waiters = entry.waiters, []
            for d in waiters:
                d.errback(ConnectionClosed(reason))
