"""``transport.bandwidthLimit`` between real programs, as frp 0.65's e2e "Bandwidth Limit"
scenarios (shorter): a proxy limited to 10 KB/s has ONE bucket for all its connections and both
directions, and only its first 10 KB pass at once (frp's limited reader and writer wait before
passing bytes on).  So two connections echoing 10 KB each (40 KB through the limit) take 3 s:
in client mode with our frpc behind the Go frps, in server mode with the Go frpc behind our
frps, and with the Go pair as the reference.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from tests.gofrp import GoFrp
from tests.interop import ourFrps
from tests.support import free_port
from tests.traffic import EchoServer, exchange

RATE = 10 * 1024
PER_CONNECTION = 10 * 1024
CONNECTIONS = 2
#: Seconds the whole exchange needs: everything that crosses the limit, less the burst.
EXPECTED = (2 * CONNECTIONS * PER_CONNECTION - RATE) / RATE
#: Slack below (the timer granularity of both implementations) and above (a loaded machine).
EARLY, LATE = 0.3, 3.0


class BandwidthLimitTests(TestCase):
    timeout = 60

    async def elapsed(self, frps: str, frpc: str, mode: str) -> float:
        """Seconds the exchange takes through a ``mode``-limited tcp proxy of ``frpc`` on ``frps``."""
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        serverText = 'bindAddr = "127.0.0.1"\nauth.token = "abc"\n'
        if frps == "go":
            bindPort = free_port()
            server = await GoFrp.start(reactor, "frps", serverText + f"bindPort = {bindPort}\n")
            self.addCleanup(server.stop)
        else:
            bindPort = await ourFrps(self, serverText)
        remote = free_port()
        clientText = f"""
serverAddr = "127.0.0.1"
serverPort = {bindPort}
auth.token = "abc"

[[proxies]]
name = "limited"
type = "tcp"
localIP = "127.0.0.1"
localPort = {echo.port}
remotePort = {remote}
transport.bandwidthLimit = "10KB"
transport.bandwidthLimitMode = "{mode}"
"""
        if frpc == "go":
            client = await GoFrp.start(reactor, "frpc", clientText, ready="start proxy success")
            self.addCleanup(client.stop)
        else:
            service = FrpClientService(parse_client_config(clientText, "toml"), reactor)
            service.startService()
            self.addCleanup(service.stopService)
            await service.whenProxyRunning("limited")
        started = reactor.seconds()
        moved = await exchange(reactor, remote, PER_CONNECTION, CONNECTIONS, timeout=EXPECTED + 20)
        self.assertEqual(moved, PER_CONNECTION * CONNECTIONS)
        return reactor.seconds() - started

    async def check(self, frps: str, frpc: str, mode: str) -> None:
        seconds = await self.elapsed(frps, frpc, mode)
        self.assertTrue(EXPECTED - EARLY <= seconds <= EXPECTED + LATE, f"{seconds:.2f} s, expected {EXPECTED} s")

    async def test_client_mode_our_frpc_go_frps(self):
        await self.check("go", "ours", "client")

    async def test_server_mode_go_frpc_our_frps(self):
        await self.check("ours", "go", "server")

    async def test_client_mode_go_pair(self):
        await self.check("go", "go", "client")

    async def test_server_mode_go_pair(self):
        await self.check("go", "go", "server")
