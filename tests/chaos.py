"""Chaos scenarios shared by the chaos tests (``tests/test_chaos_*.py``) and the on-demand
driver ``bench/bench_chaos.py``: frps killed with SIGKILL and started again under traffic, and
a network between frpc and frps that stalls, with frptw or the real Go frp 0.65 on either side.

A :class:`Rig` is one frps, one frpc owning a tcp, a udp, an http (vhost), an stcp and an
sudp proxy, and a second frpc with the stcp and sudp visitors, every one a separate process
(:func:`startFrp`: the Go binary, or frptw under ``twistd -n``), in front of loopback
backends (tcp echo, udp echo, a web server with a random blob).  :meth:`Rig.restart` kills
frps (the process the rig started, by its pid), starts it again on the same ports and
times how long until every proxy carries checked bytes again (:class:`Probes`): sha256 of a
64 KiB echo for tcp and stcp, the exact datagram back for udp and sudp, the blob's bytes for
http.  A probe that gets bytes back which are *not* the ones sent raises :class:`Corrupt`: a
proxy that is not back yet refuses, closes or stays silent, it never answers wrong.

:class:`Traffic` keeps tcp and udp exchanges going through the kills, counting the ones that
completed, broke (expected: frps died under them) and came back corrupt (never allowed).

A :class:`StallRig` puts a :class:`tests.relays.StallRelay` between the frpcs and frps:
:meth:`StallRig.stall` times how long each side takes to drop the dead session and frps to
free the port and the domain, :meth:`StallRig.resume` how long until the proxies are back.

Nothing here sleeps to synchronise: every wait polls a real event, bounded.
"""

import hashlib
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Dict, List, Optional

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from tests.gofrp import READY_LINES, GoFrp, writeConfig
from tests.relays import StallRelay
from tests.support import free_port, sleep
from tests.traffic import EchoServer, exchange
from tests.udptraffic import UDPEcho, UDPProbe
from tests.webclient import fetch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "chaos-token"
DOMAIN = "chaos.test"
SECRET = "chaos-sk"
#: Names of the proxies a :class:`Rig` checks, in report order.
PROXIES = ("tcp", "udp", "http", "stcp", "sudp")
TCP_PROBE_BYTES = 64 * 1024


# -- processes -----------------------------------------------------------------------------------


def twistdArgv(kind: str, configPath: str) -> List[str]:
    """frptw's ``kind`` as a user runs it, ``twistd -n frps|frpc --config PATH``, with this
    interpreter (``twisted.scripts.twistd`` has no ``__main__``, hence ``-c``)."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n", "--pidfile=",
            kind, "--config", configPath]


def startFrp(reactor, impl: str, kind: str, text: str, timeout: float = 30.0) -> defer.Deferred:
    """Start ``kind`` ("frps" or "frpc") of ``impl`` ("go": the real binary, "tw": frptw from
    this checkout) with the TOML ``text``; fire with its :class:`GoFrp` handle once it logged
    its ready line (both log the same ones)."""
    if impl == "go":
        return GoFrp.start(reactor, kind, text, timeout=timeout)
    path = writeConfig(kind, text)
    # Bytecode is written and reused, as an installed frptw has it: with the environment's
    # PYTHONDONTWRITEBYTECODE every start would compile all of frptw again, which is not what
    # a restart costs a user (compiling is ~0.1 s of the ~0.5 s of CPU frps takes to start).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = ROOT
    return GoFrp.command(reactor, kind, twistdArgv(kind, path), READY_LINES[kind], timeout,
                         directory=os.path.dirname(path), env=env)


# -- backends and probes -------------------------------------------------------------------------


class Corrupt(AssertionError):
    """A proxy gave back bytes other than those sent."""


class Backends:
    """The services behind the owner frpc: tcp echo, udp echo, a web server whose ``/blob`` is
    64 KiB of random bytes (:attr:`blob`)."""

    def __init__(self) -> None:
        self.blob = os.urandom(64 * 1024)
        self.tcp: Optional[EchoServer] = None
        self.udp: Optional[UDPEcho] = None
        self.web = None

    async def start(self, reactor) -> "Backends":
        self.tcp = await EchoServer.listen(reactor)
        self.udp = UDPEcho.listen(reactor)
        root = Resource()
        root.putChild(b"blob", Data(self.blob, "application/octet-stream"))
        site = Site(root)
        site.noisy = False
        self.web = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        return self

    @property
    def webPort(self) -> int:
        return self.web.getHost().port

    async def stop(self) -> None:
        for stop in (self.tcp.stop, self.udp.stop, self.web.stopListening):
            await defer.maybeDeferred(stop)


class Probes:
    """One check per proxy: True once the proxy carried the bytes intact, False while it is
    not back (refused, closed early, silent, 404/502); :class:`Corrupt` when bytes came back
    wrong."""

    def __init__(self, reactor, ports: Dict[str, int], blob: bytes, timeout: float = 2.0) -> None:
        self.reactor = reactor
        self.ports = ports
        self.blob = blob
        self.timeout = timeout

    def __call__(self, name: str) -> Awaitable[bool]:
        return {"tcp": self.stream, "stcp": self.stream, "udp": self.datagram, "sudp": self.datagram,
                "http": self.web}[name](self.ports[name])

    async def stream(self, port: int, nbytes: int = TCP_PROBE_BYTES) -> bool:
        try:
            await exchange(self.reactor, port, nbytes, timeout=self.timeout)
        except AssertionError as e:
            if "differ" in str(e):
                raise Corrupt(f"port {port}: {e}")
            return False
        except Exception:
            return False
        return True

    async def datagram(self, port: int) -> bool:
        probe = UDPProbe.listen(self.reactor)  # a fresh socket: no late echo of an earlier probe
        payload = os.urandom(64)
        try:
            got = await probe.ask(("127.0.0.1", port), payload, timeout=min(self.timeout, 0.5))
        except Exception:
            return False
        finally:
            await probe.stop()
        if got != payload:
            raise Corrupt(f"udp port {port}: got {len(got)} bytes that are not the datagram sent")
        return True

    async def web(self, port: int) -> bool:
        try:
            d = defer.ensureDeferred(fetch(self.reactor, f"http://127.0.0.1:{port}/blob",
                                           headers=[(b"Host", DOMAIN.encode())]))
            response = await d.addTimeout(self.timeout, self.reactor)
        except Exception:
            return False
        if response.status != 200:
            return False
        if hashlib.sha256(response.body).digest() != hashlib.sha256(self.blob).digest():
            raise Corrupt(f"http port {port}: {len(response.body)} bytes that are not the blob")
        return True


async def pollUntil(reactor, check: Callable[[], Awaitable[bool]], what: str, timeout: float,
                    interval: float = 0.05) -> float:
    """Run ``check`` until it returns True; the seconds that took.  Fails after ``timeout``."""
    start = reactor.seconds()
    while not await check():
        if reactor.seconds() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await sleep(interval)
    return reactor.seconds() - start


# -- traffic through the kills -------------------------------------------------------------------


@dataclass
class TrafficCount:
    completed: int = 0
    broken: int = 0
    corrupt: List[str] = field(default_factory=list)


class Traffic:
    """tcp exchanges (256 KiB each) and udp datagrams, one after another on each proxy, until
    :meth:`stop`; :attr:`counts` per proxy."""

    def __init__(self, reactor, probes: Probes) -> None:
        self.reactor = reactor
        self.probes = probes
        self.counts = {"tcp": TrafficCount(), "udp": TrafficCount()}
        self._running = True
        self._loops = [defer.ensureDeferred(self._loop(name)) for name in self.counts]

    async def _loop(self, name: str) -> None:
        count = self.counts[name]
        check = ((lambda: self.probes.stream(self.probes.ports["tcp"], 256 * 1024)) if name == "tcp"
                 else (lambda: self.probes.datagram(self.probes.ports["udp"])))
        while self._running:
            try:
                ok = await check()
            except Corrupt as e:
                count.corrupt.append(str(e))
                continue
            if ok:
                count.completed += 1
            else:
                count.broken += 1
                await sleep(0.05)

    async def stop(self) -> Dict[str, TrafficCount]:
        self._running = False
        await defer.gatherResults(self._loops, consumeErrors=True)
        return self.counts


# -- the rig -------------------------------------------------------------------------------------


@dataclass
class Recovery:
    """One kill and restart: seconds from the SIGKILL until frps logged that it is up again,
    until each proxy carried checked bytes, and until all of them did."""

    frpsUp: float
    proxies: Dict[str, float]

    @property
    def allBack(self) -> float:
        return max(self.proxies.values())


class Rig:
    """frps (``server`` impl), an owner frpc and a visitor frpc (``client`` impl) with every
    proxy type, on free loopback ports; :meth:`restart` kills and restarts frps."""

    def __init__(self, reactor, server: str, client: str, frpsExtra: str = "", frpcExtra: str = "",
                 proxies=PROXIES) -> None:
        self.reactor = reactor
        self.proxies = tuple(proxies)
        self.server = server
        self.client = client
        self.frpsExtra = frpsExtra
        self.frpcExtra = frpcExtra
        self.backends = Backends()
        self.ports = {"bind": free_port(), "http": free_port(), "tcp": free_port(),
                      "udp": free_port(socket.SOCK_DGRAM), "stcp": free_port(), "sudp": free_port(socket.SOCK_DGRAM)}
        self.frps: Optional[GoFrp] = None
        self.frpcs: List[GoFrp] = []
        self.probes: Optional[Probes] = None
        #: Every frps process this rig started (a killed one stays here: its output is evidence).
        self.frpsRuns: List[GoFrp] = []

    def frpsToml(self) -> str:
        p = self.ports
        return (f'bindAddr = "127.0.0.1"\nbindPort = {p["bind"]}\nproxyBindAddr = "127.0.0.1"\n'
                f'vhostHTTPPort = {p["http"]}\nauth.token = "{TOKEN}"\n{self.frpsExtra}\n')

    @property
    def serverPort(self) -> int:
        """Where the frpcs dial frps (a subclass may put a relay in between)."""
        return self.ports["bind"]

    def _common(self, user: str) -> str:
        return (f'serverAddr = "127.0.0.1"\nserverPort = {self.serverPort}\nauth.token = "{TOKEN}"\n'
                f'user = "{user}"\nloginFailExit = false\n{self.frpcExtra}\n')

    def ownerToml(self) -> str:
        p, b = self.ports, self.backends
        local = {"tcp": b.tcp.port, "udp": b.udp.port, "http": b.webPort, "stcp": b.tcp.port, "sudp": b.udp.port}
        where = {"tcp": f'remotePort = {p["tcp"]}', "udp": f'remotePort = {p["udp"]}',
                 "http": f'customDomains = ["{DOMAIN}"]',
                 "stcp": f'secretKey = "{SECRET}"\nallowUsers = ["visitor"]',
                 "sudp": f'secretKey = "{SECRET}"\nallowUsers = ["visitor"]'}
        return self._common("owner") + "".join(
            f'\n[[proxies]]\nname = "{name}"\ntype = "{name}"\nlocalIP = "127.0.0.1"\nlocalPort = {local[name]}\n'
            f"{where[name]}\n" for name in self.proxies)

    def visitorToml(self) -> str:
        p = self.ports
        return self._common("visitor") + "".join(f"""
[[visitors]]
name = "{kind}-visitor"
type = "{kind}"
serverName = "{kind}"
serverUser = "owner"
secretKey = "{SECRET}"
bindAddr = "127.0.0.1"
bindPort = {p[kind]}
""" for kind in ("stcp", "sudp") if kind in self.proxies)

    async def start(self, timeout: float = 60.0) -> None:
        """Start the backends, frps and both frpcs; wait until every proxy carries bytes."""
        await self.backends.start(self.reactor)
        self.probes = Probes(self.reactor, {name: self.ports[name] for name in self.proxies}, self.backends.blob)
        await self._startFrps()
        await self.startFrpcs()
        await self.recovered(self.reactor.seconds(), timeout)

    async def startFrpcs(self) -> None:
        texts = [self.ownerToml()]
        if {"stcp", "sudp"} & set(self.proxies):
            texts.append(self.visitorToml())
        for text in texts:
            self.frpcs.append(await startFrp(self.reactor, self.client, "frpc", text))

    async def _startFrps(self) -> None:
        self.frps = await startFrp(self.reactor, self.server, "frps", self.frpsToml())
        self.frpsRuns.append(self.frps)

    async def recovered(self, since: float, timeout: float) -> Dict[str, float]:
        """Seconds from ``since`` until each proxy passed its probe (polled concurrently)."""
        async def one(name: str) -> float:
            await pollUntil(self.reactor, lambda: self.probes(name), f"the {name} proxy to carry bytes",
                            timeout, interval=0.02)
            return self.reactor.seconds() - since

        results = await defer.DeferredList([defer.ensureDeferred(one(name)) for name in self.proxies],
                                           consumeErrors=True)
        for ok, value in results:
            if not ok:
                value.raiseException()
        return {name: value for name, (_, value) in zip(self.proxies, results)}

    async def restart(self, timeout: float = 60.0) -> Recovery:
        """SIGKILL frps, start it again on the same ports, wait until every proxy is back."""
        killed = self.reactor.seconds()
        await self.frps.kill()
        await self._startFrps()
        up = self.reactor.seconds() - killed
        return Recovery(up, await self.recovered(killed, timeout))

    def output(self) -> str:
        """What every process logged (for a failure message)."""
        parts = [f"--- frps run {i + 1}:\n{p.output[-3000:]}" for i, p in enumerate(self.frpsRuns)]
        parts += [f"--- frpc {i + 1}:\n{p.output[-3000:]}" for i, p in enumerate(self.frpcs)]
        return "\n".join(parts)

    async def stop(self) -> None:
        for proc in reversed(self.frpcs):
            await proc.stop()
        if self.frps is not None:
            await self.frps.stop()
        await self.backends.stop()


# -- a stalled network between frpc and frps -----------------------------------------------------


async def timeUntil(reactor, check: Callable[[], Awaitable[bool]], timeout: float,
                    interval: float = 0.05) -> Optional[float]:
    """Seconds until ``check`` returns True, or None if it did not within ``timeout`` (for a
    side that may legitimately never notice, like a frps without heartbeats)."""
    try:
        return await pollUntil(reactor, check, "", timeout, interval)
    except AssertionError:
        return None


@dataclass
class Stall:
    """One stall of the network between frpc and frps, in seconds from the moment it stopped
    forwarding (None: did not happen within the wait): frpc closed its control connection,
    frps closed its end, frps freed the tcp proxy's port and the http proxy's domain."""

    frpcDropped: Optional[float]
    frpsDropped: Optional[float]
    freed: Optional[float]


class StallRig(Rig):
    """A :class:`Rig` (tcp and http proxies by default) whose frpcs reach frps through a
    :class:`tests.relays.StallRelay`; :meth:`stall` stops it, :meth:`resume` heals it."""

    def __init__(self, reactor, server: str, client: str, frpsExtra: str = "", frpcExtra: str = "",
                 proxies=("tcp", "http")) -> None:
        super().__init__(reactor, server, client, frpsExtra, frpcExtra, proxies)
        self.relay = None

    @property
    def serverPort(self) -> int:
        return self.relay.port

    async def start(self, timeout: float = 60.0) -> None:
        self.relay = await StallRelay.listen(self.reactor, self.ports["bind"])
        await super().start(timeout)

    async def stall(self, wait: float) -> Stall:
        """Stop the relay; wait up to ``wait`` s for each side to drop the stalled control
        connection (the oldest one relayed still open: the login) and for frps to free the
        tcp port and the domain."""
        control = min(self.relay.live, key=self.relay.pairs.index)
        self.relay.stall()

        async def closedBy(end: str) -> bool:
            return end in control.closedWhileFrozen

        async def freed() -> bool:
            return await portRefuses(self.reactor, self.ports["tcp"]) and await self.domainUnrouted()

        checks = (lambda: closedBy("near"), lambda: closedBy("far"), freed)
        results = await defer.gatherResults([defer.ensureDeferred(timeUntil(self.reactor, check, wait))
                                             for check in checks])
        return Stall(*results)

    async def domainUnrouted(self) -> bool:
        try:
            response = await defer.ensureDeferred(
                fetch(self.reactor, f"http://127.0.0.1:{self.ports['http']}/blob", headers=[(b"Host", DOMAIN.encode())])
            ).addTimeout(2.0, self.reactor)
        except Exception:
            return False
        return response.status == 404

    async def resume(self, existing: bool = True, timeout: float = 60.0) -> float:
        """Heal the relay (``existing``: see :meth:`StallRelay.resume`); seconds until every
        proxy carried bytes again."""
        healed = self.reactor.seconds()
        self.relay.resume(existing)
        return max((await self.recovered(healed, timeout)).values())

    async def stop(self) -> None:
        await super().stop()
        if self.relay is not None:
            await self.relay.stop()


async def portRefuses(reactor, port: int) -> bool:
    """True when nothing listens on 127.0.0.1:``port`` any more."""
    try:
        proto = await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=2), Protocol())
    except ConnectionRefusedError:
        return True
    except Exception:
        return False
    proto.transport.abortConnection()
    return False
