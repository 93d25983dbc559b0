"""Health checks of a proxy's local service on Twisted (frp's ``client/health``).

A :class:`HealthChecker` drives one :class:`~frptw.client._health_machine.HealthMachine`: it
runs a probe when the machine says a check is due, limits the probe to ``timeout_seconds``
(cancelling it), feeds the result back and tells its owner when the proxy turned healthy or
unhealthy.  Its only timer runs on the injected clock.

The probes are frp's: ``tcp`` succeeds when a TCP connection to ``local_ip:local_port`` opens
(it is closed at once); ``http`` sends ``GET http://local_ip:local_port<path>`` with the
configured headers (a ``Host`` header sets the request's host) and succeeds on a 2xx status
(:mod:`frptw.client._health_http`, imported only when a proxy has an http check).
"""

from typing import Callable, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from frptw.client._health_machine import HealthMachine
from frptw.config.proxies import ProxyConfig
from frptw.logs import FrpLogger
from frptw.transport.sockets import tcpEndpoint
from frptw.transport.timers import cancelCall

#: A probe: fires (with anything) when the service is healthy, fails with the reason otherwise.
Probe = Callable[[], Deferred]

_log = FrpLogger(namespace="frptw.client.health")


class _Hangup(Protocol):
    """Closes its connection as soon as it opens: a tcp check only needs the connect."""

    def connectionMade(self) -> None:
        self.transport.loseConnection()


def tcpProbe(reactor, config: ProxyConfig) -> Probe:
    endpoint = tcpEndpoint(reactor, config.local_ip, config.local_port, config.health_check.timeout_seconds)
    return lambda: endpoint.connect(Factory.forProtocol(_Hangup))


def probeFor(reactor, config: ProxyConfig) -> Probe:
    """The probe of ``config.health_check.type`` against the proxy's local service."""
    if config.health_check.type == "http":
        # twisted.web.client is a large import: only processes with an http check pay for it.
        from frptw.client._health_http import httpProbe

        return httpProbe(reactor, config)
    return tcpProbe(reactor, config)


class HealthChecker:
    """Checks one proxy's local service until stopped.

    :param name: the proxy's name (for the log).
    :param config: its health-check settings (interval, timeout, max_failed).
    :param clock: the clock the checks and their timeouts run on.
    :param probe: runs one check (see :func:`probeFor`).
    :param onChange: called with True when the proxy turned healthy, False when unhealthy.
    """

    def __init__(
        self, name: str, config: ProxyConfig, clock: IReactorTime, probe: Probe, onChange: Callable[[bool], None]
    ) -> None:
        check = config.health_check
        self.name = name
        self.machine = HealthMachine(check.interval_seconds, check.max_failed)
        self._timeout = check.timeout_seconds
        self._clock = clock
        self._probe = probe
        self._onChange = onChange
        self._timer: Optional[IDelayedCall] = None
        self._running: Optional[Deferred] = None
        self._stopped = False

    def start(self) -> None:
        """Check at once, then every ``interval`` seconds after each check ends."""
        self.machine.start(self._clock.seconds())
        self._schedule()

    def stop(self) -> None:
        """No more checks; a check under way is cancelled and its result ignored."""
        self._stopped = True
        cancelCall(self._timer)
        self._timer = None
        running, self._running = self._running, None
        if running is not None:
            running.cancel()

    def _schedule(self) -> None:
        delay = max(0.0, self.machine.nextCheck - self._clock.seconds())
        self._timer = self._clock.callLater(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        d = self._running = self._probe()
        d.addTimeout(self._timeout, self._clock)
        d.addCallbacks(lambda _: self._ended(None), self._ended)

    def _ended(self, failure: Optional[Failure]) -> None:
        if self._stopped:
            return
        self._running = None
        if failure is not None:
            _log.warn("[{name}] do one health check failed: {error}", name=self.name, error=failure.value)
        change = self.machine.checked(failure is None, self._clock.seconds())
        if change is True:
            _log.info("[{name}] health check status change to success", name=self.name)
        elif change is False:
            _log.warn("[{name}] health check status change to failed", name=self.name)
        self._schedule()
        if change is not None:
            self._onChange(change)
