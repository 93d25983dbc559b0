"""``static_file``: an HTTP file server on the proxy's work connections (frp's static_file plugin).

frp serves ``localPath`` with Go's ``http.FileServer`` behind a gorilla/mux router; what a
client sees, checked against frp 0.65 (frp-0.65-observed.md), and how it is done here with
twisted.web (one :class:`~twisted.web.server.Site` per proxy; each work connection becomes one
of its HTTP channels):

* the router first cleans the URL path (``..``, ``//``, ``%2e%2e`` once decoded): a path that
  is not clean is answered ``301`` to the cleaned one, so no ``..`` ever reaches the file
  system;
* a path outside ``/<stripPrefix>/`` is ``404 page not found`` (no credentials asked), a
  method other than GET ``405``, then Basic auth (``401`` after 200 ms, as frp delays it);
* under the prefix, Go's file server: ``301`` from ``.../index.html`` to ``./``, from a
  directory without its ``/`` and from a file with one; a directory's ``index.html`` or
  Go's listing (``<pre>`` of escaped links, sorted); files with Range (206, multipart,
  416), ``If-Modified-Since``, ``Last-Modified`` and Go's content types; gzip when the
  client accepts it.

One deliberate difference: Go follows symbolic links wherever they point; here a path whose
real location is outside ``localPath`` is ``404``, so a link cannot expose files beyond it.

Files stream through twisted.web's static producers: a chunk is read only when the connection
wants more, so a slow client costs one chunk of memory whatever the file size.
"""

import mimetypes
import os
import posixpath
import re
from html import escape
from typing import List, Optional, Tuple
from urllib.parse import quote, unquote_to_bytes

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, GzipEncoderFactory, Request, Site
from twisted.web.static import File
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.config.plugins import StaticFilePluginOptions
from frptw.errors import FrpError
from frptw.logs import FrpLogger
from frptw.transport.addresses import describePeer
from frptw.transport.http_front import HEADER_TIMEOUT, MAX_HEAD
from frptw.transport.http_headers import parse_basic_auth
from frptw.transport.switch import SwitchableProtocol

_log = FrpLogger(namespace="frptw.client.plugins")

#: frp delays a refused Basic credential (``SetAuthFailDelay(200 * time.Millisecond)``).
AUTH_FAIL_DELAY = 0.2

#: Go's built-in extension table (``mime.TypeByExtension``), ahead of the system's.
_GO_TYPES = {
    ".avif": "image/avif", ".css": "text/css; charset=utf-8", ".gif": "image/gif",
    ".htm": "text/html; charset=utf-8", ".html": "text/html; charset=utf-8", ".jpeg": "image/jpeg",
    ".jpg": "image/jpeg", ".js": "text/javascript; charset=utf-8", ".json": "application/json",
    ".mjs": "text/javascript; charset=utf-8", ".pdf": "application/pdf", ".png": "image/png",
    ".svg": "image/svg+xml", ".wasm": "application/wasm", ".webp": "image/webp",
    ".xml": "text/xml; charset=utf-8",
}

#: What Go's ``url.URL.String`` leaves unescaped in a path besides letters, digits and ``-_.~``.
_PATH_SAFE = "/$&+,:;=@"

_TEXT = b"text/plain; charset=utf-8"

#: A ``%`` not followed by two hex digits: a URL Go's server cannot parse.
_BAD_ESCAPE = re.compile(rb"%(?![0-9a-fA-F]{2})")


def content_type(path: str, head: bytes) -> str:
    """The Content-Type Go's file server gives ``path`` whose first bytes are ``head``: by
    extension (Go's table, then the system's, ``text/*`` with ``charset=utf-8``), else sniffed."""
    ext = os.path.splitext(path)[1].lower()
    known = _GO_TYPES.get(ext) or mimetypes.types_map.get(ext)
    if known:
        return known + "; charset=utf-8" if known.startswith("text/") and "charset" not in known else known
    return sniff(head)


def sniff(head: bytes) -> str:
    """A reduced ``http.DetectContentType``: the common signatures, HTML, else text or binary."""
    signatures = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF8", "image/gif"), (b"\xff\xd8\xff", "image/jpeg"),
                  (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"),
                  (b"\x1f\x8b\x08", "application/x-gzip"))
    for magic, kind in signatures:
        if head.startswith(magic):
            return kind
    stripped = head.lstrip(b"\t\n\x0c\r ").lower()
    if stripped.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<p", b"<div")):
        return "text/html; charset=utf-8"
    if any(b in head for b in b"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0e\x0f\x10\x11\x12\x13\x14\x15\x16"
                                b"\x17\x18\x19\x1a\x1c\x1d\x1e\x1f"):
        return "application/octet-stream"
    return "text/plain; charset=utf-8"


def clean_path(path: str) -> str:
    """gorilla/mux's ``cleanPath``: Go's ``path.Clean`` of the path made absolute, keeping a
    trailing slash."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    if cleaned.startswith("//"):  # POSIX keeps two leading slashes; Go does not
        cleaned = "/" + cleaned.lstrip("/")
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


def escape_path(path: str) -> str:
    """A path as Go's ``url.URL{Path: p}.String()`` writes it."""
    text = quote(path.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
    first = text.split("/", 1)[0]
    return "./" + text if ":" in first else text


def listing(names: list) -> bytes:
    """Go's directory listing for ``names`` (directories already end with ``/``)."""
    lines = [f'<a href="{escape_path(name)}">{escape(name)}</a>\n'.replace("&#x27;", "&#39;")
             .replace("&quot;", "&#34;") for name in sorted(names)]
    return ('<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
            + "".join(lines) + "</pre>\n").encode("utf-8", "surrogateescape")


class RangeRefused(FrpError, ValueError):
    """A Range header Go's file server answers 416 (the message is its body)."""

    def __init__(self, message: str, overlap: bool) -> None:
        super().__init__(message)
        #: True when the ranges were well-formed but all past the end (Content-Range is sent).
        self.overlap = overlap


def go_ranges(header: str, size: int) -> List[Tuple[int, int]]:
    """The (start, length) ranges Go's ``parseRange`` reads from a Range header for a file of
    ``size`` bytes; raises :class:`RangeRefused` where Go answers 416.  twisted.web parses the
    header again to serve it; this decides what twisted.web would decide differently (a
    malformed header is 416 in Go, ignored by twisted)."""
    if not header.startswith("bytes="):
        raise RangeRefused("invalid range", False)
    ranges: List[Tuple[int, int]] = []
    no_overlap = False
    for spec in header[len("bytes="):].split(","):
        spec = spec.strip(" \t")
        if not spec:
            continue
        start_text, dash, end_text = spec.partition("-")
        start_text, end_text = start_text.strip(" \t"), end_text.strip(" \t")
        if not dash:
            raise RangeRefused("invalid range", False)
        if not start_text:
            if not end_text.isdigit():
                raise RangeRefused("invalid range", False)
            length = min(int(end_text), size)
            ranges.append((size - length, length))
            continue
        if not start_text.isdigit():
            raise RangeRefused("invalid range", False)
        start = int(start_text)
        if start >= size:
            no_overlap = True
            continue
        if not end_text:
            ranges.append((start, size - start))
            continue
        if not end_text.isdigit() or int(end_text) < start:
            raise RangeRefused("invalid range", False)
        ranges.append((start, min(int(end_text), size - 1) - start + 1))
    if no_overlap and not ranges:
        raise RangeRefused("invalid range: failed to overlap", True)
    return ranges


def _plain(request: Request, status: int, text: bytes) -> bytes:
    """Go's ``http.Error``: text/plain, nosniff, the text and a newline."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", _TEXT)
    request.setHeader(b"x-content-type-options", b"nosniff")
    return text + b"\n"


def _redirect(request: Request, location: str) -> bytes:
    """Go's ``localRedirect``: 301 to a relative location, the query kept."""
    query = request.uri.partition(b"?")[2]
    request.setResponseCode(http.MOVED_PERMANENTLY)
    request.setHeader(b"location", location.encode("latin-1") + (b"?" + query if query else b""))
    return b""


class _File(File):
    """A file as twisted.web serves it (Range, conditional requests, a pull producer), with
    Go's Last-Modified: the modification time truncated to the second (twisted rounds up)."""

    def getModificationTime(self) -> float:
        return float(int(super().getModificationTime()))


class FileServer:
    """Go's ``http.FileServer(http.Dir(root))`` under ``http.StripPrefix``: serves the path
    left after the prefix, confined to ``root`` (real paths, symbolic links resolved)."""

    def __init__(self, root: str) -> None:
        self._root = os.path.realpath(root)

    def _locate(self, name: str) -> Optional[str]:
        """The real file-system path of URL path ``name`` (clean, absolute), or None when it
        does not exist or lies outside the root."""
        real = os.path.realpath(os.path.join(self._root, name.lstrip("/")))
        if real != self._root and not real.startswith(self._root + os.sep):
            return None
        return real if os.path.exists(real) else None

    def serve(self, request: Request, upath: str) -> bytes:
        """Answer for URL path ``upath`` (after the prefix, starting with ``/``)."""
        if upath.endswith("/index.html"):
            return _redirect(request, "./")
        name = clean_path(upath).rstrip("/") or "/"
        if "\x00" in name:
            return _plain(request, http.NOT_FOUND, b"404 page not found")
        real = self._locate(name)
        if real is None:
            return _plain(request, http.NOT_FOUND, b"404 page not found")
        if os.path.isdir(real):
            if not upath.endswith("/"):
                return _redirect(request, posixpath.basename(upath) + "/")
            index = self._locate(name.rstrip("/") + "/index.html")
            if index is not None and os.path.isfile(index):
                return self._file(request, index)
            return self._directory(request, real)
        if upath.endswith("/"):
            return _redirect(request, "../" + posixpath.basename(upath.rstrip("/")))
        return self._file(request, real)

    def _file(self, request: Request, real: str) -> bytes:
        try:
            with open(real, "rb") as f:
                head = f.read(512)
        except PermissionError:
            return _plain(request, http.FORBIDDEN, b"403 Forbidden")
        except OSError:
            return _plain(request, http.INTERNAL_SERVER_ERROR, b"500 Internal Server Error")
        byteRange = request.getHeader(b"range")
        if byteRange is not None:
            size = os.path.getsize(real)
            try:
                ranges = go_ranges(byteRange.decode("latin-1"), size)
            except RangeRefused as refused:
                if refused.overlap:
                    request.setHeader(b"content-range", b"bytes */%d" % size)
                return _plain(request, http.REQUESTED_RANGE_NOT_SATISFIABLE, str(refused).encode("ascii"))
            if not ranges or sum(length for _, length in ranges) > size:
                request.requestHeaders.removeHeader(b"range")  # Go serves the whole file then
        resource = _File(real)
        resource.type = content_type(real, head)
        resource.encoding = None
        body = resource.render_GET(request)
        if request.code == http.NOT_MODIFIED:
            request.responseHeaders.removeHeader(b"accept-ranges")  # Go checks before it offers ranges
        return body

    def _directory(self, request: Request, real: str) -> bytes:
        try:
            with os.scandir(real) as entries:
                names = [entry.name + "/" if entry.is_dir() else entry.name for entry in entries]
            mtime = int(os.stat(real).st_mtime)
        except OSError:
            return _plain(request, http.INTERNAL_SERVER_ERROR, b"Error reading directory")
        if request.setLastModified(mtime) is http.CACHED:
            request.lastModified = None  # no Last-Modified: Go checks before it sets it
            return b""
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return listing(names)


class StaticFileGate(Resource):
    """The router in front of the file server: clean paths, the prefix, GET only, Basic auth,
    then gzip for clients that accept it (each step as frp orders them)."""

    isLeaf = True

    def __init__(self, root: str, stripPrefix: str, user: str, password: str, clock) -> None:
        super().__init__()
        self._prefix = f"/{stripPrefix}/" if stripPrefix else "/"
        self._credentials = (user, password) if (user or password) else None
        self._clock = clock
        self._files = FileServer(root)
        self._gzip = GzipEncoderFactory()

    def render(self, request: Request) -> object:
        request.responseHeaders.removeHeader(b"server")
        request.defaultContentType = None  # Go types only what it serves
        raw = request.uri.partition(b"?")[0]
        if raw.startswith(b"http://") or raw.startswith(b"https://"):  # absolute form: its path
            raw = b"/" + raw.split(b"/", 3)[3] if raw.count(b"/") >= 3 else b"/"
        if _BAD_ESCAPE.search(raw):
            return self._badRequest(request)
        path = unquote_to_bytes(raw).decode("utf-8", "surrogateescape")
        cleaned = clean_path(path)
        if cleaned != path:
            request.setResponseCode(http.MOVED_PERMANENTLY)
            query = request.uri.partition(b"?")[2]
            request.setHeader(b"location", escape_path(cleaned).encode("latin-1") + (b"?" + query if query else b""))
            return b""
        if not path.startswith(self._prefix):
            return _plain(request, http.NOT_FOUND, b"404 page not found")
        if request.method != b"GET":
            request.setResponseCode(http.NOT_ALLOWED)
            return b""
        if self._credentials is not None and \
                parse_basic_auth(request.getHeader(b"authorization")) != self._credentials:
            return self._refuse(request)
        encoder = self._gzip.encoderForRequest(request)
        if encoder is not None:
            request._encoder = encoder  # what twisted.web's EncodingResourceWrapper does
        return self._files.serve(request, "/" + path[len(self._prefix):])

    @staticmethod
    def _badRequest(request: Request) -> bytes:
        """Go's server refuses a URL it cannot parse (a bad ``%`` escape): 400, then closes."""
        request.setResponseCode(http.BAD_REQUEST)
        request.setHeader(b"content-type", _TEXT)
        request.setHeader(b"connection", b"close")
        channel = request.channel
        request.notifyFinish().addBoth(lambda _: channel.loseConnection())
        return b"400 Bad Request"

    def _refuse(self, request: Request) -> object:
        """401 after frp's delay (a DelayedCall, not a sleep; cancelled if the client goes)."""
        call: IDelayedCall = self._clock.callLater(AUTH_FAIL_DELAY, self._unauthorized, request)
        request.notifyFinish().addErrback(lambda _: call.active() and call.cancel())
        return NOT_DONE_YET

    @staticmethod
    def _unauthorized(request: Request) -> None:
        request.setHeader(b"www-authenticate", b'Basic realm="Restricted"')
        request.write(_plain(request, http.UNAUTHORIZED, b"Unauthorized"))
        request.finish()


class _Channel(HTTPChannel):
    """twisted.web's HTTP channel with frptw's head limit and one log line for bad input."""

    totalHeadersSize = MAX_HEAD
    MAX_LENGTH = MAX_HEAD

    def _respondToBadRequestAndDisconnect(self) -> None:
        _log.info("closing http connection from {peer}: bad request", peer=describePeer(self.transport))
        super()._respondToBadRequestAndDisconnect()

    def lineLengthExceeded(self, line: bytes) -> None:
        """A head line longer than the whole head may be: 431 (as Go answers an oversized head)."""
        _log.info("closing http connection from {peer}: request head too large", peer=describePeer(self.transport))
        self.transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Type: text/plain; "
                             b"charset=utf-8\r\nConnection: close\r\n\r\n431 Request Header Fields Too Large")
        self.loseConnection()


class StaticFileSite(Site):
    """The twisted.web site of one static_file proxy; each work connection is one channel."""

    protocol = _Channel
    noisy = False


@implementer(IClientPlugin)
class StaticFilePlugin:
    type = "static_file"

    def __init__(self, options: StaticFilePluginOptions, context: PluginContext) -> None:
        reactor = context.reactor
        gate = StaticFileGate(options.local_path, options.strip_prefix, options.http_user, options.http_password,
                              reactor)
        self.site = StaticFileSite(gate, timeout=HEADER_TIMEOUT, reactor=reactor)

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        conn.switchTo(self.site.buildProtocol(None))

    def close(self) -> "Deferred[None]":
        return succeed(None)


def build(options: StaticFilePluginOptions, context: PluginContext) -> StaticFilePlugin:
    return StaticFilePlugin(options, context)
