"""HTTP vhost interop: the same requests through real Go frps+frpc (the reference), our frps with
Go frpc, Go frps with our frpc, and our frps with our frpc, compared on status, key headers, the routed proxy and what
the backend saw; plus websocket echo and 64 MiB streaming up/down with sha256.

The backend and the client are small h11 protocols, so that nothing here buffers a whole body:
the download is generated under the transport's backpressure, the upload is hashed as it comes.
"""

import hashlib
import json
import random
import resource
from typing import Dict, List, Optional, Tuple

import h11
from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.h11server import serverEvents
from tests.support import free_port, proxiesRunning

TOKEN = "vhost-token"
SUBDOMAIN_HOST = "example.test"
CHUNK = 64 * 1024
BIG = 64 * 1024 * 1024


def _stream(seed: int, nbytes: int):
    """Deterministic pseudo-random chunks (one 64 KiB block, rotated per chunk)."""
    block = random.Random(seed).randbytes(CHUNK)
    sent = 0
    while sent < nbytes:
        n = min(CHUNK, nbytes - sent)
        offset = sent // CHUNK % CHUNK
        yield (block[offset:] + block[:offset])[:n]
        sent += n


def _digest(seed: int, nbytes: int) -> str:
    h = hashlib.sha256()
    for chunk in _stream(seed, nbytes):
        h.update(chunk)
    return h.hexdigest()


@implementer(IPushProducer)
class _Sender:
    """Writes h11 events of a generated body under the transport's backpressure."""

    def __init__(self, conn: h11.Connection, transport, seed: int, nbytes: int, done) -> None:
        self._conn, self._transport, self._done = conn, transport, done
        self._chunks = _stream(seed, nbytes)
        self._paused = False
        transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while not self._paused:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._transport.unregisterProducer()
                self._transport.write(self._conn.send(h11.EndOfMessage()))
                self._done()
                return
            self._transport.write(self._conn.send(h11.Data(data=chunk)))

    def stopProducing(self) -> None:
        self._paused = True


class _Backend(protocol.Protocol):
    """``/dl/<n>`` streams n bytes (chunked); ``/up`` answers the sha256 of the body; ``/ws``
    (Upgrade) answers 101 and echoes raw bytes; ``/slow`` never answers; anything else answers
    a JSON view of the request."""

    def connectionMade(self) -> None:
        self.conn = h11.Connection(h11.SERVER)
        self.tunnel = False
        self.request: Optional[h11.Request] = None
        self.hash = None
        self.size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.tunnel:
            self.transport.write(data)
            return
        for event in serverEvents(self.conn, data):
            if isinstance(event, h11.ConnectionClosed):
                self.transport.loseConnection()
            elif isinstance(event, h11.Request):
                self.request, self.hash, self.size = event, hashlib.sha256(), 0
            elif isinstance(event, h11.Data):
                self.hash.update(event.data)
                self.size += len(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.respond()
                if self.tunnel:
                    return

    def respond(self) -> None:
        target = self.request.target.decode()
        if target == "/slow":
            return
        if target == "/ws":
            self.transport.write(self.conn.send(h11.InformationalResponse(
                status_code=101, headers=[("Connection", "Upgrade"), ("Upgrade", "websocket")])))
            self.tunnel = True
            leftover = self.conn.trailing_data[0]
            if leftover:
                self.transport.write(leftover)
            return
        if target.startswith("/dl/"):
            self.transport.write(self.conn.send(
                h11.Response(status_code=200, headers=[("Transfer-Encoding", "chunked")])))
            _Sender(self.conn, self.transport, 7, int(target[4:]), self.maybeNext)
            return
        if target == "/up":
            body = json.dumps({"sha256": self.hash.hexdigest(), "size": self.size}).encode()
        else:
            body = json.dumps({"method": self.request.method.decode(), "target": target,
                               "headers": [[k.decode(), v.decode()]
                                           for k, v in self.request.headers.raw_items()]}).encode()
        self.transport.write(self.conn.send(h11.Response(
            status_code=200, headers=[("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                      ("X-Backend", "yes")])))
        if self.request.method != b"HEAD":
            self.transport.write(self.conn.send(h11.Data(data=body)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.maybeNext()

    def maybeNext(self) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            if self.conn.trailing_data[0]:
                self.dataReceived(b"")


class _Result:
    def __init__(self) -> None:
        self.status = 0
        self.headers: Dict[str, str] = {}
        #: The response's header names as written, in order.
        self.names: Tuple[str, ...] = ()
        self.body = b""
        self.hash = hashlib.sha256()
        self.size = 0


class _Client(protocol.Protocol):
    """One request; keeps the body when ``keep`` else only its sha256 and size."""

    def __init__(self, request: h11.Request, seed: Optional[int], nbytes: int, keep: bool) -> None:
        self.request, self.seed, self.nbytes, self.keep = request, seed, nbytes, keep
        self.conn = h11.Connection(h11.CLIENT)
        self.result = _Result()
        self.done: defer.Deferred = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.conn.send(self.request))
        if self.seed is None:
            self.transport.write(self.conn.send(h11.EndOfMessage()))
        else:
            _Sender(self.conn, self.transport, self.seed, self.nbytes, lambda: None)

    def dataReceived(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while not self.done.called:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, (h11.Response, h11.InformationalResponse)):
                self.result.status = event.status_code
                self.result.headers = {k.decode().lower(): v.decode() for k, v in event.headers.raw_items()}
                self.result.names = tuple(k.decode() for k, _ in event.headers.raw_items())
                if event.status_code == 101:
                    self.finish()
            elif isinstance(event, h11.Data):
                self.result.hash.update(event.data)
                self.result.size += len(event.data)
                if self.keep:
                    self.result.body += event.data
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.finish()

    def finish(self) -> None:
        if not self.done.called:
            self.done.callback(self.result)

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        if not self.done.called:
            self.done.errback(reason)


async def fetch(port: int, method: str, target: str, headers: List[Tuple[str, str]], seed: Optional[int] = None,
                nbytes: int = 0, keep: bool = True) -> _Result:
    if seed is not None:
        headers = headers + [("Transfer-Encoding", "chunked")]
    client = _Client(h11.Request(method=method, target=target, headers=headers), seed, nbytes, keep)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    try:
        return await client.done.addTimeout(60, reactor)
    finally:
        client.transport.loseConnection()


async def websocket_echo(port: int, host: str) -> Tuple[int, bytes]:
    """Upgrade on /ws, send a masked frame, return (status, the echoed bytes)."""
    frame = b"\x81\x85" + b"\x01\x02\x03\x04" + bytes(b ^ m for b, m in zip(b"hello", b"\x01\x02\x03\x04" * 2))
    got = defer.Deferred()

    class _WS(protocol.Protocol):
        buffer = b""

        def connectionMade(self) -> None:
            self.transport.write(f"GET /ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
                                 .encode())

        def dataReceived(self, data: bytes) -> None:
            first = not self.buffer
            self.buffer += data
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if sep and first and rest == b"" and b" 101 " in head:
                self.transport.write(frame)
            if sep and len(rest) >= len(frame) and not got.called:
                got.callback((int(head.split(b" ")[1]), rest))

    proto = _WS()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(protocol.Factory.forProtocol(lambda: proto))
    try:
        return await got.addTimeout(20, reactor)
    finally:
        proto.transport.loseConnection()


def _proxies(backend: int) -> str:
    def proxy(name, extra):
        return (f'[[proxies]]\nname = "{name}"\ntype = "http"\nlocalIP = "127.0.0.1"\nlocalPort = {backend}\n'
                f'requestHeaders.set.x-proxy = "{name}"\n{extra}\n')

    return "".join([
        proxy("web", 'customDomains = ["a.test"]\nresponseHeaders.set.x-resp = "web"'),
        proxy("api", 'customDomains = ["a.test"]\nlocations = ["/api"]\nhostHeaderRewrite = "rewritten.local"\n'
                     'requestHeaders.set.x-from = "frp"'),
        proxy("wild", 'customDomains = ["*.wild.test"]'),
        proxy("sub", 'subdomain = "sub"'),
        proxy("bob", 'customDomains = ["u.test"]\nrouteByHTTPUser = "bob"\nhttpUser = "bob"\nhttpPassword = "pw"'),
        proxy("anyone", 'customDomains = ["u.test"]'),
        proxy("auth", 'customDomains = ["auth.test"]\nhttpUser = "u"\nhttpPassword = "p"\n'
                      'transport.useEncryption = true\ntransport.useCompression = true'),
    ])


PROXY_COUNT = 7


def _basic(user: str, password: str) -> Tuple[str, str]:
    import base64
    return ("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())


#: (method, target, host header, extra headers)
REQUESTS = [
    ("GET", "/", "a.test", []),
    ("GET", "/api/x?y=1", "A.test:{port}", []),
    ("GET", "/apix", "a.test", []),
    ("GET", "/", "x.y.wild.test", []),
    ("GET", "/", "wild.test", []),
    ("GET", "/", "sub.example.test", []),
    ("GET", "/", "u.test", []),
    ("GET", "/", "u.test", [_basic("bob", "pw")]),
    ("GET", "/", "u.test", [_basic("bob", "wrong")]),
    ("GET", "/", "u.test", [_basic("alice", "x")]),
    ("GET", "/", "auth.test", []),
    ("GET", "/", "auth.test", [_basic("u", "p")]),
    ("GET", "/", "auth.test", [_basic("u", "x")]),
    ("GET", "/", "nope.test", []),
    ("GET", "/", "a.test", [("X-Forwarded-For", "9.9.9.9"), ("Connection", "keep-alive, X-Drop"), ("X-Drop", "1")]),
    ("GET", "http://a.test/api/proxy-style", "other.test", []),
    ("GET", "http://nope.test/", "a.test", []),
    ("HEAD", "/", "a.test", []),
    ("POST", "/", "a.test", [("Content-Length", "0")]),
]

#: Backend-seen headers compared between stacks.
SEEN = ("host", "x-proxy", "x-from", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-drop",
        "connection", "authorization", "proxy-authorization")
#: Response headers compared between stacks.
ANSWERED = ("content-type", "content-length", "www-authenticate", "x-resp", "x-backend", "connection")


def summary(result: _Result, port: int) -> tuple:
    """What must be equal through real frps and ours (ports normalised)."""
    seen = {}
    if result.headers.get("x-backend") == "yes" and result.body:
        view = json.loads(result.body)
        seen = {k.lower(): v.replace(str(port), "PORT") for k, v in view["headers"] if k.lower() in SEEN}
        seen["target"] = view["target"]
    answered = {k: v for k, v in result.headers.items() if k in ANSWERED}
    if seen:
        del answered["content-length"]  # the JSON view differs: Go adds Accept-Encoding and User-Agent
    body = result.body if result.headers.get("x-backend") != "yes" else b""
    # frps's own answers (401, 404, 504) are laid out as Go's server writes them, names and
    # order; every response is dated (the order of relayed heads is not Go's sorted one)
    layout = result.names if result.headers.get("x-backend") != "yes" else "date" in result.headers
    return (result.status, answered, seen, body, layout)


class Stacks:
    """A backend and three frp stacks, each with the same proxies; ports by name."""

    def __init__(self, test: TestCase) -> None:
        self.test = test
        self.ports: Dict[str, int] = {}

    async def start(self, which=("go", "ours-frps", "ours-frpc", "ours-both")) -> None:
        backend = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(
            protocol.Factory.forProtocol(_Backend))
        self.test.addCleanup(backend.stopListening)
        self.backend = backend.getHost().port
        starts = [getattr(self, "_" + name.replace("-", "_"))() for name in which]
        await defer.gatherResults([defer.ensureDeferred(s) for s in starts], consumeErrors=True)

    def _clientConfig(self, serverPort: int) -> str:
        return (f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\nloginFailExit = false\n'
                f'log.level = "info"\n' + _proxies(self.backend))

    def _serverConfig(self, bindPort: int, httpPort: int) -> str:
        return (f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nvhostHTTPPort = {httpPort}\nvhostHTTPTimeout = 3\n'
                f'auth.token = "{TOKEN}"\nsubdomainHost = "{SUBDOMAIN_HOST}"\n')

    async def _goFrps(self) -> int:
        bind, http = free_port(), free_port()
        frps = await GoFrp.start(reactor, "frps", self._serverConfig(bind, http))
        self.test.addCleanup(frps.stop)
        return bind, http

    async def _goFrpc(self, bind: int):
        frpc = await GoFrp.start(reactor, "frpc", self._clientConfig(bind))
        self.test.addCleanup(frpc.stop)
        await frpc.waitFor("start proxy success", timeout=10, count=PROXY_COUNT)

    async def _go(self) -> None:
        bind, http = await self._goFrps()
        await self._goFrpc(bind)
        self.ports["go"] = http

    async def _oursFrps(self) -> Tuple[int, int]:
        http = free_port()
        config = parse_server_config(self._serverConfig(0, http), "toml")
        config.bind_port = 0
        server = FrpServerService(config, reactor)
        server.startService()
        self.test.addCleanup(server.stopService)
        listening = await server.whenListening()
        return listening.getHost().port, http

    async def _ours_shared(self) -> None:
        """Our frps with vhost_http_port == bind_port (the bind port sniffs HTTP methods)."""
        port = free_port()
        config = parse_server_config(self._serverConfig(port, port), "toml")
        server = FrpServerService(config, reactor)
        server.startService()
        self.test.addCleanup(server.stopService)
        await server.whenListening()
        await self._goFrpc(port)
        self.ports["ours-shared"] = port

    async def _ours_frps(self) -> None:
        bind, http = await self._oursFrps()
        await self._goFrpc(bind)
        self.ports["ours-frps"] = http

    async def _ours_frpc(self) -> None:
        self.ports["ours-frpc"] = await self._oursFrpc(*(await self._goFrps()))

    async def _ours_both(self) -> None:
        self.ports["ours-both"] = await self._oursFrpc(*(await self._oursFrps()))

    async def _oursFrpc(self, bind: int, http: int) -> int:
        client = FrpClientService(parse_client_config(self._clientConfig(bind), "toml"), reactor)
        client.startService()
        self.test.addCleanup(client.stopService)
        await proxiesRunning(client, "web", "api", "wild", "sub", "bob", "anyone", "auth")
        return http


class VhostHTTPInteropTests(TestCase):
    timeout = 90

    async def test_same_answers_as_real_frps(self):
        stacks = Stacks(self)
        await stacks.start()
        mismatches = []
        for method, target, host, extra in REQUESTS:
            answers = {}
            for name, port in stacks.ports.items():
                headers = [("Host", host.format(port=port))] + extra
                result = await fetch(port, method, target, headers)
                answers[name] = summary(result, port)
            label = f"{method} {target} Host: {host} {extra}"
            for name in ("ours-frps", "ours-frpc", "ours-both"):
                if answers[name] != answers["go"]:
                    mismatches.append(f"{name}: {label}\n  ours {answers[name]}\n  go   {answers['go']}")
        # vhostHTTPTimeout = 3: a backend that never answers, through every stack at once
        slow = await defer.gatherResults([
            defer.ensureDeferred(fetch(port, "GET", "/slow", [("Host", "a.test")])) for port in stacks.ports.values()])
        slow = {name: summary(result, 0) for name, result in zip(stacks.ports, slow)}
        for name in ("ours-frps", "ours-frpc", "ours-both"):
            if slow[name] != slow["go"]:
                mismatches.append(f"{name}: /slow\n  ours {slow[name]}\n  go   {slow['go']}")
        self.assertEqual(mismatches, [], "\n".join(mismatches))
        for name, port in stacks.ports.items():
            status, echoed = await websocket_echo(port, "a.test")
            self.assertEqual((name, status), (name, 101))
            self.assertEqual(echoed[-11:-5], b"\x81\x85\x01\x02\x03\x04", name)

    async def test_routing_facts(self):
        """The facts behind the comparison, asserted once through our frps."""
        stacks = Stacks(self)
        await stacks.start(("ours-frps",))
        port = stacks.ports["ours-frps"]

        async def routed(target, host, extra=()):
            result = await fetch(port, "GET", target, [("Host", host)] + list(extra))
            if result.headers.get("x-backend") != "yes":
                return result.status
            return dict((k.lower(), v) for k, v in json.loads(result.body)["headers"])["x-proxy"]

        self.assertEqual(await routed("/", "a.test"), "web")
        self.assertEqual(await routed("/api/1", "a.test"), "api")
        self.assertEqual(await routed("/", "deep.x.wild.test"), "wild")
        self.assertEqual(await routed("/", "sub.example.test"), "sub")
        self.assertEqual(await routed("/", "u.test", [_basic("bob", "pw")]), "bob")
        self.assertEqual(await routed("/", "u.test", [_basic("carol", "")]), "anyone")
        self.assertEqual(await routed("/", "auth.test"), 401)
        self.assertEqual(await routed("/", "auth.test", [_basic("u", "p")]), "auth")
        self.assertEqual(await routed("/", "nope.test"), 404)
        result = await fetch(port, "GET", "/slow", [("Host", "a.test")])
        self.assertEqual(result.status, 504)

    async def test_shared_bind_port(self):
        stacks = Stacks(self)
        await stacks.start(("go", "ours-shared"))
        for method, target, host, extra in REQUESTS[:4] + REQUESTS[10:14]:
            answers = [summary(await fetch(port, method, target, [("Host", host.format(port=port))] + extra), port)
                       for port in (stacks.ports["go"], stacks.ports["ours-shared"])]
            self.assertEqual(answers[1], answers[0], f"{method} {target} {host} {extra}")
        status, _ = await websocket_echo(stacks.ports["ours-shared"], "a.test")
        self.assertEqual(status, 101)

    async def test_streaming_64mib(self):
        stacks = Stacks(self)
        await stacks.start(("ours-frps", "ours-frpc", "ours-both"))
        expected = _digest(7, BIG)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for name, port in stacks.ports.items():
            down = await fetch(port, "GET", f"/dl/{BIG}", [("Host", "a.test")], keep=False)
            self.assertEqual((name, down.status, down.size, down.hash.hexdigest()), (name, 200, BIG, expected))
            up = await fetch(port, "POST", "/up", [("Host", "a.test")], seed=7, nbytes=BIG)
            self.assertEqual((name, json.loads(up.body)), (name, {"sha256": expected, "size": BIG}))
        # nothing held a whole body (ru_maxrss is in KiB on Linux)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        self.assertLess(grown, 32 * 1024)
