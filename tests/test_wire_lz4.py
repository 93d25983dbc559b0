"""The LZ4 frame codec: every write delivered at once, interop with lz4's one-shot frame API,
bounded frames, hypothesis round trips and garbage."""

import os

import lz4.frame
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.errors import ProtocolError
from frptw.wire.lz4 import LZ4FrameCodec

TEXT = b"hello user " * 2000


def chunked(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


def large_block_header(block_size: int) -> bytes:
    # lz4.frame.compress() shrinks the block size to fit small inputs; begin() keeps it.
    return lz4.frame.LZ4FrameCompressor(block_size=block_size).begin()


class LZ4Tests(SynchronousTestCase):
    def test_every_write_is_delivered_immediately(self):
        """Nothing is held back: each write's output alone yields that write at the peer."""
        sender, receiver = LZ4FrameCodec(), LZ4FrameCodec()
        for data in (b"a", TEXT, os.urandom(100000), b"", b"tail"):
            self.assertEqual(receiver.decode(sender.encode(data)), data)

    def test_empty_write_writes_nothing(self):
        codec = LZ4FrameCodec()
        self.assertEqual(codec.encode(b""), b"")
        self.assertTrue(codec.encode(b"x").startswith(b"\x04\x22\x4d\x18"))

    def test_compresses(self):
        self.assertLess(len(LZ4FrameCodec().encode(TEXT)), len(TEXT) // 10)

    def test_byte_at_a_time(self):
        """A 1-byte input that completes a large block still yields the whole block."""
        wire = LZ4FrameCodec().encode(b"hello" + b"world" * 20000)
        codec = LZ4FrameCodec()
        self.assertEqual(b"".join(codec.decode(wire[i:i + 1]) for i in range(len(wire))), b"hello" + b"world" * 20000)

    def test_decodes_frames_from_the_library(self):
        """Complete frames (with end mark and checksums) from lz4's own API, back to back."""
        first = lz4.frame.compress(TEXT, block_size=lz4.frame.BLOCKSIZE_MAX64KB, content_checksum=True)
        second = lz4.frame.compress(b"second", block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_checksum=True)
        wire = first + second
        for step in (1, 7, len(wire)):
            codec = LZ4FrameCodec()
            self.assertEqual(b"".join(codec.decode(wire[i:i + step]) for i in range(0, len(wire), step)),
                             TEXT + b"second")

    def test_our_stream_decodes_in_the_library(self):
        codec = LZ4FrameCodec()
        wire = codec.encode(b"abc") + codec.encode(TEXT)
        # (max_length sidesteps python-lz4 sizing its output from the input, see frptw.wire.lz4)
        self.assertEqual(lz4.frame.LZ4FrameDecompressor().decompress(wire, max_length=1 << 20), b"abc" + TEXT)

    def test_large_blocks_refused(self):
        """A peer may not make us buffer 256 KiB..4 MiB blocks: refused from the 6th byte."""
        for block_size in (lz4.frame.BLOCKSIZE_MAX256KB, lz4.frame.BLOCKSIZE_MAX1MB, lz4.frame.BLOCKSIZE_MAX4MB):
            header = large_block_header(block_size)
            codec = LZ4FrameCodec()
            self.assertEqual(codec.decode(header[:5]), b"")
            self.assertRaises(ProtocolError, codec.decode, header[5:6])

    def test_large_blocks_refused_in_a_later_frame(self):
        codec = LZ4FrameCodec()
        first = lz4.frame.compress(b"ok", block_size=lz4.frame.BLOCKSIZE_MAX64KB)
        self.assertEqual(codec.decode(first), b"ok")
        self.assertRaises(ProtocolError, codec.decode, large_block_header(lz4.frame.BLOCKSIZE_MAX4MB))

    def test_not_a_frame(self):
        self.assertEqual(LZ4FrameCodec().decode(b"\x04\x22"), b"")  # could still be the magic
        for wire in (b"\x04\x22\x4d\x19", b"\x02\x21\x4c\x18", b"\x50\x2a\x4d\x18\0\0\0\0", b"hello!"):
            self.assertRaises(ProtocolError, LZ4FrameCodec().decode, wire)

    def test_bad_version(self):
        self.assertRaises(ProtocolError, LZ4FrameCodec().decode, b"\x04\x22\x4d\x18\x80\x40")

    def test_corrupt_data_and_sticky_error(self):
        wire = bytearray(LZ4FrameCodec().encode(TEXT))
        wire[6] ^= 0xFF  # header checksum
        codec = LZ4FrameCodec()
        first = self.assertRaises(ProtocolError, codec.decode, bytes(wire))
        second = self.assertRaises(ProtocolError, codec.decode, b"")
        self.assertIs(first, second)


class LZ4PropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.one_of(st.binary(max_size=2000), st.binary(max_size=300).map(lambda b: b * 300)), max_size=5),
           st.lists(st.integers(0, 1 << 20), max_size=15))
    def test_round_trip_random_chunking(self, writes, cuts):
        sender, receiver = LZ4FrameCodec(), LZ4FrameCodec()
        wire = b"".join(sender.encode(w) for w in writes)
        self.assertEqual(b"".join(receiver.decode(piece) for piece in chunked(wire, cuts)), b"".join(writes))

    @settings(max_examples=300, deadline=None)
    @given(st.booleans(), st.binary(max_size=3000), st.lists(st.integers(0, 4000), max_size=8))
    def test_garbage_only_raises_protocol_error(self, valid_header, garbage, cuts):
        codec = LZ4FrameCodec()
        if valid_header:
            codec.decode(LZ4FrameCodec().encode(b"x")[:7])
        try:
            for piece in chunked(garbage, cuts):
                codec.decode(piece)
        except ProtocolError:
            pass
