"""The backpressure proof (design.md, rules 1-4), on the real reactor over loopback TCP.

The path is a tcp proxy's data plane, both ends in this process::

    sender ─tcp─ userSide ═splice═ snappy ─ AES-CFB ─ yamux stream ─┐
                                                      (session over tcp)
    reader ─tcp─ backendSide ═splice═ snappy ─ AES-CFB ─ yamux stream ─┘

The reader stops reading while the sender pushes 64 MiB.  The sender must get paused, and
the bytes buffered in this process must stay under a bound that does not depend on how much
is sent.  That bound, worked out from the design:

* the paused receiving stream holds at most one yamux window (frp: 6 MiB), because the far
  stream cannot send more than the window it was granted and no window is granted while the
  reader is paused;
* the sending stream holds at most one write beyond the window (its producer, the user's
  socket, is paused as soon as it holds anything), i.e. one TCP read run through the layers;
* each of the four TCP transports holds at most its buffer size plus one write before it
  pauses its producer: 64 KiB for the user's and the local service's connections, 128 KiB
  (``CARRIER_BUFFER_SIZE``) for the two that carry the yamux session, which frpc and frps
  widen so that one framed 64 KiB read does not pause the whole session every time;
* each snappy decoder holds at most one partial chunk, each AES decoder at most an IV.

That is one window plus about 0.88 MiB: ``BOUND`` = 7,220,320 bytes.  (Kernel socket buffers
are not this process's memory and are not counted.)

Everything is measured (transport write buffers, stream buffers) after every read any of the
four sockets delivers, which is the only way bytes enter this process.  Then the reader
resumes and every byte must arrive intact (sha256).
"""

import random
from typing import Iterator

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from frptw.transport.layered import layer
from frptw.transport.splice import CARRIER_BUFFER_SIZE, splice, widenWriteBuffer
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.yamux import YamuxSession
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.snappy import MAX_CHUNK_LENGTH, SnappyFramingCodec
from frptw.wire.yamux import DEFAULT_MAX_STREAM_WINDOW
from tests.support import TCP_BUFFER, Notifying, Peer, buffered, closeOnCleanup, stalled, tcpPair

log = Logger()
MiB = 1024 * 1024
TOTAL = 64 * MiB
#: The most one layered write puts on a stream or socket: one TCP read (at most 64 KiB, so
#: one snappy chunk of at most 4 + MAX_CHUNK_LENGTH bytes), the stream identifier (10 bytes)
#: and the IV (16 bytes) if it is the first.
LAYERED_WRITE = 4 + MAX_CHUNK_LENGTH + 10 + 16
#: The bound stated in the module docstring.
BOUND = (
    DEFAULT_MAX_STREAM_WINDOW
    + LAYERED_WRITE
    + 2 * (TCP_BUFFER + LAYERED_WRITE)
    + 2 * (CARRIER_BUFFER_SIZE + LAYERED_WRITE)
    + 2 * (MAX_CHUNK_LENGTH + 4)
    + 2 * 16
)


class Meter:
    """Sums the bytes held in this process by the spliced path and keeps the peak."""

    def __init__(self, tcpTransports: list, streams: list) -> None:
        self.tcpTransports = tcpTransports
        self.streams = streams
        self.peak = 0
        self.peakParts = {}

    def watch(self, protocol) -> None:
        """Measure after each read delivered to ``protocol`` (one at the bottom of a chain)."""
        received = protocol.dataReceived

        def measured(data: bytes) -> None:
            received(data)
            self.sample()

        protocol.dataReceived = measured

    def parts(self) -> dict:
        parts = {f"tcp{i}": buffered(t) for i, t in enumerate(self.tcpTransports)}
        for i, stream in enumerate(self.streams):
            parts[f"stream{i}.in"] = stream.bufferedInput
            parts[f"stream{i}.out"] = stream.bufferedOutput
        return parts

    def sample(self) -> int:
        parts = self.parts()
        total = sum(parts.values())
        if total > self.peak:
            self.peak, self.peakParts = total, parts
        return total


class StreamAcceptor(Factory):
    """Accepts the one stream the client side opens (frps's side of a work connection)."""

    def __init__(self) -> None:
        self.accepted = Notifying()

    def buildProtocol(self, addr) -> Notifying:
        return self.accepted


def workLayers(proto: SwitchableProtocol, token: str) -> SwitchableProtocol:
    """frp's data-plane layering of a work connection with encryption and compression."""
    return layer(layer(proto, AESCFBCodec(derive_key(token))), SnappyFramingCodec())


def payload() -> Iterator[bytes]:
    """64 KiB chunks, alternately incompressible and compressible (both snappy chunk types)."""
    rng = random.Random(7)
    text = (b"frp backpressure " * 4096)[:65536]
    while True:
        yield rng.randbytes(65536)
        yield text


class NotifyingSession(YamuxSession):
    """A yamux session that says when it is connected."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.made: Deferred = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self)


class BackpressureProofTests(TestCase):
    timeout = 180

    async def test_stopped_reader_bounds_memory_then_everything_arrives(self) -> None:
        token = "backpressure"
        # The yamux session over loopback TCP: "frpc" (client) opens the stream, "frps" accepts.
        acceptor = StreamAcceptor()
        serverSession = NotifyingSession(isClient=False, clock=reactor, acceptFactory=acceptor, keepaliveInterval=None)
        clientSession = YamuxSession(isClient=True, clock=reactor, keepaliveInterval=None)
        await tcpPair(self, clientSession, serverSession)
        widenWriteBuffer(clientSession.transport)  # as frpc and frps do with their connection
        widenWriteBuffer(serverSession.transport)
        self.addCleanup(_closeSession, clientSession)
        self.addCleanup(_closeSession, serverSession)
        clientStream = SwitchableProtocol()
        await clientSession.openStream(clientStream)
        await acceptor.accepted.made
        serverStream = acceptor.accepted

        # frps side: the user connection, spliced to the layered stream.
        sender, userSide = Peer(seed=3, chunks=payload()), Notifying()
        await tcpPair(self, sender, userSide, small=True)
        closeOnCleanup(self, sender)
        frpsDone = splice(userSide, workLayers(serverStream, token))

        # frpc side: the layered stream, spliced to the local service (our stopped reader).
        reader, backendSide = Peer(seed=4), SwitchableProtocol()
        await tcpPair(self, backendSide, reader, small=True)
        closeOnCleanup(self, reader)
        frpcDone = splice(workLayers(clientStream, token), backendSide)

        meter = Meter(
            [userSide.transport, serverSession.transport, clientSession.transport, backendSide.transport],
            [serverStream.transport, clientStream.transport],
        )
        for bottom in (userSide, serverSession, clientSession, backendSide):
            meter.watch(bottom)

        reader.transport.pauseProducing()
        sender.send(TOTAL)
        await stalled(sender, timeout=60)
        held = meter.sample()

        self.assertLess(sender.sent, TOTAL // 2, "the sender was not held back")
        self.assertTrue(backendSide.transport.producerPaused)
        self.assertNotIn(userSide.transport, reactor.getReaders())
        self.assertGreater(clientStream.transport.bufferedInput, DEFAULT_MAX_STREAM_WINDOW // 2)
        self.assertLessEqual(meter.peak, BOUND, meter.peakParts)
        log.info(
            "sender paused after {sent} of {total} bytes; held in process {held}, peak {peak} "
            "(bound {bound}): {parts}",
            sent=sender.sent,
            total=TOTAL,
            held=held,
            peak=meter.peak,
            bound=BOUND,
            parts=meter.peakParts,
        )

        reader.transport.resumeProducing()
        await reader.whenReceived(TOTAL)
        self.assertEqual(reader.received, TOTAL)
        self.assertEqual(reader.receivedHash.digest(), sender.sentHash.digest())
        self.assertLessEqual(meter.peak, BOUND, meter.peakParts)

        sender.transport.loseConnection()
        await frpsDone
        await frpcDone
        await reader.lost


def _closeSession(session: YamuxSession) -> Deferred:
    session.close()
    return session.whenClosed()
