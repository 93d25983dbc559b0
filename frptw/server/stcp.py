"""``stcp`` and ``sudp`` proxies: reached only through visitor connections (wire-protocol.md §9).

Such a proxy opens no port.  It waits for ``NewVisitorConn`` messages naming it, sent by
another frpc (the visitor), and checks them as frp does:

* ``sign_key`` must be md5(``sk`` + timestamp) -- else ``visitor connection of [name] auth
  failed``;
* the visitor's user (the ``user`` of the client whose ``run_id`` the visitor sends; ``""``
  without a run id, as older visitors do) must be in ``allow_users`` or ``allow_users`` must
  contain ``*``; an empty list admits only the owner's own user -- else ``visitor connection
  of [name] user [u] not allowed``.

An accepted visitor connection gets ``NewVisitorConnResp``, then the layers the visitor asked
for (AES-CFB keyed with ``sk``, snappy), and from there on is handled exactly like a user
connection of a tcp proxy: frps takes a work connection of the owner (``StartWorkConn`` with
the visitor connection's addresses) and splices the two.  For frps an sudp tunnel is the same
byte pipe (the UDP packets inside are the two frpc's business), so both types are one class.
"""

from typing import Optional

from frptw.logs import FrpLogger
from frptw.server.proxy_base import BaseProxy, ProxyOwner, UserConnection
from frptw.transport.dataplane import DataPlane, stackDataPlane
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.auth import verify_privilege_key
from frptw.wire.codec import choose_compression
from frptw.wire.crypto import derive_key
from frptw.wire.messages import NewProxy, NewVisitorConn, NewVisitorConnResp, encode_message

log = FrpLogger()


class SecretProxy(BaseProxy):
    """An stcp or sudp ("secret") proxy: reached only by visitors that know its ``sk``."""

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes, kind: str) -> None:
        super().__init__(owner, request, key)
        self.type = kind
        self._secret = request.sk
        self._allowUsers = list(request.allow_users) or [owner.user]
        log.info("[{run_id}] [{name}] {type} proxy custom listen success", run_id=self.runId, name=self.name,
                 type=kind)

    def refusal(self, request: NewVisitorConn, visitorUser: str) -> Optional[str]:
        """Why a visitor connection is refused (frp's text), or None if it is accepted."""
        if not verify_privilege_key(self._secret, request.timestamp, request.sign_key):
            return f"visitor connection of [{self.name}] auth failed"
        if visitorUser not in self._allowUsers and "*" not in self._allowUsers:
            return f"visitor connection of [{self.name}] user [{visitorUser}] not allowed"
        return None

    def visitorConnected(self, conn: SwitchableProtocol, request: NewVisitorConn) -> None:
        """Answer an accepted visitor connection and serve it like a user connection."""
        plane = DataPlane(derive_key(self._secret), request.use_encryption, request.use_compression)
        plane = plane.compressedWith(choose_compression(request.frptw_compressions))
        answer = NewVisitorConnResp(proxy_name=self.name, frptw_compression=plane.compression)
        conn.transport.write(encode_message(answer))
        stackDataPlane(conn, plane, "server", self.owner.clock).switchTo(UserConnection(self))
