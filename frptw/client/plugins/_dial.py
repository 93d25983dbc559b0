"""The backend half most plugins share: dial something, write the PROXY header, splice.

``unix_domain_socket`` and ``tls2raw`` forward every connection to one fixed backend;
``http_proxy`` and ``socks5`` dial the target a user asked for and answer before splicing.
"""

from typing import Callable, Tuple

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure

from frptw.transport.sockets import quietFactory
from frptw.transport.splice import splice
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.hostport import split_host_port

#: How long a plugin waits for its backend to accept (frp's local dial timeout).
DIAL_TIMEOUT = 10.0


def parseAddress(text: str) -> Tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to dial, as Go's dialer takes it; ValueError otherwise."""
    host, port = split_host_port(text)
    if port > 65535:
        raise ValueError(f"address {text}: invalid port")
    return host, port


def dial(endpoint: IStreamClientEndpoint) -> "Deferred[SwitchableProtocol]":
    """Connect to ``endpoint``; fires with a protocol that holds what the backend sends until
    it is spliced (or switched)."""
    return endpoint.connect(quietFactory(SwitchableProtocol))


def joinBackend(conn: SwitchableProtocol, backend: SwitchableProtocol, header: bytes = b"") -> "Deferred[None]":
    """Write ``header`` (a PROXY protocol header, or nothing) to ``backend``, then splice it
    with ``conn``; fires once both are closed."""
    if header:
        backend.transport.write(header)
    return splice(conn, backend)


def forward(
    conn: SwitchableProtocol,
    endpoint: IStreamClientEndpoint,
    header: bytes,
    failed: Callable[[Failure], None],
) -> "Deferred[None]":
    """Dial ``endpoint`` and join it with ``conn``; if the dial fails, call ``failed`` (which
    logs frp's line) and close ``conn``.  Fires once it is all over, never fails."""

    def connected(backend: SwitchableProtocol) -> "Deferred[None]":
        return joinBackend(conn, backend, header)

    def notConnected(failure: Failure) -> None:
        failed(failure)
        conn.transport.loseConnection()

    return dial(endpoint).addCallbacks(connected, notConnected)
