"""frptw.wire.oidc: the token request as oauth2 makes it, and go-oidc's checks and texts."""

import base64
import time

from hypothesis import given
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import KeySet
from twisted.trial.unittest import SynchronousTestCase

from frptw.wire.oidc import (
    IDTokenVerifier,
    OIDCError,
    parse_discovery,
    parse_token_response,
    token_request,
)
from tests.oidcprovider import newKey

ISSUER = "https://issuer.test"
KEY = newKey("k1")
OTHER = newKey("k2")


def mint(key=KEY, **claims) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "sub": "client", "aud": "frps", "exp": now + 60, **claims}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, body, key)


class TokenRequest(SynchronousTestCase):
    def test_form_and_basic_credentials(self) -> None:
        request = token_request("id:x", "s&cret", "", "frps", {"resource": "r 1"})
        self.assertEqual(request.body, b"audience=frps&grant_type=client_credentials&resource=r+1&scope=")
        self.assertEqual(base64.b64decode(request.headers["Authorization"][6:]), b"id%3Ax:s%26cret")
        self.assertEqual(request.headers["Content-Type"], "application/x-www-form-urlencoded")

    def test_responses(self) -> None:
        token = parse_token_response(200, "application/json", b'{"access_token":"a.b.c","expires_in":60}')
        self.assertEqual((token.access_token, token.expires_in), ("a.b.c", 60))
        token = parse_token_response(200, "application/x-www-form-urlencoded", b"access_token=x&expires_in=")
        self.assertEqual((token.access_token, token.expires_in), ("x", None))
        error = self.assertRaises(OIDCError, parse_token_response, 401, "application/json", b'{"error":"no"}')
        self.assertTrue(str(error).startswith("oauth2: cannot fetch token: 401"))
        self.assertRaises(OIDCError, parse_token_response, 200, "application/json", b'{"token_type":"x"}')

    @given(st.binary(max_size=200), st.integers(100, 599))
    def test_garbage_answers_are_oidc_errors(self, body: bytes, status: int) -> None:
        try:
            parse_token_response(status, "application/json", body)
        except OIDCError:
            pass


class Discovery(SynchronousTestCase):
    def test_issuer_must_match(self) -> None:
        provider = parse_discovery(ISSUER, 200, b'{"issuer":"https://issuer.test","jwks_uri":"https://issuer.test/k",'
                                                b'"id_token_signing_alg_values_supported":["RS256","HS256"]}')
        self.assertEqual((provider.jwks_uri, provider.algorithms), ("https://issuer.test/k", ("RS256",)))
        error = self.assertRaises(OIDCError, parse_discovery, ISSUER, 200, b'{"issuer":"https://other"}')
        self.assertEqual(str(error), 'oidc: issuer did not match the issuer returned by provider, expected '
                                     '"https://issuer.test" got "https://other"')


class Claims(SynchronousTestCase):
    verifier = IDTokenVerifier(ISSUER, "frps")

    def refused(self, token: str, verifier=None) -> str:
        return str(self.assertRaises(OIDCError, (verifier or self.verifier).check_claims, token, time.time()))

    def test_good(self) -> None:
        self.assertEqual(self.verifier.check_claims(mint(), time.time()).subject, "client")
        self.assertTrue(IDTokenVerifier.signature_verifies(mint(), KeySet([KEY]), ["RS256"]))

    def test_texts_as_go_oidc(self) -> None:
        self.assertEqual(self.refused(mint(aud=["a", "b"])), 'oidc: expected audience "frps" got ["a" "b"]')
        self.assertEqual(self.refused(mint(iss="https://x")),
                         'oidc: id token issued by a different provider, expected "https://issuer.test" got "https://x"')
        self.assertEqual(self.refused(mint(exp=1700000000)),
                         "oidc: token is expired (Token Expiry: 2023-11-14 22:13:20 +0000 UTC)")
        self.assertIn("before the nbf", self.refused(mint(nbf=int(time.time()) + 1000)))
        self.assertIn("malformed jwt", self.refused("nodots"))

    def test_skips(self) -> None:
        lenient = IDTokenVerifier(ISSUER, "", skip_expiry_check=True, skip_issuer_check=True)
        self.assertEqual(lenient.check_claims(mint(exp=1, iss="x", aud="y"), time.time()).subject, "client")

    def test_signature_needs_the_right_key_and_algorithm(self) -> None:
        token = mint(OTHER)
        self.assertFalse(IDTokenVerifier.signature_verifies(token, KeySet([KEY]), ["RS256"]))
        self.assertTrue(IDTokenVerifier.signature_verifies(token, KeySet([KEY, OTHER]), ["RS256"]))
        self.assertFalse(IDTokenVerifier.signature_verifies(token, KeySet([OTHER]), ["ES256"]))
        self.assertFalse(IDTokenVerifier.signature_verifies(token[:-6] + "AAAAAA", KeySet([OTHER]), ["RS256"]))

    @given(st.text(max_size=200))
    def test_garbage_tokens(self, token: str) -> None:
        try:
            self.verifier.check_claims(token, time.time())
        except OIDCError:
            pass
        self.assertFalse(IDTokenVerifier.signature_verifies(token, KeySet([KEY]), ["RS256"]))
