"""``auth.oidc.proxyURL``: frpc fetches its OIDC token through a forward proxy, as Go frpc 0.65
does (Go's http.Transport): an ``http://`` token endpoint through an http proxy as an
absolute-form request with Proxy-Authorization, an ``https://`` one through a CONNECT tunnel
with TLS inside, and either through SOCKS5.  Each case runs with Go frpc and with ours against
the same test proxy (tests/relays.py, credentials required, tunnels counted) and provider
(tests/oidcprovider.py); the proxy must see the same requests from both, and both must log in
to our frps (which checks the token against the provider directly, as frps does).
"""

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.errors import ConfigError
from tests.gofrp import GoFrp
from tests.interop import ourFrps, ourLoginFailure
from tests.oidcprovider import OIDCProvider
from tests.relays import ForwardProxy, tlsTerminator
from tests.support import free_port


class OIDCThroughProxy(TestCase):
    timeout = 60

    async def setUp(self) -> None:
        self.provider = await OIDCProvider.listen(self)
        self.port = await ourFrps(self, f'bindAddr = "127.0.0.1"\nauth.method = "oidc"\n'
                                        f'auth.oidc.issuer = "{self.provider.issuer}"\nauth.oidc.audience = "frps"\n')

    def frpcText(self, proxyURL: str, tokenURL: str, extra: str = "") -> str:
        return (
            f'serverAddr = "127.0.0.1"\nserverPort = {self.port}\nloginFailExit = false\nauth.method = "oidc"\n'
            f'auth.oidc.clientID = "{self.provider.clientID}"\nauth.oidc.clientSecret = "{self.provider.clientSecret}"\n'
            f'auth.oidc.audience = "frps"\nauth.oidc.tokenEndpointURL = "{tokenURL}"\n'
            f'auth.oidc.proxyURL = "{proxyURL}"\n{extra}\n'
        )

    async def ours(self, proxyURL: str, tokenURL: str, extra: str = "") -> FrpClientService:
        service = FrpClientService(parse_client_config(self.frpcText(proxyURL, tokenURL, extra), "toml"), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenLoggedIn()
        return service

    async def go(self, proxyURL: str, tokenURL: str, extra: str = "", ready: str = "login to server success"):
        frpc = await GoFrp.start(reactor, "frpc", self.frpcText(proxyURL, tokenURL, extra), ready=ready)
        self.addCleanup(frpc.stop)
        return frpc

    def requestLines(self, proxy: ForwardProxy):
        return [(r.method, r.target, dict(r.headers).get(b"proxy-authorization")) for r in proxy.requests]

    async def bothWays(self, kind: str, tokenURL: str, target, extra: str = ""):
        """Go frpc, then ours, through a fresh ``kind`` proxy each: the proxy's tunnels and
        requests must be the same for both."""
        seen = []
        for run in (self.go, self.ours):
            proxy = await ForwardProxy.listen(self, kind)
            await run(proxy.url(), tokenURL, extra)
            self.assertEqual(proxy.tunnels, [target])
            seen.append(self.requestLines(proxy))
        self.assertEqual(seen[0], seen[1])
        self.assertEqual(len(self.provider.forms), 2)  # each frpc's token came through its proxy
        return seen[1]

    async def test_http_endpoint_through_http_proxy_is_forwarded(self) -> None:
        [(method, target, authorization)] = await self.bothWays(
            "http", self.provider.tokenURL, ("127.0.0.1", self.provider.port))
        self.assertEqual((method, target), (b"POST", self.provider.tokenURL.encode()))
        self.assertTrue(authorization.startswith(b"Basic "))

    async def test_https_endpoint_through_http_proxy_is_tunnelled(self) -> None:
        front, ca = await tlsTerminator(self, self.provider.port, "idp.test", ipAddresses=["127.0.0.1"],
                                       alpn=[b"http/1.1"])
        tokenURL = f"https://127.0.0.1:{front.port}/token"
        [(method, target, _)] = await self.bothWays("http", tokenURL, ("127.0.0.1", front.port),
                                                    f'auth.oidc.trustedCaFile = "{ca}"')
        self.assertEqual((method, target), (b"CONNECT", f"127.0.0.1:{front.port}".encode()))

    async def test_http_endpoint_through_socks5(self) -> None:
        await self.bothWays("socks5", self.provider.tokenURL, ("127.0.0.1", self.provider.port))

    async def test_wrong_proxy_credentials_fail_the_login(self) -> None:
        proxy = await ForwardProxy.listen(self, "http")
        bad = proxy.url(password="wrong")
        frpc = await self.go(bad, self.provider.tokenURL, ready="couldn't generate OIDC token for login")
        self.assertNotIn("login to server success", frpc.output)
        failure = await ourLoginFailure(self, self.frpcText(bad, self.provider.tokenURL))
        self.assertIn("couldn't generate OIDC token for login", failure)
        self.assertEqual(self.provider.forms, [])

    def test_unknown_scheme_is_refused_naming_the_key(self) -> None:
        text = self.frpcText(f"ftp://127.0.0.1:{free_port()}", self.provider.tokenURL)
        with self.assertRaises(ConfigError) as raised:
            FrpClientService(parse_client_config(text, "toml"), reactor).startService()
        self.assertIn("auth.oidc.proxyURL", str(raised.exception))
