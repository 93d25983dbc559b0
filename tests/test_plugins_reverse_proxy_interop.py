"""http2http, http2https, https2http, https2https between real programs: our frpc behind the Go
frps and the Go frpc behind our frps, compared with the Go pair on the same request (status,
body, the head the backend sees); a websocket upgrade through our frpc; INI plugin keys."""

from twisted.trial.unittest import TestCase

from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, exchangeOnce
from tests.support import free_port, until
from tests.webplugins import RecordingBackend, UpgradeBackend, listenBackend, maybeTLSTalk, parseResponse, tlsTalk

#: What Go's transport adds on its own (and unzips), which frptw does not (see reverse_proxy.py).
NOT_COMPARED = {"accept-encoding"}

REQUEST = (b"POST /p?q=1 HTTP/1.1\r\nHost: orig.test:8443\r\nX-Forwarded-For: 1.2.3.4\r\nX-Forwarded-Host: fh\r\n"
           b"X-Forwarded-Proto: fp\r\nForwarded: for=x\r\nConnection: close, X-Hop\r\nX-Hop: h\r\nTe: trailers\r\n"
           b"Content-Length: 5\r\nX-Custom: c\r\n\r\nhello")


def webProxy(kind: str, localAddr: str, remotePort: int) -> str:
    return f"""
[[proxies]]
name = "web"
type = "tcp"
remotePort = {remotePort}
[proxies.plugin]
type = "{kind}"
localAddr = "{localAddr}"
hostHeaderRewrite = "rewritten.test"
requestHeaders.set.x-from-frp = "yes"
"""


class ReverseProxyInteropTests(PluginRigMixin, TestCase):
    timeout = 120

    async def backend(self, tls: bool, factory=None):
        factory = factory or RecordingBackend()
        return factory, await listenBackend(self, factory, tls)

    async def once(self, rig, kind: str, fmt: str = "toml"):
        """The response to REQUEST and the head the backend saw, through ``rig``."""
        backend, addr = await self.backend(kind.endswith("2https"))
        remote = free_port()
        if fmt == "ini":
            proxies = (f"[web]\ntype = tcp\nremote_port = {remote}\nplugin = {kind}\nplugin_local_addr = {addr}\n"
                       f"plugin_host_header_rewrite = rewritten.test\nplugin_header_X-From-Frp = yes\n")
        else:
            proxies = webProxy(kind, addr, remote)
        await self.rig(rig, proxies, ["web"], fmt=fmt)
        proto = await maybeTLSTalk(self, remote, kind.startswith("https2"), REQUEST)
        await until(lambda: proto.closed.called, "the response")
        response = parseResponse(proto.received)
        [(request, body)] = backend.requests
        seen = sorted((name.lower(), value) for name, value in request.headers.raw_items()
                      if name.lower().decode() not in NOT_COMPARED)
        return (response.status, response.body, response.headers.get("x-backend")), \
            (request.method, request.target, seen, body)

    async def compare(self, rig, kind: str, fmt: str = "toml"):
        ours = await self.once(rig, kind, fmt)
        go = await self.once(GO_BEHIND_GO, kind)
        self.assertEqual(ours, go)

    def test_http2http_ours_behind_go(self):
        return self.compare(OURS_BEHIND_GO, "http2http")

    def test_http2http_go_behind_ours(self):
        return self.compare(GO_BEHIND_OURS, "http2http")

    def test_http2https_ours_behind_go(self):
        return self.compare(OURS_BEHIND_GO, "http2https")

    def test_http2https_go_behind_ours(self):
        return self.compare(GO_BEHIND_OURS, "http2https")

    def test_https2http_ours_behind_go(self):
        return self.compare(OURS_BEHIND_GO, "https2http")

    def test_https2http_go_behind_ours(self):
        return self.compare(GO_BEHIND_OURS, "https2http")

    def test_https2https_ours_behind_go(self):
        return self.compare(OURS_BEHIND_GO, "https2https")

    def test_https2https_go_behind_ours(self):
        return self.compare(GO_BEHIND_OURS, "https2https")

    def test_ini_plugin_keys(self):
        return self.compare(OURS_BEHIND_GO, "https2http", fmt="ini")

    async def test_websocket_through_our_frpc(self):
        backend, addr = await self.backend(False, UpgradeBackend())
        remote = free_port()
        await self.rig(OURS_BEHIND_GO, webProxy("https2http", addr, remote), ["web"])
        proto = await tlsTalk(self, remote, b"GET /ws HTTP/1.1\r\nHost: orig.test\r\nConnection: Upgrade\r\n"
                                b"Upgrade: websocket\r\n\r\n")
        await until(lambda: b"\r\n\r\n" in proto.received, "the 101")
        self.assertTrue(proto.received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), proto.received)
        proto.received = proto.received.partition(b"\r\n\r\n")[2]
        proto.transport.write(b"\x81\x03raw" * 1000)
        await until(lambda: len(proto.received) == 5000, "the echo through the tunnel")
        self.assertEqual(proto.received, b"\x81\x03raw" * 1000)

    async def plainToHTTPS(self, rig) -> bytes:
        backend, addr = await self.backend(False)
        remote = free_port()
        await self.rig(rig, webProxy("https2http", addr, remote), ["web"])
        return await exchangeOnce(self, remote, b"GET / HTTP/1.1\r\nHost: orig.test\r\n\r\n")

    async def test_plain_http_to_https2http_answered_as_go(self):
        self.assertEqual(await self.plainToHTTPS(OURS_BEHIND_GO), await self.plainToHTTPS(GO_BEHIND_GO))
