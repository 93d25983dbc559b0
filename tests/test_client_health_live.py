"""frpc health checks on real sockets: the tcp and http probes against local services, a proxy
withdrawn from frps while its local service is down and registered again when it is back --
through our frps in-process and through the real Go frps 0.65 -- and failover in a tcp
load-balancing group (a Go frpc member and a health-checked frptw member)."""

import time
from typing import List

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from frptw.client import FrpClientService
from frptw.client._health import probeFor
from frptw.client._health_http import UnhealthyResponse
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.transport.sockets import listenTCP
from tests.gofrp import GoFrp
from tests.grouptraffic import Banner, GroupMixin, groupProxy, spread
from tests.support import LogCapture, free_port, proxiesRunning, sleep, until
from tests.traffic import EchoServer, exchange

INTERVAL = 1
MAX_FAILED = 2
#: How soon frp withdraws a proxy whose service died (issue 9): max_failed x interval + 2 s.
WITHDRAW_WITHIN = MAX_FAILED * INTERVAL + 2


def proxyConfig(localPort: int, healthCheck: str, name: str = "web"):
    text = (f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
            f'remotePort = 1\nhealthCheck = {healthCheck}\n')
    return parse_client_config(text, "toml").proxies[0]


class _Health(Resource):
    """Answers ``code`` on every path; records the requests' headers."""

    isLeaf = True

    def __init__(self, code: int) -> None:
        super().__init__()
        self.code = code
        self.seen: List[dict] = []

    def render_GET(self, request):
        self.seen.append({"path": request.path, "host": request.getHeader("host"),
                          "x-check": request.getHeader("x-check")})
        request.setResponseCode(self.code)
        return b"x" * 100000


class ProbeTests(TestCase):
    async def listenHTTP(self, code: int) -> "tuple[int, _Health]":
        resource = _Health(code)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(resource))
        self.addCleanup(port.stopListening)
        return port.getHost().port, resource

    async def test_tcp_probe(self) -> None:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        await probeFor(reactor, proxyConfig(echo.port, '{ type = "tcp" }'))()
        with self.assertRaises(ConnectError):
            await probeFor(reactor, proxyConfig(free_port(), '{ type = "tcp" }'))()

    async def test_http_probe_2xx_with_headers_and_host(self) -> None:
        port, resource = await self.listenHTTP(204)
        check = ('{ type = "http", path = "ready", httpHeaders = [{ name = "Host", value = "svc.example" }, '
                 '{ name = "X-Check", value = "1" }] }')
        await probeFor(reactor, proxyConfig(port, check))()
        self.assertEqual(resource.seen, [{"path": b"/ready", "host": "svc.example", "x-check": "1"}])

    async def test_http_probe_non_2xx_fails_with_frps_text(self) -> None:
        port, _ = await self.listenHTTP(503)
        with self.assertRaises(UnhealthyResponse) as caught:
            await probeFor(reactor, proxyConfig(port, '{ type = "http", path = "/" }'))()
        self.assertEqual(str(caught.exception), "do http health check, StatusCode is [503] not 2xx")


async def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        proto = await TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=1).connect(Factory.forProtocol(Protocol))
    except ConnectError:
        return False
    proto.transport.abortConnection()
    return True


async def acceptsUntil(port: int, wanted: bool, timeout: float) -> float:
    """Poll until ``port`` accepts (or refuses) as ``wanted``; return how long it took."""
    start = time.monotonic()
    while await accepts(port) != wanted:
        if time.monotonic() - start > timeout:
            raise AssertionError(f"port {port} still {'refuses' if wanted else 'accepts'} after {timeout} s")
        await sleep(0.05)
    return time.monotonic() - start


async def ourFrps(testCase: TestCase) -> int:
    """Start our frps on a free port for the test's duration; its bind port."""
    config = parse_server_config('bindAddr = "127.0.0.1"\nauth.token = "abc"\n', "toml")
    config.bind_port = 0
    server = FrpServerService(config)
    server.startService()
    testCase.addCleanup(server.stopService)
    return (await server.whenListening()).getHost().port


class WithdrawTests(TestCase):
    """Our frpc, a tcp proxy health-checked every second; its echo service stops and restarts."""

    timeout = 60

    async def goFrps(self) -> GoFrp:
        self.bindPort = free_port()
        frps = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {self.bindPort}\nauth.token = "abc"\n')
        self.addCleanup(frps.stop)
        return frps

    async def withdrawAndRecover(self, bindPort: int) -> None:
        logs = LogCapture(self)
        echo = await EchoServer.listen(reactor)
        remote = free_port()
        config = parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "abc"\n'
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echo.port}\n'
            f"remotePort = {remote}\n"
            f'healthCheck = {{ type = "tcp", intervalSeconds = {INTERVAL}, timeoutSeconds = 1, maxFailed = {MAX_FAILED} }}\n',
            "toml",
        )
        client = FrpClientService(config, reactor)
        client.startService()
        self.addCleanup(client.stopService)
        await proxiesRunning(client, "echo")
        self.assertEqual(await exchange(reactor, remote, 4096, connections=2), 2 * 4096)

        await echo.stop()
        took = await acceptsUntil(remote, False, WITHDRAW_WITHIN)
        self.assertEqual(client.proxyStatus("echo").status, "check failed")
        await logs.waitFor("[echo] health check failed")

        echo = await EchoServer.listen(reactor, port=echo.port)
        self.addCleanup(echo.stop)
        await acceptsUntil(remote, True, INTERVAL + 2)
        await proxiesRunning(client, "echo")
        self.assertEqual(await exchange(reactor, remote, 4096, connections=2), 2 * 4096)
        await logs.waitFor("[echo] health check success", count=2)
        self.assertLess(took, WITHDRAW_WITHIN)

    async def test_our_frps(self) -> None:
        await self.withdrawAndRecover(await ourFrps(self))

    async def test_go_frps(self) -> None:
        frps = await self.goFrps()
        await self.withdrawAndRecover(self.bindPort)
        await frps.waitFor("close proxy [echo] success")
        await frps.waitFor("new proxy [echo] type [tcp] success", count=2)


class GroupFailoverTests(GroupMixin, TestCase):
    """Our frps; member A a Go frpc, member B our frpc with a tcp health check: while B's service
    is down B leaves the group and A takes every connection; B rejoins when it is back."""

    async def setUp(self) -> None:
        self.bindPort = await ourFrps(self)
        self.remote = free_port()

    async def test_unhealthy_member_leaves_and_rejoins(self) -> None:
        await self.goMember("a", b"A")
        banner = listenTCP(reactor, 0, Banner(b"B"), interface="127.0.0.1")
        localPort = banner.getHost().port
        check = (f'healthCheck = {{ type = "tcp", intervalSeconds = {INTERVAL}, timeoutSeconds = 1, '
                 f'maxFailed = {MAX_FAILED} }}\n')
        b = await self.ours("b", groupProxy("b", localPort, self.remote) + check)
        await proxiesRunning(b, "b")
        counts = await spread(reactor, self.remote, 40)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)

        start = time.monotonic()
        await banner.stopListening()
        await until(lambda: b.proxyStatus("b").status == "check failed", "b withdrawn", WITHDRAW_WITHIN)
        self.assertLess(time.monotonic() - start, WITHDRAW_WITHIN)
        self.assertEqual(await spread(reactor, self.remote, 10), {b"A": 10})

        banner = listenTCP(reactor, localPort, Banner(b"B"), interface="127.0.0.1")
        self.addCleanup(banner.stopListening)
        await proxiesRunning(b, "b", timeout=INTERVAL + 2)
        counts = await spread(reactor, self.remote, 40)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)
