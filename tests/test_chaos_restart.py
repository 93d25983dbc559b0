"""Chaos, issue 14: frps killed with SIGKILL and started again on the same ports, under
traffic, with frptw and the real Go frp 0.65 on either side (``tests/chaos.py``).

After every restart each proxy (tcp, udp, http vhost, stcp and sudp through a visitor frpc)
must carry checked bytes again, and the traffic kept running through the kills must never
have come back corrupt.  The suite runs :data:`RESTARTS` restarts and allows a generous
:data:`BOUND` (a loaded CI machine starts Python slowly); ``FRPTW_SCALE=full`` runs 20 and
holds every recovery to issue 14's 5 s, as ``bench/bench_chaos.py`` measures.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.chaos import Rig, Traffic
from tests.support import scaled

RESTARTS = scaled(3, 20)
BOUND = scaled(30.0, 5.0)


class RestartTests(TestCase):
    timeout = scaled(240, 600)

    async def check(self, server: str, client: str) -> None:
        rig = Rig(reactor, server, client)
        self.addCleanup(rig.stop)
        await rig.start()
        traffic = Traffic(reactor, rig.probes)
        try:
            for n in range(RESTARTS):
                recovery = await rig.restart(timeout=BOUND + 30)
                self.assertLessEqual(recovery.allBack, BOUND,
                                     f"restart {n + 1}: proxies back after {recovery.proxies}\n{rig.output()}")
        finally:
            counts = await traffic.stop()
        for name, count in counts.items():
            self.assertEqual(count.corrupt, [], name)
            self.assertGreater(count.completed, 0, name)

    async def test_frptw(self) -> None:
        """Our frps, our frpcs."""
        await self.check("tw", "tw")

    async def test_go(self) -> None:
        """The same probe on Go frp 0.65 alone: what frptw must match."""
        await self.check("go", "go")

    async def test_our_frpc_go_frps(self) -> None:
        await self.check("go", "tw")

    async def test_go_frpc_our_frps(self) -> None:
        await self.check("tw", "go")
