"""tcpmux httpconnect connections over fake transports (byte-exact)."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.vhost.tcpmux import AUTH_REQUIRED, CONNECTED, NOT_FOUND, TCPMuxProxy, TCPMuxVhost
from frptw.wire.messages import NewProxy
from tests.fakes import FakeControl, FakeProxy, backendBytes, connectVhost


class ConnectTests(SynchronousTestCase):
    def setUp(self):
        self.vhost = TCPMuxVhost(Clock(), 8337, passthrough=False)
        self.open = FakeProxy()
        self.locked = FakeProxy("u", "p")
        self.vhost.routes.add(["m.test"], [""], "", self.open)
        self.vhost.routes.add(["s.test"], [""], "", self.locked)

    def test_tunnel_keeps_following_bytes(self):
        _, transport = connectVhost(self.vhost, b"CONNECT M.test:443 HTTP/1.1\r\nHost: m.test\r\n\r\nhello")
        self.assertEqual(transport.value(), CONNECTED)
        self.assertEqual(self.open.replayed(), b"hello")

    def test_split_request(self):
        conn, transport = connectVhost(self.vhost, b"CONNECT m.test:1 HTTP/1.1\r\nHo")
        self.assertEqual(transport.value(), b"")
        conn.dataReceived(b"st: x\r\n\r\n")
        self.assertEqual(transport.value(), CONNECTED)

    def test_path_target_uses_host_header(self):
        connectVhost(self.vhost, b"CONNECT / HTTP/1.0\r\nHost: m.test:80\r\n\r\n")
        self.assertEqual(len(self.open.users), 1)

    def test_credentials_checked_after_200(self):
        for credentials in ("", "Proxy-Authorization: Basic dTp4\r\n", "Proxy-Authorization: Basic !!\r\n"):
            _, transport = connectVhost(self.vhost, f"CONNECT s.test:1 HTTP/1.1\r\nHost: s\r\n{credentials}\r\n".encode())
            self.assertEqual(transport.value(), CONNECTED + AUTH_REQUIRED)
            self.assertTrue(transport.disconnecting)
        _, transport = connectVhost(self.vhost, b"CONNECT s.test:1 HTTP/1.1\r\nHost: s\r\n"
                                           b"Proxy-Authorization: basic dTpw\r\n\r\n")
        self.assertEqual((transport.value(), len(self.locked.users)), (CONNECTED, 1))

    def test_route_by_http_user(self):
        mine = FakeProxy()
        self.vhost.routes.add(["m.test"], [""], "u", mine)
        connectVhost(self.vhost, b"CONNECT m.test:1 HTTP/1.1\r\nHost: m\r\nProxy-Authorization: Basic dTpw\r\n\r\n")
        self.assertEqual((len(mine.users), len(self.open.users)), (1, 0))

    def test_unknown_host_404(self):
        _, transport = connectVhost(self.vhost, b"CONNECT x.test:1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(transport.value(), NOT_FOUND)
        self.assertEqual(len(NOT_FOUND) - NOT_FOUND.index(b"\r\n\r\n") - 4, 489)
        self.assertTrue(transport.disconnecting)

    def test_not_connect_or_not_http(self):
        for data in (b"GET / HTTP/1.1\r\nHost: m.test\r\n\r\n", b"connect m.test:1 HTTP/1.1\r\nHost: m\r\n\r\n",
                     b"\x00\x01\x02 garbage\r\n\r\n"):
            _, transport = connectVhost(self.vhost, data)
            self.assertEqual(transport.value(), b"")
            self.assertTrue(transport.disconnecting)

    def test_passthrough_forwards_request(self):
        self.vhost.passthrough = True
        request = b"CONNECT m.test:1 HTTP/1.1\r\nHost: m\r\n\r\nextra"
        _, transport = connectVhost(self.vhost, request)
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.open.replayed(), request)
        _, transport = connectVhost(self.vhost, b"CONNECT s.test:1 HTTP/1.1\r\nHost: s\r\n\r\n")
        self.assertEqual(transport.value(), AUTH_REQUIRED)


class ServerBandwidthTests(SynchronousTestCase):
    """``bandwidth_limit_mode = "server"`` on a tcpmux proxy: one bucket for both directions of
    the tunnel (BaseProxy's, as for tcp)."""

    def test_tunnel_spends_one_bucket(self):

        clock = Clock()
        vhost = TCPMuxVhost(clock, 8337, passthrough=False)
        control = FakeControl(clock)
        TCPMuxProxy(control, NewProxy(proxy_name="m", proxy_type="tcpmux", multiplexer="httpconnect",
                                      custom_domains=["m.test"], bandwidth_limit="1KB", bandwidth_limit_mode="server"),
                    b"k" * 16, vhost, "")
        _, transport = connectVhost(vhost, b"CONNECT m.test:1 HTTP/1.1\r\nHost: m\r\n\r\n" + b"u" * 2048)
        work = control.works[0]
        self.assertEqual(backendBytes(work), b"u" * 1024)  # the burst; the rest waits for its tokens
        self.assertEqual(transport.producerState, "paused")
        clock.advance(0.9)
        self.assertEqual(transport.producerState, "paused")
        clock.advance(0.2)
        self.assertEqual(backendBytes(work), b"u" * 2048)
        self.assertEqual(transport.producerState, "producing")
        # ~100 tokens left: a 512-byte reply waits for the shared bucket, pausing the work side
        control.protocols[0].dataReceived(b"d" * 512)
        self.assertFalse(transport.value().endswith(b"d" * 512))
        self.assertEqual(work.producerState, "paused")
        clock.advance(0.6)
        self.assertTrue(transport.value().endswith(b"d" * 512))
        self.assertEqual(work.producerState, "producing")
