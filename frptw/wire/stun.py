"""STUN (RFC 5389, with RFC 5780's OTHER-ADDRESS) as frp's NAT discovery uses it, sans-IO.

frp (``pkg/nathole/discovery.go``, on pion/stun) sends a bare Binding Request (20-byte header,
no attributes) and reads from the answer:

* the mapped address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS;
* the alternate server: OTHER-ADDRESS (RFC 5780), else CHANGED-ADDRESS (RFC 3489).

That is all this module encodes and decodes, both ways, so that frptw's client and the small
STUN server of the tests share one codec.  IPv4 and IPv6 address attributes are understood
(frp itself only discovers over IPv4).  Everything else in a message -- SOFTWARE, FINGERPRINT,
RESPONSE-ORIGIN, unknown attributes -- is skipped, as pion does.

:func:`decode` is strict about the frame (header size, magic cookie, declared length, attribute
bounds) and raises :class:`~frptw.wire.errors.ProtocolError` on garbage; a STUN message is at
most one datagram, so nothing is buffered.
"""

import ipaddress
import os
import struct
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from frptw.wire.errors import ProtocolError

__all__ = [
    "BINDING_REQUEST",
    "BINDING_SUCCESS",
    "MAGIC_COOKIE",
    "Address",
    "StunMessage",
    "binding_request",
    "binding_response",
    "decode",
    "encode",
]

MAGIC_COOKIE = 0x2112A442
HEADER = struct.Struct("!HHI12s")
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101

ATTR_MAPPED_ADDRESS = 0x0001
ATTR_CHANGED_ADDRESS = 0x0005
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_OTHER_ADDRESS = 0x802C
ATTR_RESPONSE_ORIGIN = 0x802B

_ADDRESS_ATTRS = (ATTR_MAPPED_ADDRESS, ATTR_CHANGED_ADDRESS, ATTR_XOR_MAPPED_ADDRESS, ATTR_OTHER_ADDRESS,
                  ATTR_RESPONSE_ORIGIN)

#: A (host, port) pair; host is the textual IP address.
Address = Tuple[str, int]


@dataclass
class StunMessage:
    """One STUN message: its type, transaction id and the address attributes we know."""

    type: int
    transaction_id: bytes
    #: Address attributes in message order: (attribute type, (ip, port)).
    addresses: List[Tuple[int, Address]] = field(default_factory=list)

    def address(self, *kinds: int) -> Optional[Address]:
        """The first attribute of the first of ``kinds`` present (frp's preference order)."""
        for kind in kinds:
            for attr, value in self.addresses:
                if attr == kind:
                    return value
        return None

    @property
    def mapped(self) -> Optional[Address]:
        """Our address as the server saw it: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS."""
        return self.address(ATTR_XOR_MAPPED_ADDRESS, ATTR_MAPPED_ADDRESS)

    @property
    def other(self) -> Optional[Address]:
        """The server's alternate address: OTHER-ADDRESS, else CHANGED-ADDRESS."""
        return self.address(ATTR_OTHER_ADDRESS, ATTR_CHANGED_ADDRESS)


def binding_request(transaction_id: Optional[bytes] = None) -> StunMessage:
    """A bare Binding Request, as frp sends (a fresh random transaction id by default)."""
    return StunMessage(BINDING_REQUEST, transaction_id or os.urandom(12))


def binding_response(request: StunMessage, mapped: Address, other: Optional[Address] = None) -> StunMessage:
    """The success answer to ``request``: XOR-MAPPED-ADDRESS and MAPPED-ADDRESS, plus
    OTHER-ADDRESS when the server has an alternate address."""
    addresses = [(ATTR_XOR_MAPPED_ADDRESS, mapped), (ATTR_MAPPED_ADDRESS, mapped)]
    if other is not None:
        addresses.append((ATTR_OTHER_ADDRESS, other))
    return StunMessage(BINDING_SUCCESS, request.transaction_id, addresses)


def _xor_key(transaction_id: bytes, length: int) -> bytes:
    return (struct.pack("!I", MAGIC_COOKIE) + transaction_id)[:length]


def _encode_address(kind: int, address: Address, transaction_id: bytes) -> bytes:
    ip = ipaddress.ip_address(address[0])
    raw = ip.packed
    port = address[1]
    if kind == ATTR_XOR_MAPPED_ADDRESS:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, _xor_key(transaction_id, len(raw))))
    family = 1 if ip.version == 4 else 2
    return struct.pack("!BBH", 0, family, port) + raw


def _decode_address(kind: int, value: bytes, transaction_id: bytes) -> Address:
    if len(value) < 4:
        raise ProtocolError(f"STUN address attribute 0x{kind:04x} too short ({len(value)} bytes)")
    _, family, port = struct.unpack_from("!BBH", value)
    size = {1: 4, 2: 16}.get(family)
    if size is None or len(value) != 4 + size:
        raise ProtocolError(f"STUN address attribute 0x{kind:04x}: bad family {family} or length {len(value)}")
    raw = value[4:]
    if kind == ATTR_XOR_MAPPED_ADDRESS:
        port ^= MAGIC_COOKIE >> 16
        raw = bytes(a ^ b for a, b in zip(raw, _xor_key(transaction_id, size)))
    return str(ipaddress.ip_address(raw)), port


def encode(message: StunMessage) -> bytes:
    """The bytes of ``message`` (address attributes only; no FINGERPRINT, as pion's default)."""
    body = bytearray()
    for kind, address in message.addresses:
        value = _encode_address(kind, address, message.transaction_id)
        body += struct.pack("!HH", kind, len(value)) + value  # address values are 8 or 20 bytes: aligned
    return HEADER.pack(message.type, len(body), MAGIC_COOKIE, message.transaction_id) + bytes(body)


def decode(data: bytes) -> StunMessage:
    """Parse one STUN datagram; ProtocolError if it is not a well-formed STUN message."""
    if len(data) < HEADER.size:
        raise ProtocolError(f"not a STUN message: {len(data)} bytes, shorter than a header")
    kind, length, cookie, transaction_id = HEADER.unpack_from(data)
    if kind & 0xC000:
        raise ProtocolError(f"not a STUN message: first two bits of type 0x{kind:04x} are set")
    if cookie != MAGIC_COOKIE:
        raise ProtocolError(f"not a STUN message: magic cookie 0x{cookie:08x}")
    if length % 4 or HEADER.size + length != len(data):
        raise ProtocolError(f"STUN length {length} does not match a {len(data)}-byte datagram")
    message = StunMessage(kind, transaction_id)
    offset, end = HEADER.size, HEADER.size + length
    while offset < end:
        if end - offset < 4:
            raise ProtocolError("truncated STUN attribute header")
        attr, size = struct.unpack_from("!HH", data, offset)
        offset += 4
        if offset + size > end:
            raise ProtocolError(f"STUN attribute 0x{attr:04x} of {size} bytes overruns the message")
        if attr in _ADDRESS_ATTRS:
            message.addresses.append((attr, _decode_address(attr, bytes(data[offset:offset + size]), transaction_id)))
        offset += (size + 3) & ~3
    return message
