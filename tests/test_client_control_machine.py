"""frpc's sans-IO control machine: messages and time in, actions out, no reactor."""

from twisted.trial.unittest import SynchronousTestCase

from frptw.client._control_machine import (
    LOGIN_TIMEOUT,
    NEW_PROXY_RESEND,
    START_ERROR_RETRY,
    Close,
    ControlMachine,
    ControlState,
    Fail,
    LoggedIn,
    OpenWorkConn,
    ProxyUpdate,
    Send,
)
from frptw.errors import ConnectionClosed, LoginError, ProtocolError
from frptw.wire.auth import privilege_key
from frptw.wire.messages import (
    CloseProxy,
    Login,
    LoginResp,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    StartWorkConn,
)
from tests.fakes import BAD_TOKEN, config

T0 = 1000.0


def request(name: str, user: str = "") -> NewProxy:
    return NewProxy(proxy_name=f"{user}.{name}" if user else name, proxy_type="tcp", remote_port=6000)


def sent(actions):
    return [a.message for a in actions if isinstance(a, Send)]


class MachineTestMixin:
    def machine(self, extra: str = "", proxies=(), user: str = "") -> ControlMachine:
        cfg = config(f'user = "{user}"\n{extra}' if user else extra)
        m = ControlMachine(cfg, runId="")
        for name in proxies:
            self.assertEqual(m.addProxy(name, request(name, user), T0), [])
        return m

    def loggedIn(self, extra: str = "", proxies=(), user: str = "", runId: str = "r1"):
        m = self.machine(extra, proxies, user)
        m.start(T0)
        actions = m.messageReceived(LoginResp(version="0.65.0", run_id=runId), T0)
        return m, actions


class LoginTests(MachineTestMixin, SynchronousTestCase):
    def test_start_sends_login_and_arms_the_timeout(self) -> None:
        m = self.machine()
        self.assertIs(m.state, ControlState.NEW)
        [action] = m.start(T0)
        self.assertIsInstance(action.message, Login)
        self.assertEqual(action.message.privilege_key, privilege_key("abc", int(T0)))
        self.assertEqual(m.deadline(), T0 + LOGIN_TIMEOUT)
        self.assertIs(m.state, ControlState.LOGGING_IN)
        self.assertEqual(m.start(T0), [])

    def test_timeout(self) -> None:
        m = self.machine()
        m.start(T0)
        self.assertEqual(m.tick(T0 + LOGIN_TIMEOUT - 0.1), [])
        [fail] = m.tick(T0 + LOGIN_TIMEOUT)
        self.assertIsInstance(fail.error, ConnectionClosed)
        self.assertIs(m.state, ControlState.CLOSED)
        self.assertIsNone(m.deadline())

    def test_refusal_is_login_error_with_frps_text(self) -> None:
        m = self.machine(proxies=["t1"])
        m.start(T0)
        [fail] = m.messageReceived(LoginResp(version="0.65.0", error=BAD_TOKEN), T0 + 1)
        self.assertEqual(fail, Fail(fail.error))
        self.assertIsInstance(fail.error, LoginError)
        self.assertEqual(str(fail.error), BAD_TOKEN)
        self.assertIsNone(m.deadline())
        self.assertEqual(m.messageReceived(ReqWorkConn(), T0 + 1), [])  # closed: ignored

    def test_success_keeps_run_id_and_reports_last(self) -> None:
        m, actions = self.loggedIn(proxies=["t1"], runId="43dae6677cd93de8")
        self.assertEqual(m.runId, "43dae6677cd93de8")
        self.assertIs(m.state, ControlState.RUNNING)
        self.assertEqual(actions[-1], LoggedIn(LoginResp(version="0.65.0", run_id="43dae6677cd93de8")))

    def test_bad_data(self) -> None:
        m, _ = self.loggedIn()
        [fail] = m.badData(ProtocolError("bad frame"))
        self.assertIn("bad frame", str(fail.error))
        self.assertEqual(m.badData(ProtocolError("again")), [])


class RegistrationTests(MachineTestMixin, SynchronousTestCase):
    def test_all_proxies_in_one_batch_without_waiting(self) -> None:
        """Issue 13: N proxies cost N NewProxy at login, no round trip between them."""
        names = [f"p{i}" for i in range(200)]
        m, actions = self.loggedIn(proxies=names, user="u1")
        self.assertEqual(sent(actions), [request(n, "u1") for n in names])
        self.assertEqual([a for a in actions if isinstance(a, ProxyUpdate)], [ProxyUpdate(n, "wait start") for n in names])
        self.assertEqual(m.deadline(), T0 + NEW_PROXY_RESEND)  # one deadline, not one wait each

    def test_answers_match_by_name_in_any_order(self) -> None:
        m, _ = self.loggedIn(proxies=["a", "b", "c"], user="u1")
        self.assertEqual(
            m.messageReceived(NewProxyResp(proxy_name="u1.c", remote_addr=":3"), T0 + 1),
            [ProxyUpdate("c", "running", remote_addr=":3")],
        )
        self.assertEqual(
            m.messageReceived(NewProxyResp(proxy_name="u1.a", error="port already used"), T0 + 2),
            [ProxyUpdate("a", "start error", error="port already used")],
        )
        self.assertEqual(m.messageReceived(NewProxyResp(proxy_name="u1.c", remote_addr=":3"), T0 + 3), [])
        self.assertEqual(m.messageReceived(NewProxyResp(proxy_name="nope"), T0 + 3), [])
        # b: still unanswered, resent at 20 s; a: refused, retried 30 s after the refusal.
        self.assertEqual(m.tick(T0 + NEW_PROXY_RESEND), [Send(request("b", "u1")), ProxyUpdate("b", "wait start")])
        self.assertEqual(m.deadline(), T0 + 2 + START_ERROR_RETRY)
        self.assertEqual(sent(m.tick(T0 + 2 + START_ERROR_RETRY)), [request("a", "u1")])

    def test_proxy_added_while_running_is_sent_at_once(self) -> None:
        m, _ = self.loggedIn()
        self.assertEqual(m.addProxy("t1", request("t1"), T0 + 5), [Send(request("t1")), ProxyUpdate("t1", "wait start")])
        self.assertEqual(m.deadline(), T0 + 5 + NEW_PROXY_RESEND)

    def test_removal(self) -> None:
        m, _ = self.loggedIn(proxies=["a", "b"])
        self.assertEqual(m.removeProxy("a"), [Send(CloseProxy(proxy_name="a"))])
        m.messageReceived(NewProxyResp(proxy_name="b", error="no"), T0)
        self.assertEqual(m.removeProxy("b"), [])  # frps does not know a refused proxy
        self.assertEqual(m.removeProxy("b"), [])
        self.assertIsNone(m.deadline())

    def test_removed_before_login_is_never_sent(self) -> None:
        m = self.machine(proxies=["a", "b"])
        m.start(T0)
        self.assertEqual(m.removeProxy("a"), [])
        actions = m.messageReceived(LoginResp(version="0.65.0", run_id="r"), T0)
        self.assertEqual(sent(actions), [request("b")])

    def test_close_sends_close_proxy_for_known_proxies_then_closes(self) -> None:
        m, _ = self.loggedIn(proxies=["a", "b"])
        m.messageReceived(NewProxyResp(proxy_name="b", error="no"), T0)
        self.assertEqual(m.close(), [Send(CloseProxy(proxy_name="a")), Close()])
        self.assertIs(m.state, ControlState.CLOSED)
        self.assertEqual(m.close(), [])
        self.assertEqual(m.addProxy("c", request("c"), T0), [])

    def test_close_while_logging_in(self) -> None:
        m = self.machine(proxies=["a"])
        m.start(T0)
        self.assertEqual(m.close(), [Close()])


class WorkAndHeartbeatTests(MachineTestMixin, SynchronousTestCase):
    def test_each_req_work_conn_opens_one(self) -> None:
        m, _ = self.loggedIn(runId="r1")
        self.assertEqual(m.messageReceived(ReqWorkConn(), T0), [OpenWorkConn(NewWorkConn(run_id="r1"))])
        self.assertEqual(m.messageReceived(StartWorkConn(proxy_name="x"), T0), [])  # ignored, as frpc does

    def test_scoped_new_work_conn(self) -> None:
        m, _ = self.loggedIn('auth.additionalScopes = ["NewWorkConns"]', runId="r1")
        [action] = m.messageReceived(ReqWorkConn(), T0 + 7)
        self.assertEqual(action.hello, NewWorkConn(run_id="r1", privilege_key=privilege_key("abc", 1007), timestamp=1007))

    def test_no_heartbeat_with_tcp_mux(self) -> None:
        m, actions = self.loggedIn()
        self.assertEqual(sent(actions), [])
        self.assertIsNone(m.deadline())

    def test_ping_with_the_batch_then_every_interval(self) -> None:
        m, actions = self.loggedIn("transport.tcpMux = false", proxies=["t1"])
        self.assertEqual(sent(actions), [request("t1"), Ping()])
        self.assertEqual(m.deadline(), T0 + 1)  # the heartbeat check
        m.messageReceived(NewProxyResp(proxy_name="t1", remote_addr=":6000"), T0)
        self.assertEqual(sent(m.tick(T0 + 29)), [])
        self.assertEqual(sent(m.tick(T0 + 30)), [Ping()])
        m.messageReceived(Pong(), T0 + 30)
        self.assertEqual(sent(m.tick(T0 + 95)), [Ping()])  # late: one Ping, not two

    def test_heartbeat_timeout_is_strictly_over(self) -> None:
        m, _ = self.loggedIn("transport.tcpMux = false")
        m.messageReceived(Pong(), T0 + 30)
        self.assertFalse([a for a in m.tick(T0 + 120) if isinstance(a, Fail)])
        [fail] = [a for a in m.tick(T0 + 121) if isinstance(a, Fail)]
        self.assertIn("no Pong", str(fail.error))
        self.assertIsNone(m.deadline())

    def test_pong_error_fails(self) -> None:
        m, _ = self.loggedIn("transport.heartbeatInterval = 10")
        [fail] = m.messageReceived(Pong(error="token in heartbeat doesn't match"), T0)
        self.assertIn("token in heartbeat doesn't match", str(fail.error))

    def test_connection_lost_clears_everything(self) -> None:
        m, _ = self.loggedIn("transport.tcpMux = false", proxies=["t1"])
        m.connectionLost()
        self.assertIs(m.state, ControlState.CLOSED)
        self.assertIsNone(m.deadline())
        self.assertEqual(m.tick(T0 + 1000), [])
