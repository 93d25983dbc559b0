"""stcp and sudp visitors without a network: NewVisitorConn bytes, answers, timeouts, layering,
splicing the paused user connection, and the sudp tunnel's life cycle."""

import json

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.client._visitors import RESPONSE_TIMEOUT, SUDP_IDLE_TIMEOUT, STCPVisitor, SUDPVisitor, VisitorManager
from frptw.config import STCPVisitorConfig, parse_client_config
from frptw.errors import ConnectionClosed
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.messages import NewVisitorConnResp, Ping, UDPAddr, UDPPacket, encode_message
from tests.fakes import UDPReactor
from tests.support import readMessages

#: Captured from frpc 0.65 (wire-protocol.md §9.1): user "v", serverUser "u1", serverName "s", sk "sk".
CAPTURED = b'{"run_id":"feedfacefeedface","proxy_name":"u1.s","sign_key":"0f7d8f092b573f8bd9cd53620a986962","timestamp":1795641356,"use_encryption":true}'
CAPTURE_TIME = 1795641356


def clientConfig(visitors: str):
    text = f'serverAddr = "127.0.0.1"\nauth.token = "abc"\nuser = "v"\n{visitors}'
    return parse_client_config(text, "toml")


def visitorSection(kind: str = "stcp", bindPort: int = 7001, extra: str = "transport.useEncryption = true") -> str:
    return f"""
[[visitors]]
name = "vis"
type = "{kind}"
serverName = "s"
serverUser = "u1"
secretKey = "sk"
bindPort = {bindPort}
{extra}
"""


class VisitorTestMixin:
    def setUp(self) -> None:
        self.reactor = UDPReactor()
        self.reactor.advance(CAPTURE_TIME)
        self.opened = []
        self.connectResult = None

    def connect(self, protocol) -> Deferred:
        """The service's connector: connect ``protocol`` to a StringTransport (frps's side)."""
        if self.connectResult is not None:
            return self.connectResult
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 7000))
        protocol.makeConnection(transport)
        self.opened.append((protocol, transport))
        return succeed(protocol)


class STCPVisitorTests(VisitorTestMixin, SynchronousTestCase):
    def makeVisitor(self, section: str = None) -> STCPVisitor:
        cfg = clientConfig(section or visitorSection()).visitors[0]
        self.visitor = STCPVisitor(cfg, "v", self.reactor, self.connect, lambda: "feedfacefeedface")
        self.visitor.listen()
        return self.visitor

    def user(self):
        [(port, factory, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (7001, "127.0.0.1"))
        user = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50000))
        transport = StringTransport()
        user.makeConnection(transport)
        return user, transport

    def test_new_visitor_conn_bytes_match_real_frpc(self) -> None:
        self.makeVisitor()
        _, userTransport = self.user()
        self.assertEqual(userTransport.producerState, "paused")
        [(_, frps)] = self.opened
        self.assertEqual(frps.value(), b"v" + len(CAPTURED).to_bytes(8, "big") + CAPTURED)

    def test_accepted_connection_is_layered_and_spliced(self) -> None:
        self.makeVisitor()
        user, userTransport = self.user()
        [(conn, frps)] = self.opened
        frps.clear()
        peerOut = AESCFBCodec(derive_key("sk"))
        conn.dataReceived(encode_message(NewVisitorConnResp(proxy_name="u1.s")) + peerOut.encode(b"from owner"))
        self.assertEqual(userTransport.value(), b"from owner")
        self.assertEqual(userTransport.producerState, "producing")
        user.dataReceived(b"from user")
        self.assertEqual(AESCFBCodec(derive_key("sk")).decode(frps.value()), b"from user")
        conn.connectionLost(Failure(ConnectionDone()))
        self.assertTrue(userTransport.disconnecting)

    def test_refused_connection_logs_frps_text_and_closes_the_user(self) -> None:
        self.makeVisitor()
        with capturedLogs() as events:
            _, userTransport = self.user()
            [(conn, frps)] = self.opened
            refusal = NewVisitorConnResp(proxy_name="u1.s", error="visitor connection of [u1.s] auth failed")
            conn.dataReceived(encode_message(refusal))
        self.assertTrue(userTransport.disconnecting)
        self.assertTrue(frps.disconnecting)
        lines = [formatEvent(e) for e in events]
        self.assertIn("[vis] start new visitor connection error: visitor connection of [u1.s] auth failed", lines)
        self.assertEqual(self.visitor.users, [])

    def test_no_answer_within_10_s(self) -> None:
        self.makeVisitor()
        _, userTransport = self.user()
        [(_, frps)] = self.opened
        self.reactor.advance(RESPONSE_TIMEOUT - 0.1)
        self.assertFalse(userTransport.disconnecting)
        self.reactor.advance(0.1)
        self.assertTrue(frps.disconnected)  # aborted
        self.assertTrue(userTransport.disconnecting)

    def test_not_logged_in_closes_the_user(self) -> None:
        self.makeVisitor()
        self.connectResult = fail(ConnectionClosed("not logged in to frps"))
        _, userTransport = self.user()
        self.assertTrue(userTransport.disconnecting)

    def test_user_gone_before_the_answer_closes_the_visitor_connection(self) -> None:
        self.makeVisitor()
        user, _ = self.user()
        [(conn, frps)] = self.opened
        user.connectionLost(Failure(ConnectionDone()))
        conn.dataReceived(encode_message(NewVisitorConnResp(proxy_name="u1.s")))
        self.assertTrue(frps.disconnecting)
        self.assertEqual(self.visitor.users, [])

    def test_negative_bind_port_does_not_listen(self) -> None:
        self.makeVisitor(visitorSection(bindPort=-1))
        self.assertEqual(self.reactor.tcpServers, [])
        self.assertIsNone(self.successResultOf(self.visitor.stop()))


class SUDPVisitorTests(VisitorTestMixin, SynchronousTestCase):
    def makeVisitor(self) -> SUDPVisitor:
        cfg = clientConfig(visitorSection("sudp", extra="")).visitors[0]
        self.visitor = SUDPVisitor(cfg, "v", self.reactor, self.connect, lambda: "r1", packetSize=1200)
        self.visitor.listen()
        [self.port] = self.reactor.fakeUdpPorts
        self.assertEqual((self.port.interface, self.port.maxPacketSize), ("127.0.0.1", 1200))
        return self.visitor

    def accept(self, conn) -> None:
        conn.dataReceived(encode_message(NewVisitorConnResp(proxy_name="u1.s")))

    def test_tunnel_opens_on_first_datagram_and_carries_both_ways(self) -> None:
        visitor = self.makeVisitor()
        self.assertEqual(self.opened, [])
        visitor.datagramReceived(b"one", ("127.0.0.1", 40001))
        visitor.datagramReceived(b"two", ("127.0.0.1", 40002))
        [(conn, frps)] = self.opened
        hello = json.loads(frps.value()[9:])
        self.assertEqual((hello["proxy_name"], hello["run_id"]), ("u1.s", "r1"))
        frps.clear()
        self.accept(conn)
        self.assertEqual([(m.c, m.r.port) for m in readMessages(frps.value())], [(b"one", 40001), (b"two", 40002)])
        conn.dataReceived(encode_message(UDPPacket(c=b"back", r=UDPAddr(ip="127.0.0.1", port=40002))))
        self.assertEqual(self.port.written, [(b"back", ("127.0.0.1", 40002))])

    def test_idle_tunnel_closes_and_reopens(self) -> None:
        visitor = self.makeVisitor()
        visitor.datagramReceived(b"one", ("127.0.0.1", 40001))
        [(conn, frps)] = self.opened
        self.accept(conn)
        self.reactor.advance(SUDP_IDLE_TIMEOUT - 1)
        conn.dataReceived(encode_message(Ping()))  # the owner's ping keeps it open
        self.reactor.advance(SUDP_IDLE_TIMEOUT - 1)
        self.assertFalse(frps.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(frps.disconnecting)
        conn.connectionLost(Failure(ConnectionDone()))
        visitor.datagramReceived(b"two", ("127.0.0.1", 40001))
        self.assertEqual(len(self.opened), 2)

    def test_refused_tunnel_is_dropped_and_retried_on_next_datagram(self) -> None:
        visitor = self.makeVisitor()
        visitor.datagramReceived(b"one", ("127.0.0.1", 40001))
        [(conn, frps)] = self.opened
        conn.dataReceived(encode_message(NewVisitorConnResp(error="custom listener for [u1.s] doesn't exist")))
        self.assertIsNone(visitor.channel)
        visitor.datagramReceived(b"two", ("127.0.0.1", 40001))
        self.assertEqual(len(self.opened), 2)

    def test_unreachable_frps_does_not_wedge_the_tunnel(self) -> None:
        """A datagram while frps is down (frpc not logged in: the connector fails at once)
        leaves no tunnel behind; the next datagram, once frps is back, opens one."""
        visitor = self.makeVisitor()
        self.connectResult = fail(ConnectionClosed("not logged in to frps"))
        visitor.datagramReceived(b"lost", ("127.0.0.1", 40001))
        self.assertIsNone(visitor.channel)
        self.connectResult = None
        visitor.datagramReceived(b"one", ("127.0.0.1", 40001))
        [(conn, frps)] = self.opened
        frps.clear()
        self.accept(conn)
        self.assertEqual([m.c for m in readMessages(frps.value())], [b"one"])

    def test_stop_closes_tunnel_and_socket(self) -> None:
        visitor = self.makeVisitor()
        visitor.datagramReceived(b"one", ("127.0.0.1", 40001))
        [(conn, frps)] = self.opened
        self.accept(conn)
        self.successResultOf(visitor.stop())
        self.assertTrue(frps.disconnecting)
        self.assertFalse(self.port.listening)


class VisitorManagerTests(VisitorTestMixin, SynchronousTestCase):
    def test_starts_stcp_and_sudp_and_refuses_xtcp_with_a_log_line(self) -> None:
        config = clientConfig(
            visitorSection()
            + visitorSection("sudp", 7002, "").replace('"vis"', '"vis2"')
            + visitorSection("xtcp", 7003, "").replace('"vis"', '"vis3"')
        )
        with capturedLogs() as events:
            manager = VisitorManager(config, self.reactor, self.connect, lambda: "r1")
            manager.start()
        self.assertEqual(sorted(manager.visitors), ["vis", "vis2"])
        self.assertEqual(len(self.reactor.tcpServers), 1)
        self.assertEqual(len(self.reactor.fakeUdpPorts), 1)
        lines = [formatEvent(e) for e in events]
        self.assertIn("[vis3] xtcp visitors are not supported by this frpc", lines)
        self.successResultOf(manager.stop())
        self.assertFalse(self.reactor.fakeUdpPorts[0].listening)

    def test_sudp_without_bind_port_is_refused_with_a_log_line(self) -> None:
        config = clientConfig(visitorSection("sudp", -1, ""))
        with capturedLogs() as events:
            manager = VisitorManager(config, self.reactor, self.connect, lambda: "r1")
            manager.start()
        self.assertEqual(self.reactor.fakeUdpPorts, [])
        lines = [formatEvent(e) for e in events]
        self.assertIn("[vis] start visitor error: bind port -1: sudp visitors need a UDP port to listen on", lines)
        self.successResultOf(manager.stop())


class VisitorStatusTests(TestCase):
    def test_bind_port_zero_reports_the_port_the_system_chose(self) -> None:
        from twisted.internet import reactor

        manager = VisitorManager(clientConfig(""), reactor, lambda proto: None, lambda: "")
        self.addCleanup(manager.stop)
        visitor = STCPVisitorConfig(name="vis", server_name="s", secret_key="sk", bind_port=0)  # API only: files need a port
        self.assertEqual(manager.add(visitor).status, "new")
        manager.start()
        [status] = manager.statuses()
        self.assertEqual(status.status, "running")
        self.assertIsInstance(status.bind_port, int)
        self.assertGreater(status.bind_port, 0)
        self.assertEqual(manager.visitors["vis"].port.getHost().port, status.bind_port)
