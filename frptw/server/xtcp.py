"""``xtcp`` proxies on frps: no port, no user connections -- only hole-punching rendezvous.

An xtcp proxy registers with the server's
:class:`~frptw.server.nathole.NatHoleController` (``allow_users`` empty means the owner's own
user, as for stcp).  When a visitor's ``NatHoleVisitor`` opens a session, the controller wakes
the proxy with the session's ``sid``; the proxy takes one of the owner's work connections,
writes ``StartWorkConn {"proxy_name"}`` and ``NatHoleSid {"sid"}`` on it (v1, in clear, as frp
does) and closes it.  The owner then answers on its control connection (``NatHoleClient``).
"""

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from frptw.logs import FrpLogger
from frptw.server.nathole import NatHoleController
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.messages import NatHoleSid, NewProxy, encode_message

log = FrpLogger()


class XTCPProxy(BaseProxy):
    """An xtcp proxy: a name the controller can wake, for as long as it runs."""

    type = "xtcp"

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes, controller: NatHoleController) -> None:
        super().__init__(owner, request, key)
        self._controller = controller
        controller.listen(self.name, request.sk, list(request.allow_users) or [owner.user], owner.runId, self._wake)

    def _wake(self, sid: str) -> None:
        if self._closing:
            return
        d = Deferred.fromCoroutine(self._startWorkConn(None, None))
        d.addCallbacks(lambda work: self._sendSid(work, sid), self._sidUndelivered)

    def _sendSid(self, work: SwitchableProtocol, sid: str) -> None:
        work.transport.write(encode_message(NatHoleSid(sid=sid)))
        work.transport.loseConnection()

    def _sidUndelivered(self, failure: Failure) -> None:
        log.warn("[{run_id}] [{name}] no work connection for a nat hole session: {error}", run_id=self.runId,
                 name=self.name, error=failure.getErrorMessage())

    def released(self) -> None:
        self._controller.close(self.name)
