"""frptw frpc <-> frptw frps, in one process on the real reactor: the TCP proxy matrix.

Each cell starts our frps on an ephemeral port, our frpc against it, registers a tcp proxy in
front of an echo server and moves 8 MiB each way over 50 concurrent user connections, checking
sha256 of every echoed stream.  The same cells run against real Go frp in
``test_client_interop`` (our frpc -> Go frps) and ``test_server_interop`` (Go frpc -> our frps).
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.errors import LoginError
from frptw.server import FrpServerService
from tests.support import free_port, proxiesRunning
from tests.traffic import EchoServer, exchange

CONNECTIONS = 50
PER_CONNECTION = 168 * 1024  # 50 x 168 KiB = 8.2 MiB each way


class FrptwPairTests(TestCase):
    timeout = 120

    async def pair(self, serverExtra: str = "", clientExtra: str = "", proxyExtra: str = "", token: str = "abc", failExit: bool = False):
        """Start our frps and our frpc with one tcp proxy to an echo server; return (port, client)."""
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "abc"\n{serverExtra}\n', "toml")
        config.bind_port = 0  # in a file 0 means frp's default, 7000; here: any free port
        server = FrpServerService(config)
        server.startService()
        self.addCleanup(server.stopService)
        listening = await server.whenListening()
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        config = parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {listening.getHost().port}\nauth.token = "{token}"\n'
            f"loginFailExit = {str(failExit).lower()}\n{clientExtra}\n"
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echo.port}\n'
            f"remotePort = {remote}\n{proxyExtra}\n",
            "toml",
        )
        self.fatal = []
        client = FrpClientService(config, reactor, onFatal=self.fatal.append)
        client.startService()
        self.addCleanup(client.stopService)
        return remote, client

    async def cell(self, **kw) -> None:
        remote, client = await self.pair(**kw)
        await client.whenLoggedIn()
        total = await self.exchangeWhenReady(client, remote)
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)

    async def exchangeWhenReady(self, client, remote):
        await proxiesRunning(client, "echo")
        return await exchange(reactor, remote, PER_CONNECTION, connections=CONNECTIONS)

    async def test_defaults_tls_and_mux(self):
        await self.cell()

    async def test_tls_off(self):
        await self.cell(clientExtra="transport.tls.enable = false")

    async def test_mux_off(self):
        await self.cell(serverExtra="transport.tcpMux = false", clientExtra="transport.tcpMux = false")

    async def test_encryption(self):
        await self.cell(proxyExtra="transport.useEncryption = true")

    async def test_compression(self):
        await self.cell(proxyExtra="transport.useCompression = true")

    async def test_encryption_and_compression(self):
        await self.cell(proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    async def test_custom_first_byte(self):
        await self.cell(clientExtra="transport.tls.disableCustomTLSFirstByte = false")

    async def test_wrong_token(self):
        remote, client = await self.pair(token="wrong", failExit=True)
        with self.assertRaises(LoginError) as caught:
            await client.whenLoggedIn()
        self.assertIn("token in login doesn't match token from configuration", str(caught.exception))

    async def test_server_mode_bandwidth_limit(self):
        """frps enforces ``bandwidth_limit`` in server mode, one bucket per proxy for both ways."""
        remote, client = await self.pair(
            proxyExtra='transport.bandwidthLimit = "256KB"\ntransport.bandwidthLimitMode = "server"'
        )
        await client.whenLoggedIn()
        await proxiesRunning(client, "echo")
        started = reactor.seconds()
        total = await exchange(reactor, remote, 256 * 1024, connections=2)
        elapsed = reactor.seconds() - started
        self.assertEqual(total, 512 * 1024)
        # 512 KiB each way = 1 MiB through one 256 KiB/s bucket (burst 256 KiB): >= 3 s.
        self.assertGreater(elapsed, 2.5)
