"""The dashboard API and /metrics of our frps against the real Go frps 0.65, key by key.

Both frps run the same configuration (dashboard with Basic auth and Prometheus, every vhost);
the same Go frpc configuration (one proxy of each type, with settings that show in ``conf``)
logs in to each.  Every answer is compared: the JSON shapes (keys and value types) always,
the values wherever they do not depend on ports or clocks -- ``conf`` objects, statuses,
traffic counted for the same user bytes, 404/400/401/405 codes and bodies; the offline records
after the frpc stops; the Prometheus families, types and label sets as a scraper parses them.
"""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from tests.dashboardapi import PROXY_NAMES, DashboardClient, clientConfig, serverConfig, shape
from tests.gofrp import GoFrp
from tests.support import free_port
from tests.traffic import EchoServer, exchange
from tests.udptraffic import udpEcho, wait_for_echo

#: Fields whose values depend on ports or the time of day.
VARYING = {"bindPort", "vhostHTTPPort", "vhostHTTPSPort", "tcpmuxHTTPConnectPort", "lastStartTime", "lastCloseTime"}


class Side:
    """One frps (ours or Go's), its dashboard, its Go frpc and its tcp/udp proxy ports."""

    def __init__(self) -> None:
        self.bindPort, self.dashboardPort = free_port(), free_port()
        self.vhostPorts = free_port(), free_port(), free_port()
        self.tcpPort, self.udpPort = free_port(), free_port()
        self.api = DashboardClient(self.dashboardPort)
        self.frpc = None

    def serverText(self) -> str:
        return serverConfig(self.bindPort, self.dashboardPort, *self.vhostPorts)


class DashboardInteropTests(TestCase):
    timeout = 90

    async def setUp(self) -> None:
        self.echo = await EchoServer.listen(reactor)
        self.addCleanup(self.echo.stop)
        self.udpEchoPort = udpEcho(self)
        self.go, self.ours = Side(), Side()
        frps = await GoFrp.start(reactor, "frps", self.go.serverText())
        self.addCleanup(frps.stop)
        service = FrpServerService(parse_server_config(self.ours.serverText(), "toml"), reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenListening()
        for side in (self.go, self.ours):
            await self.startClient(side)

    async def startClient(self, side: Side) -> None:
        text = clientConfig(side.bindPort, self.echo.port, side.tcpPort, side.udpPort, self.udpEchoPort)
        side.frpc = await GoFrp.start(reactor, "frpc", text, ready=None)
        self.addCleanup(side.frpc.stop)
        await side.frpc.waitFor("start proxy success", count=len(PROXY_NAMES))

    async def both(self, path: str):
        return await self.go.api.json(path), await self.ours.api.json(path)

    def assertSameShape(self, go, ours, what: str) -> None:
        self.assertEqual(shape(ours), shape(go), f"{what}: ours {json.dumps(ours)}\n   go {json.dumps(go)}")

    def assertSameValues(self, go, ours, what: str, ignore=VARYING) -> None:
        def strip(value):
            if isinstance(value, dict):
                return {k: strip(v) for k, v in value.items() if k not in ignore}
            if isinstance(value, list):
                return [strip(v) for v in value]
            return value

        self.assertEqual(strip(ours), strip(go), f"{what}: ours {json.dumps(ours)}\n   go {json.dumps(go)}")

    # -- the tests ---------------------------------------------------------------------------
    async def test_serverinfo_and_every_proxy_list_match_go(self) -> None:
        go, ours = await self.both("/api/serverinfo")
        self.assertSameShape(go, ours, "serverinfo")
        self.assertSameValues(go, ours, "serverinfo")
        self.assertEqual(ours["proxyTypeCount"], {kind: 1 for kind in PROXY_NAMES})
        for kind, name in PROXY_NAMES.items():
            go, ours = await self.both(f"/api/proxy/{kind}")
            self.assertSameShape(go, ours, f"/api/proxy/{kind}")
            # tcp and udp remote ports differ by construction; the rest of conf is identical.
            self.assertSameValues(go, ours, f"/api/proxy/{kind}", VARYING | {"remotePort"})
            self.assertEqual([p["name"] for p in ours["proxies"]], [name])
            go, ours = await self.both(f"/api/proxy/{kind}/{name}")
            self.assertSameShape(go, ours, f"/api/proxy/{kind}/{name}")
            self.assertSameValues(go, ours, f"/api/proxy/{kind}/{name}", VARYING | {"remotePort"})
        self.assertEqual((await self.ours.api.json("/api/proxy/tcp"))["proxies"][0]["conf"]["remotePort"],
                         self.ours.tcpPort)
        go, ours = await self.both("/api/proxy/xtcp")
        self.assertEqual((go, ours), ({"proxies": []}, {"proxies": []}))

    async def test_errors_match_go(self) -> None:
        wrong = DashboardClient(0, "admin", "wrong").credentials
        cases = [
            ("GET", "/api/proxy/tcp/nosuch", None), ("GET", "/api/proxy/udp/ssh", None),
            ("GET", "/api/traffic/nosuch", None), ("DELETE", "/api/proxies?status=online", None),
            ("DELETE", "/api/proxies", None), ("GET", "/api/nosuch", None), ("POST", "/api/serverinfo", None),
            ("GET", "/api/serverinfo", wrong), ("GET", "/api/serverinfo", ()), ("GET", "/metrics", ()),
            ("GET", "/healthz", ()), ("GET", "/api/proxy/tcp/ssh/more", None),
        ]
        for method, path, credentials in cases:
            go = await self.go.api.request(path, method, credentials)
            ours = await self.ours.api.request(path, method, credentials)
            self.assertEqual((ours.status, ours.body), (go.status, go.body), f"{method} {path}")
        # Nothing changed: still every proxy, online.
        info = await self.ours.api.json("/api/serverinfo")
        self.assertEqual(info["proxyTypeCount"], {kind: 1 for kind in PROXY_NAMES})

    async def test_traffic_counts_match_go(self) -> None:
        for side in (self.go, self.ours):
            await exchange(reactor, side.tcpPort, 100_000, connections=3)
            await wait_for_echo(reactor, side.udpPort)
        for side in (self.go, self.ours):
            # Go counts a tcp connection's bytes when it closes.
            await side.api.until("/api/traffic/ssh", lambda t: t["trafficIn"][0] == 300_000, "tcp traffic counted")
            await side.api.until("/api/proxy/tcp/ssh", lambda p: p["curConns"] == 0, "connections closed")
        go, ours = await self.both("/api/traffic/ssh")
        self.assertEqual(ours, go)
        self.assertEqual(ours["trafficOut"], [300_000, 0, 0, 0, 0, 0, 0])
        go, ours = await self.both("/api/proxy/tcp/ssh")
        self.assertSameValues(go, ours, "tcp proxy after traffic", VARYING | {"remotePort"})
        goUDP, oursUDP = await self.both("/api/traffic/dns")
        self.assertGreater(oursUDP["trafficIn"][0], 0)
        self.assertEqual(oursUDP["trafficIn"][0], oursUDP["trafficOut"][0])
        self.assertEqual(shape(oursUDP), shape(goUDP))

    async def test_metrics_match_go(self) -> None:
        for side in (self.go, self.ours):
            await exchange(reactor, side.tcpPort, 1000)
            await side.api.until("/api/traffic/ssh", lambda t: t["trafficIn"][0] == 1000, "tcp traffic counted")
        texts = [(await side.api.request("/metrics")).body for side in (self.go, self.ours)]
        # The exposition text itself: every frp_ line (HELP, TYPE, samples) identical.
        goLines, ourLines = [[line for line in text.decode().splitlines() if "frp_" in line] for text in texts]
        self.assertEqual(ourLines, goLines)
        go, ours = [self.scrape(text) for text in texts]
        self.assertEqual(ours, go)
        families = {(name, kind) for name, kind, *_ in ours}
        self.assertEqual(families, {
            ("frp_server_client_counts", "gauge"), ("frp_server_proxy_counts", "gauge"),
            ("frp_server_proxy_counts_detailed", "gauge"), ("frp_server_connection_counts", "gauge"),
            ("frp_server_traffic_in", "counter"), ("frp_server_traffic_out", "counter")})
        self.assertIn(("frp_server_traffic_in", "counter", "The total in traffic", "frp_server_traffic_in_total",
                       (("name", "ssh"), ("type", "tcp")), 1000.0), ours)

    async def test_offline_records_and_clearing_match_go(self) -> None:
        for side in (self.go, self.ours):
            await side.frpc.stop()
            await side.api.until("/api/proxy/tcp", lambda r: r["proxies"][0]["status"] == "offline", "offline")
        go, ours = await self.both("/api/serverinfo")
        self.assertSameValues(go, ours, "serverinfo offline")
        self.assertEqual(ours["clientCounts"], 0)
        for kind in PROXY_NAMES:
            go, ours = await self.both(f"/api/proxy/{kind}")
            self.assertSameShape(go, ours, f"offline /api/proxy/{kind}")
            self.assertSameValues(go, ours, f"offline /api/proxy/{kind}")
            self.assertIsNone(ours["proxies"][0]["conf"])
            self.assertNotEqual(ours["proxies"][0]["lastCloseTime"], "")
        for side in (self.go, self.ours):
            response = await side.api.request("/api/proxies?status=offline", "DELETE")
            self.assertEqual((response.status, response.body), (200, b""))
        go, ours = await self.both("/api/proxy/tcp")
        self.assertEqual((go, ours), ({"proxies": []}, {"proxies": []}))
        self.assertEqual((await self.ours.api.request("/api/traffic/ssh")).status, 404)

    # -- Prometheus --------------------------------------------------------------------------
    @staticmethod
    def scrape(text: bytes):
        """frp's families as a scraper sees them: name, type, and each sample's name, its
        labels without the port-dependent values, and its value when ports don't change it."""
        found = set()
        for family in text_string_to_metric_families(text.decode()):
            if not family.name.startswith("frp_"):
                continue
            for sample in family.samples:
                found.add((family.name, family.type, family.documentation, sample.name,
                           tuple(sorted(sample.labels.items())), sample.value))
        return found
