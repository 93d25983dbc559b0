"""frpc's OIDC token source (reuse, renewal before expiry, failures) and frps's OIDC checks of
Pings and NewWorkConns, on task.Clock with a fake HTTP client."""

import json
import time

from joserfc import jwt
from joserfc.jwk import KeySet
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from frptw.client._oidc import OIDCCredentials
from frptw.config import parse_client_config, parse_server_config
from frptw.errors import LoginError
from frptw.server.oidc import OIDCVerifier
from tests.oidcprovider import newKey

ISSUER = "https://issuer.test"
KEY = newKey("k1")


class FakeFetcher:
    """Answers each request with the next of ``answers`` (a tuple or an exception)."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.requests = []

    def request(self, method, url, headers=None, body=None) -> Deferred:
        self.requests.append((method, url, body))
        answer = self.answers.pop(0)
        return fail(answer) if isinstance(answer, Exception) else succeed(answer)


def tokenAnswer(name: str, expires=60):
    body = {"access_token": name, "token_type": "Bearer"}
    if expires is not None:
        body["expires_in"] = expires
    return 200, "application/json", json.dumps(body).encode()


def clientAuth(scopes: str = ""):
    return parse_client_config('auth.method = "oidc"\nauth.oidc.clientID = "c"\n'
                               f'auth.oidc.tokenEndpointURL = "https://issuer.test/token"\n{scopes}', "toml").auth


class Credentials(SynchronousTestCase):
    def test_reused_until_shortly_before_expiry(self) -> None:
        clock, fetcher = Clock(), FakeFetcher(tokenAnswer("t1"), tokenAnswer("t2"))
        credentials = OIDCCredentials(clientAuth(), clock, fetcher)
        self.assertEqual(self.successResultOf(credentials.fresh()), "t1")
        self.assertEqual(credentials.fields(clock.seconds()), {"privilege_key": "t1"})
        clock.advance(49)
        self.assertEqual(self.successResultOf(credentials.fresh()), "t1")
        clock.advance(1.5)  # within 10 s of expiry: a new one
        self.assertEqual(self.successResultOf(credentials.fresh()), "t2")
        self.assertEqual(len(fetcher.requests), 2)
        self.assertEqual(clock.getDelayedCalls(), [])  # no scopes: no renewals

    def test_renewed_in_the_background_with_scopes(self) -> None:
        clock = Clock()
        fetcher = FakeFetcher(tokenAnswer("t1"), tokenAnswer("t2"), tokenAnswer("t3"))
        credentials = OIDCCredentials(clientAuth('auth.additionalScopes = ["HeartBeats"]'), clock, fetcher)
        self.successResultOf(credentials.fresh())
        clock.advance(50)
        self.assertEqual(credentials.fields(clock.seconds()), {"privilege_key": "t2"})
        clock.advance(50)
        self.assertEqual(credentials.fields(clock.seconds()), {"privilege_key": "t3"})
        credentials.stop()
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_lifetime_means_one_login(self) -> None:
        fetcher = FakeFetcher(tokenAnswer("t1", None), tokenAnswer("t2", None))
        credentials = OIDCCredentials(clientAuth(), Clock(), fetcher)
        self.assertEqual(self.successResultOf(credentials.fresh()), "t1")
        self.assertEqual(self.successResultOf(credentials.fresh()), "t2")

    def test_failures_are_login_errors_with_frps_text(self) -> None:
        fetcher = FakeFetcher((401, "application/json", b'{"error":"invalid_client"}'), ConnectionRefusedError())
        credentials = OIDCCredentials(clientAuth(), Clock(), fetcher)
        error = self.failureResultOf(credentials.fresh(), LoginError).value
        self.assertTrue(str(error).startswith("couldn't generate OIDC token for login: oauth2: cannot fetch token: 401"))
        self.failureResultOf(credentials.fresh(), LoginError)


def mint(subject: str = "client", **claims) -> str:
    body = {"iss": ISSUER, "sub": subject, "aud": "frps", "exp": int(time.time()) + 60, **claims}
    return jwt.encode({"alg": "RS256", "kid": KEY.kid}, body, KEY)


class ServerChecks(SynchronousTestCase):
    def verifier(self, scopes: str = 'auth.additionalScopes = ["HeartBeats", "NewWorkConns"]') -> OIDCVerifier:
        auth = parse_server_config(f'auth.method = "oidc"\nauth.oidc.issuer = "{ISSUER}"\n'
                                   f'auth.oidc.audience = "frps"\n{scopes}', "toml").auth
        discovery = json.dumps({"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"}).encode()
        keys = json.dumps(KeySet([KEY]).as_dict(private=False)).encode()
        verifier = OIDCVerifier(auth, Clock(), FakeFetcher((200, "", discovery), (200, "", keys)))
        self.successResultOf(verifier.start())
        return verifier

    def test_pings_need_a_subject_seen_at_login(self) -> None:
        verifier = self.verifier()
        self.assertIsNone(verifier.verify_login(mint(), 0))
        self.assertIsNone(verifier.verify_ping(mint(), 0))
        self.assertIsNone(verifier.verify_new_work_conn(mint(), 0))
        self.assertEqual(verifier.verify_ping(mint("intruder"), 0),
                         "received different OIDC subject in login and ping. original subjects: [client], "
                         "new subject: intruder")
        self.assertTrue(verifier.verify_new_work_conn("garbage", 0).startswith("invalid OIDC token in ping: "))

    def test_without_scopes_pings_are_not_checked(self) -> None:
        verifier = self.verifier(scopes="")
        self.assertIsNone(verifier.verify_ping("", 0))
        self.assertIsNone(verifier.verify_new_work_conn("", 0))
