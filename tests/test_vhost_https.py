"""HTTPS vhost connections over fake transports (byte-exact, task.Clock)."""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.vhost.https import HTTPSVhost
from frptw.server.vhost.prerouting import PREAMBLE_TIMEOUT
from tests.fakes import FakeControl, FakeProxy, backendBytes, client_hello, connectVhost


class HTTPSConnectionTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.vhost = HTTPSVhost(self.clock, 443)
        self.proxy = FakeProxy()
        self.vhost.routes.add(["a.test"], [""], "", self.proxy)

    def test_route_by_sni_replays_everything(self):
        hello = client_hello("A.test")
        conn, transport = connectVhost(self.vhost, hello[:10])
        self.assertEqual(self.proxy.users, [])
        conn.dataReceived(hello[10:] + b"more")
        self.assertEqual(transport.value(), b"")
        self.assertEqual(self.proxy.replayed(), hello + b"more")
        self.assertEqual(self.vhost.pending, set())
        self.clock.advance(PREAMBLE_TIMEOUT)  # the deadline is gone
        self.assertFalse(transport.disconnecting)

    def test_unknown_name_gets_alert(self):
        _, transport = connectVhost(self.vhost, client_hello("b.test"))
        self.assertEqual(transport.value(), b"\x15\x03\x03\x00\x02\x02\x70")
        self.assertTrue(transport.disconnecting)

    def test_catch_all_takes_hello_without_sni(self):
        other = FakeProxy()
        self.vhost.routes.add(["*"], [""], "", other)
        connectVhost(self.vhost, client_hello(None))
        self.assertEqual(len(other.users), 1)

    def test_garbage_closed_without_reply(self):
        _, transport = connectVhost(self.vhost, b"SSH-2.0-x\r\n")
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)

    def test_deadline(self):
        conn, transport = connectVhost(self.vhost, client_hello("a.test")[:20])
        self.clock.advance(PREAMBLE_TIMEOUT - 1)
        self.assertFalse(transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(transport.disconnected)
        conn.connectionLost(None)
        self.assertEqual(self.vhost.pending, set())


class ServerBandwidthTests(SynchronousTestCase):
    def test_hello_and_tunnel_spend_the_proxy_bucket(self):
        """``bandwidth_limit_mode = "server"`` on an https proxy: the replayed ClientHello and
        everything after it spend the proxy's one bucket (BaseProxy's, as for tcp)."""
        from frptw.server.vhost.https import HTTPSProxy
        from frptw.wire.messages import NewProxy

        clock = Clock()
        vhost = HTTPSVhost(clock, 443)
        control = FakeControl(clock)
        HTTPSProxy(control, NewProxy(proxy_name="s", proxy_type="https", custom_domains=["a.test"],
                                     bandwidth_limit="1KB", bandwidth_limit_mode="server"), b"k" * 16, vhost, "")
        hello = client_hello("a.test")
        _, transport = connectVhost(vhost, hello + b"x" * 1024)
        # the 1 KiB burst goes at once, the rest once its tokens are there; the user waits
        self.assertEqual(len(backendBytes(control.works[0])), 1024)
        self.assertEqual(transport.producerState, "paused")
        clock.advance(len(hello) / 1024 - 0.01)
        self.assertEqual(transport.producerState, "paused")
        clock.advance(0.02)
        self.assertEqual(backendBytes(control.works[0]), hello + b"x" * 1024)
        self.assertEqual(transport.producerState, "producing")
