"""The HTTP side of frps's server plugins: one POST per call, on twisted.web's Agent.

:class:`PluginClient` owns what the plugins share: one :class:`~twisted.web.client.HTTPConnectionPool`
of persistent connections (Go's client keeps them too, idle for up to 90 s), the clock and the
per-call timeout.  :class:`HTTPPlugin` is one configured plugin: its URL (frp's rules:
``addr`` + ``path``, ``http://`` unless ``addr`` names a scheme), its ``ops``, and its TLS
policy: ``https://`` addresses verify the certificate (system roots and host name) only with
``tlsVerify``; without it, as Go's ``InsecureSkipVerify``, anything is accepted (SNI is still
sent for a host name).  Plugins at an address literal (``127.0.0.1:9000``, the usual case) are
dialled as they are, names resolved (:func:`~frptw.transport.sockets.tcpEndpoint`): Agent's own
``HostnameEndpoint`` sends even "127.0.0.1" through getaddrinfo in the thread pool, a thread
hand-off per connection, which under load once failed a call with ``DNSLookupError``.  A reply
is read up to :data:`MAX_REPLY` bytes, then judged by :mod:`frptw.server.plugin_rpc`.  Loaded only when plugins are configured.
"""

from io import BytesIO
from typing import List, Set
from urllib.parse import urlsplit, urlunsplit

from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import wrapClientTLS
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.interfaces import IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    FileBodyProducer,
    HTTPConnectionPool,
    RequestGenerationFailed,
    RequestNotSent,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    _HTTP11ClientFactory,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

from frptw.errors import FrpError
from frptw.server import plugin_rpc as rpc
from frptw.transport.sockets import tcpEndpoint
from frptw.transport.tls import clientContextFactory

#: Bytes of a reply read at most; a longer one is a failed call.
MAX_REPLY = 1024 * 1024
#: Seconds an idle connection to a plugin is kept (Go's default transport: 90 s).
IDLE_TIMEOUT = 90


class _QuietFactory(_HTTP11ClientFactory):
    noisy = False  # no "Starting factory" line per connection to a plugin (frp logs none)


class _QuietPool(HTTPConnectionPool):
    """Twisted's pool, building quiet factories (``_factory`` is the private attribute the pool takes
    its factory class from; should Twisted rename it, the only effect is the log noise coming back)."""

    _factory = _QuietFactory


@implementer(IPolicyForHTTPS)
class _NoVerification:
    """TLS to a plugin as Go does it with ``InsecureSkipVerify``: SNI, no certificate check."""

    def creatorForNetloc(self, hostname: bytes, port: int):
        return clientContextFactory(hostname.decode("idna"))


@implementer(IAgentEndpointFactory)
class _PluginEndpoints:
    """Where the Agent connects for a plugin URL: :func:`tcpEndpoint` (literals as they are,
    ``TCP_NODELAY``), in TLS for ``https://`` as ``policy`` says."""

    def __init__(self, reactor, policy: IPolicyForHTTPS, timeout: float) -> None:
        self._reactor = reactor
        self._policy = policy
        self._timeout = timeout

    def endpointForURI(self, uri) -> IStreamClientEndpoint:
        endpoint = tcpEndpoint(self._reactor, uri.host.decode("idna"), uri.port, self._timeout)
        if uri.scheme == b"https":
            endpoint = wrapClientTLS(self._policy.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint


def plugin_url(addr: str, path: str) -> str:
    """The URL frp calls: ``addr`` + ``path``, ``http://`` unless ``addr`` names a scheme (and
    ``/`` for an empty path, as Go's request line has it)."""
    url = addr + path
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path or "/"))


class _ReplyReader(Protocol):
    """Collects a reply body of at most :data:`MAX_REPLY` bytes."""

    def __init__(self, done: Deferred) -> None:
        self._done = done
        self._parts: List[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_REPLY:
            self.transport.stopProducing()
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._done.called:
            return
        if self._size > MAX_REPLY:
            self._done.errback(rpc.ReplyError(f"reply longer than {MAX_REPLY} bytes"))
        elif reason.check(ResponseDone):
            self._done.callback(b"".join(self._parts))
        else:
            self._done.errback(reason)


class PluginClient:
    """The connections, clock and timeout every plugin of one frps shares."""

    def __init__(self, reactor, clock: IReactorTime, timeout: float) -> None:
        self._reactor = reactor
        self._clock = clock
        self._timeout = timeout
        self._pool = _QuietPool(reactor, persistent=True)
        self._pool.cachedConnectionTimeout = IDLE_TIMEOUT

    def plugin(self, options) -> "HTTPPlugin":
        """The plugin ``options`` (an :class:`~frptw.config.model_common.HTTPPluginOptions`) describes."""
        return HTTPPlugin(options, self._reactor, self._clock, self._pool, self._timeout)

    @staticmethod
    def describe(failure: Failure) -> str:
        """One line saying why a call failed (the Agent wraps causes in lists of failures)."""
        if failure.check(ResponseFailed):  # also ResponseNeverReceived
            return "; ".join(PluginClient.describe(reason) for reason in failure.value.reasons)
        return failure.getErrorMessage() or failure.type.__name__

    @staticmethod
    def expected(failure: Failure) -> bool:
        """True if a call failed in a way a plugin call can (a bad reply, the network, TLS, the
        timeout, a withdrawal); anything else is a bug of frptw."""
        return bool(failure.check(FrpError, TimeoutError, CancelledError, ConnectError, ConnectionClosed,
                                  ResponseFailed, RequestTransmissionFailed, RequestNotSent, RequestGenerationFailed))

    @staticmethod
    def cancelled(failure: Failure) -> bool:
        """True if a call failed because it was cancelled (not because of the plugin)."""
        if failure.check(ResponseFailed):
            return any(reason.check(CancelledError) for reason in failure.value.reasons)
        return bool(failure.check(CancelledError))

    def close(self) -> "Deferred[None]":
        """Close the idle connections."""
        return self._pool.closeCachedConnections()


class HTTPPlugin:
    """One configured plugin: its name, the operations it takes and how to reach it."""

    def __init__(self, options, reactor, clock: IReactorTime, pool: HTTPConnectionPool, timeout: float) -> None:
        self.name: str = options.name
        self.ops: Set[str] = set(options.ops)
        self.url = plugin_url(options.addr, options.path)
        policy = BrowserLikePolicyForHTTPS() if options.tls_verify else _NoVerification()
        self._agent = Agent.usingEndpointFactory(reactor, _PluginEndpoints(reactor, policy, timeout), pool=pool)
        self._clock = clock
        self._timeout = timeout

    def call(self, op: str, content: rpc.Content, reqid: str) -> "Deferred[rpc.Reply]":
        """POST one operation; fires with the plugin's reply, or fails (ReplyError, a
        connection error, TimeoutError after the call timeout)."""
        body = FileBodyProducer(BytesIO(rpc.request_body(op, content)))
        headers = Headers({b"Content-Type": [b"application/json"], b"X-Frp-Reqid": [reqid.encode("ascii")]})
        d = self._agent.request(b"POST", (self.url + rpc.request_target(op)).encode("ascii"), headers, body)
        d.addCallback(self._read)
        expired: List[bool] = []

        def expire() -> None:
            expired.append(True)
            d.cancel()

        timer = self._clock.callLater(self._timeout, expire)

        def settled(result: object) -> object:
            if timer.active():
                timer.cancel()
            if expired and isinstance(result, Failure):
                raise TimeoutError(f"no answer in {self._timeout:g} s")
            return result

        return d.addBoth(settled)

    def _read(self, response) -> "Deferred[rpc.Reply]":
        done: Deferred = Deferred(lambda _: reader.transport.stopProducing())
        reader = _ReplyReader(done)
        response.deliverBody(reader)
        done.addCallback(lambda body: rpc.parse_reply(response.code, body))
        return done
