"""QuicSession and QuicStream on a fake clock over an in-memory datagram network: streams as
transports, frp's close, backpressure both ways, keep-alive, idle timeout, stream limits, ALPN."""

from typing import List, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from frptw.config.model_common import QUICOptions
from frptw.errors import ConnectionClosed
from frptw.transport.quic import SEND_HIGH_WATER, QuicSession
from frptw.transport.quicudp import (
    STREAM_WINDOW,
    clientCertificateCheck,
    clientConfiguration,
    clientSession,
    serverConfiguration,
    serverSession,
)
from tests.pki import TestCA
from tests.support import tempDir

CLIENT = ("127.0.0.1", 40000)
SERVER = ("127.0.0.1", 7002)


class Recorder(Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.lost = None

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.lost = reason


class Echo(Recorder):
    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        self.transport.write(data)


@implementer(IPushProducer)
class Producer:
    def __init__(self) -> None:
        self.paused = False
        self.stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


class Network:
    """Two sessions on one clock; datagrams queue until :meth:`pump` (which may drop some)."""

    def __init__(self, testCase, serverProtocol=Echo, options: QUICOptions = QUICOptions(),
                 serverOptions: QUICOptions = None, serverAlpn=None, clientCertificate=("", ""),
                 checkClient=None) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.queue: List[Tuple[str, bytes]] = []
        self.dropping = False
        self.accepted: List[Protocol] = []
        serverOptions = serverOptions or options
        serverConfig = serverConfiguration(serverOptions)
        if serverAlpn is not None:
            serverConfig.alpn_protocols = [serverAlpn]
        clientConfig = clientConfiguration(options, "frps.test", certFile=clientCertificate[0],
                                           keyFile=clientCertificate[1])
        self.client = clientSession(clientConfig, options, self.clock,
                                    lambda d, a: self.queue.append(("server", d)), SERVER, CLIENT)
        accepted = self.accepted

        def build():
            protocol = serverProtocol()
            accepted.append(protocol)
            return protocol

        self._serverArgs = (serverConfig, serverOptions, Factory.forProtocol(build), checkClient)
        self.server = None
        self.client.start()

    def _serverSession(self, data: bytes) -> QuicSession:
        config, options, factory, checkClient = self._serverArgs
        return serverSession(data, config, options, self.clock, lambda d, a: self.queue.append(("client", d)),
                             CLIENT, SERVER, factory, checkClient)

    def pump(self, seconds: float = 0.5, step: float = 0.002) -> None:
        """Deliver datagrams while ``seconds`` pass on the clock (aioquic paces and delays ACKs)."""
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            queue, self.queue = self.queue, []
            if self.dropping:
                continue
            for where, data in queue:
                if where == "server":
                    if self.server is None:
                        self.server = self._serverSession(data)
                    self.server.datagramReceived(data, CLIENT)
                else:
                    self.client.datagramReceived(data, SERVER)

    def connected(self) -> None:
        done = []
        self.client.whenConnected().addCallback(done.append)
        self.pump(0.2)
        assert done, "handshake did not complete"


class QuicSessionTests(SynchronousTestCase):
    def test_stream_is_a_transport(self):
        """A protocol on a client stream talks to the server's protocol for that stream."""
        net = Network(self)
        net.connected()
        mine = Recorder()
        net.client.openStream(mine)
        mine.transport.write(b"hello frp")
        net.pump()
        self.assertEqual(len(net.accepted), 1)
        self.assertEqual(bytes(net.accepted[0].data), b"hello frp")
        self.assertEqual(bytes(mine.data), b"hello frp")
        self.assertEqual(mine.transport.getPeer(), IPv4Address("UDP", *SERVER))

    def test_close_is_frp_close(self):
        """loseConnection: FIN (and STOP_SENDING); both protocols see a clean end."""
        net = Network(self, serverProtocol=Recorder)
        net.connected()
        mine = Recorder()
        net.client.openStream(mine)
        mine.transport.write(b"last words")
        mine.transport.loseConnection()
        net.pump()
        theirs = net.accepted[0]
        self.assertEqual(bytes(theirs.data), b"last words")
        self.assertIsNotNone(theirs.lost)
        self.assertTrue(theirs.lost.check(ConnectionDone))
        self.assertTrue(mine.lost.check(ConnectionDone))

    def test_paused_reader_stops_the_sender(self):
        """A paused reader earns the writer no window: the writer's bytes wait unsent, its
        producer is paused; resuming delivers everything."""
        net = Network(self, serverProtocol=Recorder)
        net.connected()
        mine = Recorder()
        net.client.openStream(mine)
        mine.transport.write(b"x")
        net.pump()
        theirs = net.accepted[0]
        theirs.transport.pauseProducing()
        producer = Producer()
        mine.transport.registerProducer(producer, True)
        total = 3 * STREAM_WINDOW
        for _ in range(total // 65536):
            mine.transport.write(b"y" * 65536)
        net.pump(2.0)
        self.assertTrue(producer.paused)
        self.assertLessEqual(len(theirs.data), 1)
        unsent = net.client._conn.unsent(mine.transport.streamId)
        self.assertGreater(unsent, SEND_HIGH_WATER)
        self.assertGreaterEqual(unsent, total - STREAM_WINDOW)
        theirs.transport.resumeProducing()
        for _ in range(40):
            net.pump()
            if len(theirs.data) == total + 1:
                break
        self.assertEqual(len(theirs.data), total + 1)
        self.assertFalse(producer.paused)

    def test_max_incoming_streams_is_advertised(self):
        net = Network(self, serverOptions=QUICOptions(max_incoming_streams=3))
        net.connected()
        self.assertEqual(net.client._conn._remote_max_streams_bidi, 3)

    def test_keepalive_ping_when_quiet(self):
        net = Network(self, options=QUICOptions(keepalive_period=10, max_idle_timeout=30))
        net.connected()
        net.pump(1.0)
        net.clock.advance(8.5)
        self.assertEqual(net.queue, [])
        net.clock.advance(1.0)
        self.assertTrue(any(where == "server" for where, _ in net.queue))

    def test_idle_timeout_ends_the_session(self):
        """With the peer silent (every datagram dropped), the session ends after the idle timeout
        and its streams are lost."""
        net = Network(self, options=QUICOptions(keepalive_period=10, max_idle_timeout=5))
        net.connected()
        mine = Recorder()
        net.client.openStream(mine)
        net.dropping = True
        ended = []
        net.client.whenClosed().addCallback(ended.append)
        net.pump(7.0, step=0.05)
        self.assertEqual(ended, [None])
        self.assertIsNotNone(mine.lost)
        self.failureResultOf(net.client.openStream(Recorder()), ConnectionClosed)

    def test_wrong_alpn_is_refused(self):
        """frps only speaks ALPN "frp"; a server offering something else fails the handshake."""
        net = Network(self, serverAlpn="h3")
        result = net.client.whenConnected()
        net.pump(3.0)
        self.failureResultOf(result, ConnectionClosed)

    def certificateNetwork(self, issuer: str):
        """A server that requires client certificates from one CA; the client presents one from
        that CA (``issuer`` "ca"), another CA ("stranger") or none ("")."""
        ca = TestCA(tempDir(self))
        files = ("", "")
        if issuer:
            files = (ca if issuer == "ca" else TestCA(tempDir(self), "stranger")).issueFiles("frpc")
        checked = []
        check = clientCertificateCheck(ca.ca)

        def recordingCheck(leaf, chain):
            checked.append(leaf.subject.rfc4514_string())
            check(leaf, chain)

        net = Network(self, clientCertificate=files, checkClient=recordingCheck)
        mine = Recorder()
        net.pump(0.2)
        if not net.client.closed:
            net.client.openStream(mine)
            mine.transport.write(b"login")
        net.pump()
        return net, checked

    def test_client_certificate_from_the_trusted_ca(self):
        net, checked = self.certificateNetwork("ca")
        self.assertEqual(checked, ["CN=frpc"])
        self.assertEqual(bytes(net.accepted[0].data), b"login")

    def test_no_client_certificate_is_certificate_required(self):
        """Go's alert (certificate_required, CRYPTO_ERROR 0x100 + 116); no stream reaches frps."""
        net, checked = self.certificateNetwork("")
        self.assertEqual((checked, net.accepted), ([], []))
        self.assertTrue(net.client.closed and net.server.closed)
        self.assertEqual(net.server._conn._close_event.error_code, 0x100 + 116)

    def test_client_certificate_from_another_ca_is_bad_certificate(self):
        net, checked = self.certificateNetwork("stranger")
        self.assertEqual((checked, net.accepted), (["CN=frpc"], []))
        self.assertTrue(net.client.closed and net.server.closed)
        self.assertEqual(net.server._conn._close_event.error_code, 0x100 + 42)

    def test_session_close_reaches_the_peer(self):
        net = Network(self)
        net.connected()
        ended = []
        net.server.whenClosed().addCallback(ended.append)
        net.client.close()
        net.pump()
        self.assertEqual(ended, [None])
