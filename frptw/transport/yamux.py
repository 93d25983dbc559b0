"""yamux sessions and streams as Twisted protocols and transports.

:class:`YamuxSession` is a Protocol put on a (TLS or TCP) connection; it drives the sans-IO
:class:`frptw.wire.yamux.YamuxConnection` and gives every stream a :class:`YamuxStream`
transport, so an ordinary Twisted protocol runs on a stream exactly as on a TCP connection.

Backpressure (design rule 2):

* Writing: :meth:`YamuxStream.write` sends what the peer's window allows at once and holds the
  rest; while it holds anything its registered producer is paused, and the producer is resumed
  when window updates have drained the held bytes.  A well-behaved producer therefore leaves
  at most about one window (plus its last chunk) per stream in memory.  When the session's
  own transport is full it pauses the session (registered as the transport's producer), and
  the session pauses every stream's producer.
* Reading: data is handed to the stream's protocol as it arrives and only then counted as
  consumed, which is what earns the peer new window.  :meth:`YamuxStream.pauseProducing` keeps
  arriving data in the stream instead; no window update goes out, so the far sender stops
  after one window.  :meth:`YamuxStream.resumeProducing` delivers what was kept.

Ending a stream: the peer's FIN becomes ``readConnectionLost()`` for an
``IHalfCloseableProtocol``; any other protocol is closed (FIN) in reply.  ``connectionLost``
is delivered with ``ConnectionDone`` when both sides have sent FIN, with ``ConnectionLost``
when the peer resets the stream or the session dies uncleanly, and with
``ConnectionAborted`` after :meth:`YamuxStream.abortConnection`.  Calls the protocol makes
itself (``loseConnection``, ``abortConnection``) never reach ``connectionLost`` re-entrantly:
it comes from the clock, on the next turn.

Timers (all on the injected clock) follow frp's yamux configuration: a keep-alive ping every
``keepaliveInterval`` seconds that must be answered within ``pingTimeout``, an ACK for every
opened stream within ``openTimeout``, a FIN answer within ``streamCloseTimeout`` (else RST).
A missed ping or ACK closes the whole session, as yamux does.
"""

from collections import deque
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, ContextManager, Deque, Dict, Iterator, List, Optional, Tuple

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.error import ConnectionAborted, ConnectionDone, ConnectionLost
from twisted.internet.interfaces import (
    IAddress,
    IConsumer,
    IDelayedCall,
    IHalfCloseableProtocol,
    IProducer,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
    ITransport,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.errors import ConnectionClosed
from frptw.logs import FrpLogger
from frptw.transport.lazytimer import Deadlines
from frptw.transport.timers import cancelCall
from frptw.wire import yamux as wire

log = FrpLogger()

#: Seconds to wait for the answer to a keep-alive ping (yamux's connection write timeout).
PING_TIMEOUT = 10.0
#: Seconds a locally closed stream waits for the peer's FIN before sending RST.
STREAM_CLOSE_TIMEOUT = 300.0


@implementer(ITransport, IConsumer, IPushProducer)
class YamuxStream:
    """The transport of one yamux stream (built by :class:`YamuxSession`, not by users).

    ``streamId`` is the yamux id; ``protocol`` the connected protocol.
    """

    def __init__(self, session: "YamuxSession", streamId: int) -> None:
        self.streamId = streamId
        self.protocol: Optional[IProtocol] = None
        self.connected = True
        self.disconnecting = False
        self._session = session
        self._conn = session._conn
        self._clock = session._clock
        # receive side
        self._recvChunks: Deque[bytes] = deque()
        self._recvSize = 0
        self._readPaused = False
        self._delivering = False
        self._eofReceived = False
        self._eofDelivered = False
        # send side
        self._sendChunks: Deque[Any] = deque()
        self._sendSize = 0
        self._finSent = False
        self._producer: Optional[IProducer] = None
        self._streaming = True
        self._producerPaused = False
        self._pullCall: Optional[IDelayedCall] = None
        # life cycle
        self._lost = False

    def __repr__(self) -> str:
        return f"<YamuxStream {self.streamId} of {self._session!r}>"

    def _connect(self, protocol: IProtocol) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    # -- ITransport / IConsumer: writing -------------------------------------------------------
    @property
    def bufferedOutput(self) -> int:
        """Bytes written but not yet sent because the peer's window is spent."""
        return self._sendSize

    def write(self, data: bytes) -> None:
        """Send ``data``, holding what exceeds the peer's window (see the module docstring).

        As on TCP, bytes written after ``loseConnection`` still go out if the FIN is still
        waiting for held bytes; after the FIN (or a reset) writes are dropped.
        """
        if self._finSent or self._lost or not data:
            return
        if type(data) is not bytes:
            data = bytes(data)
        if self._sendChunks:
            self._sendChunks.append(data)
            self._sendSize += len(data)
        else:
            try:
                sent = self._conn.send_data(self.streamId, data)
            except wire.StreamClosedError:
                return  # reset by the peer; the event that says so is on its way
            if sent < len(data):
                self._sendChunks.append(memoryview(data)[sent:])
                self._sendSize += len(data) - sent
            self._session._flush()
        if self._producer is not None:
            self._updateProducer()

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def _flushSend(self) -> None:
        """Send held bytes the window now allows, then FIN if asked for; update the producer."""
        chunks = self._sendChunks
        while chunks:
            chunk = chunks[0]
            try:
                sent = self._conn.send_data(self.streamId, chunk)
            except wire.StreamClosedError:
                chunks.clear()
                self._sendSize = 0
                break
            if not sent:
                break
            self._sendSize -= sent
            if sent == len(chunk):
                chunks.popleft()
            else:
                chunks[0] = memoryview(chunk)[sent:]
        if not chunks and self.disconnecting and not self._finSent and not self._lost:
            self._sendFin()
        self._session._flush()
        self._updateProducer()

    def _sendFin(self) -> None:
        self._finSent = True
        self._session._unacknowledged.discard(self)
        self._conn.close_stream(self.streamId)
        if self._eofReceived:
            self._finish(Failure(ConnectionDone()), later=True)
        else:
            self._session._closing.add(self)

    def _closeTimedOut(self) -> None:
        self._conn.reset_stream(self.streamId)
        self._session._flush()
        self._finish(Failure(ConnectionLost("peer did not close the stream in time; reset it")), later=False)

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        """Register the producer feeding this stream (push, or minimally supported pull)."""
        if self._producer is not None:
            raise RuntimeError(f"{self!r} already has a producer")
        if self._lost:
            producer.stopProducing()
            return
        self._producer = producer
        self._streaming = bool(streaming)
        self._producerPaused = False
        self._session._fed[self] = None
        self._updateProducer()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._session._fed.pop(self, None)
        cancelCall(self._pullCall)
        self._pullCall = None

    def _blocked(self) -> bool:
        return self._sendSize > 0 or self._session._writePaused

    def _updateProducer(self) -> None:
        """Pause/resume a push producer; schedule the next pull of a pull producer."""
        producer = self._producer
        if producer is None:
            return
        blocked = self._blocked()
        if self._streaming:
            if blocked != self._producerPaused:
                self._producerPaused = blocked
                if blocked:
                    producer.pauseProducing()
                else:
                    producer.resumeProducing()
        elif not blocked and self._pullCall is None:
            self._pullCall = self._clock.callLater(0, self._pull)

    def _pull(self) -> None:
        self._pullCall = None
        if self._producer is not None and not self._streaming and not self._blocked() and not self._lost:
            self._producer.resumeProducing()

    # -- closing ---------------------------------------------------------------------------
    def loseConnection(self) -> None:
        """Send FIN once held bytes are flushed; data arriving afterwards is discarded."""
        if self.disconnecting or self._lost:
            return
        self.disconnecting = True
        self._discardReceived()
        self._flushSend()

    def abortConnection(self) -> None:
        """Reset the stream (RST) at once, dropping held bytes both ways."""
        if self._lost:
            return
        self._conn.reset_stream(self.streamId)
        self._session._flush()
        self._finish(Failure(ConnectionAborted()), later=True)

    def _discardReceived(self) -> None:
        if self._recvSize:
            self._conn.consumed(self.streamId, self._recvSize)
        self._recvChunks.clear()
        self._recvSize = 0

    def _finish(self, reason: Failure, later: bool) -> None:
        """The stream is over: forget it and tell the protocol (now or on the next turn)."""
        if self._lost:
            return
        self._lost = True
        self.connected = False
        self._session._streams.pop(self.streamId, None)
        self._session._fed.pop(self, None)
        self._session._unacknowledged.discard(self)
        self._session._closing.discard(self)
        cancelCall(self._pullCall)
        self._pullCall = None
        self._recvChunks.clear()
        self._recvSize = 0
        self._sendChunks.clear()
        self._sendSize = 0
        producer, self._producer = self._producer, None
        if later:
            self._clock.callLater(0, self._notifyLost, producer, reason)
        else:
            self._notifyLost(producer, reason)

    def _notifyLost(self, producer: Optional[IProducer], reason: Failure) -> None:
        if producer is not None:
            producer.stopProducing()
        if self.protocol is not None:
            self.protocol.connectionLost(reason)

    # -- IPushProducer: reading --------------------------------------------------------------
    @property
    def bufferedInput(self) -> int:
        """Bytes received but held back from the protocol because reading is paused."""
        return self._recvSize

    def pauseProducing(self) -> None:
        """Stop delivering data (and granting window) until :meth:`resumeProducing`."""
        self._readPaused = True

    def resumeProducing(self) -> None:
        self._readPaused = False
        self._drainReceived()
        self._session._flush()

    def stopProducing(self) -> None:
        self.loseConnection()

    def _dataReceived(self, data: bytes) -> None:
        if self.disconnecting:
            self._conn.consumed(self.streamId, len(data))
            return
        if self._recvChunks or self._readPaused or self._delivering or self._lost:
            self._recvChunks.append(data)
            self._recvSize += len(data)
            self._drainReceived()
            return
        # Fast path, nothing held and the protocol reading: hand the data straight over.
        self._delivering = True
        try:
            self._deliver(data)
        finally:
            self._delivering = False
        if self._recvChunks or self._eofReceived:  # arrived while the protocol was busy
            self._drainReceived()

    def _deliver(self, data: bytes) -> None:
        """Give ``data`` to the protocol, counting it as consumed (which earns the peer window)."""
        self._conn.consumed(self.streamId, len(data))
        try:
            self.protocol.dataReceived(data)
        except Exception:
            log.failure("{stream!r}: protocol failed on received data; resetting the stream", stream=self)
            self.abortConnection()

    def _drainReceived(self) -> None:
        """Deliver held data (and then a pending EOF) while the protocol is not paused."""
        if self._delivering:
            return  # the outer delivery loop, further up the stack, carries on
        self._delivering = True
        try:
            chunks = self._recvChunks
            while chunks and not self._readPaused and not self.disconnecting and not self._lost:
                chunk = chunks.popleft()
                self._recvSize -= len(chunk)
                self._deliver(chunk)
        finally:
            self._delivering = False
        if (
            self._eofReceived
            and not self._eofDelivered
            and not self._recvChunks
            and not self._readPaused
            and not self.disconnecting
            and not self._lost
        ):
            self._eofDelivered = True
            half = IHalfCloseableProtocol(self.protocol, None)
            if half is not None:
                half.readConnectionLost()
            else:
                self.loseConnection()

    # -- events from the session ---------------------------------------------------------------
    def _remoteEnded(self) -> None:
        self._eofReceived = True
        self._session._unacknowledged.discard(self)
        if self._finSent:
            self._finish(Failure(ConnectionDone()), later=False)
        else:
            self._drainReceived()

    def _acknowledged(self) -> None:
        self._session._unacknowledged.discard(self)

    # -- addresses ---------------------------------------------------------------------------
    def getPeer(self) -> IAddress:
        return self._session.transport.getPeer()

    def getHost(self) -> IAddress:
        return self._session.transport.getHost()


@implementer(IPushProducer)
class YamuxSession(Protocol):
    """A yamux session over this protocol's transport.

    :param isClient: True on frpc's side (odd stream ids).
    :param clock: the reactor's ``IReactorTime``; every timer uses it.
    :param acceptFactory: builds the protocol of each stream the peer opens (its
        ``buildProtocol`` gets the session's peer address); None refuses them (RST).
    :param keepaliveInterval: seconds between keep-alive pings; 0 or None disables them.
    :param openTimeout: seconds an opened stream may wait for the peer's ACK before the
        session is closed.
    """

    def __init__(
        self,
        isClient: bool,
        clock: IReactorTime,
        acceptFactory: Optional[IProtocolFactory] = None,
        keepaliveInterval: Optional[float] = 30.0,
        openTimeout: float = 75.0,
        pingTimeout: float = PING_TIMEOUT,
        streamCloseTimeout: float = STREAM_CLOSE_TIMEOUT,
        maxStreamWindow: int = wire.DEFAULT_MAX_STREAM_WINDOW,
    ) -> None:
        self.isClient = isClient
        self._clock = clock
        self._acceptFactory = acceptFactory
        self._keepaliveInterval = keepaliveInterval
        self._openTimeout = openTimeout
        #: Streams we opened that wait for the peer's ACK, and streams we closed first that
        #: wait for the peer's FIN: one timer each for the whole session.
        self._unacknowledged: Deadlines[YamuxStream] = Deadlines(clock, openTimeout, self._openTimedOut)
        self._closing: Deadlines[YamuxStream] = Deadlines(clock, streamCloseTimeout, YamuxStream._closeTimedOut)
        self._pingTimeout = pingTimeout
        self._conn = wire.YamuxConnection(isClient, maxStreamWindow)
        self._streams: Dict[int, YamuxStream] = {}
        #: The streams that have a registered producer (an ordered set): the only ones a
        #: full transport has anything to pause, so pausing need not walk idle streams.
        self._fed: Dict[YamuxStream, None] = {}
        self._pendingOpens: Deque[Tuple[IProtocol, Deferred]] = deque()
        self._writePaused = False
        self._closed = False
        self._closeWaiters: List[Deferred] = []
        self._keepaliveCall: Optional[IDelayedCall] = None
        self._pingTimeoutCall: Optional[IDelayedCall] = None
        self._pingId: Optional[int] = None
        #: Nesting depth of :meth:`writesTogether`: frames wait for the outermost to end.
        self._joining = 0

    def __repr__(self) -> str:
        peer = self.transport.getPeer() if self.transport is not None else None
        return f"<YamuxSession {'client' if self.isClient else 'server'} peer={peer}>"

    # -- connection life cycle ---------------------------------------------------------------
    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)
        self._scheduleKeepalive()

    def dataReceived(self, data: bytes) -> None:
        streams = self._streams
        for event in self._conn.receive_data(data):
            if type(event) is wire.DataReceived:  # the data plane: no handler lookup
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._dataReceived(event.data)
            else:
                self._handlers[type(event)](self, event)
        self._flush()
        if self._pendingOpens:
            self._openPending()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closed = True
        self._stopTimers()
        if reason.check(ConnectionDone):
            streamReason = Failure(ConnectionDone("yamux session closed"))
        else:
            streamReason = Failure(ConnectionLost(f"yamux session lost: {reason.getErrorMessage()}"))
        self._failPendingOpens("yamux session closed")
        for stream in list(self._streams.values()):
            stream._finish(streamReason, later=False)
        # A protocol told of its stream's end may close another stream (a splice closes its
        # other side), which arms that stream's FIN deadline before its own _finish.
        self._closing.cancel()
        waiters, self._closeWaiters = self._closeWaiters, []
        for waiter in waiters:
            waiter.callback(None)

    def close(self) -> None:
        """Close the session by closing its transport (frp sends no Go Away for this)."""
        if self.transport is not None and not self._closed:
            self._loseTransport()

    def _loseTransport(self) -> None:
        # We are the transport's registered producer; a TLS transport defers loseConnection
        # until its producer unregisters, so unregister first or the connection stays open.
        self.transport.unregisterProducer()
        self.transport.loseConnection()

    def whenClosed(self) -> Deferred:
        """A Deferred that fires (with None) once the session's connection is lost."""
        if self._closed:
            return succeed(None)
        waiter: Deferred = Deferred()
        self._closeWaiters.append(waiter)
        return waiter

    def _abort(self) -> None:
        abort = getattr(self.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def _flush(self) -> None:
        if self._joining:
            return
        chunks = self._conn.chunks_to_send()
        if chunks and not self._closed:
            self.transport.writeSequence(chunks)

    @contextmanager
    def writesTogether(self) -> Iterator[None]:
        """Frames of any stream queued inside go to the transport as one write when the
        outermost block ends (one TLS record and one ``send`` instead of one per frame)."""
        self._joining += 1
        try:
            yield
        finally:
            self._joining -= 1
            if not self._joining and self.transport is not None:
                self._flush()

    # -- opening streams ---------------------------------------------------------------------
    def openStream(self, protocol: IProtocol) -> Deferred:
        """Open a stream for ``protocol``; fires with ``protocol`` once it is connected.

        The protocol is connected right after the SYN is sent (it may write at once, as frp
        does).  If ``accept_backlog`` opens already wait for their ACK, this one waits too.
        Fails with :class:`frptw.errors.ConnectionClosed` if the session is gone or the peer
        sent Go Away.
        """
        if self.transport is None or self._closed:
            return fail(ConnectionClosed("yamux session is not connected"))
        if not self._pendingOpens:
            try:
                return succeed(self._open(protocol))
            except wire.OpenLimitReached:
                pass
            except wire.SessionClosedError as error:
                return fail(ConnectionClosed(str(error)))
        entry: Tuple[IProtocol, Deferred]
        waiter: Deferred = Deferred(lambda d: self._pendingOpens.remove(entry))
        entry = (protocol, waiter)
        self._pendingOpens.append(entry)
        return waiter

    def _open(self, protocol: IProtocol) -> IProtocol:
        streamId = self._conn.open_stream()
        stream = YamuxStream(self, streamId)
        self._streams[streamId] = stream
        self._unacknowledged.add(stream)
        self._flush()
        stream._connect(protocol)
        return protocol

    def _openPending(self) -> None:
        while self._pendingOpens:
            protocol, waiter = self._pendingOpens[0]
            try:
                self._open(protocol)
            except wire.OpenLimitReached:
                return
            except wire.SessionClosedError as error:
                self._failPendingOpens(str(error))
                return
            self._pendingOpens.popleft()
            waiter.callback(protocol)

    def _failPendingOpens(self, why: str) -> None:
        pending, self._pendingOpens = self._pendingOpens, deque()
        for _, waiter in pending:
            waiter.errback(ConnectionClosed(why))

    def _openTimedOut(self, stream: YamuxStream) -> None:
        log.warn(
            "yamux session {session!r}: stream {streamId} not acknowledged within {timeout} s; closing the session",
            session=self,
            streamId=stream.streamId,
            timeout=self._openTimeout,
        )
        self._abort()

    # -- keep-alive ------------------------------------------------------------------------------
    def _scheduleKeepalive(self) -> None:
        if self._keepaliveInterval and self._keepaliveInterval > 0:
            self._keepaliveCall = self._clock.callLater(self._keepaliveInterval, self._sendPing)

    def _sendPing(self) -> None:
        self._keepaliveCall = None
        self._pingId = self._conn.ping()
        self._flush()
        self._pingTimeoutCall = self._clock.callLater(self._pingTimeout, self._pingTimedOut)

    def _pingTimedOut(self) -> None:
        self._pingTimeoutCall = None
        log.warn(
            "yamux session {session!r}: keep-alive ping not answered within {timeout} s; closing the session",
            session=self,
            timeout=self._pingTimeout,
        )
        self._abort()

    def _stopTimers(self) -> None:
        cancelCall(self._keepaliveCall)
        cancelCall(self._pingTimeoutCall)
        self._keepaliveCall = self._pingTimeoutCall = None
        self._unacknowledged.cancel()
        self._closing.cancel()

    # -- IPushProducer (for our transport) -------------------------------------------------
    def pauseProducing(self) -> None:
        """Our transport's buffer is full: pause every stream's producer."""
        if self._writePaused:
            return
        self._writePaused = True
        for stream in list(self._fed):
            stream._updateProducer()

    def resumeProducing(self) -> None:
        if not self._writePaused:
            return
        self._writePaused = False
        for stream in list(self._fed):
            stream._updateProducer()

    def stopProducing(self) -> None:
        """Nothing to do: the transport calls ``connectionLost`` right after."""

    # -- wire events ---------------------------------------------------------------------------
    def _onStreamOpened(self, event: wire.StreamOpened) -> None:
        streamId = event.stream_id
        protocol = None
        if self._acceptFactory is None:
            log.info("yamux session {session!r}: refusing stream {streamId}: this side accepts no streams",
                     session=self, streamId=streamId)
        else:
            protocol = self._acceptFactory.buildProtocol(self.transport.getPeer())
        if protocol is None:
            self._conn.reset_stream(streamId)
            return
        try:
            self._conn.accept_stream(streamId)
        except wire.StreamClosedError:
            return  # reset further down this batch of events
        stream = YamuxStream(self, streamId)
        self._streams[streamId] = stream
        stream._connect(protocol)

    def _onStreamAcknowledged(self, event: wire.StreamAcknowledged) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream._acknowledged()

    def _onDataReceived(self, event: wire.DataReceived) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream._dataReceived(event.data)

    def _onStreamEnded(self, event: wire.StreamEnded) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream._remoteEnded()

    def _onStreamReset(self, event: wire.StreamReset) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream._finish(Failure(ConnectionLost("yamux stream reset by peer")), later=False)

    def _onWindowUpdated(self, event: wire.WindowUpdated) -> None:
        stream = self._streams.get(event.stream_id)
        if stream is not None:
            stream._flushSend()

    def _onPingReceived(self, event: wire.PingReceived) -> None:
        """The answer is already queued by the wire layer; nothing else to do."""

    def _onPongReceived(self, event: wire.PongReceived) -> None:
        if event.ping_id == self._pingId and self._pingTimeoutCall is not None:
            cancelCall(self._pingTimeoutCall)
            self._pingTimeoutCall = None
            self._pingId = None
            self._scheduleKeepalive()

    def _onGoAwayReceived(self, event: wire.GoAwayReceived) -> None:
        if event.code == wire.GoAwayCode.NORMAL:
            log.info("yamux session {session!r}: peer sent Go Away; no new streams", session=self)
            self._failPendingOpens("peer sent Go Away")

    def _onConnectionTerminated(self, event: wire.ConnectionTerminated) -> None:
        log.warn("yamux session {session!r}: {error}; closing the session", session=self, error=event.error)
        self._stopTimers()
        self._flush()
        self._loseTransport()

    _handlers: Dict[type, Callable[["YamuxSession", Any], None]] = {
        wire.StreamOpened: _onStreamOpened,
        wire.StreamAcknowledged: _onStreamAcknowledged,
        wire.DataReceived: _onDataReceived,
        wire.StreamEnded: _onStreamEnded,
        wire.StreamReset: _onStreamReset,
        wire.WindowUpdated: _onWindowUpdated,
        wire.PingReceived: _onPingReceived,
        wire.PongReceived: _onPongReceived,
        wire.GoAwayReceived: _onGoAwayReceived,
        wire.ConnectionTerminated: _onConnectionTerminated,
    }


def writesTogether(transport: Any) -> ContextManager[None]:
    """What is written inside to ``transport`` and to the other streams of its yamux session
    leaves as one write at the end (:meth:`YamuxSession.writesTogether`); for a transport that
    is not a yamux stream there is nothing to join."""
    if isinstance(transport, YamuxStream):
        return transport._session.writesTogether()
    return nullcontext()
