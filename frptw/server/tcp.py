"""The ``tcp`` proxy: a listening port on ``proxy_bind_addr:remote_port`` (wire-protocol.md §7.7).

Each user connection is handed to a work connection of the owning client by
:class:`~frptw.server.proxy_base.BaseProxy`.  The port comes from the server's tcp
:class:`~frptw.server.ports.PortAllocator` (``allow_ports``; ``remote_port = 0`` picks one).
"""

from typing import Optional

from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.internet.protocol import Factory

from frptw.logs import FrpLogger
from frptw.server.ports import PortAllocator
from frptw.server.proxy_base import BaseProxy, ProxyOwner, UserConnection
from frptw.transport.sockets import listenTCP
from frptw.wire.messages import NewProxy

log = FrpLogger()


class _UserFactory(Factory):
    def __init__(self, proxy: BaseProxy) -> None:
        self._proxy = proxy

    def buildProtocol(self, addr) -> UserConnection:
        return UserConnection(self._proxy)


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
    ) -> None:
        super().__init__(owner, request, key)
        self._ports = ports
        factory = _UserFactory(self)
        factory.noisy = False  # the proxy logs its own listen/close lines, as frp does

        def bind(port: int) -> Optional[IListeningPort]:
            try:
                return listenTCP(reactor, port, factory, interface=bindAddr)
            except CannotListenError as e:
                log.debug("[{name}] cannot listen on {addr}:{port}: {error}", name=self.name, addr=bindAddr,
                          port=port, error=e.socketError)
                return None

        self.remote_port, listener = ports.acquire(self.name, request.remote_port, bind)
        self.listeners.append(listener)
        self.remote_addr = f":{self.remote_port}"
        log.info("[{run_id}] [{name}] tcp proxy listen port [{port}]", run_id=self.runId, name=self.name,
                 port=self.remote_port)

    def released(self) -> None:
        self._ports.release(self.remote_port)
