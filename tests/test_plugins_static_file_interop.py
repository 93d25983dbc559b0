"""``static_file`` between real programs: our frpc behind the Go frps and the Go frpc behind our
frps, each request compared with the Go pair's answer (status, the headers that matter, body)."""

import gzip

from twisted.trial.unittest import TestCase

from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, exchangeOnce
from tests.support import free_port
from tests.webplugins import makeRoot, parseResponse

AUTH = b"Authorization: Basic dTpw\r\n"  # u:p

#: (method, target, extra headers): what each rig is asked.
REQUESTS = [
    (b"GET", b"/static/a.txt", AUTH),
    (b"GET", b"/static/", AUTH),
    (b"GET", b"/static/dir2/", AUTH),
    (b"GET", b"/static/sub", AUTH),
    (b"GET", b"/static/sub/", AUTH),
    (b"GET", b"/static/a.txt/", AUTH),
    (b"GET", b"/static/sub/index.html?x=1", AUTH),
    (b"GET", b"/static/nope", AUTH),
    (b"GET", b"/a.txt", b""),
    (b"GET", b"/static", b""),
    (b"GET", b"/static/a.txt", b""),
    (b"GET", b"/static/a.txt", b"Authorization: Basic dTpx\r\n"),
    (b"POST", b"/static/a.txt", b"Content-Length: 0\r\n"),
    (b"HEAD", b"/static/a.txt", AUTH),
    (b"GET", b"/../etc/passwd", b""),
    (b"GET", b"/static/%2e%2e/%2e%2e/etc/passwd?q=1", AUTH),
    (b"GET", b"/static/a.txt", AUTH + b"Range: bytes=1-2\r\n"),
    (b"GET", b"/static/a.txt", AUTH + b"Range: bytes=10-20\r\n"),
    (b"GET", b"/static/a.txt", AUTH + b"Range: items=1-2\r\n"),
    (b"GET", b"/static/a.txt", AUTH + b"Range: bytes=-3\r\n"),
    (b"GET", b"/static/a.txt", AUTH + b"Accept-Encoding: gzip\r\n"),
    (b"GET", b"/static/page.html", AUTH),
    (b"GET", b"//static//a.txt", AUTH),
    (b"GET", b"/static/dir2/we%20ird%26%3C.txt", AUTH),
    (b"GET", b"http://x/static/a.txt", AUTH),
    (b"GET", b"/static/%zz", AUTH),
    (b"GET", b"/static/a.txt", AUTH + b"If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT\r\n"),
    (b"GET", b"/static/dir2/", AUTH + b"If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT\r\n"),
]

#: Headers compared with Go's (Date differs by nature; Content-Length where the body is the same).
COMPARED = ("content-type", "location", "content-range", "www-authenticate", "accept-ranges",
            "content-encoding", "x-content-type-options", "last-modified")


def staticProxy(name: str, root: str, remotePort: int) -> str:
    return f"""
[[proxies]]
name = "{name}"
type = "tcp"
remotePort = {remotePort}
[proxies.plugin]
type = "static_file"
localPath = "{root}"
stripPrefix = "static"
httpUser = "u"
httpPassword = "p"
"""


class StaticFileInteropTests(PluginRigMixin, TestCase):
    timeout = 120

    async def answers(self, rig, root: str, fmt: str = "toml"):
        remote = free_port()
        if fmt == "ini":
            proxies = (f"[sf]\ntype = tcp\nremote_port = {remote}\nplugin = static_file\nplugin_local_path = {root}\n"
                       f"plugin_strip_prefix = static\nplugin_http_user = u\nplugin_http_passwd = p\n")
        else:
            proxies = staticProxy("sf", root, remote)
        await self.rig(rig, proxies, ["sf"], fmt=fmt)
        seen = []
        for method, target, headers in REQUESTS:
            raw = await exchangeOnce(self, remote, method + b" " + target + b" HTTP/1.1\r\nHost: x\r\n" + headers
                                     + b"Connection: close\r\n\r\n")
            response = parseResponse(raw, method)
            body = response.body
            if response.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            seen.append((method, target, response.status, {k: v for k, v in response.headers.items() if k in COMPARED},
                         body))
        return seen

    async def compareWithGo(self, rig, fmt: str = "toml"):
        root = makeRoot(self.mktemp())
        ours = await self.answers(rig, root, fmt)
        go = await self.answers(GO_BEHIND_GO, root)
        for mine, reference in zip(ours, go):
            self.assertEqual(mine, reference)

    def test_our_frpc_behind_go_frps_answers_as_go(self):
        return self.compareWithGo(OURS_BEHIND_GO)

    def test_go_frpc_behind_our_frps_answers_as_go(self):
        return self.compareWithGo(GO_BEHIND_OURS)

    def test_ini_plugin_keys(self):
        return self.compareWithGo(OURS_BEHIND_GO, fmt="ini")
