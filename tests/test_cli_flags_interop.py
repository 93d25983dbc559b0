"""frp's command-line configuration against the real frp 0.65, as frp's own e2e tests run it
(test/e2e/v1/basic/cmd.go, "Single proxy"): frps configured by flags alone (``-t 123 -p PORT
--vhost-http-port PORT``) and frpc's one-proxy commands (``frpc tcp|udp|http -s -P -t -u -l -r
-n``), our frps with Go's frpc commands and Go's frps with ours; tcp, udp and http through.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from tests.gofrp import GoFrp
from tests.support import free_port
from tests.traffic import EchoServer, exchange
from tests.udptraffic import UDPEcho, udp_exchange, wait_for_echo
from tests.webclient import fetch

TOKEN = "123"
DOMAIN = "test.example.com"


class CommandLineInterop(TestCase):
    timeout = 90

    async def backends(self) -> None:
        """The services behind frpc: tcp and udp echoes and a web page on loopback."""
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        self.tcpPort = echo.port
        udp = UDPEcho.listen(reactor)
        self.addCleanup(udp.stop)
        self.udpPort = udp.port
        root = Resource()
        root.putChild(b"", Data(b"served by the backend", "text/plain"))
        web = reactor.listenTCP(0, Site(root), interface="127.0.0.1")
        self.addCleanup(web.stopListening)
        self.webPort = web.getHost().port

    async def frps(self, impl: str) -> None:
        self.bindPort, self.vhostPort = free_port(), free_port()
        flags = ["-t", TOKEN, "-p", str(self.bindPort), "--vhost-http-port", str(self.vhostPort),
                 "--bind-addr", "127.0.0.1", "--proxy_bind_addr", "127.0.0.1"]
        frps = await (GoFrp.run(reactor, "frps", flags) if impl == "go" else GoFrp.runOurs(reactor, "frps", flags))
        self.addCleanup(frps.stop)

    async def frpc(self, impl: str, command: str, *flags: str) -> None:
        args = [command, "-s", "127.0.0.1", "-P", str(self.bindPort), "-t", TOKEN, "-u", "test", *flags]
        start = GoFrp.run if impl == "go" else GoFrp.runOurs
        frpc = await start(reactor, "frpc", args, ready="start proxy success")
        self.addCleanup(frpc.stop)

    async def proxiesWork(self, frpc: str) -> None:
        tcpRemote, udpRemote = free_port(), free_port()
        await self.frpc(frpc, "tcp", "-l", str(self.tcpPort), "-r", str(tcpRemote), "-n", "tcp_test")
        await self.frpc(frpc, "udp", "-l", str(self.udpPort), "-r", str(udpRemote), "-n", "udp_test")
        await self.frpc(frpc, "http", "-l", str(self.webPort), "-n", "http_test", "--custom-domain", DOMAIN)
        self.assertEqual(await exchange(reactor, tcpRemote, 64 * 1024), 64 * 1024)
        await wait_for_echo(reactor, udpRemote)
        echoed, lost, corrupt = await udp_exchange(reactor, udpRemote, 50)
        self.assertEqual((echoed, lost, corrupt), (50, 0, 0))
        response = await fetch(reactor, f"http://127.0.0.1:{self.vhostPort}/", headers=[(b"host", DOMAIN.encode())])
        self.assertEqual((response.status, response.body), (200, b"served by the backend"))

    async def test_go_frpc_commands_to_our_frps_from_flags(self) -> None:
        await self.backends()
        await self.frps("ours")
        await self.proxiesWork("go")

    async def test_our_frpc_commands_to_go_frps_from_flags(self) -> None:
        await self.backends()
        await self.frps("go")
        await self.proxiesWork("ours")
