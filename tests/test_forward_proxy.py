"""frpc through a forward proxy (``transport.proxyURL``): HTTP CONNECT and SOCKS5, each
requiring credentials, with our frpc and with Go frpc 0.65 through the same proxies.

The control connection and, without tcpMux, every work connection go through the proxy (one
tunnel each, counted by the proxy); the data is checked end to end (sha256, tests/traffic.py).
"""

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.errors import ConfigError
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tunnel import startTunnel
from frptw.wire.tunnels import HTTPConnectClient, TunnelError
from tests.gofrp import GoFrp
from tests.interop import ourFrps
from tests.relays import ForwardProxy
from tests.support import LogCapture, free_port, toml, until
from tests.traffic import EchoServer, exchange

TOKEN = "proxy-token"
CONNECTIONS = 20
PER_CONNECTION = 420 * 1024  # 8.2 MiB each way


def clientText(serverPort: int, proxyURL: str, localPort: int, remotePort: int, mux: bool, extra: str = "") -> str:
    return (
        f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\n'
        f'transport.proxyURL = "{proxyURL}"\ntransport.tcpMux = {toml(mux)}\nloginFailExit = false\n{extra}\n'
        f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
        f"remotePort = {remotePort}\n"
    )


class ThroughForwardProxies(TestCase):
    timeout = 120

    async def setUpWorld(self, kind: str, mux: bool, frps: str):
        self.proxy = await ForwardProxy.listen(self, kind)
        self.echo = await EchoServer.listen(reactor)
        self.addCleanup(self.echo.stop)
        if frps == "go":
            self.bindPort = free_port()
            go = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {self.bindPort}\n'
                                                    f'auth.token = "{TOKEN}"\ntransport.tcpMux = {toml(mux)}\n')
            self.addCleanup(go.stop)
        else:
            self.bindPort = await ourFrps(self, f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n'
                                                f"transport.tcpMux = {toml(mux)}\n")

    async def ours(self, url: str, remote: int, mux: bool, extra: str = "") -> FrpClientService:
        config = parse_client_config(clientText(self.bindPort, url, self.echo.port, remote, mux, extra), "toml")
        service = FrpClientService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def go(self, url: str, remote: int, mux: bool, ready: str = "start proxy success"):
        frpc = await GoFrp.start(reactor, "frpc", clientText(self.bindPort, url, self.echo.port, remote, mux),
                                 ready=ready)
        self.addCleanup(frpc.stop)
        return frpc

    async def traffic(self, remote: int, mux: bool) -> None:
        total = await exchange(reactor, remote, PER_CONNECTION, connections=CONNECTIONS)
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)
        target = ("127.0.0.1", self.bindPort)
        self.assertTrue(self.proxy.tunnels)
        self.assertEqual(set(self.proxy.tunnels), {target})
        # tcpMux: one tunnel carries everything; without it, each work connection is a tunnel too.
        if mux:
            self.assertEqual(len(self.proxy.tunnels), 1)
        else:
            self.assertGreaterEqual(len(self.proxy.tunnels), 1 + CONNECTIONS)

    async def ourCell(self, kind: str, mux: bool, frps: str = "go", extra: str = "") -> None:
        await self.setUpWorld(kind, mux, frps)
        remote = free_port()
        service = await self.ours(self.proxy.url(), remote, mux, extra)
        await service.whenProxyRunning("echo")
        await self.traffic(remote, mux)

    async def goCell(self, kind: str, mux: bool) -> None:
        await self.setUpWorld(kind, mux, "ours")
        remote = free_port()
        await self.go(self.proxy.url(), remote, mux)
        await self.traffic(remote, mux)

    async def test_http_ours_mux(self) -> None:
        await self.ourCell("http", True)

    async def test_http_ours_no_mux(self) -> None:
        await self.ourCell("http", False)

    async def test_socks5_ours_mux(self) -> None:
        await self.ourCell("socks5", True)

    async def test_socks5_ours_no_mux(self) -> None:
        await self.ourCell("socks5", False)

    async def test_http_go_no_mux(self) -> None:
        await self.goCell("http", False)

    async def test_socks5_go_no_mux(self) -> None:
        await self.goCell("socks5", False)

    async def test_websocket_through_socks5_to_our_frps(self) -> None:
        await self.ourCell("socks5", False, frps="ours", extra='transport.protocol = "websocket"')

    async def test_connect_request_is_go_frpcs(self) -> None:
        """Our CONNECT request has Go frpc's request line and headers (Basic credentials on
        the first request)."""
        await self.setUpWorld("http", True, "ours")
        await self.go(self.proxy.url(), free_port(), True)
        await self.ours(self.proxy.url(), free_port(), True)
        await until(lambda: len(self.proxy.requests) == 2, "both CONNECT requests")
        go, ours = self.proxy.requests
        self.assertEqual((ours.method, ours.target, ours.http_version), (go.method, go.target, go.http_version))
        self.assertEqual(ours.headers.raw_items(), go.headers.raw_items())

    async def test_wrong_credentials_like_go(self) -> None:
        for kind, text in (("http", "DialTcpByHttpProxy error, StatusCode [407]"),
                           ("socks5", "username/password authentication failed")):
            await self.setUpWorld(kind, True, "ours")
            bad = self.proxy.url(password="wrong")
            frpc = await self.go(bad, free_port(), True, ready=None)
            await frpc.waitFor(text)
            logs = LogCapture(self)
            service = await self.ours(bad, free_port(), True)
            await logs.waitFor(text)
            self.assertIsNone(service.runId or None)
            self.assertEqual(self.proxy.tunnels, [])


class ProxyURLSettings(SynchronousTestCase):
    def config(self, url: str):
        return parse_client_config(f'serverAddr = "127.0.0.1"\ntransport.proxyURL = "{url}"\n', "toml")

    def test_unsupported_schemes_refused_at_construction(self) -> None:
        for url, text in (("ntlm://u:p@127.0.0.1:3128", "NTLM proxies are not supported by this frpc"),
                          ("https://127.0.0.1:3128", "ProxyType must be http or socks5 or ntlm, not [https]"),
                          ("http://127.0.0.1", "needs a host and a port")):
            error = self.assertRaises(ConfigError, FrpClientService, self.config(url), MemoryReactorClock())
            self.assertIn(text, str(error))
            self.assertIn("transport.proxyURL", str(error))

    def test_dials_the_proxy(self) -> None:
        clock = MemoryReactorClock()
        service = FrpClientService(self.config("socks5://127.0.0.1:1080"), clock)
        service.startService()
        self.addCleanup(service.stopService)
        host, port = clock.tcpClients[0][:2]
        self.assertEqual((host, port), ("127.0.0.1", 1080))

    def test_silent_proxy_times_out(self) -> None:
        clock = Clock()
        root, transport = SwitchableProtocol(), StringTransport()
        root.makeConnection(transport)
        opened = startTunnel(root, HTTPConnectClient("h", 1), clock, 10)
        self.assertTrue(transport.value().startswith(b"CONNECT h:1 HTTP/1.1\r\n"))
        clock.advance(9.9)
        self.assertNoResult(opened)
        clock.advance(0.1)
        self.assertIn("within 10 s", str(self.failureResultOf(opened, TunnelError).value))
        self.assertTrue(transport.disconnecting)
