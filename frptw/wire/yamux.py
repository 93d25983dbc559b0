"""yamux, the stream multiplexer under frp's ``tcpMux``, as a sans-IO state machine.

Theory of operation
===================

A yamux *session* runs over one reliable byte stream (TCP or TLS) and carries many *streams*.
Everything on the wire is a frame: a 12-byte header (version 0, type, flags, stream id,
length), followed by ``length`` payload bytes for Data frames only.  For Window Update frames
the length is a window *delta*, for Ping an opaque id echoed back, for Go Away an error code.
:func:`encode_header` / :func:`decode_header` are the header codec.

:class:`YamuxConnection` is the whole session state, with no I/O and no timers.  The caller
feeds it received bytes with :meth:`~YamuxConnection.receive_data`, which returns a list of
events (:class:`StreamOpened`, :class:`DataReceived`, ...); it calls methods such as
:meth:`~YamuxConnection.open_stream` or :meth:`~YamuxConnection.send_data` for what the local
application wants, and drains the bytes to send with :meth:`~YamuxConnection.data_to_send`.
Because :meth:`~YamuxConnection.receive_data` processes all the bytes it is given before the
caller sees the events, the state may be ahead of the events: a stream reported as opened may
already be reset further down the same list.  Local operations on a stream that is gone raise
:class:`StreamClosedError` (or do nothing when there is nothing left to do: closing, resetting,
consuming), so callers can simply catch it and wait for the event that explains why.

Streams
-------
Client sessions open odd stream ids, server sessions even ones (in frp only frpc opens).  A
stream is described by four independent facts rather than one enum, because they change
independently:

``awaiting_ack``  we opened it (sent SYN) and the peer has not acknowledged it yet.  Such
                  "in-flight" opens are limited to ``accept_backlog`` (the peer's backlog).
``need_ack``      the peer opened it and we have not accepted it yet.  At most
                  ``accept_backlog`` such streams exist; one more is refused with RST.  The
                  first frame we send on it carries ACK (normally the accept window update).
``local_fin``     we sent FIN: we write no more, but still receive.
``remote_fin``    the peer sent FIN: it writes no more (:class:`StreamEnded`).

A stream is *forgotten* (removed, every later frame for its id ignored, Data drained) when
both FINs have been sent, or when either side sends RST.  Data the peer sends after its own
FIN is dropped (hashicorp/yamux would still buffer it; nobody reads past EOF).

Flow control
------------
Each direction of a stream has a window, initially 256 KiB.  Only Data payload counts.
``recv_window`` is how much the peer may still send us; ``buffered`` is how much we reported
in :class:`DataReceived` events that the application has not yet :meth:`consumed
<YamuxConnection.consumed>`.  The window update we grant is ``delta = max - buffered -
recv_window``, sent with SYN/ACK (so frp's 6 MiB maximum gives 0x5c0000) and afterwards only
when it reaches half the maximum, exactly as hashicorp/yamux (and so frp) does.  Since
``buffered + recv_window <= max`` always holds, a reader that stops consuming stops the far
sender after one window, and the data a stream can have outstanding is bounded by ``max``.
A peer that sends more than the window breaks the protocol: we send Go Away 1 and terminate.

Receive path and buffers
------------------------
Headers are parsed straight out of the received buffer; only a header split across two reads
is assembled in a 12-byte ``bytearray``.  Data payload is not accumulated across calls: what
one :meth:`~YamuxConnection.receive_data` call carries for a stream becomes a
:class:`DataReceived` event at once (its window was checked against the header), so a 6 MiB
frame costs no more memory than the reads that carry it.  Consecutive payload pieces for the
same stream in one call (the tail of a frame and the head of the next, a read straddling
their header) make a single event, and each payload byte is copied at most once (a read that
is all payload is passed on as it is): on the data plane a read costs one event, not one per
frame it touches.  Bytes to send are queued as separate strings (header, payload) that
:meth:`~YamuxConnection.chunks_to_send` returns for a transport's ``writeSequence``.

Errors
------
Peer errors (bad version or type, window overrun, duplicate SYN, FIN twice, Go Away with an
error code) end the session: :meth:`~YamuxConnection.receive_data` returns the events before
the error followed by :class:`ConnectionTerminated`, queues a Go Away 1 where yamux sends one,
and ignores every later byte.  It never raises.  Misuse by the local caller raises a
:class:`YamuxLocalError` subclass.
"""

import enum
import struct
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Union

from frptw.errors import FrpError
from frptw.wire.errors import ProtocolError

PROTOCOL_VERSION = 0
HEADER_SIZE = 12
#: Window every stream starts with, in each direction (yamux spec).
INITIAL_STREAM_WINDOW = 256 * 1024
#: frp's ``MaxStreamWindowSize``; the SYN/ACK delta is this minus the initial window.
DEFAULT_MAX_STREAM_WINDOW = 6 * 1024 * 1024
#: frp's ``AcceptBacklog``.
DEFAULT_ACCEPT_BACKLOG = 256

_MAX_U32 = 0xFFFFFFFF
_HEADER = struct.Struct(">BBHII")

Buffer = Union[bytes, bytearray, memoryview]


class FrameType(enum.IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(enum.IntFlag):
    SYN = 0x1
    ACK = 0x2
    FIN = 0x4
    RST = 0x8


# Plain ints for the hot paths: enum arithmetic costs a Python call per frame.
_DATA, _WINDOW_UPDATE, _PING, _GO_AWAY = (int(t) for t in FrameType)
_SYN, _ACK, _FIN, _RST = (int(f) for f in (Flag.SYN, Flag.ACK, Flag.FIN, Flag.RST))


class GoAwayCode(enum.IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class FrameHeader(NamedTuple):
    """A decoded 12-byte frame header (fields as on the wire, unvalidated)."""

    version: int
    type: int
    flags: int
    stream_id: int
    length: int


def encode_header(type: int, flags: int, stream_id: int, length: int, version: int = PROTOCOL_VERSION) -> bytes:
    """The 12 header bytes for these fields (``struct.error`` if a field does not fit)."""
    return _HEADER.pack(version, type, flags, stream_id, length)


def decode_header(data: Buffer, offset: int = 0) -> FrameHeader:
    """Decode the header at ``data[offset:offset + 12]`` (``struct.error`` if too short).

    No field is checked here; the session decides what is acceptable.
    """
    return FrameHeader(*_HEADER.unpack_from(data, offset))


# -- events ----------------------------------------------------------------------------------
class Event:
    """Base class of everything :meth:`YamuxConnection.receive_data` returns."""

    __slots__ = ()


@dataclass(slots=True)
class StreamOpened(Event):
    """The peer opened a stream; answer with ``accept_stream`` or ``reset_stream``."""

    stream_id: int


@dataclass(slots=True)
class StreamAcknowledged(Event):
    """The peer acknowledged (accepted) a stream we opened."""

    stream_id: int


@dataclass(slots=True)
class DataReceived(Event):
    """Payload bytes for a stream; call ``consumed`` once the application has taken them."""

    stream_id: int
    data: bytes


@dataclass(slots=True)
class StreamEnded(Event):
    """The peer sent FIN on the stream: no more data will arrive on it."""

    stream_id: int


@dataclass(slots=True)
class StreamReset(Event):
    """The peer sent RST (or refused our open): the stream is gone."""

    stream_id: int


@dataclass(slots=True)
class WindowUpdated(Event):
    """The peer raised our send window on the stream by ``delta`` bytes."""

    stream_id: int
    delta: int


@dataclass(slots=True)
class PingReceived(Event):
    """The peer pinged us; the answer is already queued."""

    ping_id: int


@dataclass(slots=True)
class PongReceived(Event):
    """The peer answered a ping."""

    ping_id: int


@dataclass(slots=True)
class GoAwayReceived(Event):
    """The peer sent Go Away; code 0 only forbids new streams, others end the session."""

    code: int


@dataclass(slots=True)
class ConnectionTerminated(Event):
    """The session is dead because of ``error``; close the connection after sending what is queued."""

    error: ProtocolError


# -- local errors ----------------------------------------------------------------------------
class YamuxLocalError(FrpError):
    """The local caller asked for something the session state does not allow."""


class StreamClosedError(YamuxLocalError):
    """The stream is unknown, reset, already accepted, or closed for writing."""


class SessionClosedError(YamuxLocalError):
    """The session is terminated, the peer sent Go Away, or stream ids are exhausted."""


class OpenLimitReached(YamuxLocalError):
    """``accept_backlog`` streams already wait for the peer's ACK; retry after one arrives."""


class _Stream:
    __slots__ = ("id", "send_window", "recv_window", "buffered", "awaiting_ack", "need_ack", "local_fin", "remote_fin")

    def __init__(self, stream_id: int) -> None:
        self.id = stream_id
        self.send_window = INITIAL_STREAM_WINDOW
        self.recv_window = INITIAL_STREAM_WINDOW
        self.buffered = 0
        self.awaiting_ack = False
        self.need_ack = False
        self.local_fin = False
        self.remote_fin = False


def _data_event(stream: _Stream, pieces: List[memoryview], data: Buffer) -> DataReceived:
    """The event for the joined ``pieces`` of ``data`` received on ``stream``.

    A payload that is the whole of an immutable ``data`` is passed on without a copy.
    """
    if len(pieces) == 1 and len(pieces[0]) == len(data) and type(data) is bytes:
        return DataReceived(stream.id, data)
    return DataReceived(stream.id, b"".join(pieces))


class YamuxConnection:
    """One side of a yamux session; see the module docstring for how it works."""

    def __init__(
        self,
        is_client: bool,
        max_stream_window: int = DEFAULT_MAX_STREAM_WINDOW,
        accept_backlog: int = DEFAULT_ACCEPT_BACKLOG,
    ) -> None:
        if not INITIAL_STREAM_WINDOW <= max_stream_window <= _MAX_U32:
            raise ValueError(f"max_stream_window must be between {INITIAL_STREAM_WINDOW} and {_MAX_U32}")
        if accept_backlog < 1:
            raise ValueError("accept_backlog must be positive")
        self.is_client = is_client
        self._max_window = max_stream_window
        self._backlog = accept_backlog
        self._streams: Dict[int, _Stream] = {}
        self._next_id = 1 if is_client else 2
        self._next_ping = 0
        self._inflight = 0
        self._unaccepted = 0
        self._local_go_away = False
        self._remote_go_away = False
        self._terminated: Optional[ProtocolError] = None
        self._out: List[Buffer] = []
        self._header_buf = bytearray()
        # The Data frame whose payload is arriving: bytes left, target stream (None = drain),
        # and whether it carried FIN (applied once the payload is complete).
        self._remaining = 0
        self._target: Optional[_Stream] = None
        self._target_fin = False

    # -- inspection ------------------------------------------------------------------------
    @property
    def terminated(self) -> Optional[ProtocolError]:
        """The error that ended the session, or None while it is alive."""
        return self._terminated

    def has_stream(self, stream_id: int) -> bool:
        """True while the stream is known (not reset, not closed by both sides)."""
        return stream_id in self._streams

    def send_window(self, stream_id: int) -> int:
        """How many bytes :meth:`send_data` would accept on the stream now (0 if unknown)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_fin:
            return 0
        return stream.send_window

    # -- outgoing ---------------------------------------------------------------------------
    def data_to_send(self) -> bytes:
        """Return and clear everything queued for the wire."""
        data = b"".join(self._out)
        self._out = []
        return data

    def chunks_to_send(self) -> List[bytes]:
        """Return and clear everything queued for the wire, as separate byte strings.

        For a transport's ``writeSequence``: a frame's payload is not copied behind its header
        here, since a socket transport joins what it sends anyway.
        """
        out = self._out
        if not out:
            return []
        self._out = []
        for i, chunk in enumerate(out):
            if type(chunk) is not bytes:
                out[i] = bytes(chunk)  # a memoryview of a payload part the window allowed
        return out

    def _queue(self, type: int, flags: int, stream_id: int, length: int) -> None:
        self._out.append(_HEADER.pack(PROTOCOL_VERSION, type, flags, stream_id, length))

    def _take_flags(self, stream: _Stream) -> int:
        """ACK if this is the first frame we send on a stream the peer opened."""
        if stream.need_ack:
            stream.need_ack = False
            self._unaccepted -= 1
            return _ACK
        return 0

    def _grant_window(self, stream: _Stream, flags: int) -> None:
        delta = self._max_window - stream.buffered - stream.recv_window
        stream.recv_window += delta
        self._queue(_WINDOW_UPDATE, flags, stream.id, delta)

    def _known(self, stream_id: int) -> _Stream:
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(f"stream {stream_id} is not open")
        return stream

    def _check_alive(self) -> None:
        if self._terminated is not None:
            raise SessionClosedError(f"session terminated: {self._terminated}")

    def open_stream(self) -> int:
        """Open a stream (queues the SYN window update) and return its id.

        Data may be sent right away; the peer's ACK arrives as :class:`StreamAcknowledged`.
        """
        self._check_alive()
        if self._remote_go_away:
            raise SessionClosedError("peer sent Go Away: no new streams")
        if self._inflight >= self._backlog:
            raise OpenLimitReached(f"{self._inflight} streams wait for the peer's ACK")
        stream_id = self._next_id
        if stream_id >= _MAX_U32 - 1:
            raise SessionClosedError("stream ids exhausted")
        self._next_id += 2
        stream = _Stream(stream_id)
        stream.awaiting_ack = True
        self._inflight += 1
        self._streams[stream_id] = stream
        self._grant_window(stream, _SYN)
        return stream_id

    def accept_stream(self, stream_id: int) -> None:
        """Accept a stream announced by :class:`StreamOpened` (queues the ACK window update)."""
        stream = self._known(stream_id)
        if not stream.need_ack:
            raise StreamClosedError(f"stream {stream_id} is already accepted")
        self._grant_window(stream, self._take_flags(stream))

    def send_data(self, stream_id: int, data: Buffer) -> int:
        """Queue as much of ``data`` as the peer's window allows, as one Data frame.

        Returns the number of bytes taken (possibly 0); the caller keeps the rest and retries
        after a :class:`WindowUpdated` event.  Immutable buffers are queued without a copy.
        """
        stream = self._known(stream_id)
        if stream.local_fin:
            raise StreamClosedError(f"stream {stream_id} is closed for writing")
        size = len(data)
        if size > stream.send_window or size > _MAX_U32:
            size = min(size, stream.send_window, _MAX_U32)
        if size == 0:
            return 0
        flags = self._take_flags(stream) if stream.need_ack else 0
        self._out.append(_HEADER.pack(PROTOCOL_VERSION, _DATA, flags, stream_id, size))
        if type(data) is bytes:
            self._out.append(data if size == len(data) else memoryview(data)[:size])
        else:
            view = memoryview(data)[:size]
            self._out.append(view if view.readonly else bytes(view))
        stream.send_window -= size
        return size

    def consumed(self, stream_id: int, size: int) -> None:
        """The application has taken ``size`` bytes reported by :class:`DataReceived`.

        Queues a window update when frp's rule says so (the delta reaches half the maximum).
        """
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if not 0 <= size <= stream.buffered:
            raise ValueError(f"consumed {size} bytes but only {stream.buffered} are buffered on stream {stream_id}")
        stream.buffered -= size
        if stream.remote_fin or stream.need_ack:
            return
        if self._max_window - stream.buffered - stream.recv_window >= self._max_window // 2:
            self._grant_window(stream, 0)

    def close_stream(self, stream_id: int) -> None:
        """Half-close: queue FIN.  No-op if already closed for writing or gone."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.local_fin:
            return
        self._queue(_WINDOW_UPDATE, self._take_flags(stream) | _FIN, stream_id, 0)
        stream.local_fin = True
        if stream.remote_fin:
            self._forget(stream)

    def reset_stream(self, stream_id: int) -> None:
        """Abort: queue RST and forget the stream.  No-op if it is gone."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        self._queue(_WINDOW_UPDATE, _RST, stream_id, 0)
        self._forget(stream)

    def ping(self) -> int:
        """Queue a ping; returns its id (answered by :class:`PongReceived` with the same id)."""
        self._check_alive()
        ping_id = self._next_ping
        self._next_ping = (ping_id + 1) & _MAX_U32
        self._queue(_PING, _SYN, 0, ping_id)
        return ping_id

    def go_away(self, code: int = GoAwayCode.NORMAL) -> None:
        """Queue Go Away; from now on streams the peer opens are refused with RST."""
        self._check_alive()
        self._local_go_away = True
        self._queue(_GO_AWAY, 0, 0, code)

    def _forget(self, stream: _Stream) -> None:
        del self._streams[stream.id]
        if stream.awaiting_ack:
            self._inflight -= 1
        if stream.need_ack:
            self._unaccepted -= 1

    # -- incoming ---------------------------------------------------------------------------
    def receive_data(self, data: Buffer) -> List[Event]:
        """Process received bytes; return the events they produce (never raises for bad input)."""
        events: List[Event] = []
        if self._terminated is not None or not data:
            return events
        view = memoryview(data)
        end = len(view)
        pos = 0
        header_buf = self._header_buf
        streams = self._streams
        # The payload in progress, kept in locals on the data plane and synchronised with the
        # attributes around every call that may read or change them (_frame, _payload_done).
        remaining = self._remaining
        target = self._target
        # Payload pieces of ``piece_stream`` not yet made into an event: a piece for the same
        # stream that follows directly (only a header in between) joins them, so a read that
        # straddles frame boundaries costs one event and one copy, not one per frame.
        pieces: List[memoryview] = []
        piece_stream: Optional[_Stream] = None
        try:
            while pos < end:
                if remaining:
                    take = min(remaining, end - pos)
                    if target is not None and streams.get(target.id) is target:
                        target.recv_window -= take
                        target.buffered += take
                        if piece_stream is not target:
                            if pieces:
                                events.append(_data_event(piece_stream, pieces, data))
                                pieces = []
                            piece_stream = target
                        pieces.append(view[pos : pos + take])
                    pos += take
                    remaining -= take
                    if not remaining:
                        if self._target_fin:
                            if pieces:
                                events.append(_data_event(piece_stream, pieces, data))
                                pieces = []
                                piece_stream = None
                            self._target = target
                            self._payload_done(events)
                        target = None
                    continue
                if header_buf or end - pos < HEADER_SIZE:
                    take = min(HEADER_SIZE - len(header_buf), end - pos)
                    header_buf += view[pos : pos + take]
                    pos += take
                    if len(header_buf) < HEADER_SIZE:
                        break
                    fields = _HEADER.unpack(header_buf)
                    header_buf.clear()
                else:
                    fields = _HEADER.unpack_from(view, pos)
                    pos += HEADER_SIZE
                version, frame_type, flags, stream_id, length = fields
                if frame_type == _DATA and not flags and version == PROTOCOL_VERSION:
                    # The data plane, a Data frame without flags on a stream that can take it;
                    # anything else about it (drain, window overrun) is _frame's business.
                    stream = streams.get(stream_id)
                    if stream is not None and not stream.remote_fin and 0 < length <= stream.recv_window:
                        remaining = length
                        target = stream
                        self._target_fin = False
                        continue
                elif pieces:  # a frame that may add events of its own
                    events.append(_data_event(piece_stream, pieces, data))
                    pieces = []
                    piece_stream = None
                self._remaining = 0  # what the locals say: no payload in progress
                self._target = None
                self._frame(fields, events)
                remaining = self._remaining
                target = self._target
        except ProtocolError as error:
            if pieces:
                events.append(_data_event(piece_stream, pieces, data))
            self._terminate(error, events)
            return events
        if pieces:
            events.append(_data_event(piece_stream, pieces, data))
        self._remaining = remaining
        self._target = target
        return events

    def _terminate(self, error: ProtocolError, events: List[Event]) -> None:
        self._terminated = error
        self._streams.clear()
        self._header_buf.clear()
        self._remaining = 0
        self._target = None
        events.append(ConnectionTerminated(error))

    def _protocol_error(self, message: str) -> ProtocolError:
        """Queue Go Away 1 (as yamux does for stream-level violations) and build the error."""
        self._queue(_GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR)
        return ProtocolError(message)

    def _frame(self, fields: tuple, events: List[Event]) -> None:
        version, frame_type, flags, stream_id, length = fields
        if version != PROTOCOL_VERSION:
            raise ProtocolError(f"unsupported yamux version {version}")
        if frame_type == _DATA or frame_type == _WINDOW_UPDATE:
            self._stream_frame(frame_type == _DATA, flags, stream_id, length, events)
        elif frame_type == _PING:
            if flags & _SYN:
                self._queue(_PING, _ACK, 0, length)
                events.append(PingReceived(length))
            else:
                events.append(PongReceived(length))
        elif frame_type == _GO_AWAY:
            events.append(GoAwayReceived(length))
            if length != GoAwayCode.NORMAL:
                try:
                    reason = GoAwayCode(length).name.lower().replace("_", " ")
                except ValueError:
                    reason = "unknown code"
                raise ProtocolError(f"peer sent Go Away {length} ({reason})")
            self._remote_go_away = True
        else:
            raise ProtocolError(f"unknown yamux frame type {frame_type}")

    def _stream_frame(self, is_data: bool, flags: int, stream_id: int, length: int, events: List[Event]) -> None:
        if flags & _SYN:
            stream = self._incoming(stream_id, events)
        else:
            stream = self._streams.get(stream_id)
        if stream is None:
            # Usually a stream we reset; its payload is drained.
            self._drain(is_data, length)
            return
        if flags & _ACK and stream.awaiting_ack:
            stream.awaiting_ack = False
            self._inflight -= 1
            events.append(StreamAcknowledged(stream_id))
        if flags & _RST:
            self._forget(stream)
            events.append(StreamReset(stream_id))
            self._drain(is_data, length)
            return
        fin = bool(flags & _FIN)
        if fin and stream.remote_fin:
            raise self._protocol_error(f"second FIN on stream {stream_id}")
        if is_data:
            if length > stream.recv_window:
                raise self._protocol_error(
                    f"stream {stream_id}: {length} bytes exceed the receive window of {stream.recv_window}"
                )
            if length:
                self._remaining = length
                self._target = None if stream.remote_fin else stream
                self._target_fin = fin
                return
        elif length:
            stream.send_window += length
            events.append(WindowUpdated(stream_id, length))
        if fin:
            self._remote_fin(stream, events)

    def _drain(self, is_data: bool, length: int) -> None:
        if is_data and length:
            self._remaining = length
            self._target = None
            self._target_fin = False

    def _payload_done(self, events: List[Event]) -> None:
        """The payload of a Data frame that carried FIN is complete: the stream has ended."""
        stream = self._target
        self._target = None
        if stream is not None and self._streams.get(stream.id) is stream:
            self._remote_fin(stream, events)

    def _remote_fin(self, stream: _Stream, events: List[Event]) -> None:
        stream.remote_fin = True
        events.append(StreamEnded(stream.id))
        if stream.local_fin:
            self._forget(stream)

    def _incoming(self, stream_id: int, events: List[Event]) -> Optional[_Stream]:
        """Register a stream the peer opens, or refuse it with RST."""
        if self._local_go_away:
            self._queue(_WINDOW_UPDATE, _RST, stream_id, 0)
            return None
        if stream_id in self._streams:
            raise self._protocol_error(f"duplicate SYN for stream {stream_id}")
        if self._unaccepted >= self._backlog:
            self._queue(_WINDOW_UPDATE, _RST, stream_id, 0)
            return None
        stream = _Stream(stream_id)
        stream.need_ack = True
        self._unaccepted += 1
        self._streams[stream_id] = stream
        events.append(StreamOpened(stream_id))
        return stream
