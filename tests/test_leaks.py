"""Nothing leaks: after bursts of user connections and bad input, frps is back to baseline.

A burst is 200 user connections through the good tcp proxy (checked echo traffic) plus 50 bad
bind-port connections (40 yamux garbage, 10 half-open ones dropped by the 10 s deadline).
After each burst, with every connection closed, the reactor's readers/writers, frps's bind
connections, the proxy's user connections, the idle work-connection pool and the yamux
streams of the good session must be what they were; and the memory Python allocated must not
grow by more than :data:`MEMORY_BOUND` between the end of a first (cache-warming) burst and
the end of a second, identical one (tracemalloc, after gc).
"""

import gc
import tracemalloc

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.server.bindport import FIRST_BYTE_TIMEOUT
from frptw.transport.yamux import YamuxSession
from tests.badinput import GoodSession, connectRaw
from tests.support import until
from tests.traffic import exchange

USERS = 200
GARBAGE = 40
HALF_OPEN = 10
PER_USER = 16 * 1024
MEMORY_BOUND = 1024 * 1024


def serverSession(server) -> YamuxSession:
    """The yamux session of frps's only bind connection (the good client's)."""
    [conn] = server._liveConnections()
    proto = conn
    while not isinstance(proto, YamuxSession):
        proto = getattr(proto, "switchedTo", None) or proto.wrappedProtocol
    return proto


#: What counts: memory held by the code under test (frptw, Twisted, the codecs), not by the
#: test's own log capture or trial's bookkeeping (under ``trial -j`` every log event also
#: travels to the manager over AMP), which run in the same process.  An allocation is left
#: out when any frame of its traceback is in those places.
RUNTIME = [
    tracemalloc.Filter(False, pattern, all_frames=True)
    for pattern in (
        "*/tests/*",
        "*/twisted/trial/*",
        "*/twisted/logger/*",
        "*/twisted/protocols/amp.py",
        "*/twisted/python/log.py",
        tracemalloc.__file__,
    )
]
TRACEBACK_FRAMES = 8


class LeakTests(TestCase):
    timeout = 300  # two bursts of 200 connections under tracemalloc: minutes on a loaded 2-core machine

    def tables(self, good: GoodSession) -> dict:
        [control] = good.server._liveControls().values()
        proxy = good.server._liveProxies()["echo"]
        return {
            "reactor readers": len(reactor.getReaders()),
            "reactor writers": len(reactor.getWriters()),
            "bind connections": len(good.server._liveConnections()),
            "proxy users": len(proxy._users),
            "proxy waiting users": len(proxy._waiting),
            "idle work connections": len(control.pool),
            "waiting for work connections": control.pool.waiting,
            "frps yamux streams": len(serverSession(good.server)._streams),
            "frpc yamux streams": len(good.client._session.mux._streams),
        }

    async def burst(self, good: GoodSession) -> None:
        total = await exchange(reactor, good.remote, PER_USER, connections=USERS, timeout=40)
        self.assertEqual(total, USERS * PER_USER)
        garbage = [await connectRaw(self, good.bindPort) for _ in range(GARBAGE)]
        for probe in garbage:
            probe.transport.write(b"\x01garbage that is not yamux")
        halfOpen = [await connectRaw(self, good.bindPort) for _ in range(HALF_OPEN)]
        await until(lambda: all(p.closed.called for p in garbage), "the garbage connections to close")
        await until(lambda: len(good.server._liveConnections()) == 1 + HALF_OPEN,
                    lambda: f"frps to accept the half-open connections ({len(good.server._liveConnections())} open)")
        good.clock.advance(FIRST_BYTE_TIMEOUT)
        await until(lambda: all(p.closed.called for p in halfOpen), "the half-open connections to close")

    async def settle(self, good: GoodSession, baseline: dict, keys=None) -> dict:
        """Wait (bounded) for the tables (or their ``keys``) to come back to ``baseline``."""
        keys = keys or list(baseline)

        def current() -> dict:
            tables = self.tables(good)
            return {key: tables[key] for key in keys}

        expected = {key: baseline[key] for key in keys}
        try:
            await until(lambda: current() == expected, "the tables to return to baseline", timeout=10)
        except AssertionError:
            self.assertEqual(current(), expected)
        return self.tables(good)

    async def test_bursts_return_to_baseline(self):
        good = await GoodSession.start(self)
        idle = {"reactor writers": 0, "waiting for work connections": 0}
        await until(lambda: {key: self.tables(good)[key] for key in idle} == idle,
                    lambda: f"the good session to go idle ({self.tables(good)})")
        before = self.tables(good)
        self.assertEqual(before["bind connections"], 1)
        tracemalloc.start(TRACEBACK_FRAMES)
        self.addCleanup(tracemalloc.stop)
        await self.burst(good)
        # Descriptors, bind connections and user connections are back to what they were.  The
        # idle pool refills up to its capacity (pool_count + 10), as frp's does: each user
        # connection asked frpc for a replacement work connection.
        fixed = ["reactor readers", "reactor writers", "bind connections", "proxy users",
                 "proxy waiting users", "waiting for work connections"]
        warm = await self.settle(good, before, fixed)
        [control] = good.server._liveControls().values()
        self.assertLessEqual(warm["idle work connections"], control.pool.capacity)
        # Streams: the control stream, the keeper's work connection and the idle pool.
        self.assertEqual(warm["frps yamux streams"], warm["idle work connections"] + 2)
        self.assertEqual(warm["frpc yamux streams"], warm["idle work connections"] + 2)
        gc.collect()
        warmSnapshot = tracemalloc.take_snapshot()
        await self.burst(good)
        await self.settle(good, warm)
        gc.collect()
        after = tracemalloc.take_snapshot()
        stats = after.filter_traces(RUNTIME).compare_to(warmSnapshot.filter_traces(RUNTIME), "traceback")
        growth = sum(stat.size_diff for stat in stats)
        top = "\n\n".join(f"{stat.size_diff:+} B\n" + "\n".join(stat.traceback.format()[-6:]) for stat in stats[:5])
        self.assertLess(growth, MEMORY_BOUND, f"memory grew by {growth} bytes over a burst:\n{top}")
        await good.stillWorks()
