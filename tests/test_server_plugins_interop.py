"""Server plugins, frptw frps against the real Go frps 0.65: every scenario runs twice with the
same recording plugin server (tests/pluginserver.py) and the real Go frpc, once on Go frps and
once on ours, and must end the same way with the same request bodies, compared key by key
(values that differ between any two runs, such as timestamps, keys, run ids and source ports,
only have to be present in both or absent in both).

What only frptw does, the timeout of a plugin that never answers (frp waits for ever), is
tested in tests/test_server_plugins.py on a task.Clock.
"""

import re
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.grouptraffic import Banner, answer
from tests.pki import TestCA
from tests.pluginserver import HOLD, HTTPAnswer, PluginServer, listenPlugin
from tests.support import free_port, holds, tempDir
from tests.traffic import EchoServer, exchange

TOKEN = "plugin-token"
KINDS = ("go", "ours")
#: Keys whose values change from run to run: compared for presence only.
VOLATILE = frozenset({"timestamp", "privilege_key", "run_id", "hostname"})
#: ``ip:port`` keys: compared without the (source) port.
ADDRESSES = frozenset({"client_address", "remote_addr"})


def shape(value: Any, aliases: Dict[int, str], key: str = "") -> Any:
    """``value`` with run-specific values replaced: VOLATILE keys by ``"<set>"`` (when not
    empty), the port of ADDRESSES by ``<port>``, port numbers by their names in ``aliases``."""
    if isinstance(value, dict):
        return {k: shape(v, aliases, k) for k, v in value.items()}
    if key in VOLATILE and value:
        return "<set>"
    if key in ADDRESSES and isinstance(value, str):
        return re.sub(r":\d+$", ":<port>", value)
    if isinstance(value, int) and not isinstance(value, bool) and value in aliases:
        return aliases[value]
    return value


def pluginSection(name: str, port: int, ops: List[str], path: str = "/handler", scheme: str = "",
                  extra: str = "") -> str:
    quoted = ", ".join(f'"{op}"' for op in ops)
    return (f'[[httpPlugins]]\nname = "{name}"\naddr = "{scheme}127.0.0.1:{port}"\npath = "{path}"\n'
            f"ops = [{quoted}]\n{extra}\n")


class Run:
    """One run of a scenario: its frps kind, ports and what was observed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bindPort = free_port()
        self.remotePort = free_port()
        self.otherPort = free_port()
        self.plugins: List[PluginServer] = []
        self.frpc: GoFrp = None  # type: ignore[assignment]
        self.ours: FrpServerService = None  # type: ignore[assignment]

    @property
    def aliases(self) -> Dict[int, str]:
        return {self.remotePort: "REMOTE", self.otherPort: "OTHER", self.bindPort: "BIND"}


Scenario = Callable[[Run], Awaitable[Any]]


class PluginInterop(TestCase):
    timeout = 90

    # -- scaffolding ---------------------------------------------------------------------------
    async def plugin(self, run: Run, tls: Optional[Tuple[str, str]] = None) -> Tuple[PluginServer, int]:
        server = PluginServer()
        run.plugins.append(server)
        return server, await listenPlugin(self, server, tls)

    async def frps(self, run: Run, plugins: str, fmt: str = "toml") -> None:
        if fmt == "toml":
            text = f'bindAddr = "127.0.0.1"\nbindPort = {run.bindPort}\nauth.token = "{TOKEN}"\n{plugins}'
        else:
            text = f"[common]\nbind_addr = 127.0.0.1\nbind_port = {run.bindPort}\ntoken = {TOKEN}\n{plugins}"
        if run.kind == "go":
            frps = await GoFrp.start(reactor, "frps", text, fmt=fmt)
            self.addCleanup(frps.stop)
            return
        service = FrpServerService(parse_server_config(text, fmt), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenListening()
        run.ours = service

    async def frpc(self, run: Run, ready: str = "start proxy success", extra: str = "", loginFailExit: bool = False,
                   echoPort: int = 1, proxies: str = "") -> GoFrp:
        text = (f'serverAddr = "127.0.0.1"\nserverPort = {run.bindPort}\nauth.token = "{TOKEN}"\nuser = "carol"\n'
                f'loginFailExit = {str(loginFailExit).lower()}\nmetadatas.team = "red"\n{extra}\n'
                f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echoPort}\n'
                f'remotePort = {run.remotePort}\nmetadatas.owner = "dave"\n{proxies}')
        run.frpc = await GoFrp.start(reactor, "frpc", text, ready=ready)
        self.addCleanup(run.frpc.stop)
        return run.frpc

    async def echo(self) -> int:
        server = await EchoServer.listen(reactor)
        self.addCleanup(server.stop)
        return server.port

    async def both(self, scenario: Scenario, ops: Tuple[str, ...] = ()) -> Dict[str, Any]:
        """Run ``scenario`` on Go frps and on ours; its results must be equal, and so must the
        first call of each of ``ops`` to each plugin (path, query, content type, body shape)."""
        runs = {kind: Run(kind) for kind in KINDS}
        results = {}
        for kind, run in runs.items():
            results[kind] = await scenario(run)
        self.assertEqual(results["ours"], results["go"])
        go, ours = runs["go"], runs["ours"]
        for index, (goPlugin, ourPlugin) in enumerate(zip(go.plugins, ours.plugins)):
            for op in ops:
                goCalls, ourCalls = goPlugin.of(op), ourPlugin.of(op)
                self.assertEqual(bool(ourCalls), bool(goCalls), f"plugin {index}: {op} called by one frps only")
                if not goCalls:
                    continue
                g, o = goCalls[0], ourCalls[0]
                self.assertEqual((o.path, o.query, o.headers["content-type"]), (g.path, g.query,
                                                                                g.headers["content-type"]))
                self.assertRegex(o.headers["x-frp-reqid"], "^[0-9a-f]{16}$")
                self.assertEqual(shape(o.body, ours.aliases), shape(g.body, go.aliases), f"plugin {index}: {op}")
        return results["go"]

    # -- scenarios -----------------------------------------------------------------------------
    async def test_reject_login_ini_plugin_section(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            plugin.answer("Login", {"reject": True, "reject_reason": "invalid user carol"})
            await self.frps(run, f"[plugin.gate]\naddr = 127.0.0.1:{port}\npath = /handler\nops = Login\n", "ini")
            frpc = await self.frpc(run, ready="login to the server failed", loginFailExit=True)
            return "login to the server failed: invalid user carol." in frpc.output

        self.assertTrue(await self.both(scenario, ("Login",)))

    async def test_rewrite_new_proxy_remote_port(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            plugin.answer("NewProxy", lambda content: {"unchange": False,
                                                       "content": {**content, "remote_port": run.otherPort}})
            await self.frps(run, pluginSection("rewrite", port, ["NewProxy"]))
            await self.frpc(run, echoPort=await self.echo())
            moved = await exchange(reactor, run.otherPort, 4096)
            if run.ours is not None:
                self.assertEqual(run.ours.proxies()["carol.echo"].remote_port, run.otherPort)
            return moved

        self.assertEqual(await self.both(scenario, ("NewProxy",)), 4096)

    async def test_chain_in_config_order_only_for_their_ops(self) -> None:
        async def scenario(run: Run):
            first, port1 = await self.plugin(run)
            second, port2 = await self.plugin(run)
            _, port3 = await self.plugin(run)
            first.answer("NewProxy", lambda content: {"content": {**content, "remote_port": run.otherPort}})
            second.answer("NewProxy", {"reject": True, "reject_reason": "second says no"})
            await self.frps(run, pluginSection("a", port1, ["NewProxy"]) + pluginSection("b", port2, ["NewProxy"])
                            + pluginSection("c", port3, ["Login", "CloseProxy"]))
            frpc = await self.frpc(run, ready="start error")
            return ("[carol.echo] start error: second says no" in frpc.output,
                    second.calls[0].content["remote_port"] == run.otherPort,
                    [[call.op for call in plugin.calls] for plugin in run.plugins])

        self.assertEqual(await self.both(scenario, ("NewProxy", "Login")),
                         (True, True, [["NewProxy"], ["NewProxy"], ["Login"]]))

    async def test_reject_user_connection(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            plugin.answer("NewUserConn", {"reject": True, "reject_reason": "blocked"})
            await self.frps(run, pluginSection("users", port, ["NewUserConn"]))
            await self.frpc(run, echoPort=await self.echo())
            with self.assertRaises(AssertionError):  # closed without an echo
                await exchange(reactor, run.remotePort, 1024, timeout=10)
            await plugin.waitFor("NewUserConn")
            return [call.content["proxy_name"] for call in plugin.calls]

        self.assertEqual(await self.both(scenario, ("NewUserConn",)), ["carol.echo"])

    async def test_ping_and_new_work_conn_are_asked(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            await self.frps(run, pluginSection("seen", port, ["Ping", "NewWorkConn", "NewUserConn"]))
            await self.frpc(run, extra="transport.heartbeatInterval = 1\ntransport.poolCount = 1",
                            echoPort=await self.echo())
            moved = await exchange(reactor, run.remotePort, 2048)
            await plugin.waitFor("Ping")
            await plugin.waitFor("NewWorkConn")
            return moved

        self.assertEqual(await self.both(scenario, ("Ping", "NewWorkConn", "NewUserConn")), 2048)

    async def test_close_proxy_when_frpc_stops(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            await self.frps(run, pluginSection("closing", port, ["CloseProxy"]))
            frpc = await self.frpc(run)
            await frpc.stop()
            [call] = await plugin.waitFor("CloseProxy")
            return call.content["proxy_name"]

        self.assertEqual(await self.both(scenario, ("CloseProxy",)), "carol.echo")

    async def test_plugin_down_and_bad_replies_fail_the_proxy(self) -> None:
        for reply in (None, HTTPAnswer(500, b"{}"), HTTPAnswer(200, b"{not json"),
                       HTTPAnswer(200, b'{"unchange":"false"}')):
            async def scenario(run: Run):
                plugin, port = await self.plugin(run)
                if reply is None:
                    port = free_port()  # nobody listens there
                else:
                    plugin.answer("NewProxy", reply)
                await self.frps(run, pluginSection("broken", port, ["NewProxy"]))
                frpc = await self.frpc(run, ready="start error")
                return "[carol.echo] start error: send NewProxy request to plugin error" in frpc.output

            self.assertTrue(await self.both(scenario, ("NewProxy",)), reply)

    async def test_refused_work_connections_leave_the_user_without_service(self) -> None:
        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            plugin.answer("NewWorkConn", {"reject": True, "reject_reason": "no work today"})
            await self.frps(run, pluginSection("work", port, ["NewWorkConn"]))
            await self.frpc(run, extra="transport.poolCount = 0", echoPort=await self.echo())
            with self.assertRaises(AssertionError):  # closed without an echo
                await exchange(reactor, run.remotePort, 1024, timeout=15)
            return "no work today" in run.frpc.output

        self.assertTrue(await self.both(scenario, ("NewWorkConn",)))

    async def test_login_plugin_down(self) -> None:
        async def scenario(run: Run):
            await self.frps(run, pluginSection("down", free_port(), ["Login"]))
            frpc = await self.frpc(run, ready="login to the server failed", loginFailExit=True)
            return "login to the server failed: send Login request to plugin error." in frpc.output

        self.assertTrue(await self.both(scenario))

    async def test_slow_plugin_delays_the_control_in_order(self) -> None:
        """A held NewProxy holds the messages behind it: the second proxy's NewProxy reaches the
        plugin only once the first is answered (frp's control handles messages one by one)."""
        second = '[[proxies]]\nname = "second"\ntype = "tcp"\nlocalPort = 1\nremotePort = {port}\n'

        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            plugin.answer("NewProxy", HOLD)
            await self.frps(run, pluginSection("slow", port, ["NewProxy"]))
            frpc = await self.frpc(run, ready="login to server success", proxies=second.format(port=run.otherPort))
            await plugin.waitFor("NewProxy")
            await holds(lambda: len(plugin.calls) == 1 and "start proxy success" not in frpc.output,
                        "the control waits for the plugin", 0.5)
            first = plugin.calls[0].content["proxy_name"]
            plugin.release()
            await frpc.waitFor("start proxy success")
            await plugin.waitFor("NewProxy", 2)
            plugin.answer("NewProxy", {"unchange": True})
            plugin.release()
            await frpc.waitFor("start proxy success", count=2)
            return sorted([first, plugin.calls[1].content["proxy_name"]])  # frpc sends them in either order

        self.assertEqual(await self.both(scenario, ()), ["carol.echo", "carol.second"])

    async def test_https_plugin_with_and_without_verification(self) -> None:
        """A self-signed plugin certificate: accepted by default, refused with tlsVerify."""
        certificate = TestCA(tempDir(self)).issueFiles("plugin", ipAddresses=["127.0.0.1"])
        for verify in (False, True):
            async def scenario(run: Run):
                plugin, port = await self.plugin(run, certificate)
                plugin.answer("Login", {"reject": True, "reject_reason": "seen over tls"})
                await self.frps(run, pluginSection("tls", port, ["Login"], scheme="https://",
                                                   extra=f"tlsVerify = {str(verify).lower()}"))
                frpc = await self.frpc(run, ready="login to the server failed", loginFailExit=True)
                return [line.split("login to the server failed: ")[1].split(".")[0]
                        for line in frpc.output.splitlines() if "login to the server failed: " in line]

            reason = "send Login request to plugin error" if verify else "seen over tls"
            self.assertEqual(await self.both(scenario, ("Login",)), [reason])

    async def test_tcpmux_user_connections_are_asked_too(self) -> None:
        """NewUserConn covers the vhost-routed types as well (frp: tcp, https, tcpmux, stcp, sudp)."""
        tunnel = ('[[proxies]]\nname = "mux"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\nlocalIP = "127.0.0.1"\n'
                  'localPort = {port}\ncustomDomains = ["mux.test"]\n')
        connect = b"CONNECT mux.test:80 HTTP/1.1\r\nHost: mux.test:80\r\n\r\n"

        async def scenario(run: Run):
            plugin, port = await self.plugin(run)
            await self.frps(run, f"tcpmuxHTTPConnectPort = {run.otherPort}\n"
                            + pluginSection("users", port, ["NewUserConn"]))
            await self.frpc(run, proxies=tunnel.format(port=Banner.listen(self, reactor, b"banner")))
            await run.frpc.waitFor("start proxy success", count=2)
            passed = await answer(reactor, run.otherPort, connect)
            plugin.answer("NewUserConn", {"reject": True, "reject_reason": "no tunnels"})
            refused = await answer(reactor, run.otherPort, connect)
            return passed.endswith(b"banner"), refused, [call.content["proxy_type"] for call in plugin.calls]

        passed, refused, types = await self.both(scenario, ("NewUserConn",))
        self.assertEqual((passed, types), (True, ["tcpmux", "tcpmux"]))
        # frp has already answered the CONNECT when it asks the plugin: 200, then the close.
        self.assertEqual(refused, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
