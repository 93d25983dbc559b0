"""The one data-plane stacking function: layer order per side, buckets, leftover bytes.

The order itself is what makes interop work; ``tests/test_dataplane_interop.py`` checks every
combination against the real frp, this module pins the shape without a reactor.
"""

from typing import List

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from frptw.config.bandwidth import BandwidthError
from frptw.transport.bandwidth import BandwidthLimiter, TokenBucket
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.layered import LayeredProtocol
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import ChainCodec
from frptw.wire.crypto import AESCFBCodec
from frptw.wire.lz4 import LZ4FrameCodec
from frptw.wire.snappy import SnappyFramingCodec

KEY = b"k" * 16
NAMES = {AESCFBCodec: "aes", SnappyFramingCodec: "snappy", LZ4FrameCodec: "lz4"}


def layers(conn: SwitchableProtocol) -> List[str]:
    """The layers stacked on ``conn``, outermost (closest to the carrier) first."""
    found: List[str] = []
    below = conn.switchedTo
    while below is not None:
        if isinstance(below, BandwidthLimiter):
            found.append("limit")
        elif isinstance(below, LayeredProtocol):
            codec = below.codec
            codecs = codec._outer_first if isinstance(codec, ChainCodec) else [codec]
            found.extend(NAMES[type(c)] for c in codecs)
        below = below.wrappedProtocol.switchedTo
    return found


def connected() -> SwitchableProtocol:
    conn = SwitchableProtocol()
    conn.makeConnection(StringTransport())
    return conn


class StackingOrderTests(SynchronousTestCase):
    def test_order_for_every_combination(self) -> None:
        """frpc: limiter on the raw bytes, outside the codecs; frps: limiter on the plaintext,
        inside them; AES-CFB always outside snappy; the limiter only on the side of its mode."""
        for encryption in (False, True):
            for compression in (False, True):
                codecs = ["aes"] * encryption + ["snappy"] * compression
                for mode in ("client", "server"):
                    plane = DataPlane(KEY, encryption, compression, 1024, mode)
                    for side in ("client", "server"):
                        expected = list(codecs)
                        if mode == side:
                            expected = ["limit"] + expected if side == "client" else expected + ["limit"]
                        with self.subTest(encryption=encryption, compression=compression, mode=mode, side=side):
                            conn = connected()
                            stackDataPlane(conn, plane, side, Clock())
                            self.assertEqual(layers(conn), expected)

    def test_negotiated_compression_takes_snappys_place(self) -> None:
        """Between frptw ends lz4 sits where snappy would; without use_compression nothing does."""
        conn = connected()
        stackDataPlane(conn, DataPlane(KEY, True, True).compressedWith("lz4"), "client", Clock())
        self.assertEqual(layers(conn), ["aes", "lz4"])
        self.assertEqual(DataPlane(KEY, True, False).compressedWith("lz4").compression, "")

    def test_no_limit_without_a_positive_rate(self) -> None:
        for rate in (0, -1024):
            conn = connected()
            stackDataPlane(conn, DataPlane(KEY, bandwidth_limit=rate, bandwidth_limit_mode="server"), "server",
                           Clock())
            self.assertEqual(layers(conn), [])

    def test_a_shared_bucket_is_spent_by_both_directions(self) -> None:
        clock = Clock()
        bucket = TokenBucket(1024, clock)
        conn = connected()
        top = stackDataPlane(conn, DataPlane(KEY, bandwidth_limit=1024, bandwidth_limit_mode="server"), "server",
                             clock, bucket)
        upper = SwitchableProtocol()
        top.switchTo(upper)
        conn.dataReceived(b"x" * 512)
        upper.transport.write(b"y" * 512)
        self.assertEqual(bucket.spend(0), 0.0)
        self.assertGreater(bucket.spend(1), 0.0)

    def test_leftover_is_decoded_first(self) -> None:
        plane = DataPlane(KEY, use_encryption=True)
        sender = AESCFBCodec(KEY)
        wire = sender.encode(b"leftover" + b"later")
        conn = connected()
        top = stackDataPlane(conn, plane, "client", Clock(), leftover=wire[:16 + 8])
        conn.dataReceived(wire[16 + 8:])
        received: List[bytes] = []
        upper = SwitchableProtocol()
        upper.dataReceived = received.append
        top.switchTo(upper)
        self.assertEqual(b"".join(received), b"leftoverlater")

    def test_leftover_without_codecs_is_held(self) -> None:
        conn = connected()
        top = stackDataPlane(conn, DataPlane(KEY), "client", Clock(), leftover=b"early")
        received: List[bytes] = []
        upper = SwitchableProtocol()
        upper.dataReceived = received.append
        top.switchTo(upper)
        self.assertEqual(received, [b"early"])


class ParseTests(SynchronousTestCase):
    def test_frp_spellings(self) -> None:
        plane = DataPlane.parse(KEY, True, False, "1.5MB", "")
        self.assertEqual(plane, DataPlane(KEY, True, False, 1572864, "client"))
        self.assertEqual(DataPlane.parse(KEY, False, True, "", "server").bandwidth_limit, 0)

    def test_bad_bandwidth_is_a_typed_error(self) -> None:
        with self.assertRaises(BandwidthError) as caught:
            DataPlane.parse(KEY, False, False, "1XB", "server")
        self.assertIn("unit not supported", str(caught.exception))
