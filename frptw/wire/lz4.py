"""An LZ4 frame stream codec (frptw-to-frptw only: Go frp has no LZ4 layer).

The sender keeps one LZ4 frame open for the life of the connection, with independent 64 KiB
blocks and auto-flush, so every :meth:`LZ4FrameCodec.encode` returns complete blocks for all of
its input: nothing is held back waiting for more data.  Independent blocks measured faster than
linked ones in both directions here (64 KiB writes; text 1.2x, random 2.5x) with no worse
ratio, since a proxied write is usually a whole block anyway.

The receiver feeds everything to the lz4 library's incremental frame decompressor, which
buffers at most one block.  To keep that bound at 64 KiB whatever the peer says, each frame
header is checked before it reaches the library: it must carry the LZ4 frame magic (no
legacy or skippable frames) and a block size of at most 64 KiB.  A frame that ends is simply
followed by the next one.  Output per call is bounded by LZ4's maximum ratio (about 255:1)
times the input.
"""

import lz4.frame

from frptw.wire.errors import ProtocolError

__all__ = ["LZ4FrameCodec"]

_MAGIC = b"\x04\x22\x4d\x18"
# Magic (4) + FLG (1) + BD (1): enough to see the block size.
_HEADER_PREFIX_LENGTH = 6
_FLG_VERSION_MASK = 0xC0
_FLG_VERSION_01 = 0x40
_BD_BLOCK_SIZE_SHIFT = 4
_BD_BLOCK_SIZE_64KB = 4  # block maximum size id 4 = 64 KiB; 5..7 = 256 KiB..4 MiB
_OUTPUT_STEP = 64 * 1024  # output buffer per call into python-lz4: one maximal block
#: LZ4's "fast acceleration" (a negative frame compression level): at -4, measured here with
#: 64 KiB writes (bench/bench_compression.py), lz4 is faster than frp's snappy on every payload
#: (logs 1.4x, text 1.2x, random 1.05x, encode + decode) and compresses as well or better
#: (0.118 vs 0.138 of the input on logs, 0.845 vs 0.853 on text).  The default level 0 compresses
#: text further (0.65) but at 0.7x snappy's speed.
_FAST_ACCELERATION = -4


class LZ4FrameCodec:
    """A :class:`~frptw.wire.codec.StreamCodec` over the LZ4 frame format."""

    __slots__ = ("_compressor", "_decompressor", "_header", "_error")

    def __init__(self) -> None:
        self._compressor: lz4.frame.LZ4FrameCompressor | None = None
        self._decompressor = lz4.frame.LZ4FrameDecompressor()
        # Bytes of the current frame's header seen so far, until its block size is checked.
        self._header: bytearray | None = bytearray()
        self._error: ProtocolError | None = None

    def encode(self, data: bytes) -> bytes:
        """Compress ``data`` into complete LZ4 blocks (the frame header comes first, once)."""
        if not data:
            return b""
        if self._compressor is None:
            self._compressor = lz4.frame.LZ4FrameCompressor(
                block_size=lz4.frame.BLOCKSIZE_MAX64KB, block_linked=False, auto_flush=True,
                compression_level=_FAST_ACCELERATION)
            return self._compressor.begin() + self._compressor.compress(data)
        return self._compressor.compress(data)

    def decode(self, data: bytes) -> bytes:
        """Decompress whatever ``data`` completes.

        :raises ProtocolError: not an LZ4 frame, blocks over 64 KiB, or corrupt data (sticky).
        """
        if self._error is not None:
            raise self._error
        try:
            return self._decode(data)
        except ProtocolError as e:
            self._error = e
            raise

    def _decode(self, data: bytes) -> bytes:
        output = []
        while data:
            if self._header is not None:
                data = self._check_header(data)
                if self._header is not None:
                    break  # header still incomplete
            self._drain(data, output)
            if not self._decompressor.eof:
                break
            # The frame ended: anything after it starts the next frame.
            data = self._decompressor.unused_data
            self._decompressor = lz4.frame.LZ4FrameDecompressor()
            self._header = bytearray()
        return b"".join(output)

    def _drain(self, data: bytes, output: list[bytes]) -> None:
        """Feed ``data`` and collect all the output it makes available.

        python-lz4 sizes its output buffer from the input size when no ``max_length`` is
        given and stops once the input is consumed, leaving decoded bytes inside the LZ4
        context (a 1-byte input that completes a 64 KiB block returns 2 bytes).  So we always
        pass ``max_length`` and call again, with no new input, while the buffer comes back full.
        """
        decompressor = self._decompressor
        try:
            while True:
                chunk = decompressor.decompress(data, max_length=_OUTPUT_STEP)
                output.append(chunk)
                if decompressor.eof or (len(chunk) < _OUTPUT_STEP and decompressor.needs_input):
                    return
                data = b""
        except RuntimeError as e:  # python-lz4 reports every LZ4F error this way
            raise ProtocolError(f"lz4: {e}") from None

    def _check_header(self, data: bytes) -> bytes:
        """Collect the first bytes of a frame; once they pass, return them followed by the rest."""
        header = self._header
        needed = _HEADER_PREFIX_LENGTH - len(header)
        header += data[:needed]
        rest = data[needed:]
        if header[:len(_MAGIC)] != _MAGIC[:len(header)]:
            raise ProtocolError("lz4: not an LZ4 frame")
        if len(header) < _HEADER_PREFIX_LENGTH:
            return b""
        flags, block_descriptor = header[4], header[5]
        if flags & _FLG_VERSION_MASK != _FLG_VERSION_01:
            raise ProtocolError(f"lz4: unsupported frame version in flags 0x{flags:02x}")
        if (block_descriptor >> _BD_BLOCK_SIZE_SHIFT) & 0x7 > _BD_BLOCK_SIZE_64KB:
            raise ProtocolError("lz4: frame announces blocks larger than 64 KiB")
        self._header = None
        return bytes(header) + rest
