"""frp's websocket and wss transports, against the real frp 0.65 both ways and frptw alone.

Every cell starts an frps (Go or ours) and an frpc (Go or ours) with ``transport.protocol``
``websocket`` or ``wss`` and tcpMux on or off, registers a tcp proxy in front of an echo
server and moves 20 x 420 KiB (8.2 MiB) each way through it, checking the sha256 of every
echoed stream.  wss goes through a TLS terminator in front of frps (Go frps cannot terminate
wss itself, wire-protocol.md §2.6; frptw's frps does as frp does), with the terminator's
certificate verified by frpc, so frpc really spoke TLS to it with the configured server name.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from tests.gofrp import GoFrp
from tests.interop import ourFrps
from tests.relays import tlsTerminator
from tests.support import free_port, toml
from tests.traffic import EchoServer, exchange

TOKEN = "ws-token"
CONNECTIONS = 20
PER_CONNECTION = 420 * 1024  # 20 x 420 KiB = 8.2 MiB each way
SERVER_NAME = "frps.test"


class WebSocketCells:
    """For a TestCase: one frps and one frpc, each Go or ours, and the traffic between them."""

    timeout = 120

    async def frps(self, kind: str, mux: bool, extra: str = "") -> int:
        """Start frps; its bind port."""
        if kind == "go":
            port = free_port()
            frps = await GoFrp.start(
                reactor, "frps",
                f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "{TOKEN}"\n'
                f"transport.tcpMux = {toml(mux)}\n{extra}\n",
            )
            self.addCleanup(frps.stop)
            return port
        return await ourFrps(self, f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\ntransport.tcpMux = {toml(mux)}\n{extra}\n')

    async def frpc(self, kind: str, serverPort: int, protocol: str, mux: bool, localPort: int, remotePort: int,
                   extra: str = "", proxyExtra: str = ""):
        text = (
            f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\n'
            f'transport.protocol = "{protocol}"\ntransport.tcpMux = {toml(mux)}\n{extra}\n'
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
            f"remotePort = {remotePort}\n{proxyExtra}\n"
        )
        if kind == "go":
            frpc = await GoFrp.start(reactor, "frpc", text, ready="start proxy success")
            self.addCleanup(frpc.stop)
            return frpc
        service = FrpClientService(parse_client_config(text, "toml"), reactor, onFatal=self.fail)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenProxyRunning("echo")
        return service

    async def cell(self, frps: str, frpc: str, protocol: str, mux: bool = True, extra: str = "",
                   proxyExtra: str = "", frpsExtra: str = "") -> None:
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        port = await self.frps(frps, mux, frpsExtra)
        terminator = None
        if protocol == "wss":
            terminator, caFile = await tlsTerminator(self, port, SERVER_NAME)
            port = terminator.port
            extra += f'\ntransport.tls.serverName = "{SERVER_NAME}"\ntransport.tls.trustedCaFile = "{caFile}"\n'
        remote = free_port()
        await self.frpc(frpc, port, protocol, mux, echo.port, remote, extra, proxyExtra)
        total = await exchange(reactor, remote, PER_CONNECTION, connections=CONNECTIONS)
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)
        if terminator is not None:
            # The control connection, and without mux the work connections too, went through it.
            self.assertGreaterEqual(len(terminator.connections), 1 if mux else 1 + CONNECTIONS)


class WebSocketMatrix(WebSocketCells, TestCase):
    """Go frps with our frpc, Go frpc with our frps, ours with ours; websocket and wss; mux on, off."""


def _add(name: str, frps: str, frpc: str, protocol: str, mux: bool) -> None:
    async def test(self) -> None:
        await self.cell(frps, frpc, protocol, mux)

    test.__name__ = name
    setattr(WebSocketMatrix, name, test)


for _frps, _frpc in (("go", "ours"), ("ours", "go"), ("ours", "ours")):
    for _protocol in ("websocket", "wss"):
        for _mux in (True, False):
            _add(f"test_{_protocol}_{_frpc}_frpc_{_frps}_frps_mux_{'on' if _mux else 'off'}", _frps, _frpc, _protocol,
                 _mux)


class WebSocketVariants(WebSocketCells, TestCase):
    """The layers above the websocket are those of tcp: TLS off, the 0x17 byte, encryption and
    compression, a work-connection pool."""

    async def test_plain_inside_websocket_encrypted_compressed_go_frps(self) -> None:
        await self.cell("go", "ours", "websocket", extra="transport.tls.enable = false\ntransport.poolCount = 3",
                        proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    async def test_plain_inside_websocket_encrypted_compressed_go_frpc(self) -> None:
        await self.cell("ours", "go", "websocket", mux=False, extra="transport.tls.enable = false",
                        proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    async def test_custom_first_byte_inside_websocket_go_frps(self) -> None:
        await self.cell("go", "ours", "websocket", extra="transport.tls.disableCustomTLSFirstByte = false")

    async def test_custom_first_byte_inside_websocket_go_frpc(self) -> None:
        await self.cell("ours", "go", "websocket", extra="transport.tls.disableCustomTLSFirstByte = false")

    async def test_wss_encrypted_compressed_pool_go_frps(self) -> None:
        await self.cell("go", "ours", "wss", mux=False, extra="transport.poolCount = 3",
                        proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    async def test_wss_encrypted_compressed_pool_go_frpc(self) -> None:
        await self.cell("ours", "go", "wss", extra="transport.poolCount = 3",
                        proxyExtra="transport.useEncryption = true\ntransport.useCompression = true")

    async def test_tls_force_is_met_inside_websocket(self) -> None:
        await self.cell("ours", "go", "websocket", frpsExtra="transport.tls.force = true")
