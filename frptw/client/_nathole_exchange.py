"""Requests on the control connection that frps answers with ``NatHoleResp`` (xtcp).

frpc's xtcp owner (``NatHoleClient``) and visitor (``NatHoleVisitor``, pre-check included) send
a message with a fresh ``transaction_id`` on the control connection and wait at most 5 s for
the ``NatHoleResp`` carrying the same id (frp's ``MessageTransporter.Do``).  One
:class:`NatHoleExchange` per frpc outlives control sessions; a request made while frpc is not
logged in fails at once.  Answers nobody waits for (late, or forged) are dropped.
"""

from typing import Callable, Dict

from twisted.internet.defer import Deferred

from frptw.errors import FrpError
from frptw.logs import FrpLogger
from frptw.wire.messages import Message, NatHoleResp

_log = FrpLogger(namespace="frptw.client.nathole")

#: frp waits this long for a NatHoleResp.
ANSWER_TIMEOUT = 5.0


class NatHoleError(FrpError):
    """A nat-hole exchange with frps failed (frp's text)."""


class NatHoleExchange:
    """Pairs NatHoleResp messages with the requests that wait for them.

    :param send: writes one message on the current control connection; raises
        :class:`~frptw.errors.ConnectionClosed` when there is none.
    """

    def __init__(self, clock, send: Callable[[Message], None]) -> None:
        self._clock = clock
        self._send = send
        self._pending: Dict[str, Deferred] = {}

    def send(self, message: Message) -> None:
        """Send a message that gets no answer (``NatHoleReport``); dropped when offline."""
        try:
            self._send(message)
        except FrpError as e:
            _log.debug("not sent: {error}", error=e)

    def request(self, message: Message, timeout: float = ANSWER_TIMEOUT) -> "Deferred[NatHoleResp]":
        """Send ``message`` (which has a ``transaction_id``); fires with frps's answer, or fails
        with NatHoleError after ``timeout`` s or when it cannot be sent."""
        tid = message.transaction_id  # type: ignore[attr-defined]
        d: Deferred = Deferred(lambda _: self._pending.pop(tid, None))
        try:
            self._send(message)
        except FrpError as e:
            d.errback(NatHoleError(f"get natHoleRespMsg error: {e}"))
            return d
        self._pending[tid] = d
        timer = self._clock.callLater(timeout, self._expired, tid)
        d.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])
        return d

    def _expired(self, tid: str) -> None:
        d = self._pending.pop(tid, None)
        if d is not None:
            d.errback(NatHoleError("get natHoleRespMsg error: context deadline exceeded"))

    def answered(self, resp: NatHoleResp) -> None:
        """A NatHoleResp arrived on the control connection."""
        d = self._pending.pop(resp.transaction_id, None)
        if d is None:
            _log.debug("NatHoleResp for unknown transaction [{tid}] dropped", tid=resp.transaction_id)
            return
        d.callback(resp)
