"""The HTTPS vhost (``vhost_https_port``) and ``https`` proxies (wire-protocol.md §10.3).

frps does not terminate TLS here.  Each connection is read until its ClientHello is complete
(:mod:`frptw.wire.clienthello`, 30 s at most); the SNI server name, lower-cased, is looked up
in the route table (location ``""``, no user; a ClientHello without SNI only matches ``*``):

* no route: the alert real frps 0.65 sends (``unrecognized_name``, or ``protocol_version`` to a
  client older than TLS 1.2), then close;
* a route: the connection becomes a user connection of that proxy, and its work connection
  receives every byte read so far (the ClientHello included) before the spliced stream, so the
  TLS server behind frpc sees the untouched handshake;
* not a ClientHello, or a malformed one: closed without a reply, as Go's parser does.

The same connections also arrive from the bind port when ``vhost_https_port == bind_port``
(:mod:`frptw.server.bindport` hands them to :meth:`HTTPSVhost.buildProtocol`).
"""

from twisted.internet.interfaces import IReactorTime

from frptw.logs import FrpLogger
from frptw.server.proxy_base import BaseProxy, ProxyOwner
from frptw.server.vhost.prerouting import PreambleConnection, VhostListener, remote_addr
from frptw.server.vhost.routes import proxy_domains
from frptw.wire.clienthello import NEED_MORE, ClientHelloReader
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import NewProxy

log = FrpLogger()


class _HTTPSConnection(PreambleConnection):
    preamble = "TLS ClientHello"

    def __init__(self, listener: "HTTPSVhost") -> None:
        super().__init__(listener)
        self._reader = ClientHelloReader()

    def preambleReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            hello = self._reader.next_event()
        except ProtocolError as e:
            self.refuse(b"", f"bad TLS ClientHello: {e}")
            return
        if hello is NEED_MORE:
            return
        name = hello.server_name.lower()
        proxy = self.listener.routes.lookup(name, "", "")
        if proxy is None:
            self.refuse(hello.refusal(), f"no https proxy for server name [{name}]")
            return
        self.handOver(proxy, self._reader.buffered)


class HTTPSVhost(VhostListener):
    """The HTTPS vhost of one frps: its routes and the factory of its connections."""

    def __init__(self, clock: IReactorTime, port: int) -> None:
        super().__init__(clock)
        #: The vhost HTTPS port, as clients are told in ``remote_addr``.
        self.port = port

    def buildProtocol(self, addr) -> _HTTPSConnection:
        return _HTTPSConnection(self)


class HTTPSProxy(BaseProxy):
    """An https proxy: routes from its domains to itself on the HTTPS vhost; raises
    ProxyError (frp's texts) for bad domains or a route another proxy holds."""

    type = "https"

    def __init__(self, owner: ProxyOwner, request: NewProxy, key: bytes, vhost: HTTPSVhost, subdomainHost: str) -> None:
        super().__init__(owner, request, key)
        self._vhost = vhost
        domains = proxy_domains(request, subdomainHost)
        vhost.routes.add(domains, [""], "", self)
        self.remote_addr = remote_addr(domains, vhost.port)
        for domain in domains:
            log.info("[{run_id}] [{name}] https proxy listen for host [{domain}]", run_id=self.runId, name=self.name,
                     domain=domain)

    def released(self) -> None:
        self._vhost.routes.remove(self)
