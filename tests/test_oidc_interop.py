"""OIDC (``auth.method = "oidc"``) against a local provider (tests/oidcprovider.py), with the
real frp 0.65 on the other side both ways.

Each case runs with our frpc against Go frps and with Go frpc against our frps, and the two
frps must give the same outcome and text: a good token logs in (and, with both scopes, pings
and work connections carry tokens that verify); a token for another audience, an expired one,
and an unreachable issuer (frps does not start) or token endpoint (frpc cannot log in) fail
as frp 0.65 fails.
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from tests.gofrp import GoFrp
from tests.interop import ourFrps, ourLoginFailure
from tests.oidcprovider import OIDCProvider
from tests.support import LogCapture, free_port, until
from tests.traffic import EchoServer, exchange

SCOPES = 'auth.additionalScopes = ["HeartBeats", "NewWorkConns"]'


class OIDCBothWays(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.provider = await OIDCProvider.listen(self)
        self.echo = await EchoServer.listen(reactor)
        self.addCleanup(self.echo.stop)

    def frpsText(self, port: int, audience: str = "frps", issuer: str = "", extra: str = "") -> str:
        return (f'bindAddr = "127.0.0.1"\nbindPort = {port}\nauth.method = "oidc"\n'
                f'auth.oidc.issuer = "{issuer or self.provider.issuer}"\nauth.oidc.audience = "{audience}"\n{extra}\n')

    def frpcText(self, port: int, remote: int, extra: str = "", tokenURL: str = "") -> str:
        return (
            f'serverAddr = "127.0.0.1"\nserverPort = {port}\nloginFailExit = false\nauth.method = "oidc"\n'
            f'auth.oidc.clientID = "{self.provider.clientID}"\nauth.oidc.clientSecret = "{self.provider.clientSecret}"\n'
            f'auth.oidc.audience = "frps"\nauth.oidc.tokenEndpointURL = "{tokenURL or self.provider.tokenURL}"\n'
            f'{extra}\n[[proxies]]\nname = "echo"\ntype = "tcp"\nlocalIP = "127.0.0.1"\n'
            f"localPort = {self.echo.port}\nremotePort = {remote}\n"
        )

    async def goFrps(self, **kwargs) -> int:
        port = free_port()
        self.goFrpsProcess = await GoFrp.start(reactor, "frps", self.frpsText(port, **kwargs))
        self.addCleanup(self.goFrpsProcess.stop)
        return port

    async def ourFrps(self, **kwargs) -> int:
        return await ourFrps(self, self.frpsText(0, **kwargs))

    def ourFrpc(self, port: int, remote: int, extra: str = "", tokenURL: str = "") -> FrpClientService:
        service = FrpClientService(parse_client_config(self.frpcText(port, remote, extra, tokenURL), "toml"), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    async def goFrpc(self, port: int, remote: int, extra: str = "", ready: str = "start proxy success",
                     tokenURL: str = ""):
        frpc = await GoFrp.start(reactor, "frpc", self.frpcText(port, remote, extra, tokenURL), ready=ready)
        self.addCleanup(frpc.stop)
        return frpc

    # -- good tokens ----------------------------------------------------------------------------
    async def test_our_frpc_go_frps_with_scopes(self) -> None:
        port = await self.goFrps(extra=SCOPES + "\ntransport.tcpMux = false")
        remote = free_port()
        service = self.ourFrpc(port, remote, SCOPES + "\ntransport.heartbeatInterval = 1\ntransport.tcpMux = false")
        await service.whenProxyRunning("echo")
        self.assertEqual(await exchange(reactor, remote, 256 * 1024, connections=4), 4 * 256 * 1024)
        # oauth2's client-credentials request: Basic credentials, an empty scope, the audience.
        form = self.provider.forms[0]
        self.assertEqual(form, {"audience": ["frps"], "grant_type": ["client_credentials"], "scope": [""]})
        self.assertTrue(self.provider.authorizations[0].startswith("Basic "))

    async def test_go_frpc_our_frps_with_scopes(self) -> None:
        port = await self.ourFrps(extra=SCOPES + "\ntransport.tcpMux = false")
        remote = free_port()
        await self.goFrpc(port, remote, SCOPES + "\ntransport.heartbeatInterval = 1\ntransport.tcpMux = false")
        self.assertEqual(await exchange(reactor, remote, 256 * 1024, connections=4), 4 * 256 * 1024)
        # The same request from Go frpc as from ours.
        self.assertEqual(self.provider.forms[0], {"audience": ["frps"], "grant_type": ["client_credentials"],
                                                  "scope": [""]})
        self.assertEqual(self.provider.gets[:2], ["discovery", "jwks"])

    async def test_token_renewed_before_expiry_keeps_pings_valid(self) -> None:
        """3-second tokens: our frpc renews the one it holds every second, so that Go frps, which
        checks the token of every Ping (HeartBeats) and work connection (NewWorkConns) with
        expiry, accepts them all well after the login token expired."""
        self.provider.lifetime = 3
        port = await self.goFrps(extra=SCOPES)
        remote = free_port()
        service = self.ourFrpc(port, remote, SCOPES + "\ntransport.heartbeatInterval = 1")
        await service.whenProxyRunning("echo")
        await until(lambda: len(self.provider.forms) >= 6, "five renewals", timeout=20)
        self.assertEqual(await exchange(reactor, remote, 64 * 1024, connections=2), 2 * 64 * 1024)
        self.assertNotIn("invalid ping", self.goFrpsProcess.output)
        self.assertNotIn("expired", self.goFrpsProcess.output)
        self.assertEqual(self.goFrpsProcess.output.count("client login info"), 1)

    async def test_our_frpc_our_frps(self) -> None:
        port = await self.ourFrps()
        remote = free_port()
        service = self.ourFrpc(port, remote)
        await service.whenProxyRunning("echo")
        self.assertEqual(await exchange(reactor, remote, 256 * 1024, connections=2), 2 * 256 * 1024)

    # -- refusals, same text from both frps -----------------------------------------------------
    async def refusals(self, prepare, expected: str) -> None:
        """Go frps refuses our frpc, and our frps refuses Go frpc, with ``expected`` in the text."""
        prepare()
        goPort = await self.goFrps()
        service = self.ourFrpc(goPort, free_port())
        logs = LogCapture(self)
        await logs.waitFor(expected)
        self.assertIsNone(service.runId or None)
        ourPort = await self.ourFrps()
        frpc = await self.goFrpc(ourPort, free_port(), ready=expected)
        self.assertNotIn("login to server success", frpc.output)

    async def test_wrong_audience(self) -> None:
        def prepare() -> None:
            self.provider.audience = "someone-else"

        await self.refusals(prepare, 'invalid OIDC token in login: oidc: expected audience "frps" got ["someone-else"]')

    async def test_expired_token(self) -> None:
        def prepare() -> None:
            self.provider.lifetime = -120

        await self.refusals(prepare, "invalid OIDC token in login: oidc: token is expired (Token Expiry: ")

    async def test_signed_with_an_unknown_key(self) -> None:
        from tests.oidcprovider import newKey

        def prepare() -> None:
            self.provider.signWith = newKey("stranger")

        await self.refusals(prepare, "invalid OIDC token in login: failed to verify signature: "
                                     "failed to verify id token signature")

    async def test_rotated_key_is_fetched_again(self) -> None:
        """A login signed with a key the issuer added after frps started succeeds: frps reads
        the key set again, as go-oidc does."""
        from tests.oidcprovider import newKey

        port = await self.ourFrps()
        rotated = newKey("key-2")
        self.provider.keys.keys.append(rotated)
        self.provider.signWith = rotated
        service = self.ourFrpc(port, free_port())
        await service.whenProxyRunning("echo")
        self.assertEqual(self.provider.gets, ["discovery", "jwks", "jwks"])

    # -- unreachable endpoints ------------------------------------------------------------------
    async def test_unreachable_issuer_stops_frps(self) -> None:
        closed = f"http://127.0.0.1:{free_port()}"
        port = free_port()
        frps = await GoFrp.start(reactor, "frps", self.frpsText(port, issuer=closed), ready=None)
        await frps.waitFor("connection refused")
        config = parse_server_config(self.frpsText(0, issuer=closed), "toml")
        config.bind_port = 0
        service = FrpServerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        failure = await self.assertFailure(service.whenListening(), Exception)
        self.assertIn("Connection refused", str(failure))

    async def test_unreachable_token_endpoint(self) -> None:
        closed = f"http://127.0.0.1:{free_port()}/token"
        port = await self.goFrps()
        frpc = await self.goFrpc(port, free_port(), ready="couldn't generate OIDC token for login", tokenURL=closed)
        self.assertNotIn("login to server success", frpc.output)
        failure = await ourLoginFailure(self, self.frpcText(port, free_port(), tokenURL=closed))
        self.assertIn("couldn't generate OIDC token for login", failure)
