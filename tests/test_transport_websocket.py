"""frptw.transport.websocket: the upgrade rules of frps's endpoint (checked against Go frps
too) and backpressure through the websocket layer on the real reactor.

That frp 0.65's text frames are accepted, and that Go's frps accepts our binary frames, is
shown by tests/test_websocket_interop.py.
"""

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from frptw.transport.websocket import WebSocketDialer, serverProtocol
from tests.gofrp import GoFrp
from tests.support import Notifying, Peer, buffered, closeOnCleanup, free_port, stalled, tcpPair

MiB = 1024 * 1024
UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin}\r\n"
)


class _Collect(Protocol):
    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        if b"\r\n\r\n" in self.data:
            self.transport.loseConnection()

    def connectionLost(self, reason) -> None:
        self.done.callback(self.data)


class UpgradeRules(TestCase):
    """frps answers the upgrade as Go frps 0.65 does: 101 with an Origin, 403 without, 404 on
    a longer path that starts with the same 10 bytes."""

    timeout = 30

    async def ask(self, port: int, path: str, origin: str) -> str:
        request = UPGRADE.format(path=path, origin=f"Origin: {origin}\r\n" if origin else "").encode()
        proto = _Collect(request)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(lambda: proto))
        answer = await proto.done
        return answer.split(b"\r\n", 1)[0].decode()

    async def statuses(self, port: int):
        return [
            await self.ask(port, "/~!frp", "http://127.0.0.1"),
            await self.ask(port, "/~!frp", ""),
            await self.ask(port, "/~!frpx", "http://127.0.0.1"),
        ]

    async def test_ours_like_go(self) -> None:
        goPort, goVhost, ourVhost = free_port(), free_port(), free_port()
        frps = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {goPort}\n'
                                                  f'vhostHTTPPort = {goVhost}\n')
        self.addCleanup(frps.stop)
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nvhostHTTPPort = {ourVhost}\n', "toml")
        config.bind_port = 0
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        ours = (await service.whenListening()).getHost().port
        go = await self.statuses(goPort)
        self.assertEqual([s.split(" ")[1] for s in go], ["101", "403", "404"])
        self.assertEqual([s.split(" ")[1] for s in await self.statuses(ours)], ["101", "403", "404"])
        # A vhost port of its own is no websocket endpoint: the request is an HTTP request there.
        self.assertEqual((await self.ask(goVhost, "/~!frp", "http://127.0.0.1")).split(" ")[1], "404")
        self.assertEqual((await self.ask(ourVhost, "/~!frp", "http://127.0.0.1")).split(" ")[1], "404")


class WebSocketBackpressure(TestCase):
    """A reader that stops reading above the websocket pauses the sender on the far side after
    a bounded amount, then everything arrives intact."""

    timeout = 120

    async def test_paused_reader_stops_the_sender(self) -> None:
        clientRoot, serverRoot = Notifying(), Notifying()
        await tcpPair(self, clientRoot, serverRoot, small=True)
        reader = Peer(seed=5)
        ws = serverProtocol(reader)
        serverRoot.switchTo(ws, b"")
        clientTop = await WebSocketDialer("127.0.0.1", 80).start(clientRoot)
        sender = Peer(seed=6)
        clientTop.switchTo(sender)
        await reader.made
        closeOnCleanup(self, sender)
        closeOnCleanup(self, reader)

        total = 64 * MiB
        reader.transport.pauseProducing()
        sender.send(total)
        await stalled(sender, timeout=60)
        # Held in this process: the sender's TCP write buffer (one 64 KiB write over the
        # limit, framed) and autobahn's unparsed input (at most one read).
        self.assertLess(sender.sent, 4 * MiB, "the sender was not held back")
        self.assertLessEqual(buffered(clientRoot.transport), 2 * 65536 + 64)
        self.assertLessEqual(len(ws.data), 65536 + 64)
        self.assertTrue(sender.paused)

        reader.transport.resumeProducing()
        await reader.whenReceived(total)
        self.assertEqual(reader.receivedHash.digest(), sender.sentHash.digest())
        sender.transport.loseConnection()
        await reader.lost
