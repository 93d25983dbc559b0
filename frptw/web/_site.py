"""The ``twisted.web`` Site of a management server: bounded request bodies, frp's timeouts.

frp's management servers (Go ``http.Server``) give a request's head 60 s to arrive
(``ReadHeaderTimeout``) however it trickles in; Twisted's own timeout is an idle one, restarted
by every byte, so a head sent a byte every 59 s (slowloris) would hold a connection for ever.
:class:`_HeadDeadlineChannel` adds the head deadline: from the connection (or the end of the
previous response) to the last header line, :data:`REQUEST_TIMEOUT` at most.

Go's ``net/http`` server in frp reads a whole request body into memory however large it is;
here a body beyond :data:`MAX_BODY` is not kept (the bytes are counted and dropped as they
arrive), and the request is answered ``413`` without reaching any resource.  A
``Content-Length`` above the limit is known to be too large before the first body byte.
"""

import io
import tempfile

from twisted.web.http import HTTPChannel
from twisted.web.server import Request, Site

from frptw.logs import FrpLogger
from frptw.transport.addresses import describePeer
from frptw.transport.timers import cancelCall
from frptw.web._resources import textBody

#: The largest request body a management server accepts (a config file is a few KiB).
MAX_BODY = 4 * 1024 * 1024
#: frp's read/write timeouts (60 s): here an idle connection is closed after that long.
REQUEST_TIMEOUT = 60.0
#: Bodies up to this size stay in memory; larger ones (up to MAX_BODY) go to a temporary file.
_IN_MEMORY = 100_000

_log = FrpLogger(namespace="frptw.web")


class _BoundedContent:
    """A request body store that keeps at most ``limit`` bytes and remembers it overflowed."""

    def __init__(self, limit: int, declared) -> None:
        self.limit = limit
        self.received = 0
        self.overflowed = declared is not None and declared > limit
        self._store = io.BytesIO() if declared is not None and declared <= _IN_MEMORY else tempfile.TemporaryFile()

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self.limit:
            self.overflowed = True
        if not self.overflowed:
            self._store.write(data)

    def __getattr__(self, name: str):  # read, seek, tell, close: the stored body's
        return getattr(self._store, name)


class _BoundedRequest(Request):
    """A Request that answers 413 instead of dispatching a body over the site's limit."""

    def process(self) -> None:
        content = self.content
        if isinstance(content, _BoundedContent) and content.overflowed:
            _log.warn(
                "{path}: request body over {limit} bytes refused",
                path=self.path.decode("ascii", "replace"),
                limit=content.limit,
            )
            self.setHeader(b"connection", b"close")
            body = textBody(self, 413, f"request body too large (limit {content.limit} bytes)\n")
            self.setHeader(b"content-length", str(len(body)).encode())
            self.write(body)
            self.finish()
            return
        super().process()


class _HeadDeadlineChannel(HTTPChannel):
    """An HTTPChannel whose every request head must be complete within ``headTimeout`` of
    the connection or of the previous response's end (frp's ``ReadHeaderTimeout``)."""

    headTimeout = REQUEST_TIMEOUT
    _headCall = None

    def connectionMade(self) -> None:
        super().connectionMade()
        self._awaitHead()

    def _awaitHead(self) -> None:
        cancelCall(self._headCall)
        self._headCall = self.callLater(self.headTimeout, self._noHead)

    def _noHead(self) -> None:
        self._headCall = None
        _log.info("closing connection from {peer}: no complete request head in {t:.0f} s",
                  peer=describePeer(self.transport), t=self.headTimeout)
        self.transport.abortConnection()

    def allHeadersReceived(self) -> None:
        cancelCall(self._headCall)
        self._headCall = None
        super().allHeadersReceived()

    def requestDone(self, request) -> None:
        # Before the next request is parsed: a pipelined head already buffered completes (and
        # cancels this) inside requestDone.
        if self.persistent:
            self._awaitHead()
        super().requestDone(request)

    def connectionLost(self, reason) -> None:
        cancelCall(self._headCall)
        self._headCall = None
        super().connectionLost(reason)


class BoundedSite(Site):
    """A Site with bounded request bodies (:data:`MAX_BODY`), frp's 60 s timeouts (idle, and
    for a request head however it trickles), no form
    parsing and request logging at debug level only (the programs log their own lines)."""

    requestFactory = _BoundedRequest
    #: HTTP/1.1 only, as before (no h2 package: Twisted's HTTP/2 switch never happened).
    protocol = _HeadDeadlineChannel

    def __init__(self, resource, maxBody: int = MAX_BODY, timeout: float = REQUEST_TIMEOUT, reactor=None,
                 headTimeout: float = REQUEST_TIMEOUT) -> None:
        super().__init__(resource, timeout=timeout, reactor=reactor, parsePOSTFormSubmission=False)
        self.maxBody = maxBody
        self.headTimeout = headTimeout

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        channel.headTimeout = self.headTimeout
        return channel

    def getContentFile(self, length):
        return _BoundedContent(self.maxBody, length)

    def log(self, request) -> None:
        _log.debug(
            "{method} {path} -> {code}",
            method=request.method.decode("ascii", "replace"),
            path=request.uri.decode("ascii", "replace"),
            code=request.code,
        )
