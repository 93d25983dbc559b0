"""Interop: our frpc's udp proxy and stcp/sudp proxies and visitors, with the real Go frp 0.65.

* udp: our frpc serves a udp proxy through the real frps; 1000 paced datagrams up to 1400 bytes
  must all come back from a UDP echo server.
* stcp / sudp: every mix of our frpc and the real frpc as owner and visitor, through the real
  frps: bulk TCP traffic (sha256-checked) for stcp, echoed datagrams for sudp.
* udp with ``transport.proxyProtocolVersion = "v2"``: every datagram reaching the local service
  starts with the PROXY header of its user, from our frpc as from the real one.
* refusals: wrong secret key, a user not in allow_users, an unknown server name; the visitor
  logs frps's text and later connections still work.
"""

import socket

from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError, ensureDeferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol
from twisted.trial.unittest import TestCase

from frptw.client.proxyprotocol import proxy_protocol_header
from tests.interop import GoAndOursMixin, secretProxy, udpProxy, visitor
from tests.support import LogCapture, free_port
from tests.traffic import exchange
from tests.udptraffic import BIG_REPLY, UDPProbe, udp_exchange, wait_for_echo

STCP_CONNECTIONS = 20
STCP_PER_CONNECTION = 420 * 1024  # 20 x 420 KiB = 8.2 MiB each way


class UDPProxyTests(GoAndOursMixin, TestCase):
    @inlineCallbacks
    def check(self, frpsExtra: str = "", clientExtra: str = "", proxyExtra: str = ""):
        yield self.startFrps(frpsExtra)
        echo = self.udpEcho()
        remote = free_port()
        service = yield self.ours("u1", udpProxy(echo.port, remote, proxyExtra), clientExtra)
        yield wait_for_echo(reactor, remote)
        self.assertEqual(service.proxyStatus("dns").status, "running")
        echoed, lost, corrupt = yield udp_exchange(reactor, remote, 1000)
        self.assertEqual((echoed, lost, corrupt), (1000, 0, 0))

    def test_defaults(self):
        return self.check()

    def test_mux_off_encrypted_compressed(self):
        return self.check(
            frpsExtra="transport.tcpMux = false",
            clientExtra="transport.tcpMux = false",
            proxyExtra="transport.useEncryption = true\ntransport.useCompression = true",
        )

    @inlineCallbacks
    def test_oversized_reply_is_dropped_and_logged(self):
        """A reply too big for one v1 message is dropped with a log line; the proxy goes on."""
        logs = LogCapture(self)
        yield self.startFrps()
        echo = self.udpEcho()
        remote = free_port()
        yield self.ours("u1", udpProxy(echo.port, remote), "udpPacketSize = 9000")
        yield wait_for_echo(reactor, remote)
        sender = reactor.listenUDP(0, DatagramProtocol(), interface="127.0.0.1")
        self.addCleanup(sender.stopListening)
        sender.write(b"BIG:", ("127.0.0.1", remote))
        yield ensureDeferred(logs.waitFor(f"dropping a {BIG_REPLY}-byte datagram"))
        result = yield udp_exchange(reactor, remote, 50)
        self.assertEqual(result, (50, 0, 0))

    @inlineCallbacks
    def check_proxy_protocol_on_every_datagram(self, ours: bool):
        """frp 0.65's udp.Forwarder puts the header before each datagram, not a user's first only."""
        yield self.startFrps()
        echo = self.udpEcho()
        remote = free_port()
        proxy = udpProxy(echo.port, remote, 'transport.proxyProtocolVersion = "v2"')
        if ours:
            yield self.ours("u1", proxy)
        else:
            yield self.go("u1", proxy, ready="start proxy success")
        target = ("127.0.0.1", remote)
        ready = UDPProbe.listen(reactor)
        self.addCleanup(ready.stop)
        for _ in range(50):  # frps sets the work connection up a moment after the proxy
            try:
                yield ready.ask(target, b"ready?", timeout=0.2)
                break
            except TimeoutError:
                continue
        probe = UDPProbe.listen(reactor)  # a user of its own: no late answer to "ready?"
        self.addCleanup(probe.stop)
        user = probe.listening.getHost().port
        header = proxy_protocol_header("v2", "127.0.0.1", user, "127.0.0.1", echo.port, transport="udp")
        for payload in (b"one", b"two", b"three"):
            answer = yield probe.ask(target, payload)
            self.assertEqual(answer, header + payload)
        mine = [data for data in echo.received if not data.endswith(b"ready?")]
        self.assertEqual(mine, [header + b"one", header + b"two", header + b"three"])

    def test_proxy_protocol_on_every_datagram_ours(self):
        return self.check_proxy_protocol_on_every_datagram(ours=True)

    def test_proxy_protocol_on_every_datagram_go(self):
        return self.check_proxy_protocol_on_every_datagram(ours=False)


class STCPTests(GoAndOursMixin, TestCase):
    @inlineCallbacks
    def test_our_owner_go_visitor(self):
        yield self.startFrps()
        server = yield self.tcpEcho()
        yield self.ours("owner", secretProxy("stcp", server.port, extra="transport.useEncryption = true"))
        port = free_port()
        yield self.go("v", visitor("stcp", port, extra="transport.useCompression = true"), ready="start visitor success")
        moved = yield exchange(reactor, port, STCP_PER_CONNECTION, STCP_CONNECTIONS, timeout=25)
        self.assertEqual(moved, STCP_PER_CONNECTION * STCP_CONNECTIONS)

    @inlineCallbacks
    def check_go_owner_our_visitor(self, visitorExtra: str = "", clientExtra: str = ""):
        yield self.startFrps("transport.tcpMux = false" if "tcpMux = false" in clientExtra else "")
        server = yield self.tcpEcho()
        yield self.go("owner", secretProxy("stcp", server.port), ready="start proxy success", extra=clientExtra)
        port = free_port()
        yield self.ours("v", visitor("stcp", port, extra=visitorExtra), clientExtra)
        moved = yield exchange(reactor, port, STCP_PER_CONNECTION, STCP_CONNECTIONS, timeout=25)
        self.assertEqual(moved, STCP_PER_CONNECTION * STCP_CONNECTIONS)

    def test_go_owner_our_visitor(self):
        return self.check_go_owner_our_visitor()

    def test_go_owner_our_visitor_encrypted_compressed_no_mux(self):
        return self.check_go_owner_our_visitor(
            "transport.useEncryption = true\ntransport.useCompression = true", "transport.tcpMux = false"
        )

    @inlineCallbacks
    def refused(self, text: str, sk: str = "s3cret", allow: str = '["*"]', serverName: str = "sec"):
        logs = LogCapture(self)
        yield self.startFrps()
        server = yield self.tcpEcho()
        yield self.go("owner", secretProxy("stcp", server.port, allow=allow), ready="start proxy success")
        port = free_port()
        bad = visitor("stcp", port, sk=sk, serverName=serverName)
        goodPort = free_port()
        good = visitor("stcp", goodPort).replace('name = "vis"', 'name = "good"')
        yield self.ours("v", bad + good)
        closed = yield self.connectAndWaitClose(port)
        self.assertEqual(closed, b"")
        yield ensureDeferred(logs.waitFor(text))
        lines = logs.texts()
        self.assertTrue(any("[vis] start new visitor connection error" in line for line in lines), lines)
        if allow == '["*"]':  # nothing else disturbed: the good visitor still works
            moved = yield exchange(reactor, goodPort, 64 * 1024, 2, timeout=10)
            self.assertEqual(moved, 128 * 1024)

    @inlineCallbacks
    def connectAndWaitClose(self, port: int):
        """Connect to a visitor and wait until it closes us; fire with what we received."""
        class Probe(Protocol):
            def __init__(self):
                self.data = b""
                self.closed = Deferred()

            def connectionMade(self):
                self.transport.write(b"hello")

            def dataReceived(self, data):
                self.data += data

            def connectionLost(self, reason):
                self.closed.callback(self.data)

        probe = Probe()
        yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(lambda: probe))
        data = yield probe.closed.addTimeout(12, reactor)
        return data

    def test_wrong_secret_key(self):
        return self.refused("visitor connection of [owner.sec] auth failed", sk="wrong")

    def test_user_not_allowed(self):
        return self.refused("user [v] not allowed", allow='["someone"]')

    def test_unknown_server_name(self):
        return self.refused("doesn't exist", serverName="nope")


class SUDPTests(GoAndOursMixin, TestCase):
    @inlineCallbacks
    def check(self, ownerOurs: bool, visitorOurs: bool, extra: str = ""):
        yield self.startFrps()
        echo = self.udpEcho(prefix=b"E:")
        proxy = secretProxy("sudp", echo.port, extra=extra)
        if ownerOurs:
            yield self.ours("owner", proxy)
        else:
            yield self.go("owner", proxy, ready="start proxy success")
        port = free_port(socket.SOCK_DGRAM)
        vis = visitor("sudp", port, extra=extra)
        if visitorOurs:
            yield self.ours("v", vis)
        else:
            yield self.go("v", vis, ready="start visitor success")
        yield wait_for_echo(reactor, port, prefix=b"E:")
        echoed, lost, corrupt = yield udp_exchange(reactor, port, 300, prefix=b"E:")
        self.assertEqual((echoed, lost, corrupt), (300, 0, 0))

    def test_our_owner_go_visitor(self):
        return self.check(True, False)

    def test_go_owner_our_visitor(self):
        return self.check(False, True)

    def test_ours_both_encrypted_compressed(self):
        return self.check(True, True, "transport.useEncryption = true\ntransport.useCompression = true")
