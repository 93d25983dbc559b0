"""Interop scaffolding for frp's UDP transports (quic, kcp): an frps and an frpc, each ours or
the real Go one, talking over ``protocol``, with a tcp proxy in front of an echo server; and
:class:`LossyRelay`, a loopback UDP relay that drops a share of the datagrams both ways.

Used by tests/test_quic_interop.py and tests/test_kcp_interop.py.
"""

import random
from typing import Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.protocol import DatagramProtocol

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.support import free_port
from tests.traffic import EchoServer, exchange

TOKEN = "udp-transports"
#: The interop traffic: one 8 MiB echo, then 20 concurrent connections of 256 KiB each.
BIG = 8 * 1024 * 1024
CONCURRENT = 20
EACH = 256 * 1024
PORT_KEYS = {"quic": "quicBindPort", "kcp": "kcpBindPort"}


class LossyRelay(DatagramProtocol):
    """Relays datagrams between clients and ``target`` as a NAT would: each client address gets
    its own upstream socket, so the target sees one address per client (as without the relay;
    with ``tcpMux = false`` each KCP conversation has its own client socket).  Drops each
    datagram with probability ``loss`` (seeded, so a run is repeatable); counts what it relayed
    and dropped."""

    noisy = False

    def __init__(self, target: Tuple[str, int], loss: float, seed: int = 5, record: int = 0) -> None:
        self._target = target
        self._loss = loss
        self._random = random.Random(seed)
        self._upstreams: Dict[Tuple[str, int], _Upstream] = {}
        self._record = record
        self.relayed = 0
        self.dropped = 0
        #: The first ``record`` datagrams each way, as received (before any drop).
        self.fromClient: List[bytes] = []
        self.fromServer: List[bytes] = []

    @classmethod
    def listen(cls, target: Tuple[str, int], loss: float, record: int = 0) -> "LossyRelay":
        relay = cls(target, loss, record=record)
        relay.port = reactor.listenUDP(0, relay, interface="127.0.0.1")
        return relay

    @property
    def address(self) -> Tuple[str, int]:
        host = self.port.getHost()
        return host.host, host.port

    @property
    def clients(self) -> int:
        """How many client addresses the relay has seen."""
        return len(self._upstreams)

    def datagramReceived(self, data: bytes, addr) -> None:
        upstream = self._upstreams.get(addr)
        if upstream is None:
            upstream = self._upstreams[addr] = _Upstream(self, addr)
            upstream.port = reactor.listenUDP(0, upstream, interface="127.0.0.1")
        self.forward(data, self.fromClient, upstream.transport, self._target)

    def forward(self, data: bytes, seen: List[bytes], transport, destination: Tuple[str, int]) -> None:
        if len(seen) < self._record:
            seen.append(data)
        if self._random.random() < self._loss:
            self.dropped += 1
            return
        self.relayed += 1
        transport.write(data, destination)

    def stop(self):
        for upstream in self._upstreams.values():
            upstream.port.stopListening()
        return self.port.stopListening()


class _Upstream(DatagramProtocol):
    """The relay's socket towards the target for one client."""

    noisy = False

    def __init__(self, relay: LossyRelay, client: Tuple[str, int]) -> None:
        self._relay = relay
        self._client = client

    def datagramReceived(self, data: bytes, addr) -> None:
        relay = self._relay
        relay.forward(data, relay.fromServer, relay.transport, self._client)


def tcpProxy(localPort: int, remotePort: int, extra: str = "") -> str:
    return f"""
[[proxies]]
name = "echo"
type = "tcp"
localIP = "127.0.0.1"
localPort = {localPort}
remotePort = {remotePort}
{extra}
"""


class UDPTransportMixin:
    """For a TestCase: ``setUpPair(protocol, frps=..., frpc=...)`` starts frps and frpc (each
    "ours" or "go") over ``protocol`` with an echo proxy on :attr:`remotePort`."""

    timeout = 120

    @inlineCallbacks
    def traffic(self):
        """:data:`BIG` bytes echoed on one connection, then :data:`EACH` on each of
        :data:`CONCURRENT` at once, through the pair's proxy."""
        try:
            echoed = yield exchange(reactor, self.remotePort, BIG)
            self.assertEqual(echoed, BIG)
            echoed = yield exchange(reactor, self.remotePort, EACH, connections=CONCURRENT)
            self.assertEqual(echoed, EACH * CONCURRENT)
        except AssertionError as e:
            raise AssertionError(f"{e}{self.goSaid()}") from None

    def goSaid(self) -> str:
        """The end of what the Go sides of the pair logged, for a failure's message."""
        sides = [(name, getattr(self, name, None)) for name in ("frps", "frpc")]
        return "".join(f"\nGo {name} said:\n{side.output[-4000:]}" for name, side in sides if isinstance(side, GoFrp))

    @inlineCallbacks
    def startFrps(self, kind: str, protocol: str, extra: str = ""):
        self.bindPort = free_port()
        self.udpPort = free_port(2)
        text = (f'bindAddr = "127.0.0.1"\nbindPort = {self.bindPort}\n{PORT_KEYS[protocol]} = {self.udpPort}\n'
                f'auth.token = "{TOKEN}"\n{extra}\n')
        if kind == "go":
            frps = yield GoFrp.start(reactor, "frps", text)
            self.addCleanup(frps.stop)
        else:
            frps = FrpServerService(parse_server_config(text, "toml"), reactor)
            frps.startService()
            self.addCleanup(frps.stopService)
            yield frps.whenListening()
        self.frps = frps

    @inlineCallbacks
    def startFrpc(self, kind: str, protocol: str, serverPort: int, proxyExtra: str = "", extra: str = ""):
        self.echo = yield EchoServer.listen(reactor)
        self.addCleanup(self.echo.stop)
        self.remotePort = free_port()
        text = (f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\n'
                f'loginFailExit = false\ntransport.protocol = "{protocol}"\n{extra}\n'
                + tcpProxy(self.echo.port, self.remotePort, proxyExtra))
        if kind == "go":
            frpc = yield GoFrp.start(reactor, "frpc", text, ready="start proxy success", timeout=30)
            self.addCleanup(frpc.stop)
        else:
            frpc = FrpClientService(parse_client_config(text, "toml"), reactor, onFatal=self.fail)
            frpc.startService()
            self.addCleanup(frpc.stopService)
            yield frpc.whenProxyRunning("echo")
        self.frpc = frpc

    @inlineCallbacks
    def setUpPair(self, protocol: str, frps: str, frpc: str, loss: float = 0.0, proxyExtra: str = "",
                  serverExtra: str = "", clientExtra: str = "", relay: bool = False, record: int = 0):
        yield self.startFrps(frps, protocol, serverExtra)
        serverPort = self.udpPort
        if loss or relay:
            self.relay = LossyRelay.listen(("127.0.0.1", self.udpPort), loss, record)
            self.addCleanup(self.relay.stop)
            serverPort = self.relay.address[1]
        yield self.startFrpc(frpc, protocol, serverPort, proxyExtra, clientExtra)
