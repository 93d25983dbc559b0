"""Traffic for end-to-end tests: an echo backend and a checked bulk exchange through a proxy.

:func:`exchange` opens ``connections`` concurrent TCP connections to a port (usually an frp
proxy's remote port in front of an :class:`EchoServer`), streams ``nbytes`` pseudo-random bytes
on each with a push producer (so the test itself respects backpressure), and checks that the
echoed bytes have the same sha256.  Bytes therefore move both ways through the proxy.  A
``greeting`` goes first when the route needs one (a TLS ClientHello for an https vhost, a
CONNECT head for tcpmux), and the payload only once the ``answer`` expected for it came back.
"""

import hashlib
import random
from typing import List, Optional

from twisted.internet import defer, protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from frptw.transport.sockets import systemBacklog

CHUNK = 64 * 1024


class _Echo(protocol.Protocol):
    def connectionMade(self) -> None:
        # A slow reader of our echo pauses our reading: the transport produces for itself.
        self.transport.registerProducer(self.transport, True)
        self.factory.connections.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self.factory.connections.remove(self)


class EchoServer(protocol.Factory):
    """Echoes every byte back on 127.0.0.1; ``port`` is known after :meth:`listen`."""

    protocol = _Echo

    def __init__(self) -> None:
        self.connections: List[_Echo] = []
        self.port: Optional[int] = None
        self._listening = None

    @classmethod
    def listen(cls, reactor, interface: str = "127.0.0.1", port: int = 0) -> defer.Deferred:
        """Start listening on ``port`` (0: an ephemeral one); fire with the EchoServer."""
        self = cls()
        # The system's backlog, as frptw's listeners have: a burst of dials from frpc is queued,
        # not dropped and retried a second later.
        d = TCP4ServerEndpoint(reactor, port, backlog=systemBacklog(), interface=interface).listen(self)

        def listening(port):
            self._listening = port
            self.port = port.getHost().port
            return self

        return d.addCallback(listening)

    def stop(self) -> defer.Deferred:
        """Stop listening and drop open connections."""
        for conn in list(self.connections):
            conn.transport.abortConnection()
        return defer.maybeDeferred(self._listening.stopListening)


@implementer(IPushProducer)
class _Exchanger(protocol.Protocol):
    def __init__(self, nbytes: int, seed: int, greeting: bytes = b"", answer: bytes = b"") -> None:
        self.greeting = greeting
        self.answer = answer
        self.head = b""
        self.remaining = nbytes
        self.expected = nbytes
        self.received = 0
        self.sent_digest = hashlib.sha256()
        self.got_digest = hashlib.sha256()
        self._random = random.Random(seed)
        self._paused = False
        self.done = defer.Deferred()

    def connectionMade(self) -> None:
        if self.greeting:
            self.transport.write(self.greeting)
        if not self.answer:
            self._startPayload()

    def _startPayload(self) -> None:
        self.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while not self._paused and self.remaining > 0:
            chunk = self._random.randbytes(min(CHUNK, self.remaining))
            self.remaining -= len(chunk)
            self.sent_digest.update(chunk)
            self.transport.write(chunk)
        if self.remaining == 0:
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self._paused = True

    def dataReceived(self, data: bytes) -> None:
        if len(self.head) < len(self.answer):
            missing = len(self.answer) - len(self.head)
            self.head, data = self.head + data[:missing], data[missing:]
            if not self.answer.startswith(self.head):
                self.transport.abortConnection()
                return
            if len(self.head) == len(self.answer):
                self._startPayload()
        if not data:
            return
        self.received += len(data)
        self.got_digest.update(data)
        if self.received >= self.expected:
            self.transport.loseConnection()

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        if self.head != self.answer:
            self.done.errback(AssertionError(f"answered {self.head!r}, not {self.answer!r}: {reason.value}"))
        elif self.received != self.expected:
            self.done.errback(AssertionError(f"echoed {self.received} of {self.expected} bytes: {reason.value}"))
        elif self.got_digest.digest() != self.sent_digest.digest():
            self.done.errback(AssertionError("echoed bytes differ from sent bytes (sha256)"))
        else:
            self.done.callback(self.received)


def exchange(
    reactor, port: int, nbytes: int, connections: int = 1, host: str = "127.0.0.1", timeout: float = 120.0,
    greeting: bytes = b"", answer: bytes = b"",
) -> defer.Deferred:
    """Send ``nbytes`` on each of ``connections`` concurrent connections and check the echo.

    Each connection first writes ``greeting`` and waits for exactly ``answer`` (the echoed
    greeting, or the route's reply to it) before the payload.  Fires with the total number of
    payload bytes echoed (each also sent); fails with AssertionError on another answer, a short
    or corrupted echo, or after ``timeout`` seconds.
    """
    endpoint = TCP4ClientEndpoint(reactor, host, port, timeout=10)
    exchangers = []

    def one(seed: int) -> defer.Deferred:
        ex = _Exchanger(nbytes, seed, greeting, answer)
        exchangers.append(ex)
        d = endpoint.connect(protocol.Factory.forProtocol(lambda: ex))
        d.addCallback(lambda _: ex.done)
        return d

    d = defer.gatherResults([one(i) for i in range(connections)], consumeErrors=True)
    d.addCallback(sum)

    def unwrap(f):
        f.trap(defer.FirstError)
        return f.value.subFailure

    d.addErrback(unwrap)

    def cleanup(result):
        for ex in exchangers:
            if ex.transport is not None and ex.transport.connected:
                ex.transport.abortConnection()
        return result

    d.addTimeout(timeout, reactor)
    d.addBoth(cleanup)
    return d
