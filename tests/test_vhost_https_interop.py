"""Interop: HTTPS SNI routing and tcpmux HTTP CONNECT, our frps vs real frps 0.65.

Each test runs the same requests against two set-ups and compares what a user sees:

* ours: our in-process frps, with the real Go frpc serving the proxies;
* reference: the real Go frps, with our frpc (FrpClientService) serving the same proxies.

Behind the proxies are two TLS echo servers with their own certificates (``a.test``,
``b.test``, signed by a test CA the user verifies against) and a plain echo server.  The user
side is blocking sockets run in threads (Python's ssl module), so the exchanged data is
checked byte for byte (sha256) and raw refusals (TLS alerts, 404, 200+407) are compared exactly.
"""

import hashlib
import random
import socket
import ssl

from twisted.internet import reactor
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import TestCase

from frptw.client import FrpClientService
from frptw.config import parse_client_config, parse_server_config
from frptw.server import FrpServerService
from frptw.server.vhost.tcpmux import NOT_FOUND
from tests.fakes import client_hello
from tests.gofrp import GoFrp
from tests.pki import TestCA
from tests.support import free_port, tempDir
from tests.traffic import EchoServer

TOKEN = "vhost-token"
NBYTES = 96 * 1024
ECHO_PIECE = 16 * 1024
IO_TIMEOUT = 10.0


# -- the user side: blocking, run in threads ------------------------------------------------------
def _readAll(sock, limit: int = 1 << 20) -> bytes:
    """Everything until EOF (or the timeout), bounded."""
    out = b""
    try:
        while len(out) < limit:
            data = sock.recv(65536)
            if not data:
                return out + b"<EOF>"
            out += data
    except (socket.timeout, ConnectionResetError):
        return out + b"<TIMEOUT>"
    return out


def _echoed(sock, nbytes: int, seed: int) -> bool:
    """Send ``nbytes`` pseudo-random bytes and check the echo, one 16 KiB piece at a time.

    Lock-step, in one thread: an ``ssl.SSLSocket`` must not be written by one thread while
    another reads it (that corrupted the stream now and then)."""
    payload = random.Random(seed).randbytes(nbytes)
    got = bytearray()
    for start in range(0, nbytes, ECHO_PIECE):
        piece = payload[start : start + ECHO_PIECE]
        sock.sendall(piece)
        want = start + len(piece)
        while len(got) < want:
            data = sock.recv(65536)
            if not data:
                return False
            got += data
    return hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()


def tlsEcho(port: int, name: str, caFile: str) -> tuple:
    """TLS to ``name`` through the vhost (certificate verified); (subject CN, echo ok)."""
    context = ssl.create_default_context(cafile=caFile)
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            subject = dict(item[0] for item in tls.getpeercert()["subject"])["commonName"]
            return subject, _echoed(tls, NBYTES, seed=len(name))


def rawReply(port: int, data: bytes) -> bytes:
    """What the server answers to ``data``, up to its close."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT / 2) as sock:
        sock.sendall(data)
        return _readAll(sock)


def connectTunnel(port: int, request: bytes, head: bytes) -> tuple:
    """Send a CONNECT, read the ``len(head)`` bytes of the expected answer, then check an echo
    through the tunnel; (answer, echo ok)."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT) as sock:
        sock.sendall(request)
        answer = b""
        while len(answer) < len(head):
            data = sock.recv(len(head) - len(answer))
            if not data:
                return answer + b"<EOF>", False
            answer += data
        return answer, _echoed(sock, NBYTES, seed=7)


CONNECTED = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
AUTH_FAILED = (CONNECTED + b"HTTP/1.1 407 Proxy Authentication Required\r\n"
               b"Proxy-Authenticate: Basic realm=\"Restricted\"\r\nContent-Length: 0\r\n\r\n<EOF>")


def connect(host: str, credentials: str = "") -> bytes:
    auth = f"Proxy-Authorization: Basic {credentials}\r\n" if credentials else ""
    return f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{auth}\r\n".encode()


class VhostInterop(TestCase):
    timeout = 60

    async def backends(self):
        """Two TLS echo servers (a.test, b.test) and a plain echo server; their ports."""
        authority = TestCA(tempDir(self), "vhost CA")
        self.caFile = authority.ca
        ports = {}
        for name in ("a.test", "b.test"):
            factory = EchoServer()
            certificate, key = authority.issue(name, dnsNames=[name])
            options = PrivateCertificate.loadPEM((certificate + key).decode()).options()
            port = await SSL4ServerEndpoint(reactor, 0, options, interface="127.0.0.1").listen(factory)
            self.addCleanup(self._stopEcho, factory, port)
            ports[name] = port.getHost().port
        echo = await EchoServer.listen(reactor)
        self.addCleanup(echo.stop)
        ports["echo"] = echo.port
        return ports

    @staticmethod
    def _stopEcho(factory, port):
        for conn in list(factory.connections):
            conn.transport.abortConnection()
        return port.stopListening()

    def proxies(self, ports) -> str:
        return (
            f'[[proxies]]\nname = "sa"\ntype = "https"\ncustomDomains = ["a.test"]\nlocalPort = {ports["a.test"]}\n'
            f'[[proxies]]\nname = "sb"\ntype = "https"\ncustomDomains = ["b.test"]\nlocalPort = {ports["b.test"]}\n'
            f'[[proxies]]\nname = "m1"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\ncustomDomains = ["m1.test"]\n'
            f'localPort = {ports["echo"]}\n'
            f'[[proxies]]\nname = "m2"\ntype = "tcpmux"\nmultiplexer = "httpconnect"\ncustomDomains = ["M2.test"]\n'
            f'httpUser = "u"\nhttpPassword = "p"\nlocalPort = {ports["echo"]}\n'
        )

    def serverText(self, bindPort, httpsPort, muxPort, passthrough=False) -> str:
        return (f'bindAddr = "127.0.0.1"\nbindPort = {bindPort}\nauth.token = "{TOKEN}"\n'
                f'vhostHTTPSPort = {httpsPort}\ntcpmuxHTTPConnectPort = {muxPort}\n'
                f'tcpmuxPassthrough = {"true" if passthrough else "false"}\n')

    def clientText(self, bindPort, extra="") -> str:
        return f'serverAddr = "127.0.0.1"\nserverPort = {bindPort}\nauth.token = "{TOKEN}"\n{extra}'

    async def ours(self, ports, passthrough=False, shared=False):
        """Our frps + Go frpc; (https port, tcpmux port, our frps)."""
        bindPort, muxPort = free_port(), free_port()
        httpsPort = bindPort if shared else free_port()
        service = FrpServerService(parse_server_config(self.serverText(bindPort, httpsPort, muxPort, passthrough),
                                                       "toml"), reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        await service.whenListening()
        extra = "transport.tls.disableCustomTLSFirstByte = false\n" if shared else ""
        frpc = await GoFrp.start(reactor, "frpc", self.clientText(bindPort, extra) + self.proxies(ports))
        self.addCleanup(frpc.stop)
        for name in ("sa", "sb", "m1", "m2"):
            await frpc.waitFor(f"[{name}] start proxy success")
        return httpsPort, muxPort, service

    async def reference(self, ports, passthrough=False):
        """Go frps + our frpc; (https port, tcpmux port, remote addresses by proxy)."""
        bindPort, httpsPort, muxPort = free_port(), free_port(), free_port()
        frps = await GoFrp.start(reactor, "frps", self.serverText(bindPort, httpsPort, muxPort, passthrough))
        self.addCleanup(frps.stop)
        config = parse_client_config(self.clientText(bindPort) + self.proxies(ports), "toml")
        proxies, config.proxies = config.proxies, []
        client = FrpClientService(config, reactor, onFatal=lambda f: None)
        client.startService()
        self.addCleanup(client.stopService)
        await client.whenLoggedIn()
        remote = {}
        for proxy in proxies:
            status = await client.addProxy(proxy)
            remote[proxy.name] = status.remote_addr
        return httpsPort, muxPort, remote

    async def probe(self, httpsPort, muxPort):
        """The user-visible results of every request, for comparison."""
        results = {}
        for name in ("a.test", "B.test"):
            results[f"tls {name}"] = await deferToThread(tlsEcho, httpsPort, name, self.caFile)
        results["unknown sni"] = await deferToThread(rawReply, httpsPort, client_hello("c.test"))
        results["no sni"] = await deferToThread(rawReply, httpsPort, client_hello(None))
        results["not tls"] = await deferToThread(rawReply, httpsPort, b"GET / HTTP/1.1\r\n\r\n")
        results["m1"] = await deferToThread(connectTunnel, muxPort, connect("M1.test"), CONNECTED)
        results["m2 auth"] = await deferToThread(connectTunnel, muxPort, connect("m2.test", "dTpw"), CONNECTED)
        results["m2 bad auth"] = await deferToThread(rawReply, muxPort, connect("m2.test", "dTp4"))
        results["m2 no auth"] = await deferToThread(rawReply, muxPort, connect("m2.test"))
        results["unknown host"] = await deferToThread(rawReply, muxPort, connect("x.test"))
        results["not connect"] = await deferToThread(rawReply, muxPort, b"GET / HTTP/1.1\r\nHost: m1.test\r\n\r\n")
        return results

    async def test_https_and_tcpmux(self):
        ports = await self.backends()
        expected = {
            "tls a.test": ("a.test", True),
            "tls B.test": ("b.test", True),
            "unknown sni": b"\x15\x03\x03\x00\x02\x02\x70<EOF>",
            "no sni": b"\x15\x03\x03\x00\x02\x02\x70<EOF>",
            "not tls": b"<EOF>",
            "m1": (CONNECTED, True),
            "m2 auth": (CONNECTED, True),
            "m2 bad auth": AUTH_FAILED,
            "m2 no auth": AUTH_FAILED,
            "unknown host": NOT_FOUND + b"<EOF>",
            "not connect": b"<EOF>",
        }
        httpsPort, muxPort, remote = await self.reference(ports)
        reference = await self.probe(httpsPort, muxPort)
        self.assertEqual(reference, expected)
        self.assertEqual(remote, {"sa": f"a.test:{httpsPort}", "sb": f"b.test:{httpsPort}",
                                  "m1": f"m1.test:{muxPort}", "m2": f"M2.test:{muxPort}"})
        httpsPort, muxPort, service = await self.ours(ports)
        self.assertEqual(await self.probe(httpsPort, muxPort), reference)
        ourRemote = {name: proxy.remote_addr for name, proxy in service.proxies().items()}
        self.assertEqual(ourRemote, {"sa": f"a.test:{httpsPort}", "sb": f"b.test:{httpsPort}",
                                     "m1": f"m1.test:{muxPort}", "m2": f"M2.test:{muxPort}"})

    async def test_tcpmux_passthrough(self):
        """The backend (an echo server) receives the whole CONNECT request; no 200 from frps."""
        ports = await self.backends()
        request = connect("m1.test")
        results = []
        for setUp in (self.reference, self.ours):
            _, muxPort, _ = await setUp(ports, passthrough=True)
            results.append((await deferToThread(connectTunnel, muxPort, request, request),
                            await deferToThread(rawReply, muxPort, connect("m2.test", "dTp4"))))
        self.assertEqual(results[0], ((request, True), CONNECTED[:0] + AUTH_FAILED[len(CONNECTED):]))
        self.assertEqual(results[1], results[0])

    async def test_port_sharing(self):
        """vhostHTTPSPort == bindPort: Go frpc logs in with the custom first byte 0x17 while an
        HTTPS user reaches its proxy on the same port (compared with the real frps)."""
        ports = await self.backends()
        bindPort = free_port()
        frps = await GoFrp.start(reactor, "frps", self.serverText(bindPort, bindPort, free_port()))
        self.addCleanup(frps.stop)
        frpc = await GoFrp.start(reactor, "frpc", self.clientText(
            bindPort, "transport.tls.disableCustomTLSFirstByte = false\n") + self.proxies(ports))
        self.addCleanup(frpc.stop)
        await frpc.waitFor("[sa] start proxy success")
        reference = [await deferToThread(tlsEcho, bindPort, "a.test", self.caFile),
                     await deferToThread(rawReply, bindPort, client_hello("c.test"))]
        httpsPort, _, _ = await self.ours(ports, shared=True)
        ours = [await deferToThread(tlsEcho, httpsPort, "a.test", self.caFile),
                await deferToThread(rawReply, httpsPort, client_hello("c.test"))]
        self.assertEqual(reference, [("a.test", True), b"\x15\x03\x03\x00\x02\x02\x70<EOF>"])
        self.assertEqual(ours, reference)
