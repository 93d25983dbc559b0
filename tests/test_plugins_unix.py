"""``unix_domain_socket`` between real programs: our frpc behind the Go frps, the Go frpc
behind our frps, the Go pair as reference; PROXY headers; a socket nobody listens on."""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client.proxyprotocol import V2_SIGNATURE
from tests.badinput import Probe, connectRaw
from tests.plugintraffic import GO_BEHIND_GO, GO_BEHIND_OURS, OURS_BEHIND_GO, PluginRigMixin, Recorder, socketPath, talk
from tests.support import LogCapture, free_port, until
from tests.traffic import EchoServer, exchange


def udsProxy(name: str, path: str, remotePort: int, extra: str = "") -> str:
    return f"""
[[proxies]]
name = "{name}"
type = "tcp"
remotePort = {remotePort}
{extra}
[proxies.plugin]
type = "unix_domain_socket"
unixPath = "{path}"
"""


class UnixSocketInteropTests(PluginRigMixin, TestCase):
    async def traffic(self, rig, extra: str = "") -> None:
        path = socketPath(self)
        echo = EchoServer()
        port = reactor.listenUNIX(path, echo)
        self.addCleanup(port.stopListening)
        remote = free_port()
        await self.rig(rig, udsProxy("uds", path, remote, extra), ["uds"])
        self.assertEqual(await exchange(reactor, remote, 256 * 1024, 8), 8 * 256 * 1024)

    def test_ours_behind_go_frps(self):
        return self.traffic(OURS_BEHIND_GO)

    def test_go_behind_our_frps(self):
        return self.traffic(GO_BEHIND_OURS)

    def test_ours_with_encryption_and_compression(self):
        """The plugin gets the plaintext: the data plane is stacked before it."""
        return self.traffic(OURS_BEHIND_GO, "transport.useEncryption = true\ntransport.useCompression = true")

    async def proxyHeader(self, rig, version: str) -> bytes:
        path = socketPath(self)
        backend = Recorder()
        port = reactor.listenUNIX(path, backend)
        self.addCleanup(port.stopListening)
        remote = free_port()
        await self.rig(rig, udsProxy("uds", path, remote, f'transport.proxyProtocolVersion = "{version}"'), ["uds"])
        user = await talk(self, remote, b"hello")
        await until(lambda: backend.received() and backend.received()[0].endswith(b"hello"), "the backend's bytes")
        [received] = backend.received()
        return received[:-5], user.transport.getHost().port

    async def test_proxy_protocol_headers_as_go(self):
        for version in ("v1", "v2"):
            ours, oursPort = await self.proxyHeader(OURS_BEHIND_GO, version)
            go, goPort = await self.proxyHeader(GO_BEHIND_GO, version)
            if version == "v1":
                self.assertEqual(ours.split(b" ")[:4], go.split(b" ")[:4])
                self.assertEqual(ours.split(b" ")[4], str(oursPort).encode())
            else:
                self.assertTrue(ours.startswith(V2_SIGNATURE))
                self.assertEqual((len(ours), ours[:16]), (len(go), go[:16]))
                self.assertEqual(int.from_bytes(ours[24:26], "big"), oursPort)

    async def test_ini_plugin_keys(self):
        path = socketPath(self)
        port = reactor.listenUNIX(path, EchoServer())
        self.addCleanup(port.stopListening)
        for rig in (OURS_BEHIND_GO, GO_BEHIND_OURS):
            remote = free_port()
            ini = f"[uds]\ntype = tcp\nremote_port = {remote}\nplugin = unix_domain_socket\nplugin_unix_path = {path}\n"
            await self.rig(rig, ini, ["uds"], fmt="ini")
            self.assertEqual(await exchange(reactor, remote, 64 * 1024, 2), 2 * 64 * 1024)

    async def test_nobody_listening_closes_that_connection_only(self):
        """A socket path without a server: one warning, that user connection closed; the
        proxy keeps serving once the server is there."""
        logs = LogCapture(self)
        path = socketPath(self)
        remote = free_port()
        await self.rig(OURS_BEHIND_GO, udsProxy("uds", path, remote), ["uds"])
        probe = await connectRaw(self, remote, Probe())
        probe.transport.write(b"anyone?")
        await probe.closed
        self.assertEqual(probe.received, b"")
        await until(lambda: any("dial to uds" in line for line in logs.texts()), "the warning")
        [line] = [line for line in logs.texts() if "dial to uds" in line]
        self.assertIn(f"[uds] dial to uds {path} error:", line)
        port = reactor.listenUNIX(path, EchoServer())
        self.addCleanup(port.stopListening)
        self.assertEqual(await exchange(reactor, remote, 64 * 1024, 4), 4 * 64 * 1024)
