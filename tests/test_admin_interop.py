"""frpc's admin API and CLI across implementations, and hot reload on real sockets.

* the real Go ``frpc status|reload|stop -c F`` against our frpc's admin API;
* our ``frptw status|reload|stop --config F`` against the real Go frpc's admin API, printing
  byte for byte what Go's own command prints;
* hot reload (admin API and SIGHUP) keeps a user connection through an unchanged proxy open,
  with our frps and with the real Go frps.
"""

import os
import signal

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import TestCase

from frptw.client import AdminService, FrpClientService, Reloader
from frptw.config import load_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.tap.hangup import HangupReload
from tests.commands import frptwCli, goFrpc
from tests.gofrp import GoFrp
from tests.support import free_port, proxiesRunning, tempDir, until
from tests.traffic import EchoServer


def tcp(name: str, localPort: int, remotePort: int, extra: str = "") -> str:
    return (f'[[proxies]]\nname = "{name}"\ntype = "tcp"\nlocalIP = "127.0.0.1"\nlocalPort = {localPort}\n'
            f"remotePort = {remotePort}\n{extra}\n")


class _Talker(Protocol):
    """A user connection: what came back so far."""

    def __init__(self) -> None:
        self.received = b""
        self.lost = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason) -> None:
        self.lost.callback(None)


class _AdminCase(TestCase):
    timeout = 90

    async def ourFrps(self) -> int:
        config = parse_server_config('bindAddr = "127.0.0.1"\nauth.token = "abc"\n', "toml")
        config.bind_port = free_port()
        server = FrpServerService(config)
        server.startService()
        self.addCleanup(server.stopService)
        await server.whenListening()
        return config.bind_port

    async def goFrps(self) -> int:
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "abc"\n')
        self.addCleanup(frps.stop)
        return port

    async def echo(self) -> EchoServer:
        server = await EchoServer.listen(reactor)
        self.addCleanup(server.stop)
        return server

    def common(self, frpsPort: int, adminPort: int, password: str = "pw") -> str:
        return (f'serverAddr = "127.0.0.1"\nserverPort = {frpsPort}\nauth.token = "abc"\nuser = "u"\n'
                f'loginFailExit = false\nwebServer.addr = "127.0.0.1"\nwebServer.port = {adminPort}\n'
                f'webServer.user = "admin"\nwebServer.password = "{password}"\n')

    def writeFile(self, text: str) -> str:
        path = getattr(self, "path", None) or os.path.join(tempDir(self), "frpc.toml")
        self.path = path
        with open(path, "w") as f:
            f.write(text)
        return path

    async def ourFrpc(self, text: str) -> FrpClientService:
        """Our frpc from a file, with its admin server and the SIGHUP reload, as twistd runs it."""
        path = self.writeFile(text)
        client = FrpClientService(load_client_config(path), reactor)
        self.reloader = Reloader(client, path)
        self.stops = []
        admin = AdminService(client, self.reloader, reactor, onStop=lambda: self.stops.append(1))
        hangup = HangupReload(self.reloader, reactor)
        for service in (client, admin, hangup):
            service.startService()
            self.addCleanup(service.stopService)
        await admin.listening
        await client.whenLoggedIn()
        return client

    async def connect(self, port: int) -> _Talker:
        talker = _Talker()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), talker)
        self.addCleanup(lambda: talker.transport.abortConnection())
        return talker

    async def echoes(self, talker: _Talker, data: bytes) -> None:
        expected = talker.received + data
        talker.transport.write(data)
        await until(lambda: talker.received == expected, f"{data!r} echoed")


class GoCliAgainstOurAdmin(_AdminCase):
    """The real Go frpc as the command line, our frpc's admin API as the server."""

    async def setUp(self) -> None:
        echo = await self.echo()
        self.echoPort = echo.port
        self.frpsPort, self.adminPort = await self.ourFrps(), free_port()
        self.remote = free_port()
        self.client = await self.ourFrpc(self.common(self.frpsPort, self.adminPort)
                                         + tcp("echo", echo.port, self.remote))
        await proxiesRunning(self.client, "echo")

    async def test_status(self) -> None:
        go = await goFrpc("status", "-c", self.path)
        self.assertEqual((go.code, go.err), (0, ""), go.out)
        row = f"u.echo  running  127.0.0.1:{self.echoPort}          127.0.0.1:{self.remote}         "
        self.assertEqual(go.out.splitlines()[:5], ["Proxy Status...", "", "TCP", go.out.splitlines()[3], row])
        ours = await frptwCli("status", "--config", self.path)
        self.assertEqual((ours.code, ours.out), (0, go.out))

    async def test_reload(self) -> None:
        other = free_port()
        self.writeFile(self.common(self.frpsPort, self.adminPort) + tcp("echo", self.echoPort, self.remote)
                       + tcp("more", self.echoPort, other))
        go = await goFrpc("reload", "-c", self.path)
        self.assertEqual((go.code, go.out), (0, "reload success\n"))
        await proxiesRunning(self.client, "echo", "more")

    async def test_stop(self) -> None:
        go = await goFrpc("stop", "-c", self.path)
        self.assertEqual((go.code, go.out), (0, "stop success\n"))
        self.assertEqual(self.stops, [1])

    async def test_wrongPassword(self) -> None:
        wrong = os.path.join(tempDir(self), "wrong.toml")
        with open(wrong, "w") as f:
            f.write(self.common(self.frpsPort, self.adminPort, password="nope"))
        for command in ("status", "reload", "stop"):
            go = await goFrpc(command, "-c", wrong)
            self.assertEqual((go.code, go.out), (1, "api status code [401]\n"), command)
            ours = await frptwCli(command, "--config", wrong)
            self.assertEqual((ours.code, ours.out), (1, "api status code [401]\n"), command)
        self.assertEqual(self.stops, [])


class OurCliAgainstGoFrpc(_AdminCase):
    """Our command line against the real Go frpc's admin API: the same output as Go's own."""

    async def setUp(self) -> None:
        echo = await self.echo()
        self.echoPort = echo.port
        self.frpsPort, self.adminPort = await self.goFrps(), free_port()
        taken = free_port()
        self.body = (tcp("b-echo", echo.port, taken) + tcp("a-echo", echo.port, free_port())
                     + tcp("refused", echo.port, taken, "transport.useEncryption = true"))
        self.frpc = await GoFrp.start(reactor, "frpc", self.common(self.frpsPort, self.adminPort) + self.body,
                                      ready="admin server listen on")
        self.addCleanup(self.frpc.stop)
        self.goPath = os.path.join(os.path.dirname(self.frpc.config_path), "frpc.toml")
        await self.frpc.waitFor("start error", timeout=15)
        await self.frpc.waitFor("start proxy success", count=2, timeout=15)

    async def test_statusSameAsGo(self) -> None:
        go = await goFrpc("status", "-c", self.goPath)
        ours = await frptwCli("status", "--config", self.goPath)
        self.assertEqual(go.code, 0, go.out)
        self.assertIn("u.a-echo", go.out)
        self.assertEqual((ours.code, ours.out, ours.err), (0, go.out, ""))

    async def test_reloadAndStop(self) -> None:
        ours = await frptwCli("reload", "--config", self.goPath)
        self.assertEqual((ours.code, ours.out), (0, "reload success\n"))
        await self.frpc.waitFor("success reload conf")
        ours = await frptwCli("stop", "--config", self.goPath)
        self.assertEqual((ours.code, ours.out), (0, "stop success\n"))
        await until(lambda: self.frpc.exitReason is not None, "Go frpc to exit", timeout=10)
        self.assertEqual(self.frpc.exitReason.value.exitCode, 0)

    async def test_noAdminPort(self) -> None:
        path = os.path.join(tempDir(self), "plain.toml")
        with open(path, "w") as f:
            f.write('serverAddr = "127.0.0.1"\nserverPort = 7000\n')
        expected = "web server port should be set if you want to use this feature\n"
        for run in (goFrpc("status", "-c", path), frptwCli("status", "--config", path)):
            result = await run
            self.assertEqual((result.code, result.out), (1, expected))

    async def test_nothingListening(self) -> None:
        path = os.path.join(tempDir(self), "gone.toml")
        with open(path, "w") as f:
            f.write(self.common(self.frpsPort, free_port()))
        ours = await frptwCli("status", "--config", path)
        self.assertEqual(ours.code, 1)
        self.assertIn("connection refused", ours.out)


class HotReloadKeepsConnections(_AdminCase):
    """An open user connection through an unchanged proxy survives a reload that removes,
    changes and adds other proxies."""

    async def scenario(self, frpsPort: int, how: str) -> None:
        echo = await self.echo()
        keep, change, changed, added = free_port(), free_port(), free_port(), free_port()
        adminPort = free_port()
        client = await self.ourFrpc(self.common(frpsPort, adminPort) + tcp("keep", echo.port, keep)
                                    + tcp("change", echo.port, change) + tcp("gone", echo.port, free_port()))
        await proxiesRunning(client, "keep", "change", "gone")
        talker = await self.connect(keep)
        await self.echoes(talker, b"before the reload\n")
        self.writeFile(self.common(frpsPort, adminPort) + tcp("keep", echo.port, keep)
                       + tcp("change", echo.port, changed) + tcp("added", echo.port, added))
        if how == "sighup":
            os.kill(os.getpid(), signal.SIGHUP)
        else:
            result = await frptwCli("reload", "--config", self.path)
            self.assertEqual((result.code, result.out), (0, "reload success\n"))
        await until(lambda: "added" in client.proxyConfigs(), "the reload")
        await proxiesRunning(client, "keep", "change", "added")
        self.assertNotIn("gone", client.proxyConfigs())
        self.assertFalse(talker.lost.called)
        await self.echoes(talker, b"after the reload\n")
        for port in (changed, added):
            await self.echoes(await self.connect(port), b"new proxy\n")

    async def test_adminApiOurFrps(self) -> None:
        await self.scenario(await self.ourFrps(), "api")

    async def test_adminApiGoFrps(self) -> None:
        await self.scenario(await self.goFrps(), "api")

    async def test_sighupOurFrps(self) -> None:
        await self.scenario(await self.ourFrps(), "sighup")

    async def test_brokenFileKeepsEverything(self) -> None:
        frpsPort = await self.ourFrps()
        echo = await self.echo()
        keep, adminPort = free_port(), free_port()
        client = await self.ourFrpc(self.common(frpsPort, adminPort) + tcp("keep", echo.port, keep))
        await proxiesRunning(client, "keep")
        talker = await self.connect(keep)
        await self.echoes(talker, b"one\n")
        self.writeFile(self.common(frpsPort, adminPort) + '[[proxies]]\nname = "x"\ntype = "bogus"\n')
        with self.assertRaises(Exception):
            await self.reloader.reload(False)
        self.assertEqual(list(client.proxyConfigs()), ["keep"])
        await self.echoes(talker, b"two\n")
