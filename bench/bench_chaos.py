"""Chaos, frptw against Go frp 0.65: frps killed with SIGKILL and started again under traffic,
and a network between frpc and frps that stalls.

Run on demand (not a test, not in CI)::

    python bench/bench_chaos.py                     # 20 restarts per pair, stalls 3 times each
    python bench/bench_chaos.py --restarts 5 --pairs go,tw --stall-repeat 1

Restarts.  Every pair (Go frpc -> Go frps, frptw -> frptw, and the mixed pairs, which tell
frps's share from frpc's) runs the rig of ``tests/chaos.py``: frps, an frpc owning a tcp, a
udp, an http (vhost), an stcp and an sudp proxy, and a second frpc with the stcp and sudp
visitors, each a process of its own (frptw under ``twistd -n``).  All rigs are up at once and
the restarts alternate between them (go, tw, tw-go, go-tw, go, ...), so the machine's load
falls on each alike.  One restart: tcp and udp traffic keeps running through the rig, frps
gets SIGKILL, is started again on the same ports, and every proxy is probed until it carries
checked bytes (sha256 of a 64 KiB echo for tcp and stcp, the exact datagram back for udp and
sudp, a 64 KiB blob for http).  Times run from the kill.  Issue 14's bar: every proxy back
within 5 s, every time, with intact bytes.  How fast frpc comes back is frp's reconnect
policy (frptw's mirrors it: a first retry after 0.2-0.3 s, then 2 s, 4 s, ...): a frps that
is not listening again by the second retry costs the next step of the back-off.

Stalls.  For Go and frptw (alternating), a relay between frpc and frps stops forwarding both
ways without closing (``tests.relays.StallRelay``); the table gives the seconds until frpc
drops its control connection, frps drops its end, and frps frees the tcp port and the http
domain, then, once the relay forwards again, until every proxy carries bytes.  Heartbeats
are shortened (a Ping every 1 s, 3 s without one ends the session; frp's defaults with tcpMux
off are 30 s and 90 s) and so is yamux's keep-alive interval (1 s; frp's default 30 s, each
ping then has 10 s to be answered).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _rows import Figure, Session, log, pairs_option, parser, prose  # noqa: E402
from bench_tcp import PAIRS  # noqa: E402
from twisted.internet import defer, reactor  # noqa: E402
from twisted.python.failure import Failure  # noqa: E402

from tests.chaos import PROXIES, Rig, StallRig, Traffic  # noqa: E402

#: Issue 14's bar for a restart.
WITHIN = 5.0
CLIENT_HEARTBEATS = "transport.heartbeatInterval = 1\ntransport.heartbeatTimeout = 3\n"
SERVER_HEARTBEATS = "transport.heartbeatTimeout = 3\n"
KEEPALIVE = "transport.tcpMuxKeepaliveInterval = 1\n"
MUX_OFF = "transport.tcpMux = false\n"
#: name: (frps extra, frpc extra, wait for each side, whether the stalled connections come back)
STALLS = {
    "heartbeats, tcpMux off": (MUX_OFF + SERVER_HEARTBEATS, MUX_OFF + CLIENT_HEARTBEATS, 20.0, True),
    "heartbeats, tcpMux on": (KEEPALIVE + SERVER_HEARTBEATS, KEEPALIVE + CLIENT_HEARTBEATS, 20.0, True),
    "tcpMux defaults (no heartbeats), yamux keep-alive": (KEEPALIVE, KEEPALIVE, 25.0, True),
    "frps without heartbeats, frpc's new login replaces the control": (MUX_OFF, MUX_OFF + CLIENT_HEARTBEATS, 8.0,
                                                                        False),
}


#: Rigs started and not yet stopped: a Ctrl-C or SIGTERM stops the reactor, whose shutdown
#: then ends their processes (only those: each rig stops what it started, by pid).
LIVE = set()


async def started(rig):
    LIVE.add(rig)
    await rig.start()
    return rig


async def stopped(rig) -> None:
    if rig in LIVE:
        LIVE.discard(rig)
        await rig.stop()


def stopLive() -> defer.Deferred:
    return defer.DeferredList([defer.ensureDeferred(stopped(rig)) for rig in list(LIVE)])


def seconds(values) -> str:
    return ", ".join("-" if v is None else f"{v:.2f}" for v in values)


async def restarts(s: Session, pairs, count: int) -> None:
    rigs = {}
    try:
        for pair in pairs:
            client, server = PAIRS[pair]
            rigs[pair] = await started(Rig(reactor, server, client))
            log(f"  rig {pair} up")
        runs = {pair: [] for pair in pairs}
        traffic = {pair: {"completed": 0, "broken": 0, "corrupt": []} for pair in pairs}
        for n in range(count):
            for pair in pairs:
                rig = rigs[pair]
                flow = Traffic(reactor, rig.probes)
                try:
                    recovery = await rig.restart(timeout=60.0)
                finally:
                    counts = await flow.stop()
                for c in counts.values():
                    traffic[pair]["completed"] += c.completed
                    traffic[pair]["broken"] += c.broken
                    traffic[pair]["corrupt"] += c.corrupt
                runs[pair].append(recovery)
                log(f"  restart {n + 1:>2} {pair:<6} frps up {recovery.frpsUp:.2f} s, all back "
                    f"{recovery.allBack:.2f} s ({seconds(recovery.proxies.values())})")
    finally:
        for rig in rigs.values():
            await stopped(rig)

    def fig(title: str, pick, reduce=None, lower: bool = True, unit: str = "s") -> Figure:
        values = {}
        for pair, recs in runs.items():
            picked = [pick(r) for r in recs]
            values[pair] = [reduce(picked)] if reduce else picked
        return Figure(title, unit, lower, values)

    figures = [
        fig("all proxies back after the kill, p50", lambda r: r.allBack),
        fig("all proxies back after the kill, max", lambda r: r.allBack, max),
        fig("frps up again after the kill, p50", lambda r: r.frpsUp),
        fig("frps up again after the kill, max", lambda r: r.frpsUp, max),
        *(fig(f"{name} back, p50", lambda r, name=name: r.proxies[name]) for name in PROXIES),
        fig(f"restarts with every proxy back within {WITHIN:g} s", lambda r: r.allBack <= WITHIN,
            sum, lower=False, unit=f"of {count}"),
        Figure("traffic exchanges that came back corrupt", "", True, {p: [len(t["corrupt"])] for p, t in traffic.items()}),
    ]
    note = (f"{count} restarts per pair, alternating; times from the SIGKILL. Traffic through the kills, "
            "exchanges completed with checked bytes / broken by a kill: "
            + ", ".join(f"{p} {t['completed']} / {t['broken']}" for p, t in traffic.items()) + ".")
    s.table("frps kill -9 and restart under traffic", figures, pairs, note)
    for pair, t in traffic.items():
        for text in t["corrupt"]:
            s.failures.append(f"{pair}: corrupt bytes: {text}")
    for pair, recs in runs.items():
        slow = [i + 1 for i, r in enumerate(recs) if r.allBack > WITHIN]
        if slow:
            s.failures.append(f"restarts, {pair}: not every proxy back within {WITHIN:g} s after restart(s) {slow}")


async def stalls(s: Session, repeat: int) -> None:
    impls = ("go", "tw")
    for name, (frpsExtra, frpcExtra, wait, existing) in STALLS.items():
        runs = {impl: [] for impl in impls}
        for rep in range(repeat):
            for impl in impls:
                rig = StallRig(reactor, impl, impl, frpsExtra, frpcExtra)
                try:
                    await started(rig)
                    stall = await rig.stall(wait)
                    back = await rig.resume(existing, timeout=60.0)
                finally:
                    await stopped(rig)
                runs[impl].append((stall, back))
                log(f"  {name[:40]:<40} {impl} run {rep + 1}: {stall}, back {back:.2f} s")

        def fig(title: str, pick) -> Figure:
            values = {impl: [v for v in (pick(stall, back) for stall, back in results) if v is not None]
                      for impl, results in runs.items()}
            return Figure(title, "s", True, values)

        figures = [fig("frpc drops its control", lambda st, b: st.frpcDropped),
                   fig("frps drops its end", lambda st, b: st.frpsDropped),
                   fig("frps frees the port and the domain", lambda st, b: st.freed),
                   fig("every proxy back once the network is", lambda st, b: b)]
        never = "; ".join(f"{impl}: {what} {sum(getattr(st, what) is None for st, _ in results)} of {repeat}"
                          for impl, results in runs.items()
                          for what in ("frpcDropped", "frpsDropped", "freed")
                          if any(getattr(st, what) is None for st, _ in results))
        note = (f"Waited up to {wait:g} s for each side. Did not happen within the wait: {never}." if never
                else f"Waited up to {wait:g} s for each side.")
        s.table(f"stalled network: {name}", figures, list(impls), note)


def main() -> int:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--restarts", type=int, default=20, help="kill -9 restarts per pair (default 20)")
    p.add_argument("--stall-repeat", type=int, default=3, help="repetitions of each stall per implementation")
    p.add_argument("--no-stall", action="store_true", help="restarts only")
    read_pairs = pairs_option(p, "go,tw,tw-go,go-tw")
    args = p.parse_args()
    args.repeat = args.restarts
    pairs = read_pairs(args)
    with Session("chaos", "Chaos: frps kill -9 restarts and a stalled network, frptw and Go frp 0.65", args) as s:
        async def run() -> None:
            await restarts(s, pairs, args.restarts)
            if not args.no_stall:
                await stalls(s, args.stall_repeat)

        outcome = []
        d = defer.ensureDeferred(run())
        d.addBoth(lambda result: (outcome.append(result), reactor.stop()))
        reactor.addSystemEventTrigger("before", "shutdown", stopLive)
        reactor.run()  # with its signal handlers: they reap the frp processes (SIGCHLD)
        if not outcome:
            raise KeyboardInterrupt("stopped by a signal")
        if isinstance(outcome[0], Failure):
            outcome[0].raiseException()
        s.write(prose(__doc__))
    for failure in s.failures:
        log(f"FAILED: {failure}")
    return 1 if s.failures else 0


if __name__ == "__main__":
    sys.exit(main())
