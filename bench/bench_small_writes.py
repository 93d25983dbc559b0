"""Micro-benchmark of a small write's way to the socket: 16-byte ping-pong on loopback TCP.

One process, one reactor, both ends of one connection: a client writes 16 bytes, the server
echoes them, the client writes the next 16 on receipt.  Per round trip (both ends together)
it prints the CPU microseconds of this process, the reactor turns (``doIteration`` calls) and
the timers scheduled.  Rows:

* ``twisted tcp``: ``reactor.listenTCP``/``connectTCP``: Twisted queues each write and sends
  it when the next reactor turn finds the socket writable;
* ``frptw tcp``: :func:`frptw.transport.sockets.listenTCP`/``tcpEndpoint``: a write on an idle
  socket is sent at once (``_SendsAtOnce``);
* ``twisted tls``: Twisted's TLS (``BufferingTLSTransport``, which holds each small write for a
  ``callLater(0)``) over Twisted's TCP;
* ``frptw tls``: frptw's TLS layer (``startClientTLS``/``startServerTLS``: a write is encrypted
  in the event that made it) over frptw's TCP: the frpc <-> frps carrier of ``tls = true``.

This is the hot path of a new connection's first bytes and of every small message (issue 13);
``bench_connect.py`` measures the same thing end to end against Go.

    python bench/bench_small_writes.py                    # 5000 round trips per row, best of 3
    python bench/bench_small_writes.py --count 20000 --repeat 5
"""

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from twisted.internet import reactor  # noqa: E402
from twisted.internet.defer import Deferred, ensureDeferred  # noqa: E402
from twisted.internet.endpoints import TCP4ClientEndpoint  # noqa: E402
from twisted.internet.protocol import Factory, Protocol  # noqa: E402
from twisted.protocols.tls import TLSMemoryBIOFactory  # noqa: E402

from frptw.transport.sockets import listenTCP, tcpEndpoint  # noqa: E402
from frptw.transport.switch import SwitchableProtocol  # noqa: E402
from frptw.transport.tls import clientContextFactory, serverContextFactory, startClientTLS, startServerTLS  # noqa: E402

MESSAGE = b"0123456789abcdef"
ROWS = ("twisted tcp", "frptw tcp", "twisted tls", "frptw tls")


class Echo(Protocol):
    def dataReceived(self, data: bytes) -> None:
        self.transport.write(data)


class Pinger(Protocol):
    """Sends MESSAGE, and again on each complete echo, ``count`` times; ``done`` fires after."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.got = 0
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(MESSAGE)

    def dataReceived(self, data: bytes) -> None:
        self.got += len(data)
        if self.got < len(MESSAGE):
            return
        self.got = 0
        self.left -= 1
        if self.left:
            self.transport.write(MESSAGE)
        else:
            self.done.callback(None)


class Counter:
    """Counts reactor turns and timers while installed."""

    def __init__(self) -> None:
        self.turns = self.timers = 0
        self._iterate = reactor.doIteration
        self._callLater = reactor.callLater

    def __enter__(self) -> "Counter":
        def iterate(delay):
            self.turns += 1
            return self._iterate(delay)

        def callLater(*args, **kwargs):
            self.timers += 1
            return self._callLater(*args, **kwargs)

        reactor.doIteration = iterate
        reactor.callLater = callLater
        return self

    def __exit__(self, *exc) -> None:
        del reactor.doIteration, reactor.callLater


async def connect(row: str, pinger: Pinger):
    """Listen, connect, and start ``pinger`` on the client end of ``row``'s stack; return the port."""
    tls = row.endswith("tls")
    if row.startswith("twisted"):
        server, client = Factory.forProtocol(Echo), Factory.forProtocol(lambda: pinger)
        if tls:
            server = TLSMemoryBIOFactory(serverContextFactory(), False, server)
            client = TLSMemoryBIOFactory(clientContextFactory("frps.bench"), True, client)
        port = reactor.listenTCP(0, server, interface="127.0.0.1")
        await TCP4ClientEndpoint(reactor, "127.0.0.1", port.getHost().port).connect(client)
        return port
    serverOptions = serverContextFactory() if tls else None

    def serverSide() -> SwitchableProtocol:
        class Accepted(SwitchableProtocol):
            def connectionMade(self) -> None:
                super().connectionMade()
                top = startServerTLS(self, serverOptions) if tls else self
                top.switchTo(Echo())
        return Accepted()

    port = listenTCP(reactor, 0, Factory.forProtocol(serverSide), "127.0.0.1")
    raw = await tcpEndpoint(reactor, "127.0.0.1", port.getHost().port, 5.0).connect(
        Factory.forProtocol(SwitchableProtocol))
    top = startClientTLS(raw, clientContextFactory("frps.bench"), False) if tls else raw
    top.switchTo(pinger)
    return port


async def run(row: str, count: int) -> dict:
    warm = Pinger(200)
    port = await connect(row, warm)
    await warm.done
    warm.transport.loseConnection()
    await port.stopListening()
    pinger = Pinger(count)
    with Counter() as counted:
        cpu, wall = time.process_time(), time.perf_counter()
        port = await connect(row, pinger)
        await pinger.done
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    pinger.transport.loseConnection()
    await port.stopListening()
    return {"cpu_us": cpu / count * 1e6, "wall_us": wall / count * 1e6,
            "turns": counted.turns / count, "timers": counted.timers / count}


async def main(args) -> None:
    best = {}
    for _ in range(args.repeat):
        for row in ROWS:  # round-robin: machine load hits every row alike
            r = await run(row, args.count)
            if row not in best or r["cpu_us"] < best[row]["cpu_us"]:
                best[row] = r
    print(f"{args.count} round trips of {len(MESSAGE)} bytes, best of {args.repeat} (by CPU)")
    print(f"{'row':12s} {'CPU us/rt':>10s} {'wall us/rt':>11s} {'turns/rt':>9s} {'timers/rt':>10s}")
    for row in ROWS:
        r = best[row]
        print(f"{row:12s} {r['cpu_us']:10.1f} {r['wall_us']:11.1f} {r['turns']:9.2f} {r['timers']:10.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=5000, help="round trips per run (default 5000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per row, best kept (default 3)")
    args = p.parse_args()

    def stop(result):
        reactor.stop()
        return result

    reactor.callWhenRunning(lambda: ensureDeferred(main(args)).addBoth(stop))
    reactor.run()
