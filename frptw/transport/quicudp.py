"""frp's QUIC on UDP sockets: frpc's dialer, frps's listener, and their TLS settings.

:class:`~frptw.transport.quic.QuicSession` only needs datagrams in and a ``send`` out; this
module gives it sockets.  :func:`dialQuic` opens frpc's socket to frps and fires once the
handshake is done; :class:`QuicListener` is frps's ``quicBindPort``, one socket shared by
every client's session, told apart by the client's address (frp's clients do not migrate).

TLS as frp sets it up (wire-protocol.md §2.8): ALPN ``frp``; the client sends
``tls.serverName`` (or the server address) and verifies the server only against a configured
trusted CA, presenting its certificate when one is configured; the server presents its
configured certificate or a self-signed one and, with ``tls.trustedCaFile``, requires a client
certificate that chains to one of those CAs (:func:`clientCertificateCheck`), as frps does on
its TCP bind port.
"""

import ssl
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

from aioquic.buffer import Buffer
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.packet import QuicPacketType, pull_quic_header
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from OpenSSL import crypto
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.error import TimeoutError as DialTimeout
from twisted.internet.interfaces import IProtocolFactory, IReactorTime
from twisted.internet.protocol import DatagramProtocol

from frptw.config.model_common import QUICOptions
from frptw.errors import ConfigError
from frptw.logs import FrpLogger
from frptw.transport.addresses import udpAddress
from frptw.transport.quic import ALPN, ClientCertificateCheck, FrpQuicConnection, QuicSession
from frptw.transport.sockets import sendDatagram, widenDatagramBuffers
from frptw.transport.timers import cancelCall
from frptw.transport.tls import IssuedByTrusted, loadCertificates, serverIdentity

log = FrpLogger()

#: Receive window of a stream: what a paused reader may have to hold (frp's yamux uses 6 MiB).
STREAM_WINDOW = 4 * 1024 * 1024
#: Receive window of the whole connection, before aioquic widens it.
CONNECTION_WINDOW = 16 * 1024 * 1024
#: The smallest datagram that may open a QUIC connection (RFC 9000 §14.1).
MIN_INITIAL_SIZE = 1200

Address = Tuple[str, int]


def _common(options: QUICOptions, isClient: bool) -> QuicConfiguration:
    return QuicConfiguration(
        is_client=isClient,
        alpn_protocols=[ALPN],
        idle_timeout=float(options.max_idle_timeout),
        max_stream_data=STREAM_WINDOW,
        max_data=CONNECTION_WINDOW,
        congestion_control_algorithm="cubic",
    )


def clientConfiguration(
    options: QUICOptions,
    serverName: str,
    trustedCaFile: str = "",
    certFile: str = "",
    keyFile: str = "",
) -> QuicConfiguration:
    """frpc's QUIC TLS settings; raises ConfigError naming a file that cannot be used."""
    configuration = _common(options, isClient=True)
    configuration.server_name = serverName or None
    try:
        if certFile or keyFile:
            if not (certFile and keyFile):
                raise ConfigError(f"TLS certificate {certFile!r} and key {keyFile!r}: both or neither must be set")
            configuration.load_cert_chain(certFile, keyFile)
        if trustedCaFile:
            configuration.load_verify_locations(cafile=trustedCaFile)
            configuration.verify_mode = ssl.CERT_REQUIRED
        else:
            configuration.verify_mode = ssl.CERT_NONE
    except (OSError, ValueError) as e:
        raise ConfigError(f"QUIC TLS files: {e}") from None
    return configuration


def serverConfiguration(options: QUICOptions, certFile: str = "", keyFile: str = "") -> QuicConfiguration:
    """frps's QUIC TLS settings; raises ConfigError naming a file that cannot be used."""
    configuration = _common(options, isClient=False)
    identity = serverIdentity(certFile or None, keyFile or None)
    configuration.certificate = identity["certificate"]
    configuration.private_key = identity["privateKey"]
    configuration.certificate_chain = identity.get("extraCertChain", [])
    return configuration


def clientCertificateCheck(trustedCaFile: str) -> ClientCertificateCheck:
    """frps's check of a QUIC client's certificate, as Go's ``RequireAndVerifyClientCert`` with
    the CAs of ``trustedCaFile``: a chain to one of them (OpenSSL's verification, as on the TCP
    bind port) and, if the certificate names extended key usages, client authentication (or any)
    among them.  Raises ConfigError naming a file that cannot be read."""
    store = crypto.X509Store()
    cas = loadCertificates(trustedCaFile, "CA certificate")
    for ca in cas:
        store.add_cert(crypto.X509.from_cryptography(ca))
    trusted = IssuedByTrusted(cas)

    def check(leaf: x509.Certificate, chain: List[x509.Certificate]) -> None:
        try:
            usages = set(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        except x509.ExtensionNotFound:
            usages = {ExtendedKeyUsageOID.CLIENT_AUTH}
        if not usages & {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}:
            raise ValueError("certificate specifies an incompatible key usage")
        intermediates = [crypto.X509.from_cryptography(c) for c in chain]
        try:
            crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf), intermediates).verify_certificate()
        except crypto.X509StoreContextError as e:
            errno, depth = e.errors[:2]
            if not trusted.overrules(errno, depth, leaf):
                raise ValueError(str(e)) from None

    return check


def clientSession(configuration: QuicConfiguration, options: QUICOptions, clock: IReactorTime,
                  send: Callable[[bytes, Address], None], server: Address, local: Address,
                  acceptFactory: Optional[IProtocolFactory] = None) -> QuicSession:
    """The client side of a QUIC connection to ``server`` over any UDP socket (``send`` puts a
    datagram on it; feed it what arrives from ``server``); call ``start()`` to send the
    Initial.  frpc's socket uses it, and so can a punched hole (xtcp)."""
    connection = FrpQuicConnection(configuration=configuration, maxIncomingStreams=options.max_incoming_streams)
    connection.connect(server, now=clock.seconds())
    return QuicSession(connection, clock, send, peer=udpAddress(*server), host=udpAddress(*local),
                       acceptFactory=acceptFactory, keepalivePeriod=options.keepalive_period)


def serverSession(datagram: bytes, configuration: QuicConfiguration, options: QUICOptions, clock: IReactorTime,
                  send: Callable[[bytes, Address], None], client: Address, local: Address,
                  acceptFactory: Optional[IProtocolFactory],
                  checkClient: Optional[ClientCertificateCheck] = None) -> Optional[QuicSession]:
    """The server side of a QUIC connection whose first datagram from ``client`` is
    ``datagram``, or None unless that is a full-sized Initial of a version we speak.  Feed it
    ``datagram`` and what follows.  frps's listener uses it, and so can a punched hole."""
    if len(datagram) < MIN_INITIAL_SIZE:
        return None
    try:
        header = pull_quic_header(Buffer(data=datagram), host_cid_length=configuration.connection_id_length)
    except ValueError:
        return None
    if header.packet_type != QuicPacketType.INITIAL or header.version not in configuration.supported_versions:
        return None
    connection = FrpQuicConnection(
        configuration=configuration,
        original_destination_connection_id=header.destination_cid,
        maxIncomingStreams=options.max_incoming_streams,
        clientCertificateCheck=checkClient,
    )
    return QuicSession(connection, clock, send, peer=udpAddress(*client), host=udpAddress(*local),
                       acceptFactory=acceptFactory, keepalivePeriod=options.keepalive_period)


class QuicClientSocket(DatagramProtocol):
    """frpc's UDP socket towards frps, carrying one :class:`QuicSession` (``session``)."""

    def __init__(self, clock: IReactorTime, configuration: QuicConfiguration, options: QUICOptions,
                 server: Address) -> None:
        self._clock = clock
        self._configuration = configuration
        self._options = options
        self._server = server
        self.session: Optional[QuicSession] = None

    def startProtocol(self) -> None:
        widenDatagramBuffers(self.transport)
        local = self.transport.getHost()
        send = partial(sendDatagram, self.transport)
        self.session = clientSession(self._configuration, self._options, self._clock, send, self._server,
                                     (local.host, local.port))
        self.session.whenClosed().addCallback(lambda _: self.transport.stopListening())
        self.session.start()

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        if addr[:2] == self._server and self.session is not None:
            self.session.datagramReceived(data, self._server)


def dialQuic(reactor, host: str, port: int, configuration: QuicConfiguration, options: QUICOptions,
             timeout: float, localIP: str = "") -> "Deferred[QuicSession]":
    """Open a QUIC connection to ``host:port``; fires with the session once the handshake is
    done, fails after ``timeout`` seconds (``TimeoutError``) or when the peer refuses it."""
    if isIPAddress(host) or isIPv6Address(host):
        resolved: Deferred = Deferred()
        resolved.callback(host)
    else:
        resolved = reactor.resolve(host)

    def connect(ip: str) -> Deferred:
        proto = QuicClientSocket(reactor, configuration, options, (ip, port))
        interface = localIP or ("::" if ":" in ip else "0.0.0.0")
        reactor.listenUDP(0, proto, interface=interface)
        session = proto.session
        timedOut = []

        def expire() -> None:
            timedOut.append(True)
            session.abort()

        timer = reactor.callLater(timeout, expire)
        d = session.whenConnected()

        def settled(result):
            cancelCall(timer)
            if timedOut:
                raise DialTimeout(string=f"QUIC handshake with {host}:{port} timed out")
            if not isinstance(result, QuicSession):
                session.abort()
            return result

        return d.addBoth(settled)

    return resolved.addCallback(connect)


class QuicListener(DatagramProtocol):
    """frps's QUIC port: one session per client address, each stream built by ``acceptFactory``;
    with ``checkClient`` (:func:`clientCertificateCheck`) every client must present a certificate
    it accepts."""

    def __init__(self, clock: IReactorTime, configuration: QuicConfiguration, options: QUICOptions,
                 acceptFactory: IProtocolFactory, checkClient: Optional[ClientCertificateCheck] = None) -> None:
        self._clock = clock
        self._checkClient = checkClient
        self._configuration = configuration
        self._options = options
        self._acceptFactory = acceptFactory
        self._sessions: Dict[Address, QuicSession] = {}
        self._send: Optional[Callable[[bytes, Address], None]] = None

    def startProtocol(self) -> None:
        widenDatagramBuffers(self.transport)
        self._send = partial(sendDatagram, self.transport)

    @property
    def sessions(self) -> Dict[Address, QuicSession]:
        """The live sessions by client address (read them, do not change them)."""
        return self._sessions

    def datagramReceived(self, data: bytes, addr: Address) -> None:
        addr = addr[:2]
        session = self._sessions.get(addr)
        if session is None:
            session = self._newSession(data, addr)
            if session is None:
                return
        session.datagramReceived(data, addr)

    def _newSession(self, data: bytes, addr: Address) -> Optional[QuicSession]:
        local = self.transport.getHost()
        session = serverSession(data, self._configuration, self._options, self._clock, self._send, addr,
                                (local.host, local.port), self._acceptFactory, self._checkClient)
        if session is not None:
            self._sessions[addr] = session
            session.whenClosed().addCallback(self._forget, addr, session)
        return session

    def _forget(self, _: None, addr: Address, session: QuicSession) -> None:
        if self._sessions.get(addr) is session:
            del self._sessions[addr]

    def closeAll(self) -> None:
        """Close every session (frps stopping)."""
        for session in list(self._sessions.values()):
            session.close()
