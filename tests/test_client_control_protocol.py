"""The control protocol (its machine and the Twisted side together), byte-exact, on a StringTransport
with a fixed clock."""

import json

from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._control_machine import ControlState
from frptw.client._control_protocol import ControlProtocol
from frptw.client._proxies import NEW, RUNNING, START_ERROR, WAIT_START, ProxyTable
from frptw.errors import ConnectionClosed, LoginError, ProxyError
from frptw.wire.messages import (
    CloseProxy,
    LoginResp,
    NewProxy,
    NewProxyResp,
    NewWorkConn,
    Ping,
    Pong,
    ReqWorkConn,
    encode_message,
)
from tests.fakes import BAD_TOKEN, CAPTURE_TIME, TCP_PROXY, FakeFrps, config


class SessionTestMixin:
    def start(self, cfg, runId: str = ""):
        self.clock = Clock()
        self.clock.advance(CAPTURE_TIME)
        self.proxies = ProxyTable(cfg.user)
        for proxy in cfg.proxies:
            self.proxies.add(proxy)
        self.work = []
        self.session = ControlProtocol(cfg, self.proxies, self.clock, runId, self.work.append)
        self.transport = StringTransport()
        self.session.makeConnection(self.transport)
        self.frps = FakeFrps(self.transport)
        self.loginResult = []
        self.session.loggedIn.addBoth(self.loginResult.append)
        return self.frps.login()

    def accept(self, runId: str = "feedfacefeedface") -> None:
        self.session.dataReceived(encode_message(LoginResp(version="0.65.0", run_id=runId)))

    def lose(self, reason=None) -> None:
        self.session.connectionLost(reason or Failure(ConnectionDone()))


class LoginTests(SessionTestMixin, SynchronousTestCase):
    def test_login_bytes_match_real_frpc(self) -> None:
        """Default config: byte-identical to the capture in wire-protocol.md §5.2."""
        self.start(config())
        expected = (
            b'{"version":"0.65.0","os":"linux","arch":"amd64",'
            b'"privilege_key":"5a0b5c58b8214ef5bd8b4ccb92a604d8","timestamp":1795640934,'
            b'"client_spec":{},"pool_count":1}'
        )
        self.assertEqual(self.frps.loginBytes, b"o" + len(expected).to_bytes(8, "big") + expected)
        self.assertEqual(len(expected), 0x9A)

    def test_login_with_user_metas_and_pool_matches_capture_shape(self) -> None:
        """The §5.8 capture: user, metas and pool_count in Go struct order."""
        msg = self.start(config('user = "u1"\nmetadatas.k = "v"\ntransport.poolCount = 2'))
        self.assertEqual(
            json.loads(encode_message(msg)[9:]),
            {
                "version": "0.65.0",
                "os": "linux",
                "arch": "amd64",
                "user": "u1",
                "privilege_key": "5a0b5c58b8214ef5bd8b4ccb92a604d8",
                "timestamp": CAPTURE_TIME,
                "metas": {"k": "v"},
                "client_spec": {},
                "pool_count": 2,
            },
        )
        self.assertEqual(
            list(json.loads(encode_message(msg)[9:])),
            ["version", "os", "arch", "user", "privilege_key", "timestamp", "metas", "client_spec", "pool_count"],
        )

    def test_reconnect_login_carries_run_id(self) -> None:
        msg = self.start(config(), runId="43dae6677cd93de8")
        self.assertEqual(msg.run_id, "43dae6677cd93de8")

    def test_nothing_written_before_login_resp(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        self.assertEqual(self.transport.value(), b"")
        self.assertIs(self.session.state, ControlState.LOGGING_IN)

    def test_login_success(self) -> None:
        self.start(config())
        self.accept("43dae6677cd93de8")
        self.assertIs(self.session.state, ControlState.RUNNING)
        self.assertEqual(self.session.runId, "43dae6677cd93de8")
        self.assertEqual(self.loginResult, [LoginResp(version="0.65.0", run_id="43dae6677cd93de8")])
        self.assertEqual(self.clock.getDelayedCalls(), [])  # login timer gone, no heartbeat with tcpMux

    def test_login_refused_is_login_error_with_frps_text(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        self.session.dataReceived(encode_message(LoginResp(version="0.65.0", error=BAD_TOKEN)))
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertIs(self.session.state, ControlState.CLOSED)
        [failure] = self.loginResult
        failure.trap(LoginError)
        self.assertEqual(str(failure.value), BAD_TOKEN)
        self.assertEqual(self.proxies.get("t1").state, NEW)
        self.assertTrue(self.session.ended.called)

    def test_login_timeout(self) -> None:
        self.start(config())
        self.clock.advance(9.9)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.1)
        self.assertTrue(self.transport.disconnecting)
        self.lose(Failure(ConnectionLost()))
        self.loginResult[0].trap(ConnectionClosed)
        self.assertIn("LoginResp", str(self.loginResult[0].value))

    def test_connection_lost_during_login(self) -> None:
        self.start(config())
        self.lose(Failure(ConnectionLost("gone")))
        self.loginResult[0].trap(ConnectionClosed)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_garbage_instead_of_login_resp(self) -> None:
        self.start(config())
        self.session.dataReceived(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.lose()
        self.assertTrue(self.loginResult[0].check(ConnectionClosed))

    def test_login_resp_and_encrypted_messages_in_one_chunk(self) -> None:
        self.start(config())
        self.session.dataReceived(
            encode_message(LoginResp(version="0.65.0", run_id="r1")) + self.frps.encrypted(ReqWorkConn())
        )
        self.assertEqual(self.work, [NewWorkConn(run_id="r1")])


class ProxyRegistrationTests(SessionTestMixin, SynchronousTestCase):
    def test_new_proxy_for_every_proxy_after_login(self) -> None:
        self.start(config('user = "u1"', TCP_PROXY))
        waiting = self.proxies.waitStarted("t1")
        self.accept()
        [msg] = self.frps.messages()
        self.assertEqual(msg, NewProxy(proxy_name="u1.t1", proxy_type="tcp", remote_port=6000))
        self.assertEqual(self.proxies.get("t1").state, WAIT_START)
        self.session.dataReceived(
            self.frps.encrypted(NewProxyResp(proxy_name="u1.t1", remote_addr=":6000"))
        )
        status = self.successResultOf(waiting)
        self.assertEqual((status.status, status.remote_addr), (RUNNING, ":6000"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_two_hundred_proxies_cost_one_write_and_no_per_proxy_wait(self) -> None:
        """Issue 13: registration is not serial round trips.  After LoginResp every NewProxy
        goes out at once, in one write, before any answer; answers are matched by name in
        whatever order they come."""
        count = 200
        self.start(config(proxies="".join(
            f'[[proxies]]\nname = "p{i}"\ntype = "tcp"\nlocalPort = 22\nremotePort = {6000 + i}\n'
            for i in range(count)
        )))
        writes = []
        write = self.transport.write
        self.transport.write = lambda data: (writes.append(data), write(data))
        self.accept()
        self.assertEqual(len(writes), 1)
        sent = self.frps.messages()
        self.assertEqual([m.proxy_name for m in sent], [f"p{i}" for i in range(count)])
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # one timer, not one per proxy
        answers = b"".join(
            self.frps.encrypted(NewProxyResp(proxy_name=m.proxy_name, remote_addr=f":{m.remote_port}"))
            for m in reversed(sent)
        )
        self.session.dataReceived(answers)
        self.assertEqual({e.state for e in self.proxies}, {RUNNING})
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(writes), 1)

    def test_refused_proxy_retries_after_30_seconds(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        waiting = self.proxies.waitStarted("t1")
        self.accept()
        self.frps.messages()
        self.session.dataReceived(self.frps.encrypted(NewProxyResp(proxy_name="t1", error="port already used")))
        failure = self.failureResultOf(waiting, ProxyError)
        self.assertEqual(str(failure.value), "port already used")
        status = self.proxies.get("t1").status
        self.assertEqual((status.status, status.err), (START_ERROR, "port already used"))
        self.clock.advance(29.9)
        self.assertEqual(self.frps.messages(), [])
        self.clock.advance(0.1)
        self.assertEqual([m.proxy_name for m in self.frps.messages()], ["t1"])
        self.assertEqual(self.proxies.get("t1").state, WAIT_START)

    def test_unanswered_new_proxy_is_sent_again_after_20_seconds(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        self.accept()
        self.frps.messages()
        self.clock.advance(20)
        self.assertEqual([type(m) for m in self.frps.messages()], [NewProxy])

    def test_proxy_added_while_running(self) -> None:
        self.start(config())
        self.accept()
        self.proxies.add(config(proxies=TCP_PROXY).proxies[0])
        self.session.registerProxy("t1")
        self.assertEqual([m.proxy_name for m in self.frps.messages()], ["t1"])

    def test_removed_proxy_is_closed(self) -> None:
        self.start(config('user = "u1"', TCP_PROXY))
        self.accept()
        self.frps.messages()
        self.proxies.remove("t1")
        self.session.unregisterProxy("t1")
        self.assertEqual(self.frps.messages(), [CloseProxy(proxy_name="u1.t1")])
        self.assertEqual(self.clock.getDelayedCalls(), [])  # no resend for a removed proxy

    def test_answer_for_unknown_proxy_is_ignored(self) -> None:
        self.start(config())
        self.accept()
        self.session.dataReceived(self.frps.encrypted(NewProxyResp(proxy_name="nope", remote_addr=":1")))
        self.assertIs(self.session.state, ControlState.RUNNING)

    def test_close_sends_close_proxy_then_closes(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        self.accept()
        self.frps.messages()
        self.session.close()
        self.assertEqual(self.frps.messages(), [CloseProxy(proxy_name="t1")])
        self.assertTrue(self.transport.disconnecting)

    def test_session_end_puts_proxies_back_to_new(self) -> None:
        self.start(config(proxies=TCP_PROXY))
        self.accept()
        self.session.dataReceived(self.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        self.lose(Failure(ConnectionLost()))
        self.assertEqual(self.proxies.get("t1").state, NEW)
        self.assertTrue(self.session.ended.called)
        self.assertTrue(self.session.endReason.check(ConnectionLost))
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WorkAndHeartbeatTests(SessionTestMixin, SynchronousTestCase):
    def test_req_work_conn_opens_a_work_connection(self) -> None:
        self.start(config())
        self.accept("r1")
        self.session.dataReceived(self.frps.encrypted(ReqWorkConn()) + self.frps.encrypted(ReqWorkConn()))
        self.assertEqual(self.work, [NewWorkConn(run_id="r1")] * 2)

    def test_new_work_conns_scope_adds_the_key(self) -> None:
        self.start(config('auth.additionalScopes = ["NewWorkConns"]'))
        self.accept("r1")
        self.clock.advance(406)  # 1795641340, the §5.8 capture's timestamp
        self.session.dataReceived(self.frps.encrypted(ReqWorkConn()))
        self.assertEqual(
            self.work,
            [NewWorkConn(run_id="r1", privilege_key="65e1eefc2880057a04b164ee64b6581b", timestamp=1795641340)],
        )

    def test_no_pings_with_tcp_mux(self) -> None:
        self.start(config())
        self.accept()
        self.clock.advance(300)
        self.assertEqual(self.frps.messages(), [])
        self.assertIs(self.session.state, ControlState.RUNNING)

    def test_pings_without_tcp_mux_and_timeout(self) -> None:
        self.start(config("transport.tcpMux = false"))
        self.accept()
        self.assertEqual(self.frps.messages(), [Ping()])  # at once after login
        self.clock.advance(30)
        self.session.dataReceived(self.frps.encrypted(Pong()))
        self.assertEqual(self.frps.messages(), [Ping()])
        self.clock.pump([30, 30])
        self.assertEqual(self.frps.messages(), [Ping(), Ping()])
        self.assertFalse(self.transport.disconnecting)  # last Pong 60 s ago, timeout 90 s
        self.clock.advance(30)
        self.assertFalse(self.transport.disconnecting)  # 90 s exactly is not yet over the timeout
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)
        self.lose(Failure(ConnectionLost()))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_heartbeats_scope_adds_the_key(self) -> None:
        self.start(config('transport.heartbeatInterval = 10\nauth.additionalScopes = ["HeartBeats"]'))
        self.accept()
        self.assertEqual(
            self.frps.messages(),
            [Ping(privilege_key="5a0b5c58b8214ef5bd8b4ccb92a604d8", timestamp=CAPTURE_TIME)],
        )

    def test_pong_error_drops_the_session(self) -> None:
        self.start(config("transport.heartbeatInterval = 10"))
        self.accept()
        self.session.dataReceived(
            self.frps.encrypted(Pong(error="token in heartbeat doesn't match token from configuration"))
        )
        self.assertTrue(self.transport.disconnecting)

    def test_garbage_after_login_drops_the_session(self) -> None:
        self.start(config())
        self.accept()
        self.session.dataReceived(self.frps.codec.encode(b"z" + bytes(8)))
        self.assertTrue(self.transport.disconnecting)
        self.lose(Failure(ConnectionLost()))
        self.assertIs(self.session.state, ControlState.CLOSED)
