"""``use_compression`` is lz4 between two frptw ends and snappy whenever Go frp is one of them.

Each cell runs a tcp (or stcp + visitor) proxy with compression and moves checked bytes both
ways, while recording which compressor every stacked connection of *our* processes asked for
(:func:`frptw.wire.codec.compressor`).  Data only arrives intact when both ends agree, so a
passing exchange plus the recorded names show which codec was on the wire.
"""

from typing import List

from twisted.internet import reactor
from twisted.internet.error import ConnectError
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.wire import codec
from tests.gofrp import GoFrp
from tests.support import free_port, sleep
from tests.traffic import EchoServer, exchange

TOKEN = "negotiate"
PER_CONNECTION = 256 * 1024
CONNECTIONS = 4


class NegotiationTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.used: List[str] = []
        original = codec.compressor

        def recording(name: str = codec.SNAPPY):
            self.used.append(name or codec.SNAPPY)
            return original(name)

        self.patch(codec, "compressor", recording)

    async def ourFrps(self) -> int:
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n', "toml")
        config.bind_port = 0
        server = FrpServerService(config)
        server.startService()
        self.addCleanup(server.stopService)
        return (await server.whenListening()).getHost().port

    async def goFrps(self) -> int:
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "{TOKEN}"\n')
        self.addCleanup(frps.stop)
        return port

    def clientToml(self, serverPort: int, body: str) -> str:
        return f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\nloginFailExit = false\n{body}'

    async def ourFrpc(self, serverPort: int, body: str) -> FrpClientService:
        client = FrpClientService(parse_client_config(self.clientToml(serverPort, body), "toml"), reactor,
                                  onFatal=lambda failure: None)
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenLoggedIn()
        return client

    async def goFrpc(self, serverPort: int, body: str) -> None:
        frpc = await GoFrp.start(reactor, "frpc", self.clientToml(serverPort, body), ready="start proxy success")
        self.addCleanup(frpc.stop)

    async def transfer(self, port: int) -> None:
        """Bytes both ways through ``port`` once it forwards (a proxy may still be starting)."""
        for _ in range(100):
            try:
                total = await exchange(reactor, port, PER_CONNECTION, connections=CONNECTIONS)
                break
            except ConnectError:  # refused until the remote port is listening
                await sleep(0.05)
        else:
            self.fail(f"nothing forwarded through port {port} within 5 s")
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)

    async def tcpProxy(self) -> tuple:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        body = (f'[[proxies]]\nname = "z"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echo.port}\n'
                f"remotePort = {remote}\ntransport.useCompression = true\n")
        return remote, body

    async def test_frptw_pair_uses_lz4(self) -> None:
        remote, body = await self.tcpProxy()
        await self.ourFrpc(await self.ourFrps(), body)
        await self.transfer(remote)
        # frps and frpc each stacked every work connection with lz4.
        self.assertGreaterEqual(len(self.used), 2 * CONNECTIONS)
        self.assertEqual(set(self.used), {"lz4"})

    async def test_frptw_frpc_with_go_frps_uses_snappy(self) -> None:
        remote, body = await self.tcpProxy()
        await self.ourFrpc(await self.goFrps(), body)
        await self.transfer(remote)
        self.assertGreaterEqual(len(self.used), CONNECTIONS)
        self.assertEqual(set(self.used), {"snappy"})

    async def test_go_frpc_with_frptw_frps_uses_snappy(self) -> None:
        remote, body = await self.tcpProxy()
        await self.goFrpc(await self.ourFrps(), body)
        await self.transfer(remote)
        self.assertGreaterEqual(len(self.used), CONNECTIONS)
        self.assertEqual(set(self.used), {"snappy"})

    async def test_frptw_visitor_and_owner_use_lz4(self) -> None:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        serverPort = await self.ourFrps()
        await self.ourFrpc(serverPort, f'[[proxies]]\nname = "s"\ntype = "stcp"\nsecretKey = "sk"\n'
                                       f'localIP = "127.0.0.1"\nlocalPort = {echo.port}\ntransport.useCompression = true\n')
        visitorPort = free_port()
        await self.ourFrpc(serverPort, f'[[visitors]]\nname = "v"\ntype = "stcp"\nserverName = "s"\nsecretKey = "sk"\n'
                                       f'bindAddr = "127.0.0.1"\nbindPort = {visitorPort}\n'
                                       f"transport.useCompression = true\n")
        await self.transfer(visitorPort)
        # Each user connection: visitor <-> frps (both ends) and frps <-> owner (both ends).
        self.assertGreaterEqual(len(self.used), 4 * CONNECTIONS)
        self.assertEqual(set(self.used), {"lz4"})
