"""frpc's login retry policy (wire-protocol.md §5.4, §11.2)."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._reconnect import ReconnectPolicy


class PolicyTests(SynchronousTestCase):
    def test_first_login_doubles_to_ten_seconds(self) -> None:
        policy = ReconnectPolicy(Clock(), jitter=lambda: 0.0)
        self.assertEqual([policy(n) for n in range(1, 7)], [1, 2, 4, 8, 10, 10])

    def test_jitter_is_ten_percent(self) -> None:
        policy = ReconnectPolicy(Clock(), jitter=lambda: 1.0)
        self.assertAlmostEqual(policy(1), 1.1)
        self.assertAlmostEqual(policy(9), 11.0)

    def test_huge_attempt_counts_do_not_overflow(self) -> None:
        policy = ReconnectPolicy(Clock(), jitter=lambda: 0.0)
        self.assertEqual(policy(10_000), 10)

    def test_after_a_session_the_cap_is_twenty_seconds(self) -> None:
        policy = ReconnectPolicy(Clock(), jitter=lambda: 0.0)
        policy.loggedIn()
        self.assertEqual([policy(n) for n in range(1, 7)], [1, 2, 4, 8, 16, 20])

    def test_lost_session_retries_quickly_three_times_a_minute(self) -> None:
        clock = Clock()
        policy = ReconnectPolicy(clock, jitter=lambda: 0.0)
        policy.loggedIn()
        delays = []
        for _ in range(4):
            policy.sessionLost()
            delays.append(policy(1))
            clock.advance(10)
        self.assertEqual(delays, [0.2, 0.2, 0.2, 1.0])
        clock.advance(30)  # the first quick retry is now more than a minute old
        policy.sessionLost()
        self.assertEqual(policy(1), 0.2)
        self.assertEqual(policy(2), 2.0)  # only the first retry after a loss is quick

    def test_quick_retry_jitter_is_fifty_percent(self) -> None:
        policy = ReconnectPolicy(Clock(), jitter=lambda: 1.0)
        policy.loggedIn()
        policy.sessionLost()
        self.assertAlmostEqual(policy(1), 0.3)
