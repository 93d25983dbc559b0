"""Interop: the real Go frpc (0.65.0) logs in to our in-process frps and carries checked traffic.

Each cell of the matrix starts our FrpServerService on 127.0.0.1 (bind port 0), the real frpc
as a subprocess with a tcp proxy in front of an echo server, and moves more than 8 MiB each way
over 52 concurrent connections, checking sha256 of every echoed stream.
"""


from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.pki import CLIENT_AUTH, SERVER_AUTH, TestCA
from tests.support import free_port, tempDir, toml
from tests.traffic import EchoServer, exchange

TOKEN = "interop-token"
CONNECTIONS = 52
PER_CONNECTION = 160 * 1024  # 52 x 160 KiB > 8 MiB each way


class GoFrpcToOurFrps(TestCase):
    timeout = 180

    async def startServer(self, mux=True, port=0, extra=""):
        config = parse_server_config(
            f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\ntransport.tcpMux = {toml(mux)}\n{extra}', "toml"
        )
        config.bind_port = port  # 0: any free port (in a file, 0 would mean 7000)
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        listening = await service.whenListening()
        return service, listening.getHost().port

    async def startClient(self, serverPort, echoPort, remotePort, *, token=TOKEN, mux=True, tls=True,
                          customFirstByte=False, encryption=False, compression=False, ready="default",
                          loginFailExit=True, extra=""):
        config = (
            f'serverAddr = "127.0.0.1"\nserverPort = {serverPort}\nauth.token = "{token}"\n'
            f"loginFailExit = {toml(loginFailExit)}\n{extra}"
            f"transport.tcpMux = {toml(mux)}\ntransport.tls.enable = {toml(tls)}\n"
            f"transport.tls.disableCustomTLSFirstByte = {toml(not customFirstByte)}\n"
            f'[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {echoPort}\n'
            f"remotePort = {remotePort}\n"
            f"transport.useEncryption = {toml(encryption)}\ntransport.useCompression = {toml(compression)}\n"
        )
        frpc = await GoFrp.start(reactor, "frpc", config, ready=ready)
        self.addCleanup(frpc.stop)
        return frpc

    async def echo(self):
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        return echo

    async def cell(self, mux=True, **client):
        echo = await self.echo()
        service, port = await self.startServer(mux=mux)
        remote = free_port()
        frpc = await self.startClient(port, echo.port, remote, mux=mux, **client)
        await frpc.waitFor("start proxy success")
        self.assertIn("echo", service.proxies())
        total = await exchange(reactor, remote, PER_CONNECTION, connections=CONNECTIONS)
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)
        return service, frpc, remote

    async def test_defaults_tls_and_mux(self):
        service, _, remote = await self.cell()
        # The snapshots describe the real frpc as frp's dashboard would (control over yamux+TLS).
        proxy = service.proxies()["echo"]
        self.assertEqual((proxy.type, proxy.remote_port, proxy.client_version), ("tcp", remote, "0.65.0"))
        [client] = service.clients().values()
        self.assertEqual((client.run_id, client.version, client.client_ip, client.proxy_count, client.key),
                         (proxy.run_id, "0.65.0", "127.0.0.1", 1, proxy.run_id))
        # One long stream too: several yamux windows, backpressure through TLS.
        self.assertEqual(await exchange(reactor, remote, 8 * 1024 * 1024, connections=1), 8 * 1024 * 1024)

    async def test_tls_off(self):
        await self.cell(tls=False)

    async def test_mux_off(self):
        await self.cell(mux=False)

    async def test_use_encryption(self):
        await self.cell(encryption=True)

    async def test_use_compression(self):
        await self.cell(compression=True)

    async def test_encryption_and_compression(self):
        await self.cell(encryption=True, compression=True)

    async def test_custom_tls_first_byte(self):
        await self.cell(customFirstByte=True)

    async def test_wrong_token(self):
        service, port = await self.startServer()
        frpc = await self.startClient(port, free_port(), free_port(), token="not-the-token", ready=None)
        await frpc.waitFor("token in login doesn't match token from configuration")
        self.assertEqual(dict(service.clients()), {})

    async def test_auth_scopes_and_heartbeats(self):
        """Ping/Pong every second and authenticated work connections, tcpMux off."""
        scopes = 'auth.additionalScopes = ["HeartBeats", "NewWorkConns"]\n'
        echo = await self.echo()
        service, port = await self.startServer(mux=False, extra=scopes + "transport.heartbeatTimeout = 3\n")
        remote = free_port()
        frpc = await self.startClient(port, echo.port, remote, mux=False, extra=scopes
                                      + "transport.heartbeatInterval = 1\ntransport.heartbeatTimeout = 3\n"
                                      + 'log.level = "debug"\n')
        await frpc.waitFor("start proxy success")
        # Four Pongs span more than the 3 s heartbeat timeout of either side.
        await frpc.waitFor("receive heartbeat from server", timeout=10, count=4)
        self.assertEqual(frpc.output.count("login to server success"), 1, frpc.output)
        self.assertEqual(len(service.clients()), 1)
        total = await exchange(reactor, remote, 256 * 1024, connections=8)
        self.assertEqual(total, 8 * 256 * 1024)

    async def test_mutual_tls(self):
        """frps with a trusted CA: a client certificate is required (and TLS forced); the
        client verifies the server's certificate too."""
        authority = TestCA(tempDir(self))
        serverCert, serverKey = authority.issueFiles("frps.test", dnsNames=["frps.test"], usage=SERVER_AUTH)
        clientCert, clientKey = authority.issueFiles("frpc", dnsNames=["frpc"], usage=CLIENT_AUTH)
        echo = await self.echo()
        _, port = await self.startServer(extra=(
            f'transport.tls.certFile = "{serverCert}"\ntransport.tls.keyFile = "{serverKey}"\n'
            f'transport.tls.trustedCaFile = "{authority.ca}"\n'))
        remote = free_port()
        frpc = await self.startClient(port, echo.port, remote, extra=(
            f'transport.tls.certFile = "{clientCert}"\ntransport.tls.keyFile = "{clientKey}"\n'
            f'transport.tls.trustedCaFile = "{authority.ca}"\ntransport.tls.serverName = "frps.test"\n'))
        await frpc.waitFor("start proxy success")
        self.assertEqual(await exchange(reactor, remote, 64 * 1024, connections=4), 4 * 64 * 1024)
        # Without a client certificate, or without TLS, the same server refuses the login.
        anonymous = await self.startClient(port, echo.port, free_port(), ready=None)
        plain = await self.startClient(port, echo.port, free_port(), tls=False, ready=None)
        for refused in (anonymous, plain):
            await refused.waitFor("login to the server failed")

    async def test_stcp_visitor_to_owner(self):
        """Go frpc (visitor, user bob) -> our frps -> Go frpc (owner of an stcp proxy, user
        alice); both legs encrypted and compressed, with different keys (sk, token)."""
        echo = await self.echo()
        _, port = await self.startServer()
        common = f'serverAddr = "127.0.0.1"\nserverPort = {port}\nauth.token = "{TOKEN}"\n'
        owner = await GoFrp.start(reactor, "frpc", common + (
            'user = "alice"\n[[proxies]]\nname = "secret"\ntype = "stcp"\nsecretKey = "sk1"\n'
            f'allowUsers = ["bob"]\nlocalIP = "127.0.0.1"\nlocalPort = {echo.port}\n'
            "transport.useEncryption = true\ntransport.useCompression = true\n"))
        self.addCleanup(owner.stop)
        await owner.waitFor("start proxy success")
        visitorPort = free_port()
        visitor = await GoFrp.start(reactor, "frpc", common + (
            'user = "bob"\n[[visitors]]\nname = "v"\ntype = "stcp"\nserverName = "secret"\n'
            f'serverUser = "alice"\nsecretKey = "sk1"\nbindAddr = "127.0.0.1"\nbindPort = {visitorPort}\n'
            "transport.useEncryption = true\ntransport.useCompression = true\n"))
        self.addCleanup(visitor.stop)
        await visitor.waitFor("start visitor success")
        total = await exchange(reactor, visitorPort, PER_CONNECTION, connections=CONNECTIONS)
        self.assertEqual(total, CONNECTIONS * PER_CONNECTION)

    async def test_frps_restart_while_frpc_runs(self):
        echo = await self.echo()
        bindPort, remote = free_port(), free_port()
        first, _ = await self.startServer(port=bindPort)
        frpc = await self.startClient(bindPort, echo.port, remote, loginFailExit=False)
        await frpc.waitFor("start proxy success")
        await exchange(reactor, remote, 256 * 1024, connections=4)
        await first.stopService()
        await self.startServer(port=bindPort)
        await frpc.waitFor("start proxy success", timeout=30, count=2)
        total = await exchange(reactor, remote, 256 * 1024, connections=4)
        self.assertEqual(total, 4 * 256 * 1024)
