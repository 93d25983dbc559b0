"""frp's token authentication keys (wire-protocol.md §5.3).

frpc proves it knows the shared token by sending ``MD5(token || decimal timestamp)`` as hex in
``Login.privilege_key`` (and, with the additional scopes, in every ``Ping`` and
``NewWorkConn``).  Visitors sign with the proxy's secret key the same way
(``NewVisitorConn.sign_key``, ``NatHoleVisitor.sign_key``).  frps does not check the
timestamp's age, so neither do we.
"""

import hashlib
import hmac

__all__ = ["AUTH_SCOPES", "SCOPE_HEARTBEATS", "SCOPE_NEW_WORK_CONNS", "TokenSigner", "privilege_key",
           "verify_privilege_key"]

#: ``auth.additionalScopes``: with ``HeartBeats`` every ``Ping`` carries a privilege key, with
#: ``NewWorkConns`` every ``NewWorkConn`` does (frp's spelling; frpc and frps must agree).
SCOPE_HEARTBEATS = "HeartBeats"
SCOPE_NEW_WORK_CONNS = "NewWorkConns"
AUTH_SCOPES = (SCOPE_HEARTBEATS, SCOPE_NEW_WORK_CONNS)


def privilege_key(token: str, timestamp: int) -> str:
    """Lowercase hex MD5 of ``token`` followed by ``timestamp`` in decimal."""
    return hashlib.md5(f"{token}{timestamp}".encode("utf-8")).hexdigest()


def verify_privilege_key(token: str, timestamp: int, key: str) -> bool:
    """Whether ``key`` is the privilege key for ``token`` and ``timestamp``.

    The comparison takes the same time wherever the first difference is, so a peer cannot
    recover the expected key byte by byte from response timing.
    """
    expected = privilege_key(token, timestamp).encode("ascii")
    return hmac.compare_digest(expected, key.encode("utf-8", "surrogatepass"))


class TokenSigner:
    """frpc's proof for a Login, Ping or NewWorkConn with ``auth.method = "token"``: the
    fields ``privilege_key`` and ``timestamp`` for the time ``now`` (OIDC has its own signer,
    frptw.client._oidc, that gives the access token instead)."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, now: float) -> dict:
        timestamp = int(now)
        return {"privilege_key": privilege_key(self._token, timestamp), "timestamp": timestamp}
