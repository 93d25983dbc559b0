"""frps's token checks and the way it words errors for the client (wire-protocol.md §5.3).

Each ``verify_*`` returns ``None`` when the message passes, or frp's exact error text.  frps
checks the Login always, and a Ping or NewWorkConn only for the scopes it has configured; the
timestamp is not compared with the clock (frp does not either).
"""

from typing import Iterable, Optional

from frptw.wire.auth import SCOPE_HEARTBEATS, SCOPE_NEW_WORK_CONNS, verify_privilege_key


class TokenVerifier:
    """Checks ``privilege_key`` = md5(token + timestamp) on the messages that carry one."""

    def __init__(self, token: str, additional_scopes: Iterable[str] = ()) -> None:
        self._token = token
        scopes = set(additional_scopes)
        self.heartbeats = SCOPE_HEARTBEATS in scopes
        self.new_work_conns = SCOPE_NEW_WORK_CONNS in scopes

    def _matches(self, key: str, timestamp: int) -> bool:
        return verify_privilege_key(self._token, timestamp, key)

    def verify_login(self, privilege_key: str, timestamp: int) -> Optional[str]:
        if not self._matches(privilege_key, timestamp):
            return "token in login doesn't match token from configuration"
        return None

    def verify_ping(self, privilege_key: str, timestamp: int) -> Optional[str]:
        if self.heartbeats and not self._matches(privilege_key, timestamp):
            return "token in heartbeat doesn't match token from configuration"
        return None

    def verify_new_work_conn(self, privilege_key: str, timestamp: int) -> Optional[str]:
        if self.new_work_conns and not self._matches(privilege_key, timestamp):
            return "token in NewWorkConn doesn't match token from configuration"
        return None


def client_error(summary: str, error: str, detailed: bool) -> str:
    """The error text frps sends to frpc: the real cause, or only ``summary`` when
    ``detailed_errors_to_client`` is off (frp's ``GenerateResponseErrorString``)."""
    return error if detailed else summary
