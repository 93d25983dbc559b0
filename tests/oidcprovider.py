"""A local OIDC provider for tests: twisted.web, in this process, on a free loopback port.

It serves a discovery document, its key set (an RSA key made per provider) and a
client-credentials token endpoint that checks HTTP Basic client credentials, records each
request's form, and mints RS256 JWTs (joserfc) whose ``aud``, lifetime, issuer and signing key
the test chooses (``audience``, ``lifetime``: negative for an already expired token,
``issuerClaim``, ``signWith``).
"""

import base64
import json
import time
from typing import Dict, List, Optional
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.web.resource import Resource
from twisted.web.server import Site


def newKey(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"}, private=True)


class _Leaf(Resource):
    isLeaf = True

    def __init__(self, provider: "OIDCProvider", what: str) -> None:
        super().__init__()
        self._provider = provider
        self._what = what

    def render_GET(self, request) -> bytes:
        self._provider.gets.append(self._what)
        request.setHeader(b"content-type", b"application/json")
        if self._what == "discovery":
            return json.dumps(self._provider.discovery()).encode()
        return json.dumps(self._provider.keys.as_dict(private=False)).encode()

    def render_POST(self, request) -> bytes:
        return self._provider.token(request)


class OIDCProvider:
    def __init__(self, clientID: str = "frpc-client", clientSecret: str = "s3cr3t") -> None:
        self.clientID = clientID
        self.clientSecret = clientSecret
        self.audience = "frps"
        self.lifetime = 300
        self.issuerClaim: Optional[str] = None
        self.signing = newKey("key-1")
        self.keys = KeySet([self.signing])
        self.signWith: Optional[RSAKey] = None
        self.forms: List[Dict[str, List[str]]] = []
        self.authorizations: List[str] = []
        self.gets: List[str] = []
        self.port = 0
        self._listening = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tokenURL(self) -> str:
        return f"{self.issuer}/token"

    def discovery(self) -> dict:
        return {"issuer": self.issuer, "jwks_uri": f"{self.issuer}/jwks", "token_endpoint": self.tokenURL,
                "id_token_signing_alg_values_supported": ["RS256"], "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"]}

    def mint(self, subject: Optional[str] = None, lifetime: Optional[int] = None, audience: Optional[str] = None) -> str:
        now = int(time.time())
        claims = {"iss": self.issuerClaim or self.issuer, "sub": subject or self.clientID,
                  "aud": audience or self.audience, "iat": now, "exp": now + (self.lifetime if lifetime is None else lifetime)}
        key = self.signWith or self.signing
        return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)

    def token(self, request) -> bytes:
        form = parse_qs(request.content.read().decode(), keep_blank_values=True)
        self.forms.append(form)
        authorization = (request.getHeader(b"authorization") or b"").decode()
        self.authorizations.append(authorization)
        expected = "Basic " + base64.b64encode(f"{self.clientID}:{self.clientSecret}".encode()).decode()
        request.setHeader(b"content-type", b"application/json")
        if authorization != expected or form.get("grant_type") != ["client_credentials"]:
            request.setResponseCode(401)
            return b'{"error":"invalid_client"}'
        return json.dumps({"access_token": self.mint(), "token_type": "Bearer",
                           "expires_in": max(self.lifetime, 1)}).encode()

    @classmethod
    @inlineCallbacks
    def listen(cls, testCase, **kwargs):
        provider = cls(**kwargs)
        root = Resource()
        wellKnown = Resource()
        root.putChild(b".well-known", wellKnown)
        wellKnown.putChild(b"openid-configuration", _Leaf(provider, "discovery"))
        root.putChild(b"jwks", _Leaf(provider, "jwks"))
        root.putChild(b"token", _Leaf(provider, "token"))
        site = Site(root)
        site.noisy = False
        provider._listening = yield TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(site)
        provider.port = provider._listening.getHost().port
        testCase.addCleanup(provider._listening.stopListening)
        return provider
