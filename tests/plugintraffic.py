"""Client plugins between real programs: the same plugin proxy served by our frpc behind the Go
frps, by the Go frpc behind our frps, and by the Go frpc behind the Go frps (the reference),
so a test can send the same request through each and compare what comes back
(tests/test_plugins_*.py).
"""

import os
import shutil
import tempfile
from typing import List

import h11
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.h11server import serverEvents
from tests.support import free_port, proxiesRunning, until

TOKEN = "abc"
#: The three ways a plugin proxy runs: (frps, frpc).
OURS_BEHIND_GO = ("go", "ours")
GO_BEHIND_OURS = ("ours", "go")
GO_BEHIND_GO = ("go", "go")


class PluginRigMixin:
    """For a TestCase: start an frps and an frpc (each ours or Go's) with plugin proxies."""

    timeout = 60

    async def startFrps(self, kind: str, extra: str = "") -> int:
        """Start frps ``kind`` ("go" or "ours") on loopback, with ``extra`` TOML (vhost ports...);
        returns its bind port."""
        if kind == "go":
            port = free_port()
            frps = await GoFrp.start(reactor, "frps",
                                     f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "{TOKEN}"\n{extra}\n')
            self.addCleanup(frps.stop)
            return port
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n{extra}\n', "toml")
        config.bind_port = 0
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        listening = await service.whenListening()
        return listening.getHost().port

    async def startFrpc(self, kind: str, serverPort: int, proxies: str, names: List[str], fmt: str = "toml"):
        """Start frpc ``kind`` with ``proxies`` (TOML ``[[proxies]]``, or INI sections when
        ``fmt`` is "ini"); fire once every proxy of ``names`` runs."""
        if fmt == "ini":
            text = f"[common]\nserver_addr = 127.0.0.1\nserver_port = {serverPort}\ntoken = {TOKEN}\n{proxies}"
        else:
            text = f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\n{proxies}'
        if kind == "go":
            frpc = await GoFrp.start(reactor, "frpc", text, fmt=fmt, ready=None)
            self.addCleanup(frpc.stop)
            await frpc.waitFor("start proxy success", count=len(names))
            return frpc
        service = FrpClientService(parse_client_config(text, fmt), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await proxiesRunning(service, *names)
        return service

    async def rig(self, rig, proxies: str, names: List[str], fmt: str = "toml", frpsExtra: str = ""):
        """frps (with ``frpsExtra``) and frpc as ``rig`` says, with ``proxies``; returns the frpc."""
        serverPort = await self.startFrps(rig[0], frpsExtra)
        return await self.startFrpc(rig[1], serverPort, proxies, names, fmt)


class Talk(Protocol):
    """A user connection: records what it receives and when it is closed."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=connectionDone) -> None:
        self.closed.callback(None)

    async def waitFor(self, count: int, what: str = "the reply", timeout: float = 10.0) -> bytes:
        await until(lambda: len(self.received) >= count or self.closed.called, what, timeout)
        return self.received


async def talk(testcase: TestCase, port: int, send: bytes = b"", host: str = "127.0.0.1") -> Talk:
    """Connect to ``port``, write ``send``; the connection is aborted at cleanup."""
    proto = Talk()
    await connectProtocol(TCP4ClientEndpoint(reactor, host, port), proto)
    testcase.addCleanup(lambda: proto.transport.connected and proto.transport.abortConnection())
    if send:
        proto.transport.write(send)
    return proto


async def exchangeOnce(testcase: TestCase, port: int, send: bytes, timeout: float = 10.0) -> bytes:
    """Connect, send, and return everything received until the far end closes."""
    proto = await talk(testcase, port, send)
    await until(lambda: proto.closed.called, "the far end to close", timeout)
    return proto.received


class _Recorder(Protocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.factory.reply is not None:
            self.transport.write(self.factory.reply(data))


class Recorder(Factory):
    """A backend that records what each connection sends and answers with ``reply(data)``."""

    protocol = _Recorder

    def __init__(self, reply=None) -> None:
        self.connections: List[_Recorder] = []
        self.reply = reply

    def received(self) -> List[bytes]:
        return [c.received for c in self.connections]


def socketPath(testcase: TestCase) -> str:
    """A path for a UNIX socket, short enough for ``sun_path`` (trial's temporary tree is
    not), removed at cleanup."""
    directory = tempfile.mkdtemp(prefix="frptw-uds-")
    testcase.addCleanup(shutil.rmtree, directory, True)
    return os.path.join(directory, "s")


class _HTTPBackend(Protocol):
    def connectionMade(self) -> None:
        self.h11 = h11.Connection(h11.SERVER)
        self.body = b""

    def dataReceived(self, data: bytes) -> None:
        for event in serverEvents(self.h11, data):
            if isinstance(event, h11.Request):
                self.request = event
                self.body = b""
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.factory.requests.append((self.request, self.body))
                answer = b"you sent %d bytes to %s" % (len(self.body), self.request.target)
                self.transport.write(self.h11.send(h11.Response(status_code=201, headers=[
                    (b"Content-Length", b"%d" % len(answer)), (b"X-Backend", b"yes"), (b"Date", b"fixed")])))
                self.transport.write(self.h11.send(h11.Data(data=answer)) + self.h11.send(h11.EndOfMessage()))


class HTTPBackend(Factory):
    """An HTTP/1.1 origin server that records each request (head, body) and answers 201 with
    ``you sent N bytes to TARGET``."""

    protocol = _HTTPBackend

    def __init__(self) -> None:
        self.requests: list = []
