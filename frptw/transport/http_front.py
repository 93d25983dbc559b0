"""The client-facing side of an HTTP/1.1 reverse proxy: parse requests, forward them through
exchanges, answer locally, tunnel after a protocol switch.

frps's HTTP vhost (:mod:`frptw.server.vhost.http`) and frpc's HTTP plugins
(:mod:`frptw.client.plugins.reverseproxy`) are the same machine with a different decision per
request: a subclass of :class:`HTTPFrontConnection` implements :meth:`~HTTPFrontConnection.handleRequest`
(route, check credentials, rewrite the head, then :meth:`~HTTPFrontConnection.forward` an
:class:`~frptw.transport.http_exchange.Exchange` or :meth:`~HTTPFrontConnection.answer`) and
:meth:`~HTTPFrontConnection.answerFailed` (what to say when an exchange fails before its
response started).

Theory of operation.  Requests are parsed with h11 (server role) and handled one at a time.
The connection is in one of these :class:`ConnectionState` values:

``HEAD``
    Reading a request head; at most :data:`MAX_HEAD` bytes and :data:`MAX_HEADERS` headers,
    within :data:`HEADER_TIMEOUT` seconds.  Bad input is answered 400/431 and the connection
    closed, with one log line; a request with both Content-Length and Transfer-Encoding, or an
    HTTP/1.0 one with Transfer-Encoding, is refused (smuggling).
``EXCHANGE``
    An :class:`~frptw.transport.http_exchange.Exchange` owns the request until its response is
    complete (see that module for its own states).  The connection feeds it the request body
    while it forwards one, and keeps the bytes it cannot take yet (a body while no backend is
    lent, a pipelined request) in h11's buffer, reading no more meanwhile.
``LOCAL``
    The request was answered here before its body was read: the rest of the body is read and
    dropped.
``TUNNEL``
    After a 101 from the backend, or for CONNECT, both connections are spliced raw.

When a request and its response are complete the connection reads the next request (``HEAD``)
unless either side asked to close.
"""

import enum
from typing import List, Optional, Tuple

import h11
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.transport.addresses import describePeer
from frptw.transport.http_exchange import Backend, Exchange, ExchangeState, Valve, reason
from frptw.transport.http_headers import Headers, first_header, http_date
from frptw.transport.lazytimer import LazyTimer
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol

log = FrpLogger()

#: Request-head limits and the header read timeout (Go's servers in frp: 60 s).
MAX_HEAD = 64 * 1024
MAX_HEADERS = 128
HEADER_TIMEOUT = 60.0


def _dated(response: h11.Response) -> bool:
    """True if ``response`` carries a ``Date`` (h11 keeps names lower-case beside the raw ones)."""
    for name, _ in response.headers:
        if name == b"date":
            return True
    return False


class ConnectionState(enum.Enum):
    """Where a front connection is (see the module docstring)."""

    HEAD = "head"
    EXCHANGE = "exchange"
    LOCAL = "local"
    TUNNEL = "tunnel"
    CLOSED = "closed"


class HTTPFrontConnection(SwitchableProtocol):
    """One client connection of a reverse proxy (see the module docstring for its states).

    :param clock: timers (the request-head timeout).
    """

    def __init__(self, clock: IReactorTime) -> None:
        super().__init__(bufferLimit=None)
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.state = ConnectionState.HEAD
        self.valve: Optional[Valve] = None
        self.exchange: Optional[Exchange] = None
        self.clock = clock
        self._headTimer = LazyTimer(clock, self._headTimeout)

    # -- what a subclass decides ---------------------------------------------------------------
    def handleRequest(self, request: h11.Request, headers: Headers, chunked: bool) -> None:
        """Decide about a well-formed request head: call :meth:`forward` or :meth:`answer`.

        ``chunked`` tells a body framed with ``Transfer-Encoding: chunked``."""
        raise NotImplementedError

    def answerFailed(self, status: int) -> None:
        """An exchange failed before its response started; ``status`` is its
        :attr:`~frptw.transport.http_exchange.Exchange.answer`.  Answer with :meth:`answer`."""
        raise NotImplementedError

    # -- connection --------------------------------------------------------------------------
    def connectionMade(self) -> None:
        self.valve = Valve(self.transport)
        self._headTimer.start(HEADER_TIMEOUT)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        if self.state is ConnectionState.CLOSED:
            return
        self.h11.receive_data(data)
        self._pump()

    def readConnectionLost(self) -> None:
        if self.switchedTo is not None:
            super().readConnectionLost()
            return
        if self.state is ConnectionState.CLOSED:
            return
        self.h11.receive_data(b"")
        self._pump()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.switchedTo is not None:
            super().connectionLost(reason)
        else:
            self._end()

    def _end(self) -> None:
        self.state = ConnectionState.CLOSED
        self._headTimer.cancel()
        exchange, self.exchange = self.exchange, None
        if exchange is not None:
            exchange.abandon()

    def _close(self, abort: bool = False) -> None:
        self._end()
        if abort:
            self.transport.abortConnection()
        else:
            self.transport.loseConnection()

    def _headTimeout(self) -> None:
        log.info("closing http connection from {peer}: no request head within {t} s", peer=describePeer(self.transport),
                 t=HEADER_TIMEOUT)
        self._close(abort=True)

    # -- reading requests --------------------------------------------------------------------
    def _pump(self) -> None:
        """Take request events while the current state can use them.

        Only the client's bytes and the exchange's own reports (:meth:`exchangeMoved`) lead
        here, and what this loop calls never calls back into it."""
        while True:
            state = self.state
            if not (state is ConnectionState.HEAD or state is ConnectionState.LOCAL
                    or (state is ConnectionState.EXCHANGE and self.exchange.forwarding)):
                break
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self._badRequest(e)
                return
            if event is h11.NEED_DATA:
                self.valve.release("wait")
                return
            if event is h11.PAUSED:
                break
            eventType = type(event)
            if eventType is h11.Data:
                if state is ConnectionState.EXCHANGE:
                    self.exchange.requestData(event.data)
                    self._settle()
            elif eventType is h11.EndOfMessage:
                if state is ConnectionState.EXCHANGE:
                    self.exchange.requestEnd()
                    self._settle()
                else:
                    self._nextRequest()
            elif eventType is h11.Request:
                self._onRequest(event)
            elif eventType is h11.ConnectionClosed:
                self._close()
                return
        if self.state is not ConnectionState.CLOSED and self.switchedTo is None and self.h11.trailing_data[0]:
            # Bytes we cannot take yet (a body while waiting for a backend, a pipelined
            # request) wait in h11's buffer: read no more meanwhile.  Pausing only then, not
            # for every request, saves two epoll changes per request on the usual client that
            # sends its next request after the response.
            self.valve.hold("wait")

    def _badRequest(self, error: h11.RemoteProtocolError) -> None:
        status = error.error_status_hint
        text = b"Request Header Fields Too Large" if status == 431 else b"Bad Request"
        if status not in (400, 431):
            status, text = 400, b"Bad Request"
        # h11's message may quote the offending line: keep the log line bounded.
        log.info("closing http connection from {peer}: {error}", peer=describePeer(self.transport), error=str(error)[:200])
        if self.state is ConnectionState.HEAD:
            self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                                 b"Connection: close\r\n\r\n%d %s" % (status, text, status, text))
            self._close()
        else:
            self._close(abort=True)

    def _onRequest(self, request: h11.Request) -> None:
        self._headTimer.stop()
        headers: List[Tuple[bytes, bytes]] = request.headers.raw_items()
        if len(headers) > MAX_HEADERS:
            self._badRequest(h11.RemoteProtocolError("too many headers", error_status_hint=431))
            return
        if sum(len(name) + len(value) for name, value in headers) > MAX_HEAD:
            # h11 bounds only a head still incomplete; one that arrived whole in a read may be longer.
            self._badRequest(h11.RemoteProtocolError("request head too large", error_status_hint=431))
            return
        transferEncoding = first_header(headers, b"transfer-encoding")
        if transferEncoding is not None and first_header(headers, b"content-length") is not None:
            self._badRequest(h11.RemoteProtocolError("both Content-Length and Transfer-Encoding", 400))
            return
        if request.http_version == b"1.0" and transferEncoding is not None:
            # RFC 9112 §6.1: faulty framing (Go ignores the header and would read the body as
            # the next request), so refused like the other smuggling shapes.
            self._badRequest(h11.RemoteProtocolError("Transfer-Encoding in an HTTP/1.0 request", 400))
            return
        self.handleRequest(request, headers, (transferEncoding or b"").lower().endswith(b"chunked"))

    # -- the exchange ------------------------------------------------------------------------
    def forward(self, exchange: Exchange) -> None:
        """Hand the current request to ``exchange`` (from :meth:`handleRequest`)."""
        self.state = ConnectionState.EXCHANGE
        self.exchange = exchange
        exchange.start(self.transport.getPeer())
        self._settle()

    def writeResponse(self, event) -> None:
        """Write a response event (h11 checks it fits the request).  A final response without
        ``Date`` gets one last, as Go's server dates every response it writes (frps's vhost,
        frpc's HTTP plugins: all Go ``http.Server``); 1xx heads are left as they are."""
        if type(event) is h11.Response and not _dated(event):
            event = h11.Response(status_code=event.status_code, reason=event.reason,
                                 headers=event.headers.raw_items() + [(b"Date", http_date(self.clock.seconds()))])
        data = self.h11.send(event)
        if data:
            self.transport.write(data)

    def exchangeMoved(self) -> None:
        """The exchange moved by itself: act on its state, then read what it allows."""
        if self.state is ConnectionState.EXCHANGE:
            self._settle()
            if self.state is ConnectionState.HEAD and self.h11.trailing_data == (b"", False):
                # The usual end of a keep-alive exchange: the client sends its next request
                # only after this response, so there is nothing to parse yet.  Asking h11
                # anyway costs one of the dozen h11 calls of a request (bench_vhost_exchange).
                return
            self._pump()

    def _settle(self) -> None:
        """Act on an exchange that ended: next request, a local answer, or the tunnel."""
        exchange = self.exchange
        state = exchange.state
        if state is ExchangeState.COMPLETE:
            self.exchange = None
            self._nextRequest()
        elif state is ExchangeState.FAILED:
            self.exchange = None
            if exchange.answer is None:
                self._close(abort=True)
            else:
                self.answerFailed(exchange.answer)
        elif state is ExchangeState.SWITCHED:
            self.exchange = None
            self._tunnel(exchange.backend, exchange.backendLeftover)

    def _tunnel(self, backend: Backend, backendLeftover: bytes) -> None:
        """Splice the client and the backend connection raw, with the bytes each side already read."""
        self.valve.releaseAll()
        self._headTimer.cancel()
        self.state = ConnectionState.TUNNEL
        self.hold(self.h11.trailing_data[0])
        backend.hold(backendLeftover)
        if backend.meter is not None:
            # The splice counts from here on, the held bytes too: the backend counted those
            # already when they arrived.
            backend.meter.addOut(-len(backendLeftover))
        splice(self, backend, backend.meter)

    # -- local answers -----------------------------------------------------------------------
    def answer(self, status: int, headers: Headers, body: bytes, sniffedType: bytes = b"") -> None:
        """Answer the current request here; the rest of its body is dropped.

        The head is laid out as Go's server writes a handler's answer: the handler's
        ``headers``, then those the server adds (``Date``, ``Content-Length``, and the
        ``Content-Type`` it would sniff from the body, ``sniffedType``)."""
        self.state = ConnectionState.LOCAL
        added = [(b"Date", http_date(self.clock.seconds())), (b"Content-Length", b"%d" % len(body))]
        if sniffedType:
            added.append((b"Content-Type", sniffedType))
        try:
            self.writeResponse(h11.Response(status_code=status, reason=reason(status), headers=headers + added))
            if body:
                self.writeResponse(h11.Data(data=body))
            self.writeResponse(h11.EndOfMessage())
        except h11.LocalProtocolError as e:
            log.warn("cannot answer http request from {peer}: {error}", peer=describePeer(self.transport), error=e)
            self._close(abort=True)
            return
        if self.h11.their_state is not h11.SEND_BODY:
            self._nextRequest()

    def _nextRequest(self) -> None:
        """The request and its response are complete: read the next one, or close.  Called
        when the request ends before its answer (a 407 a plugin delays, as frp's http_proxy
        does) it waits: :meth:`answer` calls it again, and a client's ``Connection: close``
        then closes after the answer, not instead of it."""
        h = self.h11
        if h.our_state is h11.SEND_RESPONSE:
            return
        if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
            self._close()
            return
        if h.our_state is h11.DONE and h.their_state is h11.DONE:
            h.start_next_cycle()
            self.state = ConnectionState.HEAD
            self._headTimer.start(HEADER_TIMEOUT)
            self.valve.release("wait")
