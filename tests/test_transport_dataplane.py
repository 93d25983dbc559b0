"""The data-plane economies: whole-write TLS and widened frpc<->frps buffers (socket options and
IP-literal dials: ``test_transport_sockets``).

Each test pins a behaviour the speed work relies on, so that a refactoring that brings back
the per-record or per-read churn fails here rather than only in ``bench/bench_tcp.py``.
"""

from typing import List

from twisted.internet.abstract import FileDescriptor
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.transport.splice import CARRIER_BUFFER_SIZE, widenWriteBuffer
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tls import (
    HOLD_LIMIT,
    clientContextFactory,
    serverContextFactory,
    startClientTLS,
    startServerTLS,
)
from tests.support import pumpStrings


class CountingTransport(StringTransport):
    """A StringTransport that remembers each write separately."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: List[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        super().write(data)


class Collector(Protocol):
    """Keeps every chunk it receives, and the reason it was closed."""

    def __init__(self) -> None:
        self.chunks: List[bytes] = []
        self.reason = None

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason


class Answerer(Collector):
    """Answers every read with ``answers`` (then closes, if asked), noting how many writes
    the transport below had seen by the end of its ``dataReceived``."""

    def __init__(self, *answers: bytes, close: bool = False) -> None:
        super().__init__()
        self.answers = answers
        self.close = close
        self.lowerWritesSeen: List[int] = []
        self.lower: "CountingTransport | None" = None

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        for answer in self.answers:
            self.transport.write(answer)
        if self.close:
            self.transport.loseConnection()
        self.lowerWritesSeen.append(len(self.lower.writes))


class TLSPair:
    """Our client and server TLS layers on two in-memory transports, pumped by hand."""

    serverOptions = None

    def __init__(self, server: "Collector | None" = None) -> None:
        if TLSPair.serverOptions is None:  # a fresh RSA key per test would be slow
            TLSPair.serverOptions = serverContextFactory()
        self.clientRaw, self.serverRaw = SwitchableProtocol(), SwitchableProtocol()
        self.clientWire, self.serverWire = CountingTransport(), CountingTransport()
        self.clientRaw.makeConnection(self.clientWire)
        self.serverRaw.makeConnection(self.serverWire)
        self.client, self.server = Collector(), server or Collector()
        if isinstance(self.server, Answerer):
            self.server.lower = self.serverWire
        startClientTLS(self.clientRaw, clientContextFactory("frps.test"), False).switchTo(self.client)
        startServerTLS(self.serverRaw, self.serverOptions, b"").switchTo(self.server)
        self.pump()

    def pump(self) -> None:
        """Carry bytes both ways until neither side has anything more to say."""
        pumpStrings(self.clientRaw, self.clientWire, self.serverRaw, self.serverWire, rounds=100)


class WholeWriteTLSTests(SynchronousTestCase):
    def test_a_large_write_leaves_as_one_lower_write(self) -> None:
        pair = TLSPair()
        pair.clientWire.writes.clear()
        data = bytes(range(256)) * 300  # 76,800 bytes: five TLS records
        pair.client.transport.write(data)
        self.assertEqual(len(pair.clientWire.writes), 1)
        pair.pump()
        self.assertEqual(b"".join(pair.server.chunks), data)

    def test_records_of_one_read_reach_the_protocol_as_one_chunk(self) -> None:
        pair = TLSPair()
        data = b"frp" * 30000
        pair.client.transport.write(data)
        pair.pump()
        self.assertEqual(pair.server.chunks, [data])

    def test_data_then_close_notify_delivers_the_data_then_closes(self) -> None:
        pair = TLSPair()
        transport = pair.client.transport
        transport.write(b"last words")
        transport.loseConnection()
        toServer = pair.clientWire.value()
        pair.clientWire.clear()
        pair.serverRaw.dataReceived(toServer)  # the data and the close_notify in one read
        self.assertEqual(pair.server.chunks, [b"last words"])
        self.assertTrue(pair.serverWire.disconnecting)

    def test_a_small_write_leaves_at_once(self) -> None:
        """No timer between a write and the transport below: a new connection's first bytes
        (StartWorkConn, the user's first write) leave in the event that wrote them."""
        pair = TLSPair()
        pair.clientWire.writes.clear()
        pair.client.transport.write(b"16 bytes of echo")
        pair.client.transport.write(b"and 12 more")
        self.assertEqual(len(pair.clientWire.writes), 2)
        pair.pump()
        self.assertEqual(b"".join(pair.server.chunks), b"16 bytes of echoand 12 more")

    def test_writes_made_while_handling_a_read_leave_together_after_it(self) -> None:
        """What the protocol answers while handling received bytes (yamux window updates and
        ACKs, one per stream) is one SSL_write and one lower write at the end of the read."""
        pair = TLSPair(Answerer(b"answer 0;", b"answer 1;", b"answer 2;"))
        pair.serverWire.writes.clear()
        pair.client.transport.write(b"question")
        toServer = pair.clientWire.value()
        pair.clientWire.clear()
        pair.serverRaw.dataReceived(toServer)
        self.assertEqual(pair.server.chunks, [b"question"])
        self.assertEqual(pair.server.lowerWritesSeen, [0])  # held while the read was handled
        self.assertEqual(len(pair.serverWire.writes), 1)
        pair.pump()
        self.assertEqual(b"".join(pair.client.chunks), b"answer 0;answer 1;answer 2;")

    def test_held_writes_are_bounded_and_keep_their_order(self) -> None:
        """Stream data a window update releases is not gathered without bound: past
        HOLD_LIMIT what is held and the new write leave at once, in order."""
        bulk = b"b" * HOLD_LIMIT
        pair = TLSPair(Answerer(b"small;", bulk, b";after"))
        pair.serverWire.writes.clear()
        pair.client.transport.write(b"go")
        toServer = pair.clientWire.value()
        pair.clientWire.clear()
        pair.serverRaw.dataReceived(toServer)
        self.assertEqual(pair.server.lowerWritesSeen, [2])  # small; and bulk went out before the end
        pair.pump()
        self.assertEqual(b"".join(pair.client.chunks), b"small;" + bulk + b";after")

    def test_writes_held_in_a_read_go_out_before_a_close_in_that_read(self) -> None:
        pair = TLSPair(Answerer(b"goodbye", close=True))
        pair.client.transport.write(b"bye?")
        pair.pump()
        self.assertEqual(b"".join(pair.client.chunks), b"goodbye")
        self.assertTrue(pair.serverWire.disconnecting)

    def test_undecryptable_bytes_fail_the_connection(self) -> None:
        pair = TLSPair()
        pair.serverRaw.dataReceived(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        self.assertTrue(pair.serverWire.disconnecting)


class Producer:
    """A push producer that counts what it was asked to do."""

    def __init__(self) -> None:
        self.pauses = self.resumes = 0

    def pauseProducing(self) -> None:
        self.pauses += 1

    def resumeProducing(self) -> None:
        self.resumes += 1

    def stopProducing(self) -> None:
        pass


class WidenedBufferTests(SynchronousTestCase):
    def transport(self) -> FileDescriptor:
        fd = FileDescriptor(MemoryReactorClock())
        fd.connected = True
        return fd

    def test_a_framed_full_read_does_not_pause_a_widened_transport(self) -> None:
        fd = self.transport()
        widenWriteBuffer(fd)
        producer = Producer()
        fd.registerProducer(producer, True)
        fd.write(b"x" * (65536 + 12 + 5 * 22))  # one 64 KiB read, yamux header, TLS records
        self.assertEqual(producer.pauses, 0)

    def test_the_widened_buffer_still_pauses_past_its_size(self) -> None:
        fd = self.transport()
        widenWriteBuffer(fd)
        producer = Producer()
        fd.registerProducer(producer, True)
        fd.write(b"x" * (CARRIER_BUFFER_SIZE + 1))
        self.assertEqual(producer.pauses, 1)

    def test_default_buffer_pauses_on_the_same_write(self) -> None:
        """What widening is for: Twisted's default pauses on every framed full read."""
        fd = self.transport()
        producer = Producer()
        fd.registerProducer(producer, True)
        fd.write(b"x" * (65536 + 12 + 5 * 22))
        self.assertEqual(producer.pauses, 1)

    def test_transports_without_a_buffer_are_left_alone(self) -> None:
        transport = StringTransport()
        widenWriteBuffer(transport)
        self.assertFalse(hasattr(transport, "bufferSize"))
