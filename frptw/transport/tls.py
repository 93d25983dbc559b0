"""TLS the way frp does it, as a layer started on a live connection.

frp settings (wire-protocol.md §2.3):

* client: SNI is ``transport.tls.serverName`` (or the server address; like Go, no SNI is sent
  for an IP address); the server certificate is **not verified** unless a trusted CA file is
  configured, in which case the chain and the server name are both verified; a client
  certificate is presented when configured.  With ``disableCustomTLSFirstByte = false`` the
  client writes one ``0x17`` byte on the raw connection before the ClientHello.
* server: the configured certificate, or else a random self-signed certificate made when the
  first client speaks TLS (about 10 years, random serial, no names); a trusted CA file makes
  client certificates mandatory and verified.  frps 0.65 makes an RSA-2048 key, which costs
  90-600 ms here; frptw makes an ECDSA P-256 key (under 1 ms), which every frpc accepts, since
  none verifies a self-signed certificate (a client that verifies needs a configured one).

TLS is started on a :class:`~frptw.transport.switch.SwitchableProtocol` (a connection that may
already have spoken, e.g. a first byte sniffed by frps), by switching it to Twisted's
memory-BIO TLS protocol, which passes producer calls through to the connection below it.  The
caller gets a fresh switchable protocol connected on top of TLS, just as with
:func:`frptw.transport.layered.layer`.

:class:`_BatchingTLSTransport` overrides three private methods of Twisted's
``TLSMemoryBIOProtocol`` (``_write``, ``_flushSendBIO``, ``_flushReceiveBIO``) and relies on
three more and on its private attributes.  Against Twisted changing them, frptw takes a
**tested version range, not a compatibility shim**: setup.py asks for ``twisted>=23.10,<27``
(23.10 is the oldest release it was checked against), and
tests/test_transport_tls_twisted.py checks the names, signatures and that Twisted still calls
the overrides, plus that the installed Twisted is inside that range.  A shim that fell back to
Twisted's plain transport when a name went missing would hide the change (the same bytes, four
times the calls per 64 KiB) and could not notice a change in meaning behind an unchanged name;
raising the ceiling instead means running that test against the new Twisted and reading its
``tls.py`` diff.
"""

import datetime
import os
from typing import List, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto
from service_identity import CertificateError, VerificationError
from service_identity.cryptography import verify_certificate_hostname, verify_certificate_ip_address
from twisted.internet import ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import (
    IOpenSSLClientConnectionCreator,
    IOpenSSLServerConnectionCreator,
)
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.errors import ConfigError
from frptw.transport.switch import SwitchableProtocol

#: The byte frpc writes before its ClientHello when the custom first byte is on.
CUSTOM_FIRST_BYTE = b"\x17"
#: Bytes asked of OpenSSL's send buffer per read: a 64 KiB write's records in one piece.
SEND_BIO_READ = 2**16 + 2**14
#: OpenSSL's ``SSL_MODE_ENABLE_PARTIAL_WRITE`` (ssl.h; pyOpenSSL sets it but exports no name).
_MODE_ENABLE_PARTIAL_WRITE = 0x1


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read {what}: {e.strerror}") from None


def loadCertificates(path: str, what: str) -> List[x509.Certificate]:
    """The PEM certificates in ``path``; raises ConfigError naming the file and ``what`` it is."""
    try:
        return x509.load_pem_x509_certificates(_read(path, what))
    except ValueError as e:
        raise ConfigError(f"{path}: not a PEM {what}: {e}") from None


def _identity(certFile: Optional[str], keyFile: Optional[str]) -> dict:
    """CertificateOptions arguments presenting ``certFile`` (leaf first, then its chain) with
    ``keyFile``; none when neither is given."""
    if not certFile and not keyFile:
        return {}
    if not certFile or not keyFile:
        raise ConfigError(f"TLS certificate {certFile!r} and key {keyFile!r}: both or neither must be set")
    chain = loadCertificates(certFile, "certificate")
    try:
        key = serialization.load_pem_private_key(_read(keyFile, "private key"), password=None)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{keyFile}: not an unencrypted PEM private key: {e}") from None
    return {"certificate": chain[0], "privateKey": key, "extraCertChain": chain[1:]}


def _trustRoot(cas: List[x509.Certificate]):
    return ssl.trustRootFromCertificates([ssl.Certificate(crypto.X509.from_cryptography(ca)) for ca in cas])


#: OpenSSL's ``X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT``.
_DEPTH_ZERO_SELF_SIGNED = 18


def _validAt(certificate: x509.Certificate, now: datetime.datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


class IssuedByTrusted:
    """Go's verdict on a peer certificate that OpenSSL takes for self-signed.

    A leaf with its CA's subject as its own and no key identifier of its own (frp's e2e
    certificates: CA and leaf both named after the host) looks self-issued to OpenSSL, which
    then fails it at depth 0 without trying the trusted CAs; Go's verifier builds the chain
    from the issuer name and the signature, and accepts it.  This check does what Go does for
    such a leaf: valid now, and signed by a trusted CA, itself valid now, whose subject is its
    issuer.
    """

    def __init__(self, cas: List[x509.Certificate]) -> None:
        self._cas = cas

    def __call__(self, certificate: x509.Certificate) -> bool:
        now = datetime.datetime.now(datetime.timezone.utc)
        if not _validAt(certificate, now):
            return False
        for ca in self._cas:
            if ca.subject != certificate.issuer or not _validAt(ca, now):
                continue
            try:
                certificate.verify_directly_issued_by(ca)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
        return False

    def accepts(self, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        """An OpenSSL verify callback's verdict: OpenSSL's, or this check's for a leaf OpenSSL
        refused as self-signed."""
        if ok:
            return True
        return self.overrules(errno, depth, cert.to_cryptography())

    def overrules(self, errno: int, depth: int, certificate: x509.Certificate) -> bool:
        """Whether OpenSSL's error ``errno`` at ``depth`` is one Go does not make for
        ``certificate``: a leaf refused as self-signed that a trusted CA signed."""
        return depth == 0 and errno == _DEPTH_ZERO_SELF_SIGNED and self(certificate)


def _selfSignedIdentity() -> dict:
    """A fresh self-signed certificate like the one frps 0.65 makes when it has none configured
    (no names, no extensions, a random 128-bit serial, valid from an hour ago for 3650 days),
    but on an ECDSA P-256 key instead of RSA-2048: a thousand times faster to make, and it
    makes every TLS handshake cheaper too."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    nobody = x509.Name([])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(nobody)
        .issuer_name(nobody)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(os.urandom(16), "big") or 1)
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return {"certificate": certificate, "privateKey": key}


@implementer(IOpenSSLClientConnectionCreator)
class _FrpClientOptions:
    """Client connections as frpc makes them: SNI for a host name (none for an address, as in
    Go), and, only when a CA is trusted, verification of the chain and of the server name."""

    def __init__(self, serverName: str, options: ssl.CertificateOptions, trusted: Optional[IssuedByTrusted]) -> None:
        self._isAddress = isIPAddress(serverName) or isIPv6Address(serverName)
        self._serverName = serverName
        self._sni = None if self._isAddress or not serverName else serverName.encode("idna")
        self._options = options
        self._trusted = trusted

    def clientConnectionForTLS(self, tlsProtocol) -> SSL.Connection:
        connection = self._options.clientConnectionForTLS(tlsProtocol)
        if self._sni is not None:
            connection.set_tlsext_host_name(self._sni)
        if self._trusted is not None:
            connection.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, self._checker(tlsProtocol))
        return connection

    def _checker(self, tlsProtocol):
        """An OpenSSL verify callback that also checks the server certificate's names.

        OpenSSL itself fails the handshake on a bad chain (``ok`` false, unless Go would accept
        it: :class:`IssuedByTrusted`); a name mismatch is reported to the TLS protocol so that
        the connection's failure says which name.
        """

        def check(connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
            ok = self._trusted.accepts(cert, errno, depth, ok)
            if not ok or depth != 0:
                return ok
            certificate = cert.to_cryptography()
            try:
                if self._isAddress:
                    verify_certificate_ip_address(certificate, self._serverName)
                else:
                    verify_certificate_hostname(certificate, self._serverName)
            except (VerificationError, CertificateError) as e:
                tlsProtocol.failVerification(Failure(e))
                return False
            return True

        return check


def clientContextFactory(
    serverName: str,
    trustedCaFile: Optional[str] = None,
    certFile: Optional[str] = None,
    keyFile: Optional[str] = None,
) -> IOpenSSLClientConnectionCreator:
    """TLS client settings of frpc; raises ConfigError naming a file that cannot be used."""
    options = _identity(certFile, keyFile)
    trusted = None
    if trustedCaFile:
        cas = loadCertificates(trustedCaFile, "CA certificate")
        options["trustRoot"] = _trustRoot(cas)
        trusted = IssuedByTrusted(cas)
    return _FrpClientOptions(serverName, _wholeWrites(ssl.CertificateOptions(**options)), trusted)


def serverContextFactory(
    certFile: Optional[str] = None, keyFile: Optional[str] = None, trustedCaFile: Optional[str] = None
) -> ssl.CertificateOptions:
    """TLS server settings of frps; raises ConfigError naming a file that cannot be used."""
    identity = serverIdentity(certFile, keyFile)
    if not trustedCaFile:
        return _wholeWrites(ssl.CertificateOptions(**identity))
    cas = loadCertificates(trustedCaFile, "CA certificate")
    options = _wholeWrites(ssl.CertificateOptions(trustRoot=_trustRoot(cas), **identity))
    trusted = IssuedByTrusted(cas)
    options.getContext().set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                                    lambda connection, cert, errno, depth, ok: trusted.accepts(cert, errno, depth, ok))
    return options


def serverIdentity(certFile: Optional[str] = None, keyFile: Optional[str] = None) -> dict:
    """frps's certificate as cryptography objects (``certificate``, ``privateKey`` and maybe
    ``extraCertChain``): the configured files, else a fresh self-signed one.  QUIC's TLS
    (:mod:`frptw.transport.quicudp`) takes them in this form."""
    return _identity(certFile, keyFile) or _selfSignedIdentity()


def _wholeWrites(options: ssl.CertificateOptions) -> ssl.CertificateOptions:
    """Make ``SSL_write`` take a whole write at once, cutting it into records itself.

    pyOpenSSL turns on partial writes, so each ``SSL_write`` stops after one 16 KiB record.
    Below us is a memory BIO, which never refuses bytes, so partial writes buy nothing and
    cost one call through pyOpenSSL per record.  The context is the one ``options`` makes
    once and shares with every connection.
    """
    options.getContext().clear_mode(_MODE_ENABLE_PARTIAL_WRITE)
    return options


#: Most bytes held for the end of a ``dataReceived`` (Twisted's own small-write aggregation
#: holds as much): beyond it what is held and the new write go out at once, so that stream
#: data released by window updates is not gathered without bound.
HOLD_LIMIT = 64_000

#: Largest TLS plaintext record: the most one ``SSL_read`` gives.
_RECORD = 2**14


class _BatchingTLSTransport(TLSMemoryBIOProtocol):
    """Twisted's TLS transport, moving a whole write or a whole read through TLS in one go,
    and sending a write within the event that made it.

    Twisted encrypts a write 16 KiB at a time and hands each TLS record to the transport
    below, and each decrypted record to the protocol above, separately: a 64 KiB yamux frame
    cost four SSL_write calls and four writes to the TCP transport (each a reactor writer
    registration and a buffer-full check) and, on the other side, four passes through yamux,
    the splice and the user's socket.  Here one ``write`` is one SSL_write whose records
    leave as one TCP write, and the plaintext of one TCP read reaches the protocol as one
    chunk.  Neither holds more than it did: one write's ciphertext, one read's plaintext.

    Twisted's ``BufferingTLSTransport`` holds every small write for a ``callLater(0)`` and
    encrypts them together on the next reactor turn.  Profiled on sequential new connections
    through a tcp proxy (bench/bench_connect.py), that was one timer and one extra reactor
    turn per write on the carrier, on both frps and frpc, on the path of a new connection's
    first bytes.  Here the writes made while this connection's own received bytes are being
    handled (yamux window updates, ACKs, answers) are joined and encrypted once at the end of
    that ``dataReceived``; any other write is encrypted at once.  The TCP transport below
    still joins what is written in one reactor turn into one ``send``.
    """

    #: Writes made during our own ``dataReceived``, sent when it returns; None outside it.
    _held: Optional[List[bytes]] = None
    _heldSize = 0

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            TLSMemoryBIOProtocol.write(self, data)
        elif self._heldSize + len(data) <= HOLD_LIMIT:
            held.append(data)
            self._heldSize += len(data)
        else:  # bulk (stream data a window update released): what is held, then this, now
            self._sendHeld()
            TLSMemoryBIOProtocol.write(self, data)

    def writeSequence(self, iovec) -> None:
        self.write(b"".join(iovec))

    def dataReceived(self, data: bytes) -> None:
        if self._held is not None:  # re-entered: the outer call sends what is held
            TLSMemoryBIOProtocol.dataReceived(self, data)
            return
        self._held = []
        try:
            TLSMemoryBIOProtocol.dataReceived(self, data)
        finally:
            self._sendHeld()
            self._held = None

    def _sendHeld(self) -> None:
        held = self._held
        if held:
            self._held = []
            self._heldSize = 0
            TLSMemoryBIOProtocol.write(self, held[0] if len(held) == 1 else b"".join(held))

    def loseConnection(self) -> None:
        # Writes held in this dataReceived were made before the close: they go first.
        self._sendHeld()
        TLSMemoryBIOProtocol.loseConnection(self)

    def _flushSendBIO(self) -> None:
        chunks = []
        while True:
            try:
                chunk = self._tlsConnection.bio_read(SEND_BIO_READ)
            except SSL.WantReadError:
                break
            chunks.append(chunk)
            if len(chunk) < SEND_BIO_READ:
                break  # a memory BIO gives all it has: it is empty now
        if chunks:
            self.transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def _write(self, data: bytes) -> None:
        if self._lostTLSConnection:
            return
        # OpenSSL cuts a write into records itself (partial writes are off, see _wholeWrites)
        # and the memory BIO below takes them all: one SSL_write per write, where Twisted
        # makes one per 16 KiB record.
        sent = 0
        try:
            while sent < len(data):
                sent += self._tlsConnection.send(memoryview(data)[sent:] if sent else data)
        except SSL.WantReadError:
            self._flushSendBIO()
            self._bufferedWrite(data[sent:])
            return
        except SSL.Error:
            self._flushSendBIO()
            self._tlsShutdownFinished(Failure())
            return
        self._flushSendBIO()

    def _flushReceiveBIO(self) -> None:
        received = []
        ended = False
        failure: Optional[Failure] = None
        while True:
            try:
                received.append(self._tlsConnection.recv(_RECORD))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                ended = True
                break
            except SSL.Error:
                failure = Failure()
                break
        if received and not self._aborted and not self._lostTLSConnection:
            ProtocolWrapper.dataReceived(self, received[0] if len(received) == 1 else b"".join(received))
        if not self._lostTLSConnection:
            if ended:
                # TLS shut down; the protocol's connectionLost gets the transport's reason.
                self._shutdownTLS()
                self._tlsShutdownFinished(None)
            elif failure is not None:
                self._tlsShutdownFinished(failure)
        self._flushSendBIO()


class _TLSFactory(TLSMemoryBIOFactory):
    protocol = _BatchingTLSTransport


def _startTLS(
    proto: SwitchableProtocol, contextFactory, isClient: bool, leftover: bytes, top: Optional[SwitchableProtocol] = None,
) -> SwitchableProtocol:
    # The factory's protocol is ours (_BatchingTLSTransport); it wraps no factory of ours: the
    # protocol on top is the switchable we return.
    if top is None:
        top = SwitchableProtocol()
    factory = _TLSFactory(contextFactory, isClient, None)
    proto.switchTo(factory.protocol(factory, top), leftover)
    return top


def startClientTLS(
    proto: SwitchableProtocol,
    contextFactory: IOpenSSLClientConnectionCreator,
    customFirstByte: bool,
) -> SwitchableProtocol:
    """Start a TLS client handshake on ``proto``'s connection; return the protocol above TLS.

    What is written to the returned protocol's transport before the handshake completes is
    sent once it has.
    """
    if customFirstByte:
        proto.transport.write(CUSTOM_FIRST_BYTE)
    return _startTLS(proto, contextFactory, True, b"")


def startServerTLS(
    proto: SwitchableProtocol,
    contextFactory: IOpenSSLServerConnectionCreator,
    leftover: bytes = b"",
    top: Optional[SwitchableProtocol] = None,
) -> SwitchableProtocol:
    """Start a TLS server handshake on ``proto``'s connection; return the protocol above TLS.

    ``leftover`` is what a sniffer read past the first byte frps consumes (``0x17``), or the
    whole sniffed prefix when it kept it (``0x16``).  ``top`` is the protocol to put above TLS
    (default: a plain switchable one); one that provides ``IHandshakeListener`` learns when
    the handshake is complete (frpc's ``tls2raw`` dials its backend only then).
    """
    return _startTLS(proto, contextFactory, False, leftover, top)
