"""bandwidth_limit: token bucket and the throttling layer, pacing as frp 0.65's limited reader and
writer (wire-protocol.md §7.5)."""

from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from frptw.transport.bandwidth import TokenBucket, throttle
from frptw.transport.switch import SwitchableProtocol


class TokenBucketTests(SynchronousTestCase):
    def test_burst_then_rate(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1000, clock)
        self.assertEqual(bucket.spend(1000), 0.0)  # a full burst is free
        self.assertEqual(bucket.spend(500), 0.5)  # then 500 bytes cost half a second
        clock.advance(0.5)
        self.assertEqual(bucket.spend(0), 0.0)
        clock.advance(100)
        self.assertEqual(bucket.spend(1000), 0.0)  # refills only up to the burst
        self.assertEqual(bucket.spend(1), 0.001)


@implementer(IPushProducer)
class FakeProducer:
    def __init__(self) -> None:
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        pass


class Recorder(SwitchableProtocol):
    """Collects what arrives above the limiter (instead of holding it for a switch)."""

    def __init__(self) -> None:
        super().__init__()
        self.received = []

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)


class LimiterTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        below = SwitchableProtocol()
        below.makeConnection(self.transport)
        self.below = below
        top = throttle(below, self.clock, TokenBucket(1000, self.clock), TokenBucket(1000, self.clock))
        self.upper = Recorder()
        top.switchTo(self.upper)
        self.limiter = self.upper.transport

    def received(self) -> bytes:
        return b"".join(self.upper.received)

    def test_reading_holds_what_the_bucket_cannot_pay_yet(self) -> None:
        """As frp's limited reader: the burst goes up at once, the rest once its tokens are there."""
        self.below.dataReceived(b"x" * 1250)
        self.assertEqual(self.received(), b"x" * 1000)
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0.249)
        self.assertEqual((self.received(), self.transport.producerState), (b"x" * 1000, "paused"))
        self.clock.advance(0.001)
        self.assertEqual(self.received(), b"x" * 1250)
        self.assertEqual(self.transport.producerState, "producing")

    def test_large_reads_are_paced_in_chunks_of_the_rate(self) -> None:
        self.below.dataReceived(b"x" * 3500)
        sizes = [len(b"".join(self.upper.received))]
        for _ in range(3):
            self.clock.advance(1)
            sizes.append(len(self.received()))
        self.assertEqual(sizes, [1000, 2000, 3000, 3500])  # the last 500 need only 0.5 s
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_upper_pause_holds_paid_bytes(self) -> None:
        self.below.dataReceived(b"x" * 2000)
        self.limiter.pauseProducing()
        self.clock.advance(1)
        self.assertEqual(self.received(), b"x" * 1000)
        self.assertEqual(self.transport.producerState, "paused")
        self.limiter.resumeProducing()
        self.assertEqual(self.received(), b"x" * 2000)
        self.assertEqual(self.transport.producerState, "producing")

    def test_writing_waits_for_tokens_and_pauses_the_producer(self) -> None:
        producer = FakeProducer()
        self.limiter.registerProducer(producer, True)
        self.limiter.write(b"y" * 1500)
        self.assertEqual(self.transport.value(), b"y" * 1000)
        self.assertTrue(producer.paused)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.value(), b"y" * 1500)
        self.assertFalse(producer.paused)

    def test_lower_pause_and_throttle_combine(self) -> None:
        producer = FakeProducer()
        self.limiter.registerProducer(producer, True)
        lowerProducer = self.transport.producer
        lowerProducer.pauseProducing()  # the socket buffer is full
        self.assertTrue(producer.paused)
        self.limiter.write(b"y" * 1500)
        self.assertEqual(self.transport.value(), b"")  # waiting for the socket
        lowerProducer.resumeProducing()  # drained: the burst goes, the rest waits for tokens
        self.assertEqual(self.transport.value(), b"y" * 1000)
        self.assertTrue(producer.paused)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.value(), b"y" * 1500)
        self.assertFalse(producer.paused)
        lowerProducer.pauseProducing()
        self.clock.advance(10)
        self.assertTrue(producer.paused)

    def test_close_waits_for_the_held_bytes(self) -> None:
        self.limiter.write(b"y" * 1500)
        self.limiter.loseConnection()
        self.assertTrue(self.limiter.disconnecting)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.5)
        self.assertEqual(self.transport.value(), b"y" * 1500)
        self.assertTrue(self.transport.disconnecting)

    def test_abort_drops_the_held_bytes(self) -> None:
        self.limiter.write(b"y" * 1500)
        self.limiter.abortConnection()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.transport.value(), b"y" * 1000)

    def test_end_of_stream_comes_after_the_held_bytes(self) -> None:
        self.below.dataReceived(b"x" * 1500)
        self.below.connectionLost(Failure(ConnectionDone()))
        self.assertFalse(self.upper.lost)
        self.clock.advance(0.5)
        self.assertEqual(self.received(), b"x" * 1500)
        self.assertTrue(self.upper.lost)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_half_close_comes_after_the_held_bytes(self) -> None:
        ended = []
        self.upper.readConnectionLost = lambda: ended.append(len(self.received()))
        self.below.dataReceived(b"x" * 1500)
        self.below.readConnectionLost()
        self.assertEqual(ended, [])
        self.clock.advance(0.5)
        self.assertEqual(ended, [1500])

    def test_connection_lost_cancels_the_write_timer(self) -> None:
        self.limiter.write(b"y" * 2000)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.below.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.upper.lost)
        self.limiter.write(b"late")
        self.assertEqual(self.transport.value(), b"y" * 1000)
