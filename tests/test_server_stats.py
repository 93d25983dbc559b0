"""frps's statistics model (frptw.server.stats): frp 0.65's in-memory collector, on task.Clock;
and the dashboard's ``conf`` of a proxy (frptw.server.proxy_conf).

Days are local calendar days, so the tests start the clock at a local noon and move it past
local midnights computed the same way the module does (daylight saving included).
"""

import time

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.proxy_conf import proxy_conf
from frptw.server.stats import (
    CLEANUP_INTERVAL,
    OFFLINE_RETENTION,
    RESERVE_DAYS,
    DailyCounter,
    ServerStats,
    format_time,
    next_midnight,
)
from frptw.wire.messages import NewProxy

#: 2026-03-10 12:00 local time.
NOON = time.mktime((2026, 3, 10, 12, 0, 0, 0, 0, -1))


def noonClock() -> Clock:
    clock = Clock()
    clock.advance(NOON)
    return clock


def toNextDay(clock: Clock) -> None:
    """Move ``clock`` one second past the next local midnight."""
    clock.advance(next_midnight(clock.seconds()) - clock.seconds() + 1)


class DailyCounterTests(SynchronousTestCase):
    def test_shift_moves_today_into_history_and_drops_the_oldest(self) -> None:
        counter = DailyCounter()
        for day in range(1, RESERVE_DAYS + 2):
            counter.today += day
            counter.shift(1)
        self.assertEqual(counter.days(), [0, 8, 7, 6, 5, 4, 3])
        self.assertEqual(counter.lifetime, sum(range(1, RESERVE_DAYS + 2)))

    def test_several_days_at_once_leave_zero_days_between(self) -> None:
        counter = DailyCounter()
        counter.today = 5
        counter.shift(3)
        self.assertEqual(counter.days(), [0, 0, 0, 5, 0, 0, 0])
        counter.today = 1
        counter.shift(RESERVE_DAYS + 1)
        self.assertEqual(counter.days(), [0] * RESERVE_DAYS)
        self.assertEqual(counter.lifetime, 6)

    def test_forget_clears_the_days_but_not_the_lifetime(self) -> None:
        counter = DailyCounter()
        counter.today = 7
        counter.shift(1)
        counter.today = 3
        counter.forget()
        self.assertEqual((counter.days(), counter.lifetime), ([0] * RESERVE_DAYS, 10))


class ServerStatsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = noonClock()
        self.stats = ServerStats(self.clock)

    def test_traffic_and_connections_count_for_the_proxy_and_the_server(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        web = self.stats.proxyOpened("web", "http")
        ssh.connectionOpened()
        ssh.addIn(100)
        ssh.addOut(40)
        web.addIn(5)
        self.assertEqual((ssh.trafficIn.today, ssh.trafficOut.today, ssh.curConns), (100, 40, 1))
        self.assertEqual((self.stats.trafficIn.today, self.stats.trafficOut.today, self.stats.curConns),
                         (105, 40, 1))
        ssh.connectionClosed()
        self.assertEqual((ssh.curConns, self.stats.curConns), (0, 0))

    def test_type_counts_keep_a_type_at_zero(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        self.stats.proxyOpened("dns", "udp")
        self.stats.proxyClosed(ssh)
        self.assertEqual(self.stats.proxyTypeCounts, {"tcp": 0, "udp": 1})

    def test_a_closed_proxy_stays_offline_with_its_times(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        self.clock.advance(5)
        self.stats.proxyClosed(ssh)
        self.assertIs(self.stats.proxies["ssh"], ssh)
        self.assertTrue(ssh.offline)
        self.assertEqual((ssh.lastStartTime, ssh.lastCloseTime), (NOON, NOON + 5))
        self.assertEqual(format_time(ssh.lastStartTime), "03-10 12:00:00")
        self.assertEqual(format_time(None), "")

    def test_the_same_name_and_type_continues_its_record(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        ssh.addIn(10)
        self.stats.proxyClosed(ssh)
        again = self.stats.proxyOpened("ssh", "tcp")
        self.assertIs(again, ssh)
        self.assertFalse(again.offline)
        self.assertEqual(again.trafficIn.today, 10)

    def test_another_type_replaces_the_record_but_not_the_series(self) -> None:
        ssh = self.stats.proxyOpened("x", "tcp")
        ssh.addIn(10)
        self.stats.proxyClosed(ssh)
        udp = self.stats.proxyOpened("x", "udp")
        self.assertIsNot(udp, ssh)
        self.assertIs(self.stats.proxies["x"], udp)
        self.assertEqual(set(self.stats.series), {("x", "tcp"), ("x", "udp")})
        self.stats.proxyClosed(udp)
        back = self.stats.proxyOpened("x", "tcp")
        self.assertIs(back, ssh)
        self.assertEqual((back.trafficIn.today, back.trafficIn.lifetime), (0, 10))

    def test_clear_offline_forgets_only_offline_records_and_keeps_the_series(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        self.stats.proxyOpened("web", "http")
        ssh.addOut(3)
        self.stats.proxyClosed(ssh)
        self.assertEqual(self.stats.clearOffline(), (1, 2))
        self.assertEqual(set(self.stats.proxies), {"web"})
        self.assertEqual(self.stats.series[("ssh", "tcp")].trafficOut.lifetime, 3)
        self.assertEqual(self.stats.clearOffline(), (0, 1))

    def test_rollover_at_local_midnight(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        ssh.addIn(100)
        toNextDay(self.clock)
        self.stats.rollover()
        ssh.addIn(1)
        self.assertEqual(ssh.trafficIn.days(), [1, 100, 0, 0, 0, 0, 0])
        self.assertEqual(self.stats.trafficIn.today, 1)
        self.stats.rollover()
        self.assertEqual(ssh.trafficIn.days()[:2], [1, 100])

    def test_the_midnight_timer_rolls_over_every_day(self) -> None:
        ssh = self.stats.proxyOpened("ssh", "tcp")
        self.stats.start()
        self.addCleanup(self.stats.stop)
        for day in range(3):
            ssh.addOut(day + 1)
            toNextDay(self.clock)
        self.assertEqual(ssh.trafficOut.days(), [0, 3, 2, 1, 0, 0, 0])

    def test_long_offline_records_go_at_the_twelve_hour_check(self) -> None:
        old = self.stats.proxyOpened("old", "tcp")
        self.stats.proxyClosed(old)
        self.stats.start()
        self.addCleanup(self.stats.stop)
        self.clock.advance(OFFLINE_RETENTION - CLEANUP_INTERVAL)
        recent = self.stats.proxyOpened("recent", "tcp")
        self.stats.proxyClosed(recent)
        self.assertIn("old", self.stats.proxies)
        self.clock.advance(CLEANUP_INTERVAL + 1)
        self.clock.advance(CLEANUP_INTERVAL)
        self.assertEqual(set(self.stats.proxies), {"recent"})

    def test_stop_cancels_the_timers(self) -> None:
        self.stats.start()
        self.stats.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ProxyConfTests(SynchronousTestCase):
    """The dashboard's ``conf`` (frptw.server.proxy_conf); compared with Go frps's in
    test_dashboard_interop, here the cases that comparison does not reach."""

    def test_http_without_locations_shows_null_and_a_bad_bandwidth_is_dropped(self) -> None:
        conf = proxy_conf(NewProxy(proxy_name="w", proxy_type="http", custom_domains=["a.test"],
                                   bandwidth_limit="9XB"), "http")
        self.assertEqual(list(conf), ["name", "type", "transport", "loadBalancer", "healthCheck", "localIP", "plugin",
                                      "customDomains", "locations", "hostHeaderRewrite"])
        self.assertIsNone(conf["locations"])
        self.assertEqual(conf["transport"], {"bandwidthLimit": "", "bandwidthLimitMode": "client"})

    def test_sudp_shows_its_whole_configuration_sorted(self) -> None:
        conf = proxy_conf(NewProxy(proxy_name="q", proxy_type="sudp", sk="k", metas={"b": "2", "a": "1"}), "sudp")
        self.assertEqual(list(conf), sorted(conf))
        self.assertEqual((conf["secretKey"], list(conf["metadatas"])), ("k", ["a", "b"]))

    def test_xtcp_and_stcp_show_only_the_base(self) -> None:
        for kind in ("stcp", "xtcp"):
            conf = proxy_conf(NewProxy(proxy_name="s", proxy_type=kind, sk="k", allow_users=["u"]), kind)
            self.assertNotIn("secretKey", conf)
            self.assertNotIn("allowUsers", conf)
