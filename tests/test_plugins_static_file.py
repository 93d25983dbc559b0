"""static_file on its own (each loopback connection handed to the plugin as frpc hands it a work
connection): frp 0.65's answers (checked against the Go binaries, see test_plugins_web_interop),
traversal refusals, Range, gzip, Basic auth on the injected clock, a large file streamed to a
paused reader with bounded memory."""

import gzip
import hashlib
import os

from twisted.internet import reactor, task
from twisted.trial.unittest import TestCase

from frptw.client.plugins import PluginContext
from frptw.client.plugins.static_file import (
    RangeRefused,
    build,
    clean_path,
    content_type,
    escape_path,
    go_ranges,
    listing,
)
from frptw.config.plugins import StaticFilePluginOptions
from tests.plugintraffic import exchangeOnce, talk
from tests.support import LogCapture, until
from tests.webplugins import parseResponse, parseResponses, servePlugin

CLOSE = b"Connection: close\r\n"


def makeTree(base: str) -> str:
    """root/ with a.txt, sub/index.html, dir2/ (odd names), and links in and out of root."""
    base = os.path.abspath(base)
    root = os.path.join(base, "root")
    os.makedirs(os.path.join(root, "sub"))
    os.makedirs(os.path.join(root, "dir2"))
    os.makedirs(os.path.join(root, "empty"))
    with open(os.path.join(root, "a.txt"), "wb") as f:
        f.write(b"hello\n")
    with open(os.path.join(root, "sub", "index.html"), "wb") as f:
        f.write(b"idx\n")
    with open(os.path.join(root, "dir2", "we ird&<.txt"), "wb") as f:
        f.write(b"1\n")
    with open(os.path.join(base, "secret.txt"), "wb") as f:
        f.write(b"SECRET\n")
    os.symlink(os.path.join(base, "secret.txt"), os.path.join(root, "out.txt"))
    os.symlink(base, os.path.join(root, "outdir"))
    os.symlink(os.path.join(root, "a.txt"), os.path.join(root, "in.txt"))
    return root


class PureRulesTests(TestCase):
    def test_clean_path_as_mux(self):
        self.assertEqual(clean_path(""), "/")
        self.assertEqual(clean_path("/a/../b/"), "/b/")
        self.assertEqual(clean_path("//x//y"), "/x/y")
        self.assertEqual(clean_path("/../../etc/passwd"), "/etc/passwd")
        self.assertEqual(clean_path("/a/./b"), "/a/b")
        self.assertEqual(clean_path("/"), "/")

    def test_escape_path_as_go_url(self):
        self.assertEqual(escape_path("we ird&<.txt"), "we%20ird&%3C.txt")
        self.assertEqual(escape_path("a:b"), "./a:b")
        self.assertEqual(escape_path("/x y/"), "/x%20y/")

    def test_listing_bytes_as_go(self):
        # Go 1.2x http.FileServer for a directory holding these two entries (seen from frpc 0.65).
        self.assertEqual(listing(["we ird&<.txt", "b/"]),
                         b'<!doctype html>\n<meta name="viewport" content="width=device-width">\n<pre>\n'
                         b'<a href="b/">b/</a>\n<a href="we%20ird&%3C.txt">we ird&amp;&lt;.txt</a>\n</pre>\n')

    def test_ranges_as_go(self):
        self.assertEqual(go_ranges("bytes=1-2", 6), [(1, 2)])
        self.assertEqual(go_ranges("bytes=-2", 6), [(4, 2)])
        self.assertEqual(go_ranges("bytes=4-", 6), [(4, 2)])
        self.assertEqual(go_ranges("bytes=4-100", 6), [(4, 2)])
        self.assertEqual(go_ranges("bytes=0-0, 10-20", 6), [(0, 1)])
        for bad in ("items=1-2", "bytes=x-1", "bytes=3-1", "bytes=5", "bytes=--1"):
            with self.assertRaises(RangeRefused) as caught:
                go_ranges(bad, 6)
            self.assertEqual((str(caught.exception), caught.exception.overlap), ("invalid range", False), bad)
        with self.assertRaises(RangeRefused) as caught:
            go_ranges("bytes=10-20", 6)
        self.assertEqual((str(caught.exception), caught.exception.overlap), ("invalid range: failed to overlap", True))

    def test_content_types(self):
        self.assertEqual(content_type("/x/a.txt", b""), "text/plain; charset=utf-8")
        self.assertEqual(content_type("/x/a.html", b""), "text/html; charset=utf-8")
        self.assertEqual(content_type("/x/a.png", b""), "image/png")
        self.assertEqual(content_type("/x/noext", b"\x00\x01binary"), "application/octet-stream")
        self.assertEqual(content_type("/x/noext", b"just text"), "text/plain; charset=utf-8")
        self.assertEqual(content_type("/x/noext", b"<!DOCTYPE html><p>"), "text/html; charset=utf-8")


class StaticFileTests(TestCase):
    timeout = 30

    async def serve(self, prefix: str = "", user: str = "", password: str = "", clock=None) -> int:
        self.root = makeTree(self.mktemp())
        options = StaticFilePluginOptions(local_path=self.root, strip_prefix=prefix, http_user=user,
                                          http_password=password)
        self.plugin = build(options, PluginContext("sf", clock or reactor))
        port, _ = await servePlugin(self, self.plugin)
        return port

    async def get(self, port: int, path: bytes, headers: bytes = b"", method: bytes = b"GET"):
        raw = await exchangeOnce(self, port, method + b" " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers + CLOSE
                                 + b"\r\n")
        return parseResponse(raw, method)

    async def test_file(self):
        port = await self.serve()
        r = await self.get(port, b"/a.txt")
        self.assertEqual((r.status, r.body), (200, b"hello\n"))
        self.assertEqual(r.headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(r.headers["accept-ranges"], "bytes")
        self.assertEqual(r.headers["content-length"], "6")
        self.assertIn("last-modified", r.headers)
        self.assertNotIn("server", r.headers)

    async def test_listing_and_index(self):
        port = await self.serve()
        r = await self.get(port, b"/dir2/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(r.body, listing(["we ird&<.txt"]))
        self.assertEqual((await self.get(port, b"/sub/")).body, b"idx\n")
        r = await self.get(port, b"/")
        self.assertIn(b'<a href="a.txt">a.txt</a>\n<a href="dir2/">dir2/</a>\n<a href="empty/">empty/</a>\n', r.body)

    async def test_go_redirects(self):
        port = await self.serve()
        for path, location in [(b"/sub", "sub/"), (b"/a.txt/", "../a.txt"), (b"/sub/index.html", "./"),
                               (b"/sub?x=1", "sub/?x=1")]:
            r = await self.get(port, path)
            self.assertEqual((r.status, r.headers.get("location")), (301, location), path)

    async def test_not_found_and_methods(self):
        port = await self.serve()
        r = await self.get(port, b"/nope")
        self.assertEqual((r.status, r.body), (404, b"404 page not found\n"))
        self.assertEqual(r.headers["x-content-type-options"], "nosniff")
        for method in (b"HEAD", b"POST", b"PUT"):
            self.assertEqual((await self.get(port, b"/a.txt", method=method)).status, 405, method)
        # A path Go cannot parse: 400 and the connection closed, even if the client keeps it.
        raw = await exchangeOnce(self, port, b"GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((parseResponse(raw).status, parseResponse(raw).body), (400, b"400 Bad Request"))

    async def test_traversal_is_impossible(self):
        port = await self.serve(prefix="static")
        for path in (b"/../secret.txt", b"/static/../../secret.txt", b"/static/%2e%2e/%2e%2e/secret.txt",
                     b"/static/%2E%2E%2Fsecret.txt", b"/static/..%2f..%2fsecret.txt", b"//static//..//secret.txt"):
            r = await self.get(port, path)
            self.assertEqual(r.status, 301, path)
            self.assertNotIn(b"SECRET", r.body)
            self.assertNotIn("..", r.headers["location"])
        # Symbolic links: followed while they stay inside localPath, 404 when they leave it.
        self.assertEqual((await self.get(port, b"/static/in.txt")).body, b"hello\n")
        for path in (b"/static/out.txt", b"/static/outdir/", b"/static/outdir/secret.txt"):
            r = await self.get(port, path)
            self.assertEqual(r.status, 404, path)
            self.assertNotIn(b"SECRET", r.body)

    async def test_prefix_and_auth(self):
        clock = task.Clock()
        port = await self.serve(prefix="static", user="u", password="p", clock=clock)
        # Outside the prefix: 404 without asking for credentials, whatever the method.
        self.assertEqual((await self.get(port, b"/a.txt")).status, 404)
        self.assertEqual((await self.get(port, b"/static")).status, 404)
        self.assertEqual((await self.get(port, b"/x", method=b"POST")).status, 404)
        self.assertEqual((await self.get(port, b"/static/a.txt", method=b"POST")).status, 405)
        ok = await self.get(port, b"/static/a.txt", b"Authorization: Basic dTpw\r\n")
        self.assertEqual((ok.status, ok.body), (200, b"hello\n"))
        # A refused credential is answered after frp's 200 ms, on the injected clock.
        proto = await talk(self, port, b"GET /static/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dTpx\r\n"
                           + CLOSE + b"\r\n")
        await until(lambda: any(call.getTime() == 0.2 for call in clock.getDelayedCalls()), "the delayed 401")
        self.assertEqual(proto.received, b"")
        clock.advance(0.2)
        await until(lambda: proto.closed.called, "the 401")
        r = parseResponse(proto.received)
        self.assertEqual((r.status, r.body), (401, b"Unauthorized\n"))
        self.assertEqual(r.headers["www-authenticate"], 'Basic realm="Restricted"')

    async def test_range(self):
        port = await self.serve()
        r = await self.get(port, b"/a.txt", b"Range: bytes=1-2\r\n")
        self.assertEqual((r.status, r.body, r.headers["content-range"]), (206, b"el", "bytes 1-2/6"))
        r = await self.get(port, b"/a.txt", b"Range: bytes=10-20\r\n")
        self.assertEqual((r.status, r.headers["content-range"], r.body), (416, "bytes */6",
                                                                          b"invalid range: failed to overlap\n"))
        r = await self.get(port, b"/a.txt", b"Range: bytes=0-3,2-5\r\n")  # more than the file: all of it
        self.assertEqual((r.status, r.body), (200, b"hello\n"))
        r = await self.get(port, b"/a.txt", b"Range: bytes=0-0,4-5\r\n")
        self.assertEqual(r.status, 206)
        self.assertTrue(r.headers["content-type"].startswith("multipart/byteranges"))
        self.assertIn(b"\r\n\r\nh\r\n", r.body)
        self.assertIn(b"\r\n\r\no\n\r\n", r.body)

    async def test_gzip_when_accepted(self):
        port = await self.serve()
        r = await self.get(port, b"/a.txt", b"Accept-Encoding: gzip\r\n")
        self.assertEqual(r.headers["content-encoding"], "gzip")
        self.assertEqual(gzip.decompress(r.body), b"hello\n")

    async def test_keep_alive_and_pipelining(self):
        port = await self.serve()
        proto = await talk(self, port, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: len(parseResponses(proto.received, closed=False)) == 2, "two responses on one connection")
        self.assertEqual([r.body for r in parseResponses(proto.received, closed=False)], [b"hello\n", b"idx\n"])
        self.assertFalse(proto.closed.called)

    async def badInput(self, data: bytes, answer: bytes, reason: str) -> None:
        """``data`` on its own connection: ``answer``, closed, one log line; a keep-alive
        connection opened before and a new one still work."""
        port = await self.serve()
        logs = LogCapture(self)
        keeper = await talk(self, port, b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: parseResponses(keeper.received, closed=False), "the first response")
        since = logs.mark()
        raw = await exchangeOnce(self, port, data)
        self.assertTrue(raw.startswith(answer), raw[:60])
        lines = logs.reported(since, ("frptw",))
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("closing http connection from 127.0.0.1:", lines[0])
        self.assertIn(reason, lines[0])
        self.assertEqual(logs.failures(), [])
        keeper.transport.write(b"GET /sub/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await until(lambda: len(parseResponses(keeper.received, closed=False)) == 2, "the keep-alive response")
        self.assertEqual((await self.get(port, b"/a.txt")).body, b"hello\n")

    def test_oversized_head_closes_that_connection_only(self):
        return self.badInput(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                             b"HTTP/1.1 431 Request Header Fields Too Large\r\n", "request head too large")

    def test_too_many_header_bytes(self):
        return self.badInput(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n" + b"X-Many: yyyyyyyyyyyyyyyyyyyy\r\n" * 4000
                             + b"\r\n", b"HTTP/1.1 400 Bad Request\r\n", "bad request")

    def test_garbage_request_line(self):
        return self.badInput(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n", b"HTTP/1.1 400 Bad Request\r\n",
                             "bad request")

    async def test_large_file_streams_with_bounded_memory(self):
        """64 MiB to a client that stops reading: frpc's side stops reading the file once the
        socket buffers are full (its write buffer stays small), then the rest arrives intact."""
        port = await self.serve()
        size = 64 * 1024 * 1024
        block = os.urandom(1024 * 1024)
        digest = hashlib.sha256()
        with open(os.path.join(self.root, "big.bin"), "wb") as f:
            for _ in range(size // len(block)):
                f.write(block)
                digest.update(block)
        port, factory = await servePlugin(self, self.plugin)
        chunks = []
        received = [0]
        proto = await talk(self, port, b"GET /big.bin HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n")
        proto.dataReceived = lambda data: (chunks.append(data), received.__setitem__(0, received[0] + len(data)))
        await until(lambda: received[0] > 0, "the first bytes")
        proto.transport.pauseProducing()
        server = factory.accepted[0].transport
        await until(lambda: server.producerPaused, "the file producer to be paused")
        buffered = len(server.dataBuffer) + server._tempDataLen
        self.assertLess(buffered, 1024 * 1024)
        self.assertLess(received[0], size // 4)
        proto.transport.resumeProducing()
        await until(lambda: proto.closed.called, "the whole file", timeout=60)
        r = parseResponse(b"".join(chunks))
        self.assertEqual(len(r.body), size)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), digest.hexdigest())
