"""The ``tcp`` proxy: a listening port on ``proxy_bind_addr:remote_port`` (wire-protocol.md §7.7).

Each user connection is handed to a work connection of the owning client by
:class:`~frptw.server.proxy_base.BaseProxy`.  The port comes from the server's tcp
:class:`~frptw.server.ports.PortAllocator` (``allow_ports``; ``remote_port = 0`` picks one).
A proxy with a ``group`` shares its group's port instead (:mod:`frptw.server.tcpgroup`): the
group's listener hands each user connection to one member in turn.
"""

from typing import Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.protocol import Factory

from frptw.logs import FrpLogger
from frptw.server.ports import PortAllocator
from frptw.server.proxy_base import BaseProxy, ProxyOwner, UserConnection
from frptw.server.tcpgroup import TCPGroup, TCPGroups
from frptw.transport.sockets import listenTCP
from frptw.wire.messages import NewProxy

log = FrpLogger()


class _UserFactory(Factory):
    """User connections for the proxy ``choose`` names at each accept (a group's next member)."""

    noisy = False  # the proxy logs its own listen/close lines, as frp does

    def __init__(self, choose: Callable[[], BaseProxy]) -> None:
        self._choose = choose

    def buildProtocol(self, addr) -> UserConnection:
        return UserConnection(self._choose())


class TCPProxy(BaseProxy):
    """A tcp proxy; raises ProxyError (frp's port texts) if it cannot listen."""

    type = "tcp"

    def __init__(
        self,
        owner: ProxyOwner,
        request: NewProxy,
        key: bytes,
        reactor: IReactorTCP,
        ports: PortAllocator,
        bindAddr: str,
        groups: TCPGroups,
    ) -> None:
        super().__init__(owner, request, key)
        self._ports = ports
        self._groups = groups
        self._group: "Optional[TCPGroup[TCPProxy]]" = None
        if request.group:
            self._group = groups.join(self, request.group, request.group_key, request.remote_port,
                                      lambda port, group: self._listen(reactor, bindAddr, port, group.nextMember))
            self.remote_port = self._group.port
            log.info("[{run_id}] [{name}] tcp proxy listen port [{port}] in group [{group}]", run_id=self.runId,
                     name=self.name, port=request.remote_port, group=request.group)
        else:
            self.remote_port, listener = ports.acquire(
                self.name, request.remote_port, lambda port: self._listen(reactor, bindAddr, port, lambda: self)
            )
            self.listeners.append(listener)
            log.info("[{run_id}] [{name}] tcp proxy listen port [{port}]", run_id=self.runId, name=self.name,
                     port=self.remote_port)
        self.remote_addr = f":{self.remote_port}"

    def _listen(self, reactor: IReactorTCP, bindAddr: str, port: int,
                choose: Callable[[], BaseProxy]) -> Optional[IListeningPort]:
        try:
            return listenTCP(reactor, port, _UserFactory(choose), interface=bindAddr)
        except CannotListenError as e:
            log.debug("[{name}] cannot listen on {addr}:{port}: {error}", name=self.name, addr=bindAddr,
                      port=port, error=e.socketError)
            return None

    def released(self) -> "Optional[Deferred[None]]":
        if self._group is not None:
            return self._groups.leave(self, self._group)
        self._ports.release(self.remote_port)
        return None
