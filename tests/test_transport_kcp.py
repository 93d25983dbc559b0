"""KcpSession on a fake clock over an in-memory datagram wire: a byte-stream transport with
kcp-go's framing, writer backpressure, a paused reader holding the peer back, and kcp-go's close."""

from typing import List

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from frptw.transport.kcp import CLIENT_WINDOWS, SERVER_WINDOWS, KcpSession, _convOf
from frptw.wire import kcpfec


class Recorder(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.lost = reason


@implementer(IPushProducer)
class Producer:
    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class Wire:
    def __init__(self) -> None:
        self.clock = Clock()
        self.toServer: List[bytes] = []
        self.toClient: List[bytes] = []
        peer = IPv4Address("UDP", "127.0.0.1", 7000)
        self.client = KcpSession(42, self.clock, self.toServer.append, peer, peer, CLIENT_WINDOWS)
        self.server = KcpSession(42, self.clock, self.toClient.append, peer, peer, SERVER_WINDOWS)
        self.mine, self.theirs = Recorder(), Recorder()
        self.client.connect(self.mine)
        self.server.connect(self.theirs)

    def run(self, ms: int) -> None:
        for _ in range(ms // 20):
            self.clock.advance(0.02)
            out, self.toServer[:] = list(self.toServer), []
            for d in out:
                self.server.datagramReceived(d)
            back, self.toClient[:] = list(self.toClient), []
            for d in back:
                self.client.datagramReceived(d)


class KcpSessionTests(SynchronousTestCase):
    def test_bytes_both_ways_in_kcp_go_framing(self):
        wire = Wire()
        wire.mine.transport.write(b"login")
        wire.clock.advance(0.02)
        [datagram] = wire.toServer
        self.assertEqual(kcpfec.HEADER.unpack_from(datagram), (0, kcpfec.TYPE_DATA))
        self.assertEqual(_convOf(datagram), (42, True))
        wire.run(100)
        wire.theirs.transport.write(b"resp")
        wire.run(100)
        self.assertEqual((bytes(wire.theirs.data), bytes(wire.mine.data)), (b"login", b"resp"))

    def test_quiet_session_sets_no_timer(self):
        wire = Wire()
        wire.mine.transport.write(b"x")
        wire.run(200)
        self.assertEqual(wire.clock.getDelayedCalls(), [])

    def test_writer_is_paused_beyond_two_windows(self):
        wire = Wire()
        producer = Producer()
        wire.mine.transport.registerProducer(producer, True)
        wire.mine.transport.write(b"z" * (1400 * 2 * CLIENT_WINDOWS[0] + 1))
        self.assertTrue(producer.paused)
        wire.run(3000)
        self.assertFalse(producer.paused)

    def test_paused_reader_holds_the_peer_back(self):
        wire = Wire()
        wire.theirs.transport.pauseProducing()
        wire.mine.transport.write(b"q" * (1318 * 2000))
        wire.run(2000)
        self.assertEqual(len(wire.theirs.data), 0)
        self.assertGreater(wire.client._kcp.waitingToSend, 2000 - SERVER_WINDOWS[1] - 1)
        wire.theirs.transport.resumeProducing()
        wire.run(6000)
        self.assertEqual(len(wire.theirs.data), 1318 * 2000)

    def test_lose_connection_flushes_once_and_ends(self):
        wire = Wire()
        wire.mine.transport.write(b"bye")
        wire.mine.transport.loseConnection()
        wire.clock.advance(0)
        self.assertTrue(wire.mine.lost.check(ConnectionDone))
        self.assertEqual(len(wire.toServer), 1)
        wire.run(100)
        self.assertEqual(bytes(wire.theirs.data), b"bye")

    def test_bad_datagram_closes_only_this_session(self):
        wire = Wire()
        wire.server.datagramReceived(kcpfec.HEADER.pack(0, kcpfec.TYPE_DATA) + b"\xff\xff")
        self.assertIsNotNone(wire.theirs.lost)
        self.assertIsNone(wire.mine.lost)
