"""The data plane of a proxy: the layers on each of its work (or visitor) connections.

Interop depends on the order of these layers, so one value describes them and one function
stacks them, on frpc and frps alike (wire-protocol.md §7.3, §7.5)::

    frpc:  carrier - [limiter, mode "client"] - [AES-128-CFB] - [snappy] - local service
    frps:  carrier - [AES-128-CFB] - [snappy] - [limiter, mode "server"] - user

AES-CFB is keyed with the token's key on work connections and with the proxy's ``sk`` on
visitor connections; snappy compresses before encryption.  The limiter spends raw bytes on
frpc and plaintext on frps, which is why it sits on opposite sides of the codecs.

A :class:`DataPlane` is built once per proxy (from the proxy's config on frpc, from its
``NewProxy`` on frps) and stays the same for every connection of that proxy.
"""

from dataclasses import dataclass, replace
from typing import Literal, Optional

from twisted.internet.interfaces import IReactorTime

from frptw.config.bandwidth import parse_bandwidth
from frptw.transport.bandwidth import TokenBucket, throttle
from frptw.transport.layered import layer
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.codec import data_plane_codec

#: Which program stacks the connection; the limiter only applies where the mode says.
Side = Literal["client", "server"]


@dataclass(frozen=True)
class DataPlane:
    """What a proxy's connections carry between the carrier and the bytes of the service.

    :param key: the AES-128 key (:func:`frptw.wire.crypto.derive_key` of the token or ``sk``).
    :param bandwidth_limit: bytes per second; 0 (or less, as frp treats it) for no limit.
    :param bandwidth_limit_mode: ``"client"`` or ``"server"``: the side that limits.
    :param compression: with ``use_compression``, ``""`` for frp's snappy, or what two frptw
        ends agreed on (:mod:`frptw.wire.codec`).
    """

    key: bytes
    use_encryption: bool = False
    use_compression: bool = False
    bandwidth_limit: int = 0
    bandwidth_limit_mode: Side = "client"
    compression: str = ""

    @classmethod
    def parse(
        cls, key: bytes, use_encryption: bool, use_compression: bool, bandwidth_limit: str, bandwidth_limit_mode: str
    ) -> "DataPlane":
        """The data plane of a proxy's settings as frp writes them (``"1.5MB"``, mode ``""``
        meaning ``"client"``); raises :class:`~frptw.config.bandwidth.BandwidthError` for a
        bandwidth frp cannot parse."""
        mode: Side = "server" if bandwidth_limit_mode == "server" else "client"
        return cls(key, use_encryption, use_compression, parse_bandwidth(bandwidth_limit), mode)

    def compressedWith(self, compression: str) -> "DataPlane":
        """This plane with ``compression`` (``""``: snappy) when it compresses at all."""
        return replace(self, compression=compression if self.use_compression else "")

    def limitsOn(self, side: Side) -> bool:
        """Whether ``side`` throttles this proxy's connections."""
        return self.bandwidth_limit > 0 and self.bandwidth_limit_mode == side

    def bucket(self, clock: IReactorTime) -> TokenBucket:
        """A fresh token bucket at this plane's rate."""
        return TokenBucket(self.bandwidth_limit, clock)


def stackDataPlane(
    conn: SwitchableProtocol,
    plane: DataPlane,
    side: Side,
    clock: IReactorTime,
    bucket: Optional[TokenBucket] = None,
    leftover: bytes = b"",
) -> SwitchableProtocol:
    """Stack ``plane``'s layers on ``conn`` in frp's order for ``side`` and return the
    switchable protocol on top, which holds the plaintext until it is switched (spliced).

    :param bucket: when ``side`` limits, the bucket both directions spend (frps shares one per
        proxy); without one, each direction of this connection gets its own fresh bucket.
    :param leftover: bytes already read past the last message, decoded first.
    """
    limited = plane.limitsOn(side)
    read = write = bucket
    if limited and bucket is None:
        read, write = plane.bucket(clock), plane.bucket(clock)
    top = conn
    if limited and side == "client":
        top = throttle(top, clock, read, write)
    codec = data_plane_codec(plane.key, plane.use_encryption, plane.use_compression, plane.compression)
    if codec is not None:
        top = layer(top, codec, leftover)
    elif leftover:
        top.hold(leftover)
    if limited and side == "server":
        top = throttle(top, clock, read, write)
    return top
