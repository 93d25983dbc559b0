"""splice: two connections joined with backpressure and frp's close-both rule.

Fake transports check the wiring; two loopback TCP pairs on the real reactor check that bytes
flow both ways, that an end closes both sides after flushing, and that a reader which stops
reading pauses the far writer while the splice buffers a bounded amount.
"""

from typing import List

from twisted.internet import reactor
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.transport.layered import layer
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from tests.fakes import FrameCodec
from tests.support import TCP_BUFFER, Notifying, Peer, buffered, closeOnCleanup, stalled, tcpPair

#: The most one TCP read delivers (Twisted reads up to bufferSize bytes at a time).
TCP_READ = 65536


def fakeConnected(transport=None) -> SwitchableProtocol:
    proto = SwitchableProtocol()
    transport = transport or StringTransportWithDisconnection()
    transport.protocol = proto
    proto.makeConnection(transport)
    return proto


class SpliceWiringTests(SynchronousTestCase):
    """The wiring, with StringTransport fakes."""

    def test_each_transport_produces_for_the_other(self) -> None:
        a, b = fakeConnected(), fakeConnected()
        ta, tb = a.transport, b.transport
        splice(a, b)
        self.assertEqual((ta.producer, ta.streaming), (tb, True))
        self.assertEqual((tb.producer, tb.streaming), (ta, True))

    def test_bytes_cross_over_including_held_ones(self) -> None:
        a, b = fakeConnected(), fakeConnected()
        a.dataReceived(b"held by a")
        b.dataReceived(b"held by b")
        splice(a, b)
        self.assertEqual((a.transport.value(), b.transport.value()), (b"held by b", b"held by a"))
        a.dataReceived(b"!")
        self.assertEqual(b.transport.value(), b"held by a!")

    def test_a_meter_counts_each_direction_per_chunk_held_bytes_included(self) -> None:
        class Meter:
            def __init__(self) -> None:
                self.chunks: List[tuple] = []

            def addIn(self, n: int) -> None:
                self.chunks.append(("in", n))

            def addOut(self, n: int) -> None:
                self.chunks.append(("out", n))

        a, b = fakeConnected(), fakeConnected()
        a.dataReceived(b"held")
        meter = Meter()
        splice(a, b, meter)
        a.dataReceived(b"x" * 1000)
        b.dataReceived(b"yy")
        self.assertEqual(meter.chunks, [("in", 4), ("in", 1000), ("out", 2)])
        self.assertEqual((b.transport.value(), a.transport.value()), (b"held" + b"x" * 1000, b"yy"))

    def test_end_of_either_side_closes_both_and_fires_once(self) -> None:
        a, b = fakeConnected(), fakeConnected()
        ta, tb = a.transport, b.transport
        done = splice(a, b)
        results: List[object] = []
        done.addCallback(results.append)
        a.connectionLost(Failure(ConnectionLost()))
        self.assertEqual((ta.producer, tb.producer), (None, None))
        self.assertFalse(tb.connected)
        self.assertEqual(results, [None])

    def test_read_eof_closes_both(self) -> None:
        a, b = fakeConnected(StringTransport()), fakeConnected(StringTransport())
        splice(a, b)
        a.readConnectionLost()
        self.assertTrue(a.transport.disconnecting)
        self.assertTrue(b.transport.disconnecting)

    def test_side_lost_before_splice(self) -> None:
        a, b = fakeConnected(), fakeConnected()
        a.dataReceived(b"last words")
        a.transport.loseConnection()
        tb = b.transport
        results: List[object] = []
        splice(a, b).addCallback(results.append)
        self.assertEqual(tb.value(), b"last words")
        self.assertFalse(tb.connected)
        self.assertIsNone(tb.producer)
        self.assertEqual(results, [None])

    def test_pause_request_reaches_the_reading_side(self) -> None:
        a, b = fakeConnected(StringTransport()), fakeConnected(StringTransport())
        splice(a, b)
        b.transport.producer.pauseProducing()
        self.assertEqual(a.transport.producerState, "paused")

    def test_pause_through_a_layer_reaches_the_socket(self) -> None:
        """A full consumer pauses the raw connection under an encrypted/compressed layer."""
        raw, other = fakeConnected(StringTransport()), fakeConnected(StringTransport())
        top = layer(raw, FrameCodec())
        splice(top, other)
        other.transport.producer.pauseProducing()
        self.assertEqual(raw.transport.producerState, "paused")
        other.transport.producer.resumeProducing()
        self.assertEqual(raw.transport.producerState, "producing")
        raw.dataReceived(b"\x00\x02hi")
        self.assertEqual(other.transport.value(), b"hi")
        other.dataReceived(b"yo")
        self.assertEqual(raw.transport.value(), b"\x00\x02yo")

    def test_switch_resumes_before_wiring(self) -> None:
        """A side paused while waiting (pauseOnConnect) reads again once spliced."""
        a = SwitchableProtocol(pauseOnConnect=True)
        a.makeConnection(StringTransport())
        self.assertEqual(a.transport.producerState, "paused")
        splice(a, fakeConnected(StringTransport()))
        self.assertEqual(a.transport.producerState, "producing")


# -- real reactor -----------------------------------------------------------------------------


class SpliceTCPTests(TestCase):
    timeout = 60

    async def splicedPeers(self, small: bool = False):
        user, userSide = Peer(seed=1), Notifying()
        backend, backendSide = Peer(seed=2), Notifying()
        await tcpPair(self, user, userSide, small)
        await tcpPair(self, backend, backendSide, small)
        closeOnCleanup(self, user)
        closeOnCleanup(self, backend)
        done = splice(userSide, backendSide)
        return user, userSide, backend, backendSide, done

    async def test_data_both_ways(self) -> None:
        size = 3 * 1024 * 1024 + 17
        user, _, backend, _, done = await self.splicedPeers()
        user.send(size)
        backend.send(size)
        await backend.whenReceived(size)
        await user.whenReceived(size)
        self.assertEqual(backend.receivedHash.digest(), user.sentHash.digest())
        self.assertEqual(user.receivedHash.digest(), backend.sentHash.digest())
        user.transport.loseConnection()
        await done

    async def test_close_flushes_then_closes_both(self) -> None:
        """The backend writes 2 MiB and closes at once: the user still gets every byte, then
        its connection closes too."""
        size = 2 * 1024 * 1024
        user, userSide, backend, backendSide, done = await self.splicedPeers()
        backend.send(size, close=True)
        reason = await user.lost
        self.assertEqual(user.received, size)
        self.assertEqual(user.receivedHash.digest(), backend.sentHash.digest())
        self.assertIsInstance(reason, ConnectionDone)
        await done

    async def test_half_close_closes_both(self) -> None:
        """frp does not propagate half-close: a user FIN ends both connections."""
        user, _, backend, _, done = await self.splicedPeers()
        user.transport.write(b"last")
        user.transport.loseWriteConnection()
        await backend.lost
        await user.lost
        self.assertEqual(backend.received, 4)
        await done

    async def test_abort_closes_other_side(self) -> None:
        user, _, backend, _, done = await self.splicedPeers()
        backend.transport.abortConnection()
        await user.lost
        await done

    async def test_slow_reader_pauses_writer(self) -> None:
        """The backend stops reading: the splice pauses reading from the user, its buffer stays
        under one TCP buffer plus one read, the user's own writer is paused; then everything
        arrives once the backend reads again."""
        size = 8 * 1024 * 1024
        user, userSide, backend, backendSide, done = await self.splicedPeers(small=True)
        backend.transport.pauseProducing()
        peak = [0]
        consumer = backendSide.transport
        write = consumer.write

        def measuredWrite(data: bytes) -> None:
            write(data)
            peak[0] = max(peak[0], buffered(consumer))

        consumer.write = measuredWrite
        user.send(size)
        await stalled(user)
        self.assertTrue(backendSide.transport.producerPaused)
        self.assertLess(user.sent, size)
        self.assertNotIn(userSide.transport, reactor.getReaders())
        self.assertLessEqual(peak[0], TCP_BUFFER + TCP_READ)
        self.assertGreater(peak[0], TCP_BUFFER)

        backend.transport.resumeProducing()
        await backend.whenReceived(size)
        self.assertEqual(backend.receivedHash.digest(), user.sentHash.digest())
        self.assertIn(userSide.transport, reactor.getReaders())
        user.transport.loseConnection()
        await done
