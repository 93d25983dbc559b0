"""Run frps and frpc inside one Twisted program, add a proxy at run time, use it, remove it.

    python docs/examples/embedded_pair.py

Everything listens on 127.0.0.1 only.  The same calls work with a real Go frps or frpc on the
other end: only the configuration changes.
"""

from twisted.application.service import MultiService
from twisted.internet import defer, task
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint, connectProtocol
from twisted.internet.protocol import Factory, Protocol

from frptw.client import FrpClientService
from frptw.config import TCPProxyConfig, parse_client_config, parse_server_config
from frptw.errors import ProxyError
from frptw.server import FrpServerService


class Hello(Protocol):
    """The 'local service' frpc exposes: greets and closes."""

    def connectionMade(self):
        self.transport.write(b"hello through frp\n")
        self.transport.loseConnection()


class Read(Protocol):
    def __init__(self):
        self.data = b""
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        self.done.callback(self.data)


async def main(reactor) -> bytes:
    app = MultiService()

    # frps, from configuration text (load_server_config(path) reads a file instead).
    server_config = parse_server_config('bindAddr = "127.0.0.1"\nauth.token = "s3cret"\n', "toml")
    server_config.bind_port = 0  # any free port (0 in a file means frp's default, 7000)
    server = FrpServerService(server_config, reactor=reactor)
    server.setServiceParent(app)

    # The local service frpc will expose.
    local = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Hello))

    app.startService()
    try:
        port = (await server.whenListening()).getHost().port

        # frpc, with no proxies in its configuration: we add one at run time.
        client_config = parse_client_config(
            f'serverAddr = "127.0.0.1"\nserverPort = {port}\nauth.token = "s3cret"\n', "toml"
        )
        client = FrpClientService(client_config, reactor=reactor)
        client.setServiceParent(app)
        await client.whenLoggedIn()

        proxy = TCPProxyConfig(name="hello", local_ip="127.0.0.1", local_port=local.getHost().port, remote_port=0)
        try:
            status = await client.addProxy(proxy)  # fires once frps accepted it
        except ProxyError as e:  # frps's own text, e.g. "port not allowed"
            raise SystemExit(f"frps refused the proxy: {e}")
        print(f"proxy {status.name!r} is {status.status}, reachable at {status.remote_addr}")

        reader = Read()
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", status.remote_port), reader)
        greeting = await reader.done
        print("the user received:", greeting.decode().strip())

        await client.removeProxy("hello")  # sends CloseProxy; frps closes the port
        return greeting
    finally:
        await local.stopListening()
        await app.stopService()


if __name__ == "__main__":
    task.react(lambda reactor: defer.Deferred.fromCoroutine(main(reactor)))
