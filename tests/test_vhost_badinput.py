"""Bad input on the HTTP vhost port of our frps, on the real reactor (issue 6); and, with the
same session, the PROXY protocol header our frpc writes to an http proxy's backend.

A careful proxy refuses malformed or ambiguous requests before any byte reaches a backend:
oversized heads (431), broken request lines (400), smuggling attempts (400: Content-Length with
Transfer-Encoding, conflicting Content-Lengths, Transfer-Encoding other than plain ``chunked``,
Transfer-Encoding on HTTP/1.0) and heads trickled for longer than the header timeout (closed).
Each is checked on its own connection, with one log line and no traceback, while a keep-alive
connection through our frpc to a recording backend answers before and after, and a fresh
connection works after.

The header timeout runs on a :class:`tests.test_badinput_server.SplitClock` given to the
service and to its HTTP vhost (``HTTPVhost.clock``), so the test advances it.
"""

from typing import List, Optional, Tuple

import h11
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.client.proxyprotocol import V2_SIGNATURE
from frptw.server import FrpServerService
from frptw.transport.http_front import HEADER_TIMEOUT, MAX_HEAD
from tests.badinput import Probe, clientConfig, connectRaw, serverConfig
from tests.h11server import serverEvents
from tests.support import LogCapture, SplitClock, free_port, sleep, until

#: The marker every bad request carries, which must never reach the backend.
EVIL = b"/evil"


class RecordingBackend(Factory):
    """An HTTP/1.1 server answering ``200`` with the request target as body, recording every
    byte any of its connections received."""

    def __init__(self) -> None:
        self.received: List[bytes] = []
        #: The PROXY protocol header each connection started with, if any.
        self.headers: List[bytes] = []

    def buildProtocol(self, addr) -> "_BackendConnection":
        return _BackendConnection(self)

    def seen(self) -> bytes:
        return b"".join(self.received)


class _BackendConnection(Protocol):
    def __init__(self, factory: RecordingBackend) -> None:
        self.factory = factory
        self.conn = h11.Connection(h11.SERVER)
        self.target = b""
        self.start = b""  # the first bytes, until they are known not to be a PROXY header

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        if self.start is not None:
            self.start += data
            data = self._skipProxyHeader()
            if data is None:
                return
        for event in serverEvents(self.conn, data):
            if isinstance(event, h11.Request):
                self.target = event.target
            elif isinstance(event, h11.EndOfMessage):
                body = b"ok " + self.target
                self.transport.write(self.conn.send(h11.Response(
                    status_code=200, headers=[(b"Content-Length", b"%d" % len(body))])))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))


    def _skipProxyHeader(self) -> Optional[bytes]:
        """What follows a leading PROXY header (v1 or v2, recorded in ``factory.headers``), or
        None while the first bytes may still be an incomplete one."""
        start = self.start
        if start.startswith(b"PROXY ") and b"\r\n" in start:
            end = start.index(b"\r\n") + 2
        elif start.startswith(V2_SIGNATURE) and len(start) >= 16:
            end = 16 + int.from_bytes(start[14:16], "big")
        elif len(start) < 16 and (b"PROXY ".startswith(start[:6]) or V2_SIGNATURE.startswith(start[:12])):
            return None
        else:
            end = 0
        if len(start) < end:
            return None
        if end:
            self.factory.headers.append(start[:end])
        self.start = None
        return start[end:]


class KeepAliveClient(Protocol):
    """A user connection making GET requests one after another on the same connection."""

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.CLIENT)
        self.events: list = []
        self.lost = False

    def dataReceived(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while (event := self.conn.next_event()) not in (h11.NEED_DATA, h11.PAUSED):
            self.events.append(event)

    def connectionLost(self, reason=connectionDone) -> None:
        self.lost = True

    async def get(self, host: bytes, path: bytes) -> Tuple[int, bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        self.events = []
        self.transport.write(self.conn.send(h11.Request(method=b"GET", target=path, headers=[(b"Host", host)])))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        await until(lambda: self.lost or any(isinstance(e, h11.EndOfMessage) for e in self.events), "a response")
        if self.lost:
            raise AssertionError(f"connection lost before the response to {path!r}")
        status = next(e.status_code for e in self.events if isinstance(e, h11.Response))
        return status, b"".join(e.data for e in self.events if isinstance(e, h11.Data))


class _VhostSession:
    """Our frps with an HTTP vhost, our frpc with an http proxy ``web`` for ``good.test`` to a
    :class:`RecordingBackend`, and a keep-alive user connection that got one answer."""

    timeout = 30

    async def setUpSession(self, proxyExtra: str = "") -> None:
        self.logs = LogCapture(self)
        self.vhostPort = free_port()
        config = serverConfig(f"vhostHTTPPort = {self.vhostPort}")
        self.clock = SplitClock(reactor)
        self.server = FrpServerService(config, reactor, clock=self.clock)
        self.server.startService()
        self.addCleanup(self.server.stopService)
        bindPort = (await self.server.whenListening()).getHost().port
        self.backend = RecordingBackend()
        listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self.backend)
        self.addCleanup(listening.stopListening)
        proxy = (f'[[proxies]]\nname = "web"\ntype = "http"\nlocalPort = {listening.getHost().port}\n'
                 f'customDomains = ["good.test"]\n{proxyExtra}\n')
        self.client = FrpClientService(clientConfig(bindPort, proxies=proxy), reactor)
        self.client.startService()
        self.addCleanup(self.client.stopService)
        await self.client.whenLoggedIn()
        await until(lambda: self.client.proxyStatus("web").status == "running", "the http proxy to run")
        self.keeper = KeepAliveClient()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.vhostPort), self.keeper)
        self.addCleanup(lambda: self.keeper.transport.connected and self.keeper.transport.abortConnection())
        self.assertEqual(await self.keeper.get(b"good.test", b"/before"), (200, b"ok /before"))

    async def stillWorks(self) -> None:
        """The keep-alive connection answers again and a new connection works too."""
        self.assertEqual(await self.keeper.get(b"good.test", b"/after"), (200, b"ok /after"))
        fresh = KeepAliveClient()
        await connectRaw(self, self.vhostPort, fresh)
        self.assertEqual(await fresh.get(b"Good.Test:80", b"/fresh"), (200, b"ok /fresh"))
        self.assertNotIn(EVIL, self.backend.seen())
        self.assertEqual(self.logs.failures(), [], "a traceback was logged")

    def assertOneLine(self, since: int, *fragments: str) -> None:
        lines = self.logs.reported(since, ("frptw.server", "frptw.transport.http_front"))
        self.assertEqual(len(lines), 1, f"expected one log line, got {lines}")
        for fragment in fragments:
            self.assertIn(fragment, lines[0])



class BadInputTests(_VhostSession, TestCase):
    """Each test: good request, one kind of bad input on its own connection, good requests."""

    async def rejected(self, data: bytes, status: Optional[bytes], *fragments: str) -> Probe:
        """Send ``data`` on a new connection: answered ``status`` (None: no answer) and closed."""
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.vhostPort)
        probe.transport.write(data)
        probe.closed.addTimeout(5, reactor)
        await probe.closed
        if status is None:
            self.assertEqual(probe.received, b"")
        else:
            self.assertTrue(probe.received.startswith(b"HTTP/1.1 " + status + b"\r\n"), probe.received[:100])
            self.assertIn(b"\r\nConnection: close\r\n", probe.received)
        self.assertOneLine(since, "closing http connection from 127.0.0.1:", *fragments)
        await self.stillWorks()
        return probe

    # -- malformed heads -----------------------------------------------------------------------
    async def test_oversized_head(self):
        await self.rejected(b"GET /evil HTTP/1.1\r\nHost: good.test\r\nX-Big: " + b"a" * (MAX_HEAD + 1024),
                            b"431 Request Header Fields Too Large")

    async def test_too_many_headers(self):
        await self.rejected(b"GET /evil HTTP/1.1\r\nHost: good.test\r\n" + b"X-Many: y\r\n" * 200 + b"\r\n",
                            b"431 Request Header Fields Too Large", "too many headers")

    async def test_invalid_request_line(self):
        await self.rejected(b"GET /evil HTTP/1.1 trailing\r\nHost: good.test\r\n\r\n", b"400 Bad Request")

    async def test_binary_garbage(self):
        await self.rejected(b"\x00\x01\x02 /evil \xff\xfe\r\n\r\n", b"400 Bad Request")

    async def test_header_without_colon(self):
        await self.rejected(b"GET /evil HTTP/1.1\r\nHost: good.test\r\nNo colon here\r\n\r\n", b"400 Bad Request")

    # -- request smuggling ---------------------------------------------------------------------
    async def smuggle(self, headers: bytes, body: bytes, *fragments: str) -> None:
        """A POST to the good route whose framing is ambiguous, followed by a smuggled request."""
        smuggled = b"GET /evil/smuggled HTTP/1.1\r\nHost: good.test\r\n\r\n"
        await self.rejected(b"POST /evil HTTP/1.1\r\nHost: good.test\r\n" + headers + b"\r\n" + body + smuggled,
                            b"400 Bad Request", *fragments)

    async def test_content_length_and_transfer_encoding(self):
        await self.smuggle(b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n",
                           "both Content-Length and Transfer-Encoding")

    async def test_transfer_encoding_then_content_length(self):
        await self.smuggle(b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", b"0\r\n\r\n",
                           "both Content-Length and Transfer-Encoding")

    async def test_conflicting_content_lengths(self):
        await self.smuggle(b"Content-Length: 5\r\nContent-Length: 0\r\n", b"", "Content-Length")

    async def test_content_length_list(self):
        await self.smuggle(b"Content-Length: 0, 5\r\n", b"", "Content-Length")

    async def test_chunked_then_identity(self):
        await self.smuggle(b"Transfer-Encoding: chunked, identity\r\n", b"0\r\n\r\n", "Transfer-Encoding")

    async def test_xchunked(self):
        await self.smuggle(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n", "Transfer-Encoding")

    async def test_two_transfer_encoding_headers(self):
        await self.smuggle(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n",
                           "Transfer-Encoding")

    async def test_space_before_colon(self):
        await self.smuggle(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n")

    async def test_transfer_encoding_on_http10(self):
        """RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (Go
        ignores the header and would read the chunks as the next request)."""
        smuggled = b"GET /evil/smuggled HTTP/1.1\r\nHost: good.test\r\n\r\n"
        await self.rejected(b"POST /evil HTTP/1.0\r\nHost: good.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"0\r\n\r\n" + smuggled, b"400 Bad Request", "HTTP/1.0")

    # -- slowloris -----------------------------------------------------------------------------
    async def test_slowloris(self):
        """A head trickled a byte at a time is closed when the header timeout expires, however
        recently the last byte came."""
        await self.setUpSession()
        since = self.logs.mark()
        probe = await connectRaw(self, self.vhostPort)
        head = b"GET /evil HTTP/1.1\r\nHost: good.test\r\nX-Slow: " + b"z" * 40
        step = (HEADER_TIMEOUT - 1) / len(head)
        for byte in head:
            probe.transport.write(bytes([byte]))
            await sleep(0.002)  # pacing: each byte is "recent" when the clock moves on
            self.clock.advance(step)
        # A request through the same vhost port: frps has read the trickle and had its turns.
        self.assertEqual(await self.keeper.get(b"good.test", b"/during"), (200, b"ok /during"))
        self.assertFalse(probe.closed.called, "closed before the header timeout")
        self.clock.advance(1)
        probe.closed.addTimeout(5, reactor)
        await probe.closed
        self.assertEqual(probe.received, b"")
        self.assertOneLine(since, "no request head within 60")
        await self.stillWorks()


class ProxyProtocolTests(_VhostSession, TestCase):
    """frpc writes the PROXY header to an http proxy's backend from StartWorkConn: source = the
    HTTP user, destination = 127.0.0.1:0, since frps sends none for http (wire-protocol.md §7.4)."""

    async def headerFor(self, version: str) -> Tuple[bytes, int]:
        await self.setUpSession(f'transport.proxyProtocolVersion = "{version}"')
        await self.stillWorks()
        self.assertEqual(len(self.backend.headers), 1, "one work connection, reused: one header")
        return self.backend.headers[0], self.keeper.transport.getHost().port

    async def test_v1(self):
        header, port = await self.headerFor("v1")
        self.assertEqual(header, b"PROXY TCP4 127.0.0.1 127.0.0.1 %d 0\r\n" % port)

    async def test_v2(self):
        header, port = await self.headerFor("v2")
        address = bytes([127, 0, 0, 1]) * 2 + port.to_bytes(2, "big") + b"\x00\x00"
        self.assertEqual(header, V2_SIGNATURE + b"\x21\x11\x00\x0c" + address)
