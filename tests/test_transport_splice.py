"""splice: two connections joined with backpressure and frp's close-both rule.

Fake transports check the wiring; two loopback TCP pairs on the real reactor check that bytes
flow both ways, that an end closes both sides after flushing, and that a reader which stops
reading pauses the far writer while the splice buffers a bounded amount.
"""

import hashlib
import socket
from typing import Iterator, List, Optional

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport, StringTransportWithDisconnection
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from frptw.transport.layered import layer
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from tests.test_transport_layered import FrameCodec

#: Twisted's TCP write buffer size: above it a transport pauses its producer.
TCP_BUFFER = 65536
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


class Notifying(SwitchableProtocol):
    """A switchable protocol that says when it is connected (the splice's server-side ends)."""

    def __init__(self) -> None:
        super().__init__()
        self.made: Deferred = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self)


@implementer(IPushProducer)
class Peer(Protocol):
    """An end user of a spliced pair: sends as a well-behaved push producer, hashes what it
    receives.  It sends a 64 KiB pattern over and over, or the 64 KiB ``chunks`` given."""

    def __init__(self, seed: int, chunks: Optional[Iterator[bytes]] = None) -> None:
        self._chunks = chunks
        self.toSend = 0
        self.sent = 0
        self.received = 0
        self.sentHash = hashlib.sha256()
        self.receivedHash = hashlib.sha256()
        self._chunk = hashlib.sha256(bytes([seed])).digest() * 2048  # 64 KiB
        self._closeAfterSending = False
        self.paused = False
        self.made: Deferred = Deferred()
        self.lost: Deferred = Deferred()
        self._waitFor: Optional[tuple] = None

    def connectionMade(self) -> None:
        self.made.callback(self)

    def send(self, count: int, close: bool = False) -> None:
        """Send ``count`` bytes (then close, if asked) as fast as the transport takes them."""
        self.toSend = count
        self._closeAfterSending = close
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        while not self.paused and self.sent < self.toSend:
            chunk = next(self._chunks) if self._chunks is not None else self._chunk
            chunk = chunk[: self.toSend - self.sent]
            self.sent += len(chunk)
            self.sentHash.update(chunk)
            self.transport.write(chunk)
        if self.sent == self.toSend:
            self.transport.unregisterProducer()
            if self._closeAfterSending:
                self.transport.loseConnection()

    def pauseProducing(self) -> None:
        self.paused = True

    def stopProducing(self) -> None:
        self.paused = True

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        self.receivedHash.update(data)
        if self._waitFor is not None and self.received >= self._waitFor[0]:
            d = self._waitFor[1]
            self._waitFor = None
            d.callback(self.received)

    def whenReceived(self, count: int) -> Deferred:
        if self.received >= count:
            return succeed(self.received)
        self._waitFor = (count, Deferred())
        return self._waitFor[1]

    def connectionLost(self, reason: Failure) -> None:
        self.lost.callback(reason.value)


async def tcpPair(testCase: TestCase, client: Protocol, server: Protocol, small: bool = False) -> None:
    """Connect ``client`` to ``server`` over loopback TCP (``server`` has a ``made`` Deferred,
    like Notifying and Peer).

    ``small`` shrinks the kernel socket buffers so that a stopped reader blocks the chain after
    a few hundred KiB instead of tens of MiB.
    """
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(lambda: server))
    testCase.addCleanup(port.stopListening)
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(lambda: client))
    await server.made
    if small:
        for transport in (client.transport, server.transport):
            for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
                transport.getHandle().setsockopt(socket.SOL_SOCKET, option, 32 * 1024)


def closeOnCleanup(testCase: TestCase, peer: Peer) -> None:
    """Abort ``peer``'s connection at the end of the test, if the test left it open."""

    def close() -> Deferred:
        if not peer.lost.called:
            peer.transport.abortConnection()
        return peer.lost

    testCase.addCleanup(close)


async def stalled(peer: Peer, timeout: float = 20.0, quiet: float = 0.3) -> None:
    """Wait on the real reactor until ``peer`` is paused and has sent nothing for ``quiet``
    seconds (a real-socket test has no event for "nothing moves any more")."""
    interval = 0.02
    waited = still = 0.0
    last = -1
    while still < quiet:
        if waited > timeout:
            raise AssertionError(f"still sending after {timeout}s")
        await task.deferLater(reactor, interval, lambda: None)
        waited += interval
        still = still + interval if peer.paused and peer.sent == last else 0.0
        last = peer.sent


def buffered(transport) -> int:
    """Bytes waiting in a Twisted TCP transport's write buffer."""
    return len(transport.dataBuffer) - transport.offset + transport._tempDataLen


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
