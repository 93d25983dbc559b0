"""``http_proxy`` between real programs: the same requests through our frpc (behind the Go
frps), the Go frpc behind our frps, and the Go pair; frp's answers compared byte for byte on
the CONNECT path and by status, headers and body on the forwarding path."""

import base64

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, HTTPBackend, PluginRigMixin, talk
from tests.support import LogCapture, free_port, until
from tests.traffic import EchoServer

GOOD = b"Proxy-Authorization: Basic " + base64.b64encode(b"alice:s3cret") + b"\r\n"
WRONG = b"Proxy-Authorization: Basic " + base64.b64encode(b"alice:nope") + b"\r\n"


def proxies(remote: int, extra: str = "") -> str:
    return f"""
[[proxies]]
name = "hp"
type = "tcp"
remotePort = {remote}
{extra}
[proxies.plugin]
type = "http_proxy"
httpUser = "alice"
httpPassword = "s3cret"
"""


def status(response: bytes) -> bytes:
    return response.split(b"\r\n", 1)[0]


def headerNames(response: bytes) -> set:
    head = response.split(b"\r\n\r\n", 1)[0]
    return {line.split(b":", 1)[0].lower() for line in head.split(b"\r\n")[1:]}


class HTTPProxyInteropTests(PluginRigMixin, TestCase):
    timeout = 120

    async def conversations(self, rig) -> dict:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        backend = HTTPBackend()
        port = reactor.listenTCP(0, backend, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        web = port.getHost().port
        closed = free_port()
        remote = free_port()
        await self.rig(rig, proxies(remote, "transport.useEncryption = true"), ["hp"])
        results = {}
        untilClosed = {
            "connect without auth": b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % echo.port,
            "connect wrong auth": b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n%s\r\n" % (echo.port, WRONG),
            "connect refused": b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n%s\r\n" % (closed, GOOD),
            "connect unknown host": b"CONNECT no-such-host.invalid:80 HTTP/1.1\r\n%s\r\n" % GOOD,
            "connect no port": b"CONNECT 127.0.0.1 HTTP/1.1\r\n%s\r\n" % GOOD,
            "connect garbage head": b"CONNECT \x00\x01\x02\r\n\r\n",
            # Go's parser takes the authority form only for "CONNECT" (frp's sniffing ignores case).
            "lower-case connect": b"connect 127.0.0.1:%d HTTP/1.1\r\n%s\r\nping" % (echo.port, GOOD),
        }
        for name, data in untilClosed.items():
            user = await talk(self, remote, data)
            await until(lambda: user.closed.called, f"the end of {name}")
            results[name] = user.received
        user = await talk(self, remote, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n%s\r\nping" % (echo.port, GOOD))
        results["connect"] = await user.waitFor(23, "the tunnel's echo")
        user.transport.loseConnection()
        # A CONNECT after another request on the same connection: frp's HTTP server tunnels it.
        user = await talk(self, remote, b"GET http://127.0.0.1:%d/x?y=1 HTTP/1.1\r\nHost: a\r\n%s\r\n" % (web, GOOD))
        await until(lambda: user.received.endswith(b"/x?y=1"), "the first response")
        user.received = b""
        user.transport.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: a\r\n%s\r\n" % (echo.port, GOOD))
        await user.waitFor(19, "the CONNECT answer")
        user.transport.write(b"pong")
        results["connect after a request"] = await user.waitFor(23, "the second tunnel's echo")
        user.transport.loseConnection()
        # The forwarding path: status, the headers that matter, the body.
        requests = {
            "get without auth": b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: a\r\n\r\n" % web,
            "get wrong auth": b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: a\r\n%s\r\n" % (web, WRONG),
            # frp answers 407 (after 200 ms for wrong credentials) before it honours the close.
            "get without auth, closing": b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                         b"\r\n" % web,
            "get wrong auth, closing": b"GET http://127.0.0.1:%d/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                                       b"%s\r\n" % (web, WRONG),
            "get": b"GET http://127.0.0.1:%d/x?y=1 HTTP/1.1\r\nHost: a\r\nX-Mine: 1\r\nProxy-Connection: keep-alive"
                   b"\r\n%s\r\n" % (web, GOOD),
            "post": b"POST http://127.0.0.1:%d/up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n%s\r\nhello" % (web, GOOD),
            "chunked post": b"POST http://127.0.0.1:%d/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n%s\r\n"
                            b"3\r\nabc\r\n0\r\n\r\n" % (web, GOOD),
            "origin form": b"GET /x HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n" % (web, GOOD),
            "refused": b"GET http://127.0.0.1:%d/ HTTP/1.1\r\nHost: a\r\n%s\r\n" % (closed, GOOD),
        }
        for name, data in requests.items():
            user = await talk(self, remote, data)
            await user.waitFor(1, name)
            await until(lambda: b"\r\n\r\n" in user.received and (
                not user.received.startswith(b"HTTP/1.1 201") or user.received.endswith(b"bytes to /x?y=1")
                or b"bytes to /up" in user.received or b"bytes to /c" in user.received), f"all of {name}")
            response = user.received
            body = response.split(b"\r\n\r\n", 1)[1]
            results[name] = (status(response), headerNames(response) & {b"proxy-authenticate", b"x-backend", b"date"},
                             body if not body.startswith(b"dial tcp") else body.split(b": ", 1)[1])
            user.transport.loseConnection()
        seen = {request.target: request.headers.raw_items() for request, _ in backend.requests}
        results["backend saw"] = {target: sorted(name.lower() for name, _ in headers if name.lower() != b"accept-encoding")
                                  for target, headers in seen.items()}
        results["backend bodies"] = sorted(body for _, body in backend.requests)
        return results

    async def test_same_answers_as_go_frpc(self):
        go = await self.conversations(GO_BEHIND_GO)
        ours = await self.conversations(OURS_BEHIND_GO)
        self.assertEqual(ours, go)

    async def test_go_frpc_behind_our_frps(self):
        results = await self.conversations(GO_BEHIND_OURS)
        self.assertEqual(results["connect"], b"HTTP/1.1 200 OK\r\n\r\nping")

    async def test_bad_input_one_line_each_others_unaffected(self):
        logs = LogCapture(self)
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        ini = (f"[hp]\ntype = tcp\nremote_port = {remote}\nplugin = http_proxy\nplugin_http_user = alice\n"
               "plugin_http_passwd = s3cret\n")
        await self.rig(OURS_BEHIND_GO, ini, ["hp"], fmt="ini")
        keeper = await talk(self, remote, b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n%s\r\none" % (echo.port, GOOD))
        await keeper.waitFor(22, "the keeper's tunnel")
        bad = {
            "oversized head": (b"GET http://127.0.0.1/ HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
                               b"HTTP/1.1 4"),  # 64 KiB heads at most (Go allows 1 MiB)
            "tls junk": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(100) + b"\r\n\r\n", b"HTTP/1.1 400 Bad Request"),
            "oversized CONNECT head": (b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nX-Big: " + b"a" * 70000, b""),
            "unknown CONNECT host": (b"CONNECT no-such-host.invalid:80 HTTP/1.1\r\n%s\r\n" % GOOD,
                                     b"HTTP/1.1 400 Bad Request"),
        }
        for name, (data, answer) in bad.items():
            mark = logs.mark()
            user = await talk(self, remote, data)
            await until(lambda: user.closed.called, f"frpc to close after {name}")
            self.assertTrue(user.received.startswith(answer), (name, user.received[:80]))
            lines = [line for line in logs.texts(since=mark) if "http" in line]
            self.assertEqual(len(lines), 1, (name, lines))
            count = len(keeper.received)
            keeper.transport.write(b"+")
            await keeper.waitFor(count + 1, "the keeper's echo")
        self.assertEqual(keeper.received, b"HTTP/1.1 200 OK\r\n\r\none++++")
        self.assertIn("[hp] http_proxy: connect to no-such-host.invalid:80 error:", lines[0])
