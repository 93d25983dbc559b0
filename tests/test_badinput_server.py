"""Bad input against our frps, on the real reactor, while a good frpc session keeps working.

Issue 4's "bad input" acceptance: garbage on the bind port (plain or inside TLS), a TLS
handshake or a client that stalls, malformed frames, a wrong token, a refused proxy and yamux
protocol errors each close *that* connection (or refuse that proxy) with exactly one log line
and no traceback, while a frptw frpc logged in to the same frps keeps a tcp proxy moving
checked traffic: a long-lived echo connection opened before the bad input still echoes after
it, and a fresh :func:`tests.traffic.exchange` passes.

Timeouts (frps's 10 s first-bytes, TLS handshake, first-stream and first-message deadlines) run on a :class:`SplitClock`
given to the service as its ``clock``: timers with a delay sit on a ``task.Clock`` the test
advances, while zero-delay calls (Twisted's TLS write coalescing, yamux hand-offs) still run on
the reactor, so the good session keeps flowing.

The harness is in :mod:`tests.badinput`.
"""

from typing import Optional

from twisted.internet import reactor
from twisted.internet.ssl import CertificateOptions
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.errors import ProxyError
from frptw.server.bindport import FIRST_BYTE_TIMEOUT, FIRST_MESSAGE_TIMEOUT, FIRST_STREAM_TIMEOUT, TLS_HANDSHAKE_TIMEOUT
from frptw.transport.yamux import YamuxSession
from frptw.wire import messages as m
from frptw.wire import yamux as ywire
from frptw.wire.auth import privilege_key
from tests.badinput import GoodSession, Probe, clientConfig, connectRaw, frame, tcpProxy
from tests.support import LogCapture, free_port


class _TLSProbe(Probe):
    """Starts TLS at once; what it writes is sent after the handshake."""

    def connectionMade(self) -> None:
        self.transport.startTLS(CertificateOptions())


#: (name, bytes of a first message that frps must refuse, whether it then waits for the deadline)
BAD_FIRST_MESSAGES = {
    "unknown_type_byte": (frame(b"z", 2, b"{}"), False),
    "oversized_frame": (frame(b"o", 10241), False),
    "negative_length": (frame(b"o", -1), False),
    "bad_json": (frame(b"o", 5, b"{bad}"), False),
    "truncated_body_then_silence": (frame(b"o", 100, b'{"version":'), True),
    "login_less_new_proxy": (m.encode_message(m.NewProxy(proxy_name="sneaky", proxy_type="tcp")), False),
}


class _BadInputCase:
    """What every bad input must satisfy; subclasses say how the good session is set up and
    how a logical connection is opened (a yamux stream, or a whole TCP connection)."""

    timeout = 30
    serverExtra = ""
    clientExtra = ""

    async def setUpSession(self, **kw) -> GoodSession:
        self.logs = LogCapture(self)
        self.good = await GoodSession.start(self, self.serverExtra, self.clientExtra, **kw)
        return self.good

    async def logical(self) -> Probe:
        raise NotImplementedError

    def assertOneLine(self, since: int, *fragments: str, prefixes=("frptw.server", "frptw.transport")) -> str:
        lines = self.logs.reported(since, prefixes)
        self.assertEqual(len(lines), 1, f"expected one log line, got {lines}")
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        self.assertEqual(self.logs.failures(), [], "a traceback was logged")
        return lines[0]

    async def waitClosed(self, probe: Probe) -> None:
        probe.closed.addTimeout(5, reactor)
        await probe.closed

    async def deadline(self, probe: Probe, seconds: float) -> None:
        """Let frps's deadline pass: not closed a moment before, closed right after."""
        await self.good.sync()  # the bytes (if any) reached frps
        self.good.clock.advance(seconds - 0.5)
        await self.good.sync()
        self.assertFalse(probe.closed.called, "closed before the deadline")
        self.good.clock.advance(0.5)
        await self.waitClosed(probe)

    async def checkFirstMessage(self, name: str, *fragments: str) -> None:
        await self.setUpSession()
        data, waits = BAD_FIRST_MESSAGES[name]
        since = self.logs.mark()
        probe = await self.logical()
        probe.transport.write(data)
        if waits:
            await self.deadline(probe, FIRST_MESSAGE_TIMEOUT)
        else:
            await self.waitClosed(probe)
        self.assertOneLine(since, *fragments)
        await self.good.stillWorks()

    async def test_unknown_type_byte(self):
        await self.checkFirstMessage("unknown_type_byte", "bad first message")

    async def test_oversized_frame(self):
        await self.checkFirstMessage("oversized_frame", "bad first message", "10241")

    async def test_negative_length(self):
        await self.checkFirstMessage("negative_length", "bad first message")

    async def test_bad_json(self):
        await self.checkFirstMessage("bad_json", "bad first message")

    async def test_truncated_body_then_silence(self):
        await self.checkFirstMessage("truncated_body_then_silence", "no frp message in 10 s")

    async def test_login_less_new_proxy(self):
        await self.checkFirstMessage("login_less_new_proxy", "unexpected first message NewProxy")
        self.assertNotIn("sneaky", self.good.server.proxies())

    async def test_wrong_token(self):
        await self.setUpSession()
        since = self.logs.mark()
        probe = await self.logical()
        probe.transport.write(m.encode_message(m.Login(
            version="0.65.0", privilege_key=privilege_key("wrong", 1000), timestamp=1000, pool_count=1)))
        await self.waitClosed(probe)
        [resp] = probe.messages()
        self.assertEqual(resp.error, "token in login doesn't match token from configuration")
        self.assertOneLine(since, "register control error")
        self.assertEqual(list(self.good.server.clients()), [self.good.client.runId])
        await self.good.stillWorks()

    async def test_idle_logical_connection(self):
        """A logical connection that never sends its first message: the 10 s deadline."""
        await self.setUpSession()
        since = self.logs.mark()
        probe = await self.logical()
        await self.deadline(probe, FIRST_MESSAGE_TIMEOUT)
        self.assertOneLine(since)
        await self.good.stillWorks()

    async def test_proxy_port_not_allowed(self):
        """A second client asks for a port outside allow_ports: that proxy is refused."""

        def allowOnlyGood(config, remote):
            config.allow_ports = [(remote, remote)]

        await self.setUpSession(configure=allowOnlyGood)
        other = FrpClientService(clientConfig(self.good.bindPort, self.clientExtra), reactor)
        other.startService()
        self.addCleanup(other.stopService)
        await other.whenLoggedIn()
        since = self.logs.mark()
        config = clientConfig(self.good.bindPort, proxies=tcpProxy("refused", self.good.echo.port, free_port()))
        with self.assertRaises(ProxyError) as caught:
            await other.addProxy(config.proxies[0])
        self.assertIn("port not allowed", str(caught.exception))
        self.assertOneLine(since, "port not allowed")
        self.assertEqual(sorted(self.good.server.proxies()), ["echo"])
        await self.good.stillWorks()

    async def test_max_ports_per_client(self):
        await self.setUpSession(configure=lambda config, remote: setattr(config, "max_ports_per_client", 1))
        since = self.logs.mark()
        config = clientConfig(self.good.bindPort, proxies=tcpProxy("second", self.good.echo.port, free_port()))
        with self.assertRaises(ProxyError) as caught:
            await self.good.client.addProxy(config.proxies[0])
        self.assertIn("exceed the max_ports_per_client", str(caught.exception))
        self.assertOneLine(since, "exceed the max_ports_per_client")
        self.assertEqual(sorted(self.good.server.proxies()), ["echo"])
        await self.good.stillWorks()


class MuxServerTests(_BadInputCase, TestCase):
    """frps and frpc with their defaults: TLS, tcp_mux; bad logical connections are streams of
    a misbehaving client's own yamux session."""

    async def logical(self) -> Probe:
        session = YamuxSession(isClient=True, clock=reactor, keepaliveInterval=None)
        await connectRaw(self, self.good.bindPort, session)
        probe = Probe()
        await session.openStream(probe)
        self.badSession = session
        return probe

    async def checkFirstMessage(self, name: str, *fragments: str) -> None:
        await super().checkFirstMessage(name, *fragments)
        self.assertFalse(self.badSession._closed, "the whole yamux session was closed, not just the stream")

    async def garbage(self, data: bytes, probe: Optional[Probe] = None) -> Probe:
        probe = await connectRaw(self, self.good.bindPort, probe)
        probe.transport.write(data)
        await self.waitClosed(probe)
        return probe

    async def test_garbage_on_bind_port(self):
        await self.setUpSession()
        since = self.logs.mark()
        await self.garbage(b"\x01garbage that is not yamux")
        self.assertOneLine(since, "closing the session")
        await self.good.stillWorks()

    async def test_garbage_after_tls(self):
        await self.setUpSession()
        since = self.logs.mark()
        await self.garbage(b"\x05garbage inside TLS", _TLSProbe())
        self.assertOneLine(since, "closing the session")
        await self.good.stillWorks()

    async def test_tls_garbage_handshake(self):
        await self.setUpSession()
        since = self.logs.mark()
        await self.garbage(b"\x16\x03\x01\x00\x05" + b"\xff" * 64)
        self.assertOneLine(since, "TLS error")
        await self.good.stillWorks()

    async def test_yamux_session_opens_no_stream(self):
        """A yamux session that pings (and is answered) but never opens a stream."""
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.good.bindPort)
        probe.transport.write(ywire.encode_header(ywire.FrameType.PING, ywire.Flag.SYN, 0, 7))
        await self.deadline(probe, FIRST_STREAM_TIMEOUT)
        self.assertOneLine(since, "no yamux stream opened in 10 s")
        await self.good.stillWorks()

    async def test_half_open_sends_nothing(self):
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.good.bindPort)
        await self.deadline(probe, FIRST_BYTE_TIMEOUT)
        self.assertOneLine(since, "nothing received in 10 s")
        await self.good.stillWorks()

    async def test_half_open_sends_five_bytes(self):
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.good.bindPort)
        probe.transport.write(b"\x00\x01\x00\x01\x00")  # the start of a yamux header
        await self.deadline(probe, FIRST_BYTE_TIMEOUT)
        self.assertOneLine(since)
        await self.good.stillWorks()

    async def test_tls_handshake_stalls(self):
        """A ClientHello cut short after its first 31 bytes, then silence: frps got its first
        10 bytes, so the handshake's own deadline ends it (frp has none with tcpMux)."""
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.good.bindPort)
        probe.transport.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20)
        await self.deadline(probe, TLS_HANDSHAKE_TIMEOUT)
        self.assertOneLine(since, "TLS handshake not completed in 10 s")
        await self.good.stillWorks()

    async def test_bad_yamux_version(self):
        await self.setUpSession()
        since = self.logs.mark()
        await self.garbage(ywire.encode_header(ywire.FrameType.WINDOW_UPDATE, ywire.Flag.SYN, 1, 0, version=7))
        self.assertOneLine(since, "closing the session")
        await self.good.stillWorks()

    async def test_yamux_window_overrun(self):
        """A stream opened, then a Data frame larger than the 256 KiB window frps granted."""
        await self.setUpSession()
        since = self.logs.mark()
        size = 256 * 1024 + 1
        opening = ywire.encode_header(ywire.FrameType.WINDOW_UPDATE, ywire.Flag.SYN, 1, 0)
        overrun = ywire.encode_header(ywire.FrameType.DATA, 0, 1, size) + b"\x00" * size
        await self.garbage(opening + overrun)
        self.assertOneLine(since, "closing the session")
        await self.good.stillWorks()


class PlainServerTests(_BadInputCase, TestCase):
    """frps and frpc without tcp_mux or TLS: a logical connection is a whole TCP connection."""

    serverExtra = "transport.tcpMux = false"
    clientExtra = "transport.tcpMux = false\ntransport.tls.enable = false"

    async def logical(self) -> Probe:
        return await connectRaw(self, self.good.bindPort)

    async def test_garbage_on_bind_port(self):
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.good.bindPort)
        probe.transport.write(b"\x00garbage that is no frp message")
        await self.waitClosed(probe)
        self.assertOneLine(since, "bad first message")
        await self.good.stillWorks()
