"""The data-plane stacking order against the real frp 0.65, for every combination.

One table: encryption x compression x bandwidth mode (client, server) x proxy type (tcp, udp,
http, https, tcpmux, stcp and sudp with their visitors), 56 cells.  Each cell is one proxy of
one frpc; all cells of a direction share that frpc and one frps, and run at once:

* the real frpc (owner and visitor) through *our* frps;
* *our* frpc (owner and visitor) through the real frps.

Every cell moves a small checked payload both ways (sha256 for the streams, after a TLS
ClientHello for https and a CONNECT for tcpmux; datagrams echoed intact), so a layer stacked in
the wrong order on either side fails its cell.  xtcp's data plane runs between the two frpc
only, over the punched tunnel: ``tests/test_xtcp_nat.py`` covers it.  The
limit (1 MB/s) is far above what a cell moves, so throttling costs no time here; where the
limiter sits is pinned without a reactor in ``tests/test_dataplane.py``.
"""

import hashlib
import http.client
import os
import socket
from typing import Dict, NamedTuple

import h11
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, ensureDeferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.fakes import client_hello
from tests.gofrp import GoFrp
from tests.h11server import serverEvents
from tests.support import free_port, proxiesRunning
from tests.traffic import EchoServer, exchange
from tests.udptraffic import UDPEcho, udp_exchange, wait_for_echo

TOKEN = "dataplane"
USER = "dp"
STREAM_BYTES = 48 * 1024
DATAGRAMS = 20
HTTP_BODY = 24 * 1024


class Cell(NamedTuple):
    kind: str
    encryption: bool
    compression: bool
    mode: str

    @property
    def name(self) -> str:
        return f"{self.kind}-e{int(self.encryption)}-c{int(self.compression)}-{self.mode}"


CELLS = [
    Cell(kind, encryption, compression, mode)
    for kind in ("tcp", "udp", "http", "https", "tcpmux", "stcp", "sudp")
    for encryption in (False, True)
    for compression in (False, True)
    for mode in ("client", "server")
]


class _HTTPEcho(Protocol):
    """Answers every request with its own body."""

    def connectionMade(self) -> None:
        self.conn = h11.Connection(h11.SERVER)
        self.body = b""

    def dataReceived(self, data: bytes) -> None:
        for event in serverEvents(self.conn, data):
            if isinstance(event, h11.Request):
                self.body = b""
            elif isinstance(event, h11.Data):
                self.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.transport.write(self.conn.send(h11.Response(
                    status_code=200, headers=[("Content-Length", str(len(self.body)))])))
                self.transport.write(self.conn.send(h11.Data(data=self.body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            elif isinstance(event, h11.ConnectionClosed):
                self.transport.loseConnection()


def _httpRoundTrip(port: int, host: str, body: bytes) -> bytes:
    """POST ``body`` to ``127.0.0.1:port`` as ``host`` (in a thread); the response body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/", body=body, headers={"Host": host})
        response = conn.getresponse()
        if response.status != 200:
            raise AssertionError(f"HTTP {response.status}: {response.read()[:200]!r}")
        return response.read()
    finally:
        conn.close()


def _transport(cell: Cell) -> str:
    return (f"transport.useEncryption = {str(cell.encryption).lower()}\n"
            f"transport.useCompression = {str(cell.compression).lower()}\n")


#: What frps answers a tcpmux CONNECT with before it splices (Go's and ours alike).
CONNECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
#: The proxy types whose user talks to a visitor's port, and those behind a shared vhost port.
VISITED = ("stcp", "sudp")
VHOSTS = ("http", "https", "tcpmux")
DATAGRAM_KINDS = ("udp", "sudp")


class DataPlaneInterop(TestCase):
    timeout = 150

    @inlineCallbacks
    def setUp(self):
        self.echo = yield EchoServer.listen(reactor)
        self.addCleanup(self.echo.stop)
        self.udpEcho = UDPEcho.listen(reactor)
        self.addCleanup(self.udpEcho.stop)
        httpPort = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(_HTTPEcho))
        self.addCleanup(httpPort.stopListening)
        self.httpBackend = httpPort.getHost().port
        #: The port a user (or a visitor's user) connects to, per cell.
        self.ports: Dict[Cell, int] = {
            cell: free_port(socket.SOCK_DGRAM if cell.kind in DATAGRAM_KINDS else socket.SOCK_STREAM)
            for cell in CELLS if cell.kind not in VHOSTS
        }
        self.vhostPort = free_port()
        self.httpsPort = free_port()
        self.tcpmuxPort = free_port()

    def frpsVhosts(self) -> str:
        """The vhost ports of frps (TOML)."""
        return (f"vhostHTTPPort = {self.vhostPort}\nvhostHTTPSPort = {self.httpsPort}\n"
                f"tcpmuxHTTPConnectPort = {self.tcpmuxPort}\n")

    def frpcConfig(self, bindPort: int) -> str:
        """One frpc owning every cell's proxy, and the visitor of every stcp cell."""
        parts = [f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\nuser = "{USER}"\n'
                 "loginFailExit = false\n"]
        for cell in CELLS:
            local = {"udp": self.udpEcho.port, "sudp": self.udpEcho.port, "http": self.httpBackend}.get(
                cell.kind, self.echo.port)
            where = {
                "tcp": f"remotePort = {self.ports.get(cell)}",
                "udp": f"remotePort = {self.ports.get(cell)}",
                "http": f'customDomains = ["{cell.name}.test"]',
                "https": f'customDomains = ["{cell.name}.test"]',
                "tcpmux": f'multiplexer = "httpconnect"\ncustomDomains = ["{cell.name}.test"]',
                "stcp": 'secretKey = "sk"\nallowUsers = ["*"]',
                "sudp": 'secretKey = "sk"\nallowUsers = ["*"]',
            }[cell.kind]
            parts.append(f'[[proxies]]\nname = "{cell.name}"\ntype = "{cell.kind}"\nlocalIP = "127.0.0.1"\n'
                         f"localPort = {local}\n{where}\n{_transport(cell)}"
                         f'transport.bandwidthLimit = "1MB"\ntransport.bandwidthLimitMode = "{cell.mode}"\n')
            if cell.kind in VISITED:
                parts.append(f'[[visitors]]\nname = "v-{cell.name}"\ntype = "{cell.kind}"\nserverName = "{cell.name}"\n'
                             f'secretKey = "sk"\nbindAddr = "127.0.0.1"\nbindPort = {self.ports[cell]}\n'
                             f"{_transport(cell)}")
        return "\n".join(parts)

    @inlineCallbacks
    def runCells(self):
        """Exchange through every cell at once; fail naming every cell that failed."""
        cells = list(CELLS)
        results = yield DeferredList([self.exchange(cell) for cell in cells], consumeErrors=True)
        failed = [f"{cell.name}: {result.getErrorMessage()}"
                  for cell, (ok, result) in zip(cells, results) if not ok]
        if failed:
            self.fail(f"{len(failed)} of {len(cells)} cells failed:\n" + "\n".join(failed))

    @inlineCallbacks
    def exchange(self, cell: Cell):
        if cell.kind in ("tcp", "stcp"):
            moved = yield exchange(reactor, self.ports[cell], STREAM_BYTES, timeout=30)
            self.assertEqual(moved, STREAM_BYTES)
        elif cell.kind == "https":
            # frps routes by the ClientHello's server name and passes it on untouched: the
            # echo backend returns it, then the payload.
            hello = client_hello(f"{cell.name}.test")
            moved = yield exchange(reactor, self.httpsPort, STREAM_BYTES, timeout=30, greeting=hello, answer=hello)
            self.assertEqual(moved, STREAM_BYTES)
        elif cell.kind == "tcpmux":
            head = f"CONNECT {cell.name}.test:80 HTTP/1.1\r\nHost: {cell.name}.test:80\r\n\r\n".encode()
            moved = yield exchange(reactor, self.tcpmuxPort, STREAM_BYTES, timeout=30, greeting=head,
                                   answer=CONNECTED)
            self.assertEqual(moved, STREAM_BYTES)
        elif cell.kind in DATAGRAM_KINDS:
            yield wait_for_echo(reactor, self.ports[cell])
            echoed, lost, corrupt = yield udp_exchange(reactor, self.ports[cell], DATAGRAMS, window=4, maxSize=1200)
            # A wrong layer order loses or corrupts every datagram; UDP itself may drop a few
            # while all cells run at once on a busy machine (zero loss: test_visitor_matrix).
            self.assertEqual((corrupt, echoed + lost), (0, DATAGRAMS))
            self.assertGreater(echoed, DATAGRAMS // 2)
        else:
            body = os.urandom(HTTP_BODY)
            echoed = yield deferToThread(_httpRoundTrip, self.vhostPort, f"{cell.name}.test", body)
            self.assertEqual(hashlib.sha256(echoed).hexdigest(), hashlib.sha256(body).hexdigest())

    @inlineCallbacks
    def test_go_frpc_through_our_frps(self):
        config = parse_server_config(
            f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\n{self.frpsVhosts()}', "toml")
        config.bind_port = 0  # any free port (in a file, 0 would mean 7000)
        frps = FrpServerService(config, reactor=reactor)
        frps.startService()
        self.addCleanup(frps.stopService)
        bindPort = (yield frps.whenListening()).getHost().port
        frpc = yield GoFrp.start(reactor, "frpc", self.frpcConfig(bindPort), ready=None)
        self.addCleanup(frpc.stop)
        records = yield DeferredList([frps.whenProxyRunning(f"{USER}.{cell.name}") for cell in CELLS],
                                     fireOnOneErrback=True, consumeErrors=True)
        self.assertEqual([(record.type, record.user) for _, record in records], [(c.kind, USER) for c in CELLS])
        # frps runs a proxy before frpc has its NewProxyResp; frpc serves work connections for
        # it only from then on.
        for cell in CELLS:
            yield frpc.waitFor(f"[{USER}.{cell.name}] start proxy success")
        yield self.runCells()

    @inlineCallbacks
    def test_our_frpc_through_go_frps(self):
        bindPort = free_port()
        frps = yield GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\n'
                                                  f'auth.token = "{TOKEN}"\n{self.frpsVhosts()}')
        self.addCleanup(frps.stop)
        frpc = FrpClientService(parse_client_config(self.frpcConfig(bindPort), "toml"), reactor, onFatal=self.fail)
        frpc.startService()
        self.addCleanup(frpc.stopService)
        yield frpc.whenLoggedIn()
        yield ensureDeferred(proxiesRunning(frpc, *(cell.name for cell in CELLS)))
        yield self.runCells()
