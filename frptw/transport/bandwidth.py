"""``bandwidth_limit``: token buckets on a connection's bytes (wire-protocol.md §7.5).

frpc applies the limit to a work connection's raw bytes (``bandwidth_limit_mode = "client"``),
frps to the user connection's plaintext (``"server"``).  A :class:`TokenBucket` has rate N
bytes/s and burst N bytes, and works as golang.org/x/time/rate's ``WaitN``: a reservation may
take the balance below zero and is honoured once the balance is back to zero.  The caller decides
which buckets a connection spends from: frp (and frptw) give a proxy ONE bucket, shared by all
its connections and both directions, on the side that limits.  :class:`BandwidthLimiter` sits
between a connection and the layer above (it is that layer's transport, like
:class:`frptw.transport.layered.LayeredProtocol`) and paces bytes as frp's limited reader and
writer do: in chunks of at most N bytes, each passed on only once its tokens are there.  So the
first N bytes go at once and the rest at N bytes/s, however large one write or read is (a
50 KB request at 10 KB/s takes 4 s each way, as with frp).

* reading: the bytes waiting for tokens are held and the lower transport is paused meanwhile,
  so the peer is slowed by TCP/yamux flow control; what is held is at most what the lower
  transport delivered before it saw the pause (one read);
* writing: the bytes waiting for tokens are held and the producer that feeds us (the local
  service's transport, registered by ``splice``) is paused meanwhile; closing waits for them.

Both pauses combine with the normal flow-control pauses (a pause is lifted only when no reason
for it is left).  The end of the stream (half-close, connection lost) reaches the layer above
after the bytes held before it.  Timers use the injected clock.
"""

from collections import deque
from typing import Callable, Deque, Optional

from twisted.internet.interfaces import IDelayedCall, IProducer, IPushProducer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.transport.stacked import StackedTransport, stack
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall


class TokenBucket:
    """Rate ``rate`` tokens/s, burst ``rate`` tokens, starting full; may go into debt."""

    def __init__(self, rate: int, clock: IReactorTime) -> None:
        self.rate = rate
        self._clock = clock
        self._tokens = float(rate)
        self._stamp = clock.seconds()

    def spend(self, n: int) -> float:
        """Take ``n`` tokens; return the seconds until the balance is back to zero (0 if none)."""
        now = self._clock.seconds()
        self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        self._tokens -= n
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class _Pacer:
    """One direction of a :class:`BandwidthLimiter`: bytes queued, passed to ``sink`` in chunks of
    at most ``bucket.rate`` bytes, each once the bucket can pay for it (a chunk's tokens are
    reserved when it reaches the head of the queue, as frp's reader/writer call ``WaitN``).

    ``blocked()`` says the receiving side cannot take bytes now (a reserved chunk then waits,
    already paid for); ``changed()`` is called whenever :attr:`busy` may have changed.
    """

    def __init__(self, bucket: TokenBucket, clock: IReactorTime, sink: Callable[[bytes], None],
                 blocked: Callable[[], bool], changed: Callable[[], None]) -> None:
        self._bucket = bucket
        self._clock = clock
        self._sink = sink
        self._blocked = blocked
        self._changed = changed
        self._queue: Deque[bytes] = deque()
        self._paid: Optional[bytes] = None  # reserved, to be passed on when not blocked
        self._timer: Optional[IDelayedCall] = None
        self._pumping = False

    @property
    def busy(self) -> bool:
        """Bytes are waiting (for tokens or for the receiving side)."""
        return bool(self._queue) or self._paid is not None or self._timer is not None

    def push(self, data: bytes) -> None:
        self._queue.append(data)
        self.pump()

    def pump(self) -> None:
        """Pass on what the tokens and the receiving side allow now; reentrant calls (a sink that
        pauses, resumes or closes) are folded into the running one."""
        if self._pumping:
            return
        self._pumping = True
        try:
            while self._timer is None and not self._blocked():
                if self._paid is not None:
                    chunk, self._paid = self._paid, None
                    self._sink(chunk)
                    continue
                if not self._queue:
                    break
                chunk = self._queue.popleft()
                if len(chunk) > self._bucket.rate:
                    self._queue.appendleft(chunk[self._bucket.rate:])
                    chunk = chunk[:self._bucket.rate]
                wait = self._bucket.spend(len(chunk))
                if wait > 0:
                    self._paid = chunk
                    self._timer = self._clock.callLater(wait, self._paidFor)
                else:
                    self._sink(chunk)
        finally:
            self._pumping = False
        self._changed()

    def _paidFor(self) -> None:
        self._timer = None
        self.pump()

    def clear(self) -> None:
        """Forget what is held and stop the timer (the connection is gone)."""
        cancelCall(self._timer)
        self._timer = self._paid = None
        self._queue.clear()


class BandwidthLimiter(StackedTransport):
    """Protocol of the work connection and transport of the layer above, throttled both ways."""

    def __init__(
        self, read: TokenBucket, write: TokenBucket, clock: IReactorTime, wrappedProtocol: SwitchableProtocol
    ) -> None:
        super().__init__(wrappedProtocol)
        # Reading from the lower transport is paused while the layer above asks or bytes wait.
        self._readPausedByUpper = False
        self._lowerPaused = False
        self._inbound = _Pacer(read, clock, self._deliver, self._inboundBlocked, self._updateReading)
        self._lost: Optional[Failure] = None
        self._readEnded = False
        # The producer writing into us is paused while the lower transport asks or bytes wait.
        self._producer: Optional[IPushProducer] = None
        self._producerPaused = False
        self._writePausedByLower = False
        self._outbound = _Pacer(write, clock, self._send, lambda: self._writePausedByLower, self._updateWriting)
        self._closeWhenSent: Optional[Callable[[], None]] = None

    # -- facing the lower transport ----------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        if data:
            self._inbound.push(data)

    def _deliver(self, chunk: bytes) -> None:
        self.wrappedProtocol.dataReceived(chunk)

    def _inboundBlocked(self) -> bool:
        # Once the connection is gone nothing can be paused any more: what is held goes up
        # at the rate, so connectionLost follows in bounded time.
        return self._readPausedByUpper and self._lost is None

    def _updateReading(self) -> None:
        if not self._inbound.busy:
            if self._readEnded:
                self._readEnded = False
                super().readConnectionLost()
            if self._lost is not None:
                reason, self._lost = self._lost, None
                self._outbound.clear()
                super().connectionLost(reason)
        if self._lost is not None or self.connected is False:
            return
        paused = self._readPausedByUpper or self._inbound.busy
        if paused != self._lowerPaused:  # only changes reach the lower transport
            self._lowerPaused = paused
            if paused:
                self.transport.pauseProducing()
            else:
                self.transport.resumeProducing()

    def readConnectionLost(self) -> None:
        if self._inbound.busy:
            self._readEnded = True
        else:
            super().readConnectionLost()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closeWhenSent = None
        self._outbound.clear()
        if self._inbound.busy:
            self._lost = reason
            self._inbound.pump()
        else:
            super().connectionLost(reason)

    # -- ITransport for the layer above ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if data and self._lost is None and self.connected is not False:
            self._outbound.push(data)

    def _send(self, chunk: bytes) -> None:
        self.transport.write(chunk)

    def _updateWriting(self) -> None:
        if not self._outbound.busy and self._closeWhenSent is not None:
            close, self._closeWhenSent = self._closeWhenSent, None
            close()
        if self._producer is None:
            return
        paused = self._writePausedByLower or self._outbound.busy
        if paused != self._producerPaused:
            self._producerPaused = paused
            if paused:
                self._producer.pauseProducing()
            else:
                self._producer.resumeProducing()

    def loseConnection(self) -> None:
        self.disconnecting = True
        self._afterSent(self.transport.loseConnection)

    def loseWriteConnection(self) -> None:
        self._afterSent(self.transport.loseWriteConnection)

    def abortConnection(self) -> None:
        self._outbound.clear()
        self._closeWhenSent = None
        super().abortConnection()

    def _afterSent(self, close: Callable[[], None]) -> None:
        if self._outbound.busy:
            self._closeWhenSent = close
        else:
            close()

    # -- IConsumer: we stand between the upper producer and the lower transport --------------
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer
        self._producerPaused = False
        self.transport.registerProducer(_LowerPauses(self), True)
        # Bytes of an earlier producer may still wait for tokens: then the new one waits too.
        self._updateWriting()

    def unregisterProducer(self) -> None:
        self._producer = None
        self.transport.unregisterProducer()

    # -- IPushProducer: the layer above pausing our reading ----------------------------------
    def pauseProducing(self) -> None:
        self._readPausedByUpper = True
        self._updateReading()

    def resumeProducing(self) -> None:
        self._readPausedByUpper = False
        self._inbound.pump()


@implementer(IPushProducer)
class _LowerPauses:
    """What the lower transport sees as our producer: its pauses combine with the throttle."""

    def __init__(self, limiter: BandwidthLimiter) -> None:
        self._limiter = limiter

    def pauseProducing(self) -> None:
        self._limiter._writePausedByLower = True
        self._limiter._updateWriting()

    def resumeProducing(self) -> None:
        self._limiter._writePausedByLower = False
        self._limiter._outbound.pump()

    def stopProducing(self) -> None:
        producer = self._limiter._producer
        if producer is not None:
            producer.stopProducing()


def throttle(
    proto: SwitchableProtocol, clock: IReactorTime, read: TokenBucket, write: Optional[TokenBucket] = None
) -> SwitchableProtocol:
    """Switch ``proto``'s connection to a :class:`BandwidthLimiter` spending ``read`` for bytes
    received and ``write`` (default: the same bucket) for bytes sent, and return the switchable
    protocol above it (held bytes pass through first)."""
    return stack(proto, lambda top: BandwidthLimiter(read, write if write is not None else read, clock, top))
