"""http2http, http2https, https2http, https2https on their own (each loopback connection handed to
the plugin as frpc hands it a work connection): the head the backend sees, keep-alive, streamed
bodies, websocket upgrades, 502, 421, bad input."""

import hashlib
import os

from twisted.internet import reactor, task
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from frptw.client.plugins import PluginContext
from frptw.client.plugins.reverse_proxy import (
    PLAIN_HTTP_ANSWER,
    Forwarding,
    build,
    canonical_host,
    origin_target,
    rewrite_plugin_request,
    split_local_addr,
)
from frptw.config.model_common import HeaderOperations
from frptw.config.plugins import PLUGIN_TYPES
from frptw.transport.http_front import HEADER_TIMEOUT
from tests.pki import TestCA
from tests.plugintraffic import exchangeOnce, talk
from tests.support import LogCapture, free_port, until
from tests.webplugins import (
    RecordingBackend,
    UpgradeBackend,
    listenBackend,
    parseResponse,
    parseResponses,
    servePlugin,
    tlsTalk,
)

HEAD = [(b"Host", b"orig.test:8080"), (b"X-Forwarded-For", b"1.2.3.4"), (b"X-Forwarded-Host", b"fh"),
        (b"X-Forwarded-Proto", b"fp"), (b"Forwarded", b"for=x"), (b"User-Agent", b"ua"),
        (b"Connection", b"keep-alive, X-Hop"), (b"X-Hop", b"h"), (b"Te", b"trailers"), (b"Proxy-Authorization", b"x"),
        (b"x-custom", b"c")]


class RewriteTests(TestCase):
    """The heads Go frpc 0.65's plugins wrote for HEAD (captured from the binaries)."""

    def test_http2http_forwards_nothing(self):
        out = rewrite_plugin_request(HEAD, Forwarding.NONE, b"orig.test:8080", "127.0.0.1", "rewritten.test",
                                     {"x-from-frp": "yes"}, False)
        self.assertEqual(out, [(b"Host", b"rewritten.test"), (b"User-Agent", b"ua"), (b"X-Custom", b"c"),
                               (b"Te", b"trailers"), (b"X-From-Frp", b"yes")])

    def test_http2https_keeps_the_clients_headers(self):
        out = dict(rewrite_plugin_request(HEAD, Forwarding.KEEP, b"orig.test:8080", "127.0.0.1", "", {}, False))
        self.assertEqual((out[b"Host"], out[b"X-Forwarded-For"], out[b"X-Forwarded-Host"], out[b"X-Forwarded-Proto"]),
                         (b"orig.test:8080", b"1.2.3.4", b"fh", b"fp"))
        self.assertNotIn(b"Forwarded", out)

    def test_https_plugins_append(self):
        out = dict(rewrite_plugin_request(HEAD, Forwarding.APPEND, b"orig.test:8080", "10.0.0.9", "back.test", {},
                                          False))
        self.assertEqual((out[b"Host"], out[b"X-Forwarded-For"], out[b"X-Forwarded-Host"], out[b"X-Forwarded-Proto"]),
                         (b"back.test", b"1.2.3.4, 10.0.0.9", b"orig.test:8080", b"https"))

    def test_set_headers_win_and_host_is_not_set(self):
        out = rewrite_plugin_request([(b"Host", b"h")], Forwarding.APPEND, b"h", "10.0.0.9", "",
                                     {"X-Forwarded-For": "mine", "host": "ignored"}, False)
        self.assertEqual(out, [(b"Host", b"h"), (b"X-Forwarded-Host", b"h"), (b"X-Forwarded-Proto", b"https"),
                               (b"X-Forwarded-For", b"mine")])

    def test_upgrade_and_chunked_framing_put_back(self):
        out = rewrite_plugin_request([(b"Host", b"h"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"),
                                      (b"Transfer-Encoding", b"chunked")], Forwarding.NONE, b"h", "", "", {}, True)
        self.assertEqual(out, [(b"Host", b"h"), (b"Connection", b"Upgrade"), (b"Upgrade", b"websocket"),
                               (b"Transfer-Encoding", b"chunked")])

    def test_small_rules(self):
        self.assertEqual(origin_target(b"http://a.test:1/p?q=1"), b"/p?q=1")
        self.assertEqual(origin_target(b"http://a.test?q=1"), b"/?q=1")
        self.assertEqual(origin_target(b"/x"), b"/x")
        self.assertEqual(canonical_host(b"ORIG.test:443"), b"orig.test")
        self.assertEqual(canonical_host(b"[::1]:80"), b"[::1]")
        self.assertEqual(split_local_addr("127.0.0.1:81", 80), ("127.0.0.1", 81))
        self.assertEqual(split_local_addr("[::1]:82", 80), ("::1", 82))
        self.assertEqual(split_local_addr("backend.test", 443), ("backend.test", 443))
        with self.assertRaises(ValueError):
            split_local_addr("", 80)


def pluginOptions(kind: str, localAddr: str, **extra):
    options = PLUGIN_TYPES[kind](local_addr=localAddr, **extra)
    return options


class _Deaf(Protocol):
    """A backend that accepts and never reads."""

    def connectionMade(self) -> None:
        self.transport.pauseProducing()


class _Base(TestCase):
    timeout = 60

    async def backend(self, tls: bool = False, factory=None):
        factory = factory or RecordingBackend()
        return factory, await listenBackend(self, factory, tls)

    async def plugin(self, kind: str, localAddr: str, clock=reactor, **extra) -> int:
        plugin = build(pluginOptions(kind, localAddr, **extra), PluginContext("web", clock))
        self.addCleanup(plugin.close)
        port, self.accepted = await servePlugin(self, plugin)
        return port

    def tlsTalk(self, port: int, send: bytes):
        return tlsTalk(self, port, send)


class HTTPPluginTests(_Base):
    async def test_http2http_head_keepalive_and_reuse(self):
        backend, addr = await self.backend()
        port = await self.plugin("http2http", addr, host_header_rewrite="rewritten.test",
                                 request_headers=HeaderOperations(set={"x-from-frp": "yes"}))
        proto = await talk(self, port, b"GET /a?q=1 HTTP/1.1\r\nHost: orig.test\r\nX-Forwarded-For: 9.9.9.9\r\n\r\n")
        await until(lambda: len(parseResponses(proto.received, closed=False)) == 1, "the first response")
        proto.transport.write(b"GET http://orig.test/b HTTP/1.1\r\nHost: orig.test\r\n\r\n")
        await until(lambda: len(parseResponses(proto.received, closed=False)) == 2, "the second response")
        first, second = parseResponses(proto.received, closed=False)
        self.assertEqual((first.status, first.body, first.headers["x-backend"]), (200, b"GET /a?q=1\n", "yes"))
        self.assertEqual(second.body, b"GET /b\n")
        seen = backend.headersSeen(0)
        self.assertEqual((seen["host"], seen["x-from-frp"]), ("rewritten.test", "yes"))
        self.assertNotIn("x-forwarded-for", seen)
        self.assertEqual(backend.connections, 1, "the backend connection is kept alive and reused")

    async def test_streamed_bodies_both_ways(self):
        """8 MiB up (chunked) and 8 MiB down through one exchange, intact."""
        payload = os.urandom(8 * 1024 * 1024)
        backend, addr = await self.backend(factory=RecordingBackend(lambda request, body: (200, [], body)))
        port = await self.plugin("http2http", addr)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(payload[i:i + 65536]), payload[i:i + 65536])
                          for i in range(0, len(payload), 65536))
        raw = await exchangeOnce(self, port, b"POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                                 b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n", timeout=60)
        response = parseResponse(raw)
        self.assertEqual(hashlib.sha256(response.body).digest(), hashlib.sha256(payload).digest())
        self.assertEqual(backend.headersSeen(0)["transfer-encoding"], "chunked")

    async def test_websocket_upgrade_passes_through(self):
        backend, addr = await self.backend(factory=UpgradeBackend())
        port = await self.plugin("http2http", addr)
        proto = await talk(self, port, b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                           b"\r\n")
        await until(lambda: b"\r\n\r\n" in proto.received, "the 101")
        self.assertTrue(proto.received.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), proto.received)
        head, _, rest = proto.received.partition(b"\r\n\r\n")
        proto.received = rest
        proto.transport.write(b"\x81\x05hello raw bytes")
        await until(lambda: proto.received.endswith(b"\x81\x05hello raw bytes"), "the echo through the tunnel")
        self.assertEqual(backend.upgradeHeads[0][b"upgrade"], b"websocket")

    async def test_backend_down_is_502(self):
        logs = LogCapture(self)
        port = await self.plugin("http2http", f"127.0.0.1:{free_port()}")
        raw = await exchangeOnce(self, port, b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        response = parseResponse(raw)
        self.assertEqual((response.status, response.body, response.headers.get("content-length")), (502, b"", "0"))
        self.assertIn("date", response.headers)  # Go's server dates its answers
        [line] = logs.reported(0, ("frptw",))
        self.assertIn("[web] http: proxy error: ", line)
        self.assertIn("refused", line)

    async def test_large_response_to_a_paused_reader_bounded(self):
        """32 MiB from the backend to a client that stops reading: the plugin's write buffer
        towards the client fills, the backend connection is paused, memory stays bounded; the
        whole body arrives once the client reads again."""
        body = os.urandom(32 * 1024 * 1024)
        backend, addr = await self.backend(factory=RecordingBackend(lambda request, _: (200, [], body)))
        port = await self.plugin("http2http", addr)
        chunks = []
        proto = await talk(self, port, b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        proto.dataReceived = chunks.append
        await until(lambda: chunks, "the first bytes")
        proto.transport.pauseProducing()
        front = self.accepted.accepted[0].transport
        await until(lambda: front.producerPaused, "the backend connection to be paused")
        self.assertLess(len(front.dataBuffer) + front._tempDataLen, 1024 * 1024)
        self.assertLess(sum(map(len, chunks)), len(body) // 2)
        proto.transport.resumeProducing()
        await until(lambda: proto.closed.called, "the whole body", timeout=60)
        self.assertEqual(hashlib.sha256(parseResponse(b"".join(chunks)).body).digest(), hashlib.sha256(body).digest())

    async def test_large_upload_to_a_backend_that_does_not_read_bounded(self):
        """32 MiB uploaded to a backend that reads nothing: the plugin's buffer towards the
        backend stays small and it stops reading the client (TCP pushes back to the sender)."""
        backend, addr = await self.backend(factory=Factory.forProtocol(_Deaf))
        port = await self.plugin("http2http", addr)
        proto = await talk(self, port, b"POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (32 << 20))
        proto.transport.write(b"x" * (32 << 20))
        front = self.accepted.accepted[0].switchedTo
        await until(lambda: front.exchange is not None and front.exchange.backend is not None, "the exchange")
        toBackend = front.exchange.backend.transport
        await until(lambda: toBackend.producerPaused, "the client connection to be paused")
        self.assertLess(len(toBackend.dataBuffer) + toBackend._tempDataLen, 1024 * 1024)
        self.assertNotIn(front.transport, reactor.getReaders())

    async def test_http2https_reaches_a_tls_backend(self):
        backend, addr = await self.backend(tls=True)
        port = await self.plugin("http2https", addr)
        raw = await exchangeOnce(self, port, b"GET /s HTTP/1.1\r\nHost: orig.test\r\nX-Forwarded-For: 1.2.3.4\r\n"
                                 b"Connection: close\r\n\r\n")
        self.assertEqual(parseResponse(raw).body, b"GET /s\n")
        self.assertEqual(backend.headersSeen(0)["x-forwarded-for"], "1.2.3.4")

    async def test_oversized_head_one_line_that_connection_only(self):
        backend, addr = await self.backend()
        port = await self.plugin("http2http", addr)
        logs = LogCapture(self)
        raw = await exchangeOnce(self, port, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 431 "), raw[:40])
        lines = logs.reported(0, ("frptw",))
        self.assertEqual(len(lines), 1, lines)
        ok = await exchangeOnce(self, port, b"GET /ok HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        self.assertEqual(parseResponse(ok).body, b"GET /ok\n")


class HTTPSPluginTests(_Base):
    async def test_https2http_forwarded_headers(self):
        backend, addr = await self.backend()
        port = await self.plugin("https2http", addr)
        proto = await self.tlsTalk(port, b"GET /p HTTP/1.1\r\nHost: orig.test:8443\r\nX-Forwarded-For: 1.2.3.4\r\n"
                                   b"Connection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the response")
        self.assertEqual(parseResponse(proto.received).body, b"GET /p\n")
        seen = backend.headersSeen(0)
        self.assertEqual((seen["host"], seen["x-forwarded-for"], seen["x-forwarded-host"], seen["x-forwarded-proto"]),
                         ("orig.test:8443", "1.2.3.4, 127.0.0.1", "orig.test:8443", "https"))

    async def test_https2https_and_misdirected_request(self):
        backend, addr = await self.backend(tls=True)
        port = await self.plugin("https2https", addr, host_header_rewrite="back.test")
        proto = await self.tlsTalk(port, b"GET /p HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the 421")
        response = parseResponse(proto.received)
        self.assertEqual((response.status, response.body), (421, b""))
        self.assertEqual(backend.requests, [])
        proto = await self.tlsTalk(port, b"GET /p HTTP/1.1\r\nHost: ORIG.test:443\r\nConnection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the response")
        self.assertEqual(parseResponse(proto.received).status, 200)
        self.assertEqual(backend.headersSeen(0)["host"], "back.test")

    async def badStart(self, data: bytes) -> bytes:
        """``data`` instead of a TLS handshake: one log line, that connection closed, a TLS
        client served afterwards; returns what the bad client got."""
        backend, addr = await self.backend()
        port = await self.plugin("https2http", addr)
        logs = LogCapture(self)
        raw = await exchangeOnce(self, port, data)
        await until(lambda: logs.reported(0, ("frptw",)), "the log line")
        lines = logs.reported(0, ("frptw",))
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("[web] http: TLS handshake error from 127.0.0.1:", lines[0])
        self.assertEqual(logs.failures(), [])
        proto = await self.tlsTalk(port, b"GET /ok HTTP/1.1\r\nHost: orig.test\r\nConnection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the response")
        self.assertEqual(parseResponse(proto.received).body, b"GET /ok\n")
        self.assertEqual(len(backend.requests), 1)
        return raw

    async def test_tls_junk_one_line_that_connection_only(self):
        raw = await self.badStart(b"\x16\x03\x01\x00\x05junk!" + b"\x00" * 300)
        self.assertNotIn(b"HTTP/1.", raw)

    async def test_plain_http_answered_as_go(self):
        raw = await self.badStart(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(raw, PLAIN_HTTP_ANSWER)

    async def test_silent_client_is_dropped_after_the_header_timeout(self):
        """A client that sends nothing (not even a handshake) is closed after 60 s on the
        injected clock, with one log line."""
        clock = task.Clock()
        backend, addr = await self.backend()
        port = await self.plugin("https2http", addr, clock=clock)
        logs = LogCapture(self)
        proto = await talk(self, port, b"\x16\x03")
        await until(lambda: clock.getDelayedCalls(), "the handshake deadline")
        clock.advance(HEADER_TIMEOUT - 1)
        self.assertFalse(proto.closed.called)
        clock.advance(1)
        await until(lambda: proto.closed.called, "the silent client to be closed")
        [line] = logs.reported(0, ("frptw",))
        self.assertIn("[web] http: TLS handshake error from 127.0.0.1:", line)
        self.assertIn("no handshake within 60", line)

    async def test_crt_without_key_means_a_generated_certificate(self):
        backend, addr = await self.backend()
        port = await self.plugin("https2http", addr, crt_path="/nonexistent.crt")
        proto = await self.tlsTalk(port, b"GET /g HTTP/1.1\r\nHost: orig.test\r\nConnection: close\r\n\r\n")
        await until(lambda: proto.closed.called, "the response")
        self.assertEqual(parseResponse(proto.received).body, b"GET /g\n")

    async def test_given_certificate_is_presented(self):
        backend, addr = await self.backend()
        base = self.mktemp()
        os.makedirs(base)
        crt, key = TestCA(base).issueFiles("orig.test", dnsNames=["orig.test"])
        port = await self.plugin("https2http", addr, crt_path=crt, key_path=key)
        proto = await self.tlsTalk(port, b"GET /c HTTP/1.1\r\nHost: orig.test\r\n\r\n")
        await until(lambda: parseResponses(proto.received, closed=False), "the response")
        self.assertEqual(parseResponses(proto.received, closed=False)[0].body, b"GET /c\n")
        self.assertEqual(proto.transport.getPeerCertificate().get_subject().CN, "orig.test")
