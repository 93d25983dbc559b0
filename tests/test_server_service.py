"""FrpServerService in-process on 127.0.0.1 with the real reactor, driven by a raw frp client.

The raw client (:mod:`tests.rawfrpc`) speaks v1 messages over plain TCP (the server runs with
tcpMux off), encrypts the control connection after LoginResp as frpc does, and answers
StartWorkConn by echoing the user's bytes: enough to check frps's side of every exchange byte by
byte.  TLS, yamux, encryption and compression of the data plane are exercised against the real
Go frpc in test_server_interop.
"""

import os
import socket
from dataclasses import FrozenInstanceError

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw import FRP_VERSION
from frptw import tap as tapModule
from frptw.server import FrpServerService
from frptw.server.records import ClientRecord, ProxyRecord
from frptw.tap import ServerOptions
from frptw.tap.collector import OLDER_THRESHOLDS, YOUNG_THRESHOLD, manageMemory, tuneCollector
from frptw.transport import sockets as socketsModule
from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from frptw.wire.crypto import AESCFBCodec, derive_key
from tests.rawfrpc import TOKEN, RawClientMixin, RawConn, UserConn, serverConfig
from tests.support import LogCapture, tempDir, until


class ServiceTests(RawClientMixin, TestCase):
    timeout = 30

    async def test_login_answers_and_requests_the_pool(self):
        await self.startServer("transport.maxPoolCount = 2\n")
        control, resp = await self.login(pool_count=5)
        self.assertEqual(resp.version, FRP_VERSION)
        self.assertRegex(resp.run_id, "^[0-9a-f]{16}$")
        self.assertEqual(resp.error, "")
        self.assertEqual([await control.next() for _ in range(2)], [m.ReqWorkConn(), m.ReqWorkConn()])
        self.assertIn(resp.run_id, self.service.clients())

    async def test_wrong_token(self):
        await self.startServer()
        control, resp = await self.login(token="wrong")
        self.assertEqual(resp.error, "token in login doesn't match token from configuration")
        await control.closed
        self.assertEqual(dict(self.service.clients()), {})

    async def test_wrong_token_without_details(self):
        await self.startServer("detailedErrorsToClient = false\n")
        _, resp = await self.login(token="wrong")
        self.assertEqual(resp.error, "register control error")

    async def test_tcp_proxy_carries_user_bytes_both_ways(self):
        await self.startServer()
        control, resp = await self.login(pool_count=1)
        await control.next(m.ReqWorkConn)
        work = await self.workConn(resp.run_id)
        answer = await self.newProxy(control, "echo")
        self.assertEqual(answer.error, "")
        remote = int(answer.remote_addr.lstrip(":"))
        self.assertIn("echo", self.service.proxies())
        user = await self.connect(UserConn(), remote)
        user.transport.write(b"hello through frps")
        start = await work.next(m.StartWorkConn)
        self.assertEqual((start.proxy_name, start.src_addr, start.dst_addr, start.dst_port),
                         ("echo", "127.0.0.1", "127.0.0.1", remote))
        self.assertEqual(start.src_port, user.transport.getHost().port)
        # The pooled connection was used: frps asks for a replacement.
        await control.next(m.ReqWorkConn)
        await user.waitFor(b"hello through frps")
        user.transport.loseConnection()
        await work.closed

    async def test_user_waits_for_a_work_connection(self):
        await self.startServer()
        control, resp = await self.login(pool_count=0)
        answer = await self.newProxy(control, "late")
        user = await self.connect(UserConn(), int(answer.remote_addr[1:]))
        user.transport.write(b"early bytes")
        await control.next(m.ReqWorkConn)
        work = await self.workConn(resp.run_id)
        await work.next(m.StartWorkConn)
        await control.next(m.ReqWorkConn)
        await user.waitFor(b"early bytes")

    async def test_user_closed_when_no_work_connection_comes(self):
        await self.startServer("userConnTimeout = 1\n")
        control, _ = await self.login(pool_count=0)
        answer = await self.newProxy(control, "nobody")
        user = await self.connect(UserConn(), int(answer.remote_addr[1:]))
        await control.next(m.ReqWorkConn)
        await user.closed

    async def test_port_errors(self):
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        held.listen()
        self.addCleanup(held.close)
        busy = held.getsockname()[1]
        await self.startServer("allowPorts = [{ start = 20000, end = 65000 }]\n")
        control, _ = await self.login()
        first = await self.newProxy(control, "a", remote_port=0)
        port = int(first.remote_addr[1:])
        self.assertTrue(20000 <= port <= 65000)
        self.assertEqual((await self.newProxy(control, "a")).error, "proxy [a] already exists")
        self.assertEqual((await self.newProxy(control, "b", remote_port=port)).error, "port already used")
        self.assertEqual((await self.newProxy(control, "c", remote_port=19999)).error, "port not allowed")
        if 20000 <= busy <= 65000:
            self.assertEqual((await self.newProxy(control, "d", remote_port=busy)).error, "port unavailable")
        self.assertEqual((await self.newProxy(control, "e", proxy_type="nope")).error, "unknown proxy type: nope")
        self.assertEqual((await self.newProxy(control, "f", proxy_type="http")).error,
                         "type [http] not supported when vhost http port is not set")
        self.assertEqual(sorted(self.service.proxies()), ["a"])

    async def test_max_ports_per_client(self):
        await self.startServer("maxPortsPerClient = 1\n")
        control, _ = await self.login()
        self.assertEqual((await self.newProxy(control, "a")).error, "")
        self.assertEqual((await self.newProxy(control, "b")).error, "exceed the max_ports_per_client")

    async def test_close_proxy_frees_name_and_port(self):
        await self.startServer()
        control, _ = await self.login()
        port = int((await self.newProxy(control, "a")).remote_addr[1:])
        control.send(m.CloseProxy(proxy_name="a"))
        again = await self.newProxy(control, "a", remote_port=port)
        self.assertEqual((again.error, again.remote_addr), ("", f":{port}"))

    async def test_relogin_with_run_id_replaces_old_control(self):
        await self.startServer()
        old, resp = await self.login()
        port = int((await self.newProxy(old, "web")).remote_addr[1:])
        new, again = await self.login(run_id=resp.run_id)
        self.assertEqual(again.run_id, resp.run_id)
        await old.closed
        answer = await self.newProxy(new, "web", remote_port=port)
        self.assertEqual(answer.error, "")
        self.assertEqual(self.service.proxies()["web"].run_id, resp.run_id)

    async def test_client_exit_removes_its_proxies(self):
        await self.startServer()
        control, _ = await self.login()
        await self.newProxy(control, "gone")
        control.transport.loseConnection()
        await until(lambda: "gone" not in self.service.proxies(), "frps to remove the proxy of the client that left")
        self.assertEqual(dict(self.service.clients()), {})

    async def test_snapshots_are_frozen_records(self):
        await self.startServer()
        control, resp = await self.login(user="alice", client_id="c1", hostname="box")
        answer = await self.newProxy(control, "alice.web", use_encryption=True, bandwidth_limit="1MB",
                                     bandwidth_limit_mode="server")
        record = self.service.proxies()["alice.web"]
        self.assertIsInstance(record, ProxyRecord)
        self.assertEqual(
            (record.name, record.type, record.user, record.client_id, record.run_id, record.client_version),
            ("alice.web", "tcp", "alice", "c1", resp.run_id, "0.65.0"))
        self.assertEqual((record.remote_addr, record.remote_port), (answer.remote_addr, int(answer.remote_addr[1:])))
        self.assertEqual((record.use_encryption, record.use_compression, record.bandwidth_limit,
                          record.bandwidth_limit_mode, record.status), (True, False, "1MB", "server", "online"))
        with self.assertRaises(FrozenInstanceError):
            record.remote_port = 1
        client = self.service.clients()[resp.run_id]
        self.assertIsInstance(client, ClientRecord)
        self.assertEqual((client.key, client.user, client.client_id, client.hostname, client.client_ip,
                          client.proxy_count, client.online), ("alice.c1", "alice", "c1", "box", "127.0.0.1", 1, True))
        self.assertLessEqual(record.last_start_time - client.last_connected_at, 5)

    async def test_when_proxy_running(self):
        await self.startServer()
        control, _ = await self.login()
        waiting = self.service.whenProxyRunning("late")
        self.assertNoResult(waiting)
        answer = await self.newProxy(control, "late")
        record = await waiting
        self.assertEqual((record.name, record.remote_addr), ("late", answer.remote_addr))
        self.assertEqual(self.successResultOf(self.service.whenProxyRunning("late")), record)
        never = self.service.whenProxyRunning("never")
        await self.service.stopService()
        self.failureResultOf(never, defer.CancelledError)

    async def test_unparsable_bandwidth_limit_runs_unlimited_as_in_frp(self):
        """frp 0.65 accepts a NewProxy whose bandwidth_limit it cannot parse and does not limit
        that proxy (observed with a raw client); frptw does the same, with a warning."""
        logs = LogCapture(self)
        await self.startServer()
        control, _ = await self.login()
        answer = await self.newProxy(control, "odd", bandwidth_limit="1XB", bandwidth_limit_mode="server")
        self.assertEqual(answer.error, "")
        self.assertEqual(self.service._liveProxies()["odd"].dataPlane.bandwidth_limit, 0)
        self.assertTrue(any("is not limited" in line and "1XB" in line for line in logs.texts()))

    async def test_ping_pong(self):
        await self.startServer('auth.additionalScopes = ["HeartBeats"]\n')
        control, _ = await self.login(pool_count=0)
        control.send(m.Ping(privilege_key=privilege_key(TOKEN, 5), timestamp=5))
        self.assertEqual(await control.next(), m.Pong())
        control.send(m.Ping(privilege_key="bad", timestamp=5))
        self.assertEqual(await control.next(),
                         m.Pong(error="token in heartbeat doesn't match token from configuration"))

    async def test_heartbeat_timeout_closes_the_control(self):
        await self.startServer("transport.heartbeatTimeout = 1\n")
        control, resp = await self.login()
        await self.newProxy(control, "quiet")
        await control.closed
        self.assertEqual(dict(self.service.clients()), {})
        self.assertEqual(dict(self.service.proxies()), {})

    async def test_work_connection_checks(self):
        await self.startServer('auth.additionalScopes = ["NewWorkConns"]\n')
        _, resp = await self.login(pool_count=0)
        unknown = await self.workConn("ffffffffffffffff")
        await unknown.closed
        bad = await self.workConn(resp.run_id, privilege_key="bad", timestamp=3)
        self.assertEqual((await bad.next(m.StartWorkConn)).error,
                         "token in NewWorkConn doesn't match token from configuration")
        await bad.closed

    async def visit(self, name, sk, run_id="", **fields):
        visitor = await self.connect(RawConn(echo=False))
        visitor.send(m.NewVisitorConn(run_id=run_id, proxy_name=name, sign_key=privilege_key(sk, 77), timestamp=77,
                                      **fields))
        return visitor, await visitor.next(m.NewVisitorConnResp)

    async def test_visitor_refusals(self):
        await self.startServer()
        owner, _ = await self.login(user="alice")
        answer = await self.newProxy(owner, "alice.secret", proxy_type="stcp", sk="sk1")
        self.assertEqual((answer.error, answer.remote_addr), ("", ""))
        _, resp = await self.visit("nobody", "sk1")
        self.assertEqual(resp.error, "custom listener for [nobody] doesn't exist")
        _, resp = await self.visit("alice.secret", "wrong")
        self.assertEqual(resp.error, "visitor connection of [alice.secret] auth failed")
        bob, bobResp = await self.login(user="bob")
        _, resp = await self.visit("alice.secret", "sk1", run_id=bobResp.run_id)
        self.assertEqual(resp.error, "visitor connection of [alice.secret] user [bob] not allowed")
        _, resp = await self.visit("alice.secret", "sk1", run_id="0000000000000000")
        self.assertEqual(resp.error, "no client control found for run id [0000000000000000]")

    async def test_stcp_visitor_reaches_owner(self):
        await self.startServer()
        owner, ownerResp = await self.login(user="alice", pool_count=1)
        await owner.next(m.ReqWorkConn)
        work = await self.workConn(ownerResp.run_id)
        await self.newProxy(owner, "alice.secret", proxy_type="stcp", sk="sk1", allow_users=["*"])
        _, bobResp = await self.login(user="bob")
        visitor, resp = await self.visit("alice.secret", "sk1", run_id=bobResp.run_id, use_encryption=True)
        self.assertEqual(resp, m.NewVisitorConnResp(proxy_name="alice.secret"))
        start = await work.next(m.StartWorkConn)
        self.assertEqual(start.proxy_name, "alice.secret")
        self.assertEqual(start.src_port, visitor.transport.getHost().port)
        # The visitor leg is encrypted with the proxy's sk; the owner leg is plain here.
        visitorCodec = AESCFBCodec(derive_key("sk1"))
        visitor.raw = b""
        visitor.transport.write(visitorCodec.encode(b"ping over stcp"))
        await until(lambda: len(visitor.raw) >= 16 + len(b"ping over stcp"), lambda: f"the echo; got {visitor.raw!r}")
        self.assertEqual(work.raw, b"ping over stcp")
        self.assertEqual(visitorCodec.decode(visitor.raw), b"ping over stcp")

    async def test_bad_input_leaves_others_working(self):
        await self.startServer()
        control, _ = await self.login(pool_count=0)
        garbage = await self.connect(RawConn())
        garbage.transport.write(b"\x00garbage that is no frp message")
        await garbage.closed
        oversized = await self.connect(RawConn())
        oversized.transport.write(b"o" + (1 << 20).to_bytes(8, "big"))
        await oversized.closed
        badTLS = await self.connect(UserConn())
        badTLS.transport.write(b"\x16\x03\x01\x00\x05" + b"\xff" * 64)
        await badTLS.closed
        unexpected = await self.connect(RawConn())
        unexpected.send(m.Pong())
        await unexpected.closed
        control.send(m.Ping())
        self.assertEqual(await control.next(), m.Pong())

    async def test_tls_only_refuses_plain(self):
        await self.startServer("transport.tls.force = true\n")
        plain = await self.connect(RawConn())
        plain.send(m.Login(version="0.65.0"))
        await plain.closed

    async def test_stop_closes_everything(self):
        service = FrpServerService(serverConfig(), reactor=reactor)
        service.startService()
        self.service, self.port = service, (await service.whenListening()).getHost().port
        control, _ = await self.login()
        remote = int((await self.newProxy(control, "p")).remote_addr[1:])
        await service.stopService()
        await control.closed
        with self.assertRaises(Exception):
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", remote), protocol.Protocol())



class StartupTests(SynchronousTestCase):
    def test_only_the_program_raises_the_file_limit(self):
        """The open-file limit is the process's: twistd's frps raises it, the service does not."""
        calls = []
        self.patch(socketsModule, "raiseFileLimit", lambda: calls.append("raised"))
        FrpServerService(serverConfig(), reactor=MemoryReactorClock()).startService()
        self.assertEqual(calls, [])
        options = ServerOptions()
        options.loaded = serverConfig()
        self.patch(tapModule, "set_level", lambda level: None)
        self.assertIsInstance(tapModule.makeService(options, MemoryReactorClock()), FrpServerService)
        self.assertEqual(calls, ["raised"])

    def test_the_program_tunes_the_collector_once_running(self):
        """The collector's tuning is the process's too: twistd's makeService asks for it when
        the reactor runs (not at once: start-up is not over), the service never."""
        reactor = MemoryReactorClock()
        FrpServerService(serverConfig(), reactor=reactor).startService()
        self.assertEqual(reactor.whenRunningHooks, [])
        options = ServerOptions()
        options.loaded = serverConfig()
        self.patch(tapModule, "set_level", lambda level: None)
        self.patch(socketsModule, "raiseFileLimit", lambda: None)
        tapModule.makeService(options, reactor)
        self.assertEqual([hook[:2] for hook in reactor.whenRunningHooks], [(manageMemory, (reactor,))])

    def test_tuning_freezes_then_raises_the_thresholds(self):
        calls = []

        class Collector:
            def freeze(self):
                calls.append("freeze")

            def set_threshold(self, *thresholds):
                calls.append(thresholds)

        tuneCollector(Collector())
        self.assertEqual(calls, ["freeze", (YOUNG_THRESHOLD, *OLDER_THRESHOLDS)])

    def test_file_limit_is_raised_to_the_hard_limit(self):
        calls = []

        class FakeResource:
            RLIMIT_NOFILE, RLIM_INFINITY = 7, -1

            @staticmethod
            def getrlimit(which):
                return (1024, 65536)

            @staticmethod
            def setrlimit(which, limits):
                calls.append((which, limits))

        self.patch(socketsModule, "resource", FakeResource)
        self.assertEqual(socketsModule.raiseFileLimit(), 65536)
        self.assertEqual(calls, [(7, (65536, 65536))])

    def test_file_limit_failure_is_not_fatal(self):
        class Refusing:
            RLIMIT_NOFILE, RLIM_INFINITY = 7, -1

            @staticmethod
            def getrlimit(which):
                return (1024, 4096)

            @staticmethod
            def setrlimit(which, limits):
                raise ValueError("not allowed")

        self.patch(socketsModule, "resource", Refusing)
        logs = LogCapture(self)
        since = logs.mark()
        self.assertIsNone(socketsModule.raiseFileLimit())
        [line] = logs.reported(since, ("frptw.transport",))
        self.assertIn("cannot raise the open file limit from 1024 to 4096: not allowed", line)

    def test_unlimited_hard_limit_raises_to_nr_open(self):
        """The soft limit cannot be "unlimited": the kernel's ceiling is ``fs.nr_open``."""
        calls = []

        class Unlimited:
            RLIMIT_NOFILE, RLIM_INFINITY = 7, -1

            @staticmethod
            def getrlimit(which):
                return (1024, -1)

            @staticmethod
            def setrlimit(which, limits):
                calls.append(limits)

        nrOpen = os.path.join(tempDir(self), "nr_open")
        with open(nrOpen, "w") as f:
            f.write("1048576\n")
        self.patch(socketsModule, "resource", Unlimited)
        self.patch(socketsModule, "_NR_OPEN_FILE", nrOpen)
        self.assertEqual(socketsModule.raiseFileLimit(), 1048576)
        self.assertEqual(calls, [(1048576, -1)])

    def test_file_limit_already_at_the_hard_limit(self):
        class AtHard:
            RLIMIT_NOFILE, RLIM_INFINITY = 7, -1

            @staticmethod
            def getrlimit(which):
                return (4096, 4096)

            @staticmethod
            def setrlimit(which, limits):
                raise AssertionError("nothing to raise")

        self.patch(socketsModule, "resource", AtHard)
        self.assertEqual(socketsModule.raiseFileLimit(), 4096)


    def test_unreadable_certificate_fails_at_construction(self):
        from frptw.errors import ConfigError

        config = serverConfig()
        config.transport.tls.cert_file = config.transport.tls.key_file = "/nonexistent/frps.pem"
        with self.assertRaises(ConfigError):
            FrpServerService(config, reactor=reactor)


class ListenFailureTests(TestCase):
    async def test_when_listening_fails_if_the_port_is_taken(self):
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self.addCleanup(taken.close)
        config = serverConfig()
        config.bind_port = taken.getsockname()[1]
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        with self.assertRaises(CannotListenError):
            await service.whenListening()

    async def test_a_service_that_cannot_listen_stops_itself(self):
        """Embedded, a failed start leaves nothing running: no listener, no timer on frps's
        clock (the nat-hole clean-up), ``running`` false; the process is untouched."""
        from twisted.internet.task import Clock

        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self.addCleanup(taken.close)
        config = serverConfig()
        config.bind_port = taken.getsockname()[1]
        clock = Clock()
        service = FrpServerService(config, reactor=reactor, clock=clock)
        service.startService()
        with self.assertRaises(CannotListenError):
            await service.whenListening()
        self.assertFalse(service.running)
        self.assertEqual(clock.getDelayedCalls(), [])
        with self.assertRaises(CannotListenError):
            await service.whenListening()  # later callers hear it too
        await service.stopService()  # the parent stopping it again is harmless
