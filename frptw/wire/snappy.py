"""frp's compression layer: the Snappy framing format (wire-protocol.md §7.3).

frp wraps compressed connections in golang/snappy's unbuffered ``Writer`` and its ``Reader``.
The stream is a sequence of chunks::

    type (1 byte) | length (3 bytes LE) | length bytes of chunk data

* ``0xff`` stream identifier, data ``sNaPpY``: the writer sends it once, right before its
  first data chunk; the reader requires it first and accepts it again later;
* ``0x00`` compressed / ``0x01`` stored data: 4-byte LE *masked* CRC-32C of the uncompressed
  bytes, then a Snappy block (or the bytes themselves), at most 65536 uncompressed bytes;
* ``0xfe`` padding and ``0x80``-``0xfd`` reserved skippable chunks: ignored;
* ``0x02``-``0x7f`` reserved unskippable chunks: an error.

Like Go's writer, :meth:`SnappyFramingCodec.encode` emits complete chunks for every call (a
stream codec must never hold data back) and stores a chunk whenever compression saves less
than 1/8.  Like Go's reader, :meth:`SnappyFramingCodec.decode` rejects chunks longer than
the largest possible compressed chunk and blocks that claim more than 65536 bytes before
decompressing anything, so its buffer never exceeds one chunk header plus one chunk.

Snappy blocks are (de)compressed by cramjam; CRC-32C comes from google-crc32c (a hardware
accelerated C extension; its functions accept only ``bytes``).
"""

import struct

import cramjam
import google_crc32c

from frptw.wire.errors import ProtocolError

__all__ = ["MAX_BLOCK_SIZE", "MAX_CHUNK_LENGTH", "STREAM_IDENTIFIER", "SnappyFramingCodec", "masked_crc32c"]

#: Most uncompressed bytes in one data chunk.
MAX_BLOCK_SIZE = 65536
#: Longest chunk body Go's reader accepts: 4-byte CRC + worst-case Snappy block of 64 KiB.
MAX_CHUNK_LENGTH = 4 + 32 + MAX_BLOCK_SIZE + MAX_BLOCK_SIZE // 6
#: The stream identifier chunk, header included.
STREAM_IDENTIFIER = b"\xff\x06\x00\x00sNaPpY"

_CHUNK_HEADER_LENGTH = 4
_CHUNK_COMPRESSED = 0x00
_CHUNK_STORED = 0x01
_CHUNK_STREAM_IDENTIFIER = 0xFF
_STREAM_IDENTIFIER_BODY = STREAM_IDENTIFIER[_CHUNK_HEADER_LENGTH:]
_CRC_MASK_DELTA = 0xA282EAD8

# Data chunk prefix: type + 24-bit length packed as one LE word, then the masked CRC.
_DATA_PREFIX = struct.Struct("<II")
_WORD = struct.Struct("<I")

_compress = cramjam.snappy.compress_raw
_decompress = cramjam.snappy.decompress_raw
_decompressed_length = cramjam.snappy.decompress_raw_len
_crc32c = google_crc32c.value


def masked_crc32c(data: bytes) -> int:
    """The framing format's checksum: CRC-32C rotated right by 15 bits plus a constant."""
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _CRC_MASK_DELTA) & 0xFFFFFFFF


class SnappyFramingCodec:
    """A :class:`~frptw.wire.codec.StreamCodec` speaking golang/snappy's framing format."""

    __slots__ = ("_sent_identifier", "_buffer", "_seen_identifier", "_error")

    def __init__(self) -> None:
        self._sent_identifier = False
        # Holds only an incomplete chunk between calls: complete chunks are consumed at once.
        self._buffer = bytearray()
        self._seen_identifier = False
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Received bytes held back as an incomplete chunk (at most 4 + MAX_CHUNK_LENGTH - 1)."""
        return len(self._buffer)

    # -- sending ----------------------------------------------------------------------------

    def encode(self, data: bytes) -> bytes:
        """Frame ``data`` as complete chunks (stream identifier first, once)."""
        if not data:
            return b""
        parts: list[bytes] = []
        if not self._sent_identifier:
            self._sent_identifier = True
            parts.append(STREAM_IDENTIFIER)
        if len(data) <= MAX_BLOCK_SIZE:
            self._encode_block(bytes(data), parts)
        else:
            view = memoryview(data)
            for offset in range(0, len(view), MAX_BLOCK_SIZE):
                # google-crc32c needs bytes; the copy is cheap next to compression.
                self._encode_block(bytes(view[offset:offset + MAX_BLOCK_SIZE]), parts)
        return b"".join(parts)

    @staticmethod
    def _encode_block(block: bytes, parts: list) -> None:
        crc = masked_crc32c(block)
        compressed = _compress(block)
        size = len(block)
        if len(compressed) < size - size // 8:
            parts.append(_DATA_PREFIX.pack(_CHUNK_COMPRESSED | (len(compressed) + 4) << 8, crc))
            parts.append(compressed)
        else:
            parts.append(_DATA_PREFIX.pack(_CHUNK_STORED | (size + 4) << 8, crc))
            parts.append(block)

    # -- receiving --------------------------------------------------------------------------

    def decode(self, data: bytes) -> bytes:
        """Unframe every complete chunk received so far; keep at most one partial chunk.

        :raises ProtocolError: on anything golang/snappy's reader would reject; the error is
            sticky, as the stream cannot be resynchronised.
        """
        if self._error is not None:
            raise self._error
        buffer = self._buffer
        buffer += data
        start = 0
        end = len(buffer)
        output: list[bytes] = []
        try:
            while end - start >= _CHUNK_HEADER_LENGTH:
                (word,) = _WORD.unpack_from(buffer, start)
                chunk_type = word & 0xFF
                length = word >> 8
                if not self._seen_identifier and chunk_type != _CHUNK_STREAM_IDENTIFIER:
                    raise ProtocolError(f"snappy: stream starts with chunk type 0x{chunk_type:02x}, "
                                        "not the stream identifier")
                _check_chunk_header(chunk_type, length)
                body_start = start + _CHUNK_HEADER_LENGTH
                chunk_end = body_start + length
                if chunk_end > end:
                    break
                if chunk_type == _CHUNK_COMPRESSED or chunk_type == _CHUNK_STORED:
                    output.append(self._decode_data_chunk(chunk_type, buffer, body_start, chunk_end))
                elif chunk_type == _CHUNK_STREAM_IDENTIFIER:
                    if buffer[body_start:chunk_end] != _STREAM_IDENTIFIER_BODY:
                        raise ProtocolError("snappy: bad stream identifier chunk")
                    self._seen_identifier = True
                # else: padding or reserved skippable chunk, ignored
                start = chunk_end
        except ProtocolError as e:
            self._error = e
            buffer.clear()
            raise
        if start == end:
            buffer.clear()
        elif start:
            del buffer[:start]  # keep only the partial chunk
        if len(output) == 1:
            return output[0]
        return b"".join(output)

    @staticmethod
    def _decode_data_chunk(chunk_type: int, buffer: bytearray, body_start: int, chunk_end: int) -> bytes:
        (expected_crc,) = _WORD.unpack_from(buffer, body_start)
        payload = memoryview(buffer)[body_start + 4:chunk_end]
        try:
            if chunk_type == _CHUNK_COMPRESSED:
                try:
                    size = _decompressed_length(payload)
                except cramjam.DecompressionError as e:
                    raise ProtocolError(f"snappy: corrupt block header ({e})") from None
                if size > MAX_BLOCK_SIZE:
                    raise ProtocolError(f"snappy: block decompresses to {size} bytes, over {MAX_BLOCK_SIZE}")
                try:
                    block = bytes(_decompress(payload))
                except cramjam.DecompressionError as e:
                    raise ProtocolError(f"snappy: corrupt block ({e})") from None
            else:
                block = bytes(payload)
        finally:
            payload.release()  # the buffer must not stay exported, or it cannot be resized
        if masked_crc32c(block) != expected_crc:
            raise ProtocolError("snappy: checksum mismatch")
        return block


def _check_chunk_header(chunk_type: int, length: int) -> None:
    """Reject a chunk from its header alone, as Go's reader does, before buffering its body."""
    if length > MAX_CHUNK_LENGTH:
        raise ProtocolError(f"snappy: chunk of {length} bytes exceeds {MAX_CHUNK_LENGTH}")
    if chunk_type == _CHUNK_COMPRESSED or chunk_type == _CHUNK_STORED:
        if length < 4:
            raise ProtocolError("snappy: data chunk shorter than its checksum")
        if chunk_type == _CHUNK_STORED and length - 4 > MAX_BLOCK_SIZE:
            raise ProtocolError(f"snappy: stored chunk of {length - 4} bytes, over {MAX_BLOCK_SIZE}")
    elif chunk_type == _CHUNK_STREAM_IDENTIFIER:
        if length != len(_STREAM_IDENTIFIER_BODY):
            raise ProtocolError(f"snappy: stream identifier chunk of {length} bytes")
    elif chunk_type <= 0x7F:
        raise ProtocolError(f"snappy: reserved unskippable chunk type 0x{chunk_type:02x}")
