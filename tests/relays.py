"""Middle boxes for transport tests, on loopback: a TLS terminator (what a wss frpc needs in
front of frps, as frp's own e2e tests arrange it), and forward proxies frpc dials through
(an HTTP CONNECT proxy and a SOCKS5 proxy, both requiring credentials and counting the
tunnels they opened).

Each is a Twisted server that relays bytes with :func:`frptw.transport.splice.splice`, so
backpressure holds through it as through frptw itself.
"""

import base64
from typing import List, Set
from urllib.parse import quote

import h11
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, connectionDone

from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.socks5 import Close, Send, Socks5Server, reply
from tests.pki import SERVER_AUTH, TestCA
from tests.support import tempDir


class _Relay(SwitchableProtocol):
    """One relayed connection: holds what arrives until the far side is connected."""

    def __init__(self, owner: "_Forwarder") -> None:
        super().__init__()
        self._owner = owner

    def connectionMade(self) -> None:
        super().connectionMade()
        self._owner.connections.append(self)
        self._owner.live.add(self)
        far = SwitchableProtocol()
        d = TCP4ClientEndpoint(reactor, "127.0.0.1", self._owner.targetPort).connect(Factory.forProtocol(lambda: far))
        d.addCallbacks(lambda _: splice(self, far), lambda _: self.transport.abortConnection())

    def connectionLost(self, reason=connectionDone) -> None:
        self._owner.live.discard(self)
        super().connectionLost(reason)


class _Forwarder(Factory):
    def __init__(self, targetPort: int) -> None:
        self.targetPort = targetPort
        #: Every connection accepted, and those still open.
        self.connections: List[_Relay] = []
        self.live: Set[_Relay] = set()
        self.port = 0
        self._listening = None

    def buildProtocol(self, addr) -> _Relay:
        return _Relay(self)

    def stop(self) -> Deferred:
        for conn in list(self.live):
            conn.transport.abortConnection()
        return self._listening.stopListening()


@inlineCallbacks
def tlsTerminator(testCase, targetPort: int, serverName: str = "frps.test"):
    """A TLS server on a free loopback port that forwards the plain bytes to ``targetPort``
    (stopped at cleanup); its certificate names ``serverName``.  Fires with the forwarder
    (``.port``, ``.connections``) and the CA file that verifies it."""
    ca = TestCA(tempDir(testCase))
    certificate, key = ca.issue(serverName, dnsNames=[serverName], usage=SERVER_AUTH)
    options = ssl.PrivateCertificate.loadPEM(certificate + key).options()
    forwarder = _Forwarder(targetPort)
    forwarder._listening = yield SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(forwarder)
    forwarder.port = forwarder._listening.getHost().port
    testCase.addCleanup(forwarder.stop)
    return forwarder, ca.ca


class _TunnelConnection(SwitchableProtocol):
    """One client of a test forward proxy: negotiates (subclass), then dials the target and
    splices; counts the tunnels it opened on the proxy."""

    def __init__(self, proxy: "ForwardProxy") -> None:
        super().__init__()
        self._proxy = proxy
        self._negotiating = True

    def connectionMade(self) -> None:
        super().connectionMade()
        self._proxy.live.add(self)

    def connectionLost(self, reason=connectionDone) -> None:
        self._proxy.live.discard(self)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self._negotiating:
            self.negotiate(data)
        else:
            super().dataReceived(data)

    def negotiate(self, data: bytes) -> None:
        raise NotImplementedError

    def refuse(self, answer: bytes, why: str) -> None:
        self._negotiating = False
        self._proxy.refusals.append(why)
        self.transport.write(answer)
        self.transport.loseConnection()

    def open(self, host: str, port: int, success: bytes, failure: bytes, leftover: bytes) -> None:
        """Dial ``host:port``; answer ``success`` and splice, or ``failure`` and close."""
        self._negotiating = False
        self.hold(leftover)
        far = SwitchableProtocol()

        def connected(_) -> None:
            self._proxy.tunnels.append((host, port))
            self.transport.write(success)
            splice(self, far)

        d = TCP4ClientEndpoint(reactor, host, port).connect(Factory.forProtocol(lambda: far))
        d.addCallbacks(connected, lambda _: self.refuse(failure, f"cannot reach {host}:{port}"))


class _ConnectTunnel(_TunnelConnection):
    def __init__(self, proxy: "ForwardProxy") -> None:
        super().__init__(proxy)
        self._h11 = h11.Connection(h11.SERVER)

    def negotiate(self, data: bytes) -> None:
        self._h11.receive_data(data)
        event = self._h11.next_event()
        if event is h11.NEED_DATA:
            return
        if not isinstance(event, h11.Request) or event.method != b"CONNECT":
            self.refuse(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", "not a CONNECT")
            return
        self._proxy.requests.append(event)
        expected = b"Basic " + base64.b64encode(b"%s:%s" % self._proxy.credentials)
        if dict(event.headers).get(b"proxy-authorization") != expected:
            self.refuse(b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n'
                        b"Content-Length: 0\r\n\r\n", "bad credentials")
            return
        host, _, port = event.target.decode().rpartition(":")
        self.open(host.strip("[]"), int(port), b"HTTP/1.1 200 Connection established\r\n\r\n",
                  b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", self._h11.trailing_data[0])


class _Socks5Tunnel(_TunnelConnection):
    def __init__(self, proxy: "ForwardProxy") -> None:
        super().__init__(proxy)
        self._machine = Socks5Server(proxy.credentials)

    def negotiate(self, data: bytes) -> None:
        for event in self._machine.receive_data(data):
            if isinstance(event, Send):
                self.transport.write(event.data)
            elif isinstance(event, Close):
                self.refuse(b"", event.reason)
            else:
                self.open(event.host, event.port, reply(0, "127.0.0.1", 0), reply(5),
                          self._machine.take_unconsumed())


class ForwardProxy(Factory):
    """A forward proxy on a free loopback port (``kind`` "http": CONNECT with Basic
    credentials; "socks5": RFC 1929 credentials) that records each tunnel it opened
    (``tunnels``: target host and port), each CONNECT request (``requests``, http) and each
    refusal (``refusals``)."""

    def __init__(self, kind: str, credentials=(b"proxyuser", b"proxy pass")) -> None:
        self.kind = kind
        self.credentials = credentials
        self.tunnels: List[tuple] = []
        self.requests: List[h11.Request] = []
        self.refusals: List[str] = []
        self.live: Set[_TunnelConnection] = set()
        self.port = 0
        self._listening = None

    def buildProtocol(self, addr) -> _TunnelConnection:
        return _ConnectTunnel(self) if self.kind == "http" else _Socks5Tunnel(self)

    def url(self, username: str = "proxyuser", password: str = "proxy pass") -> str:
        return f"{self.kind}://{quote(username)}:{quote(password)}@127.0.0.1:{self.port}"

    @classmethod
    @inlineCallbacks
    def listen(cls, testCase, kind: str):
        proxy = cls(kind)
        proxy._listening = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(proxy)
        proxy.port = proxy._listening.getHost().port
        testCase.addCleanup(proxy.stop)
        return proxy

    def stop(self) -> Deferred:
        for conn in list(self.live):
            conn.transport.abortConnection()
        return self._listening.stopListening()
