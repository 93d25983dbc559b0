"""The decisions of one proxy's health check, as a state machine without I/O.

frp's ``client/health`` monitor checks the local service at once when the proxy starts, then
again ``interval`` seconds after each check *ends* (a slow check delays the next one; checks
never overlap).  Its decisions, kept here exactly:

* the proxy starts **unhealthy**: it is not registered with frps before a check succeeded;
* a success while unhealthy turns it healthy (frpc then sends ``NewProxy``);
* every failure counts; a failure while healthy turns it unhealthy (frpc sends ``CloseProxy``)
  once the count has reached ``max_failed``.  The count is never reset -- frp's quirk
  (config-reference.md §5.1): after the first episode of ``max_failed`` failures, or failures
  before the first success, one later failure withdraws the proxy again.

The owner feeds :meth:`HealthMachine.checked` each result with the current time and gets back
the change, if any; :attr:`HealthMachine.nextCheck` says when to probe next.
"""

from typing import Optional

from frptw.config.proxies import ProxyConfig


def isChecked(config: ProxyConfig) -> bool:
    """Whether frp health-checks this proxy: a check type and a local port.

    A plugin proxy is checked too when it also has a local port (frp 0.65's proxy wrapper looks at
    nothing else), so its plugin is withdrawn while that port does not answer.
    """
    return config.health_check.type in ("tcp", "http") and config.local_port > 0


class HealthMachine:
    """Counts check results and decides when a proxy turns healthy or unhealthy.

    :param interval: seconds between the end of one check and the start of the next.
    :param maxFailed: failures needed (in total, see the module docstring) to withdraw.
    """

    def __init__(self, interval: float, maxFailed: int) -> None:
        self.interval = interval
        self.maxFailed = maxFailed
        self.healthy = False
        self.failures = 0
        #: When the next check should start; None before :meth:`start`.
        self.nextCheck: Optional[float] = None

    def start(self, now: float) -> None:
        """The proxy started: the first check is due at once."""
        self.nextCheck = now

    def checked(self, ok: bool, now: float) -> Optional[bool]:
        """A check ended at ``now``; returns the new health if it changed, else None."""
        self.nextCheck = now + self.interval
        if ok:
            if self.healthy:
                return None
            self.healthy = True
            return True
        self.failures += 1
        if self.healthy and self.failures >= self.maxFailed:
            self.healthy = False
            return False
        return None
