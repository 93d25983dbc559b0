"""One small HTTP client for the few requests frp itself makes (OIDC: the token endpoint on
frpc, the issuer's discovery document and keys on frps), on Twisted's ``Agent``.

:class:`Fetcher` sends one request and fires with ``(status, content type, body)``; the body is
read up to ``MAX_BODY`` bytes (a longer one fails), and the whole exchange must end within
``timeout`` seconds, so a slow or hostile server costs bounded memory and time and never blocks
the reactor.  TLS follows the settings frp has for these requests: the system's trust store by
default, a CA file of one's own (``trustedCaFile``), or no verification
(``insecureSkipVerify``); frpc's token requests may go through a forward proxy
(``auth.oidc.proxyURL``).
"""

from typing import TYPE_CHECKING, Dict, Optional, Tuple

from twisted.internet import ssl
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from frptw.errors import FrpError

if TYPE_CHECKING:
    from frptw.wire.tunnels import ProxyURL

#: Largest answer read (discovery documents and key sets are a few KiB).
MAX_BODY = 1024 * 1024
#: Seconds one request may take, connecting included.
DEFAULT_TIMEOUT = 30.0


class FetchError(FrpError):
    """The request could not be made or its answer not read."""


class _Body(Protocol):
    def __init__(self, limit: int) -> None:
        self._parts = []
        self._size = 0
        self._limit = limit
        self.done: Deferred = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            if not self.done.called:
                self.done.errback(FetchError(f"answer longer than {self._limit} bytes"))
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


@implementer(IPolicyForHTTPS)
class _Unverified:
    """``insecureSkipVerify``: TLS without checking the server's certificate."""

    def creatorForNetloc(self, hostname: bytes, port: int):
        return ssl.CertificateOptions(verify=False)


@implementer(IPolicyForHTTPS)
class _OwnCA:
    """``trustedCaFile``: the server's certificate must chain to this CA and name the host."""

    def __init__(self, caFile: str) -> None:
        with open(caFile, "rb") as f:
            self._root = ssl.Certificate.loadPEM(f.read())

    def creatorForNetloc(self, hostname: bytes, port: int):
        return ssl.optionsForClientTLS(hostname.decode("ascii"), trustRoot=self._root)


def tlsPolicy(trustedCaFile: str = "", insecureSkipVerify: bool = False) -> IPolicyForHTTPS:
    if insecureSkipVerify:
        return _Unverified()
    if trustedCaFile:
        try:
            return _OwnCA(trustedCaFile)
        except (OSError, ssl.SSL.Error) as e:
            raise FetchError(f"failed to read OIDC CA certificate file {trustedCaFile!r}: {e}") from None
    return BrowserLikePolicyForHTTPS()


class Fetcher:
    """Sends requests with one Agent (and its connection pool, not kept alive); through the
    forward ``proxy`` when one is given (:mod:`frptw.transport.proxied_agent`)."""

    def __init__(self, reactor, policy: Optional[IPolicyForHTTPS] = None, timeout: float = DEFAULT_TIMEOUT,
                 proxy: Optional["ProxyURL"] = None) -> None:
        self._reactor = reactor
        policy = policy or BrowserLikePolicyForHTTPS()
        pool = HTTPConnectionPool(reactor, persistent=False)
        if proxy is None:
            self._agent = Agent(reactor, contextFactory=policy, pool=pool)
        else:
            from frptw.transport.proxied_agent import ProxiedAgent  # only with a proxy

            self._agent = ProxiedAgent(reactor, proxy, policy, pool, timeout)
        self._timeout = timeout

    def request(self, method: str, url: str, headers: Optional[Dict[str, str]] = None,
                body: Optional[bytes] = None) -> "Deferred[Tuple[int, str, bytes]]":
        """Fires with ``(status, content type, body)``; fails with FetchError or the
        connection's error (after ``timeout`` s: TimeoutError)."""
        producer = _BytesBody(body) if body is not None else None
        sent = Headers({k.encode(): [v.encode()] for k, v in (headers or {}).items()})
        d = self._agent.request(method.encode(), url.encode(), sent, producer)
        d.addCallback(self._read)
        d.addTimeout(self._timeout, self._reactor)
        return d

    def _read(self, response: IResponse) -> Deferred:
        collector = _Body(MAX_BODY)
        response.deliverBody(collector)
        contentType = (response.headers.getRawHeaders(b"content-type") or [b""])[0].decode("latin-1")
        return collector.done.addCallback(lambda body: (response.code, contentType, body))


@implementer(IBodyProducer)
class _BytesBody:
    """A request body already in memory, written at once."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer) -> Deferred:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass
