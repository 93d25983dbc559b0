"""``transport.protocol = "kcp"`` against the real frp 0.65, both directions, and between our
own ends: 8 MiB echoed (sha256 both ways) on one connection, then 20 concurrent connections,
with yamux on and off; the same under 5 % datagram loss through a relay that gives each client
socket its own upstream socket (each conversation keeps its own address, as kcp-go's listener
needs); and kcp-go's FEC byte for byte: the parity datagrams Go sends are the ones our encoder
computes from Go's data datagrams, and Go's parity rebuilds what the relay dropped."""

import time
from typing import Dict, List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from frptw.wire import kcpfec
from tests.traffic import exchange
from tests.transports import UDPTransportMixin

LOSSY_BYTES = 1024 * 1024
LOSSY_MIN_RATE = 128 * 1024
MUX_OFF = "transport.tcpMux = false\n"


def groups(datagrams: List[bytes]) -> Dict[int, Dict[int, bytes]]:
    """FEC datagrams by group and position."""
    result: Dict[int, Dict[int, bytes]] = {}
    for datagram in datagrams:
        seqid, flag = kcpfec.HEADER.unpack_from(datagram)
        if flag in (kcpfec.TYPE_DATA, kcpfec.TYPE_PARITY):
            result.setdefault(seqid // 13, {})[seqid % 13] = datagram
    return result


class KcpInterop(UDPTransportMixin, TestCase):
    @inlineCallbacks
    def test_ours_to_go_frps(self):
        yield self.setUpPair("kcp", frps="go", frpc="ours")
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours(self):
        yield self.setUpPair("kcp", frps="ours", frpc="go")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_ours(self):
        yield self.setUpPair("kcp", frps="ours", frpc="ours")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_compressed(self):
        yield self.setUpPair("kcp", frps="go", frpc="ours",
                             proxyExtra="transport.useEncryption = true\ntransport.useCompression = true\n")
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours_without_mux_encrypted_compressed_pool(self):
        mux = "transport.tcpMux = false\n"
        yield self.setUpPair("kcp", frps="ours", frpc="go", serverExtra=mux,
                             clientExtra=mux + "transport.poolCount = 3\n",
                             proxyExtra="transport.useEncryption = true\ntransport.useCompression = true\n")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_without_mux(self):
        """Every work connection its own conversation and UDP socket, as Go frpc dials them; Go
        frps ends each one without acknowledging our last segments (see
        frptw.wire.kcp.FORGOTTEN_PROBE): the next connections must not wait for that."""
        yield self.setUpPair("kcp", frps="go", frpc="ours", serverExtra=MUX_OFF, clientExtra=MUX_OFF)
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_without_mux_encrypted_compressed_pool(self):
        yield self.setUpPair("kcp", frps="go", frpc="ours", serverExtra=MUX_OFF,
                             clientExtra=MUX_OFF + "transport.poolCount = 3\n",
                             proxyExtra="transport.useEncryption = true\ntransport.useCompression = true\n")
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_ours_without_mux(self):
        yield self.setUpPair("kcp", frps="ours", frpc="ours", serverExtra=MUX_OFF, clientExtra=MUX_OFF)
        yield self.traffic()

    @inlineCallbacks
    def test_ours_to_go_frps_tls_off(self):
        """Above KCP the layers are those of tcp: without TLS the bare frp stream."""
        yield self.setUpPair("kcp", frps="go", frpc="ours", clientExtra="transport.tls.enable = false\n")
        yield self.traffic()

    @inlineCallbacks
    def test_go_frpc_to_ours_custom_first_byte_tls_forced(self):
        """frp's 0x17 byte before the ClientHello, and our frps with ``transport.tls.force``."""
        yield self.setUpPair("kcp", frps="ours", frpc="go", serverExtra="transport.tls.force = true\n",
                             clientExtra="transport.tls.disableCustomTLSFirstByte = false\n")
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
        yield self.setUpPair("kcp", frps="go", frpc="ours", loss=0.05)
        yield self.lossy()
        self.assertGreater(self.frpc._session.root.transport._decoder.recovered, 0,
                           "no datagram was rebuilt from Go's parity")

    @inlineCallbacks
    def test_lossy_go_frpc_to_ours(self):
        yield self.setUpPair("kcp", frps="ours", frpc="go", loss=0.05)
        yield self.lossy()
        [session] = self.frps._kcpListener.sessions.values()
        self.assertGreater(session._decoder.recovered, 0, "no datagram was rebuilt from Go's parity")

    @inlineCallbacks
    def test_lossy_ours_to_go_frps_without_mux(self):
        yield self.setUpPair("kcp", frps="go", frpc="ours", loss=0.05, serverExtra=MUX_OFF, clientExtra=MUX_OFF)
        yield self.lossy()
        self.assertGreaterEqual(self.relay.clients, 3, "one UDP socket per conversation")

    @inlineCallbacks
    def test_lossy_go_frpc_to_ours_without_mux(self):
        yield self.setUpPair("kcp", frps="ours", frpc="go", loss=0.05, serverExtra=MUX_OFF, clientExtra=MUX_OFF)
        yield self.lossy()
        self.assertGreaterEqual(self.relay.clients, 3, "one UDP socket per conversation")

    @inlineCallbacks
    def test_parity_is_byte_for_byte_kcp_go(self):
        """Every complete group Go frpc sent (ten data datagrams and three parity ones) has the
        parity our Reed–Solomon code computes from its data shards."""
        yield self.setUpPair("kcp", frps="ours", frpc="go", relay=True, record=3000)
        yield exchange(reactor, self.remotePort, 2 * 1024 * 1024)
        checked = 0
        for group in groups(self.relay.fromClient).values():
            if len(group) < 13:
                continue
            data = [group[p][kcpfec.HEADER_SIZE:] for p in range(10)]
            size = max(len(d) for d in data)
            parity = kcpfec.ReedSolomon(10, 3).encode([d.ljust(size, b"\0") for d in data])
            self.assertEqual([group[p][kcpfec.HEADER_SIZE:] for p in range(10, 13)], parity)
            checked += 1
        self.assertGreater(checked, 10)
