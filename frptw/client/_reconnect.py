"""frpc's login retry policy, as a ``retryPolicy`` for Twisted's ``ClientService``.

frp (wire-protocol.md §5.4, §11.2) retries a failed login after 1 s, doubling each time with
10 % jitter, up to 10 s before the first successful login and up to 20 s once a session has
existed.  When a session that was up ends, the first retry is quick (200 ms, 50 % jitter) for at
most three sessions a minute, so a server restart is bridged at once but a server that keeps
dropping us right after login is not hammered.

``ClientService`` calls the policy with the number of consecutive failed attempts (1 for the
first retry); a failed login counts as a failed attempt because our endpoint only "connects"
once frps accepted the Login.
"""

import random
from typing import Callable, List

from twisted.internet.interfaces import IReactorTime

FIRST_LOGIN_CAP = 10.0
RECONNECT_CAP = 20.0
JITTER = 0.1
FAST_RETRY_DELAY = 0.2
FAST_RETRY_JITTER = 0.5
FAST_RETRY_COUNT = 3
FAST_RETRY_WINDOW = 60.0


class ReconnectPolicy:
    """Callable ``policy(attempt) -> seconds``; told about sessions by the client service."""

    def __init__(self, clock: IReactorTime, jitter: Callable[[], float] = random.random) -> None:
        self._clock = clock
        self._jitter = jitter
        self._everLoggedIn = False
        self._sessionJustLost = False
        self._fastRetries: List[float] = []

    def loggedIn(self) -> None:
        """A session was established: from now on the cap is the reconnect cap."""
        self._everLoggedIn = True

    def sessionLost(self) -> None:
        """An established session ended: the next attempt may be a quick one."""
        self._sessionJustLost = True

    def __call__(self, attempt: int) -> float:
        if self._sessionJustLost:
            self._sessionJustLost = False
            now = self._clock.seconds()
            self._fastRetries = [t for t in self._fastRetries if now - t < FAST_RETRY_WINDOW]
            if len(self._fastRetries) < FAST_RETRY_COUNT:
                self._fastRetries.append(now)
                return FAST_RETRY_DELAY * (1 + FAST_RETRY_JITTER * self._jitter())
        cap = RECONNECT_CAP if self._everLoggedIn else FIRST_LOGIN_CAP
        base = min(2.0 ** min(attempt - 1, 16), cap)
        return base * (1 + JITTER * self._jitter())
