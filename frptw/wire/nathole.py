"""The pure parts of frp's NAT hole punching (wire-protocol.md §9.4), sans-IO.

* :func:`classify` -- frp's NAT feature of one peer from its STUN-mapped addresses
  (``pkg/nathole/classify.go``): EasyNAT when every mapping is the same, HardNAT otherwise, with
  the behaviour (port, IP or both changed) and whether the port changes are "regular" (a spread
  of 1..5 ports, which port prediction can cover).  Both frps (to choose a punching strategy)
  and frpc (to log, and ``frptw nathole discover``) use it.
* :func:`encode_probe` / :func:`decode_probe` -- the punching datagram: a v1-framed
  ``NatHoleSid`` encrypted with AES-128-CFB under the proxy's ``sk`` key, IV first (golib's
  ``crypto.Encode``), always v1 framing.
* :func:`new_transaction_id` -- ``<unix seconds><16 hex chars>``, frp's transaction ids and sids.
"""

import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

from frptw.wire.crypto import AESCFBCodec
from frptw.wire.errors import ProtocolError
from frptw.wire.hostport import split_host_port
from frptw.wire.messages import MessageReader, NatHoleSid, encode_message

__all__ = [
    "EASY_NAT",
    "HARD_NAT",
    "MAX_PROBE_SIZE",
    "NatFeature",
    "classify",
    "decode_probe",
    "encode_probe",
    "new_transaction_id",
]

EASY_NAT = "EasyNAT"
HARD_NAT = "HardNAT"
NO_CHANGE = "BehaviorNoChange"
IP_CHANGED = "BehaviorIPChanged"
PORT_CHANGED = "BehaviorPortChanged"
BOTH_CHANGED = "BehaviorBothChanged"

#: frp reads probes into a 1024-byte buffer: a longer datagram is never a probe.
MAX_PROBE_SIZE = 1024


def new_transaction_id(now: float) -> str:
    """frp's ids (transaction ids, sids): unix seconds then 8 random bytes in hex."""
    return f"{int(now)}{os.urandom(8).hex()}"


def hosts_of(addresses: Iterable[str]) -> List[str]:
    """The hosts of the well-formed ``ip:port`` strings (frp's ``parseIPs``)."""
    hosts = []
    for text in addresses:
        try:
            hosts.append(split_host_port(text)[0])
        except ValueError:
            continue
    return hosts


def compact(items: Sequence[str]) -> List[str]:
    """Go's ``slices.Compact``: drop *consecutive* duplicates only."""
    out: List[str] = []
    for item in items:
        if not out or out[-1] != item:
            out.append(item)
    return out


@dataclass(frozen=True)
class NatFeature:
    """What frp concludes about one peer's NAT from its mapped addresses."""

    nat_type: str
    behavior: str
    ports_difference: int = 0
    regular_ports_change: bool = False
    public_network: bool = False


def classify(mapped: Sequence[str], local_ips: Sequence[str]) -> NatFeature:
    """frp's ``ClassifyNATFeature``; ValueError (frp's text) when it cannot classify."""
    if len(mapped) <= 1:
        raise ValueError("not enough addresses")
    public = False
    base: Optional[Tuple[str, int]] = None
    ip_changed = port_changed = False
    low = high = 0
    for text in mapped:
        ip, port = split_host_port(text)
        if ip in local_ips:
            public = True
        if base is None:
            base, low, high = (ip, port), port, port
            continue
        low, high = min(low, port), max(high, port)
        ip_changed |= ip != base[0]
        port_changed |= port != base[1]
    if ip_changed and port_changed:
        return NatFeature(HARD_NAT, BOTH_CHANGED, public_network=public)
    if ip_changed:
        return NatFeature(HARD_NAT, IP_CHANGED, public_network=public)
    if port_changed:
        spread = high - low
        return NatFeature(HARD_NAT, PORT_CHANGED, spread, 1 <= spread <= 5, public)
    return NatFeature(EASY_NAT, NO_CHANGE, public_network=public)


def encode_probe(key: bytes, transaction_id: str, sid: str, response: bool, padding: int) -> bytes:
    """One punching datagram: IV || AES-CFB(v1 ``NatHoleSid``).  ``padding`` (0..19 in frp) is
    the number of ``0`` characters of the nonce, which varies the datagram's length."""
    message = NatHoleSid(transaction_id=transaction_id, sid=sid, response=response, nonce="0" * padding)
    return AESCFBCodec(key).encode(encode_message(message))


def decode_probe(key: bytes, data: bytes) -> NatHoleSid:
    """The ``NatHoleSid`` in a punching datagram; ProtocolError when it is not one (wrong key,
    garbage, too long, another message)."""
    if len(data) > MAX_PROBE_SIZE:
        raise ProtocolError(f"{len(data)}-byte datagram is longer than a probe")
    reader = MessageReader()
    reader.feed(AESCFBCodec(key).decode(data))
    message = reader.next_message()
    if not isinstance(message, NatHoleSid):
        raise ProtocolError("datagram is not a NatHoleSid probe")
    return message
