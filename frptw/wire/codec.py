"""The stream codec contract shared by encryption and compression.

A *stream codec* transforms a byte stream in both directions: ``encode`` for bytes we send,
``decode`` for bytes we receive.  Codecs are stateful (cipher state, partial frames) and
sans-IO.  :class:`frptw.transport.layered.LayeredProtocol` runs any codec over a transport.

``decode`` raises :class:`~frptw.wire.errors.ProtocolError` on malformed input, and keeps at
most one incomplete frame of the peer's input buffered (a bounded amount); both methods may
return ``b""`` when they have nothing to emit yet.

Compression between two frptw ends
----------------------------------
frp compresses with snappy framing.  When both ends of a connection are frptw,
``use_compression`` uses lz4 instead (faster than snappy in both directions on every payload
measured, with as good or better ratios: :mod:`frptw.wire.lz4`): frpc lists what it can decode besides snappy in ``NewProxy.frptw_compressions``
(``NewVisitorConn`` for visitors), and a frptw frps names its choice on every connection it
starts, in ``StartWorkConn.frptw_compression`` (``NewVisitorConnResp``).  Go frp ignores both
fields and never sends them, so with Go at either end the connection stays snappy, and the
choice travels with each connection, so no connection can see the other end switch codecs.
The codec modules are imported on first use: a process that never compresses never loads them.
"""

from typing import List, Optional, Protocol, Sequence

from frptw.wire.crypto import AESCFBCodec

#: frp's compression, the one every peer has.
SNAPPY = "snappy"
#: Compressions frptw offers besides snappy, preferred first.
FRPTW_COMPRESSIONS = ("lz4",)


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


def choose_compression(offered: Sequence[str]) -> str:
    """frps's pick from a peer's ``frptw_compressions``: the first one frptw has, or ``""``
    (snappy: the peer is Go frp, or offers nothing we know)."""
    for name in offered:
        if name in FRPTW_COMPRESSIONS:
            return name
    return ""


def compressor(name: str = SNAPPY) -> StreamCodec:
    """A fresh compression codec by name (``""`` is snappy, as on the wire)."""
    if name in ("", SNAPPY):
        from frptw.wire.snappy import SnappyFramingCodec

        return SnappyFramingCodec()
    if name == "lz4":
        from frptw.wire.lz4 import LZ4FrameCodec

        return LZ4FrameCodec()
    raise ValueError(f"unknown compression {name!r}")


def data_plane_codec(
    key: bytes, use_encryption: bool, use_compression: bool, compression: str = SNAPPY
) -> Optional[StreamCodec]:
    """The codec of one work or visitor connection as frp stacks it: AES-128-CFB (with ``key``,
    derived from the token or the proxy's ``sk``) outermost, then the compression (snappy, or
    what two frptw ends agreed on); ``None`` when neither is on."""
    codecs: List[StreamCodec] = []
    if use_encryption:
        codecs.append(AESCFBCodec(key))
    if use_compression:
        codecs.append(compressor(compression))
    if not codecs:
        return None
    return codecs[0] if len(codecs) == 1 else ChainCodec(codecs)
