"""The interop harness itself: real frps/frpc reach each other and carry checked traffic."""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.gofrp import GoFrp
from tests.support import free_port
from tests.traffic import EchoServer, exchange


class GoToGoTests(TestCase):
    """Go frpc -> Go frps -> echo: the baseline every interop cell is compared with."""

    timeout = 60

    async def test_go_pair_carries_traffic(self) -> None:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        bind, remote = free_port(), free_port()
        frps = await GoFrp.start(
            reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {bind}\nauth.token = "t"\n'
        )
        self.addCleanup(frps.stop)
        frpc = await GoFrp.start(
            reactor,
            "frpc",
            f'serverAddr = "127.0.0.1"\nserverPort = {bind}\nauth.token = "t"\n'
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalPort = {echo.port}\nremotePort = {remote}\n',
        )
        self.addCleanup(frpc.stop)
        await frpc.waitFor("start proxy success")
        total = await exchange(reactor, remote, 256 * 1024, connections=8)
        self.assertEqual(total, 8 * 256 * 1024)

    async def test_exchange_detects_missing_bytes(self) -> None:
        """A port that closes at once fails the exchange instead of passing silently."""
        from twisted.internet import protocol
        from twisted.internet.endpoints import TCP4ServerEndpoint

        class Closer(protocol.Protocol):
            def connectionMade(self):
                self.transport.loseConnection()

        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            protocol.Factory.forProtocol(Closer)
        )
        self.addCleanup(port.stopListening)
        with self.assertRaises(AssertionError):
            await exchange(reactor, port.getHost().port, 1024, connections=2)
