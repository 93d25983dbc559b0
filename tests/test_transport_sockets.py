"""Go's socket defaults on every TCP socket frptw opens: TCP_NODELAY and the system backlog.

Without TCP_NODELAY, a new connection through a proxy waited for a delayed ACK (~40 ms) on
its first exchange (issue: new-connection latency).  The unit tests pin what
:mod:`frptw.transport.sockets` does; :class:`EveryProxiedSocketTests` asserts on the sockets
themselves, in an in-process frps + frpc, that the user, carrier (frpc <-> frps) and
local-service sockets all have it.
"""

import gc
import socket
from typing import List

from twisted.internet import reactor, tcp
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.interfaces import IHostnameResolver, IReactorPluggableNameResolver
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.transport import sockets
from frptw.transport.sockets import listenTCP, listenUDP, systemBacklog, tcpEndpoint
from tests.fakes import UDPReactor
from tests.support import free_port, proxiesRunning, until
from tests.traffic import EchoServer


@implementer(IHostnameResolver)
class _RecordingResolver:
    def __init__(self) -> None:
        self.names: List[str] = []

    def resolveHostName(self, receiver, hostName, portNumber=0, addressTypes=None, transportSemantics="TCP"):
        self.names.append(hostName)
        receiver.resolutionBegan(None)
        receiver.resolutionComplete()


@implementer(IReactorPluggableNameResolver)
class _ResolvingReactor(MemoryReactorClock):
    def __init__(self) -> None:
        super().__init__()
        self.nameResolver = _RecordingResolver()

    def installNameResolver(self, resolver):
        old, self.nameResolver = self.nameResolver, resolver
        return old


class DialTests(SynchronousTestCase):
    def test_ip_literals_are_dialed_without_a_resolver(self) -> None:
        reactor = _ResolvingReactor()
        for host in ("127.0.0.1", "::1"):
            tcpEndpoint(reactor, host, 8080, 10.0).connect(Factory.forProtocol(Protocol))
            self.assertEqual(reactor.tcpClients[-1][:2], (host, 8080))
        self.assertEqual(reactor.nameResolver.names, [])

    def test_names_are_resolved(self) -> None:
        reactor = _ResolvingReactor()
        d = tcpEndpoint(reactor, "frps.example", 8080, 10.0).connect(Factory.forProtocol(Protocol))
        self.failureResultOf(d)  # the recording resolver finds no address
        self.assertEqual(reactor.nameResolver.names, ["frps.example"])

    def test_bind_address_and_timeout_are_passed_on(self) -> None:
        reactor = MemoryReactorClock()
        tcpEndpoint(reactor, "127.0.0.1", 8080, 3.0, bindAddress=("127.0.0.2", 0)).connect(Factory.forProtocol(Protocol))
        _, _, _, timeout, bindAddress = reactor.tcpClients[-1]
        self.assertEqual((timeout, bindAddress), (3.0, ("127.0.0.2", 0)))


class BacklogTests(SynchronousTestCase):
    def test_listeners_use_the_system_backlog(self) -> None:
        reactor = MemoryReactorClock()
        listenTCP(reactor, 8080, Factory.forProtocol(Protocol), "127.0.0.1")
        _, _, backlog, interface = reactor.tcpServers[-1]
        self.assertEqual((backlog, interface), (systemBacklog(), "127.0.0.1"))

    def test_backlog_is_somaxconn(self) -> None:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("1234\n")
        self.patch(sockets, "_SOMAXCONN_FILE", path)
        self.assertEqual(systemBacklog(), 1234)

    def test_backlog_without_proc(self) -> None:
        self.patch(sockets, "_SOMAXCONN_FILE", self.mktemp())
        self.assertEqual(systemBacklog(), socket.SOMAXCONN)


class _Collector(Protocol):
    received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data


def _noDelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


class RealSocketTests(TestCase):
    async def test_accepted_and_dialed_sockets_have_nodelay(self) -> None:
        accepted: List[Protocol] = []

        class Accepted(Protocol):
            def connectionMade(self) -> None:
                accepted.append(self)

        port = listenTCP(reactor, 0, Factory.forProtocol(Accepted), "127.0.0.1")
        self.addCleanup(port.stopListening)
        client = await tcpEndpoint(reactor, "127.0.0.1", port.getHost().port, 5.0).connect(Factory.forProtocol(Protocol))
        self.addCleanup(client.transport.loseConnection)
        await until(lambda: accepted, "the connection to be accepted")
        self.assertEqual(_noDelay(client.transport.getHandle()), 1)
        self.assertEqual(_noDelay(accepted[0].transport.getHandle()), 1)
        accepted[0].transport.loseConnection()

    async def connectedPair(self):
        """(dialed protocol, accepted protocol), both collecting what they receive."""
        accepted: List[_Collector] = []

        class Accepted(_Collector):
            def connectionMade(self) -> None:
                accepted.append(self)

        port = listenTCP(reactor, 0, Factory.forProtocol(Accepted), "127.0.0.1")
        self.addCleanup(port.stopListening)
        client = await tcpEndpoint(reactor, "127.0.0.1", port.getHost().port, 5.0).connect(
            Factory.forProtocol(_Collector))
        self.addCleanup(client.transport.loseConnection)
        await until(lambda: accepted, "the connection to be accepted")
        self.addCleanup(accepted[0].transport.loseConnection)
        return client, accepted[0]

    async def test_a_write_on_an_idle_connection_is_sent_at_once(self) -> None:
        """Nothing queued, no writer registered: the bytes are in the kernel when write
        returns (no reactor turn between a write and its send), on both kinds of socket."""
        client, server = await self.connectedPair()
        for sender, receiver in ((client, server), (server, client)):
            sender.transport.write(b"first bytes")
            self.assertEqual((sender.transport._tempDataLen, sender.transport.dataBuffer), (0, b""))
            self.assertNotIn(sender.transport, reactor.getWriters())
            await until(lambda: receiver.received == b"first bytes", "the bytes to arrive")

    async def test_a_bulk_write_keeps_twisteds_queue(self) -> None:
        client, server = await self.connectedPair()
        bulk = b"x" * (sockets.SEND_AT_ONCE_LIMIT + 1)
        client.transport.write(bulk)
        self.assertEqual(client.transport._tempDataLen, len(bulk))
        await until(lambda: len(server.received) == len(bulk), "the bulk write to arrive")

    async def test_a_write_behind_queued_bytes_waits_its_turn(self) -> None:
        client, server = await self.connectedPair()
        tcp.Connection.write(client.transport, b"queued ")  # Twisted's own write: queued
        client.transport.write(b"then this")
        self.assertEqual(client.transport._tempDataLen, len(b"queued then this"))
        await until(lambda: server.received == b"queued then this", lambda: f"in order; got {server.received!r}")


    async def test_closing_a_flushed_connection_skips_the_writer_round_trip(self) -> None:
        """loseConnection with nothing queued: never registered for writing, no zero-byte send,
        closed on the next turn with connectionDone, and the peer sees an orderly EOF."""
        client, server = await self.connectedPair()
        lost = []
        server.connectionLost = lost.append
        server.transport.write(b"last words")
        sends = []
        real = server.transport.socket

        class Counting:
            def __getattr__(self, name):
                return getattr(real, name)

            def send(self, data):
                sends.append(bytes(data))
                return real.send(data)

        server.transport.socket = Counting()
        server.transport.loseConnection()
        self.assertNotIn(server.transport, reactor.getWriters())
        self.assertNotIn(server.transport, reactor.getReaders())
        self.assertEqual(lost, [])  # not within loseConnection
        await until(lambda: lost, "the connection to be lost")
        lost[0].trap(ConnectionDone)
        self.assertEqual(sends, [])
        await until(lambda: client.received == b"last words" and not client.transport.connected,
                    "the peer to read everything and then the end")

    async def test_bytes_written_after_lose_connection_still_go_first(self) -> None:
        client, server = await self.connectedPair()
        lost = []
        server.connectionLost = lost.append
        server.transport.loseConnection()
        server.transport.write(b"after the close was asked for")
        await until(lambda: lost, "the connection to be lost")
        await until(lambda: client.received == b"after the close was asked for", "the late bytes to arrive")

    async def test_abort_after_lose_connection_wins(self) -> None:
        client, server = await self.connectedPair()
        lost = []
        server.connectionLost = lost.append
        server.transport.loseConnection()
        server.transport.abortConnection()
        await until(lambda: lost, "the connection to be lost")
        await until(lambda: not client.transport.connected, "the peer to see the end")
        self.assertEqual(len(lost), 1)
        lost[0].trap(ConnectionAborted)


class BatchedUDPTests(TestCase):
    async def test_every_datagram_is_read_between_batch_start_and_end(self) -> None:
        """A protocol that asks is told when a read of the socket's queue starts and ends (the
        udp proxies join that read's datagrams into one write on their work connection)."""
        events: List[object] = []

        class Batched(DatagramProtocol):
            def readBatchStarted(self) -> None:
                events.append("start")

            def datagramReceived(self, datagram: bytes, addr) -> None:
                events.append(datagram)

            def readBatchEnded(self) -> None:
                events.append("end")

        port = listenUDP(reactor, 0, Batched(), "127.0.0.1")
        self.addCleanup(port.stopListening)
        sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(sender.close)
        for n in range(3):
            sender.sendto(b"d%d" % n, ("127.0.0.1", port.getHost().port))
        await until(lambda: len([e for e in events if isinstance(e, bytes)]) == 3, "three datagrams read")
        await until(lambda: events[-1] == "end", "the read to end")
        inside = False
        for event in events:
            if event in ("start", "end"):
                self.assertNotEqual(inside, event == "start", events)
                inside = event == "start"
            else:
                self.assertTrue(inside, f"a datagram outside a read: {events}")

    def test_other_reactors_get_a_plain_listen(self) -> None:
        reactor = UDPReactor()
        listenUDP(reactor, 5353, DatagramProtocol(), "127.0.0.1", maxPacketSize=1500)
        [port] = reactor.fakeUdpPorts
        self.assertEqual((port.interface, port.maxPacketSize), ("127.0.0.1", 1500))


class EveryProxiedSocketTests(TestCase):
    """Every connected TCP socket of an in-process frps + frpc pair carrying a user connection
    has TCP_NODELAY, except the test's own echo backend and user socket."""

    timeout = 30

    async def check(self, serverExtra: str = "", clientExtra: str = "") -> None:
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "t"\n{serverExtra}\n', "toml")
        config.bind_port = 0
        server = FrpServerService(config)
        server.startService()
        self.addCleanup(server.stopService)
        bindPort = (await server.whenListening()).getHost().port
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        config = parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "t"\n{clientExtra}\n'
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echo.port}\n'
            f"remotePort = {remote}\n",
            "toml",
        )
        client = FrpClientService(config, reactor, onFatal=lambda failure: None)
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenLoggedIn()

        await proxiesRunning(client, "echo")
        user = await TCP4ClientEndpoint(reactor, "127.0.0.1", remote).connect(Factory.forProtocol(_Collector))
        self.addCleanup(user.transport.loseConnection)
        user.transport.write(b"ping")
        await until(lambda: user.received == b"ping", lambda: f"the echo through the proxy; got {user.received!r}")
        userSocket = user.transport.getHandle()

        ownPorts = {echo.port}
        checked = []
        for obj in gc.get_objects():
            if not isinstance(obj, socket.socket) or obj is userSocket or obj.fileno() < 0:
                continue
            if obj.type != socket.SOCK_STREAM:
                continue
            try:
                local, peer = obj.getsockname(), obj.getpeername()
            except OSError:
                continue  # listening or closing
            if local[1] in ownPorts:
                continue  # the echo backend's accepted socket (the test's, not frptw's)
            checked.append((local[1], peer[1], _noDelay(obj)))
        # user<->frps, frps<->frpc carrier (both ends), frpc<->local service (frpc's end): >= 4.
        self.assertGreaterEqual(len(checked), 4, checked)
        self.assertEqual([c for c in checked if not c[2]], [], "sockets without TCP_NODELAY")

    async def test_defaults(self) -> None:
        await self.check()

    async def test_mux_and_tls_off(self) -> None:
        await self.check("transport.tcpMux = false", "transport.tcpMux = false\ntransport.tls.enable = false")
