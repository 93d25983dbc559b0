"""Interop matrix for udp, stcp and sudp (issue 5), with the real Go frp 0.65 and frptw mixed.

Every cell starts one frps (ours in-process, or the real one) and an owner and a visitor frpc
(ours or the real one), then moves checked data both ways:

* stcp: 20 concurrent connections, 20 x 420 KiB = 8.2 MiB each way, sha256-checked;
* sudp / udp: 1000 paced datagrams of sizes up to ``udp_packet_size`` (1500), every one echoed
  intact; loss is counted and must be zero on loopback.

The cells not covered elsewhere are here: every owner/visitor mix through *our* frps, sudp
through our frps, stcp ours<->ours through the real frps, udp at full packet size.  The
negative cells (wrong sk, user not in allow_users, ``allow_users = ["*"]``, unknown server
name, a datagram larger than ``udp_packet_size``) run against our frps and the real one in the
same test and compare what each does: the refused visitor gets frps's text, frps logs a line,
and the other proxies keep working.
"""

import socket
from typing import Dict, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from frptw.transport.datagrams import LOG_INTERVAL, DatagramChannel
from tests.interop import GoAndOursMixin, secretProxy, udpProxy, visitor
from tests.support import LogCapture, free_port, proxiesRunning
from tests.traffic import exchange
from tests.udptraffic import UDPProbe, udp_exchange, wait_for_echo

STCP_CONNECTIONS = 20
STCP_PER_CONNECTION = 420 * 1024  # 20 x 420 KiB = 8.2 MiB each way
DATAGRAMS = 1000
PACKET_SIZE = 1500  # frp's default udp_packet_size, on every frps and frpc here


class _Probe(Protocol):
    """Says hello and records what comes back until the connection closes."""

    def __init__(self) -> None:
        self.data = b""
        self.closed: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(b"hello")

    def dataReceived(self, data: bytes) -> None:
        self.data += data

    def connectionLost(self, reason) -> None:
        self.closed.callback(self.data)


@inlineCallbacks
def connectAndWaitClose(port: int, timeout: float = 12.0):
    """Connect to a visitor port and wait until it closes us; fire with what we received."""
    probe = _Probe()
    yield TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(Factory.forProtocol(lambda: probe))
    data = yield probe.closed.addTimeout(timeout, reactor)
    return data


class MatrixMixin(GoAndOursMixin):
    """Start either frps, and owners/visitors of either kind, against it."""

    timeout = 45

    @inlineCallbacks
    def startOurFrps(self, extra: str = ""):
        config = parse_server_config(f'bindAddr = "127.0.0.1"\nauth.token = "abc"\n{extra}\n', "toml")
        config.bind_port = 0  # any free port (in a file, 0 would mean 7000)
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.bindPort = (yield service.whenListening()).getHost().port
        self.frps = service
        return service

    def startEitherFrps(self, kind: str, extra: str = ""):
        return self.startOurFrps(extra) if kind == "ours" else self.startFrps(extra)

    @inlineCallbacks
    def owner(self, kind: str, body: str, names: List[str], user: str = "owner"):
        """Start an owner frpc of ``kind``; fire once its proxies ``names`` are running."""
        if kind == "go":
            frpc = yield self.go(user, body, ready=None)
            for name in names:
                yield frpc.waitFor(f"[{user}.{name}] start proxy success")
            return frpc
        service = yield self.ours(user, body)
        yield ensureDeferred(proxiesRunning(service, *names))
        return service

    def visitorClient(self, kind: str, body: str, user: str = "v"):
        """Start a visitor frpc of ``kind``; fire once its visitors listen."""
        if kind == "go":
            return self.go(user, body, ready="start visitor success")
        return self.ours(user, body)


class STCPMatrix(MatrixMixin, TestCase):
    """stcp: 20 connections, 8.2 MiB each way, sha256-checked, per cell."""

    @inlineCallbacks
    def cell(self, frps: str, owner: str, visitorKind: str, extra: str = ""):
        yield self.startEitherFrps(frps)
        server = yield self.tcpEcho()
        yield self.owner(owner, secretProxy("stcp", server.port, extra=extra), ["sec"])
        port = free_port()
        yield self.visitorClient(visitorKind, visitor("stcp", port, extra=extra))
        moved = yield exchange(reactor, port, STCP_PER_CONNECTION, STCP_CONNECTIONS, timeout=30)
        self.assertEqual(moved, STCP_PER_CONNECTION * STCP_CONNECTIONS)

    def test_our_frps_our_owner_our_visitor(self):
        return self.cell("ours", "ours", "ours")

    def test_our_frps_our_owner_go_visitor(self):
        return self.cell("ours", "ours", "go", "transport.useEncryption = true")

    def test_our_frps_go_owner_our_visitor(self):
        return self.cell("ours", "go", "ours", "transport.useCompression = true")

    def test_our_frps_go_owner_go_visitor(self):
        return self.cell("ours", "go", "go")

    def test_go_frps_our_owner_our_visitor(self):
        return self.cell("go", "ours", "ours", "transport.useEncryption = true\ntransport.useCompression = true")


class SUDPMatrix(MatrixMixin, TestCase):
    """sudp: 1000 datagrams up to udp_packet_size, zero loss, per cell."""

    @inlineCallbacks
    def cell(self, frps: str, owner: str, visitorKind: str, extra: str = ""):
        yield self.startEitherFrps(frps)
        echo = self.udpEcho()
        yield self.owner(owner, secretProxy("sudp", echo.port, extra=extra), ["sec"])
        port = free_port(socket.SOCK_DGRAM)
        yield self.visitorClient(visitorKind, visitor("sudp", port, extra=extra))
        yield wait_for_echo(reactor, port)
        result = yield udp_exchange(reactor, port, DATAGRAMS, maxSize=PACKET_SIZE)
        self.assertEqual(result, (DATAGRAMS, 0, 0))

    def test_our_frps_our_owner_our_visitor(self):
        return self.cell("ours", "ours", "ours")

    def test_our_frps_our_owner_go_visitor(self):
        return self.cell("ours", "ours", "go", "transport.useEncryption = true")

    def test_our_frps_go_owner_our_visitor(self):
        return self.cell("ours", "go", "ours", "transport.useCompression = true")

    def test_our_frps_go_owner_go_visitor(self):
        return self.cell("ours", "go", "go", "transport.useEncryption = true\ntransport.useCompression = true")


class UDPMatrix(MatrixMixin, TestCase):
    """udp at the full packet size: our frpc through our frps and the real frpc through ours."""

    @inlineCallbacks
    def cell(self, frpc: str):
        yield self.startOurFrps()
        echo = self.udpEcho()
        remote = free_port(socket.SOCK_DGRAM)
        yield self.owner(frpc, udpProxy(echo.port, remote), ["dns"])
        yield wait_for_echo(reactor, remote)
        result = yield udp_exchange(reactor, remote, DATAGRAMS, maxSize=PACKET_SIZE)
        self.assertEqual(result, (DATAGRAMS, 0, 0))
        self.assertEqual(self.frps._liveProxies()["owner.dns"].channel.dropped, 0)

    def test_our_frpc_our_frps(self):
        return self.cell("ours")

    def test_go_frpc_our_frps(self):
        return self.cell("go")


#: The refused visitors of :class:`Refusals`: visitor name -> (server name, sk, frps's text).
REFUSED = {
    "wrongsk": ("star", "wrong", "visitor connection of [owner.star] auth failed"),
    "notallowed": ("only", "s3cret", "visitor connection of [owner.only] user [v] not allowed"),
    "unknown": ("nope", "s3cret", "custom listener for [owner.nope] doesn't exist"),
}


def named(body: str, name: str) -> str:
    """``body`` (one proxy or visitor) under another name."""
    return body.replace('\nname = "sec"\n', f'\nname = "{name}"\n').replace('\nname = "vis"\n', f'\nname = "{name}"\n')


class Refusals(MatrixMixin, TestCase):
    """Refused visitor connections on our frps and on the real one, side by side."""

    @inlineCallbacks
    def scenario(self, frps: str) -> Dict[str, str]:
        """The real frpc owns stcp "star" (allow_users = ["*"]), stcp "only" (allow_users =
        ["someone"]), sudp "ustar" (["*"]); our frpc (user v) visits them with bad and good
        visitors.  Returns frps's log output (ours: our log lines)."""
        logs = LogCapture(self)
        yield self.startEitherFrps(frps)
        server = yield self.tcpEcho()
        echo = self.udpEcho()
        proxies = (named(secretProxy("stcp", server.port), "star")
                   + named(secretProxy("stcp", server.port, allow='["someone"]'), "only")
                   + named(secretProxy("sudp", echo.port), "ustar"))
        yield self.owner("go", proxies, ["star", "only", "ustar"])
        ports = {name: free_port() for name in REFUSED}
        body = "".join(named(visitor("stcp", ports[name], sk=sk, serverName=server_name), name)
                       for name, (server_name, sk, _) in REFUSED.items())
        good, sudpBad, sudpGood = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
        body += named(visitor("stcp", good, serverName="star"), "good")
        body += named(visitor("sudp", sudpBad, sk="wrong", serverName="ustar"), "usudpbad")
        body += named(visitor("sudp", sudpGood, serverName="ustar"), "usudpgood")
        yield self.ours("v", body)

        for name, (_, _, text) in REFUSED.items():
            self.assertEqual((yield connectAndWaitClose(ports[name])), b"", name)
            yield ensureDeferred(logs.waitFor(f"[{name}] start new visitor connection error"))
            lines = logs.texts()
            self.assertTrue(any(f"[{name}]" in line and text in line for line in lines), (name, text, lines))
        # sudp with a wrong sk: the datagram goes nowhere, the visitor logs frps's text.
        probe = yield udp_exchange(reactor, sudpBad, 1, window=1, maxSize=16, lossTimeout=1.0)
        self.assertEqual(probe, (0, 1, 0))
        yield ensureDeferred(logs.waitFor("visitor connection of [owner.ustar] auth failed"))
        # allow_users = ["*"] admits user v, and nothing else was disturbed.
        moved = yield exchange(reactor, good, 256 * 1024, 4, timeout=15)
        self.assertEqual(moved, 4 * 256 * 1024)
        yield wait_for_echo(reactor, sudpGood)
        self.assertEqual((yield udp_exchange(reactor, sudpGood, 200, maxSize=PACKET_SIZE)), (200, 0, 0))
        return self.frps.output if frps == "go" else "\n".join(logs.texts())

    @inlineCallbacks
    def test_refusals_match_go_frps(self):
        for frps in ("go", "ours"):
            log = yield self.scenario(frps)
            for _, _, text in REFUSED.values():
                self.assertIn(text, log, frps)
            self.assertIn("visitor connection of [owner.ustar] auth failed", log, frps)


class OversizedDatagram(MatrixMixin, TestCase):
    """A user datagram longer than frps's udp_packet_size on a udp proxy."""

    @inlineCallbacks
    def sizes(self, frps: str):
        """Send 999..5000-byte datagrams through a udp proxy of frps (udp_packet_size = 1000);
        fire with the sizes the echo service got and the sizes the user got back."""
        yield self.startEitherFrps(frps, "udpPacketSize = 1000")
        echo = self.udpEcho()
        remote = free_port(socket.SOCK_DGRAM)
        yield self.owner("go", udpProxy(echo.port, remote), ["dns"])
        yield wait_for_echo(reactor, remote)
        del echo.received[:]
        probe = UDPProbe.listen(reactor)
        self.addCleanup(probe.stop)
        got = []
        for size in (999, 1000, 1001, 5000):
            got.append(len((yield probe.ask(("127.0.0.1", remote), bytes(size)))))
        result = yield udp_exchange(reactor, remote, 200, maxSize=1000)
        self.assertEqual(result, (200, 0, 0))  # the proxy goes on
        return [len(d) for d in echo.received[:4]], got

    @inlineCallbacks
    def test_truncated_as_go_frps_does_with_a_log_line(self):
        theirs = yield self.sizes("go")
        logs = LogCapture(self)
        ours = yield self.sizes("ours")
        self.assertEqual(theirs, ([999, 1000, 1000, 1000], [999, 1000, 1000, 1000]))
        self.assertEqual(ours, theirs)
        lines = logs.texts()
        truncated = [line for line in lines if "longer than udp_packet_size" in line]
        self.assertEqual(len(truncated), 1, lines)  # one line for the burst, not one per datagram
        self.assertIn("[owner.dns]", truncated[0])


class OversizedLogLines(SynchronousTestCase):
    """A burst of datagrams too big for one message gives one log line, not one each."""

    def test_one_line_per_burst_with_the_count(self):
        logs = LogCapture(self)
        clock = Clock()
        channel = DatagramChannel(receiver=None, clock=clock, description="[t]")
        channel.makeConnection(StringTransport())
        for _ in range(5):
            self.assertFalse(channel.sendPacket(b"x" * 9000, ("127.0.0.1", 5)))
        clock.advance(LOG_INTERVAL)
        channel.sendPacket(b"x" * 9000, ("127.0.0.1", 5))
        lines = logs.texts()
        logged = [line for line in lines if "dropping a 9000-byte datagram" in line]
        self.assertEqual(len(logged), 2, lines)
        self.assertIn("(4 more since the last line)", logged[1])
        self.assertEqual(channel.tooLarge, 6)
