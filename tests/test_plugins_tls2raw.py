"""``tls2raw`` between real programs: TLS clients through our frpc (behind the Go frps) and
the Go frpc behind our frps, a backend that speaks first, certificates from files or made at
start, and bad input (not TLS, a backend that is down, an unreadable certificate)."""

from twisted.internet import reactor, ssl
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.client import FrpClientService
from frptw.client.plugins import ConnectionInfo, PluginContext
from frptw.client.plugins.tls2raw import HANDSHAKE_TIMEOUT
from frptw.client.plugins.tls2raw import build as buildTLS2Raw
from frptw.config import TLS2RawPluginOptions, parse_client_config
from frptw.errors import ProxyError
from frptw.transport.switch import SwitchableProtocol
from tests.pki import TestCA
from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, Talk, talk
from tests.support import LogCapture, free_port, tempDir, until
from tests.traffic import EchoServer


def tls2raw(remote: int, localPort: int, extra: str = "", pluginExtra: str = "") -> str:
    return f"""
[[proxies]]
name = "t2r"
type = "tcp"
remotePort = {remote}
{extra}
[proxies.plugin]
type = "tls2raw"
localAddr = "127.0.0.1:{localPort}"
{pluginExtra}
"""


class _Greeter(Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"220 ready\r\n")

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data.upper())


async def tlsTalk(testcase: TestCase, port: int, send: bytes = b"", trustRoot=None) -> Talk:
    """A TLS client (not verifying the server unless ``trustRoot``) to ``port``."""
    options = ssl.CertificateOptions() if trustRoot is None else ssl.optionsForClientTLS("t2r.example", trustRoot)
    proto = Talk()
    await connectProtocol(wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port)), proto)
    testcase.addCleanup(lambda: proto.transport.connected and proto.transport.abortConnection())
    if send:
        proto.transport.write(send)
    return proto


class TLS2RawInteropTests(PluginRigMixin, TestCase):
    timeout = 90

    async def greeted(self, rig, extra: str = "", trustRoot=None, pluginExtra: str = "") -> bytes:
        """A backend that speaks first: the plugin must dial it after the handshake alone."""
        port = reactor.listenTCP(0, Factory.forProtocol(_Greeter), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        remote = free_port()
        await self.rig(rig, tls2raw(remote, port.getHost().port, extra, pluginExtra), ["t2r"])
        user = await tlsTalk(self, remote, trustRoot=trustRoot)
        await user.waitFor(11, "the backend's greeting")
        user.transport.write(b"quit\r\n")
        return await user.waitFor(17, "the backend's answer")

    async def test_ours_behind_go_frps(self):
        self.assertEqual(await self.greeted(OURS_BEHIND_GO, "transport.useEncryption = true"), b"220 ready\r\nQUIT\r\n")

    async def test_go_behind_our_frps(self):
        self.assertEqual(await self.greeted(GO_BEHIND_OURS), b"220 ready\r\nQUIT\r\n")

    async def test_certificate_files(self):
        ca = TestCA(tempDir(self))
        crt, key = ca.issueFiles("t2r", dnsNames=["t2r.example"])
        trust = ssl.Certificate.loadPEM(open(ca.ca, "rb").read())
        extra = f'crtPath = "{crt}"\nkeyPath = "{key}"'
        for rig in (OURS_BEHIND_GO, GO_BEHIND_GO):
            self.assertEqual(await self.greeted(rig, "", trust, extra), b"220 ready\r\nQUIT\r\n")

    async def test_bulk_traffic(self):
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        await self.rig(OURS_BEHIND_GO, tls2raw(remote, echo.port, "transport.useCompression = true"), ["t2r"])
        payload = bytes(range(256)) * 8192  # 2 MiB
        user = await tlsTalk(self, remote, payload)
        self.assertEqual(await user.waitFor(len(payload), "the echoed 2 MiB", timeout=30), payload)

    async def test_not_tls_closes_that_connection(self):
        """Bytes that are not TLS: one warning, that connection closed (Go's frpc leaves it
        open: its plugin returns without closing), others carry on."""
        logs = LogCapture(self)
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        remote = free_port()
        await self.rig(OURS_BEHIND_GO, tls2raw(remote, echo.port), ["t2r"])
        keeper = await tlsTalk(self, remote, b"before")
        await keeper.waitFor(6, "the keeper's echo")
        for junk in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\x16\x03\x01\x00\x05hello", bytes(range(256)) * 64):
            mark = logs.mark()
            user = await talk(self, remote, junk)
            await until(lambda: user.closed.called, "the junk connection to close")
            self.assertIn(user.received[:1], (b"", b"\x15"))  # nothing, or a TLS alert
            lines = [line for line in logs.texts(since=mark) if "tls2raw" in line]
            self.assertEqual(len(lines), 1, lines)
            self.assertIn("[t2r] tls2raw: tls handshake error:", lines[0])
        keeper.transport.write(b" after")
        self.assertEqual(await keeper.waitFor(12, "the keeper's echo after the junk"), b"before after")

    async def test_backend_down(self):
        logs = LogCapture(self)
        remote = free_port()
        await self.rig(OURS_BEHIND_GO, tls2raw(remote, free_port()), ["t2r"])
        user = await tlsTalk(self, remote)
        await until(lambda: user.closed.called, "the connection to close")
        [line] = [line for line in logs.texts() if "tls2raw" in line]
        self.assertIn("[t2r] tls2raw: dial to local addr error:", line)

    async def test_unreadable_certificate_is_a_start_error(self):
        config = parse_client_config(
            'serverAddr = "127.0.0.1"\nserverPort = 1\n'
            + tls2raw(6000, 22, "", 'crtPath = "/nonexistent/t.crt"\nkeyPath = "/nonexistent/t.key"'), "toml")
        service = FrpClientService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        status = service.proxyStatus("t2r")
        self.assertEqual(status.status, "start error")
        self.assertIn("plugin tls2raw: /nonexistent/t.crt: cannot read certificate", status.err)
        await self.assertFailure(service.whenProxyRunning("t2r"), ProxyError)


class TLS2RawClockTests(SynchronousTestCase):
    def test_handshake_deadline(self) -> None:
        logs = LogCapture(self)
        clock = MemoryReactorClock()
        plugin = buildTLS2Raw(TLS2RawPluginOptions(local_addr="127.0.0.1:9"), PluginContext("t2r", clock))
        conn = SwitchableProtocol()
        transport = StringTransport()
        conn.makeConnection(transport)
        plugin.handle(conn, ConnectionInfo())
        conn.dataReceived(b"\x16\x03\x01")
        clock.advance(HANDSHAKE_TIMEOUT)
        self.assertTrue(transport.disconnected)
        self.assertEqual(clock.tcpClients, [])
        self.assertEqual(logs.texts(),
                         [f"[t2r] tls2raw: tls handshake error: no handshake within {HANDSHAKE_TIMEOUT:g} s"])
