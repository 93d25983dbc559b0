"""Bind-port sniffing with shared vhosts (wire-protocol.md §2.1), over fake transports."""

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.bindport import BindConnection


class _Recorder(Protocol):
    def __init__(self, kind, log):
        self.kind, self.log = kind, log

    def dataReceived(self, data):
        self.log.append((self.kind, data))


class _Vhost(Factory):
    def __init__(self, kind, log):
        self.kind, self.log = kind, log

    def buildProtocol(self, addr):
        return _Recorder(self.kind, self.log)


class FakeHost:
    """A bind-port host sharing both vhosts, that records frp-side dispatches as 'frp'."""

    tcpMux = False
    muxKeepaliveInterval = 30.0
    tlsRequired = False

    def __init__(self):
        self.clock = Clock()
        self.log = []
        self.sharedHTTPS = _Vhost("https", self.log)
        self.sharedHTTP = _Vhost("http", self.log)

    def tlsContextFactory(self):
        raise AssertionError("frp TLS not expected")

    def connectionOpened(self, conn):
        pass

    def connectionClosed(self, conn):
        pass

    def dispatch(self, conn, message, leftover):
        self.log.append(("frp", type(message).__name__))


def accept(host, *chunks):
    transport = StringTransport()
    conn = BindConnection(host)
    conn.makeConnection(transport)
    for chunk in chunks:
        conn.dataReceived(chunk)
    return conn, transport


class SharingTests(SynchronousTestCase):
    def test_tls_handshake_goes_to_https_vhost(self):
        host = FakeHost()
        accept(host, b"\x16\x03\x01\x00\x05hello")
        self.assertEqual(host.log, [("https", b"\x16\x03\x01\x00\x05hello")])

    def test_http_methods_go_to_http_vhost(self):
        for request in (b"GET / HTTP/1.1\r\n\r\n", b"POST /x HTTP/1.1\r\n\r\n", b"CONNECT a:1 HTTP/1.1\r\n\r\n"):
            host = FakeHost()
            accept(host, request[:1], request[1:2], request[2:])
            self.assertEqual(host.log, [("http", request)])

    def test_websocket_prefix_is_frp_not_the_http_vhost(self):
        """``GET /~!frp`` (even split) is frp's websocket endpoint, before the HTTP vhost's rule;
        the stream inside is frp."""
        from frptw.wire.messages import Login, encode_message

        host = FakeHost()
        upgrade = (b"GET /~!frp HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                   b"Origin: http://x\r\n\r\n")
        conn, transport = accept(host, upgrade[:6], upgrade[6:])
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 101 "), transport.value())
        login = encode_message(Login(version="0.65.0"))
        # One masked text frame (frp 0.65 sends text frames), the all-zero mask.
        conn.dataReceived(bytes([0x81, 0x80 | len(login)]) + bytes(4) + login)
        self.assertEqual(host.log, [("frp", "Login")])

    def test_get_that_is_not_websocket(self):
        host = FakeHost()
        accept(host, b"GET /", b"index HTTP/1.1\r\n\r\n")
        self.assertEqual(host.log, [("http", b"GET /index HTTP/1.1\r\n\r\n")])

    def test_frp_traffic_still_frp(self):
        """A plain frp Login (type byte 'o') is not taken by either vhost."""
        from frptw.wire.messages import Login, encode_message

        host = FakeHost()
        accept(host, encode_message(Login(version="0.65.0")))
        self.assertEqual(host.log, [("frp", "Login")])

    def test_without_sharing_http_bytes_are_frp(self):
        host = FakeHost()
        host.sharedHTTP = host.sharedHTTPS = None
        _, transport = accept(host, b"POST / HTTP/1.1\r\n\r\n")
        self.assertEqual(host.log, [])
        self.assertTrue(transport.disconnected)  # not an frp message
