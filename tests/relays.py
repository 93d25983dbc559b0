"""Middle boxes for transport tests, on loopback: a TLS terminator (what a wss frpc needs in
front of frps, as frp's own e2e tests arrange it), forward proxies frpc dials through
(an HTTP CONNECT proxy and a SOCKS5 proxy, both requiring credentials and counting the
tunnels they opened), and :class:`StallRelay`, a network between frpc and frps that can stop
forwarding without closing anything (the chaos tests).

Each but the stall relay is a Twisted server that relays bytes with
:func:`frptw.transport.splice.splice`, so backpressure holds through it as through frptw
itself.
"""

import base64
from typing import Dict, List, Optional, Set
from urllib.parse import quote, urlsplit

import h11
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol, connectionDone
from zope.interface import implementer

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
def tlsTerminator(testCase, targetPort: int, serverName: str = "frps.test", ipAddresses=(), alpn=()):
    """A TLS server on a free loopback port that forwards the plain bytes to ``targetPort``
    (stopped at cleanup); its certificate names ``serverName`` (and ``ipAddresses``), and it
    picks from ``alpn`` (Twisted's server answers a client offering ALPN it was given none for
    with an internal-error alert; Go's http.Transport offers h2 and http/1.1).  Fires with the
    forwarder (``.port``, ``.connections``) and the CA file that verifies it."""
    ca = TestCA(tempDir(testCase))
    certificate, key = ca.issue(serverName, dnsNames=[serverName], ipAddresses=ipAddresses, usage=SERVER_AUTH)
    pair = ssl.PrivateCertificate.loadPEM(certificate + key)
    options = ssl.CertificateOptions(privateKey=pair.privateKey.original, certificate=pair.original,
                                     acceptableProtocols=list(alpn) or None)
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
    """CONNECT tunnels; an absolute-form request (``POST http://host:port/path``) is sent on to
    ``host:port`` on a connection of its own (counted in ``tunnels`` too)."""

    def __init__(self, proxy: "ForwardProxy") -> None:
        super().__init__(proxy)
        self._h11 = h11.Connection(h11.SERVER)

    def negotiate(self, data: bytes) -> None:
        self._h11.receive_data(data)
        event = self._h11.next_event()
        if event is h11.NEED_DATA:
            return
        forwarded = isinstance(event, h11.Request) and event.target.lower().startswith(b"http://")
        if not isinstance(event, h11.Request) or (event.method != b"CONNECT" and not forwarded):
            self.refuse(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n", "not a CONNECT")
            return
        self._proxy.requests.append(event)
        expected = b"Basic " + base64.b64encode(b"%s:%s" % self._proxy.credentials)
        if dict(event.headers).get(b"proxy-authorization") != expected:
            self.refuse(b'HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\n'
                        b"Content-Length: 0\r\n\r\n", "bad credentials")
            return
        badGateway = b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"
        if forwarded:  # sent on in origin form, without the proxy's credentials
            target = urlsplit(event.target.decode())
            head = b"%s %s HTTP/1.1\r\n" % (event.method, (target.path or "/").encode() + (
                b"?" + target.query.encode() if target.query else b""))
            head += b"".join(b"%s: %s\r\n" % (name, value) for name, value in event.headers
                             if name != b"proxy-authorization")
            self.open(target.hostname, target.port or 80, b"", badGateway, head + b"\r\n" + self._h11.trailing_data[0])
            return
        host, _, port = event.target.decode().rpartition(":")
        self.open(host.strip("[]"), int(port), b"HTTP/1.1 200 Connection established\r\n\r\n", badGateway,
                  self._h11.trailing_data[0])


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


# -- a network that stalls -----------------------------------------------------------------------


class _StallSide(Protocol):
    """One end of a :class:`_StallPair` (the accepted connection, or the one dialled on)."""

    def __init__(self, pair: "_StallPair") -> None:
        self.pair = pair

    def connectionMade(self) -> None:
        self.pair.made(self)

    def dataReceived(self, data: bytes) -> None:
        self.pair.carry(self, data)

    def connectionLost(self, reason=connectionDone) -> None:
        self.pair.lost(self)


@implementer(IPushProducer)
class _Reading:
    """The reading of a transport as the producer of the other end's writes.  Not the
    transport itself: a transport that closes stops its producer, which for a transport means
    closing it, and a stalled relay must not pass a close on."""

    def __init__(self, transport) -> None:
        self._transport = transport

    def pauseProducing(self) -> None:
        self._transport.pauseProducing()

    def resumeProducing(self) -> None:
        self._transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


class _StallPair:
    """A relayed connection.  While frozen it still reads both ends (so it sees an end close,
    as :attr:`closedWhileFrozen` records) but delivers nothing: the bytes and the close wait
    for :meth:`thaw`, like segments a broken link will retransmit once it heals.  What it
    holds is what the test's peers send during the stall: heartbeats, a few KiB."""

    def __init__(self, relay: "StallRelay") -> None:
        self.relay = relay
        self.near = _StallSide(self)
        self.far = _StallSide(self)
        self.frozen = relay.stalled
        self._held: Dict[_StallSide, List[bytes]] = {self.near: [], self.far: []}
        self._closed: Set[_StallSide] = set()
        self.connected: Set[_StallSide] = set()
        #: Which ends ("near": the dialling client's, "far": the target's) closed while frozen.
        self.closedWhileFrozen: Set[str] = set()

    def other(self, side: _StallSide) -> _StallSide:
        return self.far if side is self.near else self.near

    def made(self, side: _StallSide) -> None:
        self.connected.add(side)
        if side is self.far and self.near in self.connected:
            side.transport.registerProducer(_Reading(self.near.transport), True)
            self.near.transport.registerProducer(_Reading(side.transport), True)
        self._deliver()

    def carry(self, side: _StallSide, data: bytes) -> None:
        self._held[side].append(data)
        self._deliver()

    def lost(self, side: _StallSide) -> None:
        self._closed.add(side)
        self.connected.discard(side)
        if not self.connected:
            self.relay.live.discard(self)
        if self.frozen:
            self.closedWhileFrozen.add("near" if side is self.near else "far")
        self._deliver()

    def thaw(self) -> None:
        self.frozen = False
        self._deliver()

    def abort(self) -> None:
        for side in list(self.connected):
            side.transport.abortConnection()

    def _deliver(self) -> None:
        if self.frozen or len(self.connected | self._closed) < 2:
            return
        for side in (self.near, self.far):
            target = self.other(side)
            chunks, self._held[side] = self._held[side], []
            if target in self.connected:
                for chunk in chunks:
                    target.transport.write(chunk)
            if side in self._closed and target in self.connected:
                target.transport.unregisterProducer()
                target.transport.loseConnection()


class StallRelay(Factory):
    """A TCP relay from a free loopback port to ``targetPort`` that can :meth:`stall`: every
    relayed connection stops delivering, both ways, without closing, and new connections wait
    in the listen backlog (their dial succeeds, nothing answers), as when the network between
    frpc and frps breaks.  :meth:`resume` heals it: new connections go through again and the
    old ones deliver what they held, or (``existing=False``) stay black holes, as when the
    path comes back for new flows only (a NAT that lost its mappings).

    ``pairs`` is every connection relayed, in order; :meth:`listen` starts it."""

    def __init__(self, reactor, targetPort: int) -> None:
        self.reactor = reactor
        self.targetPort = targetPort
        self.stalled = False
        self.pairs: List[_StallPair] = []
        self.live: Set[_StallPair] = set()
        self.port = 0
        self._listening = None

    @classmethod
    async def listen(cls, reactor, targetPort: int) -> "StallRelay":
        relay = cls(reactor, targetPort)
        relay._listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(relay)
        relay.port = relay._listening.getHost().port
        return relay

    def buildProtocol(self, addr) -> _StallSide:
        pair = _StallPair(self)
        self.pairs.append(pair)
        self.live.add(pair)
        d = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.targetPort).connect(
            Factory.forProtocol(lambda: pair.far))
        d.addErrback(lambda _: pair.near.transport.abortConnection() if pair.near.transport else None)
        return pair.near

    def stall(self) -> None:
        """Stop forwarding, both ways, on every connection; hold new ones in the backlog."""
        self.stalled = True
        self._listening.stopReading()
        for pair in self.live:
            pair.frozen = True

    def resume(self, existing: bool = True) -> None:
        """Forward again: new connections always; the stalled ones only if ``existing``."""
        self.stalled = False
        self._listening.startReading()
        if existing:
            for pair in list(self.live):
                pair.thaw()

    def frozenClosedBy(self, end: str) -> Optional[_StallPair]:
        """The first connection whose ``end`` ("near" or "far") closed while it was frozen."""
        return next((pair for pair in self.pairs if end in pair.closedWhileFrozen), None)

    def stop(self) -> Deferred:
        for pair in list(self.live):
            pair.abort()
        return self._listening.stopListening()
