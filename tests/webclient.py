"""Talk HTTP/1.1 to a twisted.web Site in memory (StringTransport) or over loopback, for the
management-server tests; responses are parsed with h11, never by hand.

* :func:`exchange` sends one raw request to a fresh in-memory connection of a Site and parses
  what came back so far (``None`` when nothing came yet: a delayed answer);
* :class:`Response` is a parsed answer: status, headers (lower-case names), body;
* :func:`fetch` does one request over a real connection (HTTP or HTTPS) with twisted's Agent.
"""

import base64
import io
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import h11
from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, FileBodyProducer, readBody
from twisted.web.http_headers import Headers


@dataclass
class Response:
    status: int
    headers: Dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def basic(user: str, password: str) -> Tuple[bytes, bytes]:
    """An ``Authorization: Basic`` header as a (name, value) pair."""
    token = base64.b64encode(f"{user}:{password}".encode())
    return b"authorization", b"Basic " + token


def rawRequest(method: str, path: str, headers=(), body: bytes = b"") -> bytes:
    """An HTTP/1.1 request's bytes (h11 writes them)."""
    conn = h11.Connection(h11.CLIENT)
    allHeaders = [(b"host", b"admin.test")] + list(headers)
    if body or method in ("PUT", "POST"):
        allHeaders.append((b"content-length", str(len(body)).encode()))
    data = conn.send(h11.Request(method=method, target=path, headers=allHeaders))
    if body:
        data += conn.send(h11.Data(data=body))
    return data + conn.send(h11.EndOfMessage())


def parse(data: bytes, method: str = "GET") -> Optional[Response]:
    """The first complete response in ``data``, or None when it is not complete yet."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[(b"host", b"x")]))
    conn.send(h11.EndOfMessage())
    if not data:
        return None
    conn.receive_data(data)
    head, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            return None
        if isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            headers = {k.decode().lower(): v.decode() for k, v in head.headers}
            return Response(head.status_code, headers, body)


class Connection:
    """One in-memory connection to ``site``: send raw requests, read what came back."""

    def __init__(self, site) -> None:
        self.transport = StringTransport()
        self.protocol = site.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def send(self, raw: bytes) -> None:
        self.protocol.dataReceived(raw)

    def response(self, method: str = "GET") -> Optional[Response]:
        return parse(self.transport.value(), method)

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def exchange(site, method: str, path: str, headers=(), body: bytes = b"") -> Optional[Response]:
    """Send one request on a new in-memory connection; the response (None if not yet there)."""
    connection = Connection(site)
    connection.send(rawRequest(method, path, headers, body))
    return connection.response(method)


async def fetch(reactor, url: str, method: str = "GET", headers=(), body: Optional[bytes] = None,
                trustRoot=None) -> Response:
    """One request over a real connection with twisted's Agent (HTTPS trusting ``trustRoot``)."""
    policy = BrowserLikePolicyForHTTPS(trustRoot) if trustRoot is not None else BrowserLikePolicyForHTTPS()
    agent = Agent(reactor, contextFactory=policy)
    producer = FileBodyProducer(io.BytesIO(body)) if body is not None else None
    response = await agent.request(method.encode(), url.encode(), Headers(dict((k, [v]) for k, v in headers)),
                                   producer)
    data = await readBody(response)
    found = {k.decode().lower(): v[0].decode() for k, v in response.headers.getAllRawHeaders()}
    return Response(response.code, found, data)
