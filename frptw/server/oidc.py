"""frps's OIDC verification (``auth.method = "oidc"``), with frp 0.65's texts and outcomes.

Like Go frps, which contacts the issuer while it starts (and panics when it cannot), the
service calls :meth:`OIDCVerifier.start` before it listens: it reads the issuer's discovery
document and its key set (JWKS); when either fails the service does not start.  Then:

* a Login's token is checked with :class:`frptw.wire.oidc.IDTokenVerifier` (claims first,
  then the signature with the keys held).  When no key verifies it, the key set is fetched
  again once (the issuer may have rotated its keys, as go-oidc assumes) and the signature
  checked again, so :meth:`verify_login` may answer with a Deferred.  The token's subject is
  remembered.
* with the scopes, a Ping's or NewWorkConn's token must verify the same way and carry a
  subject seen in a Login (frp's ``subjectsFromLogin``).  These checks use the keys held (an
  unknown key refuses that one message and refreshes the keys in the background).

Every refusal is frp's text (``invalid OIDC token in login: ...``); the caller adds its
summary for the client as with tokens.
"""

from typing import Iterable, List, Optional, Set, Union

from joserfc.jwk import KeySet
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.transport.httpfetch import Fetcher
from frptw.wire.auth import SCOPE_HEARTBEATS, SCOPE_NEW_WORK_CONNS
from frptw.wire.oidc import (
    SIGNATURE_FAILED,
    IDTokenVerifier,
    OIDCError,
    Provider,
    discovery_url,
    parse_discovery,
    parse_jwks,
)

log = FrpLogger()

Verdict = Optional[str]


class OIDCVerifier:
    """frps's ``auth.oidc`` checks (``issuer``, ``audience``, ``skipExpiryCheck``,
    ``skipIssuerCheck``) and scopes, the same interface as :class:`frptw.server.auth.TokenVerifier`."""

    def __init__(self, auth, clock: IReactorTime, fetcher: Fetcher) -> None:
        oidc = auth.oidc
        self._checks = IDTokenVerifier(oidc.issuer, oidc.audience, oidc.skip_expiry_check, oidc.skip_issuer_check)
        self._issuer = oidc.issuer
        self._clock = clock
        self._fetcher = fetcher
        scopes = set(auth.additional_scopes)
        self.heartbeats = SCOPE_HEARTBEATS in scopes
        self.new_work_conns = SCOPE_NEW_WORK_CONNS in scopes
        self._provider: Optional[Provider] = None
        self._keys = KeySet([])
        self._keyWaiters: List[Deferred] = []
        self._subjects: Set[str] = set()

    def start(self) -> "Deferred[None]":
        """Read the discovery document and the keys; fails with OIDCError or the fetch error."""
        d = self._fetcher.request("GET", discovery_url(self._issuer))
        d.addCallback(lambda answer: parse_discovery(self._issuer, answer[0], answer[2]))
        d.addCallback(self._discovered)
        return d

    def _discovered(self, provider: Provider) -> Deferred:
        self._provider = provider
        return self._refreshKeys()

    def _refreshKeys(self) -> "Deferred[None]":
        """Fetch the key set again (one fetch at a time; whoever asks meanwhile shares it)."""
        assert self._provider is not None
        d: Deferred = Deferred()
        self._keyWaiters.append(d)
        if len(self._keyWaiters) == 1:
            request = self._fetcher.request("GET", self._provider.jwks_uri)
            request.addCallback(lambda answer: parse_jwks(answer[0], answer[2]))
            request.addBoth(self._keysFetched)
        return d

    def _keysFetched(self, result: Union[KeySet, Failure]) -> None:
        waiters, self._keyWaiters = self._keyWaiters, []
        if isinstance(result, Failure):
            log.warn("fetching the OIDC keys of {issuer} failed: {error}", issuer=self._issuer,
                     error=result.getErrorMessage())
            for d in waiters:
                d.errback(result)
            return
        self._keys = result
        for d in waiters:
            d.callback(None)

    # -- checks ---------------------------------------------------------------------------------
    def _claims(self, token: str):
        return self._checks.check_claims(token, self._clock.seconds())

    def _signed(self, token: str) -> bool:
        algorithms = self._provider.algorithms if self._provider is not None else ("RS256",)
        return IDTokenVerifier.signature_verifies(token, self._keys, algorithms)

    def verify_login(self, privilege_key: str, timestamp: int) -> Union[Verdict, "Deferred[Verdict]"]:
        try:
            claims = self._claims(privilege_key)
        except OIDCError as e:
            return f"invalid OIDC token in login: {e}"
        if self._signed(privilege_key):
            self._subjects.add(claims.subject)
            return None
        if self._provider is None:
            return f"invalid OIDC token in login: {SIGNATURE_FAILED}"

        def again(_: object) -> Verdict:
            if self._signed(privilege_key):
                self._subjects.add(claims.subject)
                return None
            return f"invalid OIDC token in login: {SIGNATURE_FAILED}"

        def unreachable(failure: Failure) -> Verdict:
            return f"invalid OIDC token in login: {SIGNATURE_FAILED}"  # logged by _keysFetched

        return self._refreshKeys().addCallbacks(again, unreachable)

    def _after_login(self, token: str) -> Verdict:
        try:
            claims = self._claims(token)
        except OIDCError as e:
            return f"invalid OIDC token in ping: {e}"
        if not self._signed(token):
            if self._provider is not None:
                self._refreshKeys().addErrback(lambda f: None)  # logged by _keysFetched
            return f"invalid OIDC token in ping: {SIGNATURE_FAILED}"
        if claims.subject not in self._subjects:
            known = "[" + " ".join(sorted(self._subjects)) + "]"
            return (f"received different OIDC subject in login and ping. original subjects: {known}, "
                    f"new subject: {claims.subject}")
        return None

    def verify_ping(self, privilege_key: str, timestamp: int) -> Verdict:
        return self._after_login(privilege_key) if self.heartbeats else None

    def verify_new_work_conn(self, privilege_key: str, timestamp: int) -> Verdict:
        return self._after_login(privilege_key) if self.new_work_conns else None


def oidcVerifier(auth, clock: IReactorTime, reactor) -> OIDCVerifier:
    """The verifier for frps's ``auth`` (system trust store for the issuer, as go-oidc)."""
    return OIDCVerifier(auth, clock, Fetcher(reactor))


__all__: Iterable[str] = ("OIDCVerifier", "oidcVerifier")
