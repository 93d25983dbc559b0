"""frptw.wire.hostport: Go's JoinHostPort and SplitHostPort."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.hostport import join_host_port, split_host_port

HOSTS = st.one_of(st.ip_addresses().map(str), st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True))


class HostPortTests(SynchronousTestCase):
    def test_split_like_go(self):
        self.assertEqual(split_host_port("[::1]:80"), ("::1", 80))
        self.assertEqual(split_host_port("1.2.3.4:80"), ("1.2.3.4", 80))
        self.assertEqual(split_host_port("example.com:8080"), ("example.com", 8080))
        for bad in ("1.2.3.4", "::1:80", ":80", "[::1:80", "a:b", "a:-1"):
            self.assertRaises(ValueError, split_host_port, bad)

    def test_join_like_go(self):
        self.assertEqual(join_host_port("::1", 80), "[::1]:80")
        self.assertEqual(join_host_port("1.2.3.4", 80), "1.2.3.4:80")
        self.assertEqual(join_host_port("example.com", 0), "example.com:0")

    @given(HOSTS, st.integers(0, 65535))
    def test_split_undoes_join(self, host, port):
        self.assertEqual(split_host_port(join_host_port(host, port)), (host, port))
