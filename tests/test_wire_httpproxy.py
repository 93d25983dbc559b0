"""The sans-IO parts of the http_proxy plugin: CONNECT heads as Go reads them, frp's credential
check, absolute-form targets and the headers of a forwarded request."""

import base64

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.client.plugins import ConnectionInfo, PluginContext
from frptw.client.plugins._dial import parseAddress
from frptw.client.plugins.http_proxy import AUTH_FAILURE_DELAY
from frptw.client.plugins.http_proxy import build as buildHTTPProxy
from frptw.config import HTTPProxyPluginOptions
from frptw.transport.http_front import HEADER_TIMEOUT
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.errors import ProtocolError
from frptw.wire.httpproxy import (
    CONNECT_NOT_AUTHORIZED,
    GO_USER_AGENT,
    AbsoluteTarget,
    ConnectHead,
    ConnectHeadReader,
    UnsupportedScheme,
    absolute_target,
    forward_headers,
    proxy_authorized,
    proxy_credentials_given,
)
from tests.support import LogCapture

GOOD = b"Basic " + base64.b64encode(b"alice:s3cret")


class ConnectHeadReaderTests(SynchronousTestCase):
    def test_head_and_leftover(self) -> None:
        reader = ConnectHeadReader()
        self.assertIsNone(reader.feed(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"))
        head = reader.feed(b"Proxy-Authorization:  Basic eA==\r\n\r\n\x16\x03\x01")
        self.assertEqual(head, ConnectHead("example.com:443", [(b"Host", b"example.com:443"),
                                                               (b"Proxy-Authorization", b"Basic eA==")], b"\x16\x03\x01"))

    def test_bare_line_feeds_and_ipv6(self) -> None:
        self.assertEqual(ConnectHeadReader().feed(b"CONNECT [::1]:22 HTTP/1.0\n\n").target, "[::1]:22")

    def test_what_go_puts_in_url_host(self) -> None:
        def target(line: bytes) -> str:
            return ConnectHeadReader().feed(line + b" HTTP/1.1\r\n\r\n").target
        self.assertEqual(target(b"CONNECT /path"), "")
        self.assertEqual(target(b"connect http://a.example:80/"), "a.example:80")
        self.assertEqual(target(b"connect opaque:thing"), "")
        self.assertRaises(ProtocolError, target, b"connect 127.0.0.1:80")  # "invalid URI for request"

    def test_refused_heads(self) -> None:
        for head in (b"CONNECT a:1\r\n\r\n", b"CONNECT a:1 HTTP/x\r\n\r\n", b"CONNECT a:1 b HTTP/1.1\r\n\r\n",
                     b"CONNECT a:1 HTTP/1.1\r\nno colon\r\n\r\n", b"CONNECT a:1 HTTP/1.1\r\nbad name: x\r\n\r\n"):
            self.assertRaises(ProtocolError, ConnectHeadReader().feed, head)

    def test_bounded(self) -> None:
        reader = ConnectHeadReader(max_head=100)
        self.assertIsNone(reader.feed(b"CONNECT a:1 HTTP/1.1\r\n" + b"X: y\r\n" * 10))
        self.assertRaises(ProtocolError, reader.feed, b"X: y\r\n" * 10)

    @given(st.binary(max_size=300), st.integers(min_value=1, max_value=50))
    def test_any_split_same_result(self, tail: bytes, chunk: int) -> None:
        data = b"CONNECT h:1 HTTP/1.1\r\nA: b\r\n\r\n" + tail
        whole = ConnectHeadReader().feed(data)
        reader = ConnectHeadReader()
        results = [reader.feed(data[i:i + chunk]) for i in range(0, len(data), chunk)]
        found = [r for r in results if r is not None]
        self.assertEqual((found[0].target, found[0].headers), (whole.target, whole.headers))

    @given(st.binary(max_size=2000))
    def test_garbage_only_protocol_errors(self, data: bytes) -> None:
        try:
            ConnectHeadReader(max_head=1024).feed(data)
        except ProtocolError:
            pass


class CredentialsTests(SynchronousTestCase):
    def test_frp_rules(self) -> None:
        self.assertTrue(proxy_authorized(None, "", ""))
        self.assertTrue(proxy_authorized(GOOD, "alice", "s3cret"))
        self.assertTrue(proxy_authorized(b"Anything " + GOOD[6:], "alice", "s3cret"))  # frp ignores the scheme
        self.assertFalse(proxy_authorized(None, "alice", "s3cret"))
        self.assertFalse(proxy_authorized(b"Basic " + base64.b64encode(b"alice:x"), "alice", "s3cret"))
        self.assertFalse(proxy_authorized(b"Basic !!", "alice", "s3cret"))
        self.assertFalse(proxy_authorized(b"Basic " + base64.b64encode(b"alice"), "alice", ""))
        self.assertTrue(proxy_credentials_given(b"Basic " + base64.b64encode(b"a:b")))
        self.assertFalse(proxy_credentials_given(b"Basic " + base64.b64encode(b"ab")))
        self.assertFalse(proxy_credentials_given(None))


class ForwardingTests(SynchronousTestCase):
    def test_absolute_target(self) -> None:
        self.assertEqual(absolute_target(b"http://example.com:8080/a/b?c=d"),
                         AbsoluteTarget(b"example.com:8080", "example.com", 8080, b"/a/b?c=d"))
        self.assertEqual(absolute_target(b"HTTP://[::1]"), AbsoluteTarget(b"[::1]", "::1", 80, b"/"))
        self.assertEqual(str(self.assertRaises(UnsupportedScheme, absolute_target, b"/x")),
                         'unsupported protocol scheme ""')
        self.assertEqual(str(self.assertRaises(UnsupportedScheme, absolute_target, b"ftp://a/")),
                         'unsupported protocol scheme "ftp"')

    def test_forward_headers(self) -> None:
        headers = [(b"Host", b"other"), (b"Proxy-Connection", b"keep-alive"), (b"Proxy-Authorization", GOOD),
                   (b"Connection", b"close"), (b"X-A", b"1"), (b"Transfer-Encoding", b"chunked"), (b"TE", b"trailers")]
        self.assertEqual(forward_headers(headers, b"example.com"),
                         [(b"Host", b"example.com"), (b"User-Agent", GO_USER_AGENT), (b"X-A", b"1"),
                          (b"Transfer-Encoding", b"chunked")])
        self.assertEqual(forward_headers([(b"user-agent", b"curl")], b"h"), [(b"Host", b"h"), (b"user-agent", b"curl")])

    def test_dial_addresses(self) -> None:
        self.assertEqual(parseAddress("[::1]:80"), ("::1", 80))
        for bad in ("example.com", "a:b", "::1:80", "a:99999", ""):
            self.assertRaises(ValueError, parseAddress, bad)


class ConnectTunnelClockTests(SynchronousTestCase):
    def tunnel(self, user: str = "alice", password: str = "s3cret"):
        self.reactor = MemoryReactorClock()
        plugin = buildHTTPProxy(HTTPProxyPluginOptions(http_user=user, http_password=password),
                                PluginContext("hp", self.reactor))
        conn = SwitchableProtocol()
        self.transport = StringTransport()
        conn.makeConnection(self.transport)
        plugin.handle(conn, ConnectionInfo())
        return conn

    def test_slow_connect_head(self) -> None:
        logs = LogCapture(self)
        conn = self.tunnel()
        conn.dataReceived(b"CONNECT a:1 HTTP/1.1\r\n")
        self.reactor.advance(HEADER_TIMEOUT)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(logs.texts(), [f"[hp] http_proxy: no CONNECT head within {HEADER_TIMEOUT:g} s, closing connection"])

    def test_wrong_credentials_answered_after_200_ms(self) -> None:
        conn = self.tunnel()
        conn.dataReceived(b"CONNECT a:1 HTTP/1.1\r\nProxy-Authorization: Basic " + base64.b64encode(b"alice:x") + b"\r\n\r\n")
        self.reactor.advance(AUTH_FAILURE_DELAY - 0.01)
        self.assertEqual(self.transport.value(), b"")
        self.reactor.advance(0.01)
        self.assertEqual(self.transport.value(), CONNECT_NOT_AUTHORIZED)
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.reactor.tcpClients, [])

    def test_missing_credentials_answered_at_once(self) -> None:
        conn = self.tunnel()
        conn.dataReceived(b"CONNECT a:1 HTTP/1.1\r\n\r\n")
        self.reactor.advance(0)
        self.assertEqual(self.transport.value(), CONNECT_NOT_AUTHORIZED)

    def test_sniffing_waits_for_seven_bytes(self) -> None:
        conn = self.tunnel(user="", password="")
        conn.dataReceived(b"CONN")
        conn.dataReceived(b"ECT 127.0.0.1:9 HTTP/1.1\r\n\r\nearly")
        [(host, port, _, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 9))
