"""Timeouts that are restarted or withdrawn far more often than they fire.

The HTTP vhost arms a timeout for every request (the request-head timeout, the response-head
timeout) and for every work connection it keeps idle.  Scheduling and cancelling a
DelayedCall each time shows in profiles; :class:`LazyTimer` keeps one call and only moves it
when it would wake too late.  A yamux session arms a timeout for every stream it opens or
closes; :class:`Deadlines` serves all of one session's with one call.
"""

from typing import Callable, Dict, Generic, Hashable, Optional, TypeVar

from twisted.internet.interfaces import IDelayedCall, IReactorTime

K = TypeVar("K", bound=Hashable)


class LazyTimer:
    """A timeout restarted for every request without a new DelayedCall each time.

    :meth:`start` moves the deadline and reschedules the pending call only when that call
    would wake after the new deadline (rare: each restart is usually later than the last).
    :meth:`stop` only forgets the deadline; the call wakes, sees the deadline moved or gone,
    and sleeps again or ends.  :meth:`cancel` really removes the call (its owner is closing).
    """

    def __init__(self, clock: IReactorTime, callback: Callable[[], None]) -> None:
        self._clock = clock
        self._callback = callback
        self._call: Optional[IDelayedCall] = None
        self._deadline: Optional[float] = None

    @property
    def running(self) -> bool:
        return self._deadline is not None

    def start(self, seconds: float) -> None:
        """Fire the callback ``seconds`` from now unless stopped or restarted before."""
        self._deadline = deadline = self._clock.seconds() + seconds
        call = self._call
        if call is None:
            self._call = self._clock.callLater(seconds, self._wake)
        elif call.getTime() > deadline:
            call.reset(seconds)

    def stop(self) -> None:
        self._deadline = None

    def cancel(self) -> None:
        self._deadline = None
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _wake(self) -> None:
        self._call = None
        if self._deadline is None:
            return
        remaining = self._deadline - self._clock.seconds()
        if remaining > 0:
            self._call = self._clock.callLater(remaining, self._wake)
            return
        self._deadline = None
        self._callback()


class Deadlines(Generic[K]):
    """Timeouts of one fixed length for many keys (streams, connections), on one DelayedCall.

    A yamux session arms an ACK timeout for every stream it opens and a FIN timeout for every
    stream it closes first, and nearly all of them are withdrawn long before they fire; a
    DelayedCall each (scheduled, then cancelled) was two of the four timers per new connection
    profiled on frpc (``bench/bench_connect.py``).  Since every deadline is the same delay after
    its start, the keys' deadlines are in the order the keys were added: they wait in an
    insertion-ordered dict, and one call sleeps until the earliest.  :meth:`add` and
    :meth:`discard` are a dict insert and a dict pop; the call wakes at most once per delay
    while keys keep coming and going.
    """

    def __init__(self, clock: IReactorTime, delay: float, expired: Callable[[K], None]) -> None:
        self._clock = clock
        self._delay = delay
        self._expired = expired
        self._deadlines: Dict[K, float] = {}
        self._call: Optional[IDelayedCall] = None

    def __contains__(self, key: K) -> bool:
        return key in self._deadlines

    def add(self, key: K) -> None:
        """Call ``expired(key)`` ``delay`` seconds from now unless discarded before (re-adding
        a key restarts its delay)."""
        self._deadlines.pop(key, None)
        self._deadlines[key] = self._clock.seconds() + self._delay
        if self._call is None:
            self._call = self._clock.callLater(self._delay, self._wake)

    def discard(self, key: K) -> None:
        self._deadlines.pop(key, None)

    def cancel(self) -> None:
        """Forget every deadline and remove the call (the owner is closing)."""
        self._deadlines.clear()
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def _wake(self) -> None:
        self._call = None
        deadlines = self._deadlines
        while deadlines:
            key = next(iter(deadlines))
            remaining = deadlines[key] - self._clock.seconds()
            if remaining > 0:
                self._call = self._clock.callLater(remaining, self._wake)
                return
            del deadlines[key]
            self._expired(key)
