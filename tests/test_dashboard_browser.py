"""The dashboard's web page in a real browser: headless Chromium (Debian's ``chromium``; CI
installs it, and the test fails without it rather than being skipped).

Our frps with a Basic-auth dashboard, our frpc with a tcp and an http proxy, some traffic; then
Chromium loads ``/static/#tcp/ssh`` (which opens the ssh proxy's details and chart) with the
credentials in the URL, runs the page's script to completion (``--virtual-time-budget``) and
dumps the DOM: the page must show the server's version and counts, list the live proxies of
the tab with their traffic, and have drawn the 7-day chart.  A screenshot of the same page is
kept in the trial temp directory (``*.png`` next to the test's other temporary files) as an
artefact for humans.
"""

import os
import re
import shutil

from twisted.internet import reactor, utils
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.dashboardapi import PASSWORD, TOKEN, USER, DashboardClient
from tests.support import free_port, tempDir
from tests.traffic import EchoServer, exchange

BROWSER = "chromium"


class DashboardPageTests(TestCase):
    timeout = 90

    async def setUp(self) -> None:
        self.browser = shutil.which(BROWSER)
        if self.browser is None:
            self.fail(f"{BROWSER} is not installed (apt-get install chromium); the page test needs it")
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        bindPort, self.dashboardPort, httpPort, self.tcpPort = free_port(), free_port(), free_port(), free_port()
        server = FrpServerService(parse_server_config(
            f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nauth.token = "{TOKEN}"\nvhostHTTPPort = {httpPort}\n'
            f'webServer.port = {self.dashboardPort}\nwebServer.user = "{USER}"\nwebServer.password = "{PASSWORD}"\n',
            "toml"), reactor=reactor)
        server.startService()
        self.addCleanup(server.stopService)
        await server.whenListening()
        client = FrpClientService(parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\n'
            f'[[proxies]]\nname = "ssh"\ntype = "tcp"\nlocalPort = {echo.port}\nremotePort = {self.tcpPort}\n'
            f'[[proxies]]\nname = "site"\ntype = "http"\nlocalPort = {echo.port}\ncustomDomains = ["site.test"]\n',
            "toml"), reactor)
        client.startService()
        self.addCleanup(client.stopService)
        await server.whenProxyRunning("ssh")
        await server.whenProxyRunning("site")
        await exchange(reactor, self.tcpPort, 50_000)
        await DashboardClient(self.dashboardPort).until(
            "/api/proxy/tcp/ssh", lambda p: p["todayTrafficIn"] == 50_000 and p["curConns"] == 0, "traffic counted")
        self.profile = tempDir(self)

    async def chromium(self, *arguments: str) -> str:
        url = f"http://{USER}:{PASSWORD}@127.0.0.1:{self.dashboardPort}/static/#tcp/ssh"
        out, err, code = await utils.getProcessOutputAndValue(
            self.browser,
            ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={self.profile}",
             "--virtual-time-budget=5000", "--window-size=1280,900", *arguments, url],
            env={"HOME": self.profile, "PATH": os.environ.get("PATH", "")}, reactor=reactor)
        self.assertEqual(code, 0, err.decode(errors="replace")[-2000:])
        return out.decode("utf-8", "replace")

    async def test_the_page_lists_the_live_proxies_and_draws_the_chart(self) -> None:
        dom = await self.chromium("--dump-dom")
        self.assertIn('<span id="version">v0.65.0</span>', dom)
        self.assertRegex(dom, r'id="clientCounts">1<')
        self.assertRegex(dom, r'id="proxyCount">2<')
        self.assertIn('data-type="tcp" aria-selected="true">TCP (1)<', dom)
        self.assertIn('data-type="http" aria-selected="false">HTTP (1)<', dom)
        row = re.search(r'<tr class="proxy online" data-name="ssh">(.*?)</tr>', dom)
        self.assertIsNotNone(row, dom)
        self.assertEqual(re.findall(r"<td[^>]*>([^<]*)</td>", row.group(1)),
                         ["ssh", str(self.tcpPort), "0", "48.8 KiB", "48.8 KiB", "0.65.0"])
        chart = re.search(r'<svg class="chart".*?</svg>', dom, re.S)
        self.assertIsNotNone(chart, "no traffic chart drawn")
        self.assertEqual(len(re.findall(r'<rect class="in"', chart.group(0))), 7)
        self.assertIn("<title>in: 48.8 KiB</title>", chart.group(0))
        self.assertNotIn("state error", dom)

    async def test_a_screenshot_of_the_page(self) -> None:
        directory = os.path.abspath(self.mktemp())  # kept after the run: the artefact
        os.makedirs(directory)
        path = os.path.join(directory, "dashboard.png")
        await self.chromium(f"--screenshot={path}")
        with open(path, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
