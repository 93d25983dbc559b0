"""frps's choice of a hole-punching strategy for a pair of peers (frp's ``pkg/nathole/analysis.go``).

Plain Python, no I/O, no clock of its own (times are passed in).

Theory of operation.  A punching *behaviour* is a pair (what the proxy-side client does, what the
visitor does): which one sends and which one receives, with what TTL, delay and port guessing.
frp groups behaviours into five *modes* (0: both peers' mappings stable; 1 and 2: one peer's
mapping changes per destination, regularly or not; 3 and 4: both change).  For each pair of
peers -- keyed by their first mapped IPs and NAT features -- frps keeps a *score table* over
the candidate (mode, index) entries suited to their NATs, all starting at 0 (or favouring the
public-network peer as receiver).  Each session takes the entry with the highest score (the
first one among equals), lowering it by one; a successful ``NatHoleReport`` raises it by two
(at most 10).  So a pair tries entry after entry until one works, then keeps using it.  Tables
unused for ``reserve`` seconds are dropped by :meth:`Analyzer.clean` (frps runs it hourly).
"""

import hashlib
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from frptw.wire.hostport import split_host_port
from frptw.wire.messages import PortsRange
from frptw.wire.nathole import EASY_NAT, NatFeature, compact, hosts_of

SENDER = "sender"
RECEIVER = "receiver"


@dataclass(frozen=True)
class Behavior:
    """What one peer does in one punching attempt."""

    role: str
    ttl: int = 0
    send_delay_ms: int = 0
    ports_range_number: int = 0
    ports_random_number: int = 0
    listen_random_ports: int = 0


def _s(**kw: int) -> Behavior:
    return Behavior(SENDER, **kw)


def _r(**kw: int) -> Behavior:
    return Behavior(RECEIVER, **kw)


#: (proxy-side client, visitor) behaviours of each mode, in frp's order.
MODES: Tuple[Tuple[Tuple[Behavior, Behavior], ...], ...] = (
    (  # 0: both EasyNAT
        (_s(), _r(ttl=7)), (_r(ttl=7), _s()), (_s(), _r(ttl=4)), (_r(ttl=4), _s()), (_s(), _r()), (_r(), _s()),
        (_s(send_delay_ms=5000), _r()), (_s(send_delay_ms=10000), _r()),
        (_r(), _s(send_delay_ms=5000)), (_r(), _s(send_delay_ms=10000)),
    ),
    (  # 1: one HardNAT with regular port changes, which sends
        (_s(), _r(ttl=7, ports_range_number=10)),
        (_s(send_delay_ms=2000), _r(ttl=7, ports_range_number=10)),
        (_s(), _r(ttl=4, ports_range_number=10)),
        (_s(send_delay_ms=2000), _r(ttl=4, ports_range_number=10)),
        (_s(), _r(ports_range_number=10)),
        (_s(send_delay_ms=2000), _r(ports_range_number=10)),
    ),
    (  # 2: one HardNAT, irregular, which receives on many ports
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256, ttl=7)),
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256, ttl=4)),
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256)),
    ),
    (  # 3: both HardNAT, both regular
        (_s(ports_range_number=10), _r(ttl=7, ports_range_number=10)),
        (_s(ports_range_number=10), _r(ttl=4, ports_range_number=10)),
        (_s(ports_range_number=10), _r(ports_range_number=10)),
        (_r(ttl=7, ports_range_number=10), _s(ports_range_number=10)),
        (_r(ttl=4, ports_range_number=10), _s(ports_range_number=10)),
        (_r(ports_range_number=10), _s(ports_range_number=10)),
    ),
    (  # 4: both HardNAT, one regular, which sends
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256, ttl=7, ports_range_number=2)),
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256, ttl=4, ports_range_number=2)),
        (_s(ports_random_number=1000, send_delay_ms=3000), _r(listen_random_ports=256, ports_range_number=2)),
    ),
)


def _scores(mode: int, sender_score: int = 0, receiver_score: int = 0) -> List[List[int]]:
    """[mode, index, score] entries of ``mode``; the score depends on the client's role."""
    return [[mode, i, sender_score if client.role == SENDER else receiver_score]
            for i, (client, _) in enumerate(MODES[mode])]


def initial_scores(client: NatFeature, visitor: NatFeature) -> List[List[int]]:
    """The score table frp starts with for a new pair of peers."""
    features = (client, visitor)
    easy = sum(f.nat_type == EASY_NAT for f in features)
    hard = len(features) - easy
    regular = sum(f.nat_type != EASY_NAT and f.regular_ports_change for f in features)

    def mode0() -> List[List[int]]:
        if client.public_network:  # the public peer should receive
            return _scores(0, 0, 1)
        if visitor.public_network:
            return _scores(0, 1, 0)
        return _scores(0)

    if easy == 2:
        return mode0()
    if hard == 1 and regular == 1:
        return _scores(1) + _scores(2) + mode0()
    if hard == 1:
        return _scores(2) + _scores(1) + mode0()
    if regular == 2:
        return _scores(3) + _scores(4)
    if regular == 1:
        return _scores(4)
    return _scores(0, 1, 1) + _scores(1, 1, 1) + _scores(3, 1, 1)


def analysis_key(visitor_mapped: Sequence[str], visitor: NatFeature, client_mapped: Sequence[str],
                 client: NatFeature) -> str:
    """frp's key of a pair of peers: md5 over first mapped IP and NAT feature of each."""
    digest = hashlib.md5()
    for mapped, feature in ((visitor_mapped, visitor), (client_mapped, client)):
        ips = compact(hosts_of(mapped))
        if ips:
            digest.update(ips[0].encode())
        digest.update(feature.nat_type.encode())
        digest.update(feature.behavior.encode())
        digest.update(b"true" if feature.regular_ports_change else b"false")
    return digest.hexdigest()


class _Records:
    __slots__ = ("scores", "updated")

    def __init__(self, scores: List[List[int]], now: float) -> None:
        self.scores = scores
        self.updated = now


class Analyzer:
    """The score tables of every pair of peers frps has seen (frp's ``Analyzer``)."""

    def __init__(self, reserve_seconds: float) -> None:
        self.reserve = reserve_seconds
        self._records: Dict[str, _Records] = {}

    def __len__(self) -> int:
        return len(self._records)

    def recommend(self, key: str, client: NatFeature, visitor: NatFeature,
                  now: float) -> Tuple[int, int, Behavior, Behavior]:
        """(mode, index, client behaviour, visitor behaviour) for the next attempt of ``key``."""
        records = self._records.get(key)
        if records is None:
            records = self._records[key] = _Records(initial_scores(client, visitor), now)
        mode, index = 0, 0
        if records.scores:
            best = max(records.scores, key=lambda entry: entry[2])  # first of the highest, as Go's MaxFunc
            best[2] -= 1
            mode, index = best[0], best[1]
        records.updated = now
        behaviors = MODES[mode] if mode < len(MODES) else MODES[0]
        if index >= len(behaviors):
            return mode, index, Behavior(""), Behavior("")
        c, v = behaviors[index]
        if (mode == 1 and client.nat_type == EASY_NAT) or (mode == 2 and client.nat_type != EASY_NAT) or (
                mode == 4 and not client.regular_ports_change):
            c, v = v, c  # the roles of the situation column land on the right peer
        return mode, index, c, v

    def report_success(self, key: str, mode: int, index: int, now: float) -> None:
        records = self._records.get(key)
        if records is None:
            return
        records.updated = now
        for entry in records.scores:
            if entry[0] == mode and entry[1] == index:
                entry[2] = min(entry[2] + 2, 10)
                return

    def clean(self, now: float) -> Tuple[int, int]:
        """Drop the tables unused for longer than the reserve time: (dropped, total before)."""
        total = len(self._records)
        for key in [k for k, r in self._records.items() if now - r.updated > self.reserve]:
            del self._records[key]
        return total - len(self._records), total


def candidate_ports(mapped: Sequence[str], difference: int, range_number: int) -> List[PortsRange]:
    """frp's ``getRangePorts``: one range around the port of the last mapped address."""
    if range_number <= 0 or not mapped:
        return []
    try:
        _, port = split_host_port(mapped[-1])
    except ValueError:
        return []
    return [PortsRange(from_=max(port - difference - 5, port - range_number, 1),
                       to=min(port + difference + 5, port + range_number, 65535))]
