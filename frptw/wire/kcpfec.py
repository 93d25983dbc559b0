"""kcp-go's forward error correction layer, sans-IO: what frp's KCP datagrams look like.

frp runs kcp-go without a block cipher, so there is no nonce/CRC header; with FEC on (10 data
and 3 parity shards) every datagram starts with a 6-byte header, all little-endian::

    seqid u32 | flag u16 (0xf1 data, 0xf2 parity) | data: size u16, KCP packet | parity: bytes

``size`` counts itself and the KCP packet.  seqids count up by one per datagram and wrap below
2^32 at a multiple of the group size; in each group of 13, positions 0-9 are data and 10-12
parity.  When ten data datagrams of a group went out less than one RTO apart, the sender adds
three parity datagrams: Reed–Solomon (:mod:`frptw.wire.reedsolomon`) over the ten shards
``size + KCP packet`` zero-padded to the longest; otherwise it skips their seqids.  The
receiver hands each data datagram's KCP packet on at once and, once a group has ten shards of
any kind, rebuilds the data shards it lost.  A datagram whose flag is neither is a bare KCP
packet (kcp-go accepts those too).
"""

import struct
from typing import Dict, List, Optional

from frptw.errors import ProtocolError
from frptw.wire.reedsolomon import ReedSolomon

HEADER = struct.Struct("<IH")
HEADER_SIZE = HEADER.size  # 6
#: FEC header plus the data size field: what the FEC layer takes from the MTU.
OVERHEAD = HEADER_SIZE + 2
TYPE_DATA = 0xF1
TYPE_PARITY = 0xF2
#: Shard groups being collected at once (older ones are dropped): bounds a receiver's memory.
MAX_GROUPS = 64


class FecEncoder:
    """Frames KCP packets as FEC data datagrams and adds each group's parity datagrams."""

    def __init__(self, dataShards: int = 10, parityShards: int = 3) -> None:
        self.dataShards = dataShards
        self.parityShards = parityShards
        self.groupSize = dataShards + parityShards
        self._wrap = (0xFFFFFFFF // self.groupSize) * self.groupSize
        self._codec = ReedSolomon(dataShards, parityShards)
        self.next = 0
        self._shards: List[bytes] = []
        self._lastSent: Optional[int] = None

    def encode(self, packet: bytes, now: int, rto: int) -> List[bytes]:
        """The datagrams to send for one KCP ``packet`` at ``now`` (ms): its data datagram and,
        when it completes a group, the group's parity datagrams."""
        shard = struct.pack("<H", len(packet) + 2) + packet
        datagrams = [HEADER.pack(self._seal(), TYPE_DATA) + shard]
        self._shards.append(shard)
        continuous = self._lastSent is not None and now - self._lastSent < rto
        self._lastSent = now
        if len(self._shards) == self.dataShards:
            shards, self._shards = self._shards, []
            if continuous:
                size = max(len(s) for s in shards)
                padded = [s.ljust(size, b"\0") for s in shards]
                for parity in self._codec.encode(padded):
                    datagrams.append(HEADER.pack(self._seal(), TYPE_PARITY) + parity)
            else:
                self.next = (self.next + self.parityShards) % self._wrap
        return datagrams

    def _seal(self) -> int:
        seqid = self.next
        self.next = (seqid + 1) % self._wrap
        return seqid


class FecDecoder:
    """Unframes datagrams into KCP packets, rebuilding lost data datagrams from parity."""

    def __init__(self, dataShards: int = 10, parityShards: int = 3) -> None:
        self.dataShards = dataShards
        self.groupSize = dataShards + parityShards
        self._codec = ReedSolomon(dataShards, parityShards)
        self._groups: Dict[int, Dict[int, bytes]] = {}
        self._done = -1
        #: KCP packets rebuilt from parity so far.
        self.recovered = 0

    def decode(self, datagram: bytes) -> List[bytes]:
        """The KCP packets in ``datagram`` (and any it let us rebuild); raises ProtocolError
        for a malformed one."""
        if len(datagram) < HEADER_SIZE:
            raise ProtocolError(f"KCP datagram of {len(datagram)} bytes")
        seqid, flag = HEADER.unpack_from(datagram)
        if flag != TYPE_DATA and flag != TYPE_PARITY:
            return [datagram]  # a bare KCP packet
        body = datagram[HEADER_SIZE:]
        packets = []
        if flag == TYPE_DATA:
            packets.append(_unshard(body))
        group = seqid // self.groupSize
        if group <= self._done:
            return packets
        shards = self._groups.get(group)
        if shards is None:
            if len(self._groups) >= MAX_GROUPS:
                del self._groups[min(self._groups)]
            shards = self._groups[group] = {}
        position = seqid % self.groupSize
        if (position < self.dataShards) != (flag == TYPE_DATA):
            return packets  # the peer's group layout differs from ours: no recovery
        shards.setdefault(position, body)
        if len(shards) >= self.dataShards:
            del self._groups[group]
            self._done = max(self._done, group)
            for old in [g for g in self._groups if g <= self._done]:
                del self._groups[old]
            missing = [p for p in range(self.dataShards) if p not in shards]
            if missing:
                packets.extend(self._rebuild(shards, missing))
        return packets

    def _rebuild(self, shards: Dict[int, bytes], missing: List[int]) -> List[bytes]:
        size = max(len(s) for s in shards.values())
        row = [shards[p].ljust(size, b"\0") if p in shards else None for p in range(self.groupSize)]
        try:
            data = self._codec.reconstructData(row)
        except ValueError:
            return []
        rebuilt = []
        for position in missing:
            try:
                rebuilt.append(_unshard(data[position]))
            except ProtocolError:
                continue
        self.recovered += len(rebuilt)
        return rebuilt


def _unshard(shard: bytes) -> bytes:
    if len(shard) < 2:
        raise ProtocolError("FEC data shard without a size")
    size = int.from_bytes(shard[:2], "little")
    if size < 2 or size > len(shard):
        raise ProtocolError(f"FEC data shard with size {size} in {len(shard)} bytes")
    return shard[2:size]
