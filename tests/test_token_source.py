"""``auth.tokenSource`` (frp 0.65: ``type = "file"`` only, read while the configuration loads, the
file's content trimmed, and it wins over ``auth.token``), both ways with the real frp."""

import os

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import load_client_config, load_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.support import free_port, tempDir


class TokenSourceBothWays(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.directory = tempDir(self)
        self.tokenFile = os.path.join(self.directory, "token")
        with open(self.tokenFile, "w") as f:
            f.write("  from-the-file\n")

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.directory, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def source(self) -> str:
        return f'auth.token = "ignored"\nauth.tokenSource.type = "file"\nauth.tokenSource.file.path = "{self.tokenFile}"\n'

    async def test_our_frpc_with_a_token_file_go_frps(self) -> None:
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.token = "from-the-file"\n')
        self.addCleanup(frps.stop)
        config = load_client_config(self.write("frpc.toml", f'serverAddr = "127.0.0.1"\nserverPort = {port}\n'
                                                            + self.source()))
        self.assertEqual(config.auth.token, "from-the-file")
        service = FrpClientService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenLoggedIn()

    async def test_go_frpc_with_a_token_file_our_frps(self) -> None:
        config = load_server_config(self.write("frps.toml", 'bindAddr = "127.0.0.1"\n' + self.source()))
        config.bind_port = 0
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = (await service.whenListening()).getHost().port
        frpc = await GoFrp.start(reactor, "frpc", f'serverAddr = "127.0.0.1"\nserverPort = {port}\n' + self.source(),
                                 ready="login to server success")
        self.addCleanup(frpc.stop)
