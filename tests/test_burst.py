"""Reliability at scale (issue 14), in-process frps and frpc on loopback: connection bursts
against every kind of listener, and many connections held through one tcp proxy.

The load comes from another process (:mod:`tests.burstprobe`, plain sockets), so that its
connects really are simultaneous and the reactor under test does only frps's and frpc's work.
Sizes fit the suite on a shared two-core machine: :data:`BURST` simultaneous connects per
listener and :data:`HELD` held connections; ``FRPTW_SCALE=full`` runs the issue's sizes (1000
and 10 000).  What is asserted cannot depend on the machine's load: every connection served,
none refused, reset or timed out (within a bound far above the time it takes), and after the
held connections close, frps and frpc track none and the process's descriptors are back to
where they were.  The timings (p50/p99) are in the failure messages and, beside Go frp's, in
``bench/bench_burst.py``.
"""

import json
import os
import resource
import sys
from typing import Dict, List

from twisted.internet import defer, protocol, reactor
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from frptw.client import AdminService, FrpClientService, Reloader
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.transport.sockets import listenTCP
from tests.burstprobe import DOMAIN, HTTP_BODY, listenerRequests, stepArguments
from tests.support import free_port, proxiesRunning, scaled, until
from tests.traffic import EchoServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Simultaneous connects per listener.
BURST = scaled(200, 1000)
#: Connections held open at once through one tcp proxy.
HELD = scaled(1000, 10000)
#: Seconds one burst (or the opening of the held connections) may take: far above what it
#: takes (a few seconds at CI sizes on a loaded machine), so only a stall fails.
PROBE_TIMEOUT = scaled(90.0, 300.0)
TOKEN = "burst"


def openDescriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def probe(*args: str) -> dict:
    """Run ``python -m tests.burstprobe ARGS``; its one JSON line."""
    out, err, code = await getProcessOutputAndValue(
        sys.executable, ["-m", "tests.burstprobe", *args], env=dict(os.environ, PYTHONPATH=ROOT), path=ROOT,
        reactor=reactor)
    if code != 0:
        raise AssertionError(f"burstprobe {' '.join(args)} exited {code}: {err.decode(errors='replace')}")
    return json.loads(out.decode().splitlines()[-1])


class _Body(Resource):
    """The HTTP backend: :data:`HTTP_BODY` at every path."""

    isLeaf = True

    def render_GET(self, request) -> bytes:
        return HTTP_BODY


class _QuietSite(Site):
    noisy = False

    def log(self, request) -> None:
        """No access log line per request (thousands per test)."""


class _Holder(protocol.ProcessProtocol):
    """``burstprobe hold``: its first JSON line (connections up), then, once :meth:`release`
    is called, its second (alive at release) and its exit."""

    def __init__(self) -> None:
        self.lines: List[dict] = []
        self.buffer = b""
        self.errors = b""
        self.ended = defer.Deferred()

    def outReceived(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.lines.append(json.loads(line))

    def errReceived(self, data: bytes) -> None:
        self.errors += data

    def release(self) -> None:
        self.transport.write(b"release\n")
        self.transport.closeStdin()

    def processEnded(self, reason) -> None:
        self.ended.callback(reason.value.exitCode)


class Stack:
    """frps with every listener (bind port, HTTP and HTTPS vhosts, tcpmux, dashboard) and frpc
    with its admin API, a tcp, http, https, tcpmux and stcp proxy, and an stcp visitor; an echo
    service and an HTTP backend behind them.  ``ports`` maps :func:`listenerRequests`'s names
    to where each listens."""

    server: FrpServerService
    client: FrpClientService
    echo: EchoServer
    ports: Dict[str, int]

    @classmethod
    async def start(cls, testcase: TestCase) -> "Stack":
        self = cls()
        self.echo = await EchoServer.listen(reactor)
        testcase.addCleanup(self.echo.stop)
        backend = listenTCP(reactor, 0, _QuietSite(_Body()), interface="127.0.0.1")
        testcase.addCleanup(backend.stopListening)
        names = ("bind", "http", "https", "tcpmux", "dashboard", "tcp", "visitor", "admin")
        self.ports = {name: free_port() for name in names}
        p = self.ports
        self.server = FrpServerService(parse_server_config(
            f'bindAddr = "127.0.0.1"\nbindPort = {p["bind"]}\nauth.token = "{TOKEN}"\n'
            f'vhostHTTPPort = {p["http"]}\nvhostHTTPSPort = {p["https"]}\ntcpmuxHTTPConnectPort = {p["tcpmux"]}\n'
            f'webServer.addr = "127.0.0.1"\nwebServer.port = {p["dashboard"]}\n', "toml"), reactor)
        self.server.startService()
        testcase.addCleanup(self.server.stopService)
        await self.server.whenListening()
        echoPort, httpPort = self.echo.port, backend.getHost().port
        self.client = FrpClientService(parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {p["bind"]}\nauth.token = "{TOKEN}"\n'
            f'webServer.addr = "127.0.0.1"\nwebServer.port = {p["admin"]}\n'
            f'[[proxies]]\nname = "tcp"\ntype = "tcp"\nlocalPort = {echoPort}\nremotePort = {p["tcp"]}\n'
            f'[[proxies]]\nname = "web"\ntype = "http"\nlocalPort = {httpPort}\ncustomDomains = ["{DOMAIN}"]\n'
            f'[[proxies]]\nname = "secure"\ntype = "https"\nlocalPort = {echoPort}\ncustomDomains = ["{DOMAIN}"]\n'
            f'[[proxies]]\nname = "mux"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\nlocalPort = {echoPort}\n'
            f'customDomains = ["{DOMAIN}"]\n'
            f'[[proxies]]\nname = "secret"\ntype = "stcp"\nsecretKey = "sk"\nlocalPort = {echoPort}\n'
            f'[[visitors]]\nname = "secret-visitor"\ntype = "stcp"\nserverName = "secret"\nsecretKey = "sk"\n'
            f'bindAddr = "127.0.0.1"\nbindPort = {p["visitor"]}\n', "toml"), reactor)
        self.client.startService()
        testcase.addCleanup(self.client.stopService)
        admin = AdminService(self.client, Reloader(self.client, None), reactor, onStop=lambda: None)
        admin.startService()
        testcase.addCleanup(admin.stopService)
        await admin.listening
        await self.client.whenLoggedIn()
        await proxiesRunning(self.client, "tcp", "web", "secure", "mux", "secret", timeout=30)
        return self


class BurstTests(TestCase):
    """:data:`BURST` simultaneous connects to each listener: all served, none refused."""

    timeout = int(PROBE_TIMEOUT) + 120

    async def check(self, name: str) -> None:
        stack = await Stack.start(self)
        result = await probe("burst", "--port", str(stack.ports[name]), "-n", str(BURST), "--timeout",
                             str(PROBE_TIMEOUT), *stepArguments(listenerRequests()[name]))
        self.assertEqual((result["served"], result["errors"]), (BURST, {}), f"{name}: {result}")

    async def test_bind_port(self):
        await self.check("bind")

    async def test_vhost_http(self):
        await self.check("http")

    async def test_vhost_https(self):
        await self.check("https")

    async def test_tcpmux(self):
        await self.check("tcpmux")

    async def test_tcp_proxy_remote_port(self):
        await self.check("tcp")

    async def test_stcp_visitor_port(self):
        await self.check("visitor")

    async def test_frpc_admin_api(self):
        await self.check("admin")

    async def test_frps_dashboard(self):
        await self.check("dashboard")


def ensureDescriptors(testcase: TestCase, needed: int) -> None:
    """Make room for ``needed`` open files in this process (frps's, frpc's and the echo
    service's ends of every held connection are all here), raising the hard limit too if need
    be (root may), and put the limits back after the test; fail saying so if they cannot be."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, max(needed, hard)))
    except (ValueError, OSError) as e:
        raise AssertionError(f"{needed} open files needed, the limit is {soft} (hard {hard}): {e}")
    testcase.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, (soft, hard))


def residentBytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class HeldConnectionsTests(TestCase):
    """:data:`HELD` connections open at once through one tcp proxy, each echo-checked: all
    served and still open when released; once closed, frps and frpc track none of them and
    the process's descriptors are back to their number before."""

    timeout = int(PROBE_TIMEOUT) * 2 + 120
    #: Descriptors the process may have more than before (a log file, a pipe of trial's).
    SLACK = 16
    #: RSS the process may keep after the connections closed (freed memory that Python's
    #: allocator keeps for reuse); what frptw allocated is checked exactly by test_leaks.
    RSS_BOUND = 64 * 1024 * 1024

    async def test_held_through_one_tcp_proxy(self):
        ensureDescriptors(self, 3 * HELD + 1024)
        stack = await Stack.start(self)
        proxy = stack.server._liveProxies()["tcp"]
        streams = stack.client._session.mux._streams
        [control] = stack.server._liveControls().values()

        def tables() -> dict:
            # An idle work connection frps pooled for the next user is a stream on frpc's side too.
            return {"descriptors": openDescriptors(), "frpc yamux streams": len(streams) - len(control.pool),
                    "frps users": len(proxy._users)}

        baseline = tables()
        rss = residentBytes()
        holder = _Holder()
        reactor.spawnProcess(holder, sys.executable, [
            sys.executable, "-m", "tests.burstprobe", "hold", "--port", str(stack.ports["tcp"]), "-n", str(HELD),
            "--window", "250", "--sources", "16", "--timeout", str(PROBE_TIMEOUT)],
            env=dict(os.environ, PYTHONPATH=ROOT), path=ROOT)
        self.addCleanup(lambda: holder.ended.called or holder.transport.signalProcess("KILL"))
        await until(lambda: holder.lines or holder.ended.called, "the held connections to open", PROBE_TIMEOUT + 30)
        [up] = holder.lines or [{"error": holder.errors.decode(errors="replace")}]
        self.assertEqual((up.get("served"), up.get("errors")), (HELD, {}), up)
        self.assertEqual(len(proxy._users), HELD)
        peak = residentBytes()
        holder.release()
        self.assertEqual(await holder.ended, 0, holder.errors)
        self.assertEqual(holder.lines[1]["alive_at_release"], HELD)

        await until(lambda: tables()["descriptors"] <= baseline["descriptors"] + self.SLACK
                    and tables()["frpc yamux streams"] == baseline["frpc yamux streams"]
                    and tables()["frps users"] == 0,
                    lambda: f"back to {baseline} (+{self.SLACK} descriptors): {tables()}", 60)
        self.assertLess(residentBytes() - rss, self.RSS_BOUND,
                        f"RSS {rss >> 20} MiB before, {peak >> 20} at {HELD} held, {residentBytes() >> 20} after")
