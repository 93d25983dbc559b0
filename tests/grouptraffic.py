"""Who answers a group's port: backends that name themselves, and a user that counts the names.

Each member of a load-balancing group forwards to its own :class:`Banner` server, which writes
its label and closes; :func:`spread` opens user connections to the group's port one after the
other and counts which label each one got (tests/test_server_tcpgroup.py and the interop
tests of groups); :func:`groupProxy` is a member's frpc TOML.  For http groups,
:func:`labelSite` is the backend and :func:`httpSpread` counts the bodies of requests.
"""

from collections import Counter
from typing import Awaitable, Callable

from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.transport.sockets import listenTCP
from tests.gofrp import GoFrp
from tests.interop import GoAndOursMixin
from tests.support import free_port, proxiesRunning, until


class _Announce(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(self.factory.label)
        self.transport.loseConnection()


class Banner(protocol.Factory):
    """A local service that answers every connection with its label, then closes it."""

    protocol = _Announce
    noisy = False

    def __init__(self, label: bytes) -> None:
        self.label = label

    @classmethod
    def listen(cls, testCase: TestCase, reactor, label: bytes) -> int:
        """Listen on a free loopback port until the test ends; the port."""
        port = listenTCP(reactor, 0, cls(label), interface="127.0.0.1")
        testCase.addCleanup(port.stopListening)
        return port.getHost().port


class _Reader(protocol.Protocol):
    def __init__(self) -> None:
        self.data = b""
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self.done.callback(self.data)


async def answer(reactor, port: int, send: bytes = b"") -> bytes:
    """What one user connection to ``port`` receives (after sending ``send``) before it is closed."""
    reader = _Reader()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(protocol.Factory.forProtocol(lambda: reader))
    reader.transport.write(send)
    return await reader.done


def labelSite(testCase: TestCase, reactor, label: bytes) -> int:
    """An HTTP backend answering every path with ``label``; its port."""
    root = Resource()
    root.putChild(b"", Data(label, "text/plain"))
    site = Site(root)
    site.noisy = False
    port = listenTCP(reactor, 0, site, interface="127.0.0.1")
    testCase.addCleanup(port.stopListening)
    return port.getHost().port


async def httpGet(reactor, port: int, host: str) -> bytes:
    """The status line and body of one ``GET /`` for ``host`` (``Connection: close``)."""
    data = await answer(reactor, port, f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ", 2)[1]
    return body if status == b"200" else status


async def httpSpread(reactor, port: int, host: str, requests: int = 40) -> Counter:
    """How many of ``requests`` sequential requests each label answered (other statuses count
    under the status code)."""
    counts: Counter = Counter()
    for _ in range(requests):
        counts[await httpGet(reactor, port, host)] += 1
    return counts


async def spread(reactor, port: int, connections: int = 40) -> Counter:
    """How many of ``connections`` sequential user connections each label answered."""
    counts: Counter = Counter()
    for _ in range(connections):
        counts[await answer(reactor, port)] += 1
    return counts


def groupProxy(name: str, localPort: int, remotePort: int, key: str = "gk", group: str = "web") -> str:
    """A tcp proxy in a load-balancing group (frpc TOML)."""
    return (
        f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
        f'remotePort = {remotePort}\nloadBalancer.group = "{group}"\nloadBalancer.groupKey = "{key}"\n'
    )


def httpGroupProxy(name: str, localPort: int, key: str = "gk", group: str = "web", domain: str = "web.test",
                   extra: str = "") -> str:
    """An http proxy in a load-balancing group (frpc TOML)."""
    return (
        f'[[proxies]]\nname = "{name}"\ntype = "http"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
        f'customDomains = ["{domain}"]\nloadBalancer.group = "{group}"\nloadBalancer.groupKey = "{key}"\n{extra}\n'
    )


class OurFrpsMixin:
    """For a TestCase: our frps on a free port, and our frpcs logging in to it."""

    async def startOurFrps(self, extra: str = "") -> FrpServerService:
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "abc"\n{extra}\n', "toml")
        config.bind_port = 0
        self.server = FrpServerService(config, reactor=reactor)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        self.bindPort = (await self.server.whenListening()).getHost().port
        return self.server

    async def closed(self, user: str) -> None:
        """Wait until frps has closed the proxy of frpc ``user`` named like it."""
        await until(lambda: f"{user}.{user}" not in self.server.proxies(), f"{user} to leave the group")

    def frpc(self, body: str) -> FrpClientService:
        """Our frpc (no user) with ``body`` (proxies TOML), started."""
        config = parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {self.bindPort}\nauth.token = "abc"\n'
            f"loginFailExit = false\n{body}",
            "toml",
        )
        client = FrpClientService(config, reactor, onFatal=self.fail)
        client.startService()
        self.addCleanup(client.stopService)
        return client


async def startError(frpc, name: str) -> str:
    """The text Go frpc (a :class:`tests.gofrp.GoFrp` with no user prefix but its own) logs
    when frps refuses proxy ``name``: ``[USER.NAME] start error: TEXT`` with USER = NAME."""
    await frpc.waitFor(f"[{name}.{name}] start error: ")
    line = next(line for line in frpc.output.splitlines() if "start error: " in line)
    return line.split("start error: ", 1)[1].strip()


def tcpmuxGroupProxy(name: str, localPort: int, key: str = "gk", group: str = "web", domain: str = "web.test",
                     extra: str = "") -> str:
    """A tcpmux (httpconnect) proxy in a load-balancing group (frpc TOML)."""
    return (
        f'[[proxies]]\nname = "{name}"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\nlocalIP = "127.0.0.1"\n'
        f'localPort = {localPort}\ncustomDomains = ["{domain}"]\nloadBalancer.group = "{group}"\n'
        f'loadBalancer.groupKey = "{key}"\n{extra}\n'
    )


async def connectSpread(reactor, port: int, host: str, connections: int = 40) -> Counter:
    """How many of ``connections`` sequential HTTP CONNECT tunnels to ``host`` each label
    answered through the tcpmux port (a refused tunnel counts under its status code)."""
    counts: Counter = Counter()
    for _ in range(connections):
        data = await answer(reactor, port, f"CONNECT {host}:80 HTTP/1.1\r\nHost: {host}:80\r\n\r\n".encode())
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)[1]
        counts[body if status == b"200" else status] += 1
    return counts


class GoFrpsClosedMixin:
    """For a GoAndOursMixin TestCase on Go frps: :meth:`closed` as :class:`OurFrpsMixin`'s."""

    async def closed(self, user: str) -> None:
        await self.frps.waitFor(f"[{user}.{user}] proxy closing")


class GroupMixin(GoAndOursMixin):
    timeout = 60

    async def goMember(self, name: str, label: bytes, **kw) -> GoFrp:
        return await self.go(name, groupProxy(name, Banner.listen(self, reactor, label), self.remote, **kw),
                             ready="start proxy success")

    async def ourMember(self, name: str, label: bytes, **kw):
        client = await self.ours(name, groupProxy(name, Banner.listen(self, reactor, label), self.remote, **kw))
        await proxiesRunning(client, name)
        return client

    async def spreadThenLeave(self, leave: Callable[[], Awaitable[object]]) -> None:
        """40 connections reach members A and B (each >= 25 %); after ``leave`` (B goes), only A."""
        counts = await spread(reactor, self.remote, 40)
        self.assertEqual(counts[b"A"] + counts[b"B"], 40, counts)
        self.assertGreaterEqual(min(counts[b"A"], counts[b"B"]), 10, counts)
        await leave()
        self.assertEqual(await spread(reactor, self.remote, 10), {b"A": 10})

    async def refusals(self):
        """Go frpcs with a wrong key, a different port, and another group on the group's port:
        frps's texts, as Go frpc logs them."""
        texts = []
        for name, key, remote, group in [("wrongkey", "wrong", self.remote, "web"),
                                         ("otherport", "gk", free_port(), "web"),
                                         ("othergroup", "gk", self.remote, "other")]:
            frpc = await self.go(name, groupProxy(name, 1, remote, key=key, group=group))
            texts.append(await startError(frpc, name))
        return texts
