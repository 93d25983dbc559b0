"""Bad input against our frpc: a fake frps that misbehaves at login, or names an unknown proxy.

Each refused login must give exactly one log line (no traceback) and a new attempt after frp's
back-off (1 s, 10 % jitter, the first time); a ``StartWorkConn`` for an unknown proxy closes
only that work connection.  frpc runs on the real reactor for I/O, but its timers (login
timeout, retry back-off) run on a :class:`~tests.test_badinput_server.SplitClock` through
:class:`ClockedReactor`, so the 10 s login timeout takes no real time.
"""

from typing import List

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.trial.unittest import TestCase
from zope.interface import directlyProvides, providedBy

from frptw.client import FrpClientService
from frptw.wire import messages as m
from frptw.wire.crypto import AESCFBCodec, derive_key
from tests.badinput import TOKEN, clientConfig, frame
from tests.support import LogCapture, SplitClock, holds, until

LOGIN_TIMEOUT = 10.0
FIRST_RETRY_MIN, FIRST_RETRY_MAX = 1.0, 1.1  # frp: 1 s plus up to 10 % jitter


class ClockedReactor:
    """The real reactor, except that time (``callLater`` with a delay, ``seconds``) is a
    SplitClock the test advances."""

    def __init__(self, realReactor, clock: SplitClock) -> None:
        self._real = realReactor
        self._clock = clock
        directlyProvides(self, providedBy(realReactor))

    def __getattr__(self, name):
        return getattr(self._real, name)

    def callLater(self, delay, f, *args, **kw):
        return self._clock.callLater(delay, f, *args, **kw)

    def seconds(self) -> float:
        return self._clock.seconds()

    def getDelayedCalls(self):
        return self._clock.getDelayedCalls()


class FakeFrpsConnection(Protocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.reader = m.MessageReader()
        self.codec = None
        self.lost = False
        self.received: List[m.Message] = []

    def dataReceived(self, data: bytes) -> None:
        self.reader.feed(self.codec.decode(data) if self.codec else data)
        while (message := self.reader.next_message()) is not None:
            self.received.append(message)
            self.factory.answer(self, message)

    def connectionLost(self, reason=connectionDone) -> None:
        self.lost = True

    def loggedIn(self) -> None:
        """Answer the Login positively and ask for one work connection."""
        self.transport.write(m.encode_message(m.LoginResp(version="0.65.0", run_id="fakerun")))
        self.codec = AESCFBCodec(derive_key(TOKEN))
        self.transport.write(self.codec.encode(m.encode_message(m.ReqWorkConn())))


class FakeFrps(Factory):
    """Listens on 127.0.0.1; ``answer(conn, message)`` is what it does with each message."""

    protocol = FakeFrpsConnection

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections: List[FakeFrpsConnection] = []

    async def listen(self, testcase: TestCase) -> int:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(self)
        testcase.addCleanup(port.stopListening)
        testcase.addCleanup(lambda: [c.transport.abortConnection() for c in self.connections if not c.lost])
        return port.getHost().port


class ClientBadInputTests(TestCase):
    timeout = 30

    async def startClient(self, answer):
        self.logs = LogCapture(self)
        self.frps = FakeFrps(answer)
        port = await self.frps.listen(self)
        self.clock = SplitClock(reactor)
        config = clientConfig(port, "transport.tcpMux = false\ntransport.tls.enable = false")
        self.client = FrpClientService(config, ClockedReactor(reactor, self.clock))
        self.client.startService()
        self.addCleanup(self.client.stopService)
        await until(lambda: len(self.frps.connections) >= 1, "frpc to connect")

    def assertOneLine(self, since: int, *fragments: str) -> None:
        lines = self.logs.reported(since, ("frptw.client", "frptw.transport"))
        self.assertEqual(len(lines), 1, f"expected one log line, got {lines}")
        for fragment in fragments:
            self.assertIn(fragment, lines[0])
        self.assertEqual(self.logs.failures(), [], "a traceback was logged")

    async def assertRetriesWithBackoff(self) -> None:
        """Not before frp's first back-off, but right after it: a new connection."""
        await until(lambda: self.frps.connections[0].lost, "the refused connection to close")
        self.clock.advance(FIRST_RETRY_MIN - 0.05)
        await holds(lambda: len(self.frps.connections) == 1, "no retry before the back-off")
        self.clock.advance(FIRST_RETRY_MAX - FIRST_RETRY_MIN + 0.1)
        await until(lambda: len(self.frps.connections) == 2, "frpc to connect again")

    async def loginRefused(self, answer, *fragments: str) -> None:
        await self.startClient(answer)
        since = 0
        await until(lambda: self.frps.connections[0].lost, "the connection to close")
        # The fake frps may close first (a refused login): frpc's own line is the event to await.
        await until(lambda: self.logs.reported(since, ("frptw.client", "frptw.transport")), "frpc's line about it")
        self.assertOneLine(since, *fragments)
        await self.assertRetriesWithBackoff()

    async def test_garbage_instead_of_login_resp(self):
        await self.loginRefused(lambda conn, msg: conn.transport.write(b"\x00garbage, not a frame"),
                                "connect to frps", "unknown message type")

    async def test_oversized_frame(self):
        await self.loginRefused(lambda conn, msg: conn.transport.write(frame(b"1", 10241)),
                                "connect to frps", "10241")

    async def test_closes_mid_login(self):
        await self.loginRefused(lambda conn, msg: conn.transport.loseConnection(), "connect to frps",
                                "closed during login")

    async def test_wrong_message_instead_of_login_resp(self):
        await self.loginRefused(lambda conn, msg: conn.transport.write(m.encode_message(m.Pong())),
                                "connect to frps", "expected LoginResp")

    async def test_login_refused_by_frps(self):
        error = "token in login doesn't match token from configuration"
        await self.loginRefused(
            lambda conn, msg: (conn.transport.write(m.encode_message(m.LoginResp(version="0.65.0", error=error))),
                               conn.transport.loseConnection()),
            error,
        )

    async def test_no_login_resp_times_out(self):
        await self.startClient(lambda conn, msg: None)
        await until(lambda: self.frps.connections[0].received, "frpc's Login")  # its login timer runs
        self.clock.advance(LOGIN_TIMEOUT - 0.5)
        await holds(lambda: not self.frps.connections[0].lost, "frpc waits for the login timeout")
        self.clock.advance(0.5)
        await until(lambda: self.frps.connections[0].lost, "frpc to give up on the login")
        self.assertOneLine(0, "connect to frps", "no LoginResp within 10 s")
        await self.assertRetriesWithBackoff()

    async def test_start_work_conn_for_unknown_proxy(self):
        def answer(conn, msg):
            if isinstance(msg, m.Login):
                conn.loggedIn()
            elif isinstance(msg, m.NewWorkConn):
                conn.transport.write(m.encode_message(m.StartWorkConn(proxy_name="nope")))

        await self.startClient(answer)
        await self.client.whenLoggedIn()
        formats = [event.get("log_format") or "" for event in self.logs.events]
        since = next(i for i, text in enumerate(formats) if "login to server success" in text) + 1
        await until(lambda: len(self.frps.connections) == 2 and self.frps.connections[1].lost,
                    "the work connection to be closed")
        self.assertOneLine(since, "unknown or stopped proxy [nope]")
        self.assertFalse(self.frps.connections[0].lost, "the control connection was closed")
        self.assertEqual(self.client.runId, "fakerun")
        self.assertEqual(await self.client.whenLoggedIn(), "fakerun")
