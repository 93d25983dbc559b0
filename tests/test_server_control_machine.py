"""The sans-IO control session of frps: messages in, actions out, no reactor."""

from twisted.trial.unittest import SynchronousTestCase

from frptw import FRP_VERSION
from frptw.server.auth import TokenVerifier, client_error
from frptw.server.control_machine import ControlMachine, ControlState, Send, StartProxy, StopProxy
from frptw.wire import messages as m
from frptw.wire.auth import privilege_key

TOKEN = "secret"


def session(pool_count=1, scopes=(), **kwargs):
    login = m.Login(version="0.65.0", pool_count=pool_count, privilege_key=privilege_key(TOKEN, 5), timestamp=5)
    return ControlMachine(login, "0123456789abcdef", TokenVerifier(TOKEN, scopes), 100.0, **kwargs)


def started(pool_count=1, **kwargs):
    s = session(pool_count, **kwargs)
    s.start(100.0)
    return s


class TokenVerifierTests(SynchronousTestCase):
    def test_login(self):
        v = TokenVerifier(TOKEN)
        self.assertIsNone(v.verify_login(privilege_key(TOKEN, 42), 42))
        self.assertEqual(v.verify_login(privilege_key("other", 42), 42),
                         "token in login doesn't match token from configuration")
        self.assertIsNotNone(v.verify_login(privilege_key(TOKEN, 42), 43))

    def test_scopes_are_checked_only_when_configured(self):
        plain, strict = TokenVerifier(TOKEN), TokenVerifier(TOKEN, ["HeartBeats", "NewWorkConns"])
        self.assertIsNone(plain.verify_ping("", 0))
        self.assertIsNone(plain.verify_new_work_conn("", 0))
        self.assertEqual(strict.verify_ping("", 0), "token in heartbeat doesn't match token from configuration")
        self.assertEqual(strict.verify_new_work_conn("x", 1),
                         "token in NewWorkConn doesn't match token from configuration")
        self.assertIsNone(strict.verify_new_work_conn(privilege_key(TOKEN, 9), 9))

    def test_client_error_hides_details_when_asked(self):
        self.assertEqual(client_error("register control error", "cause", True), "cause")
        self.assertEqual(client_error("register control error", "cause", False), "register control error")


class ControlMachineTests(SynchronousTestCase):
    def test_start_answers_login_then_requests_the_pool(self):
        s = session(pool_count=3)
        self.assertIs(s.state, ControlState.PENDING)
        actions = s.start(100.0)
        self.assertEqual(actions[0], Send(m.LoginResp(version=FRP_VERSION, run_id="0123456789abcdef")))
        self.assertEqual(actions[1:], [Send(m.ReqWorkConn())] * 3)
        self.assertIs(s.state, ControlState.ACTIVE)
        self.assertEqual(s.start(101.0), [])

    def test_pool_count_is_capped_by_max_pool_count(self):
        self.assertEqual(session(pool_count=50, max_pool_count=5).pool_count, 5)
        self.assertEqual(session(pool_count=-3).pool_count, 0)
        self.assertEqual(len(session(pool_count=0).start(0)), 1)

    def test_messages_before_start_are_ignored(self):
        self.assertEqual(session().receive(m.Ping(), 100.0), [])

    def test_ping_gets_pong(self):
        self.assertEqual(started().receive(m.Ping(), 101.0), [Send(m.Pong())])

    def test_ping_with_bad_key_gets_error_pong(self):
        s = started(scopes=["HeartBeats"])
        self.assertEqual(s.receive(m.Ping(privilege_key="bad", timestamp=1), 101.0),
                         [Send(m.Pong(error="token in heartbeat doesn't match token from configuration"))])
        s = started(scopes=["HeartBeats"], detailed_errors=False)
        self.assertEqual(s.receive(m.Ping(), 101.0), [Send(m.Pong(error="invalid ping"))])
        good = m.Ping(privilege_key=privilege_key(TOKEN, 7), timestamp=7)
        self.assertEqual(s.receive(good, 101.0), [Send(m.Pong())])

    def test_heartbeat_timeout(self):
        s = started(heartbeat_timeout=90)
        self.assertFalse(s.heartbeat_expired(190.0))
        s.receive(m.Ping(), 150.0)
        self.assertFalse(s.heartbeat_expired(240.0))
        self.assertTrue(s.heartbeat_expired(240.5))

    def test_no_heartbeat_check_unless_positive(self):
        for timeout in (-1, 0):
            self.assertFalse(started(heartbeat_timeout=timeout).heartbeat_expired(1e9))

    def test_rejected_ping_does_not_count_as_heartbeat(self):
        s = started(scopes=["HeartBeats"], heartbeat_timeout=10)
        s.receive(m.Ping(privilege_key="bad"), 109.0)
        self.assertTrue(s.heartbeat_expired(110.5))

    def test_new_proxy_is_started_and_answered(self):
        s = started()
        request = m.NewProxy(proxy_name="web", proxy_type="tcp", remote_port=6000)
        self.assertEqual(s.receive(request, 101.0), [StartProxy(request)])
        self.assertEqual(s.proxy_started(request, ":6000"),
                         [Send(m.NewProxyResp(proxy_name="web", remote_addr=":6000"))])
        self.assertEqual(s.proxies, {"web": 1})

    def test_failed_proxy_is_answered_with_frp_text(self):
        request = m.NewProxy(proxy_name="web")
        self.assertEqual(started().proxy_failed(request, "port not allowed"),
                         [Send(m.NewProxyResp(proxy_name="web", error="port not allowed"))])
        self.assertEqual(started(detailed_errors=False).proxy_failed(request, "port not allowed"),
                         [Send(m.NewProxyResp(proxy_name="web", error="new proxy [web] error"))])

    def test_plugin_refusals_are_answered_as_frp_does(self):
        s = started(heartbeat_timeout=10)
        self.assertEqual(s.refused(m.NewProxy(proxy_name="web"), "denied by plugin"),
                         [Send(m.NewProxyResp(proxy_name="web", error="denied by plugin"))])
        self.assertEqual(s.refused(m.Ping(), "send Ping request to plugin error"),
                         [Send(m.Pong(error="send Ping request to plugin error"))])
        self.assertTrue(s.heartbeat_expired(110.5))  # a refused ping is no heartbeat
        self.assertEqual(started(detailed_errors=False).refused(m.Ping(), "x"), [Send(m.Pong(error="invalid ping"))])
        self.assertEqual(s.refused(m.CloseProxy(proxy_name="web"), "x"), [])
        self.assertEqual(s.proxies, {})

    def test_plugin_refusal_after_close_sends_nothing(self):
        s = started()
        s.close()
        self.assertEqual(s.refused(m.NewProxy(proxy_name="web"), "x"), [])

    def test_max_ports_per_client(self):
        s = started(max_ports_per_client=1)
        first = m.NewProxy(proxy_name="a", proxy_type="tcp")
        s.proxy_started(first, ":1")
        # Types without a port (stcp) do not count.
        stcp = m.NewProxy(proxy_name="s", proxy_type="stcp")
        self.assertEqual(s.receive(stcp, 101.0), [StartProxy(stcp)])
        second = m.NewProxy(proxy_name="b")  # empty type means tcp
        self.assertEqual(s.receive(second, 101.0),
                         [Send(m.NewProxyResp(proxy_name="b", error="exceed the max_ports_per_client"))])
        s.receive(m.CloseProxy(proxy_name="a"), 102.0)
        self.assertEqual(s.receive(second, 103.0), [StartProxy(second)])

    def test_close_proxy_stops_only_own_proxies(self):
        s = started()
        s.proxy_started(m.NewProxy(proxy_name="a"), ":1")
        self.assertEqual(s.receive(m.CloseProxy(proxy_name="other"), 101.0), [])
        self.assertEqual(s.receive(m.CloseProxy(proxy_name="a"), 101.0), [StopProxy("a")])
        self.assertEqual(s.proxies, {})

    def test_other_known_messages_are_ignored(self):
        self.assertEqual(started().receive(m.NewWorkConn(run_id="x"), 101.0), [])

    def test_close_stops_every_proxy_once(self):
        s = started()
        s.proxy_started(m.NewProxy(proxy_name="a"), ":1")
        s.proxy_started(m.NewProxy(proxy_name="b", proxy_type="stcp"), "")
        self.assertEqual(sorted(s.close(), key=lambda a: a.name), [StopProxy("a"), StopProxy("b")])
        self.assertIs(s.state, ControlState.CLOSED)
        self.assertEqual(s.close(), [])
        self.assertEqual(s.receive(m.Ping(), 101.0), [])

    def test_proxy_started_after_close_is_stopped_again(self):
        s = started()
        request = m.NewProxy(proxy_name="late")
        s.receive(request, 101.0)
        s.close()
        self.assertEqual(s.proxy_started(request, ":1"), [StopProxy("late")])
        self.assertEqual(s.proxy_failed(request, "port not allowed"), [])
