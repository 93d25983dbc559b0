"""Middle boxes for transport tests, on loopback: a TLS terminator (what a wss frpc needs in
front of frps, as frp's own e2e tests arrange it), and forward proxies frpc dials through
(an HTTP CONNECT proxy and a SOCKS5 proxy, both requiring credentials and counting the
tunnels they opened).

Each is a Twisted server that relays bytes with :func:`frptw.transport.splice.splice`, so
backpressure holds through it as through frptw itself.
"""

from typing import List, Set

from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ClientEndpoint
from twisted.internet.protocol import Factory, connectionDone

from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
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
