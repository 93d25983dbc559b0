"""The real Go frpc (0.65) with a udp proxy against frptw's frps (wire-protocol.md §8).

A UDP echo server sits behind frpc; a user pumps 1000 numbered datagrams of up to 1400 bytes
through frps's remote port with at most 32 unanswered (so loopback never drops one), and every
echo must come back intact.
"""

import socket

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.support import free_port, toml, until
from tests.udptraffic import udp_exchange, udpEcho

TOKEN = "udp-interop"


class GoFrpcUDPToOurFrps(TestCase):
    timeout = 120

    async def cell(self, encryption=False, compression=False, mux=True):
        config = parse_server_config(
            f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\ntransport.tcpMux = {toml(mux)}\n', "toml"
        )
        config.bind_port = 0
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        serverPort = (await service.whenListening()).getHost().port
        remote = free_port(socket.SOCK_DGRAM)
        frpc = await GoFrp.start(
            reactor,
            "frpc",
            f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{TOKEN}"\n'
            f"transport.tcpMux = {toml(mux)}\n"
            f'[[proxies]]\nname = "dns"\ntype = "udp"\nlocalIP = "127.0.0.1"\nlocalPort = {udpEcho(self)}\n'
            f"remotePort = {remote}\ntransport.useEncryption = {toml(encryption)}\n"
            f"transport.useCompression = {toml(compression)}\n",
        )
        self.addCleanup(frpc.stop)
        await frpc.waitFor("start proxy success")
        self.assertEqual(service.proxies()["dns"].remote_addr, f":{remote}")
        self.assertEqual(await udp_exchange(reactor, remote, 1000, lossTimeout=10.0), (1000, 0, 0))
        self.assertEqual(service._liveProxies()["dns"].workConnections, 1)
        self.assertEqual(service._liveProxies()["dns"].channel.dropped, 0)
        return service, remote

    async def test_plain(self):
        await self.cell()

    async def test_encryption_and_compression(self):
        await self.cell(encryption=True, compression=True)

    async def test_without_mux(self):
        await self.cell(mux=False, encryption=True)

    async def test_broken_work_connection_is_replaced(self):
        service, remote = await self.cell()
        proxy = service._liveProxies()["dns"]
        proxy.channel.transport.abortConnection()
        # Datagrams that reach frps before it notices the loss go to the dead connection.
        await until(lambda: proxy.workConnections == 2, "frps to attach a new work connection")
        self.assertEqual(await udp_exchange(reactor, remote, 200, lossTimeout=10.0), (200, 0, 0))
        self.assertEqual(proxy.workConnections, 2)
