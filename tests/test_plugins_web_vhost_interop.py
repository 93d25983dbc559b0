"""The HTTP plugins behind frps's vhosts: static_file on an ``http`` proxy (frps's HTTP vhost
forwards each request to the plugin) and https2http on an ``https`` proxy (frps routes the TLS
connection by SNI, the plugin terminates it), our frpc behind the Go frps and the Go frpc
behind ours, each compared with the Go pair."""

from twisted.trial.unittest import TestCase

from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, exchangeOnce
from tests.support import free_port, until
from tests.webplugins import RecordingBackend, listenBackend, makeRoot, parseResponse, tlsTalk


class PluginsBehindVhostTests(PluginRigMixin, TestCase):
    timeout = 120

    async def vhostRig(self, rig, proxies: str) -> None:
        self.httpPort, self.httpsPort = free_port(), free_port()
        await self.rig(rig, proxies, ["web"], frpsExtra=f"vhostHTTPPort = {self.httpPort}\n"
                                                      f"vhostHTTPSPort = {self.httpsPort}\n")

    async def staticFiles(self, rig, root: str):
        await self.vhostRig(rig, f"""
[[proxies]]
name = "web"
type = "http"
customDomains = ["files.test"]
[proxies.plugin]
type = "static_file"
localPath = "{root}"
stripPrefix = "static"
""")
        answers = []
        for target in (b"/static/a.txt", b"/static/", b"/static/sub", b"/a.txt"):
            raw = await exchangeOnce(self, self.httpPort, b"GET " + target + b" HTTP/1.1\r\nHost: files.test\r\n"
                                     b"Connection: close\r\n\r\n")
            response = parseResponse(raw)
            answers.append((target, response.status, response.headers.get("content-type"),
                            response.headers.get("location"), response.body))
        return answers

    async def test_static_file_on_http_proxies(self):
        root = makeRoot(self.mktemp())
        go = await self.staticFiles(GO_BEHIND_GO, root)
        self.assertEqual(go[0][1:3], (200, "text/plain; charset=utf-8"))
        self.assertEqual(await self.staticFiles(OURS_BEHIND_GO, root), go)
        self.assertEqual(await self.staticFiles(GO_BEHIND_OURS, root), go)

    async def httpsToHTTP(self, rig):
        backend = RecordingBackend()
        addr = await listenBackend(self, backend)
        await self.vhostRig(rig, f"""
[[proxies]]
name = "web"
type = "https"
customDomains = ["orig.test"]
[proxies.plugin]
type = "https2http"
localAddr = "{addr}"
""")
        proto = await tlsTalk(self, self.httpsPort, b"GET /p HTTP/1.1\r\nHost: orig.test\r\nX-Forwarded-For: 1.2.3.4\r\n"
                              b"Connection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the response")
        response = parseResponse(proto.received)
        seen = backend.headersSeen(0)
        seen.pop("accept-encoding", None)  # added by Go's transport only (see reverse_proxy.py)
        return response.status, response.body, seen

    async def test_https2http_on_https_proxies(self):
        go = await self.httpsToHTTP(GO_BEHIND_GO)
        self.assertEqual(go[2]["x-forwarded-for"], "1.2.3.4, 127.0.0.1")
        self.assertEqual(await self.httpsToHTTP(OURS_BEHIND_GO), go)
        self.assertEqual(await self.httpsToHTTP(GO_BEHIND_OURS), go)
