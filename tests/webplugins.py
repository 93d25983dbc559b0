"""Helpers for the HTTP client plugins' tests (static_file, https2http, https2https,
http2https, http2http): a plugin served straight on a loopback port (no frps, no frpc: the
plugin's ``handle`` gets each accepted connection, as frpc hands it a work connection), HTTP
responses parsed with h11, a recording HTTP backend, and the TOML of plugin proxies.
"""

import os
from typing import Dict, List, Optional, Tuple

import h11
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol, connectionDone

from frptw.client.plugins import ConnectionInfo, IClientPlugin
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tls import clientContextFactory, serverContextFactory
from tests.plugintraffic import Talk, talk


class _Handed(SwitchableProtocol):
    def connectionMade(self) -> None:
        super().connectionMade()
        self.factory.accepted.append(self)
        peer = self.transport.getPeer()
        self.factory.plugin.handle(self, ConnectionInfo(peer.host, peer.port, "127.0.0.1", 80))


class PluginOnPort(Factory):
    """Each accepted connection handed to ``plugin`` (with the peer as the user's address)."""

    protocol = _Handed

    def __init__(self, plugin: IClientPlugin) -> None:
        self.plugin = plugin
        self.accepted: List[_Handed] = []


async def servePlugin(testcase, plugin: IClientPlugin) -> Tuple[int, PluginOnPort]:
    """Listen on a loopback port for ``plugin``; returns (port, factory); closed at cleanup."""
    factory = PluginOnPort(plugin)
    listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    testcase.addCleanup(listening.stopListening)
    testcase.addCleanup(lambda: [c.transport.abortConnection() for c in factory.accepted if c.transport.connected])
    return listening.getHost().port, factory


class Response:
    """One parsed HTTP response: status, headers (lower-case names, joined by ``, ``), body."""

    def __init__(self, status: int, headers: List[Tuple[bytes, bytes]], body: bytes) -> None:
        self.status = status
        self.rawHeaders = headers
        self.body = body
        joined: Dict[str, str] = {}
        for name, value in headers:
            key = name.decode("latin-1").lower()
            joined[key] = joined[key] + ", " + value.decode("latin-1") if key in joined else value.decode("latin-1")
        self.headers = joined

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.headers} {self.body[:80]!r}>"


def parseResponses(raw: bytes, methods: Optional[List[bytes]] = None, closed: bool = True) -> List[Response]:
    """Every complete response in ``raw`` (a client's received bytes), in order; ``methods``
    tells h11 which were HEAD (GET by default); ``closed``: the server closed after ``raw``."""
    responses: List[Response] = []
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(raw)
    if closed:
        conn.receive_data(b"")
    index = 0
    while True:
        method = methods[index] if methods and index < len(methods) else b"GET"
        conn.send(h11.Request(method=method, target=b"/", headers=[(b"Host", b"x")]))
        conn.send(h11.EndOfMessage())
        head, body = None, b""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return responses
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                responses.append(Response(head.status_code, head.headers.raw_items(), body))
                break
            else:  # NEED_DATA, ConnectionClosed: no further complete response
                return responses
        if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
            return responses
        conn.start_next_cycle()
        index += 1


def parseResponse(raw: bytes, method: bytes = b"GET") -> Response:
    responses = parseResponses(raw, [method])
    assert responses, f"no complete response in {raw[:200]!r}"
    return responses[0]


class _BackendConnection(Protocol):
    """An HTTP/1.1 backend connection: records each request, answers with the factory's
    ``answer(request, body)`` -> (status, headers, body); keep-alive as the client asks."""

    def connectionMade(self) -> None:
        self.h11 = h11.Connection(h11.SERVER)
        self.factory.connections += 1
        self._request = None
        self._body = b""

    def dataReceived(self, data: bytes) -> None:
        self.h11.receive_data(data)
        self._pump()

    def _pump(self) -> None:
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError:
                self.transport.loseConnection()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
                if event is h11.PAUSED and self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
                    self.h11.start_next_cycle()
                    continue
                return
            if isinstance(event, h11.Request):
                self._request, self._body = event, b""
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._respond()
                if self.h11.our_state is h11.MUST_CLOSE:
                    self.transport.loseConnection()
                    return
                self.h11.start_next_cycle()

    def _respond(self) -> None:
        request = self._request
        self.factory.requests.append((request, self._body))
        status, headers, body = self.factory.answer(request, self._body)
        self.transport.write(self.h11.send(h11.Response(status_code=status, headers=headers
                                                        + [(b"Content-Length", b"%d" % len(body))])))
        self.transport.write(self.h11.send(h11.Data(data=body)) if body else b"")
        self.transport.write(self.h11.send(h11.EndOfMessage()))

    def connectionLost(self, reason=connectionDone) -> None:
        pass


def echoAnswer(request: h11.Request, body: bytes):
    """The default backend answer: 200 with the request line and body echoed."""
    return 200, [(b"Content-Type", b"text/plain"), (b"X-Backend", b"yes")], \
        request.method + b" " + request.target + b"\n" + body


class RecordingBackend(Factory):
    """An HTTP/1.1 backend that records (h11.Request, body) of every request."""

    protocol = _BackendConnection

    def __init__(self, answer=echoAnswer) -> None:
        self.answer = answer
        self.requests: List[Tuple[h11.Request, bytes]] = []
        self.connections = 0

    def headersSeen(self, index: int = -1) -> Dict[str, str]:
        """The headers (lower-case names) of request ``index``, repeated ones joined."""
        return Response(0, self.requests[index][0].headers.raw_items(), b"").headers


class _UpgradeConnection(Protocol):
    """Answers an upgrade request with 101, then echoes raw bytes (a websocket server's shape)."""

    def connectionMade(self) -> None:
        self.h11 = h11.Connection(h11.SERVER)
        self.tunnel = False

    def dataReceived(self, data: bytes) -> None:
        if self.tunnel:
            self.transport.write(data)
            return
        self.h11.receive_data(data)
        event = self.h11.next_event()
        if isinstance(event, h11.Request):
            self.factory.upgradeHeads.append({k.lower(): v for k, v in event.headers.raw_items()})
            self.transport.write(self.h11.send(h11.InformationalResponse(
                status_code=101, headers=[(b"Connection", b"Upgrade"), (b"Upgrade", b"websocket")])))
            self.tunnel = True
            leftover = self.h11.trailing_data[0]
            if leftover:
                self.transport.write(leftover)


class UpgradeBackend(Factory):
    """A backend that switches every connection to an echo after a 101; records the heads."""

    protocol = _UpgradeConnection

    def __init__(self) -> None:
        self.upgradeHeads: List[Dict[bytes, bytes]] = []


async def listenBackend(testcase, factory: Factory, tls: bool = False) -> str:
    """Serve ``factory`` on loopback (TLS with a self-signed certificate when ``tls``);
    returns its ``host:port``; stopped at cleanup."""
    if tls:
        listening = reactor.listenSSL(0, factory, serverContextFactory(), interface="127.0.0.1")
    else:
        listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    testcase.addCleanup(listening.stopListening)
    return f"127.0.0.1:{listening.getHost().port}"


async def tlsTalk(testcase, port: int, send: bytes, serverName: str = "orig.test") -> Talk:
    """:func:`tests.plugintraffic.talk` over TLS (SNI ``serverName``, certificate not checked)."""
    proto = Talk()
    endpoint = wrapClientTLS(clientContextFactory(serverName), TCP4ClientEndpoint(reactor, "127.0.0.1", port))
    await connectProtocol(endpoint, proto)
    testcase.addCleanup(lambda: proto.transport.connected and proto.transport.abortConnection())
    proto.transport.write(send)
    return proto


async def maybeTLSTalk(testcase, port: int, tls: bool, send: bytes) -> Talk:
    return await tlsTalk(testcase, port, send) if tls else await talk(testcase, port, send)


def makeRoot(base: str) -> str:
    """A directory for static_file: a.txt, page.html, sub/index.html, dir2/ with an odd name."""
    root = os.path.join(os.path.abspath(base), "root")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "dir2"))
    for path, data in (("a.txt", b"hello\n"), ("sub/index.html", b"idx\n"), ("dir2/we ird&<.txt", b"1\n"),
                       ("page.html", b"<b>x</b>")):
        with open(os.path.join(root, path), "wb") as f:
            f.write(data)
    return root
