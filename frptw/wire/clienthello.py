"""Read the TLS ClientHello that opens a connection, without terminating TLS (sans-IO).

frps routes an HTTPS vhost connection by the server name (SNI) its client asks for, then hands
*every* byte it read, unchanged, to the backend that terminates TLS (wire-protocol.md §10.3).
So this module only looks: it never answers the handshake and never consumes bytes.

Theory of operation.  :meth:`ClientHelloReader.feed` appends what arrived to one bounded
buffer; :meth:`ClientHelloReader.next_event` parses what it can and returns

* :data:`NEED_MORE` while the ClientHello is incomplete;
* a :class:`ClientHello` once it is complete (the same object on every later call);
* or raises :class:`~frptw.wire.errors.ProtocolError` (and nothing else) when the bytes are not
  a ClientHello frps would accept, or when completing it would take more than
  ``max_buffered`` bytes.

The bytes are TLS plaintext records (``type(1) version(2) length(2) fragment``).  Only
handshake records may appear before the ClientHello is complete; their fragments are joined
(a ClientHello may span records, and a record may end anywhere inside it) until the first
handshake message (``type(1) length(3) body``) is whole.  Limits: a record fragment is 1 to
2**14 bytes (RFC 8446 §5.1, empty handshake fragments are forbidden) and a handshake message
at most 65536 bytes (Go's limit).  Where frps's behaviour depends on Go's ClientHello parser it
is followed: several names of one type, an empty name and a name ending in ``.`` are refused,
as are repeated extensions and trailing bytes; such a connection is closed without a reply.

:meth:`ClientHello.refusal` gives the alert record real frps 0.65 sends when no route matches
(it comes from Go's TLS server giving up for want of a certificate, after version negotiation).
"""

from dataclasses import dataclass
from typing import Tuple, Union

from frptw.wire.errors import ProtocolError

#: Largest record fragment (RFC 8446 §5.1).
MAX_FRAGMENT = 2**14
#: Largest handshake message Go's crypto/tls reads.
MAX_HANDSHAKE = 65536
#: Default bound of the bytes held while waiting for the ClientHello to complete.
MAX_BUFFERED = 128 * 1024

RECORD_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
EXT_SERVER_NAME = 0
EXT_SUPPORTED_VERSIONS = 43
NAME_TYPE_HOST = 0
TLS12 = 0x0303
TLS13 = 0x0304

#: Fatal ``unrecognized_name`` alert, record version TLS 1.2 (what frps 0.65 sends to a client
#: offering TLS 1.2 or 1.3 whose server name has no route).
ALERT_UNRECOGNIZED_NAME = bytes.fromhex("15030300020270")
#: Fatal ``protocol_version`` alert, record version TLS 1.0 (frps 0.65, to a client offering
#: only versions older than TLS 1.2: Go fails before it picks a version).
ALERT_PROTOCOL_VERSION = bytes.fromhex("15030100020246")


class _NeedMore:
    def __repr__(self) -> str:
        return "NEED_MORE"


#: Returned by :meth:`ClientHelloReader.next_event` until the ClientHello is complete.
NEED_MORE = _NeedMore()


@dataclass(frozen=True)
class ClientHello:
    """What frps needs from a ClientHello."""

    #: The host name of the server_name extension, as sent ("" without SNI).
    server_name: str
    #: ``legacy_version`` of the ClientHello body.
    legacy_version: int
    #: The supported_versions extension (empty when absent).
    supported_versions: Tuple[int, ...] = ()

    def offers_tls12_or_later(self) -> bool:
        """Whether Go's TLS server (minimum TLS 1.2) would negotiate a version."""
        if self.supported_versions:
            return any(version in (TLS12, TLS13) for version in self.supported_versions)
        return self.legacy_version >= TLS12

    def refusal(self) -> bytes:
        """The alert record frps answers with when ``server_name`` has no route."""
        return ALERT_UNRECOGNIZED_NAME if self.offers_tls12_or_later() else ALERT_PROTOCOL_VERSION


class _Cursor:
    """Reads big-endian fields from a handshake body; running short is a ProtocolError."""

    def __init__(self, data: memoryview) -> None:
        self._data = data
        self._pos = 0

    def empty(self) -> bool:
        return self._pos == len(self._data)

    def take(self, n: int) -> memoryview:
        if self._pos + n > len(self._data):
            raise ProtocolError("malformed ClientHello: truncated field")
        chunk = self._data[self._pos:self._pos + n]
        self._pos += n
        return chunk

    def take_rest(self) -> memoryview:
        return self.take(len(self._data) - self._pos)

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, lengthSize: int) -> "_Cursor":
        return _Cursor(self.take(self.uint(lengthSize)))


def _server_name(data: _Cursor) -> str:
    names = data.vector(2)
    if names.empty():
        raise ProtocolError("malformed ClientHello: empty server_name list")
    found = ""
    while not names.empty():
        name_type = names.uint(1)
        name = bytes(names.vector(2).take_rest())
        if not name:
            raise ProtocolError("malformed ClientHello: empty server name")
        if name_type != NAME_TYPE_HOST:
            continue
        if found:
            raise ProtocolError("malformed ClientHello: several host names")
        found = name.decode("utf-8", "surrogateescape")
        if found.endswith("."):
            raise ProtocolError("malformed ClientHello: server name ends with a dot")
    return found


def _supported_versions(data: _Cursor) -> Tuple[int, ...]:
    versions = data.vector(1)
    if versions.empty():
        raise ProtocolError("malformed ClientHello: empty supported_versions")
    found = []
    while not versions.empty():
        found.append(versions.uint(2))
    return tuple(found)


def parse_client_hello_body(body: memoryview) -> ClientHello:
    """Parse the body of a ClientHello handshake message (after its 4-byte header)."""
    s = _Cursor(body)
    legacy_version = s.uint(2)
    s.take(32)  # random
    s.vector(1)  # legacy_session_id
    suites = s.vector(2)
    if len(suites.take_rest()) % 2:
        raise ProtocolError("malformed ClientHello: odd cipher_suites length")
    s.vector(1)  # legacy_compression_methods
    server_name = ""
    versions: Tuple[int, ...] = ()
    if s.empty():
        return ClientHello(server_name, legacy_version)
    extensions = s.vector(2)
    if not s.empty():
        raise ProtocolError("malformed ClientHello: bytes after the extensions")
    seen = set()
    while not extensions.empty():
        kind = extensions.uint(2)
        data = extensions.vector(2)
        if kind in seen:
            raise ProtocolError(f"malformed ClientHello: extension {kind} repeated")
        seen.add(kind)
        if kind == EXT_SERVER_NAME:
            server_name = _server_name(data)
        elif kind == EXT_SUPPORTED_VERSIONS:
            versions = _supported_versions(data)
        else:
            continue
        if not data.empty():
            raise ProtocolError(f"malformed ClientHello: bytes after extension {kind}")
    return ClientHello(server_name, legacy_version, versions)


class ClientHelloReader:
    """Incremental, bounded ClientHello reader; see the module docstring."""

    def __init__(self, max_buffered: int = MAX_BUFFERED) -> None:
        self._buffer = bytearray()
        self._max_buffered = max_buffered
        self._record = 0  # offset of the next record header not yet parsed
        self._handshake = bytearray()  # joined handshake fragments so far
        self._result: Union[ClientHello, None] = None

    def feed(self, data: bytes) -> None:
        """Append bytes received from the peer."""
        self._buffer += data

    @property
    def buffered(self) -> bytes:
        """Every byte fed so far (what must be replayed to the backend)."""
        return bytes(self._buffer)

    def next_event(self) -> Union[ClientHello, _NeedMore]:
        """The ClientHello, or NEED_MORE; raises ProtocolError on bad or oversized input."""
        if self._result is not None:
            return self._result
        while True:
            hello = self._hello_from_fragments()
            if hello is not None:
                self._result = hello
                return hello
            if not self._next_fragment():
                if len(self._buffer) > self._max_buffered:
                    raise ProtocolError(f"no complete ClientHello in {self._max_buffered} bytes")
                return NEED_MORE

    def _next_fragment(self) -> bool:
        """Move the next complete record's fragment into the handshake buffer, if there is one."""
        header = self._buffer[self._record:self._record + 5]
        if len(header) >= 1 and header[0] != RECORD_HANDSHAKE:
            raise ProtocolError(f"not a TLS handshake record (type {header[0]})")
        if len(header) >= 2 and header[1] != 3:
            raise ProtocolError(f"not a TLS record (version major {header[1]})")
        if len(header) < 5:
            return False
        length = int.from_bytes(header[3:5], "big")
        if length == 0 or length > MAX_FRAGMENT:
            raise ProtocolError(f"bad TLS record length {length}")
        end = self._record + 5 + length
        if end > self._max_buffered:
            raise ProtocolError(f"no complete ClientHello in {self._max_buffered} bytes")
        if end > len(self._buffer):
            return False
        self._handshake += self._buffer[self._record + 5:end]
        self._record = end
        return True

    def _hello_from_fragments(self) -> Union[ClientHello, None]:
        if len(self._handshake) < 4:
            return None
        if self._handshake[0] != HANDSHAKE_CLIENT_HELLO:
            raise ProtocolError(f"first handshake message is not a ClientHello (type {self._handshake[0]})")
        length = int.from_bytes(self._handshake[1:4], "big")
        if length > MAX_HANDSHAKE:
            raise ProtocolError(f"ClientHello of {length} bytes is too large")
        if len(self._handshake) < 4 + length:
            return None
        return parse_client_hello_body(memoryview(bytes(self._handshake[4:4 + length])))
