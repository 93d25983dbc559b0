"""The sans-IO pieces of frpc's ``http_proxy`` plugin (an HTTP forward proxy, as frp 0.65's).

frp's plugin looks at the first 7 bytes of a connection.  ``CONNECT`` (any case) goes to its
own code: Go's ``http.ReadRequest`` reads the head, and the answers are fixed byte strings
(:data:`CONNECT_NOT_AUTHORIZED`, :data:`CONNECT_FAILED`, :data:`CONNECT_ESTABLISHED`).
Anything else goes to a Go ``http.Server`` that forwards absolute-form requests with
``http.DefaultTransport`` after removing proxy headers (:func:`forward_headers`).

* :class:`ConnectHeadReader` reads a CONNECT head as Go's ``http.ReadRequest`` accepts it
  (lines ending in LF or CRLF, ``METHOD SP URI SP HTTP/x.y``, ``Name: value`` headers),
  bounded by ``max_head``; it keeps the bytes after the head (the tunnel's first payload).
* :func:`proxy_authorized` is frp's check of ``Proxy-Authorization``: any scheme word, then
  standard base64 of ``user:password``.
* :func:`absolute_target` splits an absolute-form request target into what the forwarded
  request needs.
"""

import base64
import binascii
import hmac
import re
from dataclasses import dataclass
from typing import List, Optional, Tuple
from urllib.parse import urlsplit

from frptw.wire.errors import ProtocolError

Headers = List[Tuple[bytes, bytes]]

#: frp's 407 on the CONNECT path (Go's ``Response.Write`` of ``getBadResponse``).
CONNECT_NOT_AUTHORIZED = (b"HTTP/1.1 407 Not authorized\r\nConnection: close\r\nProxy-Authenticate: Basic\r\n"
                          b"Content-Length: 0\r\n\r\n")
#: frp's answer when the CONNECT target cannot be dialled.
CONNECT_FAILED = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"
#: frp's answer once the tunnel is up.
CONNECT_ESTABLISHED = b"HTTP/1.1 200 OK\r\n\r\n"

#: Headers frp's plugin removes before forwarding a request (``removeProxyHeaders``), plus
#: Host, which Go writes from the URL.  ``Transfer-Encoding`` goes too, but Go keeps the body's
#: framing, so :func:`forward_headers` keeps a chunked framing header.
_REMOVED = frozenset({b"host", b"proxy-connection", b"connection", b"proxy-authenticate", b"proxy-authorization",
                      b"te", b"trailers", b"upgrade"})
#: What Go's client sends when the request has no User-Agent.
GO_USER_AGENT = b"Go-http-client/1.1"

_VERSION = re.compile(rb"HTTP/\d+\.\d+\Z")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
#: A URI scheme as Go's ``getScheme`` finds one: a letter, then letters, digits, ``+-.``, then ``:``.
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*:")


@dataclass(frozen=True)
class ConnectHead:
    """A parsed CONNECT head: the ``host:port`` to dial, the headers (names as sent) and the
    bytes that followed the head."""

    target: str
    headers: Headers
    leftover: bytes


class ConnectHeadReader:
    """Collect one request head (up to ``max_head`` bytes) and parse it as a CONNECT."""

    def __init__(self, max_head: int = 64 * 1024) -> None:
        self._max = max_head
        self._buffer = b""

    def feed(self, data: bytes) -> Optional[ConnectHead]:
        """The head once complete, else None; raises ProtocolError for a head Go refuses or
        one longer than ``max_head``."""
        self._buffer += data
        end = _head_end(self._buffer)
        if end < 0:
            if len(self._buffer) > self._max:
                raise ProtocolError(f"request head longer than {self._max} bytes")
            return None
        if end > self._max:
            raise ProtocolError(f"request head longer than {self._max} bytes")
        head, leftover = self._buffer[:end], self._buffer[end:]
        lines = [line[:-1] if line.endswith(b"\r") else line for line in head.split(b"\n")[:-2]]
        parts = lines[0].split(b" ")
        if len(parts) != 3 or not _VERSION.match(parts[2]):
            raise ProtocolError(f"malformed request line {lines[0][:100]!r}")
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise ProtocolError(f"malformed header line {line[:100]!r}")
            headers.append((name, value.strip(b" \t")))
        return ConnectHead(_dial_target(parts[0], parts[1]), headers, leftover)


def _dial_target(method: bytes, uri: bytes) -> str:
    """The host Go's ``http.ReadRequest`` puts in ``URL.Host`` (frp dials it): the authority of
    ``CONNECT host:port``; for any other method spelling (frp's sniffing ignores case, Go's
    parser does not) the authority of ``scheme://authority/...``, else nothing.  A target Go
    refuses raises ProtocolError."""
    try:
        text = uri.decode("ascii")
        if method == b"CONNECT" and not text.startswith("/"):
            return urlsplit("http://" + text).netloc
        if text.startswith("/"):
            return ""
        scheme = _SCHEME.match(text)
        if scheme is None:
            raise ValueError("invalid URI for request")
        rest = text[scheme.end():]
        return rest[2:].split("/", 1)[0] if rest.startswith("//") else ""
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"malformed request target {uri[:100]!r}") from None


def _head_end(data: bytes) -> int:
    """Index just past the empty line that ends a head (LF or CRLF line ends), or -1."""
    ends = [index + len(marker) for marker in (b"\n\n", b"\n\r\n") if (index := data.find(marker)) >= 0]
    return min(ends, default=-1)


def proxy_authorized(value: Optional[bytes], user: str, password: str) -> bool:
    """frp's ``Auth``: True without configured credentials; else ``Proxy-Authorization`` must
    be ``<any word> <base64 user:password>`` with exactly these credentials."""
    if not user and not password:
        return True
    scheme, sep, encoded = (value or b"").partition(b" ")
    if not sep:
        return False
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    given_user, sep, given_password = decoded.partition(b":")
    if not sep:
        return False
    return hmac.compare_digest(given_user, user.encode()) & hmac.compare_digest(given_password, password.encode())


def proxy_credentials_given(value: Optional[bytes]) -> bool:
    """Whether frp would have got as far as comparing credentials (and then sleeps 200 ms
    when they are wrong)."""
    scheme, sep, encoded = (value or b"").partition(b" ")
    try:
        return bool(sep) and b":" in base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class AbsoluteTarget:
    """Where an absolute-form request goes: ``authority`` for the Host header, ``host`` and
    ``port`` to dial, ``path`` (origin form) for the request line."""

    authority: bytes
    host: str
    port: int
    path: bytes


class UnsupportedScheme(ProtocolError):
    """The request target has no scheme frptw forwards; ``str()`` is Go's error text."""


def absolute_target(target: bytes) -> AbsoluteTarget:
    """Split ``http://host[:port]/path?query``; raises UnsupportedScheme otherwise (Go's
    ``unsupported protocol scheme "..."``, also for an origin-form target)."""
    try:
        parts = urlsplit(target.decode("ascii"))
        port = parts.port
    except (UnicodeDecodeError, ValueError):
        raise UnsupportedScheme('unsupported protocol scheme ""') from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise UnsupportedScheme(f'unsupported protocol scheme "{parts.scheme}"')
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return AbsoluteTarget(parts.netloc.encode("ascii"), parts.hostname, port or 80, path.encode("ascii"))


def forward_headers(headers: Headers, authority: bytes) -> Headers:
    """The headers of the forwarded request: Host from the URL first, a User-Agent as Go's
    client adds one, frp's proxy headers removed (a chunked framing header kept)."""
    out: Headers = [(b"Host", authority)]
    if not any(name.lower() == b"user-agent" for name, _ in headers):
        out.append((b"User-Agent", GO_USER_AGENT))
    for name, value in headers:
        lower = name.lower()
        if lower in _REMOVED:
            continue
        if lower == b"transfer-encoding" and not value.lower().endswith(b"chunked"):
            continue
        out.append((name, value))
    return out

