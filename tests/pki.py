"""A throw-away certificate authority for TLS tests: a CA and certificates it signs, written as
PEM files into a directory the test owns (e.g. :func:`tests.support.tempDir`, removed with it).

ECDSA P-256 keys, valid from an hour ago for a day, with key identifiers (Python 3.13's ssl
verifies strictly and wants the authority key identifier); OpenSSL, Go's crypto/tls and
Python's ssl all accept them.
"""

import datetime
import ipaddress
import os
from typing import Iterable, Optional, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _builder(subject: x509.Name, issuer: x509.Name, publicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(publicKey)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1)))


class TestCA:
    """A CA whose certificate is ``ca`` (a PEM file path) in ``directory``."""

    def __init__(self, directory: str, name: str = "frptw test CA") -> None:
        self.directory = directory
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._certificate = (
            _builder(_name(name), _name(name), self._key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca = self.write("ca.pem", self._certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str, dnsNames: Iterable[str] = (), ipAddresses: Iterable[str] = (),
              usage: Optional[x509.ObjectIdentifier] = None) -> Tuple[bytes, bytes]:
        """A certificate for common name ``name`` (with those subject alternative names and
        extended key usage) and its private key, both PEM."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _builder(_name(name), self._certificate.subject, key.public_key()).add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        sans = [x509.DNSName(n) for n in dnsNames] + [x509.IPAddress(ipaddress.ip_address(a)) for a in ipAddresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if usage is not None:
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        certificate = builder.sign(self._key, hashes.SHA256())
        return (certificate.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))

    def issueFiles(self, name: str, **kwargs) -> Tuple[str, str]:
        """:meth:`issue`, written to ``<name>.pem`` and ``<name>.key``: their paths."""
        certificate, key = self.issue(name, **kwargs)
        return self.write(f"{name}.pem", certificate), self.write(f"{name}.key", key)

    def write(self, filename: str, data: bytes) -> str:
        """``data`` as ``filename`` in the CA's directory; its path."""
        path = os.path.join(self.directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path
