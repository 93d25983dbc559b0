"""OIDC for frp's ``auth.method = "oidc"`` without I/O: the client-credentials token request
frpc makes, and the ID-token checks frps makes (wire-protocol.md §5.3; frp 0.65 ``pkg/auth/
oidc.go`` on golang.org/x/oauth2 and coreos/go-oidc v3).

frpc (``golang.org/x/oauth2/clientcredentials``): ``POST tokenEndpointURL`` with the form
``grant_type=client_credentials``, ``scope`` (always present, empty when unset), ``audience``
when set and every ``additionalEndpointParams`` entry (sorted by name, as Go encodes
``url.Values``); the client id and secret go in HTTP Basic (each form-escaped first, as
oauth2 does).  The answer is JSON (or a form, by its content type) with ``access_token`` and
optionally ``expires_in``; anything but a 2xx is ``oauth2: cannot fetch token: <status>``.
The access token itself goes in ``privilege_key``.

frps (go-oidc's ``IDTokenVerifier.Verify``), in this order, each failure with go-oidc's text:
the JWT's payload is read without trusting it; the issuer must be the configured one (unless
``skipIssuerCheck``); the configured ``audience`` must be among ``aud`` (unless it is empty);
``exp`` must not be past and ``nbf`` not more than 5 minutes ahead (unless
``skipExpiryCheck``); then the signature must verify with one of the issuer's keys (JWKS; the
``kid`` selects the key when present), with an algorithm the discovery document allows
(RS256 when it names none).  The JOSE part (JWK import, JWS verification) is joserfc's.
"""

import base64
import binascii
import datetime
import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, quote_plus, urlencode

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from frptw.errors import FrpError

#: Algorithms go-jose verifies (go-oidc's list), in the order go-oidc knows them.
SUPPORTED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA")
#: go-oidc's allowance for a ``nbf`` in the future.
NBF_LEEWAY = 300


class OIDCError(FrpError):
    """A token request or an ID token that failed, with the text frp would give."""


# -- frpc: client credentials -----------------------------------------------------------------
@dataclass(frozen=True)
class TokenRequest:
    """The client-credentials request: POST ``body`` (form) with ``headers`` to the endpoint."""

    headers: Dict[str, str]
    body: bytes


def token_request(client_id: str, client_secret: str, scope: str, audience: str,
                  additional: Dict[str, str]) -> TokenRequest:
    """The request golang.org/x/oauth2's clientcredentials makes for frpc's settings."""
    form: Dict[str, str] = dict(additional)
    if audience:
        form["audience"] = audience
    form["grant_type"] = "client_credentials"
    form["scope"] = scope
    credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
    return TokenRequest(
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + base64.b64encode(credentials).decode("ascii"),
        },
        body=urlencode(sorted(form.items())).encode(),
    )


@dataclass(frozen=True)
class Token:
    access_token: str
    #: Seconds the token is valid for, as the endpoint said (None: not said).
    expires_in: Optional[int] = None


def parse_token_response(status: int, content_type: str, body: bytes) -> Token:
    """The token in the endpoint's answer, or OIDCError with oauth2's wording."""
    if not 200 <= status < 300:
        text = body[:1000].decode("utf-8", "replace")
        raise OIDCError(f"oauth2: cannot fetch token: {status}\nResponse: {text}")
    values: Dict[str, object]
    if content_type.split(";")[0].strip() in ("application/x-www-form-urlencoded", "text/plain"):
        values = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    else:
        try:
            values = json.loads(body)
        except ValueError as e:
            raise OIDCError(f"oauth2: cannot parse json: {e}") from None
        if not isinstance(values, dict):
            raise OIDCError("oauth2: cannot parse json: not an object")
    access = values.get("access_token")
    if not isinstance(access, str) or not access:
        raise OIDCError("oauth2: server response missing access_token")
    expires = values.get("expires_in")
    try:
        seconds = int(expires) if expires not in (None, "", 0, "0") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        seconds = None
    return Token(access, seconds)


# -- frps: discovery and ID tokens ---------------------------------------------------------------
def discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


@dataclass(frozen=True)
class Provider:
    """What frps keeps from the issuer's discovery document."""

    issuer: str
    jwks_uri: str
    algorithms: Tuple[str, ...] = ("RS256",)


def parse_discovery(issuer: str, status: int, body: bytes) -> Provider:
    """The provider described by the discovery document, checked as go-oidc's NewProvider does."""
    if status != 200:
        raise OIDCError(f"{status}: {body[:1000].decode('utf-8', 'replace')}")
    try:
        document = json.loads(body)
    except ValueError as e:
        raise OIDCError(f"oidc: failed to decode provider discovery object: {e}") from None
    if not isinstance(document, dict):
        raise OIDCError("oidc: failed to decode provider discovery object: not an object")
    if document.get("issuer") != issuer:
        raise OIDCError(f"oidc: issuer did not match the issuer returned by provider, expected {_q(issuer)} "
                        f"got {_q(str(document.get('issuer', '')))}")
    offered = document.get("id_token_signing_alg_values_supported") or []
    algorithms = tuple(a for a in offered if a in SUPPORTED_ALGORITHMS) or ("RS256",)
    return Provider(issuer, str(document.get("jwks_uri", "")), algorithms)


def parse_jwks(status: int, body: bytes) -> KeySet:
    if status != 200:
        raise OIDCError(f"oidc: get keys failed: {status} {body[:1000].decode('utf-8', 'replace')}")
    try:
        return KeySet.import_key_set(json.loads(body))
    except (ValueError, TypeError, KeyError, JoseError) as e:
        raise OIDCError(f"oidc: failed to decode keys: {e}") from None


def _q(text: str) -> str:
    """Go's %q for a plain string."""
    return json.dumps(text, ensure_ascii=False)


def _go_time(seconds: float) -> str:
    """A Unix time as Go prints a time.Time in UTC (``2026-12-03 19:00:00 +0000 UTC``)."""
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S +0000 UTC")


def _segment(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@dataclass
class Claims:
    subject: str
    issuer: str
    audience: List[str] = field(default_factory=list)


@dataclass
class IDTokenVerifier:
    """frps's checks of an ID token (``auth.oidc.*`` of frps)."""

    issuer: str
    audience: str = ""
    skip_expiry_check: bool = False
    skip_issuer_check: bool = False

    def check_claims(self, token: str, now: float) -> Claims:
        """Everything but the signature (go-oidc checks these first); OIDCError when a check fails."""
        parts = token.split(".")
        if len(parts) < 2:
            raise OIDCError(f"oidc: malformed jwt: oidc: malformed jwt, expected 3 parts got {len(parts)}")
        try:
            payload = json.loads(_segment(parts[1]))
        except (binascii.Error, ValueError) as e:
            raise OIDCError(f"oidc: malformed jwt: {e}") from None
        if not isinstance(payload, dict):
            raise OIDCError("oidc: failed to unmarshal claims: not an object")
        audience = payload.get("aud", [])
        audience = [audience] if isinstance(audience, str) else [str(a) for a in audience or []]
        claims = Claims(str(payload.get("sub", "")), str(payload.get("iss", "")), audience)
        if not self.skip_issuer_check and claims.issuer != self.issuer:
            raise OIDCError(f"oidc: id token issued by a different provider, expected {_q(self.issuer)} "
                            f"got {_q(claims.issuer)}")
        if self.audience and self.audience not in audience:
            got = "[" + " ".join(_q(a) for a in audience) + "]"
            raise OIDCError(f"oidc: expected audience {_q(self.audience)} got {got}")
        if not self.skip_expiry_check:
            expiry = _number(payload.get("exp"))
            if expiry is None or expiry < now:
                shown = _go_time(expiry) if expiry is not None else "0001-01-01 00:00:00 +0000 UTC"
                raise OIDCError(f"oidc: token is expired (Token Expiry: {shown})")
            nbf = _number(payload.get("nbf"))
            if nbf is not None and now + NBF_LEEWAY < nbf:
                raise OIDCError(f"oidc: current time {_go_time(now)} before the nbf (not before) time: {_go_time(nbf)}")
        return claims

    @staticmethod
    def signature_verifies(token: str, keys: KeySet, algorithms: Sequence[str]) -> bool:
        """True if one of ``keys`` (the one named by ``kid``, if the token names one) verifies
        the token's signature with an allowed algorithm."""
        try:
            header = json.loads(_segment(token.split(".")[0]))
        except (binascii.Error, ValueError, IndexError):
            return False
        kid = header.get("kid") if isinstance(header, dict) else None
        for key in keys.keys:
            if kid and key.kid != kid:
                continue
            try:
                jws.deserialize_compact(token, key, algorithms=list(algorithms))
                return True
            except (JoseError, ValueError):
                continue
        return False


def _number(value: object) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


#: go-oidc's text when no key verifies the signature.
SIGNATURE_FAILED = "failed to verify signature: failed to verify id token signature"
