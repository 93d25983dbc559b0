"""``kill -HUP`` reloads ``twistd frpc``'s configuration file (frp's ``frpc reload`` without the
admin API).

Installing a signal handler is an effect on the whole process, so it lives with the tap, not in
the embeddable client service.  The handler only schedules the reload on the reactor.
"""

import signal

from twisted.application.service import Service

from frptw.logs import FrpLogger

_log = FrpLogger(namespace="frptw.client")


class HangupReload(Service):
    """While running, SIGHUP makes ``reloader`` (:class:`frptw.client.Reloader`) reload."""

    name = "sighup"

    def __init__(self, reloader, reactor) -> None:
        self._reloader = reloader
        self._reactor = reactor
        self._previous = None

    def startService(self) -> None:
        super().startService()
        self._previous = signal.signal(signal.SIGHUP, self._received)

    def stopService(self) -> None:
        super().stopService()
        signal.signal(signal.SIGHUP, self._previous if self._previous is not None else signal.SIG_DFL)

    def _received(self, signum, frame) -> None:
        self._reactor.callFromThread(self.reload)

    def reload(self) -> None:
        _log.info("SIGHUP: reloading {path}", path=self._reloader.path)
        self._reloader.reload().addErrback(lambda _: None)  # the reloader logged why
