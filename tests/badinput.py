"""The bad-input harness: a good frpc session through our frps that must keep working while a
test throws bad input at the same frps (tests/test_badinput_server.py, test_vhost_badinput.py,
test_leaks.py; test_badinput_client.py uses its configs and :func:`frame`).

frps runs on a :class:`tests.support.SplitClock`: its deadlines wait for the test to advance
the clock while zero-delay hand-offs keep the good session flowing on the real reactor.
"""

from typing import Callable, List, Optional

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.wire import messages as m
from tests.support import SplitClock, free_port, proxiesRunning, until
from tests.traffic import EchoServer, exchange

TOKEN = "abc"
class Probe(Protocol):
    """A raw connection (or yamux stream) of a misbehaving client: records what it receives
    and when it is closed."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()
        self.reason = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=connectionDone) -> None:
        self.reason = reason
        self.closed.callback(None)

    def messages(self) -> List[m.Message]:
        reader = m.MessageReader()
        reader.feed(self.received)
        found = []
        while (message := reader.next_message()) is not None:
            found.append(message)
        return found


class Keeper(Protocol):
    """A user connection through the good proxy that stays open the whole test: each
    :meth:`roundTrip` must come back through frps, frpc and the echo server."""

    def __init__(self) -> None:
        self.received = b""
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=connectionDone) -> None:
        self.lost = True

    async def roundTrip(self, payload: bytes) -> None:
        self.received = b""
        self.transport.write(payload)
        await until(lambda: self.received == payload or self.lost, "the keeper's echo")
        if self.received != payload:
            raise AssertionError(f"keeper connection lost; echoed {self.received!r} of {payload!r}")


def serverConfig(extra: str = ""):
    config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n{extra}\n', "toml")
    config.bind_port = 0  # in a file 0 means frp's default (7000); here: any free port
    return config


def clientConfig(bindPort: int, extra: str = "", proxies: str = "", token: str = TOKEN):
    return parse_client_config(
        f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{token}"\n'
        f"loginFailExit = false\n{extra}\n{proxies}",
        "toml",
    )


def tcpProxy(name: str, localPort: int, remotePort: int) -> str:
    return (f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
            f"remotePort = {remotePort}\n")


class GoodSession:
    """frps (on a SplitClock) + a frptw frpc with one tcp proxy to an echo server, and a
    long-lived keeper connection through it."""

    server: FrpServerService
    clock: SplitClock
    client: FrpClientService
    bindPort: int
    remote: int
    echo: EchoServer
    keeper: Keeper

    @classmethod
    async def start(cls, testcase: TestCase, serverExtra: str = "", clientExtra: str = "",
                    configure: Optional[Callable] = None) -> "GoodSession":
        self = cls()
        config = serverConfig(serverExtra)
        self.remote = free_port()
        if configure is not None:
            configure(config, self.remote)
        self.clock = SplitClock(reactor)
        self.server = FrpServerService(config, reactor, clock=self.clock)
        self.server.startService()
        testcase.addCleanup(self.server.stopService)
        self.bindPort = (await self.server.whenListening()).getHost().port
        self.echo = await EchoServer.listen(reactor)
        testcase.addCleanup(self.echo.stop)
        self.client = FrpClientService(
            clientConfig(self.bindPort, clientExtra, tcpProxy("echo", self.echo.port, self.remote)), reactor
        )
        self.client.startService()
        testcase.addCleanup(self.client.stopService)
        await self.client.whenLoggedIn()
        await proxiesRunning(self.client, "echo", timeout=15)
        self.keeper = Keeper()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.remote), self.keeper)
        testcase.addCleanup(self.keeper.transport.abortConnection)
        await self.keeper.roundTrip(b"before the bad input")
        return self

    async def sync(self) -> None:
        """A round trip through frps and frpc on the keeper connection.  Bytes written before it
        on other connections to frps are in frps's socket buffers already, so by the time the
        echo is back frps has read them and what it did about them has had several reactor
        turns to show: the positive event after which "nothing happened" can be checked."""
        self.rounds = getattr(self, "rounds", 0) + 1
        await self.keeper.roundTrip(b"sync %d" % self.rounds)

    async def stillWorks(self) -> None:
        """The keeper still echoes and new user connections carry checked traffic."""
        await self.keeper.roundTrip(b"after the bad input")
        self.assertTotal(await exchange(reactor, self.remote, 64 * 1024, connections=4, timeout=20))

    @staticmethod
    def assertTotal(total: int) -> None:
        if total != 4 * 64 * 1024:
            raise AssertionError(f"exchanged {total} bytes")


async def connectRaw(testcase: TestCase, port: int, proto: Optional[Protocol] = None) -> Protocol:
    proto = proto if proto is not None else Probe()
    await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), proto)
    testcase.addCleanup(lambda: proto.transport.connected and proto.transport.abortConnection())
    return proto


def frame(kind: bytes, length: int, body: bytes = b"") -> bytes:
    """A v1 frame header with any (even invalid) length, and a body."""
    return kind + length.to_bytes(8, "big", signed=True) + body
