"""frpc's admin API and hot reload, without a network: the service talks to a scripted frps
(MemoryReactorClock) and the API is driven through its twisted.web Site in memory."""

import json
import os

from twisted.trial.unittest import SynchronousTestCase

from frptw.adminclient import parseDuration, statusReport
from frptw.client import AdminService, Reloader
from frptw.client._admin import goParseBool
from frptw.client._reload import diffConfigs
from frptw.config import parse_client_config
from frptw.web import AUTH_FAIL_DELAY
from frptw.wire.messages import CloseProxy, NewProxy, NewProxyResp
from tests.fakes import PLAIN, ServiceTestMixin, configText
from tests.support import LogCapture, free_port, tempDir
from tests.webclient import Connection, basic, exchange, rawRequest

AUTH = [basic("admin", "pw")]


def tcp(name: str, remotePort: int, localPort: int = 22, extra: str = "") -> str:
    return f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalPort = {localPort}\nremotePort = {remotePort}\n{extra}'


def stcpVisitor(name: str, bindPort: int) -> str:
    return (f'[[visitors]]\nname = "{name}"\ntype = "stcp"\nserverName = "sec"\nsecretKey = "k"\n'
            f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\n')


WEB = 'user = "u"\nwebServer.port = 7400\nwebServer.user = "admin"\nwebServer.password = "pw"\n'


class DiffTests(SynchronousTestCase):
    """frp's reload decision: by name and by value."""

    def proxies(self, text: str):
        return parse_client_config(configText(proxies=text), "toml").proxies

    def test_unchangedChangedAddedRemoved(self) -> None:
        running = {p.name: p for p in self.proxies(tcp("same", 6000) + tcp("changed", 6001) + tcp("gone", 6002))}
        wanted = self.proxies(tcp("same", 6000) + tcp("changed", 6005) + tcp("new", 6003))
        diff = diffConfigs(running, wanted, {}, [])
        self.assertEqual(diff.removedProxies, ("changed", "gone"))
        self.assertEqual([p.name for p in diff.addedProxies], ["changed", "new"])
        self.assertEqual([p.remote_port for p in diff.addedProxies], [6005, 6003])

    def test_anyFieldCounts(self) -> None:
        running = {p.name: p for p in self.proxies(tcp("a", 6000))}
        wanted = self.proxies(tcp("a", 6000, extra="transport.useEncryption = true\n"))
        self.assertEqual(diffConfigs(running, wanted, {}, []).removedProxies, ("a",))

    def test_sameConfigNothingToDo(self) -> None:
        text = tcp("a", 6000) + stcpVisitor("v", 9000)
        config = parse_client_config(configText(proxies=text), "toml")
        again = parse_client_config(configText(proxies=text), "toml")
        diff = diffConfigs({p.name: p for p in config.proxies}, again.proxies,
                           {v.name: v for v in config.visitors}, again.visitors)
        self.assertTrue(diff.empty)

    def test_visitors(self) -> None:
        old = parse_client_config(configText(proxies=stcpVisitor("v1", 9000) + stcpVisitor("v2", 9001)), "toml")
        new = parse_client_config(configText(proxies=stcpVisitor("v1", 9000) + stcpVisitor("v2", 9002)), "toml")
        diff = diffConfigs({}, [], {v.name: v for v in old.visitors}, new.visitors)
        self.assertEqual((diff.removedVisitors, [v.name for v in diff.addedVisitors]), (("v2",), ["v2"]))


class GoParseBoolTests(SynchronousTestCase):
    def test_values(self) -> None:
        self.assertEqual([goParseBool(t) for t in ("1", "t", "TRUE", "True")], [True] * 4)
        self.assertEqual([goParseBool(t) for t in ("0", "f", "FALSE", "false")], [False] * 4)
        self.assertEqual([goParseBool(t) for t in ("yes", "", "tRUE")], [None] * 3)


class AdminApiTests(ServiceTestMixin, SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = tempDir(self)
        self.path = os.path.join(self.directory, "frpc.toml")
        self.logs = LogCapture(self)

    def start(self, proxies: str, extra: str = WEB) -> None:
        self.write(proxies, extra)
        self.makeService(extra, proxies)
        self.stopped = []
        self.reloader = Reloader(self.service, self.path)
        self.admin = AdminService(self.service, self.reloader, self.reactor, onStop=lambda: self.stopped.append(1))
        self.site = self.admin.server.site

    def write(self, proxies: str, extra: str = WEB) -> None:
        with open(self.path, "w") as f:
            f.write(configText(PLAIN + extra, proxies))

    def running(self, conn, *names: str) -> None:
        for name in names:
            port = self.service.proxyConfigs()[name].remote_port
            conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name=f"u.{name}", remote_addr=f":{port}")))

    def get(self, path: str, method: str = "GET", body: bytes = b""):
        return exchange(self.site, method, path, AUTH, body)

    # -- status -------------------------------------------------------------------------
    def test_statusBeforeLoginIsEmpty(self) -> None:
        self.start(tcp("a", 6000))
        response = self.get("/api/status")
        self.assertEqual((response.status, response.body), (200, b"{}"))
        self.assertEqual(response.headers["content-type"], "text/plain; charset=utf-8")

    def test_statusLikeFrp(self) -> None:
        self.start(tcp("b", 6001) + tcp("a", 6000) + tcp("bad", 7000))
        conn = self.login()
        self.running(conn, "a", "b")
        conn.protocol.dataReceived(conn.frps.encrypted(NewProxyResp(proxy_name="u.bad", error="port not allowed")))
        response = self.get("/api/status")
        self.assertEqual(json.loads(response.body), {"tcp": [
            {"name": "u.a", "type": "tcp", "status": "running", "err": "", "local_addr": "127.0.0.1:22",
             "plugin": "", "remote_addr": "127.0.0.1:6000"},
            {"name": "u.b", "type": "tcp", "status": "running", "err": "", "local_addr": "127.0.0.1:22",
             "plugin": "", "remote_addr": "127.0.0.1:6001"},
            {"name": "u.bad", "type": "tcp", "status": "start error", "err": "port not allowed",
             "local_addr": "127.0.0.1:22", "plugin": "", "remote_addr": ""},
        ]})
        self.assertTrue(response.body.startswith(b'{"tcp":[{"name":"u.a","type":"tcp","status":"running","err":""'))

    # -- reload -------------------------------------------------------------------------
    def test_reloadChangesOnlyWhatChanged(self) -> None:
        self.start(tcp("same", 6000) + tcp("changed", 6001) + tcp("gone", 6002))
        conn = self.login()
        conn.frps.messages()
        self.running(conn, "same", "changed", "gone")
        self.write(tcp("same", 6000) + tcp("changed", 6005) + tcp("new", 6003))
        response = self.get("/api/reload")
        self.assertEqual((response.status, response.body), (200, b""))
        self.assertEqual(conn.frps.messages(), [
            CloseProxy(proxy_name="u.changed"), CloseProxy(proxy_name="u.gone"),
            NewProxy(proxy_name="u.changed", proxy_type="tcp", remote_port=6005),
            NewProxy(proxy_name="u.new", proxy_type="tcp", remote_port=6003),
        ])
        self.assertEqual(self.service.proxyStatus("same").status, "running")
        texts = self.logs.texts()
        self.assertIn("proxy removed: [u.changed u.gone]", texts)
        self.assertIn("proxy added: [u.changed u.new]", texts)
        self.assertIn("success reload conf", texts)

    def test_reloadBrokenFileChangesNothing(self) -> None:
        self.start(tcp("a", 6000))
        conn = self.login()
        conn.frps.messages()
        self.running(conn, "a")
        with open(self.path, "a") as f:
            f.write('[[proxies]]\nname = "x"\ntype = "bogus"\n')
        response = self.get("/api/reload")
        self.assertEqual(response.status, 400)
        self.assertIn("bogus", response.text)
        self.assertIn(self.path, response.text)
        self.assertEqual(conn.frps.messages(), [])
        self.assertEqual([p.name for p in self.service.proxies()], ["a"])
        self.assertEqual(self.service.proxyStatus("a").status, "running")
        self.assertTrue(any(t.startswith("reload frpc proxy config error: ") for t in self.logs.texts()))

    def test_reloadStrictConfig(self) -> None:
        """``?strictConfig=true`` rejects unknown keys; by default (frp) the HTTP reload does not."""
        self.start(tcp("a", 6000))
        self.write(tcp("a", 6000) + tcp("b", 6001, extra="noSuchKey = 1\n"))
        self.assertEqual(self.get("/api/reload?strictConfig=true").status, 400)
        self.assertEqual([p.name for p in self.service.proxies()], ["a"])
        self.assertEqual(self.get("/api/reload?strictConfig=nonsense").status, 200)
        self.assertEqual([p.name for p in self.service.proxies()], ["a", "b"])

    def test_reloadCountsIncludes(self) -> None:
        self.start(tcp("a", 6000))
        included = os.path.join(self.directory, "more.toml")
        with open(included, "w") as f:
            f.write(tcp("b", 6001))
        self.write(tcp("a", 6000), WEB + f'includes = ["{included}"]\n')
        self.assertEqual(self.get("/api/reload").status, 200)
        self.assertEqual([p.name for p in self.service.proxies()], ["a", "b"])
        with open(included, "w") as f:
            f.write(tcp("b", 6009))
        self.assertEqual(self.get("/api/reload").status, 200)
        self.assertEqual(self.service.proxyConfigs()["b"].remote_port, 6009)

    def test_reloadVisitors(self) -> None:
        first, second = free_port(), free_port()
        self.start(stcpVisitor("v", first))
        [before] = self.service.visitors()
        self.assertEqual((before.status, before.bind_port), ("running", first))
        self.write(stcpVisitor("v", second))
        self.assertEqual(self.get("/api/reload").status, 200)
        [after] = self.service.visitors()
        self.assertEqual((after.status, after.bind_port), ("running", second))
        self.assertIn("visitor removed: [v]", self.logs.texts())

    def test_reloadWithoutFile(self) -> None:
        self.start(tcp("a", 6000))
        self.reloader.path = None
        response = self.get("/api/reload")
        self.assertEqual((response.status, response.text), (400, "frpc has no config file path"))

    # -- config -------------------------------------------------------------------------
    def test_getConfig(self) -> None:
        self.start(tcp("a", 6000))
        response = self.get("/api/config")
        with open(self.path, "rb") as f:
            self.assertEqual((response.status, response.body), (200, f.read()))

    def test_putConfigWritesWithoutReloading(self) -> None:
        self.start(tcp("a", 6000))
        new = configText(PLAIN + WEB, tcp("a", 6000) + tcp("b", 6001)).encode()
        response = self.get("/api/config", "PUT", new)
        self.assertEqual((response.status, response.body), (200, b""))
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), new)
        self.assertEqual([p.name for p in self.service.proxies()], ["a"])

    def test_putBadConfigChangesNothing(self) -> None:
        """Empty, malformed, not UTF-8, or not valid: 400 and the file stays as it was."""
        self.start(tcp("a", 6000))
        with open(self.path, "rb") as f:
            before = f.read()
        cases = {
            b"": "body can't be empty",
            b'{"proxies": [': "",
            b"serverPort = \n[[[": "",
            b"\xff\xfe\x00garbage": "not UTF-8",
            configText(WEB, '[[proxies]]\nname = "x"\ntype = "bogus"\n').encode(): "bogus",
        }
        for body, text in cases.items():
            response = self.get("/api/config", "PUT", body)
            self.assertEqual(response.status, 400, body)
            self.assertIn(text, response.text)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_putHugeBody(self) -> None:
        self.start(tcp("a", 6000))
        with open(self.path, "rb") as f:
            before = f.read()
        response = self.get("/api/config", "PUT", b"#" * (5 * 1024 * 1024))
        self.assertEqual(response.status, 413)
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), before)

    # -- stop, auth, routes -------------------------------------------------------------------
    def test_stopAnswersThenStops(self) -> None:
        self.start(tcp("a", 6000))
        response = self.get("/api/stop", "POST")
        self.assertEqual((response.status, response.body), (200, b""))
        self.assertEqual(self.stopped, [1])

    def test_stopNeedsPost(self) -> None:
        self.start(tcp("a", 6000))
        self.assertEqual(self.get("/api/stop").status, 405)
        self.assertEqual(self.stopped, [])

    def test_wrongCredentialsChangeNothing(self) -> None:
        self.start(tcp("a", 6000))
        with open(self.path, "rb") as f:
            before = f.read()
        for method, path in (("POST", "/api/stop"), ("PUT", "/api/config"), ("GET", "/api/reload")):
            connection = Connection(self.site)
            connection.send(rawRequest(method, path, [basic("admin", "wrong")], b"x = 1"))
            self.assertIsNone(connection.response())
            self.reactor.advance(AUTH_FAIL_DELAY)
            self.assertEqual(connection.response().status, 401)
        self.assertEqual(self.stopped, [])
        with open(self.path, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_healthzAndUnknown(self) -> None:
        self.start(tcp("a", 6000))
        self.assertEqual(exchange(self.site, "GET", "/healthz").status, 200)
        self.assertEqual(exchange(self.site, "GET", "/api/nothing").status, 404)


class CliPiecesTests(SynchronousTestCase):
    def test_parseDuration(self) -> None:
        self.assertEqual([parseDuration(t) for t in ("30s", "500ms", "1m30s", "2.5", "1h")], [30, 0.5, 90, 2.5, 3600])
        for bad in ("30x", "s", "1m x"):
            self.assertRaises(ValueError, parseDuration, bad)

    def test_statusReportOrderAndPadding(self) -> None:
        item = {"name": "u.a", "type": "udp", "status": "running", "err": "", "local_addr": "127.0.0.1:53",
                "plugin": "", "remote_addr": "127.0.0.1:6000"}
        report = statusReport({"udp": [item], "tcp": [dict(item, name="u.long-name", type="tcp")]})
        self.assertEqual(report.splitlines()[:4], [
            "Proxy Status...", "", "TCP",
            "Name         Status   LocalAddr     Plugin  RemoteAddr      Error  ",
        ])
        self.assertEqual(report.splitlines()[6], "UDP")
        self.assertTrue(report.endswith("\n\n"))
