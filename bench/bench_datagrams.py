"""Micro-benchmark of a udp proxy's datagrams on their way into the work connection, in memory.

No sockets and no reactor: a :class:`~frptw.transport.datagrams.DatagramChannel` on frptw's TLS
layer (the carrier of ``tls = true``; the handshake is pumped by hand over StringTransports),
sending bursts of 64-byte datagrams the way a udp proxy does when one read of its UDP socket
returns ``--burst`` of them: each written on its own (``one write each``), or held for the
read and written as one (``held per read``, what ``sockets.listenUDP``'s read-start and
read-end calls make the udp proxies do).  Printed per datagram: CPU microseconds and writes
reaching the transport below TLS (each a ``send`` on a real socket).

    python bench/bench_datagrams.py                      # 200 bursts of 64, best of 5
    python bench/bench_datagrams.py --burst 8 --bursts 2000
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet.task import Clock  # noqa: E402
from twisted.internet.testing import StringTransport  # noqa: E402

from frptw.transport.datagrams import DatagramChannel  # noqa: E402
from frptw.transport.switch import SwitchableProtocol  # noqa: E402
from frptw.transport.tls import clientContextFactory, serverContextFactory, startClientTLS, startServerTLS  # noqa: E402
from tests.support import pumpStrings  # noqa: E402

USER = ("192.0.2.7", 40000)
PAYLOAD = bytes(range(64))


class Sink:
    """The channel's receiver: nothing comes back in this bench."""

    def packetReceived(self, payload, user) -> None:
        pass

    def channelClosed(self, reason) -> None:
        pass


class CountingTransport(StringTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


def channelOverTLS():
    """A DatagramChannel on our client TLS layer, handshake done: (channel, lower transport)."""
    clientRaw, serverRaw = SwitchableProtocol(), SwitchableProtocol()
    clientWire, serverWire = CountingTransport(), StringTransport()
    clientRaw.makeConnection(clientWire)
    serverRaw.makeConnection(serverWire)
    channel = DatagramChannel(Sink(), Clock())
    startClientTLS(clientRaw, clientContextFactory("frps.bench"), False).switchTo(channel)
    startServerTLS(serverRaw, serverContextFactory()).switchTo(SwitchableProtocol())
    pumpStrings(clientRaw, clientWire, serverRaw, serverWire, rounds=50)
    return channel, clientWire


def run(held: bool, burst: int, bursts: int):
    channel, wire = channelOverTLS()
    wire.writes = 0
    started = time.process_time()
    for _ in range(bursts):
        if held:
            channel.holdWrites()
        for _ in range(burst):
            channel.sendPacket(PAYLOAD, USER)
        if held:
            channel.releaseWrites()
        wire.clear()
    spent = time.process_time() - started
    count = burst * bursts
    return spent / count * 1e6, wire.writes / count


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--burst", type=int, default=64, help="datagrams per read of the UDP socket (default 64)")
    p.add_argument("--bursts", type=int, default=200, help="reads per run (default 200)")
    p.add_argument("--repeat", type=int, default=5, help="runs per row, best kept (default 5)")
    args = p.parse_args()
    best = {}
    for _ in range(args.repeat):
        for held in (False, True):  # alternate: machine load hits both rows alike
            us, writes = run(held, args.burst, args.bursts)
            if held not in best or us < best[held][0]:
                best[held] = (us, writes)
    print(f"{args.bursts} reads of {args.burst} datagrams of {len(PAYLOAD)} bytes, best of {args.repeat}")
    print(f"{'row':16s} {'CPU us/datagram':>16s} {'writes/datagram':>16s}")
    for held, label in ((False, "one write each"), (True, "held per read")):
        us, writes = best[held]
        print(f"{label:16s} {us:16.2f} {writes:16.3f}")


if __name__ == "__main__":
    main()
