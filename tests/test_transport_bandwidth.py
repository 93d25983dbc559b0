"""bandwidth_limit in client mode: token bucket and the throttling layer (wire-protocol.md §7.5)."""

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

    def test_reading_pauses_the_connection_until_refilled(self) -> None:
        self.below.dataReceived(b"x" * 1000)
        self.assertEqual(self.transport.producerState, "producing")
        self.below.dataReceived(b"x" * 250)
        self.assertEqual(b"".join(self.upper.received), b"x" * 1250)  # nothing is held back
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0.249)
        self.assertEqual(self.transport.producerState, "paused")
        self.clock.advance(0.001)
        self.assertEqual(self.transport.producerState, "producing")

    def test_upper_pause_survives_the_refill(self) -> None:
        self.below.dataReceived(b"x" * 2000)
        self.limiter.pauseProducing()
        self.clock.advance(1)
        self.assertEqual(self.transport.producerState, "paused")
        self.limiter.resumeProducing()
        self.assertEqual(self.transport.producerState, "producing")

    def test_writing_pauses_the_producer_until_refilled(self) -> None:
        producer = FakeProducer()
        self.limiter.registerProducer(producer, True)
        self.limiter.write(b"y" * 1500)
        self.assertEqual(self.transport.value(), b"y" * 1500)  # written at once
        self.assertTrue(producer.paused)
        self.clock.advance(0.5)
        self.assertFalse(producer.paused)

    def test_lower_pause_and_throttle_combine(self) -> None:
        producer = FakeProducer()
        self.limiter.registerProducer(producer, True)
        lowerProducer = self.transport.producer
        lowerProducer.pauseProducing()  # the socket buffer is full
        self.assertTrue(producer.paused)
        self.limiter.write(b"y" * 1500)
        lowerProducer.resumeProducing()  # drained, but the bucket is still in debt
        self.assertTrue(producer.paused)
        self.clock.advance(0.5)
        self.assertFalse(producer.paused)
        lowerProducer.pauseProducing()
        self.clock.advance(10)
        self.assertTrue(producer.paused)

    def test_connection_lost_cancels_timers(self) -> None:
        self.below.dataReceived(b"x" * 2000)
        self.limiter.write(b"y" * 2000)
        self.assertEqual(len(self.clock.getDelayedCalls()), 2)
        self.below.connectionLost(Failure(ConnectionDone()))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(self.upper.lost)
