"""frpc's xtcp pieces without NATs: the NatHoleResp exchange, STUN discovery (our STUN server,
garbage, timeouts), one punching run per role on task.Clock, and ``frptw nathole discover``
next to Go's ``frpc nathole discover`` against the same STUN server."""

import io

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.cli import natholeDiscover
from frptw.client._holesocket import DiscoveryError, HoleSocket, discover, openHoleSocket
from frptw.client._nathole_exchange import NatHoleError, NatHoleExchange
from frptw.client._punch import Punch, PunchError
from frptw.errors import ConnectionClosed
from frptw.wire import messages as m
from frptw.wire import stun
from frptw.wire.crypto import derive_key
from frptw.wire.nathole import decode_probe, encode_probe
from tests.gofrp import GoFrp
from tests.stunserver import StunServer
from tests.support import LogCapture

KEY = derive_key("sk")


class FakeUDP:
    """The transport of a HoleSocket in memory: what was sent, with the TTL it left with."""

    def __init__(self, port: int = 40000) -> None:
        self.sent: list = []
        self.port = port
        self.ttl = 64

    def write(self, data, addr):
        self.sent.append((data, addr, self.ttl))

    def getHost(self):
        from twisted.internet.address import IPv4Address

        return IPv4Address("UDP", "0.0.0.0", self.port)

    def getHandle(self):
        fake = self

        class Sock:
            def getsockopt(self, *a):
                return fake.ttl

            def setsockopt(self, level, option, value):
                fake.ttl = value

        return Sock()

    def stopListening(self):
        self.stopped = True


def fakeHole(port: int = 40000) -> HoleSocket:
    hole = HoleSocket()
    hole.makeConnection(FakeUDP(port))
    return hole


class ExchangeTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.sent: list = []
        self.online = True

        def send(message):
            if not self.online:
                raise ConnectionClosed("not logged in to frps")
            self.sent.append(message)

        self.exchange = NatHoleExchange(self.clock, send)

    def test_answer_by_transaction_id(self):
        d = self.exchange.request(m.NatHoleVisitor(transaction_id="1t", pre_check=True))
        self.exchange.answered(m.NatHoleResp(transaction_id="other"))
        self.assertNoResult(d)
        self.exchange.answered(m.NatHoleResp(transaction_id="1t", error="x"))
        self.assertEqual(self.successResultOf(d).error, "x")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout_and_offline(self):
        d = self.exchange.request(m.NatHoleClient(transaction_id="2t"))
        self.clock.advance(5)
        self.assertEqual(str(self.failureResultOf(d, NatHoleError).value),
                         "get natHoleRespMsg error: context deadline exceeded")
        self.online = False
        self.failureResultOf(self.exchange.request(m.NatHoleClient(transaction_id="3t")), NatHoleError)
        self.exchange.send(m.NatHoleReport(sid="s"))  # dropped quietly


class DiscoveryTests(TestCase):
    timeout = 20

    async def test_two_mapped_addresses_from_our_stun_server(self):
        server = StunServer.listen(reactor, ("127.0.0.1", 0), ("127.0.0.2", 0))
        self.addCleanup(server.stop)
        hole = openHoleSocket(reactor, interface="127.0.0.1")
        self.addCleanup(hole.close)
        mapped = await discover(reactor, hole, server.address)
        self.assertEqual(mapped, [f"127.0.0.1:{hole.localPort}"] * 2)
        self.assertEqual(len(server.requests), 2)

    def test_garbage_is_dropped_with_one_line_and_a_timeout_is_frps_text(self):
        clock, hole, log = Clock(), fakeHole(), LogCapture(self)
        d = Deferred.fromCoroutine(discover(clock, hole, "203.0.113.1:3478"))
        request = stun.decode(hole.transport.sent[0][0])
        for _ in range(3):
            hole.datagramReceived(b"\x00garbage" * 4, ("203.0.113.9", 1))
        hole.datagramReceived(stun.encode(stun.binding_response(stun.binding_request(), ("1.2.3.4", 5))),
                              ("203.0.113.1", 3478))  # another transaction
        self.assertNoResult(d)
        self.assertEqual(len(log.reported(0, ("frptw.client",))), 1)
        hole.datagramReceived(stun.encode(stun.binding_response(request, ("198.51.100.2", 5), ("203.0.113.2", 3479))),
                              ("203.0.113.1", 3478))
        self.assertEqual(hole.transport.sent[1][1], ("203.0.113.2", 3479))
        clock.advance(3)
        self.assertEqual(str(self.failureResultOf(d, DiscoveryError).value), "wait response from stun server timeout")


def resp(role: str, **behavior) -> m.NatHoleResp:
    return m.NatHoleResp(transaction_id="t", sid="S", protocol="quic", candidate_addrs=["198.51.100.130:5000"],
                         assisted_addrs=["192.0.2.130:5000"],
                         detect_behavior=m.NatHoleDetectBehavior(role=role, **behavior))


class PunchTests(SynchronousTestCase):
    def setUp(self):
        self.clock, self.hole, self.log = Clock(), fakeHole(), LogCapture(self)

    def test_receiver_probes_with_low_ttl_and_answers_the_first_probe(self):
        d = Punch(self.clock, self.hole, resp("receiver", ttl=7, read_timeout=5000), KEY, "[v]").run()
        [(data, addr, ttl)] = self.hole.transport.sent
        self.assertEqual((addr, ttl, decode_probe(KEY, data).sid), (("198.51.100.130", 5000), 7, "S"))
        self.assertEqual(self.hole.transport.ttl, 64)  # only that datagram had TTL 7
        peer = ("198.51.100.130", 5001)
        self.hole.datagramReceived(encode_probe(KEY, "x", "wrong", False, 0), peer)
        self.hole.datagramReceived(b"junk" * 10, peer)
        self.assertNoResult(d)
        self.hole.datagramReceived(encode_probe(KEY, "x", "S", False, 4), peer)
        self.assertEqual(self.successResultOf(d), (self.hole, peer))
        answer, to, ttl = self.hole.transport.sent[-1]
        self.assertEqual((to, ttl, decode_probe(KEY, answer).response), (peer, 64, True))
        self.assertEqual(len(self.log.reported(0, ("frptw.client",))), 2)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_sender_waits_its_delay_probes_assisted_then_candidates_and_needs_a_response(self):
        d = Punch(self.clock, self.hole, resp("sender", send_delay_ms=2000, read_timeout=5000), KEY, "[o]").run()
        self.assertEqual(self.hole.transport.sent, [])
        self.clock.advance(2)
        self.assertEqual([a for _, a, _ in self.hole.transport.sent], [("192.0.2.130", 5000), ("198.51.100.130", 5000)])
        peer = ("198.51.100.130", 5000)
        self.hole.datagramReceived(encode_probe(KEY, "x", "S", False, 0), peer)
        self.assertNoResult(d)
        self.hole.datagramReceived(encode_probe(KEY, "x", "S", True, 0), peer)
        self.assertEqual(self.successResultOf(d), (self.hole, peer))

    def test_port_ranges_2ms_apart_then_the_read_timeout(self):
        behavior = {"read_timeout": 5000, "candidate_ports": [m.PortsRange(4998, 5002)]}
        d = Punch(self.clock, self.hole, resp("receiver", **behavior), KEY, "[v]").run()
        for _ in range(5):
            self.clock.advance(0.002)
        self.assertEqual([a[1] for _, a, _ in self.hole.transport.sent], [4998, 4999, 5000, 5001, 5002])
        self.clock.advance(4.99)
        self.assertNoResult(d)
        self.clock.advance(0.02)
        self.assertEqual(str(self.failureResultOf(d, PunchError).value), "wait detect message timeout")
        self.assertEqual(self.clock.getDelayedCalls(), [])


class DiscoverCommandTests(TestCase):
    timeout = 30

    async def test_like_go_frpc_nathole_discover(self):
        server = StunServer.listen(reactor, ("127.0.0.1", 0), ("127.0.0.2", 0))
        self.addCleanup(server.stop)
        out = io.StringIO()
        self.assertEqual(await natholeDiscover(reactor, None, server.address, "127.0.0.1:0", out), 0)
        ours = out.getvalue().splitlines()
        from tests.frpbin import frp_binary

        go = await GoFrp.command(reactor, "frpc", [frp_binary("frpc"), "nathole", "discover", "--nat_hole_stun_server",
                                                  server.address, "-l", "127.0.0.1:0"], "Public Network")
        await go._exit
        theirs = [line for line in go.output.splitlines() if ":" in line]
        self.assertEqual([line.split(":")[0] for line in ours], [line.split(":")[0] for line in theirs])
        for i in (0, 1, 2, 5):  # server, NAT type, behaviour, public network (addresses differ)
            self.assertEqual(ours[i], theirs[i])
        self.assertEqual(ours[1], "Your NAT type is: EasyNAT")

    async def test_silent_server(self):
        silent = openHoleSocket(reactor, interface="127.0.0.1")  # a UDP port that never answers
        self.addCleanup(silent.close)
        out = io.StringIO()
        self.assertEqual(await natholeDiscover(reactor, None, f"127.0.0.1:{silent.localPort}", "", out), 1)
        self.assertEqual(out.getvalue(), "discover error: wait response from stun server timeout\n")
