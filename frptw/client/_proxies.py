"""The client's proxy table: which proxies exist, what frps said about each, who is waiting.

The table outlives control sessions: a session registers the proxies it finds here and writes
their outcome back; after a reconnect the next session registers the same proxies again.

Phases of a proxy (frp's names, shown by ``proxyStatus``)::

    new ──NewProxy sent──> wait start ──NewProxyResp ok──> running
                               │                              │
                               └──NewProxyResp error──> start error ──30 s──> wait start
    session lost: wait start / running / start error ──> new  (registered again after login)
    removed: any ──> closed  (the record leaves the table)

A proxy this client cannot serve yet (its type, or a client plugin) stays in ``start error``
and is never sent.
"""

from dataclasses import dataclass, replace
from typing import Dict, Iterator, List, Optional

from twisted.internet.defer import Deferred

from frptw.config.proxies import ProxyConfig, local_name, wire_name
from frptw.errors import ConnectionClosed, ProxyError, ProxyNotFound
from frptw.wire.codec import FRPTW_COMPRESSIONS
from frptw.wire.messages import NewProxy

NEW = "new"
WAIT_START = "wait start"
RUNNING = "running"
START_ERROR = "start error"
CLOSED = "closed"

#: Proxy types this client serves: byte pipes, and datagrams (udp, sudp) over work connections.
SUPPORTED_TYPES = frozenset({"tcp", "http", "https", "tcpmux", "stcp", "udp", "sudp"})


@dataclass(frozen=True)
class ProxyStatus:
    """A snapshot of one proxy, as ``FrpClientService.proxyStatus`` returns it."""

    name: str
    type: str
    state: str
    error: str = ""
    remote_addr: str = ""


class ProxyEntry:
    """One proxy: its configuration, current status and the Deferreds waiting for frps's answer."""

    def __init__(self, config: ProxyConfig) -> None:
        self.config = config
        self.unsupported = ""
        if config.type not in SUPPORTED_TYPES:
            self.unsupported = f"proxy type {config.type!r} is not supported by this frpc"
        elif config.plugin is not None:
            self.unsupported = f"client plugin {config.plugin.type!r} is not supported by this frpc"
        state = START_ERROR if self.unsupported else NEW
        self.status = ProxyStatus(config.name, config.type, state, self.unsupported)
        self.waiters: List[Deferred] = []

    @property
    def sendable(self) -> bool:
        """Whether a session should send NewProxy for this proxy."""
        return not self.unsupported

    def update(self, state: str, error: str = "", remote_addr: str = "") -> None:
        self.status = replace(self.status, state=state, error=error, remote_addr=remote_addr)

    def settle(self) -> None:
        """Fire the waiters once frps has answered (or the proxy cannot be sent at all)."""
        waiters, self.waiters = self.waiters, []
        for d in waiters:
            if self.status.state == RUNNING:
                d.callback(self.status)
            else:
                d.errback(ProxyError(self.status.error))


class ProxyTable:
    """Proxies by their configured name; wire names carry the ``user.`` prefix (§5.8)."""

    def __init__(self, user: str) -> None:
        self._user = user
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
        entry = self._entries[config.name] = ProxyEntry(config)
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
