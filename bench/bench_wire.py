"""CPU cost of frptw's data plane: yamux, AES-CFB, snappy and lz4 layers (run on demand).

Every measured path has the same skeleton, the data plane of one proxied connection::

    feed ─> src ═splice═ [tunnel end 1] ~~link~~ [tunnel end 2] ═splice═ dst ─> sink

with 64 KiB chunks entering at ``src`` and the tunnel being:

* ``plain splice``  nothing: the two ends of the link themselves (tcpMux off, no layers);
* ``yamux``         one stream of a yamux session on each end of the link (two sessions);
* ``aes-cfb``, ``snappy``, ``lz4``  a LayeredProtocol with that codec on each end.

It runs twice: in memory (the link and the endpoints are memory transports that pause their
producer above 64 KiB queued, as a socket does, so windows, producer pass-through and splice
pauses all run; without system calls every overhead looks as large as it can), and over
loopback TCP (feeder, link and sink are sockets), which is where "yamux layer CPU overhead
vs plain splice" is meaningful.  As in production, the two link sockets (frpc <-> frps) of
every path have the widened carrier buffer (``widenWriteBuffer``: 128 KiB write buffer and
reads), the feeder and sink sockets (user and service connections) Twisted's default 64 KiB.
Each path is also compared with the bare sans-IO cost of its codec (encode + decode of the
same chunks, or two YamuxConnection objects for yamux).

Run from the checkout root:  python bench/bench_wire.py --help   (see bench/README.md)
"""

import argparse
import os
import random
import sys
import time
from typing import Callable, Iterable, List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from twisted.internet import task  # noqa: E402
from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint  # noqa: E402
from twisted.internet.interfaces import IConsumer, IPushProducer, ITransport  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.internet.task import deferLater  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402
from zope.interface import implementer  # noqa: E402

from frptw.transport.layered import layer  # noqa: E402
from frptw.transport.splice import splice, widenWriteBuffer  # noqa: E402
from frptw.transport.switch import SwitchableProtocol  # noqa: E402
from frptw.transport.yamux import YamuxSession  # noqa: E402
from frptw.wire import yamux as wire  # noqa: E402
from frptw.wire.crypto import AESCFBCodec, derive_key  # noqa: E402
from frptw.wire.lz4 import LZ4FrameCodec  # noqa: E402
from frptw.wire.snappy import SnappyFramingCodec  # noqa: E402
from tests.support import Notifying  # noqa: E402

CHUNK = 64 * 1024
#: A memory transport pauses its producer above this many queued bytes, as Twisted's TCP does.
LINK_BUFFER = 64 * 1024
KEY = derive_key("bench")


# -- in-memory transports ----------------------------------------------------------------------


@implementer(ITransport, IConsumer, IPushProducer)
class MemoryTransport:
    """One end of an in-memory link: ``write`` queues bytes for the other end's protocol,
    :meth:`MemoryLink.pump` delivers them.  A sink (no peer) just counts."""

    disconnecting = False

    def __init__(self) -> None:
        self.peer: Optional["MemoryTransport"] = None
        self.protocol: Optional[Protocol] = None
        self.queue: List[bytes] = []
        self.queued = 0
        self.written = 0
        self.paused = False
        self.producer = None
        self._producerPaused = False

    def connect(self, protocol: Protocol) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.peer is None:
            return
        self.queue.append(data)
        self.queued += len(data)
        if self.queued > LINK_BUFFER and self.producer is not None and not self._producerPaused:
            self._producerPaused = True
            self.producer.pauseProducing()

    def writeSequence(self, data: Iterable[bytes]) -> None:
        self.write(b"".join(data))

    def deliver(self) -> bool:
        """Hand queued bytes to the peer's protocol (unless it paused us); True if any moved."""
        if not self.queue or self.peer.paused:
            return False
        data = b"".join(self.queue) if len(self.queue) > 1 else self.queue[0]
        self.queue = []
        self.queued = 0
        self.peer.protocol.dataReceived(data)
        if self.producer is not None and self._producerPaused:
            self._producerPaused = False
            self.producer.resumeProducing()
        return True

    def registerProducer(self, producer, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True

    def loseConnection(self) -> None:
        self.disconnecting = True

    abortConnection = loseConnection

    def getPeer(self) -> IPv4Address:
        return IPv4Address("TCP", "127.0.0.1", 1)

    getHost = getPeer


class MemoryLink:
    """Two connected memory transports and the pump that moves bytes between them."""

    def __init__(self, left: Protocol, right: Protocol) -> None:
        self.left, self.right = MemoryTransport(), MemoryTransport()
        self.left.peer, self.right.peer = self.right, self.left
        self.left.connect(left)
        self.right.connect(right)

    def pump(self) -> None:
        while self.left.deliver() | self.right.deliver():
            pass


# -- tunnels: what sits between the two splices ------------------------------------------------
#
# A tunnel gets the two ends of a link (switchable protocols, connected over memory or TCP),
# a ``settle`` coroutine that lets the link carry what is pending, and the clock; it returns
# the two protocols to splice.


async def plainTunnel(end1, end2, settle, clock) -> tuple:
    return end1, end2


def codecTunnel(codec: Callable[[], object]):
    async def tunnel(end1, end2, settle, clock) -> tuple:
        return layer(end1, codec()), layer(end2, codec())

    return tunnel


async def yamuxTunnel(end1, end2, settle, clock) -> tuple:
    accepted: List[SwitchableProtocol] = []

    class Accept(Factory):
        def buildProtocol(self, addr):
            accepted.append(SwitchableProtocol())
            return accepted[-1]

    client = YamuxSession(isClient=True, clock=clock, keepaliveInterval=None)
    end1.switchTo(client)
    end2.switchTo(YamuxSession(isClient=False, clock=clock, acceptFactory=Accept(), keepaliveInterval=None))
    top1 = SwitchableProtocol()
    await client.openStream(top1)
    while not accepted:
        await settle()
    return top1, accepted[0]


TUNNELS = {"yamux": yamuxTunnel, "aes-cfb": codecTunnel(lambda: AESCFBCodec(KEY)),
           "snappy": codecTunnel(SnappyFramingCodec), "lz4": codecTunnel(LZ4FrameCodec)}


# -- in memory ----------------------------------------------------------------------------------


def runInMemory(tunnel, chunks: List[bytes]) -> int:
    """``feed ─> src ═splice═ tunnel over a memory link ═splice═ dst ─> sink``; returns the
    bytes the sink got.  Feeding stops while ``src``'s transport is paused, as a socket would."""
    src, dst = SwitchableProtocol(), SwitchableProtocol()
    feed, sink = MemoryTransport(), MemoryTransport()
    feed.connect(src)
    sink.connect(dst)
    end1, end2 = SwitchableProtocol(), SwitchableProtocol()
    link = MemoryLink(end1, end2)

    async def settle() -> None:
        link.pump()

    tops: list = []
    ensureDeferred(tunnel(end1, end2, settle, task.Clock())).addCallback(tops.extend)
    splice(src, tops[0])
    splice(tops[1], dst)
    for chunk in chunks:
        while feed.paused:
            link.pump()
        src.dataReceived(chunk)
    link.pump()
    return sink.written


# -- over loopback TCP ----------------------------------------------------------------------------


@implementer(IPushProducer)
class Feeder(Protocol):
    """Writes the chunks as fast as its transport takes them."""

    def __init__(self, chunks: List[bytes]) -> None:
        self.chunks = iter(chunks)
        self.paused = True
        self.made: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.made.callback(self)

    def start(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        for chunk in self.chunks:
            self.transport.write(chunk)
            if self.paused:
                return
        self.transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self.paused = True

    stopProducing = pauseProducing


class Sink(Protocol):
    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.made: Deferred = Deferred()
        self.done: Deferred = Deferred()
        self.lost: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += len(data)
        if self.received == self.expected:
            self.done.callback(self.received)

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


async def tcpPair(reactor, client: Protocol, server: Protocol):
    """Connect ``client`` to ``server`` (which has a ``made`` Deferred) over 127.0.0.1."""
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(lambda: server))
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(Factory.forProtocol(lambda: client))
    await server.made
    return port


async def runOverTCP(reactor, tunnel, chunks: List[bytes]) -> tuple:
    """``feeder ─tcp─ src ═splice═ tunnel over TCP ═splice═ dst ─tcp─ sink``; returns (bytes
    the sink got, CPU seconds from the first write to the last read)."""
    feeder, src = Feeder(chunks), Notifying()
    end1, end2 = SwitchableProtocol(), Notifying()
    dst, sink = SwitchableProtocol(), Sink(len(chunks) * CHUNK)
    ports = [await tcpPair(reactor, feeder, src), await tcpPair(reactor, end1, end2), await tcpPair(reactor, dst, sink)]
    # The link stands for the connection between frpc and frps, which both widen (a work
    # connection with tcpMux off as much as the one carrying the yamux session); the feeder
    # and sink sockets stand for user and service connections, which keep Twisted's default.
    widenWriteBuffer(end1.transport)
    widenWriteBuffer(end2.transport)

    async def settle() -> None:
        await deferLater(reactor, 0.001, lambda: None)

    top1, top2 = await tunnel(end1, end2, settle, reactor)
    closed = [splice(src, top1), splice(top2, dst)]
    start = time.process_time()
    feeder.start()
    received = await sink.done
    seconds = time.process_time() - start
    feeder.transport.loseConnection()
    for d in closed + [sink.lost]:
        await d
    for port in ports:
        await port.stopListening()
    return received, seconds


# -- bare codecs ------------------------------------------------------------------------------


def rawCodec(codec: Callable[[], object]) -> Callable[[List[bytes]], int]:
    def run(chunks: List[bytes]) -> int:
        encoder, decoder = codec(), codec()
        return sum(len(decoder.decode(encoder.encode(chunk))) for chunk in chunks)

    return run


def rawYamux(chunks: List[bytes]) -> int:
    client, server = wire.YamuxConnection(True), wire.YamuxConnection(False)
    streamId = client.open_stream()
    server.receive_data(client.data_to_send())
    server.accept_stream(streamId)
    client.receive_data(server.data_to_send())
    received = 0
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            sent = client.send_data(streamId, view)
            view = view[sent:]
            for event in server.receive_data(client.data_to_send()):
                if isinstance(event, wire.DataReceived):
                    received += len(event.data)
                    server.consumed(streamId, len(event.data))
            client.receive_data(server.data_to_send())
    return received


# -- measuring --------------------------------------------------------------------------------


def payload(kind: str, total: int) -> List[bytes]:
    rng = random.Random(1)
    text = (b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\n\r\n" * 1000)[:CHUNK]
    chunks = []
    for i in range(total // CHUNK):
        incompressible = kind == "random" or (kind == "mixed" and i % 2)
        chunks.append(rng.randbytes(CHUNK) if incompressible else text)
    return chunks


def best(measure: Callable[[], tuple], expected: int, repeat: int) -> float:
    """Best CPU seconds of ``repeat`` runs of ``measure() -> (bytes moved, seconds)``."""
    result = float("inf")
    for _ in range(repeat):
        moved, seconds = measure()
        if moved != expected:
            raise AssertionError(f"moved {moved} of {expected} bytes")
        result = min(result, seconds)
    return result


def cpuTimed(run: Callable[[List[bytes]], int], chunks: List[bytes]) -> Callable[[], tuple]:
    def measure() -> tuple:
        start = time.process_time()
        moved = run(chunks)
        return moved, time.process_time() - start

    return measure


def printTable(title: str, total: int, plain: float, rows: dict, raw: dict) -> None:
    def mbps(seconds: float) -> float:
        return total / seconds / 1e6

    print(f"\n{title}")
    print(f"{'path':<14}{'MB/s':>9}{'raw codec MB/s':>16}{'path/raw CPU':>14}{'vs plain splice':>17}")
    print(f"{'plain splice':<14}{mbps(plain):>9.0f}{'-':>16}{'-':>14}{'-':>17}")
    for name, seconds in rows.items():
        print(
            f"{name:<14}{mbps(seconds):>9.0f}{mbps(raw[name]):>16.0f}"
            f"{seconds / raw[name]:>13.2f}x{seconds / plain - 1:>+16.0%}"
        )


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mib", type=int, default=64, help="MiB moved per run (default 64)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row; the best is kept")
    parser.add_argument("--payload", choices=("mixed", "random", "text"), default="mixed")
    parser.add_argument(
        "--no-tcp",
        action="store_true",
        help="skip the loopback TCP table (whose frpc <-> frps link sockets, in every path, get"
        " the production carrier buffer of widenWriteBuffer)",
    )
    args = parser.parse_args(argv)
    chunks = payload(args.payload, args.mib * 1024 * 1024)
    total = len(chunks) * CHUNK

    raw = {
        "yamux": best(cpuTimed(rawYamux, chunks), total, args.repeat),
        "aes-cfb": best(cpuTimed(rawCodec(lambda: AESCFBCodec(KEY)), chunks), total, args.repeat),
        "snappy": best(cpuTimed(rawCodec(SnappyFramingCodec), chunks), total, args.repeat),
        "lz4": best(cpuTimed(rawCodec(LZ4FrameCodec), chunks), total, args.repeat),
    }

    def inMemory(tunnel) -> float:
        return best(cpuTimed(lambda c: runInMemory(tunnel, c), chunks), total, args.repeat)

    print(f"{args.mib} MiB in 64 KiB chunks, {args.payload} payload, best of {args.repeat}; MB/s = MB per CPU second")
    memPlain = inMemory(plainTunnel)
    memRows = {name: inMemory(tunnel) for name, tunnel in TUNNELS.items()}
    printTable("in memory (no system calls: every overhead at its largest)", total, memPlain, memRows, raw)

    summary = [f"yamux layer CPU overhead vs plain splice, in memory: {memRows['yamux'] / memPlain - 1:+.0%}"]
    if not args.no_tcp:
        from twisted.internet import reactor

        async def tcpTable(reactor) -> None:
            # Round robin over the paths, so that a change in the machine's load (other
            # processes share the cores and caches) hits every path alike.
            paths = {"plain splice": plainTunnel, **TUNNELS}
            samples: dict = {name: [] for name in paths}
            for _ in range(args.repeat):
                for name, tunnel in paths.items():
                    moved, seconds = await runOverTCP(reactor, tunnel, chunks)
                    if moved != total:
                        raise AssertionError(f"moved {moved} of {total} bytes")
                    samples[name].append(seconds)
            plain = min(samples.pop("plain splice"))
            rows = {name: min(runs) for name, runs in samples.items()}
            title = "over loopback TCP (3 sockets each way: feeder, link, sink; the link widened)"
            printTable(title, total, plain, rows, raw)
            spread = max(samples["yamux"]) / rows["yamux"] - 1
            summary.append(
                f"yamux layer CPU overhead vs plain splice, over TCP: {rows['yamux'] / plain - 1:+.0%} (target < +20 %;"
                f" best of {args.repeat}, the slowest yamux run took {spread:+.0%} more CPU than the best)"
            )

        done = []
        reactor.callWhenRunning(
            lambda: ensureDeferred(tcpTable(reactor)).addBoth(done.append).addBoth(lambda _: reactor.stop())
        )
        reactor.run()
        if isinstance(done[0], Failure):
            done[0].raiseException()
    print()
    print("\n".join(summary))
    print(
        "('vs plain splice' = extra CPU per byte over the same path with no tunnel; "
        "'path/raw CPU' = path CPU / bare sans-IO codec CPU)"
    )


if __name__ == "__main__":
    main()
