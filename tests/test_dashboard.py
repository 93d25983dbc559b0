"""frps's dashboard, in process: our frps and our frpc on loopback.

What the comparison with Go frps (test_dashboard_interop) cannot show: the INI spelling of the
dashboard keys, HTTPS, a dashboard port that is taken, the http proxy's counting on its work
connections, udp datagrams counted, the Prometheus text writer, and that without a dashboard
nothing is counted.
"""

import json
from types import SimpleNamespace

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import Certificate
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.server.prometheus import FrpCollector, exposition, go_float
from frptw.server.stats import ServerStats
from tests.dashboardapi import PASSWORD, TOKEN, USER, DashboardClient
from tests.pki import TestCA
from tests.support import free_port, tempDir
from tests.udptraffic import udp_exchange, udpEcho, wait_for_echo
from tests.webclient import fetch


class _Hello(Resource):
    isLeaf = True

    def render_GET(self, request) -> bytes:
        return b"hello from the backend"


class _Collect(Protocol):
    """Sends one raw request and collects everything until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=None) -> None:
        self.done.callback(self.received)


class DashboardServiceTests(TestCase):
    timeout = 60

    async def startServer(self, text: str, fmt: str = "toml") -> FrpServerService:
        if fmt == "toml":
            text = f'auth.token = "{TOKEN}"\n' + text
        server = FrpServerService(parse_server_config(text, fmt), reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        await server.whenListening()
        return server

    async def startClient(self, bindPort: int, proxies: str) -> FrpClientService:
        client = FrpClientService(parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\n{proxies}', "toml"), reactor)
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenLoggedIn()
        return client

    async def test_ini_dashboard_keys_auth_and_metrics(self) -> None:
        bindPort, dashboardPort = free_port(), free_port()
        await self.startServer(
            f"[common]\nbind_addr = 127.0.0.1\nbind_port = {bindPort}\ntoken = {TOKEN}\n"
            f"dashboard_addr = 127.0.0.1\ndashboard_port = {dashboardPort}\ndashboard_user = {USER}\n"
            f"dashboard_pwd = {PASSWORD}\nenable_prometheus = true\n", "ini")
        api = DashboardClient(dashboardPort)
        info = await api.json("/api/serverinfo")
        self.assertEqual((info["bindPort"], info["clientCounts"], info["proxyTypeCount"]), (bindPort, 0, {}))
        refused = await api.request("/api/serverinfo", credentials=())
        self.assertEqual((refused.status, refused.headers["www-authenticate"]), (401, 'Basic realm="Restricted"'))
        self.assertEqual((await api.request("/healthz", credentials=())).status, 200)
        metrics = await api.request("/metrics")
        self.assertEqual(metrics.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        self.assertIn(b"\nfrp_server_client_counts 0\n", metrics.body)
        self.assertIn(b"\nprocess_", metrics.body)

    async def test_without_enable_prometheus_there_is_no_metrics_page(self) -> None:
        bindPort, dashboardPort = free_port(), free_port()
        await self.startServer(f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nwebServer.port = {dashboardPort}\n')
        response = await DashboardClient(dashboardPort, "", "").request("/metrics")
        self.assertEqual((response.status, response.body), (404, b"404 page not found\n"))

    async def test_https_dashboard(self) -> None:
        ca = TestCA(tempDir(self))
        cert, key = ca.issueFiles("dashboard", ipAddresses=["127.0.0.1"])
        bindPort, dashboardPort = free_port(), free_port()
        await self.startServer(
            f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nwebServer.port = {dashboardPort}\n'
            f'webServer.tls.certFile = "{cert}"\nwebServer.tls.keyFile = "{key}"\n')
        with open(ca.ca, "rb") as f:
            trust = Certificate.loadPEM(f.read())
        response = await fetch(reactor, f"https://127.0.0.1:{dashboardPort}/api/serverinfo", trustRoot=trust)
        self.assertEqual((response.status, json.loads(response.body)["bindPort"]), (200, bindPort))

    async def test_a_taken_dashboard_port_fails_the_start(self) -> None:
        taken = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Protocol))
        self.addCleanup(taken.stopListening)
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nbindPort = {free_port()}\n'
                                     f'webServer.port = {taken.getHost().port}\n', "toml")
        server = FrpServerService(config, reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        with self.assertRaises(CannotListenError):
            await server.whenListening()

    async def test_http_proxy_counts_its_work_connections(self) -> None:
        backend = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(_Hello()))
        self.addCleanup(backend.stopListening)
        bindPort, dashboardPort, httpPort = free_port(), free_port(), free_port()
        server = await self.startServer(f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nvhostHTTPPort = {httpPort}\n'
                                        f'webServer.port = {dashboardPort}\n')
        await self.startClient(bindPort, f'[[proxies]]\nname = "site"\ntype = "http"\n'
                                         f'localPort = {backend.getHost().port}\ncustomDomains = ["site.test"]\n')
        await server.whenProxyRunning("site")
        request = b"GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n"
        user = _Collect(request)
        await TCP4ClientEndpoint(reactor, "127.0.0.1", httpPort).connect(Factory.forProtocol(lambda: user))
        answer = await user.done
        self.assertIn(b"hello from the backend", answer)
        proxy = await DashboardClient(dashboardPort, "", "").json("/api/proxy/http/site")
        # In: the request as frps wrote it to the work connection (headers rewritten, so not
        # the user's bytes); out: the backend's whole response; the work connection stays open
        # in the pool, counted, as frp counts its idle work connections.
        self.assertGreater(proxy["todayTrafficIn"], 0)
        self.assertGreater(proxy["todayTrafficOut"], len(b"hello from the backend"))
        self.assertEqual(proxy["curConns"], 1)

    async def test_udp_datagrams_are_counted_each_way(self) -> None:
        echoPort = udpEcho(self)
        bindPort, dashboardPort, udpPort = free_port(), free_port(), free_port()
        await self.startServer(f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nwebServer.port = {dashboardPort}\n')
        await self.startClient(bindPort, f'[[proxies]]\nname = "dns"\ntype = "udp"\nlocalPort = {echoPort}\n'
                                         f'remotePort = {udpPort}\n')
        await wait_for_echo(reactor, udpPort)
        api = DashboardClient(dashboardPort, "", "")
        before = await api.json("/api/traffic/dns")
        received, _, _ = await udp_exchange(reactor, udpPort, 10, window=1, maxSize=100, lossTimeout=2.0)
        self.assertEqual(received, 10)
        after = await api.until("/api/traffic/dns", lambda t: t["trafficOut"][0] == t["trafficIn"][0],
                                "the echoes counted")
        self.assertGreater(after["trafficIn"][0], before["trafficIn"][0])
        proxy = await api.json("/api/proxy/udp/dns")
        self.assertEqual(proxy["curConns"], 0)

    async def test_without_a_dashboard_nothing_is_counted(self) -> None:
        server = await self.startServer(f'bindAddr = "127.0.0.1"\nbindPort = {free_port()}\n')
        self.assertIsNone(server.stats)


class ExpositionTests(SynchronousTestCase):
    def test_go_float(self) -> None:
        cases = {0: "0", 1: "1", 473: "473", 1.5: "1.5", 123456: "123456", 2e6: "2e+06", 1234567: "1.234567e+06",
                 0.0001: "0.0001", 0.00001: "1e-05", -3: "-3", float("inf"): "+Inf", float("nan"): "NaN"}
        for value, text in cases.items():
            self.assertEqual(go_float(value), text, value)

    def test_udp_drops_are_frptws_own_counter_shown_once_a_datagram_was_dropped(self) -> None:
        stats = ServerStats(Clock())
        service = SimpleNamespace(stats=stats, clients=lambda: [])
        dns = stats.proxyOpened("dns", "udp")
        stats.proxyOpened("game", "udp")
        self.assertNotIn(b"frptw_", exposition(FrpCollector(service).collect()))
        dns.addDropped()
        dns.addDropped()
        text = exposition(FrpCollector(service).collect()).decode()
        self.assertIn("# HELP frptw_server_udp_dropped_datagrams Datagrams from users a udp proxy dropped because "
                      "its queue to frpc was full\n# TYPE frptw_server_udp_dropped_datagrams counter\n"
                      'frptw_server_udp_dropped_datagrams{name="dns",type="udp"} 2\n', text)
        self.assertNotIn('frptw_server_udp_dropped_datagrams{name="game"', text)

    def test_families_sorted_empty_ones_left_out_labels_escaped(self) -> None:
        empty = GaugeMetricFamily("b_empty", "nothing", labels=["x"])
        gauge = GaugeMetricFamily("c_gauge", "a\\b\nc", labels=["type", "name"])
        gauge.add_metric(["tcp", 'we"ird\n'], 2)
        gauge.add_metric(["tcp", "a"], 1)
        counter = Metric("a_bytes", "bytes", "counter")
        counter.add_sample("a_bytes", {}, 3e6)
        self.assertEqual(exposition([empty, gauge, counter]).decode(), (
            "# HELP a_bytes bytes\n# TYPE a_bytes counter\na_bytes 3e+06\n"
            "# HELP c_gauge a\\\\b\\nc\n# TYPE c_gauge gauge\n"
            'c_gauge{name="a",type="tcp"} 1\nc_gauge{name="we\\"ird\\n",type="tcp"} 2\n'))
