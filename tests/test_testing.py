"""frptw.testing: our frps and frpc in memory, as an embedder's test would use them."""

from twisted.internet import reactor
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase

from frptw.config import TCPProxyConfig, parse_client_config
from frptw.errors import LoginError, ProxyError
from frptw.testing import BIND_PORT, FrpPair, MemoryNetwork


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class User(Protocol):
    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost = True


class FrpPairTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.readers = set(reactor.getReaders())
        self.pair = FrpPair().start()

    def tearDown(self) -> None:
        self.pair.stop()
        self.assertEqual(set(reactor.getReaders()), self.readers, "a real socket was opened")

    def test_logged_in(self) -> None:
        self.assertEqual(self.pair.fatal, [])
        self.assertEqual(len(self.pair.server.clients()), 1)

    def test_bytes_through_a_tcp_proxy(self) -> None:
        self.pair.network.listenTCP(8080, Factory.forProtocol(Echo))
        added = self.pair.client.addProxy(TCPProxyConfig(name="web", local_port=8080, remote_port=6000))
        self.pair.flush()
        self.assertEqual(self.successResultOf(added).status, "running")
        self.assertIn("web", self.pair.server.proxies())
        users = [self.pair.network.connect(6000, User()) for _ in range(3)]
        for i, user in enumerate(users):
            user.transport.write(b"hello %d" % i)
        self.pair.flush()
        self.assertEqual([user.received for user in users], [b"hello 0", b"hello 1", b"hello 2"])
        users[0].transport.loseConnection()
        self.pair.flush()
        self.assertTrue(users[0].lost)

    def test_refused_proxy(self) -> None:
        self.pair.network.listenTCP(8080, Factory.forProtocol(Echo))
        self.pair.client.addProxy(TCPProxyConfig(name="a", local_port=8080, remote_port=6000))
        second = self.pair.client.addProxy(TCPProxyConfig(name="b", local_port=8080, remote_port=6000))
        self.pair.flush()
        self.assertIn("port", str(self.failureResultOf(second, ProxyError).value))

    def test_time_moves_only_when_advanced(self) -> None:
        """Heartbeats and timeouts run on the network's clock: an hour passes in a call."""
        self.pair.network.advance(3600)
        self.pair.flush()
        self.assertEqual(len(self.pair.server.clients()), 1)


class NetworkTests(SynchronousTestCase):
    def test_nothing_listening_is_refused(self) -> None:
        with self.assertRaises(ConnectionRefusedError):
            MemoryNetwork().connect(1234, User())

    def test_wrong_token_fails_start(self) -> None:
        client = parse_client_config(f'serverPort = {BIND_PORT}\nauth.token = "wrong"\n', "toml")
        pair = FrpPair(clientConfig=client)
        with self.assertRaises(LoginError):
            pair.start()
        self.assertEqual(len(pair.fatal), 1)
        pair.stop()
