"""xtcp through real NATs (network namespaces, tests/netns.py): P2P between Go and frptw peers
through Go frps and frptw frps, with proof that the bytes went around frps; symmetric NATs fall
back to stcp."""

from twisted.trial.unittest import TestCase

from tests.natlab import ECHO_PORT, SK, STCP_PORT, XTCP_PORT, NatLabMixin

SIZE = 8 * 1024 * 1024

#: The data plane both peers stack on the P2P stream (frp keys it with the secret key).
LAYERS = "transport.useEncryption = true\ntransport.useCompression = true"


def ownerConfig(extra: str = "") -> str:
    return f"""
[[proxies]]
name = "p2p"
type = "xtcp"
secretKey = "{SK}"
localIP = "127.0.0.1"
localPort = {ECHO_PORT}
{extra}

[[proxies]]
name = "relay"
type = "stcp"
secretKey = "{SK}"
localIP = "127.0.0.1"
localPort = {ECHO_PORT}
"""


def visitorConfig(extra: str = "") -> str:
    return f"""
[[visitors]]
name = "p2p-visitor"
type = "xtcp"
serverName = "p2p"
secretKey = "{SK}"
bindAddr = "127.0.0.1"
bindPort = {XTCP_PORT}
{extra}

[[visitors]]
name = "relay-visitor"
type = "stcp"
serverName = "relay"
secretKey = "{SK}"
bindAddr = "127.0.0.1"
bindPort = {STCP_PORT}
"""


class ConeNatTests(NatLabMixin, TestCase):
    """Both peers behind port-preserving NATs: frp punches through."""

    async def p2p(self, frps: str, own: str, visit: str, protocol: str = "quic", layers: str = "") -> None:
        await self.startLab()
        server = await self.frps(frps)
        await self.echo()
        await self.frpc(own, "owner", ownerConfig(layers), ready="start proxy success")
        await self.frpc(visit, "visitor", visitorConfig(f'protocol = "{protocol}"\n{layers}'), ready="start visitor success")
        before = self.lab.counterBytes("server")
        report = await self.send(XTCP_PORT, SIZE)
        self.assertEqual(report["sent"], report["received"])
        p2p = self.lab.counterBytes("p2p")
        through = self.lab.counterBytes("server") - before
        self.assertGreater(p2p, 2 * SIZE, "the data did not cross between the NATs")
        self.assertLess(through, 256 * 1024, f"{through} bytes went to frps")
        await server.waitFor("report make hole success: true, mode 0, index 0")

    async def test_go_peers_through_our_frps(self):
        await self.p2p("ours", "go", "go")

    async def test_go_peers_through_go_frps(self):
        await self.p2p("go", "go", "go")

    async def test_our_owner_go_visitor_through_go_frps(self):
        await self.p2p("go", "ours", "go")

    async def test_go_owner_our_visitor_through_go_frps(self):
        await self.p2p("go", "go", "ours")

    async def test_our_peers_through_go_frps(self):
        await self.p2p("go", "ours", "ours")

    async def test_our_owner_go_visitor_through_our_frps(self):
        await self.p2p("ours", "ours", "go")

    async def test_go_owner_our_visitor_through_our_frps(self):
        await self.p2p("ours", "go", "ours")

    async def test_our_peers_through_our_frps(self):
        await self.p2p("ours", "ours", "ours")

    async def test_kcp_our_owner_go_visitor(self):
        await self.p2p("ours", "ours", "go", "kcp")

    async def test_kcp_go_owner_our_visitor(self):
        await self.p2p("go", "go", "ours", "kcp")

    async def test_kcp_our_peers(self):
        await self.p2p("ours", "ours", "ours", "kcp")

    async def test_encrypted_compressed_our_owner_go_visitor(self):
        await self.p2p("ours", "ours", "go", layers=LAYERS)

    async def test_encrypted_compressed_go_owner_our_visitor(self):
        await self.p2p("go", "go", "ours", "kcp", layers=LAYERS)


class SymmetricNatTests(NatLabMixin, TestCase):
    """Both peers behind NATs that pick a random port per destination: punching fails as in
    frp, and the visitor hands the connection to its stcp fallback."""

    symmetric = True

    async def fallback(self, frps: str, owner: str, visit: str) -> None:
        await self.startLab()
        await self.frps(frps)
        await self.echo()
        await self.frpc(owner, "owner", ownerConfig(), ready="start proxy success")
        client = await self.frpc(visit, "visitor", visitorConfig('fallbackTo = "relay-visitor"\nfallbackTimeoutMs = 1000'),
                        ready="start visitor success")
        report = await self.send(XTCP_PORT, 64 * 1024)
        self.assertEqual(report["sent"], report["received"])
        self.assertLess(float(report["first"]), 2.0)
        self.assertGreaterEqual(float(report["first"]), 1.0)
        await client.waitFor("make hole error")

    async def test_go_peers_through_our_frps(self):
        await self.fallback("ours", "go", "go")

    async def test_go_owner_our_visitor_through_go_frps(self):
        await self.fallback("go", "go", "ours")

    async def test_our_peers_through_our_frps(self):
        await self.fallback("ours", "ours", "ours")


class KeepTunnelOpenTests(NatLabMixin, TestCase):
    """keep_tunnel_open: the visitor punches at start, and later user connections reuse the
    one tunnel."""

    async def test_later_connections_reuse_the_tunnel(self):
        await self.startLab()
        server = await self.frps("ours")
        await self.echo()
        owner = await self.frpc("ours", "owner", ownerConfig(), ready="start proxy success")
        await self.frpc("ours", "visitor", visitorConfig("keepTunnelOpen = true"), ready="start visitor success")
        await server.waitFor("report make hole success: true")  # before any user connection
        for _ in range(3):
            report = await self.send(XTCP_PORT, 256 * 1024)
            self.assertEqual(report["sent"], report["received"])
        self.assertEqual(owner.output.count("establishing nat hole connection successful"), 1)
        self.assertEqual(server.output.count("report make hole success"), 1)
