"""FrpClientService without a network: a MemoryReactorClock plays the sockets and frps's part.

These tests use tcp_mux off and TLS off so that the scripted frps speaks plain frp; the other
stacks are exercised against the real frps in tests/test_client_interop.py.
"""

import atexit
from dataclasses import FrozenInstanceError

from twisted.internet.error import ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from frptw.client import FrpClientService, ProxyStatus, VisitorStatus
from frptw.config import STCPVisitorConfig, XTCPVisitorConfig
from frptw.errors import ConfigError, ConnectionClosed, LoginError, ProxyError, ProxyNotFound, VisitorNotFound
from frptw.wire.messages import CloseProxy, LoginResp, NewProxy, NewProxyResp, NewWorkConn, ReqWorkConn, encode_message
from tests.fakes import (
    BAD_TOKEN,
    PLAIN,
    TCP_PROXY,
    FakeConnection,
    ServiceTestMixin,
    config,
    refuse,
)

XTCP_PROXY = """
[[proxies]]
name = "u"
type = "xtcp"
secretKey = "sk"
localPort = 53
"""


class ServiceTests(ServiceTestMixin, SynchronousTestCase):
    def test_dial_settings(self) -> None:
        self.makeService('transport.dialServerTimeout = 3\ntransport.connectServerLocalIP = "127.0.0.2"')
        self.reactor.advance(0)
        [(host, port, _, timeout, bindAddress)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout, bindAddress), ("127.0.0.1", 7000, 3, ("127.0.0.2", 0)))
        refuse(self.reactor)

    def test_login_registers_configured_proxies(self) -> None:
        service = self.makeService('user = "u1"')
        loggedIn = service.whenLoggedIn()
        conn = self.login("r1")
        self.assertEqual(self.successResultOf(loggedIn), "r1")
        self.assertEqual(self.successResultOf(service.whenLoggedIn()), "r1")
        self.assertEqual(conn.loginMsg.user, "u1")
        self.assertEqual(conn.frps.messages(), [NewProxy(proxy_name="u1.t1", proxy_type="tcp", remote_port=6000)])
        self.assertEqual(service.proxyStatus("t1"), ProxyStatus("t1", "tcp", "wait start", local_addr="127.0.0.1:22"))
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="u1.t1", remote_addr=":6000")))
        self.assertEqual(
            service.proxyStatus("t1"),
            ProxyStatus("t1", "tcp", "running", "", "127.0.0.1:22", "", "127.0.0.1:6000", remote_port=6000),
        )

    def test_add_and_remove_proxy(self) -> None:
        service = self.makeService(proxies="")
        added = service.addProxy(config(proxies=TCP_PROXY).proxies[0])
        self.assertEqual(service.proxyStatus("t1").status, "new")  # not logged in yet
        conn = self.login()
        self.assertEqual([m.proxy_name for m in conn.frps.messages()], ["t1"])
        self.assertNoResult(added)
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        self.assertEqual(self.successResultOf(added).remote_addr, "127.0.0.1:6000")
        self.successResultOf(service.removeProxy("t1"))
        self.assertEqual(conn.frps.messages(), [CloseProxy(proxy_name="t1")])
        self.assertRaises(ProxyNotFound, service.proxyStatus, "t1")

    def test_add_proxy_refused_by_frps(self) -> None:
        service = self.makeService(proxies="")
        conn = self.login()
        added = service.addProxy(config(proxies=TCP_PROXY).proxies[0])
        conn.frps.messages()
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t1", error="port not allowed")))
        self.assertEqual(str(self.failureResultOf(added, ProxyError).value), "port not allowed")
        self.assertEqual(service.proxyStatus("t1").status, "start error")

    def test_api_errors(self) -> None:
        service = self.makeService()
        self.failureResultOf(service.addProxy(config(proxies=TCP_PROXY).proxies[0]), ProxyError)
        self.failureResultOf(service.removeProxy("nope"), ProxyNotFound)
        self.assertRaises(ProxyNotFound, service.proxyStatus, "nope")
        refuse(self.reactor)

    def test_snapshots_and_when_proxy_running(self) -> None:
        service = self.makeService(proxies=TCP_PROXY + XTCP_PROXY)
        self.assertEqual([(p.name, p.status) for p in service.proxies()], [("t1", "new"), ("u", "new")])
        self.assertRaises(FrozenInstanceError, setattr, service.proxies()[0], "status", "running")
        running = service.whenProxyRunning("t1")
        self.failureResultOf(service.whenProxyRunning("nope"), ProxyNotFound)
        conn = self.login()
        conn.frps.messages()
        self.assertNoResult(running)
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6001")))
        self.assertEqual(self.successResultOf(running).remote_port, 6001)
        self.assertEqual(self.successResultOf(service.whenProxyRunning("t1")).status, "running")  # at once

    def test_visitor_api(self) -> None:
        service = self.makeService(proxies="")
        self.assertEqual(service.visitors(), [])
        visitor = STCPVisitorConfig(name="v", server_name="s", secret_key="sk", bind_port=7001)
        status = self.successResultOf(service.addVisitor(visitor))
        self.assertEqual(status, VisitorStatus("v", "stcp", "s", "running", "", "127.0.0.1", 7001))
        [(port, _, _, interface)] = self.reactor.tcpServers
        self.assertEqual((port, interface), (7001, "127.0.0.1"))
        self.failureResultOf(service.addVisitor(visitor), ConfigError)
        self.assertEqual(self.successResultOf(service.addVisitor(XTCPVisitorConfig(name="x", server_name="s"))).type,
                         "xtcp")
        self.successResultOf(service.removeVisitor("x"))
        self.assertEqual([v.name for v in service.visitors()], ["v"])
        self.successResultOf(service.removeVisitor("v"))
        self.assertEqual(service.visitors(), [])
        self.failureResultOf(service.removeVisitor("v"), VisitorNotFound)
        refuse(self.reactor)

    def test_xtcp_proxy_is_registered(self) -> None:
        service = self.makeService(proxies=XTCP_PROXY)
        self.assertEqual(service.proxyStatus("u").status, "new")
        conn = self.login()
        [request] = conn.frps.messages()
        self.assertEqual((request.proxy_name, request.proxy_type, request.sk), ("u", "xtcp", "sk"))

    def test_reconnect_reuses_run_id_and_registers_again(self) -> None:
        service = self.makeService()
        first = self.login("r1")
        first.frps.messages()
        first.protocol.dataReceived(first.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        first.lose()
        self.assertEqual(service.proxyStatus("t1").status, "new")
        self.reactor.advance(0.19)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(0.11)  # quick retry: 0.2 s + up to 50 % jitter
        second = self.login("r1")
        self.assertEqual(second.loginMsg.run_id, "r1")
        self.assertEqual([m.proxy_name for m in second.frps.messages()], ["t1"])

    def test_work_connection_without_mux_is_a_new_connection(self) -> None:
        self.makeService()
        conn = self.login("r1")
        conn.protocol.dataReceived(conn.frps.encrypted(ReqWorkConn()))
        work = FakeConnection(self.reactor)
        self.assertEqual(work.transport.value(), encode_message(NewWorkConn(run_id="r1")))

    def test_stop_closes_proxies_gracefully(self) -> None:
        service = self.makeService()
        conn = self.login()
        conn.frps.messages()
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="t1", remote_addr=":6000")))
        waiting = service.whenLoggedIn()
        d = service.stopService()
        self.assertEqual(conn.frps.messages(), [CloseProxy(proxy_name="t1")])
        self.assertTrue(conn.transport.disconnecting)
        self.assertNoResult(d)
        conn.lose()
        self.successResultOf(d)
        self.successResultOf(waiting)
        self.reactor.advance(60)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_stop_aborts_a_connection_that_does_not_close(self) -> None:
        service = self.makeService()
        conn = self.login()
        d = service.stopService()
        self.reactor.advance(5)
        self.assertTrue(conn.transport.disconnecting)
        conn.lose()
        self.successResultOf(d)


class LoginFailureTests(ServiceTestMixin, SynchronousTestCase):
    def refuseLogin(self) -> FakeConnection:
        conn = FakeConnection(self.reactor)
        conn.frps.login()
        conn.protocol.dataReceived(encode_message(LoginResp(version="0.65.0", error=BAD_TOKEN)))
        self.assertTrue(conn.transport.disconnecting)
        conn.lose()
        self.reactor.advance(0)
        return conn

    def test_login_fail_exit_stops_at_the_first_refusal(self) -> None:
        service = self.makeService()
        loggedIn = service.whenLoggedIn()
        self.refuseLogin()
        failure = self.failureResultOf(loggedIn, LoginError)
        self.assertEqual(str(failure.value), BAD_TOKEN)
        [fatal] = self.fatal
        self.assertEqual(str(fatal.value), BAD_TOKEN)
        self.assertFalse(service.running)
        self.reactor.advance(60)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_embedded_service_stops_itself_and_leaves_the_process_alone(self) -> None:
        """Without onFatal (an embedding application), login_fail_exit stops the service and
        fails whenLoggedIn -- now and later -- with frps's text; the process is not touched."""
        registered = []
        self.patch(atexit, "register", registered.append)
        self.reactor = MemoryReactorClock()
        self.service = FrpClientService(config(PLAIN, TCP_PROXY), self.reactor)
        self.service.startService()
        self.addCleanup(self.stop)
        loggedIn = self.service.whenLoggedIn()
        self.refuseLogin()
        self.assertEqual(str(self.failureResultOf(loggedIn, LoginError).value), BAD_TOKEN)
        self.assertEqual(str(self.failureResultOf(self.service.whenLoggedIn(), LoginError).value), BAD_TOKEN)
        self.assertFalse(self.service.running)
        self.assertEqual((registered, self.reactor.hasStopped, self.reactor.whenRunningHooks), ([], False, []))

    def test_login_fail_exit_also_covers_an_unreachable_server(self) -> None:
        self.makeService()
        refuse(self.reactor)
        [fatal] = self.fatal
        fatal.trap(ConnectionRefusedError)

    def test_without_login_fail_exit_retries_with_backoff(self) -> None:
        service = self.makeService("loginFailExit = false")
        loggedIn = service.whenLoggedIn()
        self.refuseLogin()
        self.reactor.advance(0.99)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(0.12)  # 1 s + up to 10 % jitter
        self.refuseLogin()
        self.reactor.advance(1.99)
        self.assertEqual(self.reactor.tcpClients, [])
        self.reactor.advance(0.22)
        refuse(self.reactor)
        self.reactor.advance(4.41)
        self.login("r9")
        self.assertEqual(self.successResultOf(loggedIn), "r9")
        self.assertEqual(self.fatal, [])

    def test_login_timeout_counts_as_a_failed_attempt(self) -> None:
        service = self.makeService("loginFailExit = false")
        conn = FakeConnection(self.reactor)
        self.reactor.advance(10)
        self.assertTrue(conn.transport.disconnecting)
        conn.lose()
        self.reactor.advance(1.1)
        self.login("r2")
        self.assertEqual(self.successResultOf(service.whenLoggedIn()), "r2")

    def test_stop_while_dialing(self) -> None:
        service = self.makeService()
        self.reactor.advance(0)
        [connector] = self.reactor.connectors
        self.successResultOf(service.stopService())
        self.assertTrue(connector.stoppedConnecting)
        self.assertEqual(self.fatal, [])

    def test_stop_while_logging_in_aborts_the_connection(self) -> None:
        service = self.makeService()
        loggedIn = service.whenLoggedIn()
        conn = FakeConnection(self.reactor)
        d = service.stopService()
        self.assertTrue(conn.transport.disconnecting)
        conn.lose()
        self.successResultOf(d)
        self.failureResultOf(loggedIn, ConnectionClosed)
        self.assertEqual(self.fatal, [])

    def test_stop_while_waiting_fails_login_waiters(self) -> None:
        service = self.makeService("loginFailExit = false")
        loggedIn = service.whenLoggedIn()
        refuse(self.reactor)
        self.successResultOf(service.stopService())
        self.failureResultOf(loggedIn, ConnectionClosed)
