"""``bandwidth_limit``: token buckets on a connection's bytes (wire-protocol.md §7.5).

frpc applies the limit to a work connection's raw bytes (``bandwidth_limit_mode = "client"``),
frps to the user connection's plaintext (``"server"``).  A :class:`TokenBucket` has rate N
bytes/s and burst N bytes; the caller decides which buckets a connection spends from (frps
shares one per proxy, as frp does).  :class:`BandwidthLimiter` sits between a connection and
the layer above (it is that layer's transport, like
:class:`frptw.transport.layered.LayeredProtocol`), spending tokens as bytes pass:

* reading: bytes are delivered at once; when that overdraws the bucket the lower transport is
  paused until the bucket is back to zero, so the peer is slowed by TCP/yamux flow control;
* writing: bytes are written at once; when that overdraws the bucket the producer that feeds us
  (the local service's transport, registered by ``splice``) is paused until the bucket refills.

Nothing is buffered here, so backpressure rule 3 holds; both pauses combine with the normal
flow-control pauses (a pause is lifted only when no reason for it is left).  Timers use the
injected clock.
"""

from typing import Optional

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


class BandwidthLimiter(StackedTransport):
    """Protocol of the work connection and transport of the layer above, throttled both ways."""

    def __init__(
        self, read: TokenBucket, write: TokenBucket, clock: IReactorTime, wrappedProtocol: SwitchableProtocol
    ) -> None:
        super().__init__(wrappedProtocol)
        self._clock = clock
        self._read = read
        self._write = write
        # Reading from the lower transport is paused while any of these is true.
        self._readPausedByUpper = False
        self._readThrottle: Optional[IDelayedCall] = None
        # The producer writing into us is paused while any of these is true.
        self._producer: Optional[IPushProducer] = None
        self._writePausedByLower = False
        self._writeThrottle: Optional[IDelayedCall] = None

    # -- facing the lower transport ----------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self.wrappedProtocol.dataReceived(data)
        wait = self._read.spend(len(data))
        if wait > 0 and self._readThrottle is None and self.transport is not None:
            self._readThrottle = self._clock.callLater(wait, self._readRefilled)
            self._updateReading()

    def _readRefilled(self) -> None:
        self._readThrottle = None
        self._updateReading()

    def _updateReading(self) -> None:
        if self._readPausedByUpper or self._readThrottle is not None:
            self.transport.pauseProducing()
        else:
            self.transport.resumeProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        cancelCall(self._readThrottle)
        cancelCall(self._writeThrottle)
        self._readThrottle = self._writeThrottle = None
        super().connectionLost(reason)

    # -- ITransport for the layer above ------------------------------------------------------
    def write(self, data: bytes) -> None:
        if not data:
            return
        self.transport.write(data)
        wait = self._write.spend(len(data))
        if wait > 0 and self._writeThrottle is None:
            self._writeThrottle = self._clock.callLater(wait, self._writeRefilled)
            self._updateWriting()

    def _writeRefilled(self) -> None:
        self._writeThrottle = None
        self._updateWriting()

    def _updateWriting(self) -> None:
        if self._producer is None:
            return
        if self._writePausedByLower or self._writeThrottle is not None:
            self._producer.pauseProducing()
        else:
            self._producer.resumeProducing()

    # -- IConsumer: we stand between the upper producer and the lower transport --------------
    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        self._producer = producer
        self.transport.registerProducer(_LowerPauses(self), True)
        if self._writeThrottle is not None:
            # The bucket is in debt already (a reused connection, a shared bucket): the new
            # producer waits for the refill like the previous one did.
            producer.pauseProducing()

    def unregisterProducer(self) -> None:
        self._producer = None
        self.transport.unregisterProducer()

    # -- IPushProducer: the layer above pausing our reading ----------------------------------
    def pauseProducing(self) -> None:
        self._readPausedByUpper = True
        self._updateReading()

    def resumeProducing(self) -> None:
        self._readPausedByUpper = False
        self._updateReading()



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
        self._limiter._updateWriting()

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
