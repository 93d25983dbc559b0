"""A raw frp client for driving our frps byte by byte over loopback TCP (tests/test_server_*.py).

:class:`RawConn` speaks v1 messages over plain TCP (the server runs with tcpMux off), encrypts
the control connection after LoginResp as frpc does, and answers StartWorkConn by echoing the
user's bytes when asked; :class:`RawClientMixin` gives a TestCase an in-process frps and
the login / NewProxy / NewWorkConn steps; :class:`UserConn` is a user of a proxy.
"""

from twisted.internet import defer, protocol, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from frptw.config import parse_server_config
from frptw.server import FrpServerService
from frptw.wire import messages as m
from frptw.wire.auth import privilege_key
from frptw.wire.crypto import AESCFBCodec, derive_key
from tests.support import until

TOKEN = "s3cret"


def serverConfig(extra=""):
    config = parse_server_config(
        f'bindAddr = "127.0.0.1"\nauth.token = "{TOKEN}"\ntransport.tcpMux = false\n{extra}', "toml"
    )
    config.bind_port = 0  # in a file 0 means frp's default (7000); here: any free port
    return config


class RawConn(protocol.Protocol):
    """One connection to frps: send messages, receive messages (or raw bytes after
    StartWorkConn), optionally acting as an echoing work connection."""

    def __init__(self, token=TOKEN, echo=False):
        self.key = derive_key(token)
        self.reader = m.MessageReader()
        self.codec = None
        self.raw = None  # bytes received after StartWorkConn
        self.echo = echo
        self.messages = defer.DeferredQueue()
        self.closed = defer.Deferred()

    def send(self, message):
        data = m.encode_message(message)
        self.transport.write(self.codec.encode(data) if self.codec else data)

    def dataReceived(self, data):
        if self.raw is not None:
            self.rawReceived(data)
            return
        self.reader.feed(self.codec.decode(data) if self.codec else data)
        while self.raw is None:
            message = self.reader.next_message()
            if message is None:
                return
            # Switch modes before delivering: a waiting test resumes synchronously on put().
            rest = self.reader.take_unconsumed()
            if isinstance(message, m.LoginResp) and not message.error:
                self.codec = AESCFBCodec(self.key)
                rest = self.codec.decode(rest)
            elif isinstance(message, m.StartWorkConn) and not message.error:
                self.raw = b""
                self.messages.put(message)
                if rest:
                    self.rawReceived(rest)
                return
            self.reader.feed(rest)
            self.messages.put(message)

    def rawReceived(self, data):
        self.raw += data
        if self.echo:
            self.transport.write(data)

    def connectionLost(self, reason=protocol.connectionDone):
        self.closed.callback(None)

    async def next(self, kind=None, timeout=5):
        d = self.messages.get()
        d.addTimeout(timeout, reactor)
        message = await d
        if kind is not None and not isinstance(message, kind):
            raise AssertionError(f"expected {kind.__name__}, got {message!r}")
        return message


class UserConn(protocol.Protocol):
    """A user of a proxy: collects what it receives."""

    def __init__(self):
        self.received = b""
        self.closed = defer.Deferred()

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason=protocol.connectionDone):
        self.closed.callback(None)

    async def waitFor(self, expected, timeout=5):
        await until(lambda: self.received == expected, lambda: f"{expected!r}; received {self.received!r}", timeout)


class RawClientMixin:
    """For a TestCase: our frps in-process and raw clients of it (cleaned up with the test)."""

    async def startServer(self, extra=""):
        service = FrpServerService(serverConfig(extra), reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        port = await service.whenListening()
        self.service, self.port = service, port.getHost().port
        return service

    async def connect(self, proto, port=None):
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port or self.port), proto)
        self.addCleanup(proto.transport.abortConnection)
        return proto

    async def login(self, token=TOKEN, run_id="", pool_count=0, **fields):
        control = await self.connect(RawConn(token))
        control.send(m.Login(version="0.65.0", privilege_key=privilege_key(token, 1000), timestamp=1000,
                             run_id=run_id, pool_count=pool_count, **fields))
        return control, await control.next(m.LoginResp)

    async def newProxy(self, control, name, **fields):
        fields.setdefault("proxy_type", "tcp")
        control.send(m.NewProxy(proxy_name=name, **fields))
        return await control.next(m.NewProxyResp)

    async def workConn(self, run_id, **fields):
        work = await self.connect(RawConn(echo=True))
        work.send(m.NewWorkConn(run_id=run_id, **fields))
        return work
