"""TLS as frp does it: our client against real frps, real frpc against our server, and both of
ours against each other (self-signed, CA-verified, client certificates, the 0x17 first byte).

Logins here are built by hand (type ``o``, int64 length, JSON) so that the test depends only on
the transport layer.
"""

import datetime
import hashlib
import json
import struct
import time
from typing import Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL
from service_identity import VerificationError
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.error import ConnectionClosed
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.errors import ConfigError
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.tls import (
    CUSTOM_FIRST_BYTE,
    clientContextFactory,
    serverContextFactory,
    startClientTLS,
    startServerTLS,
)
from tests.gofrp import GoFrp
from tests.pki import CLIENT_AUTH, SERVER_AUTH, TestCA
from tests.support import Notifying, Peer, closeOnCleanup, free_port, stalled, tcpPair, tempDir

TOKEN = "tls-test-token"
SERVER_NAME = "frps.example"


def loginFrame(token: str = TOKEN) -> bytes:
    ts = int(time.time())
    body = json.dumps(
        {
            "version": "0.65.0",
            "privilege_key": hashlib.md5(f"{token}{ts}".encode()).hexdigest(),
            "timestamp": ts,
            "pool_count": 1,
        },
        separators=(",", ":"),
    ).encode()
    return b"o" + struct.pack(">q", len(body)) + body


class FirstMessage(Protocol):
    """Reads one v1 frame (type byte, int64 BE length, JSON) and fires ``message`` with
    ``(type, body)``, or fails it with the reason of a close before that; fires ``lost`` with
    the reason's exception on close.  (Cleanups consume a ``message`` failure a test ignored.)"""

    def __init__(self) -> None:
        self.buffer = b""
        self.message: Deferred = Deferred()
        self.lost: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        if not self.message.called and len(self.buffer) >= 9:
            (length,) = struct.unpack(">q", self.buffer[1:9])
            if len(self.buffer) >= 9 + length:
                self.message.callback((self.buffer[:1], json.loads(self.buffer[9 : 9 + length])))

    def connectionLost(self, reason: Failure) -> None:
        if not self.message.called:
            self.message.errback(reason)
        self.lost.callback(reason.value)


class Pki:
    """A throw-away CA with a server certificate (``frps.example``, 127.0.0.1) and a client
    certificate, as PEM files in the test's temporary directory."""

    def __init__(self, testCase: SynchronousTestCase) -> None:
        self.authority = TestCA(tempDir(testCase))
        self.ca = self.authority.ca
        self.serverCert, self.serverKey = self.authority.issueFiles(
            "server", dnsNames=[SERVER_NAME], ipAddresses=["127.0.0.1"], usage=SERVER_AUTH)
        self.clientCert, self.clientKey = self.authority.issueFiles("client", usage=CLIENT_AUTH)


def namedLikeItsCA(testCase: SynchronousTestCase, name: str = "127.0.0.1") -> Tuple[str, str, str]:
    """frp's e2e certificates (test/e2e/pkg/cert): a CA named after the host and one leaf with
    the same name, for server and client alike; (CA, certificate, key) file paths.  OpenSSL
    alone takes such a leaf for self-signed; Go accepts it."""
    authority = TestCA(tempDir(testCase), name=name)
    certFile, keyFile = authority.issueFiles(name, dnsNames=["localhost"], ipAddresses=["127.0.0.1"])
    return authority.ca, certFile, keyFile


class Sniffer(SwitchableProtocol):
    """The server side of our TLS tests: looks at the first byte as frps does (0x17 consumed,
    0x16 kept), starts TLS, and puts ``above`` on top; records the first byte."""

    def __init__(self, contextFactory, above: Protocol) -> None:
        super().__init__()
        self.contextFactory = contextFactory
        self.above = above
        self.firstByte: Optional[bytes] = None
        self.made: Deferred = Deferred()
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        super().connectionMade()
        self.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            self.switchedTo.dataReceived(data)
            return
        self.firstByte = data[:1]
        if self.firstByte == CUSTOM_FIRST_BYTE:
            data = data[1:]
        elif self.firstByte != b"\x16":
            self.transport.abortConnection()
            return
        startServerTLS(self, self.contextFactory, leftover=data).switchTo(self.above)

    def connectionLost(self, reason: Failure) -> None:
        super().connectionLost(reason)
        self.closed.callback(None)

    @property
    def serverName(self) -> Optional[bytes]:
        """The SNI the client sent (None without SNI)."""
        return self.switchedTo.getHandle().get_servername()


class TLSServer:
    """Our TLS server on 127.0.0.1: each connection is sniffed, then read by a FirstMessage."""

    def __init__(self, testCase: TestCase, contextFactory) -> None:
        self.testCase = testCase
        self.contextFactory = contextFactory
        self.firstConnection: Deferred = Deferred()

    async def listen(self) -> int:
        factory = Factory.forProtocol(self._build)
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.testCase.addCleanup(port.stopListening)
        return port.getHost().port

    def _build(self) -> Sniffer:
        reader = FirstMessage()
        sniffer = Sniffer(self.contextFactory, reader)
        self.testCase.addCleanup(_abort, sniffer)
        self.testCase.addCleanup(reader.message.addErrback, lambda _: None)
        if not self.firstConnection.called:
            self.firstConnection.callback(sniffer)
        return sniffer


def _abort(sniffer: Sniffer) -> Deferred:
    if not sniffer.closed.called:
        sniffer.transport.abortConnection()
    return sniffer.closed


async def connectTLS(testCase: TestCase, port: int, contextFactory, customFirstByte: bool) -> FirstMessage:
    """Connect to 127.0.0.1:``port``, start our TLS client and put a FirstMessage on top."""
    raw = SwitchableProtocol()
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(lambda: raw))
    reader = FirstMessage()
    startClientTLS(raw, contextFactory, customFirstByte).switchTo(reader)

    def close() -> Deferred:
        reader.message.addErrback(lambda _: None)
        if not reader.lost.called:
            reader.transport.abortConnection()
        return reader.lost

    testCase.addCleanup(close)
    return reader


def frpsConfig(port: int, extra: str = "") -> str:
    return (
        f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "{TOKEN}"\n'
        f"transport.tcpMux = false\ntransport.tls.force = true\n{extra}"
    )


def frpcConfig(port: int, extra: str = "") -> str:
    return (
        f'serverAddr = "127.0.0.1"\nserverPort = {port}\nauth.token = "{TOKEN}"\n'
        f"loginFailExit = false\ntransport.tcpMux = false\n{extra}"
    )


class OurClientGoServerTests(TestCase):
    """Our TLS client logs in to real frps (which forces TLS, so a plain login would fail)."""

    timeout = 60

    async def login(self, contextFactory, customFirstByte: bool, frpsExtra: str = "") -> dict:
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", frpsConfig(port, frpsExtra))
        self.addCleanup(frps.stop)
        reader = await connectTLS(self, port, contextFactory, customFirstByte)
        reader.transport.write(loginFrame())
        kind, body = await reader.message
        self.assertEqual(kind, b"1", body)
        self.assertEqual(body.get("error", ""), "")
        self.assertTrue(body["run_id"])
        return body

    async def test_frps_refuses_a_plain_login(self) -> None:
        """The control for the tests below: without TLS this frps answers nothing."""
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", frpsConfig(port))
        self.addCleanup(frps.stop)
        reader = FirstMessage()
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(lambda: reader))
        reader.transport.write(loginFrame())
        with self.assertRaises(ConnectionClosed):
            await reader.message

    async def test_login_with_plain_tls(self) -> None:
        await self.login(clientContextFactory("127.0.0.1"), customFirstByte=False)

    async def test_login_with_custom_first_byte(self) -> None:
        await self.login(clientContextFactory(SERVER_NAME), customFirstByte=True)

    async def test_login_verifying_server_and_presenting_client_cert(self) -> None:
        p = Pki(self)
        await self.login(
            clientContextFactory(SERVER_NAME, trustedCaFile=p.ca, certFile=p.clientCert, keyFile=p.clientKey),
            customFirstByte=True,
            frpsExtra=(
                f'transport.tls.certFile = "{p.serverCert}"\ntransport.tls.keyFile = "{p.serverKey}"\n'
                f'transport.tls.trustedCaFile = "{p.ca}"\n'
            ),
        )

    async def test_leaf_named_like_its_ca(self) -> None:
        ca, cert, key = namedLikeItsCA(self)
        await self.login(
            clientContextFactory("127.0.0.1", trustedCaFile=ca, certFile=cert, keyFile=key), customFirstByte=True,
            frpsExtra=f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n'
                      f'transport.tls.trustedCaFile = "{ca}"\n')

    async def test_verification_rejects_frps_self_signed_cert(self) -> None:
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", frpsConfig(port))
        self.addCleanup(frps.stop)
        reader = await connectTLS(self, port, clientContextFactory(SERVER_NAME, trustedCaFile=Pki(self).ca), False)
        reader.transport.write(loginFrame())
        with self.assertRaises(SSL.Error) as caught:
            await reader.message
        self.assertIn("certificate verify failed", str(caught.exception))


class GoClientOurServerTests(TestCase):
    """Real frpc handshakes with our startServerTLS and sends its Login over it."""

    timeout = 60

    async def firstLogin(self, contextFactory, frpcExtra: str) -> Sniffer:
        server = TLSServer(self, contextFactory)
        port = await server.listen()
        frpc = await GoFrp.start(reactor, "frpc", frpcConfig(port, frpcExtra), ready=None)
        self.addCleanup(frpc.stop)
        sniffer = await server.firstConnection
        kind, body = await sniffer.above.message
        self.assertEqual(kind, b"o")
        self.assertEqual(body["version"], "0.65.0")
        ts = body["timestamp"]
        self.assertEqual(body["privilege_key"], hashlib.md5(f"{TOKEN}{ts}".encode()).hexdigest())
        return sniffer

    async def test_default_tls_starts_with_client_hello(self) -> None:
        sniffer = await self.firstLogin(serverContextFactory(), "")
        self.assertEqual(sniffer.firstByte, b"\x16")
        self.assertIsNone(sniffer.serverName)

    async def test_custom_first_byte_is_consumed(self) -> None:
        sniffer = await self.firstLogin(
            serverContextFactory(),
            f'transport.tls.disableCustomTLSFirstByte = false\ntransport.tls.serverName = "{SERVER_NAME}"\n',
        )
        self.assertEqual(sniffer.firstByte, CUSTOM_FIRST_BYTE)
        self.assertEqual(sniffer.serverName, SERVER_NAME.encode())

    async def test_frpc_verifies_our_cert_and_presents_its_own(self) -> None:
        p = Pki(self)
        await self.firstLogin(
            serverContextFactory(p.serverCert, p.serverKey, trustedCaFile=p.ca),
            f'transport.tls.serverName = "{SERVER_NAME}"\ntransport.tls.trustedCaFile = "{p.ca}"\n'
            f'transport.tls.certFile = "{p.clientCert}"\ntransport.tls.keyFile = "{p.clientKey}"\n',
        )


    async def test_leaf_named_like_its_ca(self) -> None:
        ca, cert, key = namedLikeItsCA(self)
        await self.firstLogin(
            serverContextFactory(cert, key, trustedCaFile=ca),
            f'transport.tls.trustedCaFile = "{ca}"\ntransport.tls.certFile = "{cert}"\n'
            f'transport.tls.keyFile = "{key}"\n')


class OurClientOurServerTests(TestCase):
    """Both ends ours: data after the handshake, SNI, verification and client certificates."""

    timeout = 30

    async def exchange(self, serverFactory, clientFactory, customFirstByte: bool = False) -> Sniffer:
        server = TLSServer(self, serverFactory)
        port = await server.listen()
        reader = await connectTLS(self, port, clientFactory, customFirstByte)
        reader.transport.write(loginFrame())
        sniffer = await server.firstConnection
        kind, body = await sniffer.above.message
        self.assertEqual(kind, b"o")
        sniffer.above.transport.write(b"1" + struct.pack(">q", 2) + b"{}")
        self.assertEqual(await reader.message, (b"1", {}))
        return sniffer

    async def test_self_signed_unverified(self) -> None:
        sniffer = await self.exchange(serverContextFactory(), clientContextFactory("127.0.0.1"), True)
        self.assertEqual(sniffer.firstByte, CUSTOM_FIRST_BYTE)

    async def test_sni_sent_for_names(self) -> None:
        sniffer = await self.exchange(serverContextFactory(), clientContextFactory(SERVER_NAME))
        self.assertEqual(sniffer.serverName, SERVER_NAME.encode())

    async def test_ca_verified_with_client_cert(self) -> None:
        p = Pki(self)
        await self.exchange(
            serverContextFactory(p.serverCert, p.serverKey, trustedCaFile=p.ca),
            clientContextFactory("127.0.0.1", trustedCaFile=p.ca, certFile=p.clientCert, keyFile=p.clientKey),
        )

    async def test_server_requires_client_cert(self) -> None:
        p = Pki(self)
        server = TLSServer(self, serverContextFactory(p.serverCert, p.serverKey, trustedCaFile=p.ca))
        port = await server.listen()
        reader = await connectTLS(self, port, clientContextFactory(SERVER_NAME), False)
        reader.transport.write(loginFrame())
        sniffer = await server.firstConnection
        with self.assertRaises(SSL.Error):
            await sniffer.above.message

    async def test_leaf_named_like_another_ca_is_refused(self) -> None:
        """The same names from a CA that is not trusted: refused both ways, as Go refuses it."""
        ca, cert, key = namedLikeItsCA(self)
        _, otherCert, otherKey = namedLikeItsCA(self)
        for serverFiles, clientFiles in (((cert, key), (otherCert, otherKey)), ((otherCert, otherKey), (cert, key))):
            server = TLSServer(self, serverContextFactory(*serverFiles, trustedCaFile=ca))
            port = await server.listen()
            reader = await connectTLS(self, port, clientContextFactory("127.0.0.1", ca, *clientFiles), False)
            reader.transport.write(loginFrame())
            with self.assertRaises(SSL.Error):
                await reader.message

    async def test_wrong_server_name_fails_verification(self) -> None:
        p = Pki(self)
        server = TLSServer(self, serverContextFactory(p.serverCert, p.serverKey))
        port = await server.listen()
        reader = await connectTLS(self, port, clientContextFactory("other.example", trustedCaFile=p.ca), False)
        reader.transport.write(loginFrame())
        with self.assertRaises(VerificationError) as caught:
            await reader.message
        self.assertIn("other.example", str(caught.exception))


class SpliceOverTLSTests(TestCase):
    """A TLS tunnel between two splices carries backpressure: a stopped reader behind the TLS
    server pauses the sender in front of the TLS client (through BIO buffers and producer
    membranes), and every byte arrives once it reads again."""

    timeout = 60

    async def test_stopped_reader_pauses_sender_through_tls(self) -> None:
        total = 16 * 1024 * 1024
        serverTop = Notifying()
        raw, sniffer = SwitchableProtocol(), Sniffer(serverContextFactory(), serverTop)
        await tcpPair(self, raw, sniffer, small=True)
        self.addCleanup(_abort, sniffer)
        clientTop = startClientTLS(raw, clientContextFactory(SERVER_NAME), customFirstByte=True)

        sender, userSide = Peer(seed=5), Notifying()
        await tcpPair(self, sender, userSide, small=True)
        closeOnCleanup(self, sender)
        clientDone = splice(userSide, clientTop)

        reader, backendSide = Peer(seed=6), SwitchableProtocol()
        await tcpPair(self, backendSide, reader, small=True)
        closeOnCleanup(self, reader)
        await serverTop.made
        serverDone = splice(serverTop, backendSide)

        reader.transport.pauseProducing()
        sender.send(total)
        await stalled(sender)
        self.assertLess(sender.sent, total // 2)
        self.assertTrue(backendSide.transport.producerPaused)
        self.assertNotIn(userSide.transport, reactor.getReaders())

        reader.transport.resumeProducing()
        await reader.whenReceived(total)
        self.assertEqual(reader.receivedHash.digest(), sender.sentHash.digest())
        sender.transport.loseConnection()
        await clientDone
        await serverDone
        await reader.lost


class ContextFactoryTests(SynchronousTestCase):
    def test_missing_file_names_it(self) -> None:
        with self.assertRaises(ConfigError) as caught:
            clientContextFactory("x", trustedCaFile="/nonexistent/ca.pem")
        self.assertIn("/nonexistent/ca.pem", str(caught.exception))

    def test_not_pem(self) -> None:
        path = Pki(self).authority.write("garbage.pem", b"not a certificate")
        with self.assertRaises(ConfigError) as caught:
            serverContextFactory(path, Pki(self).serverKey)
        self.assertIn("garbage.pem", str(caught.exception))

    def test_certificate_without_key(self) -> None:
        with self.assertRaises(ConfigError):
            serverContextFactory(certFile=Pki(self).serverCert)

    def test_self_signed_certificate_is_fresh_and_shaped_like_frps(self) -> None:
        """Like frps's (fresh serial, no names or extensions, 10 years), on a P-256 key."""
        one, two = serverContextFactory(), serverContextFactory()
        self.assertIsInstance(one.privateKey, ec.EllipticCurvePrivateKey)
        self.assertEqual(one.privateKey.curve.name, "secp256r1")
        self.assertNotEqual(one.certificate.serial_number, two.certificate.serial_number)
        self.assertLessEqual(one.certificate.serial_number.bit_length(), 128)
        self.assertEqual(one.certificate.subject, x509.Name([]))
        self.assertEqual(len(one.certificate.extensions), 0)
        validity = one.certificate.not_valid_after_utc - one.certificate.not_valid_before_utc
        self.assertEqual(validity, datetime.timedelta(days=3650, hours=1))
