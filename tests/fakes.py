"""Fakes of frptw's collaborators, shared by the unit tests (no sockets, no real time).

* frpc side: :class:`FakeFrps` (frps's end of a control connection on a StringTransport),
  :func:`refuse` (a MemoryReactor's pending connection refused) and the config snippets;
* :class:`FakeControl` (a frps proxy's owner) and :func:`backendBytes`;
* :class:`UDPReactor` (a MemoryReactorClock whose UDP ports are :class:`FakeUDPPort`);
* :class:`FakeProxy` (what a vhost hands user connections to) and :func:`connectVhost`;
* :class:`FrameCodec` (a codec with real framing, for the layering tests);
* :func:`client_hello` (the first flight of a real OpenSSL client).
"""

import ssl
import struct
from contextlib import nullcontext
from typing import ContextManager, List, Optional

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionLost, ConnectionRefusedError
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from frptw.client import FrpClientService
from frptw.config import parse_client_config
from frptw.server.vhost.tcpmux import TCPMuxProxy
from frptw.transport.switch import SwitchableProtocol
from frptw.wire.crypto import AESCFBCodec, derive_key
from frptw.wire.errors import ProtocolError
from frptw.wire.messages import LoginResp, MessageReader, NewProxy, StartWorkConn, encode_message

# -- frpc side --------------------------------------------------------------------------------------

CAPTURE_TIME = 1795640934  # the timestamp of the real frpc capture in wire-protocol.md §5.2
BAD_TOKEN = "token in login doesn't match token from configuration"


def configText(extra: str = "", proxies: str = "") -> str:
    """The TOML of :func:`config` (to write into a file that frpc reloads)."""
    return f'serverAddr = "127.0.0.1"\nserverPort = 7000\nauth.token = "abc"\n{extra}\n{proxies}'


def config(extra: str = "", proxies: str = ""):
    return parse_client_config(configText(extra, proxies), "toml")


TCP_PROXY = """
[[proxies]]
name = "t1"
type = "tcp"
localPort = 22
remotePort = 6000
"""


#: An frpc that speaks plain frp to a scripted frps: no yamux, no TLS, no heartbeats.
PLAIN = "transport.tcpMux = false\ntransport.tls.enable = false\ntransport.heartbeatInterval = -1\n"


def refuse(reactor: MemoryReactorClock) -> None:
    """Refuse the pending connection; HostnameEndpoint reports it on its next 0.3 s tick."""
    reactor.advance(0)
    _, _, factory, _, _ = reactor.tcpClients.pop(0)
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    reactor.advance(0.3)


class FakeFrps:
    """frps's end of the control connection: reads our clear Login, then decrypts."""

    def __init__(self, transport: StringTransport) -> None:
        self.transport = transport
        self.codec = AESCFBCodec(derive_key("abc"))
        self.reader = MessageReader()
        self.loggedIn = False

    def login(self):
        self.loginBytes = self.transport.value()
        reader = MessageReader()
        reader.feed(self.loginBytes)
        self.transport.clear()
        msg = reader.next_message()
        assert reader.take_unconsumed() == b""
        return msg

    def messages(self):
        self.reader.feed(self.codec.decode(self.transport.value()))
        self.transport.clear()
        out = []
        while (msg := self.reader.next_message()) is not None:
            out.append(msg)
        return out

    def encrypted(self, msg) -> bytes:
        return self.codec.encode(encode_message(msg))


# -- frps proxies ------------------------------------------------------------------------------------


class FakeControl:
    """A :class:`~frptw.server.proxy_base.ProxyOwner`: ``clock``, ``runId``, ``user``,
    ``poolCount``, :meth:`getWorkConn` and :meth:`admitUser` (no plugins).

    With ``immediate`` (the default) a work connection on a StringTransport is handed out at
    once (``works`` / ``protocols`` record them); otherwise each request waits in ``pending``
    for the test to fire it (cancelling it withdraws it, as the real pool does).
    """

    runId = "run"
    user = ""
    poolCount = 0

    def __init__(self, clock: Clock, immediate: bool = True) -> None:
        self.clock = clock
        self.immediate = immediate
        self.works: List[StringTransport] = []
        self.protocols: List[SwitchableProtocol] = []
        self.pending: List[Deferred] = []

    def getWorkConn(self) -> "Deferred[SwitchableProtocol]":
        if not self.immediate:
            d: Deferred = Deferred(self.pending.remove)
            self.pending.append(d)
            return d
        return succeed(self.makeWork())

    def admitUser(self, proxyName: str, proxyType: str, remoteAddr: str) -> None:
        """No server plugin judges user connections here."""
        return None

    def writesTogether(self) -> ContextManager[None]:
        """Its work connections are plain transports: nothing to join."""
        return nullcontext()

    def makeWork(self) -> SwitchableProtocol:
        work = SwitchableProtocol()
        transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000 + len(self.works)))
        work.makeConnection(transport)
        self.works.append(transport)
        self.protocols.append(work)
        return work


def backendBytes(transport: StringTransport) -> bytes:
    """What frps wrote on a work connection after StartWorkConn (which is checked)."""
    reader = MessageReader()
    reader.feed(transport.value())
    message = reader.next_message()
    assert isinstance(message, StartWorkConn), message
    return reader.take_unconsumed()


# -- UDP ----------------------------------------------------------------------------------------------


class FakeUDPPort:
    """A UDP port of :class:`UDPReactor`: records what is written and whether it is open."""

    def __init__(self, protocol, interface: str, maxPacketSize: int) -> None:
        self.protocol = protocol
        self.interface = interface
        self.maxPacketSize = maxPacketSize
        self.connected = None
        self.written = []
        self.listening = True

    def connect(self, host: str, port: int) -> None:
        self.connected = (host, port)

    def write(self, data: bytes, addr=None) -> None:
        self.written.append((data, addr))

    def stopListening(self) -> None:
        self.listening = False
        self.protocol.doStop()

    def getHost(self):
        return IPv4Address("UDP", self.interface or "0.0.0.0", 30000)


class UDPReactor(MemoryReactorClock):
    """MemoryReactorClock whose UDP ports are :class:`FakeUDPPort` and start their protocol."""

    def __init__(self) -> None:
        super().__init__()
        self.fakeUdpPorts = []

    def listenUDP(self, port, protocol, interface="", maxPacketSize=8192):
        fake = FakeUDPPort(protocol, interface, maxPacketSize)
        self.fakeUdpPorts.append(fake)
        protocol.makeConnection(fake)
        return fake


# -- vhosts -------------------------------------------------------------------------------------------


class FakeProxy:
    """Records the user connections a vhost hands over."""

    choose = TCPMuxProxy.choose  # a route to one proxy serves that proxy

    def __init__(self, http_user: str = "", http_pwd: str = "") -> None:
        self.name = "p"
        self.request = NewProxy(http_user=http_user, http_pwd=http_pwd)
        self.users = []

    def userConnected(self, user) -> None:
        self.users.append(user)

    def userLeft(self, user) -> None:
        self.users.remove(user)

    def replayed(self) -> bytes:
        """What the work connection would receive first from the (only) user."""
        received = []
        recorder = Protocol()
        recorder.dataReceived = received.append
        self.users[0].switchTo(recorder)
        return b"".join(received)


def connectVhost(vhost, data: bytes):
    """A connection of ``vhost`` on a StringTransport, fed ``data``: (protocol, transport)."""
    transport = StringTransport()
    conn = vhost.buildProtocol(None)
    conn.makeConnection(transport)
    if data:
        conn.dataReceived(data)
    return conn, transport


# -- codecs and TLS ------------------------------------------------------------------------------------


class FrameCodec:
    """A test codec with real framing: each write becomes ``u16 length + data``; a length over
    ``limit`` is a protocol error; decode holds at most one incomplete frame."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self.encodeCalls: List[bytes] = []
        self._pending = bytearray()

    def encode(self, data: bytes) -> bytes:
        self.encodeCalls.append(data)
        return b"".join(struct.pack(">H", len(c)) + c for c in _chunks(data, self.limit))

    def decode(self, data: bytes) -> bytes:
        self._pending += data
        out = []
        while len(self._pending) >= 2:
            (length,) = struct.unpack_from(">H", self._pending)
            if length > self.limit:
                raise ProtocolError(f"frame of {length} bytes > {self.limit}")
            if len(self._pending) < 2 + length:
                break
            out.append(bytes(self._pending[2 : 2 + length]))
            del self._pending[: 2 + length]
        return b"".join(out)

    @property
    def buffered(self) -> int:
        return len(self._pending)


def _chunks(data: bytes, size: int):
    return [data[i : i + size] for i in range(0, len(data), size)]


def client_hello(server_name: Optional[str], maximum: Optional[ssl.TLSVersion] = None) -> bytes:
    """The first flight of an OpenSSL client (one or more TLS records)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if maximum is not None:
        context.maximum_version = maximum
    outgoing = ssl.MemoryBIO()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname=server_name)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class FakeConnection:
    """The oldest pending connection frpc asked the MemoryReactor for, now established."""

    def __init__(self, reactor: MemoryReactorClock) -> None:
        reactor.advance(0)
        host, port, factory, self.timeout, self.bindAddress = reactor.tcpClients.pop(0)
        self.address = (host, port)
        self.protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", host, port))
        self.protocol.makeConnection(self.transport)
        self.frps = FakeFrps(self.transport)
        self.lost = False
        reactor.advance(0)

    def lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connectionLost(Failure(ConnectionLost("frps went away")))


class ServiceTestMixin:
    def makeService(self, extra: str = "", proxies: str = TCP_PROXY) -> FrpClientService:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(CAPTURE_TIME)
        self.fatal = []
        self.service = FrpClientService(config(PLAIN + extra, proxies), self.reactor, onFatal=self.fatal.append)
        self.service.startService()
        self.addCleanup(self.stop)
        return self.service

    def stop(self) -> None:
        d = self.service.stopService()
        for conn in getattr(self, "connections", []):
            if conn.transport.disconnecting:
                conn.lose()
        self.reactor.advance(10)
        self.successResultOf(d)

    def login(self, runId: str = "r1") -> FakeConnection:
        conn = FakeConnection(self.reactor)
        self.connections = getattr(self, "connections", []) + [conn]
        conn.loginMsg = conn.frps.login()
        conn.protocol.dataReceived(encode_message(LoginResp(version="0.65.0", run_id=runId)))
        return conn
