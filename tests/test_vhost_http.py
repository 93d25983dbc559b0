"""The HTTP vhost state machine over StringTransports with a fake control and task.Clock."""


from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ProxyError
from frptw.server.vhost.http import HTTPVhost
from frptw.server.vhost.http_proxy import HTTPProxy
from frptw.server.vhost.http_rewrite import route_key
from frptw.server.vhost.routes import NOT_FOUND_PAGE
from frptw.transport.http_front import HEADER_TIMEOUT
from frptw.transport.http_headers import canonical_key, parse_basic_auth
from frptw.transport.http_pool import IDLE_TIMEOUT, MAX_IDLE
from frptw.wire.messages import MessageReader, NewProxy, StartWorkConn
from tests.fakes import FakeControl, backendBytes


class VhostTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.vhost = HTTPVhost(self.clock, 8080, "example.com", responseTimeout=60)
        self.control = FakeControl(self.clock)

    def addProxy(self, **fields) -> HTTPProxy:
        fields.setdefault("proxy_name", "web")
        fields.setdefault("proxy_type", "http")
        return HTTPProxy(self.control, NewProxy(**fields), b"k" * 16, self.vhost)

    def connect(self):
        proto = self.vhost.buildProtocol(None)
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.7", 5555))
        proto.makeConnection(transport)
        return proto, transport

    def backendWrite(self, index: int, data: bytes) -> None:
        self.control.protocols[index].dataReceived(data)


class RoutingTests(VhostTestCase):
    def test_unknown_host_is_frps_404(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n")
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertEqual(head, b"HTTP/1.1 404 Not Found\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
                               b"Content-Length: 489\r\nContent-Type: text/html; charset=utf-8")
        self.assertEqual(body, NOT_FOUND_PAGE)
        self.assertFalse(transport.disconnecting)  # keep-alive

    def test_custom_404_page(self) -> None:
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"<p>gone</p>")
        self.vhost.custom404Page = path
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: nope.test\r\n\r\n")
        self.assertTrue(transport.value().endswith(b"\r\n\r\n<p>gone</p>"))

    def test_forward_rewrite_and_reply(self) -> None:
        self.addProxy(custom_domains=["a.test"], host_header_rewrite="backend.local",
                      headers={"x-from": "frp"}, response_headers={"X-Resp": "yes"})
        self.clock.advance(1_700_000_000.7)
        proto, transport = self.connect()
        proto.dataReceived(b"POST /p?q=1 HTTP/1.1\r\nHost: A.test:8080\r\nX-Forwarded-For: 9.9.9.9\r\n"
                           b"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\nContent-Length: 5\r\n\r\nhello")
        sent = backendBytes(self.control.works[0])
        head, _, body = sent.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"POST /p?q=1 HTTP/1.1")
        self.assertIn(b"Host: backend.local", lines)
        self.assertIn(b"X-From: frp", lines)
        self.assertIn(b"X-Forwarded-For: 9.9.9.9, 10.0.0.7", lines)
        self.assertIn(b"X-Forwarded-Host: A.test:8080", lines)
        self.assertIn(b"X-Forwarded-Proto: http", lines)
        self.assertNotIn(b"X-Secret: s", lines)
        self.assertFalse(any(line.lower().startswith(b"connection") for line in lines))
        self.assertEqual(body, b"hello")
        start = MessageReader()
        start.feed(self.control.works[0].value())
        self.assertEqual(start.next_message(), StartWorkConn(proxy_name="web", src_addr="10.0.0.7", src_port=5555))
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nKeep-Alive: x\r\n\r\nok")
        # Go's server dates a response that came without Date, after the relayed headers
        self.assertEqual(transport.value(), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Resp: yes\r\n"
                                            b"Date: Tue, 14 Nov 2023 22:13:20 GMT\r\n\r\nok")

    def test_backend_date_is_kept(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(transport.value(), b"HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
                                            b"Content-Length: 0\r\n\r\n")

    def test_keepalive_requests_route_separately_and_reuse_work_conns(self) -> None:
        self.addProxy(proxy_name="one", custom_domains=["a.test"])
        self.addProxy(proxy_name="two", custom_domains=["b.test"], locations=["/b"])
        proto, transport = self.connect()
        for i, (host, path) in enumerate([(b"a.test", b"/"), (b"b.test", b"/bb"), (b"a.test", b"/again")]):
            transport.clear()
            proto.dataReceived(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (path, host))
            index = [0, 1, 0][i]
            self.assertEqual(len(self.control.works), min(i + 1, 2))
            self.control.works[index].clear()
            self.backendWrite(index, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n%d" % i)
            self.assertTrue(transport.value().endswith(b"\r\n\r\n%d" % i))
        self.assertFalse(self.control.works[0].disconnecting)

    def test_pipelined_requests(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(backendBytes(self.control.works[0]).count(b"GET"), 1)
        self.assertEqual(transport.producerState, "paused")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        self.assertIn(b"GET /2 ", backendBytes(self.control.works[0]))
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
        self.assertTrue(transport.value().endswith(b"a") is False and transport.value().endswith(b"b"))
        self.assertEqual(len(self.control.works), 1)

    def test_route_by_user_and_auth(self) -> None:
        self.addProxy(proxy_name="open", custom_domains=["a.test"])
        self.addProxy(proxy_name="bob", custom_domains=["a.test"], route_by_http_user="bob",
                      http_user="bob", http_pwd="pw")
        bob = b"Authorization: Basic Ym9iOnB3\r\n"  # bob:pw
        wrong = b"Authorization: Basic Ym9iOng=\r\n"  # bob:x
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + wrong + b"\r\n")
        # byte for byte what Go's http.Error writes (frps 0.65, test_vhost_http_interop)
        self.assertEqual(transport.value(), b'HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain; charset=utf-8\r\n'
                                            b'Www-Authenticate: Basic realm="Restricted"\r\n'
                                            b'X-Content-Type-Options: nosniff\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n'
                                            b'Content-Length: 13\r\n\r\nUnauthorized\n')
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n" + bob + b"\r\n")
        self.assertIn(b"proxy_name\":\"bob", self.control.works[0].value())

    def test_proxy_style_request(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET http://a.test/x?y HTTP/1.1\r\nHost: other.test\r\n"
                           b"Proxy-Authorization: Basic eDp5\r\n\r\n")
        sent = backendBytes(self.control.works[0])
        self.assertTrue(sent.startswith(b"GET http://a.test/x?y HTTP/1.1\r\nHost: a.test\r\n"))
        self.assertNotIn(b"Proxy-Authorization", sent)

    def test_proxy_close_releases_routes_and_conns(self) -> None:
        proxy = self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.successResultOf(proxy.close())
        self.assertTrue(self.control.works[0].disconnected or self.control.works[0].disconnecting)
        self.assertEqual(len(self.vhost.routes), 0)

    def test_domain_errors(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        with self.assertRaises(ProxyError) as caught:
            self.addProxy(proxy_name="other", custom_domains=["A.TEST"])
        self.assertEqual(str(caught.exception), "router config conflict")
        with self.assertRaises(ProxyError):
            self.addProxy(proxy_name="x", custom_domains=["x.example.com"])
        proxy = self.addProxy(proxy_name="sub", subdomain="sub", locations=["/a", "/b"])
        self.assertEqual(proxy.remote_addr, "sub.example.com:8080,sub.example.com:8080")


class FailureTests(VhostTestCase):
    def test_response_timeout_is_504(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.clock.advance(59)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(transport.value(), b"HTTP/1.1 504 Gateway Timeout\r\nDate: Thu, 01 Jan 1970 00:01:00 GMT\r\n"
                                            b"Content-Length: 0\r\n\r\n")
        self.assertTrue(self.control.works[0].disconnecting or self.control.works[0].disconnected)

    def test_backend_closes_before_response_is_404(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.control.protocols[0].connectionLost(Failure(ConnectionDone()))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 Not Found\r\n"))
        self.assertTrue(transport.value().endswith(NOT_FOUND_PAGE))

    def test_no_work_connection_is_404(self) -> None:
        self.control.immediate = False
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.control.pending[0].errback(ConnectionError("timeout"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 Not Found\r\n"))

    def test_header_timeout(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a")
        self.clock.advance(HEADER_TIMEOUT)
        self.assertTrue(transport.disconnected)

    def test_bad_request_line(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GARBAGE\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_unreadable_absolute_target_is_400(self) -> None:
        """Found by bench/fuzz.py: urlsplit raised ValueError out of the vhost."""
        proto, transport = self.connect()
        proto.dataReceived(b"GET http://[::1/p HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_smuggling_refused(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 Bad Request\r\n"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.control.works, [])

    def test_oversized_head(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 70000)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "))
        self.assertTrue(transport.disconnecting)

    def test_too_many_headers(self) -> None:
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: y\r\n" * 200 + b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 431 "))

    def test_bad_input_leaves_others_alone(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        good, goodTransport = self.connect()
        good.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        bad, _ = self.connect()
        bad.dataReceived(b"\x00\x01garbage\r\n\r\n")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
        self.assertTrue(goodTransport.value().endswith(b"\r\n\r\nz"))


class StreamingTests(VhostTestCase):
    def test_chunked_both_ways_with_backpressure(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        work = self.control.works[0]
        self.assertIn(b"Transfer-Encoding: chunked", backendBytes(work))
        self.assertTrue(backendBytes(work).endswith(b"5\r\nhello\r\n"))
        # the work side is full: the user side is paused, and resumed when it drains
        work.producer.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        work.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"0\r\n\r\n")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        transport.producer.pauseProducing()
        self.assertEqual(work.producerState, "paused")
        transport.producer.resumeProducing()
        self.assertEqual(work.producerState, "producing")
        self.backendWrite(0, b"0\r\n\r\n")
        self.assertTrue(transport.value().endswith(b"3\r\nabc\r\n0\r\n\r\n"))

    def test_an_http10_backend_is_answered_in_http11(self) -> None:
        """A backend that speaks HTTP/1.0 (Python's http.server, small devices) is relayed as
        HTTP/1.1, as Go frps's ReverseProxy does; a body that ends at the backend's close goes to
        the user chunked, and the user's connection stays open."""
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        for body, framing in ((b"Content-Length: 9\r\n\r\nold style", b"content-length: 9"),
                              (b"\r\nold style", b"transfer-encoding: chunked")):
            transport.clear()
            proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            index = len(self.control.works) - 1
            self.backendWrite(index, b"HTTP/1.0 200 OK\r\nServer: BaseHTTP/0.6\r\n" + body)
            self.control.protocols[index].connectionLost(Failure(ConnectionDone()))
            head, _, sent = transport.value().partition(b"\r\n\r\n")
            self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head)
            self.assertIn(framing, head.lower())
            self.assertIn(b"old style", sent)
            self.assertFalse(transport.disconnecting)

    def test_early_response_then_rest_of_body_then_reuse(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\nabc")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        self.assertTrue(transport.value().endswith(b"\r\n\r\nok"))
        proto.dataReceived(b"def")
        self.assertTrue(backendBytes(self.control.works[0]).endswith(b"abcdef"))
        proto.dataReceived(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertIn(b"GET /2 HTTP/1.1\r\n", backendBytes(self.control.works[0]))
        self.assertEqual(len(self.control.works), 1)

    def test_idle_pool_limit_and_timeout(self) -> None:
        self.control.immediate = False
        self.addProxy(custom_domains=["a.test"])
        users = []
        for _ in range(MAX_IDLE + 1):
            proto, transport = self.connect()
            proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            users.append(proto)
        for d in self.control.pending:
            d.callback(self.control.makeWork())
        for index in range(MAX_IDLE + 1):
            self.backendWrite(index, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        # all six were lent at once: all six stay for the next requests (the pool keeps the
        # recent peak, at least MAX_IDLE)
        closed = [w for w in self.control.works if w.disconnecting or w.disconnected]
        self.assertEqual(len(closed), 0)
        self.clock.advance(IDLE_TIMEOUT)
        closed = [w for w in self.control.works if w.disconnecting or w.disconnected]
        self.assertEqual(len(closed), MAX_IDLE + 1)

    def test_backend_not_reused_after_connection_close(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(self.control.works[0].disconnecting or self.control.works[0].disconnected)

    def test_websocket_upgrade_splices(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                           b"Sec-WebSocket-Key: abc\r\n\r\n")
        sent = backendBytes(self.control.works[0])
        self.assertIn(b"Connection: Upgrade\r\n", sent)
        self.assertIn(b"Upgrade: websocket\r\n", sent)
        self.assertIn(b"Sec-Websocket-Key: abc\r\n", sent)
        self.backendWrite(0, b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                             b"\x81\x02hi")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "))
        self.assertIn(b"Upgrade: websocket", transport.value())
        self.assertTrue(transport.value().endswith(b"\x81\x02hi"))
        self.control.works[0].clear()
        proto.dataReceived(b"\x81\x82raw")
        self.assertEqual(self.control.works[0].value(), b"\x81\x82raw")

    def test_connect_is_forwarded_raw(self) -> None:
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\nearly")
        sent = backendBytes(self.control.works[0])
        self.assertTrue(sent.startswith(b"CONNECT a.test:443 HTTP/1.1\r\n"))
        self.assertTrue(sent.endswith(b"\r\n\r\nearly"))
        self.backendWrite(0, b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.assertEqual(transport.value(), b"HTTP/1.1 200 Connection established\r\n\r\n")


class RewriteTests(SynchronousTestCase):
    def test_canonical_key(self) -> None:
        self.assertEqual(canonical_key("sec-websocket-key"), "Sec-Websocket-Key")
        self.assertEqual(canonical_key("X-FOO"), "X-Foo")
        self.assertEqual(canonical_key("bad key"), "bad key")

    def test_basic_auth(self) -> None:
        self.assertEqual(parse_basic_auth(b"basic Ym9iOnA6dw=="), ("bob", "p:w"))
        self.assertIsNone(parse_basic_auth(b"Basic !!"))
        self.assertIsNone(parse_basic_auth(b"Bearer x"))
        self.assertIsNone(parse_basic_auth(None))

    def test_route_key(self) -> None:
        key = route_key(b"GET", b"/a%2Fb?x", [(b"Host", b"A.test:81")])
        self.assertEqual((key.host, key.path, key.target, key.absolute), ("A.test:81", "/a/b", b"/a%2Fb?x", False))
        key = route_key(b"GET", b"http://u@h.test:9/p", [(b"host", b"x"), (b"authorization", b"Basic eDp5")])
        self.assertEqual((key.host, key.path, key.target, key.route_user), ("h.test:9", "/p", b"/p", "x"))
        key = route_key(b"CONNECT", b"h.test:443", [])
        self.assertEqual((key.host, key.path), ("h.test:443", ""))
        # "//" starts a path in a request target, as in Go's ParseRequestURI, not an authority.
        key = route_key(b"GET", b"//ind]x.html?x=1", [(b"Host", b"a.test")])
        self.assertEqual((key.host, key.path, key.absolute), ("a.test", "//ind]x.html", False))



class GarbageTests(VhostTestCase):
    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.binary(max_size=300), max_size=6))
    def test_any_bytes(self, pieces) -> None:
        """Whatever arrives, the vhost answers with a status line or waits; it never raises
        and never forwards anything without a route."""
        proto, transport = self.connect()
        for piece in pieces:
            proto.dataReceived(piece)
        out = transport.value()
        self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 "), out[:80])
        self.assertEqual(self.control.works, [])
        self.clock.advance(HEADER_TIMEOUT)
        self.assertTrue(transport.disconnecting or transport.disconnected)

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=200), st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT"]))
    def test_garbage_after_a_routed_head(self, tail, method) -> None:
        self.setUp()  # a fresh vhost per example
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(method + b" / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n" + tail)
        self.assertEqual(len(self.control.works), 1)
        self.control.protocols[0].dataReceived(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        self.assertTrue(transport.value() == b"" or transport.value().startswith(b"HTTP/1.1 200 OK\r\n"))


class ServerBandwidthTests(VhostTestCase):
    """``bandwidth_limit_mode = "server"``: one bucket per http proxy, spent by the plaintext of
    its work connections in both directions (as frp wraps the work connection)."""

    def test_one_bucket_both_directions(self) -> None:
        """Bytes pass once their tokens are there (frp's limited reader and writer)."""
        self.addProxy(custom_domains=["a.test"], bandwidth_limit="1KB", bandwidth_limit_mode="server")
        proto, transport = self.connect()
        proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2048\r\n\r\n" + b"u" * 1024)
        work = self.control.works[0]
        # the head took part of the 1 KiB burst: the 1 KiB of body waits, and so does the user
        self.assertFalse(backendBytes(work).endswith(b"u"))
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.5)
        self.assertTrue(backendBytes(work).endswith(b"u" * 1024))
        self.assertEqual(transport.producerState, "producing")
        proto.dataReceived(b"u" * 1024)
        self.assertFalse(backendBytes(work).endswith(b"u" * 2048))
        self.clock.advance(0.8)
        self.assertTrue(backendBytes(work).endswith(b"u" * 2048))
        # the bucket has (almost) nothing left: a response waits, since both directions
        # spend the same bucket, and the work connection is paused meanwhile
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n" + b"d" * 200)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(work.producerState, "paused")
        self.clock.advance(1.0)
        self.assertTrue(transport.value().endswith(b"\r\n\r\n" + b"d" * 200))
        self.assertEqual(work.producerState, "producing")

    def test_client_mode_not_limited_here(self) -> None:
        self.addProxy(custom_domains=["a.test"], bandwidth_limit="1KB")
        proto, transport = self.connect()
        proto.dataReceived(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1500\r\n\r\n" + b"u" * 1500)
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n" + b"d" * 2048)
        self.assertEqual((transport.producerState, self.control.works[0].producerState), ("producing", "producing"))


class PoolHandoverTests(VhostTestCase):
    def test_released_backend_serves_the_waiting_request(self) -> None:
        self.control.immediate = False
        self.addProxy(custom_domains=["a.test"])
        first, firstTransport = self.connect()
        first.dataReceived(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.control.pending.pop(0).callback(self.control.makeWork())
        second, secondTransport = self.connect()
        second.dataReceived(b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(len(self.control.pending), 1)  # a work connection is on its way for /2
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        # /2 did not wait for its own work connection: the released one carries it.
        self.assertIn(b"GET /2 HTTP/1.1\r\n", backendBytes(self.control.works[0]))
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
        self.assertTrue(secondTransport.value().endswith(b"\r\n\r\n2"))
        # The work connection asked for /2 arrives later and waits idle for the next request.
        self.control.pending.pop(0).callback(self.control.makeWork())
        self.assertFalse(self.control.works[1].disconnecting)
        third, thirdTransport = self.connect()
        third.dataReceived(b"GET /3 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.assertEqual(self.control.pending, [])
        self.assertEqual(len(self.control.works), 2)

    def test_work_connection_on_its_way_is_shared(self) -> None:
        self.control.immediate = False
        self.addProxy(custom_domains=["a.test"])
        users = []
        for path in (b"/1", b"/2"):
            proto, transport = self.connect()
            proto.dataReceived(b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % path)
            users.append(transport)
        self.assertEqual(len(self.control.pending), 2)
        self.control.pending.pop(0).callback(self.control.makeWork())
        self.backendWrite(0, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # /1 done, /2 takes it
        proto, transport = self.connect()
        proto.dataReceived(b"GET /3 HTTP/1.1\r\nHost: a.test\r\n\r\n")
        # /3 waits for the work connection already asked for: no third StartWorkConn.
        self.assertEqual(len(self.control.pending), 1)
        self.control.pending.pop(0).callback(self.control.makeWork())
        self.assertIn(b"GET /3 HTTP/1.1\r\n", backendBytes(self.control.works[1]))

    def test_failed_work_connection_fails_only_an_uncovered_request(self) -> None:
        self.control.immediate = False
        self.addProxy(custom_domains=["a.test"])
        proto, transport = self.connect()
        proto.dataReceived(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        self.control.pending.pop(0).errback(ConnectionError("boom"))
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 404 Not Found\r\n"))
