"""Chaos, issue 14: the network between frpc and frps stalls (a
:class:`tests.relays.StallRelay` stops forwarding both ways without closing), with frptw and
with the real Go frp 0.65 on the same probe (``tests/chaos.py``).

* With heartbeats (shortened here: a Ping every 1 s, 3 s without one ends the session), frpc
  drops the dead control and reconnects through the relay once it forwards again, without a
  restart; frps drops its end after its own heartbeat timeout and frees the proxy's port and
  domain.  tcpMux off and on.
* With tcpMux on and frp's defaults there are no heartbeats at all (frp's config sets them to
  -1 with tcpMux): yamux keep-alive pings (``tcpMuxKeepaliveInterval``, 1 s here) that go
  unanswered for 10 s (yamux's connection write timeout) end the session on both sides.
* frps without heartbeats keeps the dead control; frpc's new login with the same run id
  replaces it, and the port and domain are taken over, as frp's control manager does.
* A second frpc may take the port and domain frps freed; the first one, back, is refused
  them (``start error``), as with Go frp, and (``FRPTW_SCALE=full``) takes them back 30 s
  after the second one left.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from tests.chaos import StallRig, startFrp
from tests.support import scaled

#: frpc pings every second and gives up after 3 s without a Pong; frps after 3 s without a Ping.
CLIENT_HEARTBEATS = "transport.heartbeatInterval = 1\ntransport.heartbeatTimeout = 3\n"
SERVER_HEARTBEATS = "transport.heartbeatTimeout = 3\n"
KEEPALIVE = "transport.tcpMuxKeepaliveInterval = 1\n"
#: How long a side may take to notice (CI machines are slow; the bench reports the figures).
BOUND = scaled(20.0, 8.0)
#: Whether the first frpc must also take the port and domain back after the second one left
#: (30 s later, frp's retry of a refused proxy): on demand only, it is mostly waiting.
RETAKE = scaled(False, True)
#: Yamux keep-alive: a ping every second, unanswered for 10 s.
KEEPALIVE_BOUND = scaled(30.0, 15.0)


#: What frps answers the first frpc, back, for the port and the domain the second one holds.
REFUSALS = ["port already used", "router config conflict"]


def mux(on: bool) -> str:
    return f"transport.tcpMux = {'true' if on else 'false'}\n"


class StallMixin:
    server = client = ""
    timeout = 180

    async def rig(self, frpsExtra: str, frpcExtra: str) -> StallRig:
        rig = StallRig(reactor, self.server, self.client, frpsExtra, frpcExtra)
        self.addCleanup(rig.stop)
        await rig.start()
        return rig

    async def heartbeats(self, tcpMux: bool) -> None:
        # With tcpMux, Go frps's heartbeat timeout only half-closes the control's yamux stream,
        # which a stalled peer never answers: its session's keep-alive frees the proxies.
        # A short keep-alive bounds that for Go; frptw's frps drops the control at once.
        extra = mux(tcpMux) + (KEEPALIVE if tcpMux else "")
        rig = await self.rig(extra + SERVER_HEARTBEATS, extra + CLIENT_HEARTBEATS)
        stall = await rig.stall(BOUND)
        for what in ("frpcDropped", "frpsDropped", "freed"):
            self.assertIsNotNone(getattr(stall, what), f"{what}: {stall}\n{rig.output()}")
        await rig.resume(timeout=BOUND + 20)

    async def test_heartbeats_mux_off(self) -> None:
        await self.heartbeats(False)

    async def test_heartbeats_mux_on(self) -> None:
        await self.heartbeats(True)

    async def test_yamux_keepalive(self) -> None:
        """tcpMux with frp's defaults: no Ping/Pong, the yamux session's keep-alive decides."""
        rig = await self.rig(KEEPALIVE, KEEPALIVE)
        stall = await rig.stall(KEEPALIVE_BOUND)
        for what in ("frpcDropped", "frpsDropped", "freed"):
            self.assertIsNotNone(getattr(stall, what), f"{what}: {stall}\n{rig.output()}")
        await rig.resume(timeout=KEEPALIVE_BOUND + 20)

    async def test_new_login_replaces_the_dead_control(self) -> None:
        """frps never notices (no heartbeats, the old connection stays a black hole): frpc's
        login with its run id replaces the old control, and the port and domain move over."""
        rig = await self.rig(mux(False), mux(False) + CLIENT_HEARTBEATS)
        stall = await rig.stall(BOUND)
        self.assertIsNotNone(stall.frpcDropped, f"{stall}\n{rig.output()}")
        self.assertIsNone(stall.frpsDropped, f"{stall}\n{rig.output()}")
        await rig.resume(existing=False, timeout=BOUND + 20)

    async def test_second_frpc_takes_the_freed_port_and_domain(self) -> None:
        rig = await self.rig(mux(False) + SERVER_HEARTBEATS, mux(False) + CLIENT_HEARTBEATS)
        first = rig.frpcs[0]
        stall = await rig.stall(BOUND)
        self.assertIsNotNone(stall.freed, f"{stall}\n{rig.output()}")
        # The second frpc (another user) dials frps directly, for the same port and domain.
        text = rig.ownerToml().replace(f"serverPort = {rig.relay.port}", f"serverPort = {rig.ports['bind']}")
        second = await startFrp(reactor, self.client, "frpc", text.replace('user = "owner"', 'user = "second"'))
        self.addCleanup(second.stop)
        await rig.recovered(reactor.seconds(), BOUND + 20)
        rig.relay.resume()
        await first.waitFor("start error", BOUND + 20, count=len(rig.proxies))
        errors = sorted(line.split("start error: ", 1)[1] for line in first.output.splitlines() if "start error" in line)
        self.assertEqual(errors, REFUSALS, first.output)
        await rig.recovered(reactor.seconds(), 5)  # still the second frpc's
        if RETAKE:
            # frpc offers a refused proxy again 30 s later (frp: 30-33 s): once the second frpc
            # is gone, the first one gets the port and the domain back.
            await second.stop()
            await first.waitFor("start proxy success", 45, count=2 * len(rig.proxies))
            await rig.recovered(reactor.seconds(), 10)


class FrptwStallTests(StallMixin, TestCase):
    server = client = "tw"


class GoStallTests(StallMixin, TestCase):
    """The same probes on Go frp 0.65: what frptw must match."""

    server = client = "go"
