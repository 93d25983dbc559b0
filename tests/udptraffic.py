"""Datagram traffic for end-to-end tests: a UDP echo backend and a paced, loss-counting sender.

:func:`udp_exchange` sends ``count`` numbered datagrams of varying sizes to a port (usually an
frp udp proxy or sudp visitor in front of a :class:`UDPEcho`) with at most ``window`` of them
unanswered at a time, so loopback sockets never overflow; a datagram whose echo does not come
back within ``lossTimeout`` seconds counts as lost.  It fires with ``(echoed, lost, corrupt)``.
Each exchange tags its datagrams with a random session number: a late echo of an earlier
exchange whose socket had the same port (the OS reuses them) is ignored, not miscounted.
"""

import random
import struct
from typing import Dict, Tuple

from twisted.internet import defer
from twisted.internet.protocol import DatagramProtocol

#: Size of the answer to a ``BIG:`` datagram: too big for one v1 UDPPacket.
BIG_REPLY = 8000


class UDPEcho(DatagramProtocol):
    """Echoes each datagram to its sender (after ``prefix``); ``peers`` is every source address
    seen.  A datagram starting with ``BIG:`` is answered with :data:`BIG_REPLY` bytes instead."""

    noisy = False

    def __init__(self) -> None:
        self.peers = set()
        self.received = []
        self.port = None

    @classmethod
    def listen(cls, reactor, prefix: bytes = b"") -> "UDPEcho":
        self = cls()
        self.prefix = prefix
        self.listening = reactor.listenUDP(0, self, interface="127.0.0.1")
        self.port = self.listening.getHost().port
        return self

    def datagramReceived(self, data: bytes, addr) -> None:
        self.peers.add(addr)
        self.received.append(data)
        if data.startswith(b"BIG:"):
            self.transport.write(b"x" * BIG_REPLY, addr)
        else:
            self.transport.write(self.prefix + data, addr)

    def stop(self) -> defer.Deferred:
        return defer.maybeDeferred(self.listening.stopListening)


def udpEcho(testCase) -> int:
    """A :class:`UDPEcho` on 127.0.0.1 for the duration of ``testCase``; its port."""
    from twisted.internet import reactor

    echo = UDPEcho.listen(reactor)
    testCase.addCleanup(echo.stop)
    return echo.port


class _Sender(DatagramProtocol):
    noisy = False

    def __init__(
        self, reactor, target: Tuple[str, int], count: int, window: int, maxSize: int, lossTimeout: float, prefix: bytes
    ) -> None:
        self.reactor = reactor
        self.target = target
        self.count = count
        self.window = window
        self.maxSize = maxSize
        self.lossTimeout = lossTimeout
        self.prefix = prefix
        self.random = random.Random(count)
        self.session = random.getrandbits(32)
        self.next = 0
        self.outstanding: Dict[int, Tuple[bytes, object]] = {}
        self.echoed = 0
        self.lost = 0
        self.corrupt = 0
        self.done = defer.Deferred()

    def startProtocol(self) -> None:
        self._fill()

    def _payload(self, seq: int) -> bytes:
        size = self.maxSize if seq % 10 == 0 else self.random.randint(8, self.maxSize)
        return struct.pack(">II", self.session, seq) + self.random.randbytes(size - 8)

    def _fill(self) -> None:
        while len(self.outstanding) < self.window and self.next < self.count:
            seq = self.next
            self.next += 1
            payload = self._payload(seq)
            timer = self.reactor.callLater(self.lossTimeout, self._lost, seq)
            self.outstanding[seq] = (payload, timer)
            self.transport.write(payload, self.target)
        if not self.outstanding and not self.done.called:
            self.done.callback((self.echoed, self.lost, self.corrupt))

    def _lost(self, seq: int) -> None:
        del self.outstanding[seq]
        self.lost += 1
        self._fill()

    def datagramReceived(self, data: bytes, addr) -> None:
        if not data.startswith(self.prefix) or len(data) < len(self.prefix) + 8:
            self.corrupt += 1
            return
        body = data[len(self.prefix):]
        session, seq = struct.unpack(">II", body[:8])
        if session != self.session:
            return  # an earlier exchange's echo, to a port that socket had
        entry = self.outstanding.pop(seq, None)
        if entry is None:
            return
        payload, timer = entry
        timer.cancel()
        if payload == body:
            self.echoed += 1
        else:
            self.corrupt += 1
        self._fill()

    def cancel(self) -> None:
        for _, timer in self.outstanding.values():
            if timer.active():
                timer.cancel()
        self.outstanding.clear()


def udp_exchange(
    reactor,
    port: int,
    count: int,
    window: int = 32,
    maxSize: int = 1400,
    lossTimeout: float = 3.0,
    prefix: bytes = b"",
) -> defer.Deferred:
    """Send ``count`` datagrams (every tenth of ``maxSize`` bytes) to ``127.0.0.1:port`` and
    expect each back (with ``prefix`` prepended); fires with ``(echoed, lost, corrupt)``."""
    sender = _Sender(reactor, ("127.0.0.1", port), count, window, maxSize, lossTimeout, prefix)
    listening = reactor.listenUDP(0, sender, interface="127.0.0.1")

    def finish(result):
        sender.cancel()
        return defer.maybeDeferred(listening.stopListening).addCallback(lambda _: result)

    return sender.done.addBoth(finish)


@defer.inlineCallbacks
def wait_for_echo(reactor, port: int, timeout: float = 10.0, prefix: bytes = b""):
    """Send a probe every 0.2 s until one comes back (frps sets a udp proxy's work connection
    up about 0.5 s after registering it); fail after ``timeout`` s."""
    deadline = reactor.seconds() + timeout
    while True:
        result = yield udp_exchange(reactor, port, 1, window=1, maxSize=16, lossTimeout=0.2, prefix=prefix)
        if result[0] == 1:
            return
        if reactor.seconds() > deadline:
            raise AssertionError(f"no echo through 127.0.0.1:{port} within {timeout} s")


class UDPProbe(DatagramProtocol):
    """Asks one question at a time: :meth:`ask` sends a datagram and fires with the next one
    that comes back (fails after ``timeout`` s)."""

    noisy = False

    def __init__(self, reactor) -> None:
        self.reactor = reactor
        self._waiting = None

    @classmethod
    def listen(cls, reactor) -> "UDPProbe":
        self = cls(reactor)
        self.listening = reactor.listenUDP(0, self, interface="127.0.0.1")
        return self

    def ask(self, target: Tuple[str, int], payload: bytes, timeout: float = 5.0) -> defer.Deferred:
        self._waiting = defer.Deferred()
        self.transport.write(payload, target)
        return self._waiting.addTimeout(timeout, self.reactor)

    def datagramReceived(self, data: bytes, addr) -> None:
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(data)

    def stop(self) -> defer.Deferred:
        return defer.maybeDeferred(self.listening.stopListening)
