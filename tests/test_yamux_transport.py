"""Tests for the Twisted yamux adapter (frptw.transport.yamux): two sessions pumped in memory
with a task.Clock, single sessions against a StringTransport, and one interop test against
the real Go frps."""

import hashlib
import json
import os
import socket
import struct
import subprocess
import time

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IConsumer, IHalfCloseableProtocol, IPushProducer, ITransport
from twisted.internet.protocol import ClientCreator, Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.test.iosim import FakeTransport, IOPump
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from frptw.errors import ConnectionClosed
from frptw.transport.yamux import YamuxSession, YamuxStream, writesTogether
from frptw.wire.yamux import Flag, FrameType, decode_header, encode_header
from tests.frpbin import frp_binary
from tests.support import free_port, tempDir, until

MIB = 1024 * 1024
WINDOW = 6 * MIB


class Recorder(Protocol):
    """Keeps what it receives and how it ended."""

    def __init__(self):
        self.received = bytearray()
        self.reason = None
        self.made = False

    def connectionMade(self):
        self.made = True

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason


@implementer(IHalfCloseableProtocol)
class HalfCloser(Recorder):
    """Answers the peer's EOF with a reply, then closes."""

    readLost = False

    def readConnectionLost(self):
        self.readLost = True
        self.transport.write(b"reply:" + bytes(self.received))
        self.transport.loseConnection()

    def writeConnectionLost(self):
        pass


class Paused(Recorder):
    """Pauses its stream as soon as it is connected (a slow reader)."""

    def connectionMade(self):
        super().connectionMade()
        self.transport.pauseProducing()


class Exploding(Recorder):
    def dataReceived(self, data):
        raise RuntimeError("boom")


class RecordingFactory(Factory):
    def __init__(self, protocolClass=Recorder):
        self.protocolClass = protocolClass
        self.built = []
        self.addresses = []

    def buildProtocol(self, addr):
        protocol = self.protocolClass()
        self.built.append(protocol)
        self.addresses.append(addr)
        return protocol


@implementer(IPushProducer)
class ChunkProducer:
    """A push producer writing ``total`` bytes in 64 KiB chunks while not paused."""

    def __init__(self, transport, total, chunk=65536):
        self.transport = transport
        self.remaining = total
        self.chunk = chunk
        self.paused = False
        self.stopped = False
        self.written = 0

    def run(self):
        while not self.paused and not self.stopped and self.remaining:
            size = min(self.chunk, self.remaining)
            self.remaining -= size
            self.written += size
            self.transport.write(bytes([self.written % 251]) * size)

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.run()

    def stopProducing(self):
        self.stopped = True


class PullProducer:
    """A non-streaming producer: one chunk per resumeProducing."""

    def __init__(self, transport, chunks):
        self.transport = transport
        self.chunks = list(chunks)
        self.stopped = False

    def resumeProducing(self):
        if self.chunks:
            self.transport.write(self.chunks.pop(0))
        else:
            self.transport.unregisterProducer()

    def stopProducing(self):
        self.stopped = True


class PumpedPair:
    """A client and a server YamuxSession connected by an iosim pump on one task.Clock."""

    def __init__(self, serverProtocol=Recorder, **kwargs):
        self.clock = task.Clock()
        self.factory = RecordingFactory(serverProtocol)
        self.client = YamuxSession(True, self.clock, **kwargs)
        self.server = YamuxSession(False, self.clock, acceptFactory=self.factory, **kwargs)
        self.clientIO = FakeTransport(self.client, isServer=False)
        self.serverIO = FakeTransport(self.server, isServer=True)
        self.server.makeConnection(self.serverIO)
        self.client.makeConnection(self.clientIO)
        self.pump = IOPump(self.client, self.server, self.clientIO, self.serverIO, False, clock=self.clock)

    def flush(self):
        self.pump.flush()

    def open(self, protocol=None):
        protocol = protocol or Recorder()
        results = []
        self.client.openStream(protocol).addCallback(results.append)
        assert results == [protocol]
        self.flush()
        return protocol, self.factory.built[-1]


class SessionPairTests(SynchronousTestCase):
    def test_exchange(self):
        pair = PumpedPair()
        client, server = pair.open()
        self.assertTrue(client.made and server.made)
        self.assertEqual(pair.factory.addresses, [pair.serverIO.getPeer()])
        client.transport.write(b"hello")
        server.transport.writeSequence([b"wor", b"ld"])
        pair.flush()
        self.assertEqual(bytes(server.received), b"hello")
        self.assertEqual(bytes(client.received), b"world")
        self.assertIsInstance(client.transport, YamuxStream)
        self.assertEqual(client.transport.getPeer(), pair.clientIO.getPeer())
        self.assertEqual(client.transport.getHost(), pair.clientIO.getHost())
        for interface in (ITransport, IConsumer, IPushProducer):
            self.assertTrue(verifyObject(interface, client.transport))

    def test_data_written_in_connection_made_follows_syn(self):
        class Greeter(Recorder):
            def connectionMade(self):
                self.transport.write(b"early")

        pair = PumpedPair()
        pair.client.openStream(Greeter())
        pair.flush()
        self.assertEqual(bytes(pair.factory.built[0].received), b"early")

    def test_bulk_transfer_both_ways(self):
        pair = PumpedPair()
        client, server = pair.open()
        payload = os.urandom(MIB) * 9
        client.transport.write(payload)
        server.transport.write(payload[::-1])
        pair.flush()
        self.assertEqual(bytes(server.received), payload)
        self.assertEqual(bytes(client.received), payload[::-1])

    def test_paused_reader_stops_sender_after_one_window(self):
        pair = PumpedPair(serverProtocol=Paused)
        client = Recorder()
        pair.client.openStream(client)
        pair.flush()
        server = pair.factory.built[0]
        producer = ChunkProducer(client.transport, 20 * MIB)
        client.transport.registerProducer(producer, True)
        producer.run()
        pair.flush()
        serverStream = server.transport
        self.assertEqual(bytes(server.received), b"")
        self.assertEqual(serverStream.bufferedInput, WINDOW)
        self.assertTrue(producer.paused)
        self.assertEqual(producer.written, WINDOW + 65536)
        self.assertEqual(client.transport.bufferedOutput, 65536)
        # Nothing moves however long we pump.
        pair.flush()
        self.assertEqual(serverStream.bufferedInput, WINDOW)
        serverStream.resumeProducing()
        pair.flush()
        self.assertEqual(len(server.received), 20 * MIB)
        self.assertEqual(producer.remaining, 0)
        self.assertFalse(producer.paused)
        self.assertEqual(client.transport.bufferedOutput, 0)

    def test_pause_and_resume_repeatedly_stays_bounded(self):
        pair = PumpedPair()
        client, server = pair.open()
        producer = ChunkProducer(client.transport, 30 * MIB)
        client.transport.registerProducer(producer, True)
        server.transport.pauseProducing()
        producer.run()
        for _ in range(200):
            pair.flush()
            self.assertLessEqual(server.transport.bufferedInput, WINDOW)
            self.assertLessEqual(client.transport.bufferedOutput, 65536)
            server.transport.resumeProducing()
            server.transport.pauseProducing()
            if len(server.received) == 30 * MIB:
                break
        self.assertEqual(len(server.received), 30 * MIB)

    def test_session_write_pause_pauses_every_stream_producer(self):
        pair = PumpedPair()
        producers = []
        for _ in range(3):
            client, _ = pair.open()
            producers.append(ChunkProducer(client.transport, 0))
            client.transport.registerProducer(producers[-1], True)
        pair.client.pauseProducing()
        self.assertEqual([p.paused for p in producers], [True] * 3)
        late, _ = pair.open()
        lateProducer = ChunkProducer(late.transport, 0)
        late.transport.registerProducer(lateProducer, True)
        self.assertTrue(lateProducer.paused)
        pair.client.resumeProducing()
        self.assertEqual([p.paused for p in producers + [lateProducer]], [False] * 4)

    def test_pull_producer(self):
        pair = PumpedPair()
        client, server = pair.open()
        producer = PullProducer(client.transport, [b"a" * 100000, b"b" * 300000, b"c"])
        client.transport.registerProducer(producer, False)
        pair.flush()
        self.assertEqual(bytes(server.received), b"a" * 100000 + b"b" * 300000 + b"c")
        self.assertIsNone(client.transport._producer)

    def test_second_producer_rejected(self):
        pair = PumpedPair()
        client, _ = pair.open()
        client.transport.registerProducer(ChunkProducer(client.transport, 0), True)
        self.assertRaises(RuntimeError, client.transport.registerProducer, ChunkProducer(client.transport, 0), True)

    def test_fin_closes_plain_protocol(self):
        pair = PumpedPair()
        client, server = pair.open()
        client.transport.write(b"bye")
        client.transport.loseConnection()
        client.transport.write(b"ignored")
        pair.flush()
        self.assertEqual(bytes(server.received), b"bye")
        server.reason.trap(ConnectionDone)
        client.reason.trap(ConnectionDone)
        self.assertEqual(pair.client._streams, {})
        self.assertEqual(pair.server._streams, {})
        self.assertFalse(pair.client._conn.has_stream(1))
        self.assertFalse(pair.server._conn.has_stream(1))

    def test_fin_to_half_closeable_protocol(self):
        pair = PumpedPair(serverProtocol=HalfCloser)
        client, server = pair.open(HalfCloser())
        client.transport.write(b"question")
        client.transport.loseConnection()
        pair.flush()
        self.assertTrue(server.readLost)
        self.assertFalse(client.readLost)  # it closed first: the reply is discarded, as on TCP
        server.reason.trap(ConnectionDone)
        client.reason.trap(ConnectionDone)

    def test_abort_and_peer_reset(self):
        pair = PumpedPair()
        client, server = pair.open()
        client.transport.write(b"x" * 1000)
        client.transport.abortConnection()
        self.assertIsNone(client.reason)
        pair.flush()
        client.reason.trap(ConnectionAborted)
        server.reason.trap(ConnectionLost)
        self.assertEqual(pair.server._streams, {})

    def test_protocol_exception_resets_only_its_stream(self):
        pair = PumpedPair(serverProtocol=Exploding)
        client, server = pair.open()
        other, otherServer = pair.open()
        client.transport.write(b"x")
        pair.flush()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        client.reason.trap(ConnectionLost)
        server.reason.trap(ConnectionAborted)
        self.assertIsNone(other.reason)

    def test_keepalive_answered(self):
        pair = PumpedPair(keepaliveInterval=30.0)
        for _ in range(5):
            pair.clock.advance(30)
            pair.flush()
            pair.clock.advance(9)
        self.assertFalse(pair.clientIO.disconnecting)
        self.assertFalse(pair.serverIO.disconnecting)

    def test_session_loss_notifies_streams(self):
        pair = PumpedPair()
        first, firstServer = pair.open()
        second, _ = pair.open()
        closed = []
        pair.client.whenClosed().addCallback(closed.append)
        pair.client.connectionLost(Failure(ConnectionLost("gone")))
        first.reason.trap(ConnectionLost)
        second.reason.trap(ConnectionLost)
        self.assertEqual(closed, [None])
        self.assertEqual(self.successResultOf(pair.client.whenClosed()), None)
        self.failureResultOf(pair.client.openStream(Recorder()), ConnectionClosed)
        pair.server.connectionLost(Failure(ConnectionDone()))
        firstServer.reason.trap(ConnectionDone)

    def test_close(self):
        pair = PumpedPair()
        client, server = pair.open()
        closed = pair.server.whenClosed()
        pair.client.close()
        pair.flush()
        self.successResultOf(closed)
        client.reason.trap(ConnectionDone)
        server.reason.trap(ConnectionDone)


def framesIn(data):
    """The (type, flags, stream id, length) of every frame in ``data``."""
    frames, position = [], 0
    while position < len(data):
        header = decode_header(data, position)
        frames.append(tuple(header[1:]))
        position += 12 + (header.length if header.type == FrameType.DATA else 0)
    return frames


class SingleSessionTests(SynchronousTestCase):
    """One session against a StringTransport: the peer is played by hand."""

    def setUp(self):
        self.clock = task.Clock()
        self.transport = StringTransport()

    def session(self, **kwargs):
        session = YamuxSession(True, self.clock, **kwargs)
        session.makeConnection(self.transport)
        self.assertIs(self.transport.producer, session)
        return session

    def serverSession(self, protocolClass):
        """A server session whose peer (the test) opens stream 1 and sends ``hello``."""
        factory = RecordingFactory(protocolClass)
        session = YamuxSession(False, self.clock, acceptFactory=factory, keepaliveInterval=None)
        session.makeConnection(self.transport)
        session.dataReceived(
            encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0x5C0000)
            + encode_header(FrameType.DATA, 0, 1, 5)
            + b"hello"
        )
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0x5C0000)])
        self.transport.clear()
        return session, factory.built[0]

    def test_writes_together_leave_as_one_write(self):
        """Frames of two streams written inside writesTogether reach the transport as one write
        when the outermost block ends; outside a block each write goes at once."""
        writes = []
        self.patch(self.transport, "writeSequence", lambda chunks: writes.append(b"".join(chunks)))
        session = self.session(keepaliveInterval=None)
        first, second = Recorder(), Recorder()
        session.openStream(first)
        session.openStream(second)
        self.assertEqual(len(writes), 2)  # the SYNs, each at once
        del writes[:]
        with writesTogether(first.transport):
            with session.writesTogether():
                first.transport.write(b"one")
            second.transport.write(b"two")
            self.assertEqual(writes, [])
        self.assertEqual([framesIn(w) for w in writes],
                         [[(FrameType.DATA, 0, 1, 3), (FrameType.DATA, 0, 3, 3)]])
        first.transport.write(b"three")
        self.assertEqual(len(writes), 2)

    def test_writes_together_on_another_transport_joins_nothing(self):
        transport = StringTransport()
        with writesTogether(transport):
            transport.write(b"x")
        self.assertEqual(transport.value(), b"x")

    def test_peer_fin_to_half_closeable_protocol(self):
        """readConnectionLost, the reply still goes out, and connectionLost comes on the next turn."""
        session, protocol = self.serverSession(HalfCloser)
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0))
        self.assertTrue(protocol.readLost)
        self.assertEqual(
            self.transport.value(),
            encode_header(FrameType.DATA, 0, 1, 11)
            + b"reply:hello"
            + encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0),
        )
        self.assertIsNone(protocol.reason)
        self.clock.advance(0)
        protocol.reason.trap(ConnectionDone)
        self.assertEqual(session._streams, {})

    def test_peer_fin_to_plain_protocol(self):
        session, protocol = self.serverSession(Recorder)
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0))
        self.assertEqual(self.transport.value(), encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0))
        self.clock.advance(0)
        protocol.reason.trap(ConnectionDone)

    def test_peer_fin_waits_for_paused_reader(self):
        session, protocol = self.serverSession(Paused)
        session.dataReceived(encode_header(FrameType.DATA, Flag.FIN, 1, 3) + b"end")
        self.assertEqual((bytes(protocol.received), self.transport.value()), (b"", b""))
        self.assertEqual(protocol.transport.bufferedInput, 8)
        protocol.transport.resumeProducing()
        self.assertEqual(bytes(protocol.received), b"helloend")
        self.assertEqual(self.transport.value(), encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0))
        self.clock.advance(0)
        protocol.reason.trap(ConnectionDone)

    def test_held_writes_go_before_fin(self):
        session, protocol = self.serverSession(Recorder)
        protocol.transport.write(b"x" * (WINDOW + 10))
        protocol.transport.loseConnection()
        protocol.transport.write(b"late")
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.DATA, Flag(0), 1, WINDOW)])
        self.transport.clear()
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, 0, 1, 100))
        self.assertEqual(
            self.transport.value(),
            encode_header(FrameType.DATA, 0, 1, 10)
            + b"x" * 10
            + encode_header(FrameType.DATA, 0, 1, 4)
            + b"late"
            + encode_header(FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0),
        )
        protocol.transport.write(b"dropped")
        self.assertEqual(protocol.transport.bufferedOutput, 0)

    def test_keepalive_timeout_closes(self):
        self.session(keepaliveInterval=30.0)
        self.clock.advance(29.9)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.1)
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.PING, Flag.SYN, 0, 0)])
        with capturedLogs() as events:
            self.clock.advance(9.9)
            self.assertFalse(self.transport.disconnected)
            self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(len(events), 1)
        self.assertIn("not answered", events[0]["log_format"])

    def test_keepalive_disabled(self):
        self.session(keepaliveInterval=None)
        self.clock.advance(1000)
        self.assertEqual(self.transport.value(), b"")

    def test_open_timeout(self):
        session = self.session(keepaliveInterval=None)
        session.openStream(Recorder())
        with capturedLogs() as events:
            self.clock.advance(75)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(len(events), 1)

    def test_ack_cancels_open_timeout(self):
        session = self.session(keepaliveInterval=None)
        session.openStream(Recorder())
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0x5C0000))
        self.clock.advance(1000)
        self.assertFalse(self.transport.disconnecting)

    def test_open_timeouts_of_many_streams_share_one_timer(self):
        """A stream opened and acknowledged costs no DelayedCall of its own (issue 13: new
        connections): the session's open deadlines wake once, and find nothing due."""
        session = self.session(keepaliveInterval=None)
        for n in range(100):
            session.openStream(Recorder())
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for streamId in range(1, 200, 2):
            session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, streamId, 0))
        self.clock.advance(75)
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_a_later_stream_times_out_at_its_own_deadline(self):
        session = self.session(keepaliveInterval=None)
        session.openStream(Recorder())
        self.clock.advance(50)
        session.openStream(Recorder())
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0))
        with capturedLogs() as events:
            self.clock.advance(74.9)  # the first stream's deadline passed, but it was acknowledged
            self.assertFalse(self.transport.disconnected)
            self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual([e["streamId"] for e in events], [3])

    def test_no_timer_outlives_the_session(self):
        """A protocol told of its stream's end closes another stream (as a splice does): that
        stream's FIN deadline goes with the session too."""
        session = self.session(keepaliveInterval=None)
        first, second = Recorder(), Recorder()
        session.openStream(first)
        session.openStream(second)
        for streamId in (1, 3):
            session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, streamId, 0))
        first.connectionLost = lambda reason: second.transport.loseConnection()
        session.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_close_timeout_resets(self):
        session = self.session(keepaliveInterval=None)
        protocol = Recorder()
        session.openStream(protocol)
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0))
        protocol.transport.loseConnection()
        self.transport.clear()
        self.clock.advance(299)
        self.assertIsNone(protocol.reason)
        self.clock.advance(1)
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.WINDOW_UPDATE, Flag.RST, 1, 0)])
        protocol.reason.trap(ConnectionLost)

    def test_pending_opens_wait_for_acks(self):
        session = self.session(keepaliveInterval=None)
        for _ in range(256):
            session.openStream(Recorder())
        waiting, cancelled = Recorder(), Recorder()
        result = session.openStream(waiting)
        cancelledResult = session.openStream(cancelled)
        self.assertNoResult(result)
        cancelledResult.cancel()
        self.failureResultOf(cancelledResult)
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0))
        self.assertIs(self.successResultOf(result), waiting)
        self.assertEqual(waiting.transport.streamId, 513)
        self.assertFalse(cancelled.made)

    def test_go_away_fails_opens(self):
        session = self.session(keepaliveInterval=None)
        for _ in range(256):
            session.openStream(Recorder())
        pending = session.openStream(Recorder())
        session.dataReceived(encode_header(FrameType.GO_AWAY, 0, 0, 0))
        self.failureResultOf(pending, ConnectionClosed)
        self.failureResultOf(session.openStream(Recorder()), ConnectionClosed)

    def test_not_connected(self):
        session = YamuxSession(True, self.clock)
        self.failureResultOf(session.openStream(Recorder()), ConnectionClosed)

    def test_streams_refused_without_factory(self):
        session = self.session(keepaliveInterval=None)
        session.dataReceived(encode_header(FrameType.WINDOW_UPDATE, Flag.SYN, 2, 0))
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.WINDOW_UPDATE, Flag.RST, 2, 0)])

    def test_protocol_error_closes_with_one_log_line(self):
        session = self.session(keepaliveInterval=None)
        protocol = Recorder()
        session.openStream(protocol)
        self.transport.clear()
        with capturedLogs() as events:
            session.dataReceived(encode_header(FrameType.DATA, 0, 1, WINDOW + 1) + b"x" * 10)
        self.assertEqual(len(events), 1)
        self.assertIn("receive window", str(events[0]["error"]))
        self.assertEqual(framesIn(self.transport.value()), [(FrameType.GO_AWAY, 0, 0, 1)])
        self.assertTrue(self.transport.disconnecting)
        session.connectionLost(Failure(ConnectionDone()))
        protocol.reason.trap(ConnectionDone)

    def test_answers_pings(self):
        self.session(keepaliveInterval=None).dataReceived(encode_header(FrameType.PING, Flag.SYN, 0, 42))
        self.assertEqual(self.transport.value(), encode_header(FrameType.PING, Flag.ACK, 0, 42))


def loginFrame(token):
    """A v1 Login message as frpc 0.65 sends it (built by hand: type 'o', int64 length, JSON)."""
    timestamp = int(time.time())
    body = json.dumps(
        {
            "version": "0.65.0",
            "privilege_key": hashlib.md5((token + str(timestamp)).encode()).hexdigest(),
            "timestamp": timestamp,
            "pool_count": 1,
        },
        separators=(",", ":"),
    ).encode()
    return b"o" + struct.pack(">q", len(body)) + body


class RawCapture(YamuxSession):
    """A client session that also keeps every byte it receives."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.raw = bytearray()

    def dataReceived(self, data):
        self.raw += data
        super().dataReceived(data)


class LoginReader(Recorder):
    def __init__(self):
        super().__init__()
        self.gotResponse = Deferred()

    def dataReceived(self, data):
        super().dataReceived(data)
        if len(self.received) >= 9 and not self.gotResponse.called:
            length = struct.unpack(">q", bytes(self.received[1:9]))[0]
            if len(self.received) >= 9 + length:
                self.gotResponse.callback(bytes(self.received[: 9 + length]))


class InteropTests(TestCase):
    timeout = 30

    def startFrps(self):
        frps = frp_binary("frps")
        port = free_port()
        directory = tempDir(self)
        config = os.path.join(directory, "frps.toml")
        with open(config, "w") as f:
            f.write(
                f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "yamux-test"\n'
                "transport.tcpMux = true\ntransport.tcpMuxKeepaliveInterval = 2\n"
                'log.level = "warn"\n'
            )
        process = subprocess.Popen(
            [frps, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )

        def stop():
            process.kill()
            process.wait(5)

        self.addCleanup(stop)
        return port

    def waitForPort(self, port):
        def listening() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", port)) == 0

        return ensureDeferred(until(listening, f"frps to listen on {port}", timeout=15))

    @inlineCallbacks
    def test_login_over_yamux_with_real_frps(self):
        port = self.startFrps()
        yield self.waitForPort(port)
        session = yield ClientCreator(reactor, RawCapture, True, reactor, keepaliveInterval=1.0).connectTCP(
            "127.0.0.1", port
        )
        self.addCleanup(session.close)
        reader = LoginReader()
        yield session.openStream(reader)
        reader.transport.write(loginFrame("yamux-test"))
        response = yield reader.gotResponse
        self.assertEqual(response[:1], b"1")
        body = json.loads(response[9:])
        self.assertEqual(body["version"], "0.65.0")
        self.assertNotIn("error", body)
        self.assertEqual(bytes(session.raw[:12]), bytes.fromhex("000100020000000100 5c0000".replace(" ", "")))

        # frps (keep-alive 2 s) pings us; our 1 s keep-alive must be answered, or we would close.
        yield ensureDeferred(until(lambda: (FrameType.PING, Flag.SYN, 0, 0) in framesIn(bytes(session.raw)),
                                   "a keep-alive ping from frps", timeout=6))
        frames = framesIn(bytes(session.raw))
        self.assertIn((FrameType.PING, Flag.SYN, 0, 0), frames)
        self.assertIn((FrameType.PING, Flag.ACK, 0, 0), frames)
        self.assertFalse(session._closed)

        # FIN on the control stream is answered by frps's FIN; then we close cleanly.
        reader.transport.loseConnection()
        yield ensureDeferred(until(lambda: reader.reason is not None, "frps's FIN on the control stream"))
        reader.reason.trap(ConnectionDone)
        self.assertIn((FrameType.WINDOW_UPDATE, Flag.FIN, 1, 0), framesIn(bytes(session.raw)))
        session.close()
        yield session.whenClosed()
