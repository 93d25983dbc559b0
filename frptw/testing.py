"""Fakes for testing code that embeds frptw: an frps and an frpc in memory, no sockets.

:class:`MemoryNetwork` is a reactor (a ``MemoryReactorClock``) whose TCP connections stay in
the process: ``listenTCP`` registers a factory on a port, and ``connectTCP`` to that port
connects a new client protocol to a new server protocol over a pair of in-memory transports
(Twisted's ``iosim`` transports, which Twisted uses to test its own protocols).  Nothing moves
until :meth:`MemoryNetwork.flush`, which carries bytes both ways and runs the calls that are
due, until nothing moves any more; time moves only with ``advance``, as on a ``task.Clock``.
UDP is not carried.

:class:`FrpPair` runs the real :class:`~frptw.server.FrpServerService` and
:class:`~frptw.client.FrpClientService` on one such network, so a test can add proxies,
put a local service behind them and send bytes through them::

    from frptw.config import TCPProxyConfig
    from frptw.testing import FrpPair

    pair = FrpPair().start()                      # logged in, in memory
    pair.network.listenTCP(8080, myServiceFactory) # the local service frpc dials
    added = pair.client.addProxy(TCPProxyConfig(name="web", local_port=8080, remote_port=6000))
    pair.flush()                                   # added has fired with the proxy's status
    user = pair.network.connect(6000, MyUserProtocol())   # a user of frps's port 6000
    user.transport.write(b"hello")
    pair.flush()                                   # through frps, frpc and back
    pair.stop()

Everything frp does on the wire happens (login, yamux, TLS, the work-connection pool,
StartWorkConn); only the sockets are fakes.  Transports here do not push back (no
``pauseProducing`` from a full buffer) and a half-close is not carried: test backpressure and
half-close over loopback TCP.
"""

import itertools
from typing import Dict, List, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.error import CannotListenError, ConnectionRefusedError
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump
from zope.interface import implementer

from frptw.client import FrpClientService
from frptw.config import ClientConfig, ServerConfig, parse_client_config, parse_server_config
from frptw.errors import FrpError
from frptw.server import FrpServerService

#: Where the in-memory frps of an :class:`FrpPair` listens, and the token both sides use.
BIND_PORT = 7000
TOKEN = "frptw-testing"


@implementer(IListeningPort)
class _Listener:
    def __init__(self, network: "MemoryNetwork", port: int, factory: IProtocolFactory, interface: str) -> None:
        self._network = network
        self.port = port
        self.factory = factory
        self.interface = interface

    def startListening(self) -> None:
        self.factory.doStart()

    def stopListening(self) -> "Deferred[None]":
        if self._network._listeners.get(self.port) is self:
            del self._network._listeners[self.port]
            self.factory.doStop()
        return succeed(None)

    def getHost(self) -> IPv4Address:
        return IPv4Address("TCP", self.interface or "0.0.0.0", self.port)


class _Connector:
    """What ``connectTCP`` returns (an ``IConnector``)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.state = "connecting"

    def stopConnecting(self) -> None:
        self.state = "disconnected"

    def disconnect(self) -> None:
        self.state = "disconnected"

    def connect(self) -> None:
        self.state = "connecting"

    def getDestination(self) -> IPv4Address:
        return IPv4Address("TCP", self.host, self.port)


class MemoryNetwork(MemoryReactorClock):
    """A reactor whose TCP connections are in memory (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._listeners: Dict[int, _Listener] = {}
        self._pumps: List[IOPump] = []
        self._ephemeral = itertools.count(49152)

    # -- IReactorTCP -----------------------------------------------------------------------------
    def listenTCP(self, port: int, factory: IProtocolFactory, backlog: int = 50, interface: str = "") -> _Listener:
        if port == 0:
            port = next(p for p in self._ephemeral if p not in self._listeners)
        if port in self._listeners:
            raise CannotListenError(interface, port, OSError("address already in use"))
        listener = self._listeners[port] = _Listener(self, port, factory, interface)
        listener.startListening()
        return listener

    def connectTCP(self, host: str, port: int, factory: ClientFactory, timeout: float = 30,
                   bindAddress: Optional[Tuple[str, int]] = None) -> _Connector:
        connector = _Connector(host, port)
        factory.startedConnecting(connector)
        self.callLater(0, self._complete, connector, factory)
        return connector

    def _complete(self, connector: _Connector, factory: ClientFactory) -> None:
        if connector.state != "connecting":
            return
        listener = self._listeners.get(connector.port)
        if listener is None:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError()))
            factory.doStop()
            return
        serverAddress = IPv4Address("TCP", connector.host, connector.port)
        clientAddress = IPv4Address("TCP", "127.0.0.1", next(self._ephemeral))
        server = listener.factory.buildProtocol(clientAddress)
        client = factory.buildProtocol(serverAddress)
        if server is None or client is None:
            connector.state = "disconnected"
            factory.clientConnectionFailed(connector, Failure(ConnectionRefusedError("refused by the factory")))
            factory.doStop()
            return
        connector.state = "connected"
        self.join(client, server, clientAddress, serverAddress)

    def join(self, client: Protocol, server: Protocol, clientAddress: IPv4Address,
             serverAddress: IPv4Address) -> IOPump:
        """Connect two protocols directly (what ``connectTCP`` does once it found a listener)."""
        serverIO = FakeTransport(server, isServer=True, hostAddress=serverAddress, peerAddress=clientAddress)
        clientIO = FakeTransport(client, isServer=False, hostAddress=clientAddress, peerAddress=serverAddress)
        server.makeConnection(serverIO)
        client.makeConnection(clientIO)
        pump = IOPump(client, server, clientIO, serverIO, False, clock=self)
        self._pumps.append(pump)
        return pump

    # -- driving it --------------------------------------------------------------------------------
    def connect(self, port: int, protocol: Protocol, host: str = "127.0.0.1") -> Protocol:
        """Connect ``protocol`` to whatever listens on ``port`` (a user of a proxy, say); it is
        connected (``connectionMade`` called) once this returns.  Raises
        ``ConnectionRefusedError`` when nothing listens there."""
        factory = _OneProtocol(protocol)
        self.connectTCP(host, port, factory)
        self.flush()
        if factory.failure is not None:
            factory.failure.raiseException()
        return protocol

    def flush(self, rounds: int = 10000) -> None:
        """Carry bytes and run the calls due now (``callLater(0, ...)``) until nothing moves.

        Raises ``RuntimeError`` if things still move after ``rounds`` rounds (two parties
        talking forever)."""
        for _ in range(rounds):
            self.advance(0)
            moved = False
            for pump in list(self._pumps):
                if pump.pump(advanceClock=False):
                    moved = True
                if pump.clientIO.disconnected and pump.serverIO.disconnected:
                    self._pumps.remove(pump)
            if not moved and not any(call.getTime() <= self.seconds() for call in self.getDelayedCalls()):
                return
        raise RuntimeError(f"the in-memory network is still busy after {rounds} rounds")


class _OneProtocol(ClientFactory):
    """Connects one given protocol instance; records a failure to connect."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.failure: Optional[Failure] = None

    def buildProtocol(self, addr) -> Protocol:
        return self.protocol

    def clientConnectionFailed(self, connector, reason: Failure) -> None:
        self.failure = reason


class FrpPair:
    """Our frps and our frpc, logged in to it, on one :class:`MemoryNetwork`.

    :param serverConfig: frps's configuration; by default ``127.0.0.1:`` :data:`BIND_PORT`
        with token :data:`TOKEN`.
    :param clientConfig: frpc's configuration; by default one that logs in to that frps (with
        frp's defaults otherwise: yamux, TLS, a pool of one), and keeps retrying on failure.
    :param network: the network (and clock) to use; a new one by default.

    ``server``, ``client`` and ``network`` are the two services and the network; a failed
    first login makes ``client`` call ``onFatal`` which here records ``fatal`` (it never ends
    the process).
    """

    def __init__(self, serverConfig: Optional[ServerConfig] = None, clientConfig: Optional[ClientConfig] = None,
                 network: Optional[MemoryNetwork] = None) -> None:
        self.network = network if network is not None else MemoryNetwork()
        if serverConfig is None:
            serverConfig = parse_server_config(
                f'bindAddr = "127.0.0.1"\nbindPort = {BIND_PORT}\nauth.token = "{TOKEN}"\n', "toml")
        if clientConfig is None:
            clientConfig = parse_client_config(
                f'serverAddr = "127.0.0.1"\nserverPort = {serverConfig.bind_port}\nauth.token = "{TOKEN}"\n'
                "loginFailExit = false\n", "toml")
        self.fatal: List[Failure] = []
        self.server = FrpServerService(serverConfig, reactor=self.network)
        self.client = FrpClientService(clientConfig, self.network, onFatal=self.fatal.append)

    def start(self) -> "FrpPair":
        """Start both services and let frpc log in; raises the login's error if it failed."""
        self.server.startService()
        self.client.startService()
        loggedIn = self.client.whenLoggedIn()
        self.flush()
        result: List[object] = []
        loggedIn.addBoth(result.append)
        if not result:
            raise FrpError("frpc did not log in to the in-memory frps")
        if isinstance(result[0], Failure):
            result[0].raiseException()
        return self

    def flush(self) -> None:
        """See :meth:`MemoryNetwork.flush`."""
        self.network.flush()

    def stop(self) -> None:
        """Stop frpc, then frps, and let every connection close."""
        stopped: List[object] = []
        maybeDeferred(self.client.stopService).addBoth(stopped.append)
        self.flush()
        maybeDeferred(self.server.stopService).addBoth(stopped.append)
        self.flush()
        for result in stopped:
            if isinstance(result, Failure):
                result.raiseException()


__all__ = ["BIND_PORT", "TOKEN", "FrpPair", "MemoryNetwork"]
