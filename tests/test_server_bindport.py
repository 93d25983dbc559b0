"""The bind-port sniffer and the first-message reader, with StringTransport and task.Clock."""

from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.server.bindport import (
    FIRST_BYTE_TIMEOUT,
    FIRST_MESSAGE_TIMEOUT,
    FIRST_STREAM_TIMEOUT,
    TLS_HANDSHAKE_TIMEOUT,
    BindConnection,
    LogicalConnection,
)
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tls import clientContextFactory, serverContextFactory, startClientTLS
from frptw.transport.yamux import YamuxSession, YamuxStream
from frptw.wire import messages as m
from frptw.wire import yamux as ywire
from tests.support import LogCapture, pumpStrings

LOGIN = m.Login(version="0.65.0", privilege_key="k", timestamp=1, pool_count=1)

_SERVER_TLS = []


def serverTLS():
    """One self-signed server context for the whole module (RSA key generation is slow)."""
    if not _SERVER_TLS:
        _SERVER_TLS.append(serverContextFactory())
    return _SERVER_TLS[0]


class FakeHost:
    """The parts of FrpServerService that bind-port connections use, recorded."""

    def __init__(self, tcpMux=False, tlsRequired=False):
        self.clock = Clock()
        self.tcpMux = tcpMux
        self.muxKeepaliveInterval = 0
        self.tlsRequired = tlsRequired
        self.opened, self.closed, self.dispatched = [], [], []

    def tlsContextFactory(self):
        return serverTLS()

    def connectionOpened(self, conn):
        self.opened.append(conn)

    def connectionClosed(self, conn):
        self.closed.append(conn)

    def dispatch(self, conn, message, leftover):
        self.dispatched.append((conn, message, leftover))


def connect(protocol):
    transport = StringTransport()
    protocol.makeConnection(transport)
    return transport


class BindConnectionTests(SynchronousTestCase):
    def test_plain_connection_without_mux_is_one_logical_connection(self):
        host = FakeHost()
        conn = BindConnection(host)
        connect(conn)
        data = m.encode_message(LOGIN)
        conn.dataReceived(data[:5])
        conn.dataReceived(data[5:] + b"after")
        [(logical, message, leftover)] = host.dispatched
        self.assertIsInstance(logical, LogicalConnection)
        self.assertEqual(message, LOGIN)
        self.assertEqual(leftover, b"after")
        self.assertEqual(host.opened, [conn])

    def test_plain_refused_when_tls_is_required(self):
        host, logs = FakeHost(tlsRequired=True), LogCapture(self)
        conn = BindConnection(host)
        transport = connect(conn)
        conn.dataReceived(m.encode_message(LOGIN))
        conn.dataReceived(b"more")
        self.assertTrue(transport.disconnected)
        self.assertEqual(host.dispatched, [])
        self.assertEqual(len([t for t in logs.texts(("frptw.server",)) if "requires TLS" in t]), 1)

    def test_silent_connection_is_closed_after_ten_seconds(self):
        host, logs = FakeHost(), LogCapture(self)
        conn = BindConnection(host)
        transport = connect(conn)
        host.clock.advance(FIRST_BYTE_TIMEOUT - 0.1)
        self.assertFalse(transport.disconnected)
        host.clock.advance(0.2)
        self.assertTrue(transport.disconnected)
        self.assertEqual(len(logs.texts(("frptw.server",))), 1)

    def test_first_bytes_stop_the_timer(self):
        """frp sniffs 10 bytes before deciding; once they are in, the sniff deadline is off."""
        host = FakeHost()
        conn = BindConnection(host)
        transport = connect(conn)
        host.clock.advance(5)
        conn.dataReceived(b"o" + (100).to_bytes(8, "big") + b"{")  # a Login, still incomplete
        host.clock.advance(5.1)
        # The first-message timer of the logical connection runs instead, from the first byte.
        self.assertFalse(transport.disconnected)
        host.clock.advance(FIRST_MESSAGE_TIMEOUT - 5)
        self.assertTrue(transport.disconnected)

    def test_connection_lost_is_reported_and_awaitable(self):
        host = FakeHost()
        conn = BindConnection(host)
        connect(conn)
        d = conn.whenClosed()
        conn.dataReceived(b"o")
        conn.connectionLost()
        self.assertEqual(host.closed, [conn])
        self.assertIsNone(self.successResultOf(d))
        self.assertIsNone(self.successResultOf(conn.whenClosed()))

    def tlsLogin(self, customFirstByte):
        host = FakeHost()
        server = BindConnection(host)
        serverTransport = connect(server)
        client, clientClock = SwitchableProtocol(), Clock()
        clientTransport = connect(client)
        top = startClientTLS(client, clientContextFactory("frps.test"), customFirstByte)
        first = clientTransport.value()[:1]
        top.switchTo(Protocol())
        top.transport.write(m.encode_message(LOGIN))
        pumpStrings(server, serverTransport, client, clientTransport, (host.clock, clientClock))
        return host, first

    def test_tls_with_custom_first_byte(self):
        host, first = self.tlsLogin(customFirstByte=True)
        self.assertEqual(first, b"\x17")
        [(_, message, leftover)] = host.dispatched
        self.assertEqual((message, leftover), (LOGIN, b""))

    def test_tls_with_plain_client_hello(self):
        host, first = self.tlsLogin(customFirstByte=False)
        self.assertEqual(first, b"\x16")
        [(_, message, _)] = host.dispatched
        self.assertEqual(message, LOGIN)

    def test_mux_streams_are_logical_connections(self):
        host = FakeHost(tcpMux=True)
        server = BindConnection(host)
        serverTransport = connect(server)
        clientSession = YamuxSession(isClient=True, clock=Clock(), keepaliveInterval=0)
        clientTransport = connect(clientSession)
        streams = []
        for i in range(2):
            proto = Protocol()
            clientSession.openStream(proto)
            streams.append(proto)
            proto.transport.write(m.encode_message(m.NewWorkConn(run_id=f"r{i}")))
        pumpStrings(server, serverTransport, clientSession, clientTransport)
        self.assertEqual([msg.run_id for _, msg, _ in host.dispatched], ["r0", "r1"])
        for logical, _, _ in host.dispatched:
            self.assertIsInstance(logical.transport, YamuxStream)

    def test_tls_handshake_deadline(self):
        """A handshake cut short: closed TLS_HANDSHAKE_TIMEOUT after it started, with or without
        mux, whatever came first; one that completes is not."""
        hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 20
        for mux in (False, True):
            host, logs = FakeHost(tcpMux=mux), LogCapture(self)
            conn = BindConnection(host)
            transport = connect(conn)
            host.clock.advance(FIRST_BYTE_TIMEOUT - 1)
            conn.dataReceived(hello)
            host.clock.advance(TLS_HANDSHAKE_TIMEOUT - 0.1)
            self.assertFalse(transport.disconnecting)
            host.clock.advance(0.2)
            self.assertTrue(transport.disconnecting)
            self.assertEqual(logs.texts(("frptw.server",)),
                             [f"closing connection from {transport.getPeer().host}:{transport.getPeer().port}: "
                              f"TLS handshake not completed in 10 s"])
            conn.connectionLost()
        host, _ = self.tlsLogin(customFirstByte=True)
        self.assertEqual(host.clock.getDelayedCalls(), [])  # handshake and first message deadlines: off

    def test_yamux_session_must_open_a_stream(self):
        """A session that only pings (and is answered) is closed FIRST_STREAM_TIMEOUT after
        its first bytes."""
        host, logs = FakeHost(tcpMux=True), LogCapture(self)
        server = BindConnection(host)
        transport = connect(server)
        server.dataReceived(ywire.encode_header(ywire.FrameType.PING, ywire.Flag.SYN, 0, 7))
        self.assertNotEqual(transport.value(), b"")  # the ping's answer
        host.clock.advance(FIRST_STREAM_TIMEOUT - 0.1)
        self.assertFalse(transport.disconnecting)
        host.clock.advance(0.2)
        self.assertTrue(transport.disconnecting)
        [line] = logs.texts(("frptw.server",))
        self.assertIn("no yamux stream opened in 10 s", line)

    def test_first_stream_stops_the_session_deadline(self):
        """Once a stream is open, only that stream's first-message deadline runs."""
        host = FakeHost(tcpMux=True)
        server = BindConnection(host)
        serverTransport = connect(server)
        clientSession = YamuxSession(isClient=True, clock=Clock(), keepaliveInterval=0)
        clientTransport = connect(clientSession)
        clientSession.openStream(Protocol())
        pumpStrings(server, serverTransport, clientSession, clientTransport)
        host.clock.advance(FIRST_STREAM_TIMEOUT + FIRST_MESSAGE_TIMEOUT)
        self.assertFalse(serverTransport.disconnecting)
        self.assertEqual(host.clock.getDelayedCalls(), [])

    def test_tls_failure_is_logged_once(self):
        for mux in (False, True):
            host, logs = FakeHost(tcpMux=mux), LogCapture(self)
            conn = BindConnection(host)
            transport = connect(conn)
            conn.dataReceived(b"\x16\x03\x01\x00\x05" + b"\xff" * 64)
            self.assertTrue(transport.disconnecting)
            conn.connectionLost()
            [line] = logs.texts(("frptw.server",))
            self.assertIn("TLS error", line)


class LogicalConnectionTests(SynchronousTestCase):
    def test_garbage_closes_with_one_log_line(self):
        host, logs = FakeHost(), LogCapture(self)
        conn = LogicalConnection(host)
        transport = connect(conn)
        conn.dataReceived(b"GET / HTTP/1.1\r\n")
        conn.dataReceived(b"more garbage")
        self.assertTrue(transport.disconnected)
        self.assertEqual(host.dispatched, [])
        self.assertEqual(len(logs.texts(("frptw.server",))), 1)
        self.assertIn("bad first message", logs.texts(("frptw.server",))[0])

    def test_oversized_frame_is_refused_from_its_header(self):
        host = FakeHost()
        conn = LogicalConnection(host)
        transport = connect(conn)
        conn.dataReceived(b"o" + (10241).to_bytes(8, "big"))
        self.assertTrue(transport.disconnected)

    def test_no_message_in_ten_seconds(self):
        host, logs = FakeHost(), LogCapture(self)
        conn = LogicalConnection(host)
        transport = connect(conn)
        conn.dataReceived(m.encode_message(LOGIN)[:7])
        host.clock.advance(FIRST_MESSAGE_TIMEOUT + 0.1)
        self.assertTrue(transport.disconnected)
        self.assertIn("no frp message", logs.texts(("frptw.server",))[0])

    def test_bytes_after_dispatch_are_held(self):
        host = FakeHost()
        conn = LogicalConnection(host)
        connect(conn)
        conn.dataReceived(m.encode_message(m.NewWorkConn(run_id="r")))
        conn.dataReceived(b"early")
        host.clock.advance(FIRST_MESSAGE_TIMEOUT * 2)
        target = SwitchableProtocol()
        conn.switchTo(target)
        self.assertEqual(b"".join(target._held), b"early")

    def test_on_lost_only_before_switch(self):
        host, lost = FakeHost(), []
        conn = LogicalConnection(host)
        connect(conn)
        conn.onLost = lost.append
        conn.connectionLost()
        self.assertEqual(lost, [conn])
        other = LogicalConnection(host)
        connect(other)
        other.onLost = lost.append
        other.switchTo(Protocol())
        other.connectionLost()
        self.assertEqual(lost, [conn])
