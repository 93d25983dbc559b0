"""frpc's OIDC credentials (``auth.method = "oidc"``): access tokens from the token endpoint.

frp 0.65 asks the endpoint (client credentials, :func:`frptw.wire.oidc.token_request`) for a
new token for every Login, and, with the additional scopes, for every Ping and NewWorkConn.
frptw asks before each login attempt unless it holds a token that stays valid for more than
``EXPIRY_DELTA`` seconds (oauth2's reuse rule), and Pings and NewWorkConns carry the token it
holds, which it renews in the background ``EXPIRY_DELTA`` seconds before it expires; frps sees
the same kind of token either way, only fewer requests reach the endpoint.  A token whose
lifetime the endpoint did not state is used for one login only.  With ``auth.oidc.proxyURL`` the
token requests go through that forward proxy as Go's http.Transport sends them
(:mod:`frptw.transport.proxied_agent`); frps's requests to the issuer never do, as in frp.

:meth:`OIDCCredentials.fields` is the signer the control machine calls (``privilege_key`` only:
OIDC needs no timestamp).
"""

from typing import List, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from frptw.config.model_client import AuthClientConfig
from frptw.errors import ConfigError, FrpError, LoginError
from frptw.logs import FrpLogger
from frptw.transport.httpfetch import Fetcher, FetchError, tlsPolicy
from frptw.transport.timers import cancelCall
from frptw.wire.auth import AUTH_SCOPES
from frptw.wire.oidc import OIDCError, Token, parse_token_response, token_request

#: Seconds before its expiry a token is no longer used for a new login (oauth2's expiryDelta).
EXPIRY_DELTA = 10.0

_log = FrpLogger(namespace="frptw.client.oidc")


class OIDCCredentials:
    """Access tokens for ``config`` (frpc's ``auth``), fetched with ``fetcher`` (default: an
    Agent with the ``auth.oidc`` TLS settings) on ``reactor``'s clock."""

    def __init__(self, config: AuthClientConfig, reactor, fetcher: Optional[Fetcher] = None) -> None:
        oidc = config.oidc
        proxy = None
        if oidc.proxy_url:
            from frptw.transport.proxied_agent import SCHEMES  # only with a proxy
            from frptw.wire.tunnels import parse_proxy_url

            proxy = parse_proxy_url(oidc.proxy_url, "auth.oidc.proxyURL", SCHEMES)
        if not oidc.token_endpoint_url:
            raise ConfigError("auth.oidc.tokenEndpointURL: required with auth.method \"oidc\"")
        self._reactor = reactor
        self._url = oidc.token_endpoint_url
        self._request = token_request(oidc.client_id, oidc.client_secret, oidc.scope, oidc.audience,
                                      oidc.additional_endpoint_params)
        if fetcher is None:
            try:
                fetcher = Fetcher(reactor, tlsPolicy(oidc.trusted_ca_file, oidc.insecure_skip_verify), proxy=proxy)
            except FetchError as e:
                raise ConfigError(f"auth.oidc.trustedCaFile: {e}") from None
        self._fetcher = fetcher
        self._renews = any(scope in AUTH_SCOPES for scope in config.additional_scopes)
        self._token: Optional[str] = None
        self._validUntil: Optional[float] = None
        self._renewal: Optional[IDelayedCall] = None
        self._waiters: List[Deferred] = []

    def fresh(self) -> "Deferred[str]":
        """A token for a login: the one held if it stays valid long enough, else a new one.
        Fails with LoginError (frp's ``couldn't generate OIDC token for login: ...``)."""
        if self._token is not None and self._validUntil is not None \
                and self._reactor.seconds() < self._validUntil - EXPIRY_DELTA:
            return succeed(self._token)
        return self._fetch()

    def fields(self, now: float) -> dict:
        """``privilege_key`` for a Login, Ping or NewWorkConn: the token held."""
        return {"privilege_key": self._token or ""}

    def stop(self) -> None:
        """No more renewals (the service stopped)."""
        cancelCall(self._renewal)
        self._renewal = None

    def _fetch(self) -> "Deferred[str]":
        """A new token; one request at a time, whoever asks meanwhile shares its answer."""
        d: Deferred = Deferred()
        self._waiters.append(d)
        if len(self._waiters) == 1:
            request = self._fetcher.request("POST", self._url, self._request.headers, self._request.body)
            request.addCallback(lambda answer: parse_token_response(*answer))
            request.addBoth(self._fetched)
        return d

    def _fetched(self, result) -> None:
        waiters, self._waiters = self._waiters, []
        if isinstance(result, Failure):
            why = result.getErrorMessage() if result.check(OIDCError, FetchError) else repr(result.value)
            failure = Failure(LoginError(f"couldn't generate OIDC token for login: {why}"))
            for d in waiters:
                d.errback(failure)
            return
        token: Token = result
        self._token = token.access_token
        now = self._reactor.seconds()
        self._validUntil = now + token.expires_in if token.expires_in else None
        cancelCall(self._renewal)
        self._renewal = None
        if self._renews and self._validUntil is not None:
            delay = max(self._validUntil - EXPIRY_DELTA - now, 1.0)
            self._renewal = self._reactor.callLater(delay, self._renew)
        for d in waiters:
            d.callback(token.access_token)

    def _renew(self) -> None:
        self._renewal = None
        self._fetch().addErrback(self._renewFailed)

    def _renewFailed(self, failure: Failure) -> None:
        _log.warn("renewing the OIDC token failed: {error}", error=failure.getErrorMessage())
        if not failure.check(FrpError):
            _log.failure("renewing the OIDC token", failure)  # a bug: keep its traceback
