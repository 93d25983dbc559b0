"""``transport.protocol = "quic"`` against the real frp 0.65, both directions, and between our
own ends: 8 MiB echoed (sha256 both ways) on one connection, then 20 concurrent connections;
the same under 5 % datagram loss both ways through a loopback relay."""

import time

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from tests.pki import CLIENT_AUTH, SERVER_AUTH, TestCA
from tests.support import tempDir
from tests.traffic import exchange
from tests.transports import TOKEN, UDPTransportMixin

#: Under 5 % loss: bytes per connection, and the slowest rate (both ways) we accept.
LOSSY_BYTES = 2 * 1024 * 1024
LOSSY_MIN_RATE = 256 * 1024


class QuicInterop(UDPTransportMixin, TestCase):
    @inlineCallbacks
    def test_ours_to_go_frps(self):
        yield self.setUpPair("quic", frps="go", frpc="ours")
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours(self):
        yield self.setUpPair("quic", frps="ours", frpc="go")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_ours(self):
        yield self.setUpPair("quic", frps="ours", frpc="ours")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_encrypted_compressed_pool(self):
        """The data plane's layers and a work-connection pool ride on QUIC streams as on yamux."""
        yield self.setUpPair("quic", frps="go", frpc="ours", proxyExtra="transport.useEncryption = true\n"
                             "transport.useCompression = true\n", clientExtra="transport.poolCount = 3\n")
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours_encrypted_compressed_pool(self):
        yield self.setUpPair("quic", frps="ours", frpc="go", proxyExtra="transport.useEncryption = true\n"
                             "transport.useCompression = true\n", clientExtra="transport.poolCount = 3\n")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_tcp_mux_off(self):
        """frp carries each connection on its own QUIC stream whatever ``tcpMux`` says."""
        mux = "transport.tcpMux = false\n"
        yield self.setUpPair("quic", frps="go", frpc="ours", serverExtra=mux, clientExtra=mux)
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours_tcp_mux_off(self):
        mux = "transport.tcpMux = false\n"
        yield self.setUpPair("quic", frps="ours", frpc="go", serverExtra=mux, clientExtra=mux)
        yield self.traffic()

    @inlineCallbacks
    def lossy(self):
        started = time.monotonic()
        echoed = yield exchange(reactor, self.remotePort, LOSSY_BYTES, connections=2)
        elapsed = time.monotonic() - started
        self.assertEqual(echoed, 2 * LOSSY_BYTES)
        self.assertGreater(self.relay.dropped, 0.03 * (self.relay.relayed + self.relay.dropped))
        self.assertGreater(echoed / elapsed, LOSSY_MIN_RATE, f"{echoed / elapsed:.0f} B/s under 5 % loss")

    @inlineCallbacks
    def test_lossy_ours_to_go_frps(self):
        yield self.setUpPair("quic", frps="go", frpc="ours", loss=0.05)
        yield self.lossy()

    @inlineCallbacks
    def test_lossy_go_frpc_to_ours(self):
        yield self.setUpPair("quic", frps="ours", frpc="go", loss=0.05)
        yield self.lossy()


class QuicTLS(UDPTransportMixin, TestCase):
    """frp's TLS settings over QUIC: our frpc verifies Go frps's certificate against
    ``trustedCaFile`` and ``serverName``; our frps refuses client certificates over QUIC."""

    @inlineCallbacks
    def goFrpsWithCertificate(self):
        ca = TestCA(tempDir(self))
        cert, key = ca.issueFiles("frps", dnsNames=["frps.test"])
        yield self.startFrps("go", "quic", f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n')
        return ca

    def ourFrpc(self, extra: str) -> FrpClientService:
        text = (f'serverAddr = "127.0.0.1"\nserverPort = {self.udpPort}\nauth.token = "{TOKEN}"\n'
                f'transport.protocol = "quic"\n{extra}\n')
        service = FrpClientService(parse_client_config(text, "toml"), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def test_verified_server_name(self):
        ca = yield self.goFrpsWithCertificate()
        service = self.ourFrpc(f'transport.tls.trustedCaFile = "{ca.ca}"\ntransport.tls.serverName = "frps.test"\n')
        runId = yield service.whenLoggedIn()
        self.assertTrue(runId)

    @inlineCallbacks
    def test_wrong_server_name_is_refused(self):
        ca = yield self.goFrpsWithCertificate()
        service = self.ourFrpc(f'transport.tls.trustedCaFile = "{ca.ca}"\ntransport.tls.serverName = "other.test"\n')
        yield self.assertFailure(service.whenLoggedIn(), Exception)

    @inlineCallbacks
    def frpsRequiringClientCertificates(self, kind: str, caName: str = "frptw test CA"):
        """frps (Go or ours) with ``transport.tls.trustedCaFile``: QUIC clients must present a
        certificate from that CA (Go's RequireAndVerifyClientCert, on the QUIC port too)."""
        ca = TestCA(tempDir(self), caName)
        yield self.startFrps(kind, "quic", f'transport.tls.trustedCaFile = "{ca.ca}"\n')
        return ca

    @inlineCallbacks
    def test_client_certificates_required_by_our_frps_and_go_frps(self):
        for kind in ("go", "ours"):
            ca = yield self.frpsRequiringClientCertificates(kind)
            cert, key = ca.issueFiles("frpc", usage=CLIENT_AUTH)
            stranger = TestCA(tempDir(self), "another CA").issueFiles("frpc")
            serverCert = ca.issueFiles("server-only", usage=SERVER_AUTH)
            good = self.ourFrpc(f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n')
            runId = yield good.whenLoggedIn()
            self.assertTrue(runId, kind)
            for files in (None, stranger, serverCert):
                extra = f'transport.tls.certFile = "{files[0]}"\ntransport.tls.keyFile = "{files[1]}"\n' if files else ""
                refused = self.ourFrpc(extra)
                yield self.assertFailure(refused.whenLoggedIn(), Exception)

    @inlineCallbacks
    def test_go_frpc_with_a_client_certificate_through_our_frps(self):
        ca = yield self.frpsRequiringClientCertificates("ours")
        cert, key = ca.issueFiles("frpc", usage=CLIENT_AUTH)
        yield self.startFrpc("go", "quic", self.udpPort,
                             extra=f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n')
        yield exchange(reactor, self.remotePort, 64 * 1024)

    @inlineCallbacks
    def test_go_frpc_with_a_leaf_named_like_its_ca_through_our_frps(self):
        """frp's e2e certificates (CA and leaf both named after the host): OpenSSL alone takes
        the leaf for self-signed, Go (and so our frps) accepts it."""
        ca = yield self.frpsRequiringClientCertificates("ours", caName="127.0.0.1")
        cert, key = ca.issueFiles("127.0.0.1", ipAddresses=["127.0.0.1"])
        yield self.startFrpc("go", "quic", self.udpPort,
                             extra=f'transport.tls.certFile = "{cert}"\ntransport.tls.keyFile = "{key}"\n')
        yield exchange(reactor, self.remotePort, 64 * 1024)
