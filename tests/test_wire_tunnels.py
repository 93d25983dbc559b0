"""frptw.wire.tunnels: the HTTP CONNECT and SOCKS5 clients, byte for byte, and garbage."""

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ConfigError
from frptw.wire.socks5 import Connect, Send, Socks5Server
from frptw.wire.tunnels import HTTPConnectClient, Socks5Client, TunnelError, parse_proxy_url


class ParseProxyURL(SynchronousTestCase):
    def test_credentials_are_unescaped(self) -> None:
        url = parse_proxy_url("socks5://us%40er:p%3Ass@127.0.0.1:1080")
        self.assertEqual((url.scheme, url.host, url.port, url.username, url.password),
                         ("socks5", "127.0.0.1", 1080, "us@er", "p:ss"))

    def test_user_without_password(self) -> None:
        self.assertEqual(parse_proxy_url("http://u@[::1]:3128").password, "")

    def test_refusals(self) -> None:
        for url in ("ntlm://h:1", "https://h:1", "ftp://h:1", "http://h", "http://h:99999"):
            self.assertRaises(ConfigError, parse_proxy_url, url)


class HTTPConnect(SynchronousTestCase):
    def test_request_as_go_writes_it(self) -> None:
        client = HTTPConnectClient("127.0.0.1", 7000, "u", "p")
        self.assertEqual(client.start(), b"CONNECT 127.0.0.1:7000 HTTP/1.1\r\nHost: 127.0.0.1:7000\r\n"
                                         b"User-Agent: Mozilla/5.0\r\nProxy-Authorization: Basic dTpw\r\n\r\n")
        self.assertEqual(HTTPConnectClient("::1", 7000).start().split(b"\r\n")[0], b"CONNECT [::1]:7000 HTTP/1.1")

    def test_established_keeps_following_bytes(self) -> None:
        client = HTTPConnectClient("h", 1)
        client.start()
        self.assertEqual(client.receive_data(b"HTTP/1.1 200 OK\r\nX: y\r\n"), b"")
        self.assertFalse(client.established)
        client.receive_data(b"\r\n\x16\x03")
        self.assertTrue(client.established)
        self.assertEqual(client.take_unconsumed(), b"\x16\x03")

    def test_refusal_has_frps_text(self) -> None:
        client = HTTPConnectClient("h", 1)
        client.start()
        error = self.assertRaises(TunnelError, client.receive_data, b"HTTP/1.1 407 No\r\nContent-Length: 0\r\n\r\n")
        self.assertEqual(str(error), "DialTcpByHttpProxy error, StatusCode [407]")

    @given(st.binary(max_size=300))
    def test_garbage_is_a_tunnel_error_or_more_data(self, data: bytes) -> None:
        client = HTTPConnectClient("h", 1)
        client.start()
        try:
            client.receive_data(data)
        except TunnelError:
            pass


class Socks5(SynchronousTestCase):
    def run_against(self, client: Socks5Client, server: Socks5Server):
        """Pump the two machines until the server asks to connect; the events it produced."""
        data = client.start()
        while True:
            events = server.receive_data(data)
            answer = b"".join(e.data for e in events if isinstance(e, Send))
            connects = [e for e in events if isinstance(e, Connect)]
            if connects:
                return connects[0]
            data = client.receive_data(answer)

    def test_greeting_bytes(self) -> None:
        self.assertEqual(Socks5Client("h", 1).start(), b"\x05\x01\x00")
        self.assertEqual(Socks5Client("h", 1, "u", "p").start(), b"\x05\x02\x00\x02")

    def test_with_credentials_against_the_server_machine(self) -> None:
        client = Socks5Client("example.test", 7000, "user", "pass")
        connect = self.run_against(client, Socks5Server((b"user", b"pass")))
        self.assertEqual((connect.host, connect.port, connect.domain), ("example.test", 7000, True))
        self.assertEqual(client.receive_data(b"\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50rest"), b"")
        self.assertTrue(client.established)
        self.assertEqual(client.take_unconsumed(), b"rest")

    def test_ip_targets_as_addresses(self) -> None:
        for host, expected in (("127.0.0.1", b"\x05\x01\x00\x01\x7f\x00\x00\x01\x1b\x58"),
                               ("::1", b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x1b\x58")):
            client = Socks5Client(host, 7000)
            client.start()
            self.assertEqual(client.receive_data(b"\x05\x00"), expected)

    def test_refusals(self) -> None:
        client = Socks5Client("h", 1, "u", "bad")
        client.start()
        self.assertEqual(client.receive_data(b"\x05\x02"), b"\x01\x01u\x03bad")
        self.assertRaises(TunnelError, client.receive_data, b"\x01\x01")
        client = Socks5Client("h", 1)
        client.start()
        self.assertRaises(TunnelError, client.receive_data, b"\x05\xff")
        client = Socks5Client("h", 1)
        client.start()
        client.receive_data(b"\x05\x00")
        error = self.assertRaises(TunnelError, client.receive_data, b"\x05\x05\x00\x01" + bytes(6))
        self.assertIn("connection refused", str(error))

    @given(st.binary(max_size=300))
    def test_garbage_is_a_tunnel_error_or_more_data(self, data: bytes) -> None:
        client = Socks5Client("h", 1, "u", "p")
        client.start()
        try:
            client.receive_data(data)
        except TunnelError:
            pass
