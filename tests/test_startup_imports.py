"""Start-up imports only what the process uses (issue: startup time and idle memory).

A fresh interpreter imports what ``twistd frps`` / ``twistd frpc`` import for a plain config and
must not load the modules that only some configurations need: the vhosts and h11, the
compression codecs, PyYAML and the Go-template engine.
"""

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

#: Loaded only by configs (or proxies) that use them.
OPTIONAL = ("h11", "yaml", "frptw.config.template", "frptw.config.goyaml", "frptw.wire.snappy", "frptw.wire.lz4",
            "frptw.server.vhost.http", "frptw.server.vhost.https", "frptw.server.vhost.tcpmux", "twisted.web.client",
            "aioquic", "frptw.transport.quic", "frptw.server.plugin_http", "frptw.transport.kcp",
            "frptw.wire.reedsolomon", "autobahn", "frptw.transport.websocket", "frptw.wire.tunnels",
            "frptw.server.dashboard", "prometheus_client")


def loadedAfter(code: str) -> list:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {OPTIONAL!r} if m in sys.modules))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()


class StartupImportTests(SynchronousTestCase):
    def test_frps(self) -> None:
        self.assertEqual(loadedAfter(
            "from frptw.tap import makeService\nimport frptw.server.service\n"
            "from frptw.config import parse_server_config\n"
            "from frptw.server import FrpServerService\n"
            "FrpServerService(parse_server_config('bindPort = 7000', 'toml'))"), [])

    def test_frpc(self) -> None:
        self.assertEqual(loadedAfter(
            "from frptw.tap import makeService\nimport frptw.client\n"
            "from frptw.config import parse_client_config\n"
            "parse_client_config('serverPort = 7000\\n[[proxies]]\\nname = \"a\"\\ntype = \"tcp\"\\nlocalPort = 22\\n'"
            ", 'toml')"), [])

    def test_plugin_client_loads_when_plugins_are_configured(self) -> None:
        loaded = loadedAfter("from frptw.config import parse_server_config\nfrom frptw.server import FrpServerService\n"
                             "FrpServerService(parse_server_config('[[httpPlugins]]\\nname = \"p\"\\n"
                             "addr = \"127.0.0.1:9\"\\npath = \"/\"\\nops = [\"Login\"]', 'toml'))")
        self.assertEqual(loaded, ["twisted.web.client", "frptw.server.plugin_http"])

    def test_vhosts_load_when_configured(self) -> None:
        loaded = loadedAfter("from frptw.config import parse_server_config\nfrom frptw.server import FrpServerService\n"
                             "FrpServerService(parse_server_config('vhostHTTPPort = 8080', 'toml'))")
        self.assertIn("h11", loaded)
        self.assertIn("frptw.server.vhost.http", loaded)

    def test_websocket_and_tunnels_load_when_configured(self) -> None:
        loaded = loadedAfter("from frptw.config import parse_client_config\nfrom frptw.client import FrpClientService\n"
                             "FrpClientService(parse_client_config('transport.protocol = \"websocket\"\\n"
                             "transport.proxyURL = \"socks5://127.0.0.1:1080\"', 'toml'))")
        self.assertEqual(loaded, ["h11", "autobahn", "frptw.transport.websocket", "frptw.wire.tunnels"])
