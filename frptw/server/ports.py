"""Which remote ports proxies may bind, and which one a proxy gets (frps's port manager).

frps keeps one allocator per network type (tcp, udp).  The rules, in frp's words and order:

* a fixed port outside ``allow_ports`` is ``port not allowed``; one that another proxy of this
  frps holds is ``port already used``; one the OS refuses to bind is ``port unavailable``;
* ``remote_port = 0`` asks for any free allowed port: the port this proxy name had last time
  (if it can still be bound, so a reconnecting client keeps its port), else up to five random
  allowed ports not held by a proxy; if none binds, ``no available port``;
* a released port stays reserved for its proxy name for 24 hours.

The allocator does no I/O itself.  The caller passes a ``bind`` function that really opens
the port (a listening socket, a UDP socket) and returns it, or ``None`` when the OS refuses:
frp probes with a throw-away listener and then listens again, which leaves a window for
another process to take the port; binding once closes that window.
"""

import random
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple, TypeVar

from twisted.internet.interfaces import IReactorTime

from frptw.errors import ProxyError

T = TypeVar("T")

#: Ports considered when ``allow_ports`` is empty.
ALL_PORTS: Tuple[Tuple[int, int], ...] = ((1, 65535),)

#: How long a released port stays reserved for the proxy name that had it.
RESERVATION_SECONDS = 24 * 3600

#: How many random free ports are tried for ``remote_port = 0``.
RANDOM_TRIES = 5

#: Below this many allowed ports, free ports are listed rather than sampled.
_ENUMERATE_LIMIT = 4096

PORT_ALREADY_USED = "port already used"
PORT_NOT_ALLOWED = "port not allowed"
PORT_UNAVAILABLE = "port unavailable"
NO_AVAILABLE_PORT = "no available port"


class PortAllocator:
    """Hands out the ports of ``allowed`` (inclusive ``(start, end)`` ranges; empty = all)."""

    def __init__(
        self,
        allowed: Sequence[Tuple[int, int]],
        clock: IReactorTime,
        rng: Optional[random.Random] = None,
    ) -> None:
        ranges = sorted((max(1, lo), min(65535, hi)) for lo, hi in (allowed or ALL_PORTS))
        self._ranges = [(lo, hi) for lo, hi in ranges if lo <= hi]
        self._total = sum(hi - lo + 1 for lo, hi in self._ranges)
        self._clock = clock
        self._rng = rng or random.SystemRandom()
        self._used: Dict[int, str] = {}
        # name -> (port, time released or None while held)
        self._reserved: Dict[str, Tuple[int, Optional[float]]] = {}

    def allows(self, port: int) -> bool:
        return any(lo <= port <= hi for lo, hi in self._ranges)

    @property
    def used(self) -> Dict[int, str]:
        """Held ports and the proxy names holding them (a copy)."""
        return dict(self._used)

    def acquire(self, name: str, port: int, bind: Callable[[int], Optional[T]]) -> Tuple[int, T]:
        """Bind a port for proxy ``name``: ``port``, or any allowed free port when 0.

        Returns the port and what ``bind`` returned for it; raises
        :class:`~frptw.errors.ProxyError` with frp's text otherwise.
        """
        if port:
            return port, self._acquireFixed(name, port, bind)
        return self._acquireAny(name, bind)

    def _acquireFixed(self, name: str, port: int, bind: Callable[[int], Optional[T]]) -> T:
        if port in self._used:
            raise ProxyError(PORT_ALREADY_USED)
        if not self.allows(port):
            raise ProxyError(PORT_NOT_ALLOWED)
        bound = bind(port)
        if bound is None:
            raise ProxyError(PORT_UNAVAILABLE)
        self._take(name, port)
        return bound

    def _acquireAny(self, name: str, bind: Callable[[int], Optional[T]]) -> Tuple[int, T]:
        self._expireReservations()
        reserved = self._reserved.get(name)
        if reserved is not None and reserved[0] not in self._used and self.allows(reserved[0]):
            bound = bind(reserved[0])
            if bound is not None:
                self._take(name, reserved[0])
                return reserved[0], bound
        for candidate in self._randomFree(RANDOM_TRIES):
            bound = bind(candidate)
            if bound is not None:
                self._take(name, candidate)
                return candidate, bound
        raise ProxyError(NO_AVAILABLE_PORT)

    def _randomFree(self, count: int) -> List[int]:
        """Up to ``count`` distinct allowed ports that no proxy holds, in random order."""
        free = self._total - sum(1 for p in self._used if self.allows(p))
        if free <= 0:
            return []
        if self._total <= _ENUMERATE_LIMIT:
            ports = [p for lo, hi in self._ranges for p in range(lo, hi + 1) if p not in self._used]
            return self._rng.sample(ports, min(count, len(ports)))
        chosen: Set[int] = set()
        # The used ports are a tiny part of a large range, so rejection sampling ends quickly;
        # the bound only guards against a pathological range.
        for _ in range(count * 20):
            if len(chosen) == min(count, free):
                break
            p = self._nth(self._rng.randrange(self._total))
            if p not in self._used:
                chosen.add(p)
        return list(chosen)

    def _nth(self, index: int) -> int:
        for lo, hi in self._ranges:
            size = hi - lo + 1
            if index < size:
                return lo + index
            index -= size
        raise IndexError(index)

    def _take(self, name: str, port: int) -> None:
        self._used[port] = name
        self._reserved[name] = (port, None)

    def release(self, port: int) -> None:
        """The proxy holding ``port`` has closed it; keep it reserved for that proxy name."""
        name = self._used.pop(port, None)
        if name is not None and self._reserved.get(name, (None,))[0] == port:
            self._reserved[name] = (port, self._clock.seconds())

    def _expireReservations(self) -> None:
        now = self._clock.seconds()
        for name, (_, released) in list(self._reserved.items()):
            if released is not None and now - released > RESERVATION_SECONDS:
                del self._reserved[name]
