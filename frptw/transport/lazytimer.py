"""A timeout that is restarted far more often than it fires.

The HTTP vhost arms a timeout for every request (the request-head timeout, the response-head
timeout) and for every work connection it keeps idle.  Scheduling and cancelling a
DelayedCall each time shows in profiles; :class:`LazyTimer` keeps one call and only moves it
when it would wake too late.
"""

from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime


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
