"""frptw.server.plugins: HTTP calls to server plugins (a twisted.web plugin on loopback), the
chain per operation, failures and the call timeout (on a task.Clock)."""

import json
import re

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from frptw.config.model_common import HTTPPluginOptions
from frptw.errors import PluginRejected
from frptw.server import plugin_rpc as rpc
from frptw.server.plugin_http import MAX_REPLY, plugin_url
from frptw.server.plugins import CALL_TIMEOUT, PluginManager
from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from tests.pki import TestCA
from tests.pluginserver import HOLD, HTTPAnswer, PluginServer, listenPlugin
from tests.rawfrpc import TOKEN, RawClientMixin, RawConn
from tests.support import LogCapture, free_port, holds, tempDir, until

CAROL = rpc.UserInfo("carol", {"team": "red"}, "run1")
REQUEST = m.NewProxy(proxy_name="carol.echo", proxy_type="tcp", remote_port=6000)


class ChainTests(TestCase):
    timeout = 20

    async def plugins(self, *specs, clock=None):
        """A PluginManager over one recording plugin server per (name, ops)."""
        servers, options = [], []
        for name, ops in specs:
            server = PluginServer()
            port = await listenPlugin(self, server)
            servers.append(server)
            options.append(HTTPPluginOptions(name=name, addr=f"127.0.0.1:{port}", path="/handler", ops=ops))
        manager = PluginManager(options, reactor, clock)
        self.addCleanup(manager.close)
        return manager, servers

    async def rejected(self, d) -> str:
        with self.assertRaises(PluginRejected) as caught:
            await d
        return str(caught.exception)

    async def test_request_as_frp_sends_it(self) -> None:
        manager, [server] = await self.plugins(("p", ["NewProxy"]))
        self.assertEqual(await manager.newProxy(CAROL, REQUEST), REQUEST)
        [call] = server.calls
        self.assertEqual((call.path, call.query), ("/handler", {"op": ["NewProxy"], "version": ["0.1.0"]}))
        self.assertEqual(call.headers["content-type"], "application/json")
        self.assertRegex(call.headers["x-frp-reqid"], "^[0-9a-f]{16}$")
        self.assertEqual(call.body, {"version": "0.1.0", "op": "NewProxy", "content": {
            "user": {"user": "carol", "metas": {"team": "red"}, "run_id": "run1"},
            "proxy_name": "carol.echo", "proxy_type": "tcp", "remote_port": 6000}})

    async def test_an_address_literal_is_dialled_without_the_name_resolver(self) -> None:
        """"127.0.0.1:port" goes straight to connectTCP: no getaddrinfo in the thread pool per
        connection (which under load once failed a call with DNSLookupError)."""

        class NoResolver:
            def resolveHostName(self, *args, **kwargs):
                raise AssertionError("the name resolver was asked")

        self.patch(reactor, "_nameResolver", NoResolver())
        manager, [server] = await self.plugins(("p", ["NewProxy"]))
        self.assertEqual(await manager.newProxy(CAROL, REQUEST), REQUEST)
        self.assertEqual(len(server.calls), 1)

    async def test_chain_in_order_each_seeing_the_last_rewrite(self) -> None:
        manager, [first, second] = await self.plugins(("a", ["NewProxy"]), ("b", ["NewProxy", "Ping"]))
        first.answer("NewProxy", {"unchange": False, "content": {"proxy_name": "carol.echo", "proxy_type": "tcp",
                                                                 "remote_port": 7001, "junk": 1}})
        result = await manager.newProxy(CAROL, REQUEST)
        self.assertEqual(result.remote_port, 7001)
        # The second plugin got the first one's content as frp re-marshals it: unknown keys
        # dropped, the user object zero because the rewrite left it out.
        self.assertEqual(second.calls[0].content, {"user": {"user": "", "metas": None, "run_id": ""},
                                                   "proxy_name": "carol.echo", "proxy_type": "tcp",
                                                   "remote_port": 7001})
        self.assertEqual(first.calls[0].headers["x-frp-reqid"], second.calls[0].headers["x-frp-reqid"])

    async def test_only_plugins_for_the_op_are_asked(self) -> None:
        manager, [login, ping] = await self.plugins(("l", ["Login"]), ("p", ["Ping"]))
        self.assertFalse(manager.handles("NewProxy"))
        self.assertTrue(manager.handles("Ping"))
        await manager.ping(CAROL, m.Ping())
        self.assertEqual(([c.op for c in login.calls], [c.op for c in ping.calls]), ([], ["Ping"]))

    async def test_reject_stops_the_chain(self) -> None:
        manager, [first, second] = await self.plugins(("a", ["Login"]), ("b", ["Login"]))
        first.answer("Login", {"reject": True, "reject_reason": "invalid user"})
        self.assertEqual(await self.rejected(manager.login(m.Login(user="x"), "127.0.0.1:1")), "invalid user")
        self.assertEqual(second.calls, [])

    async def test_login_rewrite(self) -> None:
        manager, [server] = await self.plugins(("a", ["Login"]))
        server.answer("Login", {"content": {"user": "renamed", "pool_count": 3, "client_address": "x"}})
        login = await manager.login(m.Login(user="x", version="0.65.0"), "127.0.0.1:1")
        self.assertEqual((login.user, login.pool_count, login.version), ("renamed", 3, ""))
        self.assertEqual(server.calls[0].content["client_address"], "127.0.0.1:1")

    async def test_new_user_conn_only_reject_matters(self) -> None:
        manager, [server] = await self.plugins(("a", ["NewUserConn"]))
        server.answer("NewUserConn", {"content": {"proxy_name": "other"}})
        self.assertIsNone(await manager.newUserConn(CAROL, "p", "tcp", "127.0.0.1:9"))
        server.answer("NewUserConn", {"reject": True, "reject_reason": "blocked"})
        self.assertEqual(await self.rejected(manager.newUserConn(CAROL, "p", "tcp", "127.0.0.1:9")), "blocked")

    async def test_bad_answers_fail_the_call_with_one_log_line(self) -> None:
        manager, [server] = await self.plugins(("bad", ["NewProxy"]))
        for answer, cause in [
            (HTTPAnswer(500, b"oops"), "do http request error code: 500"),
            (HTTPAnswer(200, b"{not json"), "reply is not JSON"),
            (HTTPAnswer(200, b'{"unchange":"false"}'), "'unchange' must be a JSON boolean"),
            ({"content": {"remote_port": "x"}}, "NewProxy.remote_port: expected an int64"),
            (HTTPAnswer(200, b" " * (MAX_REPLY + 1)), f"reply longer than {MAX_REPLY} bytes"),
        ]:
            server.answer("NewProxy", answer)
            logs = LogCapture(self)
            self.assertEqual(await self.rejected(manager.newProxy(CAROL, REQUEST)),
                             "send NewProxy request to plugin error")
            [line] = logs.reported(0)
            self.assertRegex(line, r"^\[reqid: [0-9a-f]{16}\] send NewProxy request to plugin \[bad\] error: ")
            self.assertIn(cause, line)

    async def test_a_bug_is_logged_with_its_traceback(self) -> None:
        """A failure that is not one of a plugin call's own (a bug of frptw) still rejects, as
        frp would, and is logged with its traceback, not as one more plugin error line."""
        manager, [server] = await self.plugins(("p", ["NewProxy"]))

        def broken(content, reply):
            raise KeyError("a bug")

        self.patch(rpc, "apply_reply", broken)
        self.assertEqual(await self.rejected(manager.newProxy(CAROL, REQUEST)), "send NewProxy request to plugin error")
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    async def test_plugin_down(self) -> None:
        options = [HTTPPluginOptions(name="down", addr=f"127.0.0.1:{free_port()}", path="/", ops=["Ping"])]
        manager = PluginManager(options, reactor)
        self.addCleanup(manager.close)
        logs = LogCapture(self)
        self.assertEqual(await self.rejected(manager.ping(CAROL, m.Ping())), "send Ping request to plugin error")
        [line] = logs.reported(0)
        self.assertIn("send Ping request to plugin [down] error: ", line)
        self.assertIn("refused", line)

    async def test_plugin_slow_fails_after_the_call_timeout(self) -> None:
        clock = Clock()
        manager, [server] = await self.plugins(("slow", ["NewWorkConn"]), clock=clock)
        server.answer("NewWorkConn", HOLD)
        logs = LogCapture(self)
        d = ensureDeferred(self.rejected(manager.newWorkConn(CAROL, m.NewWorkConn(run_id="run1"))))
        await server.waitFor("NewWorkConn")
        clock.advance(CALL_TIMEOUT - 0.1)
        self.assertFalse(d.called)
        clock.advance(0.1)
        self.assertEqual(await d, "send NewWorkConn request to plugin error")
        [line] = logs.reported(0)
        self.assertIn("send NewWorkConn request to plugin [slow] error: no answer in 30 s", line)
        await until(lambda: server.held and server.held[0]._disconnected, "the held request to be abandoned")

    async def test_close_proxy_answers_are_ignored_and_failures_logged(self) -> None:
        manager, [refusing, down] = await self.plugins(("a", ["CloseProxy"]), ("b", ["CloseProxy"]))
        refusing.answer("CloseProxy", {"reject": True, "reject_reason": "ignored"})
        down.answer("CloseProxy", HTTPAnswer(404, b""))
        logs = LogCapture(self)
        self.assertIsNone(manager.closeProxy(CAROL, "carol.echo"))
        await down.waitFor("CloseProxy")
        await logs.waitFor("send CloseProxy request to plugin [b] error: do http request error code: 404")
        self.assertEqual(refusing.calls[0].content, {"user": CAROL.to_json(), "proxy_name": "carol.echo"})

    async def test_close_cancels_calls_under_way(self) -> None:
        manager, [server] = await self.plugins(("slow", ["Login"]))
        server.answer("Login", HOLD)
        d = manager.login(m.Login(), "127.0.0.1:1")
        await server.waitFor("Login")
        await manager.close()
        self.failureResultOf(d)


class TLSTests(TestCase):
    timeout = 20

    async def httpsPlugin(self):
        ca = TestCA(tempDir(self))
        server = PluginServer()
        return server, await listenPlugin(self, server, ca.issueFiles("localhost", dnsNames=["localhost"]))

    async def test_https_without_verification_accepts_any_certificate(self) -> None:
        server, port = await self.httpsPlugin()
        manager = PluginManager([HTTPPluginOptions(name="tls", addr=f"https://localhost:{port}", path="/p",
                                                   ops=["Ping"])], reactor)
        self.addCleanup(manager.close)
        await manager.ping(CAROL, m.Ping())
        self.assertEqual(server.calls[0].path, "/p")

    async def test_https_with_verification_refuses_an_unknown_ca(self) -> None:
        server, port = await self.httpsPlugin()
        manager = PluginManager([HTTPPluginOptions(name="tls", addr=f"https://localhost:{port}", path="/p",
                                                   ops=["Ping"], tls_verify=True)], reactor)
        self.addCleanup(manager.close)
        logs = LogCapture(self)
        with self.assertRaises(PluginRejected):
            await manager.ping(CAROL, m.Ping())
        self.assertEqual(server.calls, [])
        self.assertEqual(len(logs.reported(0)), 1)


class URLTests(TestCase):
    def test_url(self) -> None:
        self.assertEqual(plugin_url("127.0.0.1:9000", "/handler"), "http://127.0.0.1:9000/handler")
        self.assertEqual(plugin_url("http://h:1", ""), "http://h:1/")
        self.assertEqual(plugin_url("https://h:1", "/a/b"), "https://h:1/a/b")
        self.assertTrue(re.match("^http://", plugin_url("h:1", "/")))


class FrpsHookTests(RawClientMixin, TestCase):
    """Our frps with plugins, driven by a raw client: what each hook does with the answer."""

    timeout = 20

    async def withPlugin(self, ops, extra: str = "") -> PluginServer:
        plugin = PluginServer()
        port = await listenPlugin(self, plugin)
        await self.startServer(f'{extra}\n[[httpPlugins]]\nname = "p"\naddr = "127.0.0.1:{port}"\npath = "/"\n'
                               f"ops = {json.dumps(ops)}\n")
        return plugin

    async def test_login_rewritten_before_the_token_check(self) -> None:
        plugin = await self.withPlugin(["Login", "NewProxy"])
        plugin.answer("Login", lambda content: {"content": {**content, "user": "renamed", "metas": {"k": "v"}}})
        control, resp = await self.login(user="carol")
        self.assertEqual(resp.error, "")
        [client] = self.service.clients().values()
        self.assertEqual(client.user, "renamed")
        await self.newProxy(control, "renamed.web")
        self.assertEqual(plugin.of("NewProxy")[0].content["user"], {"user": "renamed", "metas": {"k": "v"},
                                                                    "run_id": resp.run_id})

    async def test_login_refused_hides_details_when_asked(self) -> None:
        plugin = await self.withPlugin(["Login"], "detailedErrorsToClient = false")
        plugin.answer("Login", {"reject": True, "reject_reason": "secret reason"})
        _, resp = await self.login()
        self.assertEqual(resp.error, "register control error")

    async def test_login_of_a_client_that_left_is_dropped(self) -> None:
        plugin = await self.withPlugin(["Login"])
        plugin.answer("Login", HOLD)
        logs = LogCapture(self)
        control = await self.connect(RawConn())
        control.send(m.Login(version="0.65.0", privilege_key=privilege_key(TOKEN, 1), timestamp=1))
        await plugin.waitFor("Login")
        control.transport.abortConnection()
        await until(lambda: not self.service._liveConnections(), "frps to see the client leave")
        plugin.release()
        await logs.waitFor("login of 127.0.0.1:")
        self.assertEqual((dict(self.service.clients()), logs.failures()), ({}, []))

    async def test_ping_rewritten_then_checked(self) -> None:
        """With the HeartBeats scope on, a plugin may supply the key the client left out."""
        plugin = await self.withPlugin(["Ping"], 'auth.additionalScopes = ["HeartBeats"]')
        good = {"privilege_key": privilege_key(TOKEN, 7), "timestamp": 7}
        plugin.answer("Ping", lambda content: {"content": {**content, **good}})
        control, _ = await self.login()
        control.send(m.Ping())
        self.assertEqual((await control.next(m.Pong)).error, "")
        plugin.answer("Ping", {"reject": True, "reject_reason": "no pings"})
        control.send(m.Ping(**good))
        self.assertEqual((await control.next(m.Pong)).error, "no pings")

    async def test_new_proxy_without_content_is_wiped_as_frp_does(self) -> None:
        """frps 0.65 answers ``{"reject": false}`` by registering a proxy with an empty name."""
        plugin = await self.withPlugin(["NewProxy"])
        plugin.answer("NewProxy", {"reject": False})
        control, _ = await self.login()
        resp = await self.newProxy(control, "web", remote_port=free_port())
        self.assertEqual(resp.proxy_name, "")
        self.assertRegex(resp.remote_addr, r"^:\d+$")
        self.assertIn("", self.service.proxies())

    async def test_new_work_conn_refused(self) -> None:
        plugin = await self.withPlugin(["NewWorkConn"])
        plugin.answer("NewWorkConn", {"reject": True, "reject_reason": "no work"})
        control, resp = await self.login()
        work = await self.workConn(resp.run_id)
        self.assertEqual((await work.next(m.StartWorkConn)).error, "no work")
        await work.closed
        self.assertEqual(plugin.of("NewWorkConn")[0].content["run_id"], resp.run_id)

    async def test_work_conn_that_left_while_asked_is_not_pooled(self) -> None:
        plugin = await self.withPlugin(["NewWorkConn"])
        plugin.answer("NewWorkConn", HOLD)
        control, resp = await self.login()
        work = await self.workConn(resp.run_id)
        await plugin.waitFor("NewWorkConn")
        work.transport.abortConnection()
        await until(lambda: len(self.service._liveConnections()) == 1, "frps to see the work connection leave")
        logs = LogCapture(self)
        plugin.release()
        await until(lambda: not plugin.held, "the plugin to answer")
        [live] = self.service._liveControls().values()
        await holds(lambda: len(live.pool) == 0, "no work connection pooled")
        self.assertEqual(logs.failures(), [])

    async def test_stopping_frps_during_calls_is_quiet(self) -> None:
        """Calls under way (a Login, a NewProxy, a NewWorkConn) are cancelled by stopService
        without a traceback."""
        plugin = await self.withPlugin(["Login", "NewProxy", "NewWorkConn"])
        control, resp = await self.login()
        plugin.answer("NewProxy", HOLD)
        plugin.answer("NewWorkConn", HOLD)
        plugin.answer("Login", HOLD)
        control.send(m.NewProxy(proxy_name="web", proxy_type="tcp"))
        await self.workConn(resp.run_id)
        pending = await self.connect(RawConn())
        pending.send(m.Login(version="0.65.0", privilege_key=privilege_key(TOKEN, 1), timestamp=1))
        for op in ("NewProxy", "NewWorkConn"):
            await plugin.waitFor(op)
        await plugin.waitFor("Login", 2)
        logs = LogCapture(self)
        await self.service.stopService()
        self.assertEqual(logs.failures(), [])
        self.assertEqual([line for line in logs.reported(0) if "plugin" in line], [])
