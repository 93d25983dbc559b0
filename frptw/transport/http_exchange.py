"""One HTTP request/response exchange of a reverse proxy over a backend connection (wire-protocol.md §10.2).

Shared by frps's HTTP vhost (the backend is a work connection of an http proxy) and frpc's HTTP
plugins (the backend is a connection to the plugin's ``localAddr``); below, "work connection"
stands for either.

Theory of operation.  Three objects share the work, each with one job:

* the user connection (an :class:`frptw.transport.http_front.HTTPFrontConnection`: frps's
  vhost connection, or a plugin's) parses requests with h11, decides about each one, answers
  its own pages (frps: 404, 401, 504) and starts one :class:`Exchange` per forwarded request;
* the :class:`Exchange` owns that request from routing to the end of its response: it borrows
  a work connection from the pool, writes the rewritten head and the body to it,
  relays the response back, and returns the work connection to the pool (or splices the two
  connections after a protocol switch);
* the pool (:class:`frptw.transport.http_pool.BackendPool`) keeps idle work connections and
  lends them out.

A work connection is wrapped in a :class:`Backend`, an h11 client connection that hands the
parsed response to the exchange that currently holds it; only an exchange sets or clears
``Backend.exchange``.

The request and the response progress independently (a backend may answer before it read the
whole body), so the exchange's :class:`ExchangeState` is their product, named:

================== ==================== ==================== ===============================
state              request body         response             what happens
================== ==================== ==================== ===============================
ACQUIRING          waits in the user's  -                    waiting for a work connection
                   buffer
SENDING            forwarded            not started          head written, body streamed
AWAITING_RESPONSE  complete             not started          ``vhost_http_timeout`` runs
DUPLEX             forwarded            relayed              both directions stream
RECEIVING          complete             relayed              response body streamed
FINISHING_REQUEST  forwarded            complete             the backend answered early
COMPLETE           complete             complete             work connection back in the pool
SWITCHED           -                    -                    101 or CONNECT: spliced raw
FAILED             -                    -                    work connection closed
================== ==================== ==================== ===============================

:data:`TRANSITIONS` lists every move; :func:`advance` is the whole machine, tested on its own.
A failure before the response started leaves :attr:`Exchange.answer` set to the status the
user connection answers itself (``failStatus``: 404 on frps, 502 in a plugin; 504 for the
timeout); after that the user connection is aborted, as Go does when a response breaks halfway.

Who calls whom.  The user connection calls :meth:`Exchange.start`, :meth:`~Exchange.requestData`,
:meth:`~Exchange.requestEnd` and :meth:`~Exchange.abandon`, and looks at :attr:`Exchange.state`
afterwards; those calls never call the user connection back, so its parsing loop is never
re-entered.  What the exchange learns on its own (a work connection lent later, response
events, the timeout, a broken work connection) it writes through
:meth:`ExchangeUser.writeResponse` and reports with :meth:`ExchangeUser.exchangeMoved`.

Backpressure.  While a work connection is lent, each transport is registered as the streaming
producer of the other through a :class:`Valve`, so a slow reader on either side pauses the
other and memory stays bounded whatever the body sizes.
"""

import enum
from http import HTTPStatus
from typing import Dict, Optional, Protocol, Set, Tuple

import h11
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IPushProducer, IReactorTime, ITransport
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.logs import FrpLogger
from frptw.transport.http_headers import rewrite_response
from frptw.transport.lazytimer import LazyTimer
from frptw.transport.splice import TrafficMeter
from frptw.transport.switch import SwitchableProtocol

log = FrpLogger()

#: Largest response head accepted from a backend.
MAX_RESPONSE_HEAD = 64 * 1024

_PHRASES = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def reason(status: int, fallback: bytes = b"") -> bytes:
    """The status text Go writes (its own table, whatever the backend said)."""
    return _PHRASES.get(status, fallback)


# -- the state machine -------------------------------------------------------------------------


class ExchangeState(enum.Enum):
    """Where an exchange is (see the table in the module docstring)."""

    ACQUIRING = "acquiring"
    SENDING = "sending"
    AWAITING_RESPONSE = "awaiting response"
    DUPLEX = "duplex"
    RECEIVING = "receiving"
    FINISHING_REQUEST = "finishing request"
    COMPLETE = "complete"
    SWITCHED = "switched"
    FAILED = "failed"


class Step(enum.Enum):
    """What moves an exchange."""

    LENT = "a work connection was lent"
    REQUEST_END = "the request ended"
    RESPONSE_HEAD = "the response head arrived"
    RESPONSE_END = "the response ended"
    SWITCH = "the connections switched protocols"
    FAIL = "the exchange failed"


S = ExchangeState

#: Every state the exchange can leave, and where each step takes it.
TRANSITIONS: Dict[Tuple[ExchangeState, Step], ExchangeState] = {
    (S.ACQUIRING, Step.LENT): S.SENDING,
    (S.SENDING, Step.REQUEST_END): S.AWAITING_RESPONSE,
    (S.SENDING, Step.RESPONSE_HEAD): S.DUPLEX,
    (S.AWAITING_RESPONSE, Step.RESPONSE_HEAD): S.RECEIVING,
    (S.DUPLEX, Step.REQUEST_END): S.RECEIVING,
    (S.DUPLEX, Step.RESPONSE_END): S.FINISHING_REQUEST,
    (S.RECEIVING, Step.RESPONSE_END): S.COMPLETE,
    (S.FINISHING_REQUEST, Step.REQUEST_END): S.COMPLETE,
    # CONNECT switches as soon as its head is written; an upgrade when the 101 arrives.
    (S.SENDING, Step.SWITCH): S.SWITCHED,
    (S.AWAITING_RESPONSE, Step.SWITCH): S.SWITCHED,
}
TRANSITIONS.update({(state, Step.FAIL): S.FAILED for state in S if state not in (S.COMPLETE, S.SWITCHED, S.FAILED)})

#: States in which the request body is forwarded (the user connection reads it).
FORWARDING = frozenset({S.SENDING, S.DUPLEX, S.FINISHING_REQUEST})
#: States in which the response head was relayed: a failure can no longer be answered.
RESPONDED = frozenset({S.DUPLEX, S.RECEIVING, S.FINISHING_REQUEST})
#: States an exchange never leaves.
FINAL = frozenset({S.COMPLETE, S.SWITCHED, S.FAILED})


class InvalidTransition(AssertionError):
    """A step that the state does not allow (a bug in the caller, not bad input)."""


def advance(state: ExchangeState, step: Step) -> ExchangeState:
    """The state after ``step`` in ``state``; raises :class:`InvalidTransition` if none."""
    try:
        return TRANSITIONS[(state, step)]
    except KeyError:
        raise InvalidTransition(f"{step.name} in state {state.name}") from None


# -- flow control ------------------------------------------------------------------------------


@implementer(IPushProducer)
class Valve:
    """Pauses a transport while any reason holds (a wait of our own, a full consumer).

    A user connection pauses its reading for itself (bytes it cannot take yet) and because the
    work connection it writes to is full; the transport must stay paused until both let go.
    """

    def __init__(self, transport: ITransport) -> None:
        self._transport = transport
        self._reasons: Set[str] = set()

    def hold(self, reason: str) -> None:
        if not self._reasons:
            self._transport.pauseProducing()
        self._reasons.add(reason)

    def release(self, reason: str) -> None:
        if reason in self._reasons:
            self._reasons.discard(reason)
            if not self._reasons:
                self._transport.resumeProducing()

    def releaseAll(self) -> None:
        if self._reasons:
            self._reasons.clear()
            self._transport.resumeProducing()

    def pauseProducing(self) -> None:
        self.hold("consumer")

    def resumeProducing(self) -> None:
        self.release("consumer")

    def stopProducing(self) -> None:
        """The consumer closed; its own connectionLost ends the exchange."""


# -- the two sides -----------------------------------------------------------------------------


class ExchangeUser(Protocol):
    """What an exchange needs from the user connection it serves."""

    transport: ITransport
    valve: Valve

    def writeResponse(self, event: object) -> None:
        """Write a response event to the user (through its h11 connection; may raise
        ``h11.LocalProtocolError``)."""

    def exchangeMoved(self) -> None:
        """The exchange changed state by itself (lent a work connection, finished, failed,
        switched); the user connection looks at :attr:`Exchange.state`."""


class Lender(Protocol):
    """What an exchange needs from a proxy's pool of work connections."""

    def acquire(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        """A work connection for one request (cancel the Deferred to stop waiting)."""

    def release(self, backend: "Backend") -> None:
        """The exchange is done with ``backend``: keep it if reusable, else close it."""

    def forget(self, backend: "Backend") -> None:
        """``backend`` was spliced: no longer the pool's to lend or close."""


class Backend(SwitchableProtocol):
    """A work connection of an http proxy, speaking HTTP/1.1 as the client.

    Response events go to the :class:`Exchange` that holds it (``exchange``, set and cleared
    only by exchanges).  Bytes arriving while no exchange holds it (idle in the pool) cannot
    answer anything: the connection is closed.  The response-head timer lives here rather than
    in the exchange so that one DelayedCall serves every request of the work connection.

    With a ``meter`` (frps's statistics), the connection is counted as frp counts an http
    proxy's work connection: open while it lives (idle in the pool or not), the bytes written
    to it as traffic in and the bytes read from it as traffic out, per chunk.
    """

    def __init__(self, clock: IReactorTime, name: str, meter: Optional[TrafficMeter] = None) -> None:
        super().__init__(bufferLimit=None)
        self.name = name
        self.meter = meter
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_RESPONSE_HEAD)
        self.exchange: Optional[Exchange] = None
        self.gone = False
        self.valve: Optional[Valve] = None
        self.responseTimer = LazyTimer(clock, self._responseTimeout)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.valve = Valve(self.transport)
        if self.meter is not None:
            self.meter.connectionOpened()

    def send(self, event: object) -> None:
        data = self.h11.send(event)
        if data:
            if self.meter is not None:
                self.meter.addIn(len(data))
            self.transport.write(data)

    def reusable(self) -> bool:
        """True once a whole exchange ended and both sides may start another (and the backend
        sent nothing past its response, which would answer the next request)."""
        h = self.h11
        return h.our_state is h11.DONE and h.their_state is h11.DONE and not self.gone and not h.trailing_data[0]

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        if self.exchange is None:
            log.warn("[{name}] unexpected {n} bytes on an idle http work connection, closing", name=self.name,
                     n=len(data))
            self.transport.abortConnection()
            return
        if self.meter is not None:
            self.meter.addOut(len(data))
        self.h11.receive_data(data)
        self._pump()

    def _pump(self) -> None:
        """Hand parsed response events to the exchange until more data is needed."""
        while self.exchange is not None and self.switchedTo is None:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as e:
                self.exchange.backendFailed(f"bad response from backend: {e}")
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            self.exchange.responseEvent(event)

    def _responseTimeout(self) -> None:
        if self.exchange is not None:
            self.exchange.timedOut()

    def readConnectionLost(self) -> None:
        """The backend's end of data (a yamux FIN): the response may end there (close-delimited),
        and the connection is done either way."""
        if self.switchedTo is not None:
            super().readConnectionLost()
            return
        self._ended()
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.meter is not None:
            self.meter.connectionClosed()
        if self.switchedTo is not None:
            super().connectionLost(reason)
            return
        self._ended()

    def _ended(self) -> None:
        if self.gone:
            return
        self.gone = True
        self.responseTimer.cancel()
        if self.exchange is not None:
            self.h11.receive_data(b"")
            self._pump()
            if self.exchange is not None:
                self.exchange.backendFailed("work connection closed")


# -- the exchange ------------------------------------------------------------------------------


class Exchange:
    """One request forwarded to an http proxy and its response (see the module docstring).

    :param user: the user connection the request came on.
    :param pool: the proxy's pool of work connections.
    :param name: the proxy's name (for logs).
    :param request: the rewritten request head to write to the work connection.
    :param upgrade: the request asked for a protocol switch (a 101 then splices).
    :param responseHeaders: the proxy's ``response_headers`` to set on the response.
    :param responseTimeout: ``vhost_http_timeout``; 0 waits for the response head forever.
    :param failStatus: the status answered when no backend could serve the request (frps's
        vhost: 404; Go's ``httputil.ReverseProxy`` in frpc's plugins: 502).
    """

    def __init__(self, user: ExchangeUser, pool: Lender, name: str, request: h11.Request, upgrade: bool,
                 responseHeaders: Dict[str, str], responseTimeout: float, failStatus: int = 404) -> None:
        self.state = ExchangeState.ACQUIRING
        #: After FAILED: the status frps answers itself, or None when the response had started.
        self.answer: Optional[int] = None
        #: After SWITCHED: the spliced work connection and the bytes it read past the 101.
        self.backend: Optional[Backend] = None
        self.backendLeftover = b""
        self._user = user
        self._pool = pool
        self._name = name
        self._request = request
        self._upgrade = upgrade
        self._responseHeaders = responseHeaders
        self._responseTimeout = responseTimeout
        self._waiting: Optional[Deferred] = None
        self._failStatus = failStatus

    # -- called by the user connection (never calls it back) ---------------------------------
    def start(self, src: Optional[IAddress]) -> None:
        """Borrow a work connection for the request of client ``src``."""
        waiting = self._pool.acquire(src)
        if waiting.called:
            # Lent (or refused) at once: the user connection sees the state when we return.
            waiting.addCallbacks(self._attach, self._noBackend)
        else:
            self._waiting = waiting
            waiting.addCallbacks(self._lent, self._notLent)

    @property
    def forwarding(self) -> bool:
        """True while request body events go to the work connection."""
        return self.state in FORWARDING

    def requestData(self, data: bytes) -> None:
        self._sendRequest(h11.Data(data=data))

    def requestEnd(self) -> None:
        if self._sendRequest(h11.EndOfMessage()):
            self._step(Step.REQUEST_END)
            if self.state is ExchangeState.COMPLETE:  # the backend had answered early
                self._detach()
            elif self.state is ExchangeState.AWAITING_RESPONSE and self._responseTimeout > 0:
                self._backend.responseTimer.start(self._responseTimeout)

    def abandon(self) -> None:
        """The user connection is closing: stop waiting, close the work connection."""
        if self.state not in FINAL:
            self._fail(None)

    # -- what happens by itself (reported with exchangeMoved) ------------------------------------
    def responseEvent(self, event: object) -> None:
        """A response event parsed from the work connection (see :class:`Backend`)."""
        kind = type(event)  # h11's event classes are final: one lookup per event
        try:
            if kind is h11.Data:
                self._user.writeResponse(event)
            elif kind is h11.Response:
                self._step(Step.RESPONSE_HEAD)
                self._backend.responseTimer.stop()
                self._user.writeResponse(self._rewritten(event))
            elif kind is h11.EndOfMessage:
                self._user.writeResponse(h11.EndOfMessage())
                self._step(Step.RESPONSE_END)
                if self.state is ExchangeState.COMPLETE:
                    self._detach()
                    self._moved()
            elif kind is h11.InformationalResponse:
                if event.status_code == 101 and self._upgrade:
                    self._user.writeResponse(h11.InformationalResponse(
                        status_code=101, reason=reason(101),
                        headers=rewrite_response(event.headers.raw_items(), self._responseHeaders, True)))
                    self._switch(self._backend.h11.trailing_data[0])
                    self._moved()
                else:
                    self._user.writeResponse(h11.InformationalResponse(
                        status_code=event.status_code, reason=reason(event.status_code, event.reason),
                        headers=rewrite_response(event.headers.raw_items(), {}, False)))
            elif kind is h11.ConnectionClosed:
                self.backendFailed("work connection closed")
        except h11.LocalProtocolError as e:
            self.backendFailed(f"cannot relay response: {e}")

    def backendFailed(self, reason: str) -> None:
        """The work connection broke or sent something unusable."""
        self._logFailure(reason)
        self._fail(self._failStatus)
        self._moved()

    def timedOut(self) -> None:
        """No response head within ``vhost_http_timeout``."""
        self._logFailure("timeout awaiting response headers")
        self._fail(504)
        self._moved()

    # -- internals ---------------------------------------------------------------------------
    #: The warning for a failed exchange (frps's text; frpc's plugins log Go's ReverseProxy one).
    FAILURE_LOG = "do http proxy request [host: {name}] error: {reason}"

    def _logFailure(self, reason: str) -> None:
        log.warn(self.FAILURE_LOG, name=self._name, reason=reason)

    def _rewritten(self, response: h11.Response) -> h11.Response:
        """The response head for the user: HTTP/1.1 whatever the backend spoke (as Go's
        ReverseProxy answers; an HTTP/1.0 backend's body that ends at its close goes on chunked),
        Go's reason phrase, hop-by-hop headers dropped, the proxy's ``response_headers`` set.  A
        head that needs none of that (the usual one) is relayed as parsed: building a new event
        would validate every header again, and h11's work is most of the vhost's CPU per request
        (bench_vhost_exchange --profile)."""
        headers = response.headers.raw_items()
        rewritten = rewrite_response(headers, self._responseHeaders, False)
        text = reason(response.status_code, response.reason)
        if rewritten == headers and text == response.reason and response.http_version == b"1.1":
            return response
        return h11.Response(status_code=response.status_code, reason=text, headers=rewritten)

    @property
    def _backend(self) -> Backend:
        return self.backend  # type: ignore[return-value]

    def _step(self, step: Step) -> None:
        self.state = advance(self.state, step)

    def _moved(self) -> None:
        self._user.exchangeMoved()

    def _lent(self, backend: Backend) -> None:
        self._attach(backend)
        self._moved()

    def _notLent(self, failure: Failure) -> None:
        if self.state is ExchangeState.ACQUIRING:  # else abandoned: the cancellation comes back here
            self._noBackend(failure)
            self._moved()

    def _attach(self, backend: Backend) -> None:
        self._waiting = None
        self._step(Step.LENT)
        self.backend = backend
        backend.exchange = self
        user = self._user
        backend.transport.registerProducer(user.valve, True)
        user.transport.registerProducer(backend.valve, True)
        if not self._sendRequest(self._request):
            return
        if self._request.method == b"CONNECT":
            backend.send(h11.EndOfMessage())
            self._switch(b"")

    def _noBackend(self, failure: Failure) -> None:
        self._waiting = None
        self._logFailure(failure.getErrorMessage())
        self._fail(self._failStatus)

    def _sendRequest(self, event: object) -> bool:
        try:
            self._backend.send(event)
        except h11.LocalProtocolError as e:
            self._logFailure(f"cannot write request: {e}")
            self._fail(self._failStatus)
            return False
        return True

    def _fail(self, status: Optional[int]) -> None:
        """End here: the work connection (if any) is closed; ``status`` is answered by frps
        unless the response had started."""
        self.answer = None if self.state in RESPONDED else status
        self._step(Step.FAIL)
        if self._waiting is not None:
            waiting, self._waiting = self._waiting, None
            waiting.cancel()
        if self.backend is not None:
            self.backend.transport.abortConnection()
            self._detach()

    def _unwire(self) -> Backend:
        backend = self._backend
        backend.exchange = None
        backend.responseTimer.stop()
        self._user.transport.unregisterProducer()
        backend.transport.unregisterProducer()
        backend.valve.releaseAll()
        self._user.valve.release("consumer")
        return backend

    def _detach(self) -> None:
        """Give the work connection back (the pool closes it unless reusable)."""
        self._pool.release(self._unwire())
        self.backend = None

    def _switch(self, leftover: bytes) -> None:
        self._step(Step.SWITCH)
        self._pool.forget(self._unwire())
        self.backendLeftover = leftover


