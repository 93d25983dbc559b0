"""``socks5`` between real programs: the same SOCKS5 conversations through our frpc (behind the
Go frps), through the Go frpc behind our frps, and through the Go pair; the answers must be
the same bytes (the bound port of a successful CONNECT aside)."""

from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.client.plugins import ConnectionInfo, PluginContext
from frptw.client.plugins.socks5 import NEGOTIATION_TIMEOUT
from frptw.client.plugins.socks5 import build as buildSocks5
from frptw.config import Socks5PluginOptions
from frptw.transport.switch import SwitchableProtocol
from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, talk
from tests.support import LogCapture, free_port, until
from tests.traffic import EchoServer

GREET_NONE = b"\x05\x01\x00"
GREET_AUTH = b"\x05\x01\x02\x01\x05alice\x06s3cret"


def connect(host: bytes, port: int, atyp: int = 1, command: int = 1) -> bytes:
    address = bytes([len(host)]) + host if atyp == 3 else host
    return bytes([5, command, 0, atyp]) + address + port.to_bytes(2, "big")


def socksProxies(authPort: int, openPort: int) -> str:
    return f"""
[[proxies]]
name = "auth"
type = "tcp"
remotePort = {authPort}
[proxies.plugin]
type = "socks5"
username = "alice"
password = "s3cret"

[[proxies]]
name = "open"
type = "tcp"
remotePort = {openPort}
transport.useEncryption = true
transport.useCompression = true
[proxies.plugin]
type = "socks5"
"""


class Socks5InteropTests(PluginRigMixin, TestCase):
    timeout = 120

    async def conversations(self, rig) -> dict:
        """Every conversation through ``rig``; returns what each got back."""
        echo4 = await EchoServer.listen(reactor)
        self.addCleanup(echo4.stop)
        echo6 = await EchoServer.listen(reactor, "::1")
        self.addCleanup(echo6.stop)
        closed = free_port()
        authPort, openPort = free_port(), free_port()
        await self.rig(rig, socksProxies(authPort, openPort), ["auth", "open"])
        ipv4 = connect(b"\x7f\x00\x00\x01", echo4.port)
        refusals = {
            "wrong password": (authPort, b"\x05\x01\x02\x01\x05alice\x05wrong"),
            "auth required, none offered": (authPort, GREET_NONE),
            "auth offered, none configured": (openPort, b"\x05\x01\x02"),
            "not socks": (openPort, b"GET http://example.com/ HTTP/1.1\r\n\r\n"),
            "socks4": (openPort, b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00"),
            "bad auth version": (authPort, b"\x05\x01\x02\x02\x05alice\x06s3cret"),
            "bad request version": (openPort, GREET_NONE + b"\x04" + ipv4[1:]),
            "address type 2": (openPort, GREET_NONE + b"\x05\x01\x00\x02"),
            "bind": (openPort, GREET_NONE + connect(b"\x7f\x00\x00\x01", echo4.port, command=2)),
            "udp associate": (openPort, GREET_NONE + connect(b"\x7f\x00\x00\x01", echo4.port, command=3)),
            "refused": (openPort, GREET_NONE + connect(b"\x7f\x00\x00\x01", closed)),
            "unknown host": (openPort, GREET_NONE + connect(b"no-such-host.invalid", 80, atyp=3)),
        }
        results = {}
        for name, (port, data) in refusals.items():
            user = await talk(self, port, data)
            await until(lambda: user.closed.called, f"frpc to close after {name}")
            results[name] = user.received
        tunnels = {
            "ipv4 with auth": (authPort, GREET_AUTH + ipv4, 2 + 2 + 10),
            "ipv6": (openPort, GREET_NONE + connect(bytes(15) + b"\x01", echo6.port, atyp=4), 2 + 22),
            "domain": (openPort, GREET_NONE + connect(b"127.0.0.1", echo4.port, atyp=3), 2 + 10),
        }
        for name, (port, data, answer) in tunnels.items():
            user = await talk(self, port, data + b"ping")
            received = await user.waitFor(answer + 4, name)
            # The bound address is the outgoing connection's (its port varies): keep the type.
            results[name] = received[:answer - 2] + b"<port>" + received[answer:]
            user.transport.loseConnection()
        # After all that, a long tunnel still carries traffic both ways.
        results["traffic"] = await self.bulk(openPort, echo4.port)
        return results

    async def bulk(self, port: int, echoPort: int) -> int:
        user = await talk(self, port, GREET_NONE + connect(b"\x7f\x00\x00\x01", echoPort))
        await user.waitFor(12, "the CONNECT reply")
        payload = bytes(range(256)) * 4096  # 1 MiB
        user.transport.write(payload)
        await user.waitFor(12 + len(payload), "the echoed MiB", timeout=30)
        self.assertEqual(user.received[12:], payload)
        return len(payload)

    async def test_same_answers_as_go_frpc(self):
        go = await self.conversations(GO_BEHIND_GO)
        ours = await self.conversations(OURS_BEHIND_GO)
        self.assertEqual(ours, go)
        self.assertEqual(go["wrong password"], b"\x05\x02\x01\x01")
        self.assertEqual(go["auth required, none offered"], b"\x05\xff")
        self.assertEqual(go["refused"], b"\x05\x00\x05\x05\x00\x01" + bytes(6))
        self.assertEqual(go["ipv4 with auth"], b"\x05\x02\x01\x00\x05\x00\x00\x01\x7f\x00\x00\x01<port>ping")

    async def test_go_frpc_behind_our_frps(self):
        results = await self.conversations(GO_BEHIND_OURS)
        self.assertEqual(results["traffic"], 1024 * 1024)
        self.assertEqual(results["wrong password"], b"\x05\x02\x01\x01")

    async def test_ini_keys_and_one_log_line_per_refusal(self):
        logs = LogCapture(self)
        remote = free_port()
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        ini = (f"[s5]\ntype = tcp\nremote_port = {remote}\nplugin = socks5\nplugin_user = alice\n"
               "plugin_passwd = s3cret\n")
        await self.rig(OURS_BEHIND_GO, ini, ["s5"], fmt="ini")
        user = await talk(self, remote, b"\x05\x01\x02\x01\x05alice\x05wrong")
        await until(lambda: user.closed.called, "the refusal")
        lines = [line for line in logs.texts() if "socks5" in line]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("[s5] socks5: authentication failed for user 'alice', closing connection from 127.0.0.1:", lines[0])
        user = await talk(self, remote, GREET_AUTH + connect(b"\x7f\x00\x00\x01", echo.port) + b"hi")
        self.assertEqual((await user.waitFor(16))[-2:], b"hi")


class SocksSessionTests(SynchronousTestCase):
    """The adapter on an in-memory reactor: the negotiation deadline and pipelined bytes."""

    def session(self):
        self.reactor = MemoryReactorClock()
        plugin = buildSocks5(Socks5PluginOptions(), PluginContext("s", self.reactor))
        conn = SwitchableProtocol()
        self.transport = StringTransport()
        conn.makeConnection(self.transport)
        plugin.handle(conn, ConnectionInfo("203.0.113.9", 5555, "127.0.0.1", 6000))
        return conn

    def test_slow_client_is_cut_off(self) -> None:
        logs = LogCapture(self)
        conn = self.session()
        conn.dataReceived(b"\x05\x01")
        self.reactor.advance(NEGOTIATION_TIMEOUT - 1)
        self.assertFalse(self.transport.disconnecting)
        self.reactor.advance(1)
        self.assertTrue(self.transport.disconnected)
        self.assertEqual(logs.texts(), [f"[s] socks5: no complete request within {NEGOTIATION_TIMEOUT:g} s (greeting), closing connection"])

    def test_pipelined_bytes_wait_for_the_tunnel(self) -> None:
        conn = self.session()
        conn.dataReceived(GREET_NONE + connect(b"\x7f\x00\x00\x01", 9) + b"early")
        conn.dataReceived(b" and more")
        self.reactor.advance(NEGOTIATION_TIMEOUT * 2)  # no deadline once the request is complete
        self.assertFalse(self.transport.disconnected)
        [(host, port, factory, timeout, _)] = self.reactor.tcpClients
        self.assertEqual((host, port, timeout), ("127.0.0.1", 9, 10.0))
        backend = factory.buildProtocol(None)
        backendTransport = StringTransport(hostAddress=IPv4Address("TCP", "127.0.0.1", 40000))
        backend.makeConnection(backendTransport)
        self.reactor.advance(0)
        self.assertEqual(self.transport.value(), b"\x05\x00\x05\x00\x00\x01\x7f\x00\x00\x01\x9c\x40")
        self.assertEqual(backendTransport.value(), b"early and more")
        backend.dataReceived(b"reply")
        self.assertTrue(self.transport.value().endswith(b"reply"))


class Socks5OnSecretProxyTests(PluginRigMixin, TestCase):
    async def test_stcp_proxy_with_socks5_through_a_visitor(self):
        """Plugins serve stcp proxies too: a SOCKS5 CONNECT through our visitor, the Go frps
        and our frpc's stcp proxy."""
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        serverPort = await self.startFrps("go")
        owner = ('user = "owner"\n[[proxies]]\nname = "sec"\ntype = "stcp"\nsecretKey = "s3cret"\n'
                 'allowUsers = ["guest"]\n[proxies.plugin]\ntype = "socks5"\n')
        await self.startFrpc("ours", serverPort, owner, ["sec"])
        bindPort = free_port()
        visitor = (f'user = "guest"\n[[visitors]]\nname = "vis"\ntype = "stcp"\nserverName = "sec"\n'
                   f'serverUser = "owner"\nsecretKey = "s3cret"\nbindAddr = "127.0.0.1"\nbindPort = {bindPort}\n')
        service = await self.startFrpc("ours", serverPort, visitor, [])
        await service.whenLoggedIn()
        user = await talk(self, bindPort, GREET_NONE + connect(b"\x7f\x00\x00\x01", echo.port) + b"via stcp")
        received = await user.waitFor(12 + 8, "the echo through the visitor")
        self.assertEqual((received[:4], received[12:]), (b"\x05\x00\x05\x00", b"via stcp"))
