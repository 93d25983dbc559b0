"""Backpressure beyond the tcp proxy: the HTTP vhost, stcp through a visitor (both ways), and
udp/sudp floods, through frptw's frps and frpc as ``twistd`` processes (issue 14).

``test_backpressure`` proves the bound of one tcp data path inside one process.  Here the whole
programs run, each in its own process, so the figure is theirs: ``VmRSS`` of every frp process,
sampled while :data:`TOTAL` bytes are pushed at a reader that has stopped reading.

* TCP paths: the sender must be held back (it stalls before it has sent everything), no frp
  process may grow by more than :data:`BOUND_MIB` while it is stalled, and once the reader
  reads again every byte arrives, intact (sha256).
* udp and sudp: datagrams have no flow control, so what frp cannot carry is dropped; a flood
  of :data:`FLOOD` datagrams at a service that does not read must leave every process within
  :data:`BOUND_MIB`, and the path must still answer afterwards.

An frp that buffered without bound would take the whole transfer into its memory: 32 MiB,
more than twice the bound.  frp's own design bounds a stalled stream at one yamux window
(6 MiB) per process, plus the socket buffers; the bench (``bench/bench_backpressure.py``)
measures the same paths at 64 MiB with a slow (not stopped) reader, against Go frp as well.
"""

import socket
from typing import Dict, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.logger import Logger
from twisted.trial.unittest import TestCase

from tests.gofrp import GoFrp
from tests.procmem import PeakRss
from tests.support import Peer, free_port, sleep, stalled, until

log = Logger()
MiB = 1024 * 1024
TOTAL = 32 * MiB
BOUND_MIB = 16
#: Datagrams in a flood (1200 bytes each: 24 MiB).
FLOOD = 20000
DATAGRAM = 1200
TOKEN = "backpressure-paths"
SECRET = "bp-secret"
DOMAIN = "bp.example"
#: Kernel buffers of the test's own sockets: small, so that the frp processes, not this one's
#: kernel queues, meet the stopped reader.
SMALL = 32 * 1024


def shrink(transport) -> None:
    for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        transport.getHandle().setsockopt(socket.SOL_SOCKET, option, SMALL)


class Serving(Factory):
    """A listening factory that keeps every protocol it builds (the service's connections)."""

    def __init__(self, make) -> None:
        self.make = make
        self.built: List = []
        self.arrived: Deferred = Deferred()

    def buildProtocol(self, addr):
        p = self.make()
        self.built.append(p)
        if not self.arrived.called:
            self.arrived.callback(p)
        return p


class Sending(Peer):
    """A service connection that sends :data:`TOTAL` bytes as soon as it is connected."""

    def connectionMade(self) -> None:
        super().connectionMade()
        shrink(self.transport)
        self.send(TOTAL)


class Stopped(Peer):
    """A connection that does not read until the test says so (its reading is paused)."""

    def connectionMade(self) -> None:
        super().connectionMade()
        shrink(self.transport)
        self.transport.pauseProducing()


class HttpOrigin(Peer):
    """Answers the first request head with a response of :data:`TOTAL` bytes."""

    def connectionMade(self) -> None:
        super().connectionMade()
        shrink(self.transport)
        self._head = b""

    def dataReceived(self, data: bytes) -> None:
        if self._head is None:
            return
        self._head += data
        if b"\r\n\r\n" in self._head:
            self._head = None
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TOTAL)
            self.send(TOTAL)


class HttpUser(Stopped):
    """Sends one GET, then stops reading; hashes only the response body."""

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.write(b"GET /big HTTP/1.1\r\nHost: %s\r\n\r\n" % DOMAIN.encode())
        self._head = b""

    def dataReceived(self, data: bytes) -> None:
        if self._head is not None:
            self._head += data
            if b"\r\n\r\n" not in self._head:
                return
            head, data = self._head.split(b"\r\n\r\n", 1)
            self._head = None
            self.status = head.split(b"\r\n", 1)[0]
        super().dataReceived(data)


class Sink(DatagramProtocol):
    """A udp service: echoes ``ping`` (the probe that the path is up), counts the rest."""

    def __init__(self) -> None:
        self.received = 0

    def datagramReceived(self, data: bytes, addr) -> None:
        if data == b"ping":
            self.transport.write(data, addr)
        else:
            self.received += 1


class Prober(DatagramProtocol):
    """The user of a udp path: floods, and sends probes until one comes back."""

    def __init__(self) -> None:
        self.echoes = 0

    def datagramReceived(self, data: bytes, addr) -> None:
        self.echoes += data == b"ping"


class BackpressurePathTests(TestCase):
    timeout = 240

    async def frp(self, kind: str, text: str, ready: str = "default") -> GoFrp:
        proc = await GoFrp.startOurs(reactor, kind, text, ready=ready, timeout=60)
        self.addCleanup(proc.stop)
        return proc

    async def frps(self, extra: str = "") -> int:
        port = free_port()
        self.frpsProc = await self.frp("frps", f'bindAddr = "127.0.0.1"\nbindPort = {port}\n'
                                               f'proxyBindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n{extra}')
        return port

    async def frpc(self, bindPort: int, body: str, ready: str = "default") -> GoFrp:
        return await self.frp("frpc", f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\n'
                                      f'auth.token = "{TOKEN}"\nloginFailExit = false\n{body}', ready)

    async def listen(self, factory: Factory) -> int:
        port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    async def connect(self, port: int, protocol: Peer, ready: str) -> Peer:
        """Connect ``protocol`` to ``port``, retrying while the path is not up (the proxy or
        visitor registers after frpc logged in)."""
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        await until(lambda: port in _listening(), f"{ready}: port {port} listening", timeout=30)
        await endpoint.connect(Factory.forProtocol(lambda: protocol))
        self.addCleanup(_abort, protocol)
        return protocol

    def watch(self, procs: Dict[str, GoFrp]) -> PeakRss:
        meter = PeakRss(reactor, {name: p.pid for name, p in procs.items()})
        self.addCleanup(meter.stop)
        return meter

    async def heldBack(self, sender: Peer, reader: Peer, meter: PeakRss) -> None:
        """The stopped reader holds the sender back within the bound; then everything arrives."""
        await stalled(sender, timeout=120, quiet=1.0)
        meter.sample()
        growth = meter.growthMiB()
        log.info("held back after {sent} of {total} bytes; growth (MiB) {growth}", sent=sender.sent, total=TOTAL,
                 growth=growth)
        self.assertLess(sender.sent, TOTAL, f"the sender was not held back (growth {growth})")
        for name, mib in growth.items():
            self.assertLess(mib, BOUND_MIB, f"{name} grew by {mib:.1f} MiB with {sender.sent} bytes sent: {growth}")
        reader.transport.resumeProducing()
        await _within(reader.whenReceived(TOTAL), 120, f"all {TOTAL} bytes at the reader")
        self.assertEqual(reader.receivedHash.digest(), sender.sentHash.digest())
        meter.sample()
        growth = meter.growthMiB()
        for name, mib in growth.items():
            self.assertLess(mib, BOUND_MIB, f"{name} grew by {mib:.1f} MiB moving {TOTAL} bytes: {growth}")

    async def test_http_vhost_response_to_a_stopped_user(self) -> None:
        origin = Serving(lambda: HttpOrigin(seed=6))
        originPort = await self.listen(origin)
        vhost = free_port()
        bindPort = await self.frps(f"vhostHTTPPort = {vhost}\n")
        frpc = await self.frpc(bindPort, f'\n[[proxies]]\nname = "web"\ntype = "http"\ncustomDomains = ["{DOMAIN}"]\n'
                                         f'localIP = "127.0.0.1"\nlocalPort = {originPort}\n',
                               ready="start proxy success")
        meter = self.watch({"frps": self.frpsProc, "frpc": frpc})
        meter.start()
        user = await self.connect(vhost, HttpUser(seed=1), "vhost")
        sender = await _within(origin.arrived, 30, "the request at the origin")
        await until(lambda: sender.sent > 0, "the origin sending", timeout=30)
        await self.heldBack(sender, user, meter)
        self.assertEqual(user.status, b"HTTP/1.1 200 OK")

    async def stcpStack(self, service: Factory) -> tuple:
        """frps, the stcp owner (to ``service``) and a visitor; the visitor's port and the meter."""
        servicePort = await self.listen(service)
        bindPort = await self.frps()
        owner = await self.frpc(bindPort, f'\n[[proxies]]\nname = "sec"\ntype = "stcp"\nsecretKey = "{SECRET}"\n'
                                          f'localIP = "127.0.0.1"\nlocalPort = {servicePort}\n',
                                ready="start proxy success")
        visitorPort = free_port()
        visitor = await self.frpc(bindPort, f'\n[[visitors]]\nname = "v"\ntype = "stcp"\nserverName = "sec"\n'
                                            f'secretKey = "{SECRET}"\nbindAddr = "127.0.0.1"\n'
                                            f'bindPort = {visitorPort}\n')
        meter = self.watch({"frps": self.frpsProc, "owner": owner, "visitor": visitor})
        meter.start()
        return visitorPort, meter

    async def test_stcp_service_to_a_stopped_user_at_the_visitor(self) -> None:
        service = Serving(lambda: Sending(seed=2))
        visitorPort, meter = await self.stcpStack(service)
        user = await self.connect(visitorPort, Stopped(seed=3), "stcp visitor")
        sender = await _within(service.arrived, 30, "the visitor's connection at the service")
        await self.heldBack(sender, user, meter)

    async def test_stcp_user_at_the_visitor_to_a_stopped_service(self) -> None:
        service = Serving(lambda: Stopped(seed=4))
        visitorPort, meter = await self.stcpStack(service)
        user = await self.connect(visitorPort, Peer(seed=5), "stcp visitor")
        shrink(user.transport)
        user.send(TOTAL)
        reader = await _within(service.arrived, 30, "the visitor's connection at the service")
        await self.heldBack(user, reader, meter)

    async def test_udp_and_sudp_floods_at_a_service_that_does_not_read(self) -> None:
        sink = Sink()
        sinkPort = reactor.listenUDP(0, sink, interface="127.0.0.1")
        self.addCleanup(sinkPort.stopListening)
        local = sinkPort.getHost().port
        bindPort = await self.frps()
        remote = free_port(socket.SOCK_DGRAM)
        owner = await self.frpc(bindPort, f'\n[[proxies]]\nname = "u"\ntype = "udp"\nremotePort = {remote}\n'
                                          f'localIP = "127.0.0.1"\nlocalPort = {local}\n'
                                          f'\n[[proxies]]\nname = "su"\ntype = "sudp"\nsecretKey = "{SECRET}"\n'
                                          f'localIP = "127.0.0.1"\nlocalPort = {local}\n',
                                ready="start proxy success")
        visitorPort = free_port(socket.SOCK_DGRAM)
        visitor = await self.frpc(bindPort, f'\n[[visitors]]\nname = "sv"\ntype = "sudp"\nserverName = "su"\n'
                                            f'secretKey = "{SECRET}"\nbindAddr = "127.0.0.1"\n'
                                            f'bindPort = {visitorPort}\n')
        meter = self.watch({"frps": self.frpsProc, "owner": owner, "visitor": visitor})
        for port, path in ((remote, "udp"), (visitorPort, "sudp")):
            user = Prober()
            userPort = reactor.listenUDP(0, user, interface="127.0.0.1")
            self.addCleanup(userPort.stopListening)
            await self.probed(user, port, f"an echo through the {path} path")
            meter.start()
            sinkPort.stopReading()  # the service stops reading: the kernel drops what it cannot keep
            await self.flood(user, port)
            meter.sample()
            meter.stop()
            growth = meter.growthMiB()
            log.info("{path} flood of {n} datagrams, {got} reached the service; growth (MiB) {growth}", path=path,
                     n=FLOOD, got=sink.received, growth=growth)
            for name, mib in growth.items():
                self.assertLess(mib, BOUND_MIB, f"{path}: {name} grew by {mib:.1f} MiB in the flood: {growth}")
            sinkPort.startReading()
            await self.probed(user, port, f"an echo through the {path} path after the flood")

    async def probed(self, user: Prober, port: int, what: str) -> None:
        """A probe comes back through ``port`` (one probe per poll until it does)."""
        before = user.echoes

        def echoed() -> bool:
            user.transport.write(b"ping", ("127.0.0.1", port))
            return user.echoes > before

        await until(echoed, what, timeout=60)

    async def flood(self, user: Prober, port: int) -> None:
        """:data:`FLOOD` datagrams, in bursts of 500 per reactor turn (a full socket buffer
        drops them here, as a flood does)."""
        payload = b"x" * DATAGRAM
        for _ in range(FLOOD // 500):
            for _ in range(500):
                try:
                    user.transport.write(payload, ("127.0.0.1", port))
                except OSError:
                    pass
            await sleep(0)  # the next burst on the next reactor turn


def _listening() -> set:
    """Ports with a listening TCP socket on this machine (from /proc/net/tcp)."""
    ports = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == "0A":
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


async def _within(d: Deferred, seconds: float, what: str):
    try:
        return await d.addTimeout(seconds, reactor)
    except TimeoutError:
        raise AssertionError(f"timed out after {seconds} s waiting for {what}") from None


def _abort(peer: Peer) -> Deferred:
    if not peer.lost.called:
        peer.transport.abortConnection()
    return peer.lost
