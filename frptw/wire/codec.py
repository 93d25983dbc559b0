"""The stream codec contract shared by encryption and compression.

A *stream codec* transforms a byte stream in both directions: ``encode`` for bytes we send,
``decode`` for bytes we receive.  Codecs are stateful (cipher state, partial frames) and
sans-IO.  :class:`frptw.transport.layered.LayeredProtocol` runs any codec over a transport.

``decode`` raises :class:`~frptw.wire.errors.ProtocolError` on malformed input, and keeps at
most one incomplete frame of the peer's input buffered (a bounded amount); both methods may
return ``b""`` when they have nothing to emit yet.
"""

from typing import List, Optional, Protocol, Sequence

from frptw.wire.crypto import AESCFBCodec
from frptw.wire.snappy import SnappyFramingCodec


class StreamCodec(Protocol):
    """A bidirectional, stateful byte-stream transform."""

    def encode(self, data: bytes) -> bytes:
        """Transform outgoing plaintext ``data`` into bytes for the wire."""

    def decode(self, data: bytes) -> bytes:
        """Transform incoming wire bytes into plaintext (possibly ``b""`` for now)."""


class ChainCodec:
    """Several codecs as one: the first is the outermost (closest to the wire).

    frp compresses and then encrypts, so a work connection with both uses
    ``ChainCodec([aes, snappy])``.
    """

    def __init__(self, codecs: Sequence[StreamCodec]) -> None:
        self._outer_first = list(codecs)
        self._inner_first = self._outer_first[::-1]

    def encode(self, data: bytes) -> bytes:
        for codec in self._inner_first:
            data = codec.encode(data)
        return data

    def decode(self, data: bytes) -> bytes:
        for codec in self._outer_first:
            data = codec.decode(data)
        return data


def data_plane_codec(key: bytes, use_encryption: bool, use_compression: bool) -> Optional[StreamCodec]:
    """The codec of one work or visitor connection as frp stacks it: AES-128-CFB (with ``key``,
    derived from the token or the proxy's ``sk``) outermost, then snappy; ``None`` when neither
    is on."""
    codecs: List[StreamCodec] = []
    if use_encryption:
        codecs.append(AESCFBCodec(key))
    if use_compression:
        codecs.append(SnappyFramingCodec())
    if not codecs:
        return None
    return codecs[0] if len(codecs) == 1 else ChainCodec(codecs)
