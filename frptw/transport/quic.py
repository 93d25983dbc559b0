"""QUIC sessions and streams as Twisted transports, over aioquic's sans-IO ``QuicConnection``.

frp's QUIC transport (wire-protocol.md §2.8): one QUIC connection per frpc session, ALPN
``frp``, and every logical connection (control, work, visitor) is one client-opened
bidirectional stream; there is no yamux and no extra TLS layer.  frp closes a stream by
cancelling its read side (STOP_SENDING, code 0) and closing its write side (FIN), and the
session with application error 0 and an empty reason.

:class:`QuicSession` is not a Protocol: it is fed datagrams (:meth:`QuicSession.datagramReceived`)
and hands the datagrams to send to a ``send(data, addr)`` callable, so any UDP socket can carry
it: frpc's connected socket (:mod:`frptw.transport.quicudp`), frps's listening socket shared by
many sessions, or a hole punched for xtcp.  Every timer runs on the injected clock.

Each stream is a :class:`QuicStream`, an ordinary Twisted transport (``ITransport``,
``IConsumer``, ``IPushProducer``), so the same protocols run on it as on a TCP connection or a
yamux stream.

Backpressure (design rule 2):

* Writing: aioquic's stream send buffer grows without limit, so :meth:`QuicStream.write` pauses
  its producer while more than :data:`SEND_HIGH_WATER` written bytes wait unsent (the peer's
  flow control window or the congestion window is spent) and resumes it once they went out.
* Reading: aioquic widens a stream's receive window as data *arrives*, whatever the reader
  does.  :class:`FrpQuicConnection` widens it only as the protocol *consumes* data, so a paused
  reader (:meth:`QuicStream.pauseProducing`) stops the peer after one window per stream.
"""

import logging
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Tuple

from aioquic import tls
from aioquic.quic import events
from aioquic.quic.connection import MAX_STREAM_DATA_FRAME_CAPACITY, QuicConnection, QuicFrameType
from cryptography import x509
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
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.errors import ConnectionClosed
from frptw.logs import FrpLogger
from frptw.transport.timers import cancelCall

log = FrpLogger()
# aioquic reports through the stdlib logger "quic" (a failed handshake as a warning); frptw says
# why a session ended in its own log line, so keep Python's last-resort handler from printing it.
logging.getLogger("quic").addHandler(logging.NullHandler())

#: frp's ALPN on both sides.
ALPN = "frp"
#: Written bytes a stream may hold unsent before its producer is paused.
SEND_HIGH_WATER = 256 * 1024
#: frp's application error code for closing streams and sessions.
NO_ERROR = 0

Address = Tuple[str, int]


#: Checks a client's certificate (leaf, then the chain it sent); raises ValueError to refuse it.
ClientCertificateCheck = Callable[[x509.Certificate, List[x509.Certificate]], None]


class _CertificateRequired(tls.Alert):
    """TLS 1.3's ``certificate_required`` alert (RFC 8446 §6.2), which aioquic does not name:
    what Go's crypto/tls sends when a client required to present a certificate sends none."""

    description = 116


class FrpQuicConnection(QuicConnection):
    """aioquic's connection with three frp needs aioquic has no public API for.

    * ``maxIncomingStreams`` (frp's ``transport.quic.maxIncomingStreams``) as the initial
      bidirectional stream limit advertised to the peer (aioquic hard-codes 128);
    * receive windows granted as the application consumes data (:meth:`consumed`), not as it
      arrives, which is what lets a paused reader stop the sender;
    * on a server, ``clientCertificateCheck``: a client certificate is required and checked
      inside the handshake, as Go's ``RequireAndVerifyClientCert`` (frps with
      ``transport.tls.trustedCaFile``) does; a client without one, or with one the check
      refuses, gets the alert Go sends and never reaches the application.

    These touch aioquic internals (``_local_max_streams_bidi``, ``_write_stream_limits``,
    ``_streams``, the sender's ``_buffer_stop``, the TLS context's certificate request and its
    two client-certificate handlers); setup.py pins the aioquic release line this was checked
    against and tests/test_transport_quic.py exercises each of them.
    """

    def __init__(self, *, configuration, maxIncomingStreams: int = 100000,
                 clientCertificateCheck: Optional[ClientCertificateCheck] = None, **kwargs) -> None:
        super().__init__(configuration=configuration, **kwargs)
        limit = self._local_max_streams_bidi
        limit.value = limit.sent = max(1, maxIncomingStreams)
        self._window = configuration.max_stream_data
        self._consumed: Dict[int, int] = {}
        self._clientCertificateCheck = clientCertificateCheck

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        check = self._clientCertificateCheck
        if check is None or self._is_client:
            return
        context = self.tls
        context._request_client_certificate = True
        handleCertificate = context._server_handle_certificate
        handleCertificateVerify = context._server_handle_certificate_verify

        def certificateReceived(buf) -> None:
            handleCertificate(buf)
            if context._peer_certificate is None:
                raise _CertificateRequired("a client certificate is required")

        def certificateVerified(buf) -> None:
            handleCertificateVerify(buf)  # the client holds the certificate's key
            try:
                check(context._peer_certificate, list(context._peer_certificate_chain))
            except ValueError as e:
                raise tls.AlertBadCertificate(f"client certificate refused: {e}") from None

        context._server_handle_certificate = certificateReceived
        context._server_handle_certificate_verify = certificateVerified

    def consumed(self, streamId: int, size: int) -> None:
        """The application took ``size`` more bytes of stream ``streamId``."""
        self._consumed[streamId] = self._consumed.get(streamId, 0) + size

    def forget(self, streamId: int) -> None:
        self._consumed.pop(streamId, None)

    def send(self, streamId: int, data: bytes, end: bool = False) -> bool:
        """Queue ``data`` (and FIN if ``end``) on a stream; False if its send side is already
        reset (the peer's STOP_SENDING, whose event is still on its way) or discarded."""
        try:
            self.send_stream_data(streamId, data, end_stream=end)
        except (RuntimeError, ValueError):
            return False
        return True

    def unsent(self, streamId: int) -> int:
        """Bytes written to stream ``streamId`` that were not sent yet."""
        stream = self._streams.get(streamId)
        if stream is None:
            return 0
        sender = stream.sender
        return max(0, sender._buffer_stop - sender.highest_offset)

    def _write_stream_limits(self, builder, space, stream) -> None:
        """MAX_STREAM_DATA when the consumed bytes came within half a window of the limit."""
        local = stream.max_stream_data_local
        if not local:
            return
        consumed = self._consumed.get(stream.stream_id, 0)
        if local - consumed < self._window // 2:
            stream.max_stream_data_local = consumed + self._window
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            buf = builder.start_frame(
                QuicFrameType.MAX_STREAM_DATA,
                capacity=MAX_STREAM_DATA_FRAME_CAPACITY,
                handler=self._on_max_stream_data_delivery,
                handler_args=(stream,),
            )
            buf.push_uint_var(stream.stream_id)
            buf.push_uint_var(stream.max_stream_data_local)
            stream.max_stream_data_local_sent = stream.max_stream_data_local


@implementer(ITransport, IConsumer, IPushProducer)
class QuicStream:
    """The transport of one QUIC stream (built by :class:`QuicSession`, not by users)."""

    def __init__(self, session: "QuicSession", streamId: int) -> None:
        self.streamId = streamId
        self.protocol: Optional[IProtocol] = None
        self.connected = True
        self.disconnecting = False
        self._session = session
        self._conn = session._conn
        self._recvChunks: Deque[bytes] = deque()
        self._readPaused = False
        self._delivering = False
        self._eofReceived = False
        self._eofDelivered = False
        self._sendClosed = False  # FIN sent, or the peer stopped reading
        self._producer: Optional[IProducer] = None
        self._producerPaused = False
        self._lost = False

    def __repr__(self) -> str:
        return f"<QuicStream {self.streamId} of {self._session!r}>"

    def _connect(self, protocol: IProtocol) -> None:
        self.protocol = protocol
        protocol.makeConnection(self)

    # -- writing -----------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._sendClosed or self._lost or not data:
            return
        self._conn.send(self.streamId, bytes(data))
        self._session._scheduleTransmit()
        if self._producer is not None:
            self._updateProducer()

    def writeSequence(self, data: List[bytes]) -> None:
        self.write(b"".join(data))

    def registerProducer(self, producer: IProducer, streaming: bool) -> None:
        if self._producer is not None:
            raise RuntimeError(f"{self!r} already has a producer")
        if self._lost:
            producer.stopProducing()
            return
        if not streaming:
            raise NotImplementedError("QUIC streams take push producers only")
        self._producer = producer
        self._producerPaused = False
        self._session._fed[self] = None
        self._updateProducer()

    def unregisterProducer(self) -> None:
        self._producer = None
        self._session._fed.pop(self, None)

    def _updateProducer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        blocked = self._session._writePaused or self._conn.unsent(self.streamId) > SEND_HIGH_WATER
        if blocked != self._producerPaused:
            self._producerPaused = blocked
            if blocked:
                producer.pauseProducing()
            else:
                producer.resumeProducing()

    # -- closing -----------------------------------------------------------------------------
    def loseConnection(self) -> None:
        """frp's close: stop reading (STOP_SENDING 0) and FIN after what was written."""
        if self.disconnecting or self._lost:
            return
        self.disconnecting = True
        self._recvChunks.clear()
        if not self._sendClosed:
            self._sendClosed = True
            self._conn.send(self.streamId, b"", end=True)
        self._stopReading()
        self._session._scheduleTransmit()
        self._finish(Failure(ConnectionDone()), later=True)

    def abortConnection(self) -> None:
        """Reset both directions at once."""
        if self._lost:
            return
        if not self._sendClosed:
            self._sendClosed = True
            self._conn.reset_stream(self.streamId, NO_ERROR)
        self._stopReading()
        self._session._scheduleTransmit()
        self._finish(Failure(ConnectionAborted()), later=True)

    def _stopReading(self) -> None:
        if not self._eofReceived:
            try:
                self._conn.stop_stream(self.streamId, NO_ERROR)
            except ValueError:
                pass  # aioquic discarded the stream: both sides are finished

    def _finish(self, reason: Failure, later: bool) -> None:
        if self._lost:
            return
        self._lost = True
        self.connected = False
        self._session._streams.pop(self.streamId, None)
        self._session._fed.pop(self, None)
        self._conn.forget(self.streamId)
        self._recvChunks.clear()
        producer, self._producer = self._producer, None
        if later:
            self._session._clock.callLater(0, self._notifyLost, producer, reason)
        else:
            self._notifyLost(producer, reason)

    def _notifyLost(self, producer: Optional[IProducer], reason: Failure) -> None:
        if producer is not None:
            producer.stopProducing()
        if self.protocol is not None:
            self.protocol.connectionLost(reason)

    # -- reading -----------------------------------------------------------------------------
    def pauseProducing(self) -> None:
        self._readPaused = True

    def resumeProducing(self) -> None:
        self._readPaused = False
        self._drain()
        self._session._scheduleTransmit()  # the window the delivered bytes earned

    def stopProducing(self) -> None:
        self.loseConnection()

    def _dataReceived(self, data: bytes, end: bool) -> None:
        if self.disconnecting or self._lost:
            return
        if data:
            self._recvChunks.append(data)
        if end:
            self._eofReceived = True
        self._drain()

    def _drain(self) -> None:
        if self._delivering:
            return
        self._delivering = True
        try:
            chunks = self._recvChunks
            while chunks and not self._readPaused and not self.disconnecting and not self._lost:
                chunk = chunks.popleft()
                self._conn.consumed(self.streamId, len(chunk))
                try:
                    self.protocol.dataReceived(chunk)
                except Exception:
                    log.failure("{stream!r}: protocol failed on received data; resetting the stream", stream=self)
                    self.abortConnection()
        finally:
            self._delivering = False
        if self._eofReceived and not self._eofDelivered and not self._recvChunks and not self._readPaused:
            if self.disconnecting or self._lost:
                return
            self._eofDelivered = True
            if self._sendClosed:
                self._finish(Failure(ConnectionDone()), later=False)
                return
            half = IHalfCloseableProtocol(self.protocol, None)
            if half is not None:
                half.readConnectionLost()
            else:
                self.loseConnection()

    def _stopSendingReceived(self) -> None:
        """The peer reads no more (aioquic has reset our send side)."""
        self._sendClosed = True
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._session._fed.pop(self, None)
            producer.stopProducing()
        if self._eofDelivered:
            self._finish(Failure(ConnectionDone()), later=False)

    # -- addresses ---------------------------------------------------------------------------
    def getPeer(self) -> IAddress:
        return self._session.getPeer()

    def getHost(self) -> IAddress:
        return self._session.getHost()


class QuicSession:
    """One QUIC connection driven on the Twisted clock, its streams as transports.

    :param connection: a fresh :class:`FrpQuicConnection` (client: ``connect`` already called).
    :param clock: every timer (aioquic's, the keep-alive) uses it.
    :param send: ``send(datagram, addr)``: put one datagram on the wire.
    :param peer: the IAddress that stream transports report as their peer.
    :param host: the IAddress that stream transports report as their host.
    :param acceptFactory: builds the protocol of each stream the peer opens; None refuses them.
    :param keepalivePeriod: seconds between PINGs when the session is quiet (0: none).
    """

    def __init__(
        self,
        connection: FrpQuicConnection,
        clock: IReactorTime,
        send: Callable[[bytes, Address], None],
        peer: IAddress,
        host: IAddress,
        acceptFactory: Optional[IProtocolFactory] = None,
        keepalivePeriod: float = 10.0,
    ) -> None:
        self._conn = connection
        self._clock = clock
        self._send = send
        self._peer = peer
        self._host = host
        self._acceptFactory = acceptFactory
        #: The lowest id a stream the peer opens next can have (ids below it were seen).
        self._nextPeerStream = 0 if connection._is_client is False else 1
        self._keepalivePeriod = keepalivePeriod
        self._streams: Dict[int, QuicStream] = {}
        self._fed: Dict[QuicStream, None] = {}
        self._writePaused = False
        self._transmitCall: Optional[IDelayedCall] = None
        self._timer: Optional[IDelayedCall] = None
        self._timerAt: Optional[float] = None
        self._keepaliveCall: Optional[IDelayedCall] = None
        self._pingId = 0
        self._handshakeDone = False
        self._handshakeWaiters: List[Deferred] = []
        self._closeWaiters: List[Deferred] = []
        self.closed = False
        #: Why the session ended (a ConnectionTerminated event), once it has.
        self.closeReason: Optional[str] = None

    def __repr__(self) -> str:
        return f"<QuicSession {'client' if self._conn._is_client else 'server'} peer={self._peer}>"

    def getPeer(self) -> IAddress:
        return self._peer

    def getHost(self) -> IAddress:
        return self._host

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Send what the connection has to say first (a client's Initial) and arm the timers."""
        self._transmit()
        self._resetKeepalive()

    def whenConnected(self) -> Deferred:
        """Fires once the handshake completed; fails with ConnectionClosed if it never does."""
        if self._handshakeDone:
            return succeed(self)
        if self.closed:
            return fail(ConnectionClosed(f"QUIC connection closed: {self.closeReason}"))
        d: Deferred = Deferred()
        self._handshakeWaiters.append(d)
        return d

    def whenClosed(self) -> Deferred:
        """Fires (with None) once the session has ended."""
        if self.closed:
            return succeed(None)
        d: Deferred = Deferred()
        self._closeWaiters.append(d)
        return d

    def close(self) -> None:
        """Close the session as frp does (application error 0, empty reason)."""
        if not self.closed:
            self._conn.close(error_code=NO_ERROR, reason_phrase="")
            self._transmit()
            self._ended("closed locally")

    def abort(self) -> None:
        """End the session without telling the peer."""
        if not self.closed:
            self._ended("aborted")

    def _ended(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.closeReason = why
        cancelCall(self._timer)
        cancelCall(self._transmitCall)
        cancelCall(self._keepaliveCall)
        self._timer = self._transmitCall = self._keepaliveCall = None
        reason = Failure(ConnectionLost(f"QUIC connection closed: {why}"))
        for stream in list(self._streams.values()):
            stream._finish(reason, later=False)
        waiters, self._handshakeWaiters = self._handshakeWaiters, []
        for d in waiters:
            d.errback(ConnectionClosed(f"QUIC connection closed: {why}"))
        waiters, self._closeWaiters = self._closeWaiters, []
        for d in waiters:
            d.callback(None)

    # -- streams ---------------------------------------------------------------------------
    def openStream(self, protocol: IProtocol) -> Deferred:
        """Open a bidirectional stream for ``protocol``; fires with it once connected."""
        if self.closed:
            return fail(ConnectionClosed(f"QUIC connection closed: {self.closeReason}"))
        streamId = self._conn.get_next_available_stream_id()
        self._conn.send(streamId, b"")  # creates the stream (queued if over the peer's limit)
        stream = QuicStream(self, streamId)
        self._streams[streamId] = stream
        stream._connect(protocol)
        return succeed(protocol)

    # -- the wire --------------------------------------------------------------------------
    def datagramReceived(self, data: bytes, addr: Address) -> None:
        """Feed one datagram from the peer."""
        if self.closed:
            return
        self._conn.receive_datagram(data, addr, now=self._clock.seconds())
        self._resetKeepalive()
        self._processEvents()
        self._scheduleTransmit()

    def pauseProducing(self) -> None:
        """The socket is full (if a socket ever says so): pause every stream's producer."""
        if not self._writePaused:
            self._writePaused = True
            for stream in list(self._fed):
                stream._updateProducer()

    def resumeProducing(self) -> None:
        if self._writePaused:
            self._writePaused = False
            for stream in list(self._fed):
                stream._updateProducer()

    def _scheduleTransmit(self) -> None:
        """Send on the next turn: every write of this turn goes out in full packets."""
        if self._transmitCall is None and not self.closed:
            self._transmitCall = self._clock.callLater(0, self._transmit)

    def _transmit(self) -> None:
        self._transmitCall = None
        now = self._clock.seconds()
        send = self._send
        for data, addr in self._conn.datagrams_to_send(now=now):
            send(data, addr)
        self._processEvents()
        if self.closed:
            return
        for stream in list(self._fed):
            stream._updateProducer()
        self._armTimer()

    def _armTimer(self) -> None:
        at = self._conn.get_timer()
        if at == self._timerAt and self._timer is not None and self._timer.active():
            return
        cancelCall(self._timer)
        self._timer = None
        self._timerAt = at
        if at is not None:
            self._timer = self._clock.callLater(max(0.0, at - self._clock.seconds()), self._onTimer)

    def _onTimer(self) -> None:
        self._timer = None
        self._timerAt = None
        self._conn.handle_timer(now=self._clock.seconds())
        self._processEvents()
        if not self.closed:
            self._transmit()

    def _resetKeepalive(self) -> None:
        if self._keepalivePeriod and self._keepalivePeriod > 0 and not self.closed:
            cancelCall(self._keepaliveCall)
            self._keepaliveCall = self._clock.callLater(self._keepalivePeriod, self._ping)

    def _ping(self) -> None:
        self._keepaliveCall = None
        self._pingId += 1
        self._conn.send_ping(self._pingId)
        self._transmit()
        self._resetKeepalive()

    # -- events ----------------------------------------------------------------------------
    def _processEvents(self) -> None:
        conn = self._conn
        streams = self._streams
        event = conn.next_event()
        while event is not None:
            kind = type(event)
            if kind is events.StreamDataReceived:
                stream = streams.get(event.stream_id)
                if stream is None:
                    stream = self._accept(event.stream_id)
                if stream is not None:
                    stream._dataReceived(event.data, event.end_stream)
            elif kind is events.StopSendingReceived:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._stopSendingReceived()
            elif kind is events.StreamReset:
                stream = streams.get(event.stream_id)
                if stream is not None:
                    stream._finish(Failure(ConnectionLost("QUIC stream reset by peer")), later=False)
            elif kind is events.HandshakeCompleted:
                self._handshakeDone = True
                waiters, self._handshakeWaiters = self._handshakeWaiters, []
                for d in waiters:
                    d.callback(self)
            elif kind is events.ConnectionTerminated:
                why = event.reason_phrase or f"error code {event.error_code}"
                self._ended(why)
                return
            event = conn.next_event()

    def _accept(self, streamId: int) -> Optional[QuicStream]:
        """A stream the peer opened: build its protocol, or refuse it (reset, stop)."""
        if streamId & 3 != self._nextPeerStream & 3 or streamId < self._nextPeerStream:
            return None  # ours or already seen, and finished here; or unidirectional: frp opens none
        self._nextPeerStream = streamId + 4
        protocol = self._acceptFactory.buildProtocol(self._peer) if self._acceptFactory is not None else None
        if protocol is None:
            self._conn.reset_stream(streamId, NO_ERROR)
            self._conn.stop_stream(streamId, NO_ERROR)
            return None
        stream = QuicStream(self, streamId)
        self._streams[streamId] = stream
        stream._connect(protocol)
        return stream
