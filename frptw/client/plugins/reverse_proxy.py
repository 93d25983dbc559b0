"""``http2http``, ``http2https``, ``https2http``, ``https2https``: frpc as an HTTP reverse proxy
in front of ``localAddr`` (frp's plugins on Go's ``httputil.ReverseProxy``).

The four are one machine, :class:`ReverseProxyPlugin`, differing in three choices (the table
:data:`MODES`): TLS terminated on the work connection (``https2*``: ``crtPath``/``keyPath`` or
a fresh self-signed certificate), TLS to ``localAddr`` (``*2https``, the certificate not
verified, as frp), and what becomes of the ``X-Forwarded-*`` headers, which Go's ``Rewrite``
hook removes before each plugin puts back its own (:class:`Forwarding`).

Each work connection is a :class:`PluginFrontConnection`, the
:class:`~frptw.transport.http_front.HTTPFrontConnection` frps's vhost also uses: requests are
parsed with h11 and each is forwarded by an :class:`~frptw.transport.http_exchange.Exchange`
over a connection to ``localAddr`` lent by the plugin's
:class:`~frptw.transport.http_pool.BackendPool` (kept alive for the next request, from any
work connection).  Bodies stream both ways with backpressure; a 101 splices the two
connections (websocket); a backend that cannot be reached is ``502`` with an empty body, as
Go answers.  The ``https2*`` plugins answer ``421`` to a request whose Host is not the TLS
server name, and Go's ``400`` to a client speaking plain HTTP (:class:`TLSDoor`), as frp 0.65
does.

What differs from Go on purpose: HTTP/2 is not offered (``enableHTTP2`` is accepted; clients
speak HTTP/1.1), the backend is not sent ``Accept-Encoding: gzip`` on the client's behalf (Go's
transport adds it and unzips the answer), and a response without ``Content-Type`` is relayed
without one (Go's server sniffs one).  A missing ``Date`` is added, as Go's server adds it
(:meth:`~frptw.transport.http_front.HTTPFrontConnection.writeResponse`).
"""

import enum
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import h11
from OpenSSL import SSL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from zope.interface import implementer

from frptw.client.plugins._contract import ConnectionInfo, IClientPlugin, PluginContext
from frptw.client.plugins._dial import DIAL_TIMEOUT, dial
from frptw.config.plugins import ClientPluginOptions
from frptw.logs import FrpLogger
from frptw.transport.addresses import describePeer
from frptw.transport.http_exchange import Backend, Exchange
from frptw.transport.http_front import HEADER_TIMEOUT, HTTPFrontConnection
from frptw.transport.http_headers import (
    HOP_BY_HOP,
    Headers,
    canonical_name,
    connection_tokens,
    first_header,
    header_values,
    is_upgrade,
    set_all,
)
from frptw.transport.http_pool import BackendPool
from frptw.transport.sockets import tcpEndpoint
from frptw.transport.switch import SwitchableProtocol
from frptw.transport.timers import cancelCall
from frptw.transport.tls import clientContextFactory, serverContextFactory, startClientTLS, startServerTLS

_log = FrpLogger(namespace="frptw.client.plugins")


class Forwarding(enum.Enum):
    """What a plugin sends as ``X-Forwarded-For/Host/Proto`` (Go removes them, and
    ``Forwarded``, before the plugin's ``Rewrite``)."""

    #: http2http: none at all.
    NONE = "none"
    #: http2https: the client's own three headers, as they came.
    KEEP = "keep"
    #: https2http, https2https: ``SetXForwarded``: the client's list plus its address, the
    #: original Host, ``https``.
    APPEND = "append"


@dataclass(frozen=True)
class Mode:
    frontTLS: bool
    backendTLS: bool
    forwarding: Forwarding


MODES: Dict[str, Mode] = {
    "http2http": Mode(False, False, Forwarding.NONE),
    "http2https": Mode(False, True, Forwarding.KEEP),
    "https2http": Mode(True, False, Forwarding.APPEND),
    "https2https": Mode(True, True, Forwarding.APPEND),
}

_FORWARDED = (b"x-forwarded-for", b"x-forwarded-host", b"x-forwarded-proto")
_REMOVED = frozenset(_FORWARDED + (b"forwarded", b"host"))


def origin_target(target: bytes) -> bytes:
    """The request target Go's transport writes: the path and query of an absolute-form target."""
    if target.startswith((b"http://", b"https://")):
        rest = target.split(b"://", 1)[1]
        slash = rest.find(b"/")
        query = rest.find(b"?")
        if slash == -1 or (query != -1 and query < slash):
            return b"/" + (rest[query:] if query != -1 else b"")
        return rest[slash:]
    return target


def rewrite_plugin_request(headers: Headers, forwarding: Forwarding, host: bytes, clientIP: str,
                           hostHeaderRewrite: str, setHeaders: Dict[str, str], chunked: bool) -> Headers:
    """The request head a plugin writes to ``localAddr``, as Go's ReverseProxy with frp's
    ``Rewrite``: hop-by-hop headers dropped (``Te: trailers`` kept), the forwarding headers as
    ``forwarding`` says, ``Host`` rewritten, ``requestHeaders.set`` applied (``Host`` among them
    has no effect in Go), the upgrade pair and the body's chunked framing put back.

    :param host: the request's Host (its authority for an absolute-form target).
    :param clientIP: the user's address (``X-Forwarded-For`` of the https plugins).
    """
    named = connection_tokens(headers)
    fixed = {lower: value for lower, value in set_all(setHeaders).items() if lower != b"host"} if setHeaders else {}
    out: Headers = [(b"Host", hostHeaderRewrite.encode("latin-1") or host)]
    for name, value in headers:
        lower = name.lower()
        if not (lower in HOP_BY_HOP or lower in named or lower in _REMOVED or lower in fixed):
            out.append((canonical_name(name), value))
    if b"trailers" in {token.strip().lower() for value in header_values(headers, b"te") for token in value.split(b",")}:
        out.append((b"Te", b"trailers"))
    forwarded: Headers = []
    if forwarding is Forwarding.KEEP:
        forwarded = [(canonical_name(name), value) for name, value in headers if name.lower() in _FORWARDED]
    elif forwarding is Forwarding.APPEND:
        ip = clientIP.encode("latin-1")
        if ip:
            forwarded.append((b"X-Forwarded-For", b", ".join(header_values(headers, b"x-forwarded-for") + [ip])))
        forwarded += [(b"X-Forwarded-Host", host), (b"X-Forwarded-Proto", b"https")]
    out += [(name, value) for name, value in forwarded if name.lower() not in fixed]
    out.extend(fixed.values())
    upgrade = first_header(headers, b"upgrade") if b"upgrade" in named else None
    if upgrade is not None:
        out += [(b"Connection", b"Upgrade"), (b"Upgrade", upgrade)]
    if chunked:
        out.append((b"Transfer-Encoding", b"chunked"))
    return out


def canonical_host(host: bytes) -> bytes:
    """frp's ``CanonicalHost``: lower case, without the port."""
    text = host.strip().lower()
    if text.startswith(b"["):
        return text.split(b"]", 1)[0] + b"]"
    return text.rsplit(b":", 1)[0] if text.count(b":") == 1 else text


def split_local_addr(localAddr: str, defaultPort: int) -> Tuple[str, int]:
    """``host:port`` (``[v6]:port``); Go's transport dials the scheme's port when none is given.
    Raises ValueError for an address it cannot dial."""
    host, port = localAddr, ""
    if localAddr.startswith("["):
        host, _, rest = localAddr[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif localAddr.count(":") == 1:
        host, port = localAddr.split(":")
    if not host:
        raise ValueError(f"no host in local address {localAddr!r}")
    return host, int(port) if port else defaultPort


#: The first bytes by which Go's TLS server recognises plain HTTP (``looksLikeHTTP``).
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
#: What Go's HTTPS server answers such a client before closing.
PLAIN_HTTP_ANSWER = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class TLSDoor(SwitchableProtocol):
    """The start of an ``https2*`` work connection: the first five bytes decide between TLS
    (handed to the front connection through ``startServerTLS``) and a plain HTTP request,
    answered as Go's HTTPS server answers it (400) and closed with one log line."""

    def __init__(self, plugin: "ReverseProxyPlugin", clientIP: str) -> None:
        super().__init__(bufferLimit=None)
        self._plugin = plugin
        self._clientIP = clientIP
        self._size = 0
        self._deadline: Optional[IDelayedCall] = None

    def connectionMade(self) -> None:
        super().connectionMade()
        # Go's ReadHeaderTimeout covers the handshake; the front connection's head timer takes
        # over once TLS starts, this one covers the bytes before.
        self._deadline = self._plugin.context.reactor.callLater(HEADER_TIMEOUT, self._timedOut)

    def _timedOut(self) -> None:
        self._deadline = None
        _log.info("[{name}] http: TLS handshake error from {peer}: no handshake within {t} s",
                  name=self._plugin.context.name, peer=describePeer(self.transport), t=HEADER_TIMEOUT)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        cancelCall(self._deadline)
        super().connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        if self.switchedTo is not None:
            super().dataReceived(data)
            return
        self.hold(data)
        self._size += len(data)
        if self._size < 5:
            return
        cancelCall(self._deadline)
        first = b"".join(self._held)[:5]
        plugin = self._plugin
        if first in _HTTP_STARTS:
            _log.info("[{name}] http: TLS handshake error from {peer}: client sent an HTTP request to an HTTPS server",
                      name=plugin.context.name, peer=describePeer(self.transport))
            self.switchTo(_Answer(PLAIN_HTTP_ANSWER))
            return
        top = startServerTLS(self, plugin._serverTLS)
        top.switchTo(PluginFrontConnection(plugin, self._clientIP))


class _Answer(Protocol):
    """Writes one answer, then closes (whatever else arrives is dropped)."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connectionMade(self) -> None:
        self.transport.write(self._answer)
        self.transport.loseConnection()


class PluginExchange(Exchange):
    """An exchange of a plugin: ``502`` when ``localAddr`` fails, Go's ReverseProxy warning."""

    FAILURE_LOG = "[{name}] http: proxy error: {reason}"


class PluginFrontConnection(HTTPFrontConnection):
    """One work connection of an HTTP plugin (after TLS for ``https2*``)."""

    def __init__(self, plugin: "ReverseProxyPlugin", clientIP: str) -> None:
        super().__init__(plugin.context.reactor)
        self.plugin = plugin
        self.clientIP = clientIP
        self._served = False

    def handleRequest(self, request: h11.Request, headers: Headers, chunked: bool) -> None:
        self._served = True
        plugin = self.plugin
        host = first_header(headers, b"host") or b""
        target = request.target
        if target.startswith((b"http://", b"https://")):
            host = target.split(b"://", 1)[1].split(b"/", 1)[0].split(b"?", 1)[0]
        if plugin.mode.frontTLS:
            serverName = self.transport.getHandle().get_servername() or b""
            if serverName and canonical_host(serverName) != canonical_host(host):
                self.answer(421, [], b"")
                return
        options = plugin.options
        forwarded = rewrite_plugin_request(headers, plugin.mode.forwarding, host or plugin.localAddr.encode("latin-1"),
                                           self.clientIP, options.host_header_rewrite,
                                           options.request_headers.set, chunked)
        self.forward(PluginExchange(self, plugin.pool, plugin.context.name,
                                    h11.Request(method=request.method, target=origin_target(target),
                                                headers=forwarded),
                                    is_upgrade(headers), {}, 0, failStatus=502))

    def answerFailed(self, status: int) -> None:
        self.answer(status, [], b"")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if reason.check(SSL.Error) and not self._served:
            _log.info("[{name}] http: TLS handshake error from {peer}: {error}", name=self.plugin.context.name,
                      peer=describePeer(self.transport), error=reason.getErrorMessage()[:200])
        super().connectionLost(reason)


@implementer(IClientPlugin)
class ReverseProxyPlugin:
    """One proxy's http2http / http2https / https2http / https2https plugin."""

    def __init__(self, options: ClientPluginOptions, context: PluginContext) -> None:
        self.type = options.type
        self.mode = MODES[options.type]
        self.options = options
        self.context = context
        self.localAddr = options.local_addr
        #: Raises ConfigError for an unusable certificate (the proxy's start error).
        self._serverTLS = self._tlsOptions(options) if self.mode.frontTLS else None
        self.pool = BackendPool(context.reactor, self._dial)

    @staticmethod
    def _tlsOptions(options: ClientPluginOptions):
        """frp's ``NewServerTLSConfig``: ``crtPath`` and ``keyPath``, or (either one empty) a
        generated self-signed certificate."""
        crt, key = getattr(options, "crt_path", ""), getattr(options, "key_path", "")
        return serverContextFactory(crt, key) if crt and key else serverContextFactory()

    def handle(self, conn: SwitchableProtocol, info: ConnectionInfo) -> None:
        clientIP = info.src_addr or getattr(conn.transport.getPeer(), "host", "")
        if self._serverTLS is not None:
            conn.switchTo(TLSDoor(self, clientIP))
        else:
            conn.switchTo(PluginFrontConnection(self, clientIP))

    def _dial(self, src: Optional[IAddress]) -> "Deferred[Backend]":
        """A new connection to ``localAddr`` speaking HTTP/1.1 (over TLS for ``*2https``)."""
        try:
            host, port = split_local_addr(self.localAddr, 443 if self.mode.backendTLS else 80)
        except ValueError as e:
            return Deferred.fromCoroutine(_raise(e))
        reactor = self.context.reactor
        connecting = dial(tcpEndpoint(reactor, host, port, DIAL_TIMEOUT))

        def connected(conn: SwitchableProtocol) -> Backend:
            if self.mode.backendTLS:
                conn = startClientTLS(conn, clientContextFactory(host), False)
            backend = Backend(reactor, self.context.name)
            conn.switchTo(backend)
            return backend

        return connecting.addCallback(connected)

    def close(self) -> "Deferred[None]":
        self.pool.close()
        return succeed(None)


async def _raise(error: Exception) -> Backend:
    raise error


def build(options: ClientPluginOptions, context: PluginContext) -> ReverseProxyPlugin:
    return ReverseProxyPlugin(options, context)

