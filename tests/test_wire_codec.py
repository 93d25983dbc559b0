"""Codec selection: frp's snappy with every peer, lz4 only where two frptw ends agreed.

The negotiation fields are frptw's own; these tests pin that they never change what Go frp
sees (omitted when empty, so the JSON is byte-identical to frp's) and how frps chooses.
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from frptw.wire import messages as m
from frptw.wire.codec import FRPTW_COMPRESSIONS, choose_compression, compressor, data_plane_codec
from frptw.wire.lz4 import LZ4FrameCodec
from frptw.wire.snappy import SnappyFramingCodec

KEY = b"k" * 16
TEXT = b"frp and frptw compress this line " * 2000


class ChooseTests(SynchronousTestCase):
    def test_go_frp_offers_nothing_so_snappy(self) -> None:
        self.assertEqual(choose_compression([]), "")

    def test_first_known_offer_wins(self) -> None:
        self.assertEqual(choose_compression(["zstd", "lz4"]), "lz4")

    def test_unknown_offers_fall_back_to_snappy(self) -> None:
        self.assertEqual(choose_compression(["zstd", "brotli"]), "")

    def test_frptw_offers_lz4(self) -> None:
        self.assertIn("lz4", FRPTW_COMPRESSIONS)


class CompressorTests(SynchronousTestCase):
    def test_names(self) -> None:
        self.assertIsInstance(compressor(""), SnappyFramingCodec)
        self.assertIsInstance(compressor("snappy"), SnappyFramingCodec)
        self.assertIsInstance(compressor("lz4"), LZ4FrameCodec)
        with self.assertRaises(ValueError):
            compressor("zstd")

    def test_each_chain_round_trips(self) -> None:
        for name in ("", "lz4"):
            for encrypt in (False, True):
                sender, receiver = data_plane_codec(KEY, encrypt, True, name), data_plane_codec(KEY, encrypt, True, name)
                self.assertEqual(receiver.decode(sender.encode(TEXT)), TEXT)

    def test_snappy_and_lz4_streams_differ(self) -> None:
        """The chosen codec really is on the wire (an lz4 frame starts with its magic)."""
        self.assertTrue(compressor("lz4").encode(TEXT).startswith(b"\x04\x22\x4d\x18"))
        self.assertTrue(compressor("").encode(TEXT).startswith(b"\xff\x06\x00\x00sNaPpY"))

    def test_codecs_load_on_first_use(self) -> None:
        code = ("import sys, frptw.wire.codec as c; a = sorted(m for m in ('frptw.wire.snappy', 'frptw.wire.lz4') "
                "if m in sys.modules); c.compressor('lz4'); b = 'frptw.wire.lz4' in sys.modules; print(a, b)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.strip(), "[] True")


class NegotiationFieldTests(SynchronousTestCase):
    def test_empty_fields_are_not_on_the_wire(self) -> None:
        """frptw's fields are omitted when empty: what Go frp sees is unchanged."""
        self.assertEqual(m.encode_body(m.StartWorkConn(proxy_name="t", src_port=1)), b'{"proxy_name":"t","src_port":1}')
        self.assertEqual(m.encode_body(m.NewVisitorConnResp(proxy_name="s")), b'{"proxy_name":"s"}')
        self.assertNotIn(b"frptw", m.encode_body(m.NewProxy(proxy_name="t", use_compression=True)))
        self.assertNotIn(b"frptw", m.encode_body(m.NewVisitorConn(proxy_name="s", use_compression=True)))

    def test_fields_come_last_and_round_trip(self) -> None:
        body = m.encode_body(m.NewProxy(proxy_name="t", use_compression=True, frptw_compressions=["lz4"]))
        self.assertTrue(body.endswith(b',"frptw_compressions":["lz4"]}'), body)
        start = m.StartWorkConn(proxy_name="t", frptw_compression="lz4")
        self.assertEqual(m.decode_body(ord(b"s"), m.encode_body(start)), start)
