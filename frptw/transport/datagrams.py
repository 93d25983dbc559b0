"""Datagrams over a framed stream: ``UDPPacket``/``Ping`` messages on a work or visitor connection.

Theory of operation (wire-protocol.md §8, §9.3).  A udp proxy's work connection, and both legs
of an sudp tunnel, stop being byte pipes after their preamble: every datagram travels as one
v1-framed ``UDPPacket`` whose ``r`` is the *user's* address, mixed with ``Ping {}`` keep-alives.
Both frpc and frps need the same adapter, so it lives here, below both.

:class:`DatagramChannel` is the protocol of such a connection (put it on the connection, or on
the switchable protocol above the AES/snappy layers, with ``switchTo``).  Received messages go to
a :class:`DatagramReceiver`; :meth:`DatagramChannel.sendPacket` frames outgoing datagrams.

Backpressure.  Datagrams have no flow control of their own: the sender never waits.  The channel
registers itself as the streaming producer of its transport, so a full write buffer (a slow TCP
peer, a spent yamux window) *pauses* it.  While paused, framed messages wait in a
:class:`BoundedQueue` of at most :data:`MAX_QUEUED` entries (frp queues 1024 packets too); past
that, datagrams are dropped and counted, as a congested UDP network would (frp drops them
silently; we log a line at most every :data:`LOG_INTERVAL` seconds with the count so far, and
call ``onDropped``, with which frps counts them per proxy for its metrics).  Memory therefore
stays bounded whatever the peer does.  Resuming flushes the queue until the transport pauses
us again.

Writes.  :meth:`DatagramChannel.holdWrites` / :meth:`DatagramChannel.releaseWrites` join the
frames of the datagrams one read of a UDP socket delivered into one write (one TLS record, one
``send``), where one write per datagram cost a ``send`` and an ``SSL_write`` each; a lone
datagram still leaves at once, at the end of its read.

Timers come from an injected clock: an optional ``Ping`` every ``pingInterval`` seconds (the
frpc side of a udp/sudp work connection) and an optional idle timeout that closes the
connection after ``idleTimeout`` seconds without any received message (frp's read deadline).
"""

from collections import deque
from typing import Callable, Deque, List, Optional, Tuple
from typing import Protocol as TypingProtocol

from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.logs import FrpLogger
from frptw.transport.lazytimer import LazyTimer
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import (
    Message,
    MessageReader,
    MessageTooLarge,
    Ping,
    UDPAddr,
    UDPPacket,
    encode_message,
    encode_udp_packet,
)

#: Framed messages a paused channel keeps before it drops datagrams (frp: 1024 packets).
MAX_QUEUED = 1024

#: Seconds between two log lines about the same kind of dropped or truncated datagram.
LOG_INTERVAL = 10.0

Address = Tuple[str, int]


class DatagramReceiver(TypingProtocol):
    """What a :class:`DatagramChannel` delivers to."""

    def packetReceived(self, payload: bytes, user: Address) -> None:
        """A datagram for/from the user at ``user`` (the packet's ``r``)."""

    def channelClosed(self, reason: Failure) -> None:
        """The connection is gone; release whatever was kept per user."""


class BoundedQueue:
    """A FIFO of framed messages that refuses (and counts) entries past ``limit``; sans-IO."""

    def __init__(self, limit: int = MAX_QUEUED) -> None:
        self.limit = limit
        self._items: Deque[bytes] = deque()
        #: Messages refused because the queue was full.
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, frame: bytes) -> bool:
        """Queue ``frame``; False (and one more :attr:`dropped`) if the queue is full."""
        if len(self._items) >= self.limit:
            self.dropped += 1
            return False
        self._items.append(frame)
        return True

    def take(self) -> bytes:
        return self._items.popleft()

    def clear(self) -> None:
        self._items.clear()


class LogLimiter:
    """At most one log line per ``interval`` seconds for a repeated event; sans-IO (the caller
    logs).  A burst of bad datagrams must not become a burst of log lines: the first is logged
    at once, later ones are counted and the count goes into the next line that is allowed."""

    def __init__(self, clock: IReactorTime, interval: float = LOG_INTERVAL) -> None:
        self.clock = clock
        self.interval = interval
        self._last: Optional[float] = None
        self._suppressed = 0

    def allow(self) -> Optional[int]:
        """Record one event: the number of events not logged since the last line if a line
        is due now, else None (and the event is counted)."""
        now = self.clock.seconds()
        if self._last is not None and now - self._last < self.interval:
            self._suppressed += 1
            return None
        self._last = now
        suppressed, self._suppressed = self._suppressed, 0
        return suppressed


def encode_packet(payload: bytes, user: Address) -> bytes:
    """The framed ``UDPPacket`` carrying ``payload`` for ``user``.

    :raises MessageTooLarge: the payload does not fit in a v1 message (about 7.5 KB).
    """
    host, port = user
    return encode_udp_packet(payload, UDPAddr(ip=host, port=port))


@implementer(IPushProducer)
class DatagramChannel(Protocol):
    """Carries datagrams as ``UDPPacket`` messages over one stream connection.

    :param receiver: gets every received datagram and the end of the connection.
    :param clock: time source for pings and the idle timeout.
    :param pingInterval: send ``Ping {}`` this often (seconds); None = never.
    :param idleTimeout: close after this many seconds without a received message; None = never.
    :param maxQueued: framed messages kept while the transport is paused or not yet connected.
    :param description: who we are, for log lines (e.g. ``"[udp proxy u1.dns]"``).
    :param onDropped: called once per datagram dropped because the queue was full.
    """

    _log = FrpLogger()

    def __init__(
        self,
        receiver: DatagramReceiver,
        clock: IReactorTime,
        pingInterval: Optional[float] = None,
        idleTimeout: Optional[float] = None,
        maxQueued: int = MAX_QUEUED,
        description: str = "datagram channel",
        onDropped: Optional[Callable[[], None]] = None,
    ) -> None:
        self.receiver = receiver
        self.clock = clock
        self.description = description
        self._pingInterval = pingInterval
        self._idleTimeout = idleTimeout
        self._reader = MessageReader()
        self._queue = BoundedQueue(maxQueued)
        self._paused = True  # until connected
        self._closed = False
        self._ping: Optional[LoopingCall] = None
        self._idle: Optional[LazyTimer] = None
        #: Frames held between holdWrites and releaseWrites; None when not holding.
        self._held: Optional[List[bytes]] = None
        self._onDropped = onDropped
        #: A drop line was logged and the queue has not drained since.
        self._dropLogged = False
        self._dropLog = LogLimiter(clock)
        self._tooLargeLog = LogLimiter(clock)
        #: Datagrams refused because they do not fit in one message.
        self.tooLarge = 0

    @property
    def dropped(self) -> int:
        """Datagrams dropped because the queue was full."""
        return self._queue.dropped

    @property
    def queued(self) -> int:
        return len(self._queue)

    # -- connection ------------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        if self._pingInterval is not None:
            self._ping = LoopingCall(self._sendFrame, encode_message(Ping()))
            self._ping.clock = self.clock
            self._ping.start(self._pingInterval, now=False)
        if self._idleTimeout is not None:
            self._idle = LazyTimer(self.clock, self._idleExpired)
            self._idle.start(self._idleTimeout)
        self.resumeProducing()

    def dataReceived(self, data: bytes) -> None:
        if self._closed:
            return
        self._reader.feed(data)
        try:
            while not self._closed:
                msg = self._reader.next_message()
                if msg is None:
                    return
                self._received(msg)
        except ProtocolError as e:
            self._log.warn("{who}: closing: peer sent bad data: {error}", who=self.description, error=e)
            self._close(abort=True)

    def _received(self, msg: Message) -> None:
        if self._idle is not None:
            self._idle.start(self._idleTimeout)
        if isinstance(msg, UDPPacket):
            if msg.r is None or not msg.r.ip:
                self._log.warn("{who}: dropping a UDPPacket without a user address", who=self.description)
                return
            self.receiver.packetReceived(msg.c, (msg.r.ip, msg.r.port))
        elif not isinstance(msg, Ping):  # pings only keep the connection alive
            self._log.debug("{who}: ignoring {type}", who=self.description, type=type(msg).__name__)

    def _idleExpired(self) -> None:
        self._log.info(
            "{who}: no message for {timeout} s, closing", who=self.description, timeout=self._idleTimeout
        )
        self._close(abort=False)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        self._stopTimers()
        self._queue.clear()
        self.receiver.channelClosed(reason)

    def close(self) -> None:
        """Close the connection (flushing what the transport holds)."""
        self._close(abort=False)

    def _close(self, abort: bool) -> None:
        if self.transport is None:
            self._closed = True
            self._queue.clear()
            return
        if self._closed and not abort:
            return
        self._closed = True
        self._stopTimers()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.unregisterProducer()
            self.transport.loseConnection()

    def _stopTimers(self) -> None:
        if self._ping is not None and self._ping.running:
            self._ping.stop()
        if self._idle is not None:
            self._idle.cancel()

    # -- sending ---------------------------------------------------------------------------
    def sendPacket(self, payload: bytes, user: Address) -> bool:
        """Send one datagram for ``user``; False if it was dropped (too large, queue full,
        channel closed).  Never blocks and never buffers past ``maxQueued`` messages."""
        if self._closed:
            return False
        try:
            frame = encode_packet(payload, user)
        except MessageTooLarge as e:
            self.tooLarge += 1
            unlogged = self._tooLargeLog.allow()
            if unlogged is not None:
                self._log.warn(
                    "{who}: dropping a {size}-byte datagram for {user}: {error} ({unlogged} more since the last line)",
                    who=self.description,
                    size=len(payload),
                    user=user,
                    error=e,
                    unlogged=unlogged,
                )
            return False
        return self._sendFrame(frame)

    def holdWrites(self) -> None:
        """Keep the frames of the datagrams sent from now on for :meth:`releaseWrites`."""
        if self._held is None:
            self._held = []

    def releaseWrites(self) -> None:
        """Write the frames kept since :meth:`holdWrites` as one write."""
        held, self._held = self._held, None
        if held and not self._closed:
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def _sendFrame(self, frame: bytes) -> bool:
        if not self._paused and not self._queue:
            if self._held is not None:
                self._held.append(frame)
            else:
                self.transport.write(frame)
            return True
        if self._queue.put(frame):
            return True
        if self._onDropped is not None:
            self._onDropped()
        if self._dropLog.allow() is not None:
            self._dropLogged = True
            self._log.warn(
                "{who}: peer is not reading, {limit} datagrams queued: dropping datagrams ({dropped} dropped so far)",
                who=self.description,
                limit=self._queue.limit,
                dropped=self.dropped,
            )
        return False

    # -- IPushProducer: the transport tells us when its buffer is full ---------------------
    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if self._closed or self.transport is None:
            return
        self._paused = False
        while self._queue and not self._paused and not self._closed:
            self.transport.write(self._queue.take())
        if not self._queue and self._dropLogged:
            self._dropLogged = False
            self._log.info(
                "{who}: peer reads again; {dropped} datagrams dropped so far", who=self.description, dropped=self.dropped
            )

    def stopProducing(self) -> None:
        self._closed = True
        self._queue.clear()
