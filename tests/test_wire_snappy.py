"""The Snappy framing codec: vector B7, Go writer/reader rules, interop with python-snappy's
framing implementation, hypothesis round trips and garbage with bounded buffering."""

import os
import struct

import cramjam
import snappy as reference  # python-snappy: an independent implementation of the framing format
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.errors import ProtocolError
from frptw.wire.snappy import MAX_BLOCK_SIZE, MAX_CHUNK_LENGTH, STREAM_IDENTIFIER, SnappyFramingCodec, masked_crc32c

TEXT = b"hello user " * 20


def chunk(chunk_type: int, body: bytes) -> bytes:
    return struct.pack("<I", chunk_type | len(body) << 8) + body


def stored(data: bytes, crc=None) -> bytes:
    return chunk(0x01, struct.pack("<I", masked_crc32c(data) if crc is None else crc) + data)


def compressed(data: bytes, block=None) -> bytes:
    return chunk(0x00, struct.pack("<I", masked_crc32c(data)) + (block if block is not None else
                                                                  bytes(cramjam.snappy.compress_raw(data))))


def parse_chunks(wire: bytes) -> list:
    """(type, body) of every chunk: an independent parser for checking our writer."""
    chunks, offset = [], 0
    while offset < len(wire):
        (word,) = struct.unpack_from("<I", wire, offset)
        body = wire[offset + 4:offset + 4 + (word >> 8)]
        chunks.append((word & 0xFF, body))
        offset += 4 + len(body)
    return chunks


def chunked(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


class EncodeTests(SynchronousTestCase):
    def test_vector_b7(self):
        codec = SnappyFramingCodec()
        self.assertEqual(codec.encode(b"hello"),
                         bytes.fromhex("ff060000734e61507059" "01090000" "bb1f1c19" "68656c6c6f"))
        # The stream identifier is sent once per direction.
        self.assertEqual(codec.encode(b"hello"), bytes.fromhex("01090000" "bb1f1c19" "68656c6c6f"))

    def test_crc(self):
        """CRC-32C("hello") = 9a71bb4c, masked 191c1fbb (B7)."""
        self.assertEqual(masked_crc32c(b"hello"), 0x191C1FBB)

    def test_empty_write_writes_nothing(self):
        codec = SnappyFramingCodec()
        self.assertEqual(codec.encode(b""), b"")
        self.assertTrue(codec.encode(b"x").startswith(STREAM_IDENTIFIER))

    def test_compressible_data_is_compressed(self):
        """§7.3: frps's output for "hello user " * 20 is one 0x00 chunk; so is ours."""
        chunks = parse_chunks(SnappyFramingCodec().encode(TEXT))
        self.assertEqual([t for t, _ in chunks], [0xFF, 0x00])
        crc, block = struct.unpack_from("<I", chunks[1][1])[0], chunks[1][1][4:]
        self.assertEqual(bytes(cramjam.snappy.decompress_raw(block)), TEXT)
        self.assertEqual(crc, masked_crc32c(TEXT))

    def test_incompressible_data_is_stored(self):
        data = os.urandom(1000)
        self.assertEqual(parse_chunks(SnappyFramingCodec().encode(data))[1],
                         (0x01, struct.pack("<I", masked_crc32c(data)) + data))

    def test_store_unless_compression_saves_an_eighth(self):
        """Go stores a chunk unless the block is shorter than len - len/8."""
        seen = set()
        for size in range(1, 400):
            # A repeated random half: saves a bit under half, or nothing while tiny.
            data = os.urandom(size // 2) * 2 + os.urandom(size % 2)
            block = bytes(cramjam.snappy.compress_raw(data))
            (chunk_type, _), = parse_chunks(SnappyFramingCodec().encode(data))[1:]
            self.assertEqual(chunk_type, 0x00 if len(block) < size - size // 8 else 0x01, size)
            seen.add(chunk_type)
        self.assertEqual(seen, {0x00, 0x01})

    def test_chunks_hold_at_most_64_kib(self):
        data = os.urandom(2 * MAX_BLOCK_SIZE + 5)
        chunks = parse_chunks(SnappyFramingCodec().encode(data))
        self.assertEqual([len(body) - 4 for _, body in chunks[1:]], [MAX_BLOCK_SIZE, MAX_BLOCK_SIZE, 5])
        self.assertEqual(b"".join(body[4:] for _, body in chunks[1:]), data)
        self.assertEqual(len(parse_chunks(SnappyFramingCodec().encode(b"a" * MAX_BLOCK_SIZE))), 2)

    def test_accepts_any_bytes_like(self):
        for data in (bytearray(TEXT), memoryview(TEXT), memoryview(TEXT * 1000)):
            self.assertEqual(SnappyFramingCodec().decode(SnappyFramingCodec().encode(data)), bytes(data))


class DecodeTests(SynchronousTestCase):
    def decode_all(self, wire: bytes) -> bytes:
        return SnappyFramingCodec().decode(wire)

    def test_vector_b7(self):
        self.assertEqual(self.decode_all(bytes.fromhex("ff060000734e6150705901090000bb1f1c1968656c6c6f")), b"hello")

    def test_stream_identifier_required_first(self):
        for first in (stored(b"x"), compressed(TEXT), chunk(0xFE, b""), chunk(0x80, b"")):
            self.assertRaises(ProtocolError, self.decode_all, first + STREAM_IDENTIFIER)

    def test_bad_stream_identifier(self):
        self.assertRaises(ProtocolError, self.decode_all, chunk(0xFF, b"sNaPpX"))
        # The length alone is enough to reject it: Go checks it before reading the body.
        self.assertRaises(ProtocolError, SnappyFramingCodec().decode, struct.pack("<I", 0xFF | 7 << 8))

    def test_repeated_identifier_padding_and_skippable_chunks_accepted(self):
        wire = (STREAM_IDENTIFIER + chunk(0xFE, b"\0" * 100) + stored(b"a") + STREAM_IDENTIFIER
                + chunk(0x80, b"skip me") + chunk(0xFD, b"") + compressed(TEXT) + chunk(0xFE, b""))
        self.assertEqual(self.decode_all(wire), b"a" + TEXT)

    def test_empty_data_chunks(self):
        self.assertEqual(self.decode_all(STREAM_IDENTIFIER + stored(b"") + compressed(b"")), b"")

    def test_reserved_unskippable_chunks_rejected(self):
        for chunk_type in (0x02, 0x40, 0x7F):
            self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + chunk(chunk_type, b"x"))

    def test_checksum_verified(self):
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + stored(b"abc", crc=0))
        block = bytes(cramjam.snappy.compress_raw(TEXT))
        bad = chunk(0x00, struct.pack("<I", masked_crc32c(TEXT) ^ 1) + block)
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + bad)

    def test_corrupt_block(self):
        self.assertRaises(ProtocolError, self.decode_all,
                          STREAM_IDENTIFIER + compressed(TEXT, block=b"\x05\xff\xff"))
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + compressed(TEXT, block=b"\xff" * 6))
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + compressed(TEXT, block=b""))

    def test_data_chunk_shorter_than_checksum(self):
        for chunk_type in (0x00, 0x01):
            self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + chunk(chunk_type, b"abc"))

    def test_oversize_block_rejected_before_decompressing(self):
        big = b"\0" * (MAX_BLOCK_SIZE + 1)
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + compressed(big))
        self.assertRaises(ProtocolError, self.decode_all, STREAM_IDENTIFIER + stored(big))
        # A block header claiming 4 GiB is rejected from the header.
        self.assertRaises(ProtocolError, self.decode_all,
                          STREAM_IDENTIFIER + compressed(b"", block=b"\xff\xff\xff\xff\x0f"))

    def test_oversize_chunks_rejected_from_their_header(self):
        """No body is awaited for a chunk Go would refuse: memory stays small."""
        for header in (0x01 | (MAX_BLOCK_SIZE + 5) << 8, 0xFE | (MAX_CHUNK_LENGTH + 1) << 8,
                       0x00 | (MAX_CHUNK_LENGTH + 1) << 8, 0x80 | 0xFFFFFF << 8):
            codec = SnappyFramingCodec()
            codec.decode(STREAM_IDENTIFIER)
            self.assertRaises(ProtocolError, codec.decode, struct.pack("<I", header))

    def test_largest_chunks_accepted(self):
        data = os.urandom(MAX_BLOCK_SIZE)
        self.assertEqual(self.decode_all(STREAM_IDENTIFIER + stored(data)), data)
        self.assertEqual(self.decode_all(STREAM_IDENTIFIER + chunk(0xFE, bytes(MAX_CHUNK_LENGTH))), b"")

    def test_error_is_sticky(self):
        codec = SnappyFramingCodec()
        first = self.assertRaises(ProtocolError, codec.decode, b"garbage!")
        second = self.assertRaises(ProtocolError, codec.decode, STREAM_IDENTIFIER + stored(b"x"))
        self.assertIs(first, second)
        self.assertEqual(codec.buffered, 0)

    def test_partial_chunks_buffered_up_to_one_chunk(self):
        codec = SnappyFramingCodec()
        wire = STREAM_IDENTIFIER + chunk(0xFE, bytes(MAX_CHUNK_LENGTH)) + stored(b"done")
        out = []
        for i in range(0, len(wire), 1000):
            out.append(codec.decode(wire[i:i + 1000]))
            self.assertLess(codec.buffered, 4 + MAX_CHUNK_LENGTH)
        self.assertEqual(b"".join(out), b"done")
        self.assertEqual(codec.buffered, 0)


class ReferenceInteropTests(SynchronousTestCase):
    """python-snappy's framing (Rust snap via cramjam) as an independent peer."""

    def test_reference_output_decodes(self):
        compressor = reference.StreamCompressor()
        writes = [b"hello", TEXT, os.urandom(70000), b"z" * 200000, b""]
        wire = b"".join(compressor.add_chunk(w) for w in writes)
        for step in (1, 13, 4096, len(wire)):
            codec = SnappyFramingCodec()
            self.assertEqual(b"".join(codec.decode(wire[i:i + step]) for i in range(0, len(wire), step)),
                             b"".join(writes))

    def test_our_output_decodes_in_reference(self):
        codec = SnappyFramingCodec()
        writes = [b"hello", TEXT, os.urandom(70000), b"z" * 200000]
        wire = b"".join(codec.encode(w) for w in writes)
        self.assertEqual(reference.StreamDecompressor().decompress(wire), b"".join(writes))


class PropertyTests(SynchronousTestCase):
    @settings(max_examples=150, deadline=None)
    @given(st.lists(st.one_of(st.binary(max_size=2000), st.binary(max_size=300).map(lambda b: b * 300)), max_size=5),
           st.lists(st.integers(0, 1 << 20), max_size=15))
    def test_round_trip_random_chunking(self, writes, cuts):
        sender, receiver = SnappyFramingCodec(), SnappyFramingCodec()
        wire = b"".join(sender.encode(w) for w in writes)
        out = []
        for piece in chunked(wire, cuts):
            out.append(receiver.decode(piece))
            self.assertLess(receiver.buffered, 4 + MAX_CHUNK_LENGTH)
        self.assertEqual(b"".join(out), b"".join(writes))
        self.assertEqual(receiver.buffered, 0)
        if any(writes):
            self.assertEqual(reference.StreamDecompressor().decompress(wire), b"".join(writes))

    @settings(max_examples=100, deadline=None)
    @given(st.lists(st.binary(max_size=3000), max_size=5), st.lists(st.integers(0, 1 << 16), max_size=10))
    def test_reference_round_trip(self, writes, cuts):
        compressor = reference.StreamCompressor()
        wire = b"".join(compressor.add_chunk(w) for w in writes if w)
        receiver = SnappyFramingCodec()
        self.assertEqual(b"".join(receiver.decode(piece) for piece in chunked(wire, cuts)), b"".join(writes))

    @settings(max_examples=300, deadline=None)
    @given(st.booleans(), st.binary(max_size=3000), st.lists(st.integers(0, 4000), max_size=8))
    def test_garbage_only_raises_protocol_error(self, after_identifier, garbage, cuts):
        codec = SnappyFramingCodec()
        if after_identifier:
            codec.decode(STREAM_IDENTIFIER)
        try:
            for piece in chunked(garbage, cuts):
                codec.decode(piece)
                self.assertLess(codec.buffered, 4 + MAX_CHUNK_LENGTH)
        except ProtocolError:
            pass

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from([0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF]), st.binary(max_size=200),
           st.integers(0, 0xFFFFFF) | st.none())
    def test_garbage_chunks_only_raise_protocol_error(self, chunk_type, body, claimed_length):
        """Plausible chunks with random contents and lengths: data or ProtocolError."""
        length = len(body) if claimed_length is None else claimed_length
        codec = SnappyFramingCodec()
        try:
            codec.decode(STREAM_IDENTIFIER + struct.pack("<I", chunk_type | length << 8) + body)
        except ProtocolError:
            return
        self.assertLess(codec.buffered, 4 + MAX_CHUNK_LENGTH)
