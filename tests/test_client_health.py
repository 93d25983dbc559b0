"""frpc health checks without a network: the decision machine, the checker on a task.Clock
with scripted probes, and the service withdrawing / re-registering a proxy (a scripted frps)."""

from typing import List

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.client import _service
from frptw.client._health import HealthChecker
from frptw.client._health_machine import HealthMachine, isChecked
from frptw.config import parse_client_config
from frptw.wire.messages import CloseProxy, NewProxy, NewProxyResp
from tests.fakes import CAPTURE_TIME, ServiceTestMixin
from tests.support import LogCapture

CHECKED_PROXY = """
[[proxies]]
name = "t1"
type = "tcp"
localPort = 22
remotePort = 6000
healthCheck = {{ type = "tcp", intervalSeconds = 2, maxFailed = {maxFailed} }}
"""


def proxyConfig(healthCheck: str, extra: str = "localPort = 22"):
    text = f'[[proxies]]\nname = "t1"\ntype = "tcp"\n{extra}\nhealthCheck = {healthCheck}\n'
    return parse_client_config(text, "toml").proxies[0]


class HealthMachineTests(SynchronousTestCase):
    def test_first_check_at_start_then_interval_after_each_end(self) -> None:
        machine = HealthMachine(interval=10, maxFailed=1)
        machine.start(100)
        self.assertEqual(machine.nextCheck, 100)
        machine.checked(True, 101.5)  # the check took 1.5 s: the next starts 10 s after its end
        self.assertEqual(machine.nextCheck, 111.5)

    def test_starts_unhealthy_and_first_success_turns_healthy(self) -> None:
        machine = HealthMachine(interval=10, maxFailed=3)
        self.assertFalse(machine.healthy)
        self.assertIsNone(machine.checked(False, 0))  # not healthy yet: no change to report
        self.assertIs(machine.checked(True, 10), True)
        self.assertIsNone(machine.checked(True, 20))
        self.assertTrue(machine.healthy)

    def test_max_failed_failures_withdraw(self) -> None:
        machine = HealthMachine(interval=1, maxFailed=3)
        machine.checked(True, 0)
        self.assertEqual([machine.checked(False, t) for t in (1, 2, 3)], [None, None, False])
        self.assertFalse(machine.healthy)
        self.assertIsNone(machine.checked(False, 4))
        self.assertIs(machine.checked(True, 5), True)

    def test_failure_count_is_never_reset(self) -> None:
        """frp's quirk (config-reference.md §5.1): after one episode, one failure withdraws."""
        machine = HealthMachine(interval=1, maxFailed=2)
        machine.checked(True, 0)
        machine.checked(False, 1)
        machine.checked(True, 2)  # still healthy: one failure of two
        self.assertIs(machine.checked(False, 3), False)
        machine.checked(True, 4)
        self.assertIs(machine.checked(False, 5), False)

    def test_failures_before_the_first_success_count(self) -> None:
        machine = HealthMachine(interval=1, maxFailed=2)
        machine.checked(False, 0)
        machine.checked(False, 1)
        machine.checked(True, 2)
        self.assertIs(machine.checked(False, 3), False)

    def test_which_proxies_are_checked(self) -> None:
        self.assertTrue(isChecked(proxyConfig('{ type = "tcp" }')))
        self.assertTrue(isChecked(proxyConfig('{ type = "http", path = "/ok" }')))
        self.assertFalse(isChecked(proxyConfig('{ type = "" }')))
        self.assertFalse(isChecked(proxyConfig('{ type = "tcp" }', extra="")))  # no local port
        plugin = '[proxies.plugin]\ntype = "socks5"'
        # A plugin proxy is checked when it also names a local port, as frp 0.65's proxy wrapper does.
        for localPort, checked in (("localPort = 1\n", True), ("", False)):
            self.assertEqual(isChecked(parse_client_config(
                f'[[proxies]]\nname = "p"\ntype = "tcp"\n{localPort}healthCheck = {{ type = "tcp" }}\n{plugin}\n', "toml"
            ).proxies[0]), checked)


class ScriptedProbe:
    """A probe whose checks the test answers; records when each started."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started: List[float] = []
        self.pending: List[Deferred] = []
        self.cancelled = 0

    def __call__(self) -> Deferred:
        self.started.append(self.clock.seconds())
        d = Deferred(lambda _: self._cancelled())
        self.pending.append(d)
        return d

    def _cancelled(self) -> None:
        self.cancelled += 1

    def answer(self, ok: bool) -> None:
        d = self.pending.pop(0)
        d.callback(None) if ok else d.errback(ConnectionRefusedError())


class HealthCheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.probe = ScriptedProbe(self.clock)
        self.changes: List[bool] = []
        self.logs = LogCapture(self)
        config = proxyConfig('{ type = "tcp", intervalSeconds = 10, timeoutSeconds = 3, maxFailed = 2 }')
        self.checker = HealthChecker("t1", config, self.clock, self.probe, self.changes.append)
        self.checker.start()
        self.addCleanup(self.checker.stop)
        self.clock.advance(0)  # "at once": on the clock's next turn

    def test_checks_at_once_then_interval_after_each_check(self) -> None:
        self.assertEqual(self.probe.started, [0])
        self.clock.advance(1)
        self.probe.answer(True)
        self.assertEqual(self.changes, [True])
        self.clock.advance(10)
        self.assertEqual(self.probe.started, [0, 11])

    def test_timeout_cancels_and_counts_as_failure(self) -> None:
        self.probe.answer(True)
        for start in (10, 23):
            self.clock.advance(start - self.clock.seconds())
            self.assertEqual(self.probe.started[-1], start)
            self.clock.advance(3)  # no answer within timeoutSeconds
        self.assertEqual(self.probe.cancelled, 2)
        self.assertEqual(self.changes, [True, False])
        texts = self.logs.texts()
        self.assertIn("[t1] health check status change to success", texts)
        self.assertIn("[t1] health check status change to failed", texts)
        self.assertEqual(sum("[t1] do one health check failed: " in t for t in texts), 2)

    def test_sync_answers_keep_the_rhythm(self) -> None:
        checker = HealthChecker("t2", proxyConfig('{ type = "tcp", intervalSeconds = 5 }'), self.clock,
                                lambda: fail(ConnectionRefusedError()), self.changes.append)
        checker.start()
        self.addCleanup(checker.stop)
        self.clock.advance(0)
        self.clock.advance(5)
        self.clock.advance(5)
        self.assertEqual(self.changes, [])  # never healthy, so nothing to withdraw
        self.assertEqual(checker.machine.failures, 3)

    def test_stop_cancels_the_check_under_way_and_the_timer(self) -> None:
        self.checker.stop()
        self.assertEqual(self.probe.cancelled, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.changes, [])


class ServiceHealthTests(ServiceTestMixin, SynchronousTestCase):
    """The service with its probes replaced by a scripted one (the frps side is scripted too)."""

    def makeChecked(self, maxFailed: int = 1):
        probes: List[ScriptedProbe] = []

        def probeFor(reactor, config):
            probes.append(ScriptedProbe(reactor))
            return probes[-1]

        self.patch(_service, "probeFor", probeFor)
        self.logs = LogCapture(self)
        self.makeService(proxies=CHECKED_PROXY.format(maxFailed=maxFailed))
        self.probes = probes
        self.probe = probes[0]

    def test_not_registered_before_the_first_success(self) -> None:
        self.makeChecked()
        conn = self.login()
        self.assertEqual(conn.frps.messages(), [])
        self.assertEqual(self.service.proxyStatus("t1").status, "new")
        self.probe.answer(False)
        self.reactor.advance(2)
        self.probe.answer(True)
        self.assertEqual(conn.frps.messages(), [NewProxy(proxy_name="t1", proxy_type="tcp", remote_port=6000)])
        self.assertIn("[t1] health check success", self.logs.texts())

    def test_withdrawn_when_failing_and_registered_again(self) -> None:
        self.makeChecked(maxFailed=2)
        conn = self.login()
        self.probe.answer(True)
        conn.frps.messages()
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        self.assertEqual(self.service.proxyStatus("t1").status, "running")
        for _ in range(2):
            self.reactor.advance(2)
            self.probe.answer(False)
        self.assertEqual(conn.frps.messages(), [CloseProxy(proxy_name="t1")])
        status = self.service.proxyStatus("t1")
        self.assertEqual((status.status, status.err, status.remote_addr), ("check failed", "", ""))
        self.assertIn("[t1] health check failed", self.logs.texts())
        self.reactor.advance(2)
        self.probe.answer(True)
        self.assertEqual(conn.frps.messages(), [NewProxy(proxy_name="t1", proxy_type="tcp", remote_port=6000)])
        self.assertEqual(self.service.proxyStatus("t1").status, "wait start")

    def test_unhealthy_proxy_is_not_registered_by_a_new_session(self) -> None:
        self.makeChecked()
        first = self.login()
        self.probe.answer(True)
        first.frps.messages()
        first.protocol.dataReceived(first.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        self.reactor.advance(2)
        self.probe.answer(False)
        first.lose()
        self.reactor.advance(10)
        second = self.login()
        self.assertEqual(second.frps.messages(), [])
        self.reactor.advance(2)
        self.probe.answer(True)
        self.assertEqual([m.proxy_name for m in second.frps.messages()], ["t1"])

    def test_a_restarted_service_checks_before_registering(self) -> None:
        self.makeChecked()
        self.login()
        self.probe.answer(True)
        self.stop()
        self.assertEqual(self.probe.started, [CAPTURE_TIME])  # its timer went with the service
        self.service.startService()
        self.assertFalse(self.service._proxies.get("t1").registrable)
        conn = self.login()
        self.assertEqual(conn.frps.messages(), [])
        self.probes[1].answer(True)
        self.assertEqual([m.proxy_name for m in conn.frps.messages()], ["t1"])

    def test_removing_the_proxy_stops_its_checks(self) -> None:
        self.makeChecked()
        self.login()
        self.successResultOf(self.service.removeProxy("t1"))
        self.assertEqual(self.probe.cancelled, 1)
        self.reactor.advance(10)
        self.assertEqual(self.probe.started, [self.probe.started[0]])

    def test_added_proxy_is_checked(self) -> None:
        self.makeChecked()
        conn = self.login()
        added = parse_client_config(CHECKED_PROXY.format(maxFailed=1).replace('"t1"', '"t2"'), "toml").proxies[0]
        d = self.service.addProxy(added)
        self.assertNoResult(d)
        self.assertEqual(conn.frps.messages(), [])
        self.assertEqual(self.service.proxyStatus("t2").status, "new")
        self.reactor.advance(0)
        self.probe.answer(True)  # t1's
        probe2 = self.probes[1]
        probe2.answer(True)
        self.assertEqual([m.proxy_name for m in conn.frps.messages()], ["t1", "t2"])
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t2", remote_addr=":6001")))
        self.assertEqual(self.successResultOf(d).status, "running")
