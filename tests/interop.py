"""Interop test scaffolding: the real Go frps with our frpc and the real frpc mixed, and the
proxy / visitor TOML they share (tests/test_client_udp_interop.py, test_visitor_matrix.py).
"""

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.errors import LoginError
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.support import free_port
from tests.traffic import EchoServer
from tests.udptraffic import UDPEcho


async def ourFrps(testCase, text: str) -> int:
    """Our frps from the TOML ``text`` on a free bind port (whatever ``bindPort`` says), stopped
    at cleanup; fires with its bind port once it listens."""
    config = parse_server_config(text, "toml")
    config.bind_port = 0
    service = FrpServerService(config, reactor=reactor)
    service.startService()
    testCase.addCleanup(service.stopService)
    return (await service.whenListening()).getHost().port


async def ourLoginFailure(testCase, text: str) -> str:
    """Our frpc from the TOML ``text`` with ``loginFailExit`` on (stopped at cleanup): the text
    of the LoginError its first login fails with."""
    config = parse_client_config(text, "toml")
    config.login_fail_exit = True
    service = FrpClientService(config, reactor)
    service.startService()
    testCase.addCleanup(service.stopService)
    failure = await testCase.assertFailure(service.whenLoggedIn(), LoginError)
    return str(failure)


class GoAndOursMixin:
    """For a TestCase: the real frps, and frpcs that are ours or the real one, on loopback."""

    timeout = 30

    @inlineCallbacks
    def startFrps(self, extra: str = ""):
        self.bindPort = free_port()
        frps = yield GoFrp.start(
            reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {self.bindPort}\nauth.token = "abc"\n{extra}\n'
        )
        self.addCleanup(frps.stop)
        self.frps = frps
        return frps

    def common(self, user: str, extra: str = "") -> str:
        return (
            f'serverAddr = "127.0.0.1"\nserverPort = {self.bindPort}\nauth.token = "abc"\n'
            f'user = "{user}"\nloginFailExit = false\n{extra}\n'
        )

    @inlineCallbacks
    def ours(self, user: str, body: str, extra: str = ""):
        """Start our frpc with ``body`` (proxies/visitors TOML); fire once logged in."""
        config = parse_client_config(self.common(user, extra) + body, "toml")
        service = FrpClientService(config, reactor, onFatal=self.fail)
        service.startService()
        self.addCleanup(service.stopService)
        yield service.whenLoggedIn()
        return service

    @inlineCallbacks
    def go(self, user: str, body: str, ready: str = "login to server success", extra: str = ""):
        frpc = yield GoFrp.start(reactor, "frpc", self.common(user, extra) + body, ready=ready)
        self.addCleanup(frpc.stop)
        return frpc

    def udpEcho(self, prefix: bytes = b""):
        echo = UDPEcho.listen(reactor, prefix)
        self.addCleanup(echo.stop)
        return echo

    @inlineCallbacks
    def tcpEcho(self):
        server = yield EchoServer.listen(reactor)
        self.addCleanup(server.stop)
        return server



def udpProxy(localPort: int, remotePort: int, extra: str = "") -> str:
    return f"""
[[proxies]]
name = "dns"
type = "udp"
localIP = "127.0.0.1"
localPort = {localPort}
remotePort = {remotePort}
{extra}
"""


def secretProxy(kind: str, localPort: int, sk: str = "s3cret", allow: str = '["*"]', extra: str = "") -> str:
    return f"""
[[proxies]]
name = "sec"
type = "{kind}"
secretKey = "{sk}"
allowUsers = {allow}
localIP = "127.0.0.1"
localPort = {localPort}
{extra}
"""


def visitor(kind: str, bindPort: int, sk: str = "s3cret", serverName: str = "sec", extra: str = "") -> str:
    return f"""
[[visitors]]
name = "vis"
type = "{kind}"
serverName = "{serverName}"
serverUser = "owner"
secretKey = "{sk}"
bindAddr = "127.0.0.1"
bindPort = {bindPort}
{extra}
"""
