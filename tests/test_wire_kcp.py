"""The KCP core, kcp-go's FEC framing and klauspost's Reed–Solomon code, without I/O."""

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.errors import ProtocolError
from frptw.wire import kcpfec
from frptw.wire.kcp import CMD_ACK, CMD_PUSH, CMD_WASK, CMD_WINS, FORGOTTEN_PROBE, HEADER, OVERHEAD, KcpConnection
from frptw.wire.reedsolomon import ReedSolomon, gf_inverse, gf_mul


class ReedSolomonTests(SynchronousTestCase):
    def test_field_is_0x11d(self):
        self.assertEqual(gf_mul(0x80, 2), 0x1D)  # x^8 = x^4 + x^3 + x^2 + 1
        for a in range(1, 256):
            self.assertEqual(gf_mul(a, gf_inverse(a)), 1)

    def test_systematic_matrix(self):
        """klauspost's matrix: identity on top; its first parity row, for 10+3, is what
        Go computes (the parity datagrams of Go frp match this code: tests/test_kcp_interop)."""
        code = ReedSolomon(10, 3)
        for r in range(10):
            self.assertEqual(code.matrix[r], [1 if c == r else 0 for c in range(10)])
        single = ReedSolomon(1, 1)
        self.assertEqual(single.matrix, [[1], [1]])

    @settings(max_examples=60, deadline=None)
    @given(st.integers(1, 64), st.sets(st.integers(0, 12), max_size=3), st.randoms(use_true_random=False))
    def test_any_three_losses_are_rebuilt(self, size, lost, rnd):
        code = ReedSolomon(10, 3)
        data = [bytes(rnd.getrandbits(8) for _ in range(size)) for _ in range(10)]
        shards = data + code.encode(data)
        damaged = [None if i in lost else s for i, s in enumerate(shards)]
        self.assertEqual(code.reconstructData(damaged), data)

    def test_four_losses_are_too_many(self):
        code = ReedSolomon(10, 3)
        data = [bytes([i]) * 8 for i in range(10)]
        shards = data + code.encode(data)
        self.assertRaises(ValueError, code.reconstructData, [None] * 4 + shards[4:])


class FecTests(SynchronousTestCase):
    def packets(self, n):
        return [struct.pack("<I", 7) + bytes([CMD_PUSH]) + bytes(19) + bytes([i]) * (30 + i) for i in range(n)]

    def test_data_datagram_layout(self):
        """seqid u32 LE, 0xf1 u16 LE, size u16 LE (itself + packet), the packet."""
        encoder = kcpfec.FecEncoder()
        packet = self.packets(1)[0]
        [datagram] = encoder.encode(packet, now=0, rto=100)
        self.assertEqual(datagram[:8], struct.pack("<IHH", 0, 0xF1, len(packet) + 2))
        self.assertEqual(datagram[8:], packet)

    def test_parity_after_ten_continuous_datagrams(self):
        encoder = kcpfec.FecEncoder()
        out = []
        for i, packet in enumerate(self.packets(10)):
            out += encoder.encode(packet, now=i, rto=100)
        self.assertEqual([kcpfec.HEADER.unpack_from(d) for d in out],
                         [(i, 0xF1) for i in range(10)] + [(i, 0xF2) for i in range(10, 13)])
        shards = [d[6:] for d in out[:10]]
        size = max(map(len, shards))
        self.assertEqual([d[6:] for d in out[10:]], ReedSolomon(10, 3).encode([s.ljust(size, b"\0") for s in shards]))

    def test_no_parity_after_a_pause_but_the_seqids_stay_aligned(self):
        encoder = kcpfec.FecEncoder()
        out = []
        for i, packet in enumerate(self.packets(11)):
            out += encoder.encode(packet, now=i * 500, rto=100)
        self.assertEqual([kcpfec.HEADER.unpack_from(d)[0] for d in out], list(range(10)) + [13])

    def test_lost_data_datagrams_are_rebuilt(self):
        encoder, decoder = kcpfec.FecEncoder(), kcpfec.FecDecoder()
        packets = self.packets(10)
        datagrams = []
        for i, packet in enumerate(packets):
            datagrams += encoder.encode(packet, now=i, rto=100)
        received = []
        for index, datagram in enumerate(datagrams):
            if index in (2, 5, 11):
                continue
            received += decoder.decode(datagram)
        self.assertEqual(sorted(received), sorted(packets))
        self.assertEqual(decoder.recovered, 2)

    def test_bare_kcp_packets_pass(self):
        packet = self.packets(1)[0]
        self.assertEqual(kcpfec.FecDecoder().decode(packet), [packet])

    def test_bad_size_is_refused(self):
        self.assertRaises(ProtocolError, kcpfec.FecDecoder().decode, struct.pack("<IHH", 0, 0xF1, 500) + b"x")
        self.assertRaises(ProtocolError, kcpfec.FecDecoder().decode, b"\x01\x02")


class Link:
    """Two KCP connections on a fake millisecond clock, with a seeded lossy wire."""

    def __init__(self, loss=0.0, seed=1, **kw) -> None:
        self.a = KcpConnection(99, **kw)
        self.b = KcpConnection(99, **kw)
        self.now = 0
        self.loss = loss
        self.random = random.Random(seed)
        self.received = {"a": bytearray(), "b": bytearray()}

    def step(self, read=True) -> None:
        self.now += 20
        for src, dst, name in ((self.a, self.b, "b"), (self.b, self.a, "a")):
            for packet in src.flush(self.now):
                if self.random.random() >= self.loss:
                    dst.input(packet, self.now)
        if read:
            self.received["a"] += self.a.recv()
            self.received["b"] += self.b.recv()


def segments(packet: bytes):
    """(cmd, sn, data) of each segment of a KCP packet."""
    result = []
    while len(packet) >= OVERHEAD:
        _conv, cmd, _frg, _wnd, _ts, sn, _una, length = HEADER.unpack_from(packet)
        result.append((cmd, sn, packet[OVERHEAD:OVERHEAD + length]))
        packet = packet[OVERHEAD + length:]
    return result


class KcpTests(SynchronousTestCase):
    def test_segment_layout(self):
        conn = KcpConnection(0x01020304)
        conn.send(b"hello")
        [packet] = conn.flush(1000)
        self.assertEqual(HEADER.unpack_from(packet), (0x01020304, CMD_PUSH, 0, 512, 1000, 0, 0, 5))
        self.assertEqual(packet[24:], b"hello")

    def test_stream_mode_packs_writes(self):
        conn = KcpConnection(1, mtu=124)
        for _ in range(5):
            conn.send(b"x" * 30)
        self.assertEqual(conn.waitingToSend, 2)  # 100 + 50 bytes in two segments, frg 0

    def test_in_order_delivery_under_loss(self):
        link = Link(loss=0.2, sendWindow=32, receiveWindow=32)
        payload = random.Random(3).randbytes(200_000)
        link.a.send(payload)
        for _ in range(2000):
            link.step()
            if len(link.received["b"]) == len(payload) and not link.a.waitingToSend:
                break
        self.assertEqual(bytes(link.received["b"]), payload)

    def test_acks_and_una(self):
        link = Link()
        link.a.send(b"x" * 3000)
        self.assertEqual(link.a.waitingToSend, 3)
        link.step()  # a sends three segments, b acknowledges them in its flush
        self.assertEqual(link.a.waitingToSend, 0)
        self.assertEqual(link.a.sndUna, 3)

    def test_full_receiver_stops_the_sender_and_probes(self):
        """A reader that takes nothing: the window falls to zero, the sender holds, asks with
        window probes, and resumes once the reader drains."""
        link = Link(sendWindow=16, receiveWindow=8)
        link.a.send(b"y" * 1200 * 40)
        for _ in range(10):
            link.step(read=False)
        self.assertEqual(link.a.remoteWindow, 0)
        self.assertEqual(link.a.sndNxt, 8)
        sent = []
        original = link.a.flush

        def spy(now):
            packets = original(now)
            sent.extend(HEADER.unpack_from(p)[1] for p in packets)
            return packets

        link.a.flush = spy
        for _ in range(400):
            link.step(read=False)
        self.assertIn(CMD_WASK, sent)
        for _ in range(200):
            link.step()
        self.assertEqual(len(link.received["b"]), 1200 * 40)

    def test_window_tell_after_draining_a_full_queue(self):
        link = Link(sendWindow=8, receiveWindow=4)
        link.a.send(b"z" * 1300 * 6)
        for _ in range(3):
            link.step(read=False)
        link.b.recv()
        self.assertIn(CMD_WINS, [HEADER.unpack_from(p)[1] for p in link.b.flush(link.now)])

    def test_dead_link(self):
        conn = KcpConnection(5)
        conn.send(b"lost")
        now = 0
        while not conn.dead and now < 10_000_000:
            conn.flush(now)
            now += 100
        self.assertTrue(conn.dead)

    def test_timed_out_resend_carries_the_forgotten_probe(self):
        """Once segment 0 is acknowledged, a timed-out resend brings segment 0 = b"\\0" along:
        a duplicate for a peer that still has the conversation, the first byte of a fresh one
        (kcp-go's listener after frps closed it) that would otherwise wait for one."""
        link = Link()
        link.a.send(b"first")
        link.step()
        self.assertEqual(link.a.sndUna, 1)
        link.a.send(b"x" * 2000)
        link.a.flush(link.now)  # sent; its acknowledgement never comes (the peer forgot us)
        resent = [p for t in range(link.now, link.now + 1000, 20) for p in link.a.flush(t)]
        probes = [segs for segs in map(segments, resent) if (CMD_PUSH, 0, FORGOTTEN_PROBE) in segs]
        self.assertTrue(probes)
        fresh = KcpConnection(99)  # a listener's new conversation for our address
        for packet in resent:
            fresh.input(packet, link.now)
        self.assertEqual(fresh.recv()[:1], FORGOTTEN_PROBE)  # its first byte, whatever follows
        link.b.input(resent[0], link.now)  # the peer that still knows us delivers nothing new
        link.b.input(resent[-1], link.now)
        self.assertEqual(link.b.recv(), b"x" * 2000)
        self.assertEqual(bytes(link.received["b"]), b"first")

    def test_no_forgotten_probe_before_segment_0_was_acknowledged(self):
        conn = KcpConnection(5)
        conn.send(b"lost")
        resent = [p for t in range(0, 2000, 20) for p in conn.flush(t)]
        self.assertEqual({sn for packet in resent for _cmd, sn, _data in segments(packet)}, {0})
        self.assertNotIn(FORGOTTEN_PROBE, [data for packet in resent for _cmd, _sn, data in segments(packet)])

    def test_foreign_and_malformed_segments(self):
        conn = KcpConnection(5)
        self.assertRaises(ProtocolError, conn.input, HEADER.pack(6, CMD_ACK, 0, 1, 0, 0, 0, 0), 0)
        self.assertRaises(ProtocolError, conn.input, HEADER.pack(5, 99, 0, 1, 0, 0, 0, 0), 0)
        self.assertRaises(ProtocolError, conn.input, HEADER.pack(5, CMD_PUSH, 0, 1, 0, 0, 0, 10) + b"abc", 0)

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbage_never_escapes_as_anything_but_protocol_error(self, data):
        conn = KcpConnection(struct.unpack("<I", (data + bytes(4))[:4])[0])
        try:
            conn.input(data, 0)
            kcpfec.FecDecoder().decode(data)
        except ProtocolError:
            pass
