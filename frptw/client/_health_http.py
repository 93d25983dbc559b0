"""frp's ``http`` health check: ``GET http://local_ip:local_port<path>``, healthy on a 2xx status.

Kept apart from :mod:`frptw.client._health` so that only a process with an http check imports
twisted.web's client.  The configured headers are sent (a ``Host`` header sets the request's
host); the body is not read.
"""

from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from frptw.client._health import Probe
from frptw.config.proxies import ProxyConfig
from frptw.errors import FrpError
from frptw.transport.sockets import tcpEndpoint


class UnhealthyResponse(FrpError):
    """The http check got an answer, but not a 2xx one."""


class _DropBody(Protocol):
    """Receives a checked response's body by aborting it: only the status counts."""

    def connectionMade(self) -> None:
        self.transport.stopProducing()


@implementer(IAgentEndpointFactory)
class _LocalEndpoints:
    """The Agent's endpoints: :func:`tcpEndpoint`, so a literal local IP is not resolved."""

    def __init__(self, reactor, timeout: float) -> None:
        self._reactor = reactor
        self._timeout = timeout

    def endpointForURI(self, uri):
        return tcpEndpoint(self._reactor, uri.host.decode("ascii"), uri.port, self._timeout)


def httpProbe(reactor, config: ProxyConfig) -> Probe:
    check = config.health_check
    host = f"[{config.local_ip}]" if ":" in config.local_ip else config.local_ip
    path = check.path if check.path.startswith("/") else "/" + check.path
    url = f"http://{host}:{config.local_port}{path}".encode("utf-8")
    headers = Headers()
    for header in check.http_headers:
        headers.setRawHeaders(header.name, [header.value])  # Go's Header.Set: the last one wins
    pool = HTTPConnectionPool(reactor, persistent=False)
    agent = Agent.usingEndpointFactory(reactor, _LocalEndpoints(reactor, check.timeout_seconds), pool)

    def verdict(response: IResponse) -> None:
        response.deliverBody(_DropBody())
        if not 200 <= response.code < 300:
            raise UnhealthyResponse(f"do http health check, StatusCode is [{response.code}] not 2xx")

    return lambda: agent.request(b"GET", url, headers.copy()).addCallback(verdict)
