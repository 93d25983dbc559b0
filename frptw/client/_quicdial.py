"""frpc's QUIC connection to frps (``transport.protocol = "quic"``, wire-protocol.md §2.8).

frp opens one QUIC connection per session and makes every logical connection (control, work,
visitor) a new stream of it, whatever ``tcpMux`` says.  :class:`QuicRoot` gives the service
the same handle on that connection as on a TCP one (``whenLost``, ``lostReason``,
``transport.loseConnection``/``abortConnection``), and its ``session`` stands where the yamux
session stands for TCP: ``openStream(protocol)``.
"""

from typing import Optional

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from frptw.config import ClientConfig
from frptw.transport.quic import QuicSession
from frptw.transport.quicudp import clientConfiguration, dialQuic


class _SessionHandle:
    """The ``transport`` of a :class:`QuicRoot`: closing it closes the QUIC connection."""

    def __init__(self, session: QuicSession) -> None:
        self._session = session

    def loseConnection(self) -> None:
        self._session.close()

    def abortConnection(self) -> None:
        self._session.abort()

    def getPeer(self):
        return self._session.getPeer()

    def getHost(self):
        return self._session.getHost()


class QuicRoot:
    """A QUIC connection to frps, shaped like frpc's TCP root connection."""

    def __init__(self, session: QuicSession, clock: IReactorTime) -> None:
        self.session = session
        self.transport = _SessionHandle(session)
        self.lostReason: Optional[Failure] = None
        self.whenLost: Deferred = Deferred()
        # As with a TCP connection, the end is reported on a later turn, never from inside the
        # loseConnection() that caused it (ClientService's state machine relies on that).
        session.whenClosed().addCallback(lambda _: clock.callLater(0, self._closed))

    def _closed(self) -> None:
        why = self.session.closeReason
        if why == "closed locally":
            self.lostReason = Failure(ConnectionDone("QUIC connection closed"))
        else:
            self.lostReason = Failure(ConnectionLost(f"QUIC connection closed: {why}"))
        self.whenLost.callback(None)


class QuicDialer:
    """Opens frpc's QUIC connection to frps; ``dial`` fires with ``(QuicRoot, None)``: no byte
    stream to stack anything on, the root's session opens the logical connections."""

    def __init__(self, config: ClientConfig, reactor) -> None:
        transport = config.transport
        tls = transport.tls
        # frp: the TLS files only count when tls.enable is on; the server name always does.
        files = (tls.trusted_ca_file, tls.cert_file, tls.key_file) if tls.enable else ("", "", "")
        self._configuration = clientConfiguration(transport.quic, tls.server_name or config.server_addr, *files)
        self._config = config
        self._reactor = reactor
        self.description = f"{config.server_addr}:{config.server_port}"

    def dial(self) -> Deferred:
        config = self._config
        d = dialQuic(
            self._reactor,
            config.server_addr,
            config.server_port,
            self._configuration,
            config.transport.quic,
            config.transport.dial_server_timeout,
            config.transport.connect_server_local_ip,
        )
        return d.addCallback(lambda session: (QuicRoot(session, self._reactor), None))
